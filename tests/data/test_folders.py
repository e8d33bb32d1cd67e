"""Tests for deepstrata.data.folders: a folder of class sub-folders read as a table."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile
from PIL import Image

from deepstrata.data.folders import GROUP, LABEL, read_folder, with_groups
from deepstrata.data.sources import read_table
from deepstrata.data.table import Table
from deepstrata.errors import ConfigError, DataError, DataWarning


def png(path: Path) -> None:
    """A 2x2 RGB PNG at ``path`` (parent folders made)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (2, 2), (200, 10, 10)).save(path, format="PNG")


def wav(path: Path, format: str = "WAV") -> None:
    """16 samples of silence at 8 kHz as a WAV (or ``format``) at ``path`` (parent folders made)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(path, np.zeros(16, dtype=np.float32), 8000, format=format)


def touch(path: Path, content: bytes = b"") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)


def read_quietly(folder: Path) -> Table:
    """read_folder, failing the test on any DataWarning."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", DataWarning)
        return read_folder(folder)


def read_error(folder: Path) -> DataError:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        with pytest.raises(DataError) as caught:
            read_folder(folder)
    return caught.value


# --- class sub-folders ------------------------------------------------------------------


def test_class_folders_of_images_give_sorted_paths_and_labels(tmp_path):
    # Written out of order; "10" sorts before "2" as text.
    for name in ("dog/2.png", "cat/2.png", "dog/10.png", "cat/1.png"):
        png(tmp_path / name)

    table = read_quietly(tmp_path)

    assert table.frame.columns.tolist() == ["image", LABEL]
    assert table.frame["image"].tolist() == ["cat/1.png", "cat/2.png", "dog/10.png", "dog/2.png"]
    assert table.frame[LABEL].tolist() == ["cat", "cat", "dog", "dog"]
    assert table.source == str(tmp_path)
    assert table.lines is None
    assert table.frame.index.tolist() == [0, 1, 2, 3]


def test_class_folders_of_audio_give_an_audio_column(tmp_path):
    wav(tmp_path / "yes" / "a.wav")
    wav(tmp_path / "no" / "b.flac", format="FLAC")

    table = read_quietly(tmp_path)

    assert table.frame.columns.tolist() == ["audio", LABEL]
    assert table.frame["audio"].tolist() == ["no/b.flac", "yes/a.wav"]
    assert table.frame[LABEL].tolist() == ["no", "yes"]


def test_files_nested_deeper_keep_their_class_and_use_forward_slashes(tmp_path):
    png(tmp_path / "cat" / "indoor" / "sofa" / "1.png")
    png(tmp_path / "cat" / "2.png")
    png(tmp_path / "dog" / "park" / "3.png")

    table = read_quietly(tmp_path)

    assert table.frame["image"].tolist() == ["cat/2.png", "cat/indoor/sofa/1.png", "dog/park/3.png"]
    assert table.frame[LABEL].tolist() == ["cat", "cat", "dog"]


def test_a_flat_folder_has_no_label_column(tmp_path):
    png(tmp_path / "b.png")
    png(tmp_path / "a.png")

    table = read_quietly(tmp_path)

    assert table.frame.columns.tolist() == ["image"]
    assert table.frame["image"].tolist() == ["a.png", "b.png"]


def test_upper_case_extensions_are_recognised(tmp_path):
    png(tmp_path / "cat" / "1.PNG")
    png(tmp_path / "dog" / "2.Png")
    assert read_quietly(tmp_path).frame["image"].tolist() == ["cat/1.PNG", "dog/2.Png"]

    audio = tmp_path / "audio"
    wav(audio / "yes" / "1.WAV")
    assert read_quietly(audio).frame["audio"].tolist() == ["yes/1.WAV"]


def test_path_like_folder_and_str_folder_read_the_same(tmp_path):
    png(tmp_path / "cat" / "1.png")
    by_path = read_quietly(tmp_path)
    by_str = read_quietly(str(tmp_path))
    assert by_path.frame.equals(by_str.frame)
    assert by_path.source == by_str.source == str(tmp_path)


# --- what is skipped ----------------------------------------------------------------------


def test_hidden_files_and_folders_are_ignored_without_a_warning(tmp_path):
    png(tmp_path / "cat" / "1.png")
    png(tmp_path / "dog" / "2.png")
    touch(tmp_path / ".DS_Store", b"\x00\x01")
    touch(tmp_path / "cat" / ".DS_Store", b"\x00\x01")
    png(tmp_path / "cat" / "._1.png")  # macOS resource fork
    png(tmp_path / "cat" / ".ipynb_checkpoints" / "1-checkpoint.png")
    png(tmp_path / ".hidden_class" / "3.png")  # a hidden folder is no class

    table = read_quietly(tmp_path)

    assert table.frame["image"].tolist() == ["cat/1.png", "dog/2.png"]
    assert table.frame[LABEL].tolist() == ["cat", "dog"]


def test_other_extensions_are_skipped_with_a_warning_counting_them(tmp_path):
    png(tmp_path / "cat" / "1.png")
    touch(tmp_path / "cat" / "notes.md", b"# notes")
    touch(tmp_path / "dog" / "notes.md", b"# notes")
    touch(tmp_path / "dog" / "labels.CSV", b"a,b\n")
    touch(tmp_path / "dog" / "LICENSE", b"MIT")
    png(tmp_path / "dog" / "2.png")

    with pytest.warns(DataWarning, match="skipped files of other types") as caught:
        table = read_folder(tmp_path)

    assert table.frame["image"].tolist() == ["cat/1.png", "dog/2.png"]
    message = str(caught[0].message)
    assert str(tmp_path) in message
    assert "2 .md" in message
    assert "1 .csv" in message
    assert "1 (no extension)" in message


