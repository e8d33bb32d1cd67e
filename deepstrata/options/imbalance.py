"""fit's options about rare classes: how training weighs them (``--imbalance``) and where
the decision threshold of a binary model sits (``--threshold``); :mod:`deepstrata.config`
joins them to its own. The work is in :mod:`deepstrata.tasks.imbalance`.

>>> parse_threshold("precision:0.9")
('precision', 0.9)
>>> parse_threshold("0.3"), parse_threshold("auto")
(('fixed', 0.3), ('auto', None))
"""

from __future__ import annotations

from deepstrata.errors import ConfigError
from deepstrata.options.spec import Choice, Option

# --imbalance: auto picks "weight" when a class is rare (see deepstrata.tasks.imbalance)
IMBALANCE = ("auto", "weight", "focal", "sample", "none")
THRESHOLD_HELP = (
    "Binary decision threshold: auto (F1 on validation when a class is rare, else 0.5), "
    "a probability (0.3), f1, precision:P (the lowest threshold reaching precision P) or "
    "cost:C (a missed positive costs C false alarms)."
)


def parse_threshold(value: str, option: str = "--threshold") -> tuple[str, float | None]:
    """``"auto"`` | ``"f1"`` | ``"0.3"`` | ``"precision:0.9"`` | ``"cost:10"`` -> (rule, number)."""
    text = str(value).strip().lower()
    if text in ("auto", "f1"):
        return text, None
    rule, _, number = text.partition(":")
    if not number:
        rule, number = "fixed", rule
    try:
        amount = float(number)
    except ValueError:
        amount = float("nan")
    if rule == "fixed" and 0 < amount < 1:
        return rule, amount
    if rule == "precision" and 0 < amount <= 1:
        return rule, amount
    if rule == "cost" and amount > 0:
        return rule, amount
    raise ConfigError(
        f"expected auto, f1, a probability in (0, 1), precision:P with P in (0, 1] or "
        f"cost:C with C > 0, got {value!r}",
        option=option,
    )


class ThresholdRule:
    """The constraint of ``--threshold`` (see :func:`parse_threshold`)."""

    def check(self, value, values) -> str | None:
        try:
            parse_threshold(value)
        except ConfigError as error:
            return str(error).split(": ", 1)[-1]
        return None

    def describe(self) -> str:
        return "auto | f1 | P | precision:P | cost:C"


OPTIONS = (
    Option(
        "imbalance",
        "auto",
        "Rare classes: weight (class-weighted loss), focal (focal loss), sample "
        "(oversample them), none; auto: weight when a class has under 1/9 of the "
        "largest's rows.",
        Choice(*IMBALANCE),
        group="training",
    ),
    Option("threshold", "auto", THRESHOLD_HELP, ThresholdRule(), type="str", group="training"),
)


def rule(config) -> None:
    """A threshold other than auto is a binary model's; a classifier's options are checked
    against the task once it is known (``check_for_task``)."""
    parse_threshold(config.threshold)
    if config.threshold != "auto" and config.fairness:
        raise ConfigError(
            "--fairness chooses a threshold per group already; leave --threshold at auto",
            option="--threshold",
        )


def check_for_task(config, task) -> None:
    """ConfigError when ``task`` (a :class:`~deepstrata.tasks.base.Task`) cannot honour
    ``--imbalance`` or ``--threshold``."""
    if config.imbalance not in ("auto", "none") and not task.weighs_classes:
        raise ConfigError(
            f"class weights and sampling are for binary and multiclass models; this task "
            f"is {task.name}",
            option="--imbalance",
        )
    if config.threshold != "auto" and not task.thresholded:
        raise ConfigError(
            f"a decision threshold is a binary classifier's; this task is {task.name}",
            option="--threshold",
        )
