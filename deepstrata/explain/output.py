"""An explanation's folder: attributions (CSV or Parquet), explain.json, explain.html,
for image columns explained by pixel ``maps/<column>/<row>.png`` heat maps, and for
text columns ``words.csv`` (one line per word).

Written into a temporary folder beside the destination and renamed into place, so a
failure leaves nothing half-written and an existing folder whole."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

from deepstrata.errors import ConfigError
from deepstrata.explain.explanation import Explanation
from deepstrata.explain.page import heatmap_png, render
from deepstrata.explain.words import words_frame

FORMATS = ("csv", "parquet")


def check_destination(folder: Path, *, overwrite: bool, table_format: str = "csv") -> None:
    """Refuse, before any work, a destination that exists (without ``overwrite``), is a
    file, or a table format other than CSV and Parquet."""
    if table_format not in FORMATS:
        raise ConfigError(f"expected csv or parquet, got {table_format!r}", option="--format")
    if folder.exists() and (not overwrite or not folder.is_dir()):
        raise ConfigError(
            f"{folder} already exists; pass --overwrite to replace it", option="--output"
        )


def write_folder(
    explanation: Explanation, folder: Path, *, title: str, table_format: str = "csv"
) -> Path:
    """Write the three files; returns ``folder``."""
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        frame = explanation.frame()
        if table_format == "parquet":
            frame.to_parquet(staging / "attributions.parquet", index=False)
        else:
            frame.to_csv(staging / "attributions.csv", index=False)
        if explanation.words:
            words_frame(explanation.words, explanation.rows).to_csv(
                staging / "words.csv", index=False
            )
        text = json.dumps(explanation.to_dict(), indent=2, default=_plain)
        (staging / "explain.json").write_text(text + "\n", encoding="utf-8")
        for column, maps in explanation.maps.items():  # one heat map PNG per image
            (staging / "maps" / column).mkdir(parents=True)
            for index, row in enumerate(explanation.rows):
                audio = explanation.settings.get("map_kinds", {}).get(column) == "audio"
                png = heatmap_png(explanation.pixels[column][index], maps[index], flip=audio)
                (staging / "maps" / column / f"{row}.png").write_bytes(png)
        (staging / "explain.html").write_text(render(explanation, title=title), encoding="utf-8")
        if folder.exists():
            shutil.rmtree(folder)
        staging.rename(folder)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return folder


def _plain(value):
    """NumPy scalars and arrays in JSON."""
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)
