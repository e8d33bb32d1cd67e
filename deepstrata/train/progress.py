"""Training progress: a live bar on a terminal, plain lines anywhere else.

Written to stderr so that stdout stays clean for results. When stderr is not a
terminal (CI, a log file, a pipe) a line is printed for the first epoch, then
at most one every ``line_interval`` seconds, and for the last epoch.
"""

from __future__ import annotations

import sys
import time

from deepstrata.train.callbacks import Callback


def _format(record: dict) -> str:
    parts = []
    for key, value in record.items():
        if key in ("epoch", "seconds"):
            continue
        parts.append(f"{key} {value:.4g}" if isinstance(value, float) else f"{key} {value}")
    return "  ".join(parts)


def _choices(trainer) -> list[str]:
    lines = []
    sweep = getattr(trainer, "range_test", None)
    if sweep is not None:
        lines.append(f"learning rate {sweep.suggestion:.3g} from the range test ({sweep.rule})")
    probe = getattr(trainer, "precision_probe", None)
    if probe is not None:
        lines.append(
            f"precision {probe['choice']}: reduced precision {probe['speedup']:.2f}x "
            f"float32's speed ({probe['rule']})"
        )
    return lines


class Progress(Callback):
    """``start(total)``, ``update(record)`` after each epoch, ``close(message)``.

    As a callback it follows the trainer's events; the trainer also closes it when
    training fails, so a live bar never swallows the error that follows.
    """

    def __init__(self, *, enabled: bool = True, line_interval: float = 2.0, stream=None) -> None:
        self.enabled = enabled
        self.stream = stream or sys.stderr
        self.line_interval = line_interval
        self.live = enabled and hasattr(self.stream, "isatty") and self.stream.isatty()
        self._bar = None
        self._task = None
        self._last_line = 0.0
        self._start = 0.0
        self._total = 0
        self._done = 0

    def on_fit_start(self, trainer) -> None:
        """Say what the run chose before the first epoch, then start the bar."""
        if self.enabled:
            for line in _choices(trainer):
                print(line, file=self.stream, flush=True)
        self.start(trainer.epochs, time_limit=trainer.time_limit, done=len(trainer.history.epochs))

    def on_epoch_end(self, trainer, record: dict) -> None:
        self.update(record)

    def on_fit_end(self, trainer, history) -> None:
        self.close(
            f"{history.stopped}; best epoch {history.best_epoch} "
            f"(loss {history.best_validation_loss:.4g}"
            + (
                f", {history.monitor} {abs(history.best_score):.4g}"
                if history.monitor != "loss"
                else ""
            )
            + f"), {history.seconds:.1f}s"
        )

    def start(self, total_epochs: int, *, time_limit: float | None = None, done: int = 0) -> None:
        """``done``: epochs a resumed run has behind it already."""
        self._start = time.perf_counter()
        self._total = total_epochs
        self._done = done
        self._time_limit = time_limit
        if not self.enabled or not self.live:
            return
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        self._bar = Progress(
            TextColumn("epoch"),
            MofNCompleteColumn(),
            BarColumn(),
            TextColumn("{task.fields[metrics]}"),
            TimeElapsedColumn(),
            TextColumn("eta ≤ {task.fields[eta]}"),
            console=Console(file=self.stream),
            transient=False,
            # The bar moves once an epoch and the clock once a second: redrawing more
            # often only takes a core from training (2 cores: a third busy thread).
            refresh_per_second=2,
        )
        self._bar.start()
        self._task = self._bar.add_task(
            "train", total=total_epochs, completed=done, metrics="", eta="?"
        )

    def eta(self, epoch: int) -> float:
        """Upper bound on the seconds left: early stopping can only make it shorter."""
        elapsed = time.perf_counter() - self._start
        left = elapsed / max(epoch - self._done, 1) * (self._total - epoch)
        if self._time_limit is not None:
            left = min(left, max(self._time_limit - elapsed, 0.0))
        return left

    def update(self, record: dict) -> None:
        if not self.enabled:
            return
        epoch = record["epoch"]
        eta = self.eta(epoch)
        if self._bar is not None:
            self._bar.update(
                self._task, completed=epoch, metrics=_format(record), eta=f"{eta:.0f}s"
            )
            return
        now = time.perf_counter()
        if (
            epoch == self._done + 1
            or epoch == self._total
            or now - self._last_line >= self.line_interval
        ):
            self._last_line = now
            print(
                f"epoch {epoch}/{self._total}  {_format(record)}  {now - self._start:.1f}s  eta ≤ {eta:.0f}s",
                file=self.stream,
                flush=True,
            )

    def note(self, line: str) -> None:
        """A line about what the run is doing or chose (not an epoch)."""
        if self.enabled:
            print(line, file=self.stream, flush=True)

    def close(self, message: str = "") -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
        if self.enabled and message:
            print(message, file=self.stream, flush=True)
