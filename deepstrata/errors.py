"""Named errors: what was expected, what was seen, and where (file, column, row).

Every error a user can cause derives from :class:`DeepstrataError`, so callers
(the CLI, the server) can tell a user's mistake from a bug.
"""

from __future__ import annotations


class DeepstrataError(Exception):
    """Base of every error a user's input or configuration can cause."""


class DataError(DeepstrataError, ValueError):
    """Bad input data. Names the file, the column and the row where known.

    ``row`` is the 1-based data row (the header is not a row); ``line`` is the
    1-based physical line in the file, when the source is a file.

    >>> str(DataError("expected a number, got 'abc'", file="a.csv", column="age", row=3, line=4))
    "a.csv, line 4 (row 3), column 'age': expected a number, got 'abc'"
    """

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        column: str | None = None,
        row: int | None = None,
        line: int | None = None,
        hint: str | None = None,
    ) -> None:
        self.message = message
        self.file = file
        self.column = column
        self.row = row
        self.line = line
        self.hint = hint
        super().__init__(self.__str__())

    def location(self) -> str:
        parts = []
        if self.file is not None:
            parts.append(str(self.file))
        if self.line is not None and self.row is not None:
            parts.append(f"line {self.line} (row {self.row})")
        elif self.line is not None:
            parts.append(f"line {self.line}")
        elif self.row is not None:
            parts.append(f"row {self.row}")
        if self.column is not None:
            parts.append(f"column {self.column!r}")
        return ", ".join(parts)

    def __str__(self) -> str:
        where = self.location()
        text = f"{where}: {self.message}" if where else self.message
        if self.hint:
            text += f" ({self.hint})"
        return text

    def to_dict(self) -> dict:
        """Machine-readable form, for ``--json`` output and HTTP error bodies."""
        return {
            "error": type(self).__name__,
            "message": self.message,
            "file": self.file,
            "column": self.column,
            "row": self.row,
            "line": self.line,
            "hint": self.hint,
        }


class ConfigError(DeepstrataError, ValueError):
    """An invalid option. ``option`` is the CLI flag / config key that was wrong."""

    def __init__(self, message: str, *, option: str | None = None) -> None:
        self.option = option
        self.message = message
        super().__init__(f"{option}: {message}" if option else message)


class BundleError(DeepstrataError):
    """A bundle that cannot be trusted or read: changed, missing or extra files."""

    def __init__(self, message: str, *, path: str | None = None) -> None:
        self.path = path
        self.message = message
        super().__init__(f"{path}: {message}" if path else message)


class MissingPackageError(DeepstrataError, ImportError):
    """An optional feature whose packages are not installed; names the extra that brings them."""

    def __init__(self, message: str, *, extra: str) -> None:
        self.extra = extra
        super().__init__(f"{message}: pip install 'deepstrata[{extra}]'")


class DataWarning(UserWarning):
    """Data that was handled but deserves a look (unseen categories, dropped rows)."""


class TrainingError(DeepstrataError):
    """Training could not produce a usable model (e.g. the loss diverged from the start)."""


class CheckpointError(TrainingError):
    """A checkpoint that cannot be trusted: missing, cut off while being written, or changed."""

    def __init__(self, message: str, *, path: str | None = None) -> None:
        self.path = path
        self.message = message
        super().__init__(f"{path}: {message}" if path else message)


class DistributedError(DeepstrataError):
    """Several processes could not train together: a backend this machine lacks, a
    rendezvous out of reach, a process that failed (naming the rank and what to resume)."""
