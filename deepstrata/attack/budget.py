"""Attack budgets as people write them: ``8/255``, ``0.03``, ``2/255,4/255,8/255``.

No torch here: the configuration checks ``fit --epsilon`` with it.

>>> parse_epsilons("2/255,0.1")
[0.00784313725490196, 0.1]
>>> parse_epsilon("4/255") == 4 / 255
True
"""

from __future__ import annotations

from collections.abc import Mapping

from deepstrata.errors import ConfigError

MAX_EPSILON = 1.0  # a whole pixel range, or one inter-quartile range: beyond it no input is left


def parse_epsilon(text: str | float, *, option: str = "--epsilon") -> float:
    """One budget, a number or a fraction ``A/B``; ConfigError naming ``option`` otherwise,
    or when it lies outside (0, 1] (pixels are in [0, 1]; numbers move by fractions of
    their inter-quartile range)."""
    if isinstance(text, int | float) and not isinstance(text, bool):
        value = float(text)
    else:
        top, slash, bottom = str(text).strip().partition("/")
        try:
            value = float(top) / float(bottom) if slash else float(top)
        except (ValueError, ZeroDivisionError):
            raise ConfigError(
                f"expected a number or a fraction such as 8/255, got {text!r}", option=option
            ) from None
    if not 0 < value <= MAX_EPSILON:
        hint = f" (did you mean {text}/255? pixels are in [0, 1])" if value > 1 else ""
        raise ConfigError(
            f"epsilon must be in (0, 1] in the input's own units: pixels in [0, 1], numbers "
            f"as a fraction of their inter-quartile range; got {text}{hint}",
            option=option,
        )
    return value


def parse_epsilons(text: str | float | list, *, option: str = "--epsilon") -> list[float]:
    """A comma-separated list of budgets (or a list), each checked by :func:`parse_epsilon`."""
    parts = text if isinstance(text, list | tuple) else str(text).split(",")
    parts = [part for part in parts if str(part).strip()]
    if not parts:
        raise ConfigError("expected at least one epsilon, such as 8/255", option=option)
    return [parse_epsilon(part, option=option) for part in parts]


def check_epsilon(value, values: Mapping) -> str | None:
    """``fit --epsilon``'s constraint (see :class:`deepstrata.options.Lazy`)."""
    if value is None:
        return None
    try:
        parse_epsilon(value)
    except ConfigError as error:
        return str(error).removeprefix("--epsilon: ")
    return None