def test_files_beside_the_class_folders_are_skipped_with_a_warning(tmp_path):
    png(tmp_path / "cat" / "1.png")
    png(tmp_path / "dog" / "2.png")
    png(tmp_path / "stray.png")
    png(tmp_path / "another.png")

    with pytest.warns(DataWarning, match=r"skipped 2 file\(s\) outside the class sub-folders"):
        table = read_folder(tmp_path)

    assert table.frame["image"].tolist() == ["cat/1.png", "dog/2.png"]


# --- text folders -------------------------------------------------------------------------


def test_a_text_folder_reads_contents_into_text_with_file_paths(tmp_path):
    touch(tmp_path / "pos" / "a.txt", "great film, café\n".encode())
    touch(tmp_path / "neg" / "b.txt", b"\xef\xbb\xbfdull")  # a UTF-8 byte-order mark
    touch(tmp_path / "neg" / "deep" / "c.TXT", b"")

    table = read_quietly(tmp_path)

    assert table.frame.columns.tolist() == ["file", "text", LABEL]
    assert table.frame["file"].tolist() == ["neg/b.txt", "neg/deep/c.TXT", "pos/a.txt"]
    assert table.frame["text"].tolist() == ["dull", "", "great film, café\n"]
    assert table.frame[LABEL].tolist() == ["neg", "neg", "pos"]


def test_a_non_utf8_text_file_is_an_error_naming_the_file_and_byte(tmp_path):
    touch(tmp_path / "pos" / "good.txt", b"fine")
    touch(tmp_path / "neg" / "bad.txt", b"caf\xe9 au lait")  # Latin-1

    error = read_error(tmp_path)

    assert Path(error.file) == tmp_path / "neg" / "bad.txt"
    assert "not valid UTF-8" in error.message
    assert "0xe9" in error.hint
    assert "byte offset 3" in error.hint


# --- refused folders ----------------------------------------------------------------------


def test_mixing_images_and_audio_is_refused_naming_the_counts(tmp_path):
    png(tmp_path / "cat" / "1.png")
    png(tmp_path / "cat" / "2.png")
    wav(tmp_path / "dog" / "1.wav")

    error = read_error(tmp_path)

    assert error.file == str(tmp_path)
    assert "mixes kinds of files (2 image, 1 audio)" in error.message


def test_an_empty_folder_is_refused(tmp_path):
    error = read_error(tmp_path)
    assert error.file == str(tmp_path)
    assert "no image, audio or text files found" in error.message
    assert ".png" in error.hint and ".csv" in error.hint


def test_a_folder_of_only_other_files_is_refused_after_warning(tmp_path):
    touch(tmp_path / "cat" / "notes.md", b"# notes")
    with pytest.warns(DataWarning, match="1 .md"), pytest.raises(DataError, match="no image"):
        read_folder(tmp_path)


def test_a_flat_folder_beside_a_folder_of_no_usable_files_stays_flat(tmp_path):
    png(tmp_path / "a.png")
    png(tmp_path / "b.png")
    png(tmp_path / "__MACOSX" / "._a.png")  # what unzipping a macOS zip leaves

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)  # the bug warns of 2 stray files first
        table = read_folder(tmp_path)

    assert table.frame.columns.tolist() == ["image"]
    assert table.frame["image"].tolist() == ["a.png", "b.png"]


# --- read_table ---------------------------------------------------------------------------


def test_read_table_of_a_folder_reads_the_folder(tmp_path):
    png(tmp_path / "cat" / "1.png")
    png(tmp_path / "dog" / "2.png")

    for given in (tmp_path, str(tmp_path)):
        table = read_table(given)
        assert isinstance(table, Table)
        assert table.source == str(tmp_path)
        assert table.frame.equals(read_folder(tmp_path).frame)


def test_a_group_pattern_adds_each_files_group_from_its_name(tmp_path):
    for path in ("yes/alice_01.wav", "yes/bob_01.wav", "no/alice_02.wav", "no/cy_07.wav"):
        wav(tmp_path / path)
    table = with_groups(read_quietly(tmp_path), r"^[^/]+/(\w+)_")
    rows = dict(zip(table.frame["audio"], table.frame[GROUP]))
    assert rows == {
        "no/alice_02.wav": "alice",
        "no/cy_07.wav": "cy",
        "yes/alice_01.wav": "alice",
        "yes/bob_01.wav": "bob",
    }
    assert table.source == str(tmp_path)


def test_a_file_the_group_pattern_does_not_match_is_named(tmp_path):
    for path in ("yes/alice_01.wav", "yes/bob.wav", "no/x.wav"):
        wav(tmp_path / path)
    with pytest.raises(DataError, match=r"'no/x.wav' \(and 1 more\)") as raised:
        with_groups(read_quietly(tmp_path), r"^[^/]+/(\w+)_")
    assert raised.value.file == str(tmp_path / "no/x.wav")


def test_a_group_pattern_is_for_folders_only():
    table = read_table(pd.DataFrame({"x": [1, 2], "y": [0, 1]}))
    with pytest.raises(ConfigError, match="--group-pattern"):
        with_groups(table, r"(\w+)")
