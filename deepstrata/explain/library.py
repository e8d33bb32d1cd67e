"""The explanation libraries are an optional extra: import them on first use, and say
how to install them when they are missing."""

from __future__ import annotations

import importlib

from deepstrata.errors import MissingPackageError


def require(module: str, package: str):
    """``importlib.import_module(module)``, or MissingPackageError naming the extra.

    >>> require("json", "json").dumps([1])
    '[1]'
    """
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise MissingPackageError(
            f"explaining with {package} needs it installed ({error})", extra="explain"
        ) from None
