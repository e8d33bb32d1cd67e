"""One trial: the decisions as ``fit`` options, a fit, and what it measured.

The objectives a search can weigh (``--objectives``, comma-separated, the first is the
one pruning watches): ``val_loss`` (the best epoch's validation loss), ``val_METRIC``
(a validation metric of the task, such as ``val_accuracy`` or ``val_r2``), ``latency_ms``
(one row through ``predict``, the median of 15), ``params`` (the network's parameter
count) and ``train_seconds``.

The learning rate is searched as a factor around the range test's suggestion: the first
trial (the default configuration) runs the range test and the study keeps what it
suggested; later trials train at ``factor x suggestion``.
"""

from __future__ import annotations

import statistics
import time

from deepstrata.config import OPTIONS
from deepstrata.errors import ConfigError
from deepstrata.search.pruning import PruningCallback
from deepstrata.search.space import LR_FACTOR, Context, SearchSpace, to_options
from deepstrata.search.study import BASELINE

__all__ = ["FIXED_OBJECTIVES", "Objective", "check_objectives", "direction"]

FIXED_OBJECTIVES = {
    "val_loss": "minimize",
    "latency_ms": "minimize",
    "params": "minimize",
    "train_seconds": "minimize",
}
SUGGESTION = "learning_rate_suggestion"  # the study's user attribute


def direction(objective: str) -> str:
    from deepstrata.evaluate.metrics import HIGHER_IS_BETTER

    if objective in FIXED_OBJECTIVES:
        return FIXED_OBJECTIVES[objective]
    return "maximize" if objective[4:] in HIGHER_IS_BETTER else "minimize"


def check_objectives(text: str | list, metrics: tuple[str, ...] | None = None) -> list[str]:
    """``"val_loss,latency_ms"`` -> the list; ConfigError naming --objectives for an
    unknown one (``metrics``: the task's validation metrics, when known)."""
    from deepstrata.evaluate.metrics import HIGHER_IS_BETTER

    names = [n.strip() for n in text.split(",")] if isinstance(text, str) else list(text)
    names = [n for n in names if n]
    known = set(FIXED_OBJECTIVES) | {
        f"val_{m}"
        for m in (metrics or HIGHER_IS_BETTER | {"rmse", "mae", "log_loss", "hamming_loss"})
    }
    if not names:
        raise ConfigError("expected at least one objective", option="--objectives")
    for name in names:
        if name not in known:
            raise ConfigError(
                f"unknown objective {name!r}; expected any of {', '.join(sorted(known))}",
                option="--objectives",
            )
    if len(set(names)) != len(names):
        raise ConfigError(f"an objective is named twice: {text}", option="--objectives")
    return names


class Objective:
    """``objective(trial) -> value or values``: fit ``data`` under ``settings`` plus the
    trial's decisions, measure ``objectives``. A pruned trial raises ``TrialPruned``."""

    def __init__(
        self,
        data,
        settings: dict,
        space: SearchSpace,
        context: Context,
        objectives: list[str],
        *,
        prune: bool = True,
        sample_row=None,
    ) -> None:
        self.data = data
        self.settings = settings
        self.space = space
        self.context = context
        self.objectives = objectives
        self.prune = prune and len(objectives) == 1
        self.sample_row = sample_row

    def config(self, trial):
        from deepstrata.config import FitConfig

        chosen = self.space.suggest(trial, self.context)
        options = {**self.settings, **to_options(chosen, self.space)}
        if trial.user_attrs.get(BASELINE):  # the default configuration, as fit would choose
            for name in [n for n in options if n not in self.settings]:
                if OPTIONS[name].default is None:  # chosen by fit (the batch size)
                    del options[name]
        suggestion = trial.study.user_attrs.get(SUGGESTION)
        factor = chosen.get(LR_FACTOR)
        if factor is not None and suggestion and options.get("learning_rate", "auto") == "auto":
            options["learning_rate"] = float(factor) * float(suggestion)
        return FitConfig.from_dict(options, source=f"trial {trial.number}")

    def __call__(self, trial):
        import optuna

        from deepstrata import api

        config = self.config(trial)
        pruning = PruningCallback(trial, enabled=self.prune)
        start = time.perf_counter()
        model = api.fit(self.data, config=config, progress=False, callbacks=[pruning])
        seconds = time.perf_counter() - start
        history = model.metrics.get("history", {})
        trial.set_user_attr("epochs", len(history.get("epochs", [])) or pruning.epochs)
        trial.set_user_attr("train_seconds", round(seconds, 3))
        trial.set_user_attr("config", _plain(config.to_dict()))
        rate = model.metrics.get("learning_rate", {})
        if (
            rate.get("configured") == "auto"
            and rate.get("used")
            and SUGGESTION not in trial.study.user_attrs
        ):
            trial.study.set_user_attr(SUGGESTION, float(rate["used"]))
        if pruning.pruned is not None:
            trial.set_user_attr("pruned_at", pruning.pruned)
            raise optuna.TrialPruned(f"pruned after epoch {pruning.pruned}")
        measures = self.measure(model, history, seconds)
        for name, value in measures.items():
            trial.set_user_attr(name, value)
        values = tuple(measures[name] for name in self.objectives)
        return values[0] if len(values) == 1 else values

    def measure(self, model, history: dict, seconds: float) -> dict:
        measures = {
            "val_loss": float(history.get("best_validation_loss", float("nan"))),
            "params": int(sum(_parameters(member) for member in model.members)),
            "train_seconds": round(seconds, 3),
        }
        for name, value in model.metrics.get("validation", {}).items():
            if isinstance(value, int | float):
                measures[f"val_{name}"] = float(value)
        if "latency_ms" in self.objectives or self.sample_row is not None:
            measures["latency_ms"] = latency_ms(model, self.sample_row)
        missing = [n for n in self.objectives if n not in measures]
        if missing:
            raise ConfigError(
                f"this task has no {', '.join(missing)}; its validation metrics: "
                + ", ".join(f"val_{n}" for n in model.metrics.get("validation", {})),
                option="--objectives",
            )
        return measures


def latency_ms(model, row) -> float:
    """Milliseconds ``model.predict`` takes for one row: the median of 15 after 2 warm-ups."""
    times = []
    for index in range(17):
        start = time.perf_counter()
        model.predict(row)
        if index >= 2:
            times.append((time.perf_counter() - start) * 1000)
    return round(statistics.median(times), 3)


def _parameters(member) -> int:
    network = getattr(member, "network", None)
    return sum(p.numel() for p in network.parameters()) if network is not None else 0


def _plain(values: dict) -> dict:
    """A config dict that JSON takes (tuples as lists)."""
    import json

    return json.loads(json.dumps(values, default=str))
