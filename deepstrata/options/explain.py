"""fit's option to explain the model it made (:mod:`deepstrata.explain`): the global
importance saved with the bundle, for its report's "What drives the predictions"."""

from __future__ import annotations

from deepstrata.options.spec import Option

OPTIONS = (
    Option(
        "explain",
        False,
        "After fit: explain up to 200 training rows (the auto method) and save the global "
        "importance in the bundle, for its report's 'What drives the predictions'.",
        group="run",
    ),
)


def rule(config) -> None:
    """--explain relates to no other option (what it cannot explain is said after the fit)."""
