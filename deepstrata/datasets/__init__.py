"""Small real datasets shipped inside the package (see README.md beside this file)."""

from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).parent


def penguins_path() -> Path:
    """Path of the embedded Palmer penguins CSV (344 rows, target ``species``)."""
    return HERE / "penguins.csv"
