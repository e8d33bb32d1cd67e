"""A folder of raw files as a table: one row per file, the class from its sub-folder.

::

    photos/cat/1.jpg, photos/cat/2.png, photos/dog/3.jpg ...   ->   image          label
                                                                    cat/1.jpg      cat
                                                                    ...

The modality comes from the files' extensions (:data:`EXTENSIONS`); one folder
holds one modality. Image and audio rows hold the path relative to the folder
(decoded later, by the kind's preprocessor); text files are read here, as UTF-8,
into a ``text`` column, with their path in ``file``. A folder with no usable file in
a sub-folder is unlabelled (for ``predict``). Hidden files and other extensions are skipped,
and said so.

A file's name often says whose it is (``yes/alice_01.wav``: Alice's); :func:`with_groups`
adds that as a ``group`` column (``fit --group-pattern``), so that validation holds out
whole speakers, patients or users.
"""

from __future__ import annotations

import os
import re
import warnings
from collections import Counter
from pathlib import Path

import pandas as pd

from deepstrata.config import GROUP_COLUMN
from deepstrata.data.table import TABLE_SUFFIXES, Table
from deepstrata.errors import ConfigError, DataError, DataWarning
from deepstrata.kinds import KINDS

# kind -> the file name endings of its files (each kind's entry says: deepstrata.kinds)
EXTENSIONS = {name: kind.extensions for name, kind in KINDS.items() if kind.extensions}
IMAGE_EXTENSIONS, AUDIO_EXTENSIONS = EXTENSIONS["image"], EXTENSIONS["audio"]
LABEL = "label"
GROUP = GROUP_COLUMN  # the column with_groups adds (--group-pattern implies --group group)


def modality_of(name: str) -> str | None:
    """``"image"``, ``"audio"``, ``"text"`` or None, from a file name's extension."""
    suffix = os.path.splitext(name)[1].lower()
    return next((kind for kind, exts in EXTENSIONS.items() if suffix in exts), None)


def read_folder(folder: str | os.PathLike) -> Table:
    """Every file under ``folder`` as one row (see the module docstring).

    Raises DataError naming the folder when it holds no usable file or mixes
    modalities, and naming the file for a text file that is not UTF-8.
    """
    source = os.fsdecode(folder)
    root = Path(source)
    found: list[tuple[str, ...]] = []  # the parts of each usable file's path below root
    skipped: Counter[str] = Counter()
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root)
        if any(part.startswith(".") for part in relative.parts) or not path.is_file():
            continue
        if modality_of(path.name) is None:
            skipped[path.suffix.lower() or "(no extension)"] += 1
            continue
        found.append(relative.parts)
    # Labelled when a usable file sits in a sub-folder: a sub-folder of none (an empty
    # one, macOS's __MACOSX/ of hidden "._" files) is no class.
    labelled = any(len(parts) > 1 for parts in found)
    stray = sum(len(parts) == 1 for parts in found) if labelled else 0
    found = [parts for parts in found if not labelled or len(parts) > 1]
    if skipped:
        listed = ", ".join(f"{count} {ext}" for ext, count in skipped.most_common())
        warnings.warn(
            f"{source}: skipped files of other types ({listed})", DataWarning, stacklevel=3
        )
    if stray:
        warnings.warn(
            f"{source}: skipped {stray} file(s) outside the class sub-folders",
            DataWarning,
            stacklevel=3,
        )
    if not found:
        expected = ", ".join(ext for exts in EXTENSIONS.values() for ext in exts)
        raise DataError(
            "no image, audio or text files found",
            file=source,
            hint=f"put files ({expected}) in one sub-folder per class, e.g. photos/cat/1.jpg; "
            f"or give a table file ({', '.join(TABLE_SUFFIXES)})",
        )
    modalities = Counter(modality_of(parts[-1]) for parts in found)
    if len(modalities) > 1:
        mix = ", ".join(f"{count} {kind}" for kind, count in modalities.most_common())
        raise DataError(
            f"the folder mixes kinds of files ({mix}); a folder holds one kind",
            file=source,
            hint="for several kinds per example, write a table with one column per kind",
        )
    modality = next(iter(modalities))
    paths = ["/".join(parts) for parts in found]
    columns: dict[str, list] = {}
    if modality == "text":
        columns["file"] = paths
        columns["text"] = [_read_text_file(root / path) for path in paths]
    else:
        columns[modality] = paths
    if labelled:
        columns[LABEL] = [parts[0] for parts in found]
    return Table(frame=pd.DataFrame(columns), source=source, lines=None)


def _read_text_file(path: Path) -> str:
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(
            "the file is not valid UTF-8",
            file=str(path),
            hint=f"byte 0x{data[exc.start]:02x} at byte offset {exc.start} cannot be decoded; "
            "re-save the file as UTF-8",
        ) from None


def is_folder(table: Table) -> bool:
    """Whether ``table`` was read from a folder of files (by :func:`read_folder`)."""
    return Path(table.source).is_dir()


def default_target(table: Table) -> str | None:
    """``label`` for a folder of class sub-folders (its class is what to predict), else None."""
    return LABEL if is_folder(table) and LABEL in table.frame.columns else None


def file_column(table: Table) -> str:
    """The column of a folder table that names each row's file."""
    return next(name for name in ("file", "image", "audio") if name in table.frame.columns)


def summary(table: Table) -> str:
    """``photos: 120 image files in 2 classes (cat 70, dog 50)``, for a folder table."""
    frame = table.frame
    kind = next(name for name in ("image", "audio", "text") if name in frame.columns)
    text = f"{table.source}: {len(frame)} {kind} files"
    if LABEL in frame.columns:
        counts = frame[LABEL].value_counts().sort_index()
        shown = ", ".join(f"{label} {count}" for label, count in counts.head(12).items())
        more = ", …" if len(counts) > 12 else ""
        text += f" in {len(counts)} classes ({shown}{more})"
    return text


def with_groups(table: Table, pattern: str) -> Table:
    r"""``table`` (read from a folder) with a ``group`` column: the first capture group
    of ``pattern`` searched in each file's path relative to the folder (``/`` between
    parts, whatever the system).

    Raises ConfigError (--group-pattern) for a table not read from a folder, and
    DataError naming the first file the pattern does not match, with how many more.

    >>> frame = pd.DataFrame({"audio": ["yes/alice_01.wav", "no/bob_02.wav"]})
    >>> table = with_groups(Table(frame, source=".", lines=None), r"^[^/]+/(\w+)_")
    >>> table.frame["group"].tolist()
    ['alice', 'bob']
    """
    if not is_folder(table) or GROUP in table.frame.columns:
        raise ConfigError(
            f"{table.source} is not a folder of files (or has a {GROUP!r} column already); "
            "a table names its group column with --group",
            option="--group-pattern",
        )
    compiled = re.compile(pattern)
    paths = table.frame[file_column(table)].astype(str)
    found = [compiled.search(path) for path in paths]
    groups = [match.group(1) if match else None for match in found]
    unmatched = [path for path, group in zip(paths, groups) if not group]
    if unmatched:
        more = f" (and {len(unmatched) - 1} more)" if len(unmatched) > 1 else ""
        raise DataError(
            f"--group-pattern {pattern!r} finds no group in the file's path {unmatched[0]!r}{more}",
            file=str(Path(table.source) / unmatched[0]),
            hint="the pattern is searched in the path relative to the folder, e.g. "
            "'yes/alice_01.wav', and its first capture group names the group",
        )
    frame = table.frame.assign(**{GROUP: groups})
    return Table(frame=frame, source=table.source, lines=table.lines)
