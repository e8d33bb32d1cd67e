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
from deepstrata.errors import ConfigError, DistributedError
from deepstrata.search.pruning import PruningCallback
from deepstrata.search.space import LR_FACTOR, Context, SearchSpace, to_options
from deepstrata.search.study import BASELINE

__all__ = ["FIXED_OBJECTIVES", "Objective", "check_objectives", "direction", "run_ticket"]

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
        processes: int = 1,
        url: str | None = None,
        pruner: tuple[str, int] = ("none", 1),
    ) -> None:
        self.data = data
        self.settings = settings
        self.space = space
        self.context = context
        self.objectives = objectives
        self.prune = prune and len(objectives) == 1
        self.sample_row = sample_row
        self.processes = processes  # ranks per trial (search --trial-nproc)
        self.url = url  # the study's storage, for the ranks
        self.pruner = pruner  # (name, max epochs): what rank 0 builds to ask

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
        config = self.config(trial)
        if self.processes > 1:  # the ranks fit; this process keeps the trial
            from deepstrata.search import ranks

            try:
                outcome = ranks.fit_on_ranks(self.ticket(trial, config), self.processes, self.url)
            except DistributedError as error:
                trial.set_user_attr(ranks.RANK_FAILURE, str(error))  # retried after it fails
                raise
        else:
            outcome = self.fit(config, trial)
        return self.settle(trial, config, outcome)

    def fit(self, config, trial, *, main: bool = True) -> dict:
        """Fit under ``config``, reporting each epoch to ``trial`` (None on a rank other
        than 0, which trains but neither reports nor measures); what :meth:`settle` needs,
        as JSON (it crosses from rank 0 to the worker)."""
        from deepstrata import api

        pruning = PruningCallback(trial, enabled=self.prune and trial is not None)
        start = time.perf_counter()
        model = api.fit(self.data, config=config, progress=False, callbacks=[pruning])
        seconds = time.perf_counter() - start
        history = model.metrics.get("history", {})
        outcome = {
            "seconds": seconds,
            "epochs": len(history.get("epochs", [])) or pruning.epochs,
            "learning_rate": _plain(model.metrics.get("learning_rate", {})),
            "pruned": pruning.pruned,
            "measures": None,
        }
        if main and pruning.pruned is None:
            outcome["measures"] = self.measure(model, history, seconds)
        return outcome

    def settle(self, trial, config, outcome: dict):
        """Record the fit's ``outcome`` on ``trial``: its value(s), or TrialPruned."""
        import optuna

        trial.set_user_attr("epochs", outcome["epochs"])
        trial.set_user_attr("train_seconds", round(outcome["seconds"], 3))
        trial.set_user_attr("config", _plain(config.to_dict()))
        rate = outcome["learning_rate"]
        if (
            rate.get("configured") == "auto"
            and rate.get("used")
            and SUGGESTION not in trial.study.user_attrs
        ):
            trial.study.set_user_attr(SUGGESTION, float(rate["used"]))
        if outcome["pruned"] is not None:
            trial.set_user_attr("pruned_at", outcome["pruned"])
            raise optuna.TrialPruned(f"pruned after epoch {outcome['pruned']}")
        measures = outcome["measures"]
        for name, value in measures.items():
            trial.set_user_attr(name, value)
        values = tuple(measures[name] for name in self.objectives)
        return values[0] if len(values) == 1 else values

    def ticket(self, trial, config) -> dict:
        """What the ranks of a trial need (:mod:`deepstrata.search.ranks`): the data, the
        fit configuration sampled here, the objectives and the pruner rank 0 asks."""
        return {
            "study": trial.study.study_name,
            "trial_id": trial._trial_id,  # Optuna's id of the trial (no public accessor)
            "number": trial.number,
            "data": str(self.data),
            "config": _plain(config.to_dict()),
            "objectives": self.objectives,
            "prune": self.prune,
            "pruner": self.pruner[0],
            "max_epochs": self.pruner[1],
            "latency": self.sample_row is not None or "latency_ms" in self.objectives,
        }

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


def run_ticket(path) -> None:
    """One rank's part of a trial fitted on several processes (``search --run-trial
    TICKET``, which torchrun starts once per rank; :mod:`deepstrata.search.ranks`)."""
    from deepstrata.config import FitConfig
    from deepstrata.errors import DeepstrataError
    from deepstrata.search import ranks
    from deepstrata.train import distributed as dist

    ticket = ranks.read_ticket(path)
    main = dist.is_main()
    latency = ticket["latency"] and main  # measured on rank 0 only
    row = sample_row(ticket["data"], ticket["config"].get("target")) if latency else None
    objective = Objective(ticket["data"], {}, SearchSpace({}), Context(), ticket["objectives"],
                          prune=ticket["prune"], sample_row=row)  # fmt: skip
    try:
        config = FitConfig.from_dict(ticket["config"], source=f"trial {ticket['number']}")
        trial = ranks.rank_trial(ticket) if main else None
        outcome = objective.fit(config, trial, main=main)
    except DeepstrataError as error:
        # A named error fails the trial with its message, not retried (the same decisions
        # would fail again); a rendezvous that broke is a fault, retried like a dead rank.
        if main and not isinstance(error, DistributedError):
            ranks.write_result(ticket, {"error": str(error)})
        raise
    if main:
        ranks.write_result(ticket, outcome)


def sample_row(data, target):
    """The data's first row without the target: what ``latency_ms`` predicts."""
    from deepstrata.data.sources import read_table

    frame = read_table(data).frame
    return frame.drop(columns=[target], errors="ignore").head(1)
