"""Command-line flags made from option specs (:mod:`deepstrata.options`): one typed flag
per option, its help ending in the default, as LitGPT turns typed arguments into a CLI.

:func:`option_parameters` gives the ``inspect.Parameter`` of each option for a
command's signature (typer reads the signature); the command then receives each flag's
text or value, or None when it was not given, and hands them to the configuration,
which parses and checks them once.
"""

from __future__ import annotations

import inspect
from typing import Annotated

import typer

from deepstrata.options import Option

__all__ = ["given", "numbers", "option_parameters"]

_TYPES = {"int": int, "float": float, "str": str}  # list and auto options arrive as text


def option_parameters(options) -> list[inspect.Parameter]:
    """A keyword-only parameter per option, defaulting to "not given" (None, or False for
    an off-by-default switch)."""
    parameters = []
    for option in options:
        parameters.append(
            inspect.Parameter(
                option.name,
                inspect.Parameter.KEYWORD_ONLY,
                default=False if _switch(option) else None,
                annotation=_annotation(option),
            )
        )
    return parameters


def _switch(option: Option) -> bool:
    return option.type == "bool" and option.default is False


def _annotation(option: Option):
    text = f"{option.help} [{option.described_default()}]"
    if _switch(option):
        return Annotated[bool, typer.Option(option.flag, help=option.help)]
    if option.type == "bool":
        flag = option.flag
        return Annotated[
            bool | None, typer.Option(f"{flag}/--no-{flag[2:]}", help=text, show_default=False)
        ]
    kind = _TYPES.get(option.type, str)
    return Annotated[kind | None, typer.Option(option.flag, help=text, show_default=False)]


def given(values: dict, options: dict[str, Option] | None = None) -> dict:
    """The flags the user gave: not None, and off-by-default switches only when on. A
    ``--x/--no-x`` flag whose default is not False (``--no-ensemble``) gives False, and
    False is kept: it was said. ``options``: name -> Option of ``values`` (none: no flag is
    tri-state)."""
    options = options or {}
    return {
        name: value
        for name, value in values.items()
        if value is not None
        and (value is not False or (name in options and not _switch(options[name])))
    }


def numbers(text: str | None, kind: type, option: str) -> list | None:
    """``"0.1,0.5"`` -> ``[0.1, 0.5]``; a ConfigError naming ``option`` otherwise."""
    from deepstrata.errors import ConfigError

    if text is None:
        return None
    try:
        return [kind(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise ConfigError(
            f"expected comma-separated {kind.__name__}s, got {text!r}", option=option
        ) from None
