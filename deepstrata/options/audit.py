"""fit's options about fairness and labels (:mod:`deepstrata.audit`), and the rule relating
them to the others; :mod:`deepstrata.config` joins them to its own.

>>> [option.flag for option in OPTIONS][:2]
['--sensitive', '--audit-only']
"""

from __future__ import annotations

from deepstrata.errors import ConfigError
from deepstrata.options.spec import AtLeast, Choice, Option

# --fairness: the disparity group thresholds shrink (see deepstrata.calibrate.thresholds)
FAIRNESS = ("demographic_parity", "equalized_odds", "equal_opportunity")
FAIRNESS_METHODS = ("thresholds", "reweigh")  # post-processing | in-training weights


def parse_sensitive(value: str | list[str] | None, option: str = "--sensitive") -> list[str]:
    """``"sex,race"`` or ``["sex", "race"]`` -> ``["sex", "race"]`` (each named once)."""
    items = value.split(",") if isinstance(value, str) else list(value or [])
    columns = list(dict.fromkeys(item.strip() for item in items if item and item.strip()))
    if not columns:
        raise ConfigError("name at least one column, e.g. --sensitive sex,race", option=option)
    return columns


OPTIONS = (
    Option(
        "sensitive",
        None,
        "Columns to audit by, comma-separated (sex,race); they stay inputs.",
        type="str",
        optional=True,
        group="fairness",
    ),
    Option(
        "audit_only",
        None,
        "Sensitive columns kept out of the inputs (never needed to predict), audited only.",
        type="str",
        optional=True,
        group="fairness",
    ),
    Option(
        "fairness",
        None,
        " | ".join(FAIRNESS) + ": group thresholds (binary) chosen on held-out rows.",
        Choice(*FAIRNESS),
        type="str",
        optional=True,
        group="fairness",
        extra={"shown": "off"},
    ),
    Option(
        "fairness_method",
        "thresholds",
        "thresholds: group thresholds after training | reweigh: Kamiran-Calders row weights "
        "in the loss (label and group independent), trade-off over 3 strengths.",
        Choice(*FAIRNESS_METHODS),
        type="str",
        group="fairness",
    ),
    Option(
        "fairness_strength",
        10.0,
        "Thresholds maximise accuracy - strength x disparity (0: most accurate).",
        AtLeast(0),
        group="fairness",
        extra={"shown": "10"},
    ),
    Option(
        "min_group_size",
        30,
        "Sensitive groups with fewer rows are reported, not scored or given thresholds.",
        AtLeast(1),
        group="fairness",
    ),
    Option(
        "drop_label_issues",
        False,
        "With --folds: find likely label errors (cleanlab) and train without those rows.",
        group="fairness",
    ),
    Option(
        "relabel_issues",
        False,
        "With --folds: find likely label errors (cleanlab) and train with the suggested labels.",
        group="fairness",
    ),
)


def rule(config) -> None:
    """--fairness needs --sensitive; --drop-label-issues needs --folds (out-of-fold
    probabilities); reweighing trains one network on one split."""
    if config.audit_only:
        if config.fairness:
            raise ConfigError(
                "group thresholds need each row's group when predicting; an --audit-only "
                "column is not an input, so serving never sees it (use --sensitive)",
                option="--audit-only",
            )
        hidden = parse_sensitive(config.audit_only, option="--audit-only")
        named = parse_sensitive(config.sensitive) if config.sensitive else []
        config.ignore = list(dict.fromkeys([*config.ignore, *hidden]))
        config.sensitive = ",".join(dict.fromkeys([*named, *hidden]))
    if config.fairness and not config.sensitive:
        raise ConfigError(
            "group thresholds need the groups: add --sensitive COL[,COL]", option="--fairness"
        )
    if config.drop_label_issues and config.relabel_issues:
        raise ConfigError(
            "a likely label error is either dropped or relabelled; choose one",
            option="--relabel-issues",
        )
    if config.relabel_issues and not config.folds:
        raise ConfigError(
            "label errors are estimated from out-of-fold probabilities: add --folds K (e.g. 5)",
            option="--relabel-issues",
        )
    if config.drop_label_issues and not config.folds:
        raise ConfigError(
            "label errors are estimated from out-of-fold probabilities: add --folds K (e.g. 5)",
            option="--drop-label-issues",
        )
    if config.fairness_method == "reweigh" and not config.fairness:
        raise ConfigError(
            "reweighing needs the disparity to shrink: add --fairness equalized_odds (or "
            "demographic_parity, equal_opportunity)",
            option="--fairness-method",
        )
    if config.fairness_method == "reweigh" and config.fairness:
        if config.folds:
            raise ConfigError(
                "reweighing trains one network per strength on one validation split; "
                "leave out --folds (or use --fairness-method thresholds)",
                option="--fairness-method",
            )
        if config.ensemble:
            raise ConfigError(
                "reweighing weighs the network's loss; a classical member would ignore "
                "the weights: pass --no-ensemble",
                option="--fairness-method",
            )
        config.ensemble = False  # auto: the network alone carries the weights
