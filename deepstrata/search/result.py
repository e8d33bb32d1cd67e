"""What a search found, as plain data (``search.json``): every trial, the best one (or
the Pareto front of several objectives and the one picked from it), the default
configuration's result, pruning's savings and the decisions' importances.

``--pick fastest-within 0.01`` takes, from the Pareto front, the trial best on the
second objective among those within 0.01 of the best first objective.

>>> parse_pick("fastest-within 0.01")
('fastest-within', 0.01)
"""

from __future__ import annotations

import math

from deepstrata.errors import ConfigError
from deepstrata.search.pruning import savings
from deepstrata.search.study import QUEUED, SURPLUS, counts

__all__ = ["best_options", "parse_pick", "pick", "summarise"]

PICKS = ("best", "fastest-within")


def parse_pick(text: str | None) -> tuple[str, float]:
    """``"fastest-within 0.01"`` -> ``("fastest-within", 0.01)``; ConfigError naming --pick."""
    if text is None or text.strip() == "best":
        return "best", 0.0
    rule, _, amount = text.replace("=", " ").strip().partition(" ")
    if rule != "fastest-within":
        raise ConfigError(f"expected best or fastest-within AMOUNT, got {text!r}", option="--pick")
    try:
        tolerance = float(amount)
    except ValueError:
        raise ConfigError(
            f"expected a number after fastest-within, got {amount!r}", option="--pick"
        ) from None
    if not math.isfinite(tolerance) or tolerance < 0:
        raise ConfigError(f"the tolerance must be >= 0, got {amount}", option="--pick")
    return rule, tolerance


def _signed(values, directions):
    return [v if d == "minimize" else -v for v, d in zip(values, directions)]


def pick(front: list[dict], directions: list[str], rule: tuple[str, float]) -> dict:
    """The trial of ``front`` (entries with ``values``) that ``rule`` picks."""
    name, tolerance = rule
    scored = [(_signed(t["values"], directions), t) for t in front]
    best_first = min(s[0] for s, _ in scored)
    if name == "best" or len(directions) < 2:
        return min(scored, key=lambda pair: pair[0])[1]
    near = [(s, t) for s, t in scored if s[0] <= best_first + tolerance]
    return min(near, key=lambda pair: (pair[0][1], pair[0][0]))[1]


def _trial(trial, start) -> dict:
    return {
        "number": trial.number,
        "state": trial.state.name.lower(),
        "values": list(trial.values) if trial.values else None,
        "params": trial.params,
        "started": (trial.datetime_start - start).total_seconds() if trial.datetime_start else None,
        "finished": (trial.datetime_complete - start).total_seconds()
        if trial.datetime_complete
        else None,
        "epochs": trial.user_attrs.get("epochs"),
        "pruned_at": trial.user_attrs.get("pruned_at"),
        "measures": {
            k: trial.user_attrs[k]
            for k in trial.user_attrs
            if k in ("val_loss", "latency_ms", "params", "train_seconds") or k.startswith("val_")
        },
        "retry_of": trial.system_attrs.get("failed_trial"),
        "config": trial.user_attrs.get("config"),
    }


def summarise(study, search, rule: tuple[str, float] = ("best", 0.0)) -> dict:
    """``search.json``'s content for ``study`` (a finished or stopped search)."""
    trials = [t for t in study.get_trials(deepcopy=False) if not t.user_attrs.get(SURPLUS)]
    starts = [t.datetime_start for t in trials if t.datetime_start]
    start = min(starts) if starts else None
    listed = [_trial(t, start) for t in sorted(trials, key=lambda t: t.number)] if start else []
    complete = [t for t in listed if t["state"] == "complete" and t["values"]]
    front = _front(complete, search.directions)
    chosen = pick(front, search.directions, rule) if front else None
    baseline = next(
        (t for t in listed if t["number"] == _first_queued(trials) and t["values"]), None
    )
    return {
        "study": study.study_name,
        "data": search.data if isinstance(search.data, str) else "DataFrame",
        "target": search.settings.get("target"),
        "objectives": search.objectives,
        "directions": search.directions,
        "sampler": search.sampler,
        "sampler_reason": search.sampler_reason,
        "pruner": search.pruner,
        "trials_asked": search.trials,
        "counts": counts(study),
        "pruning": savings(trials),
        "trials": listed,
        "pareto_front": [t["number"] for t in front],
        "pick": {"rule": rule[0], "tolerance": rule[1]},
        "best": chosen,
        "baseline": baseline,
        "importances": importances(study) if len(complete) >= 3 else {},
        "space": search.space.to_dict(),
    }


def _first_queued(trials) -> int | None:
    queued = [t.number for t in trials if t.user_attrs.get(QUEUED)]
    return min(queued) if queued else None


def _front(trials: list[dict], directions: list[str]) -> list[dict]:
    """The trials no other trial dominates (all of them at least as good, one better)."""
    scored = [(_signed(t["values"], directions), t) for t in trials]
    front = []
    for s, t in scored:
        dominated = any(
            all(a <= b for a, b in zip(o, s)) and any(a < b for a, b in zip(o, s))
            for o, _ in scored
        )
        if not dominated:
            front.append(t)
    return sorted(front, key=lambda t: _signed(t["values"], directions))


def importances(study) -> dict:
    """Each decision's share of the first objective's variance (Optuna's fANOVA); empty
    when the trials are too few or too alike to tell."""
    import warnings

    import optuna

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # experimental-feature and few-trials notices
            found = optuna.importance.get_param_importances(
                study, target=(lambda t: t.values[0]) if len(study.directions) > 1 else None
            )
    except (RuntimeError, ValueError, ZeroDivisionError):
        return {}
    return {name: round(float(value), 4) for name, value in found.items()}


def best_options(summary: dict, settings: dict, defaults: dict) -> dict:
    """The picked trial's configuration as ``fit --config`` keys: what differs from the
    defaults (``settings`` given to the search are kept as given)."""
    best = summary.get("best")
    if not best:
        return {}
    config = dict(best.get("config") or {})
    options = {}
    for name, value in config.items():
        if name in settings or (name in defaults and value != defaults[name]):
            options[name] = value
    return options
