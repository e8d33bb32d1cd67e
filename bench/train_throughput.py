"""Training throughput: deepstrata's Trainer, bare and whole, against the textbook PyTorch loop.

Every loop trains the same module (deepstrata's ``Network``: a dense block of 50
floats -> MLP [256, 256] -> binary head, no dropout), freshly built from the
same seed for every run, on the same pre-built tensors, with the same batch
size, optimiser (AdamW, lr 1e-3, weight decay 1e-4 on weight matrices only, as
the Trainer decays), data order (the Trainer's order generator) and number of
epochs. Up to four loops, timed around the loop or ``fit`` only (building the
network, optimiser, Trainer and temporary directories is outside the timing):

* plain: the textbook loop (shuffled index tensor, slice, forward, loss,
  backward, ``AdamW`` step). The baseline every ratio divides by.
* bare: ``Trainer(..., schedule="constant", progress=None)``, no checkpoints,
  no callbacks. It does exactly the plain loop's arithmetic (the script prints
  the largest weight difference, which should be 0), so bare / plain is the cost
  of the Trainer's own bookkeeping (loss sum, finiteness and time-limit checks,
  early stopping). Target >= 0.95.
* engine: the whole engine as a user runs it: the default schedule (onecycle,
  stepped every batch), a real progress bar (``deepstrata.train.progress.Progress``),
  a checkpoint at every epoch end (``checkpoint_dir`` in a fresh
  ``tempfile.TemporaryDirectory``; atomic, fsync'ed, sha256'ed; the mid-epoch
  ``checkpoint_interval`` is left at its default 600 s, so none fire here) and
  ``MetricsLog`` writing ``metrics.jsonl`` beside it (fsync'ed per epoch).
  engine / plain is what the engine costs over the textbook loop. Target >= 0.90.
  The bar writes, by default, to ``os.devnull`` opened as a stream that says it
  is a terminal, so Progress draws its live rich bar (refresh thread at 10 Hz,
  every frame rendered and written) without drawing on the benchmark's output;
  ``--progress-to devnull`` gives it a plain file (one text line per epoch at
  most every 2 s), ``--progress-to stderr`` the real stderr.
* lightning (when ``lightning`` is importable): ``lightning.Trainer`` on the same
  ``Network`` wrapped in a ``LightningModule``, fed by a DataLoader whose sampler
  yields the Trainer's index batches (the same rows in the same order; batches
  are tensor slices, no per-row collation). By default it mirrors the engine:
  OneCycleLR with the Trainer's settings stepped per batch, its default progress
  bar (TQDM, redrawn every batch, sent to the same sink), a ``ModelCheckpoint``
  every epoch, a ``CSVLogger`` with the epoch loss and learning rate; the weights
  then match the engine's. ``--lightning bare`` switches all of that off and uses
  a constant rate, to set against bare. The ratio printed is engine / lightning
  (or bare / lightning): above 1 means deepstrata trains faster.

No loop validates: the plain loop has no validation set, and a validation pass
is the same forward maths in every loop, so it would only dilute the ratios.
The Trainer gets ``patience = epochs`` (so early stopping, watching the
training loss, can never end a run early) and an explicit learning rate
(``"auto"`` would add a range test). Runs are interleaved (plain, bare, engine,
lightning, plain, ...) so that a change in machine load hits all of them; the
ratios are taken within each repeat and the medians quoted.

    python bench/train_throughput.py                      # 100k x 3 epochs, 1M x 1 epoch, 5 repeats
    python bench/train_throughput.py --quick              # smoke run, seconds
    python bench/train_throughput.py --sizes 200000 --epochs 2 --repeats 3 --lightning off
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import importlib.util
import io
import logging
import math
import os
import sys
import tempfile
import warnings
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path

import torch
from _common import clock, filesystem_of, footer, header, int_list, median, set_threads
from torch import nn
from torch.nn import functional as F

from deepstrata.encoders.dense import DenseEncoder
from deepstrata.model.network import Network
from deepstrata.seeding import generator
from deepstrata.train.callbacks import MetricsLog
from deepstrata.train.checkpoint import has_checkpoint
from deepstrata.train.progress import Progress
from deepstrata.train.trainer import Trainer

FEATURES = 50
HIDDEN_DIMS = [256, 256]
LEARNING_RATE = 1e-3
WEIGHT_DECAY = 1e-4
SEED = 0
TARGET_BARE = 0.95  # bare Trainer / plain loop
TARGET_ENGINE = 0.90  # whole engine / plain loop
PCT_START = 0.3  # the Trainer's onecycle warm-up share (deepstrata.train.schedules)
LIGHTNING_INSTALL = "pip install lightning --find-links /opt/wheels"


def make_data(rows: int, seed: int = SEED) -> tuple[torch.Tensor, torch.Tensor]:
    """``x`` (rows, 50) float32 and a 0/1 float32 target ``y`` (rows,) from a fixed rule."""
    gen = torch.Generator().manual_seed(seed)
    weights = torch.randn(FEATURES, generator=gen)
    x = torch.randn(rows, FEATURES, generator=gen)
    score = (
        x @ weights / FEATURES**0.5  # linear part
        + torch.sin(2.0 * x[:, 0]) * x[:, 1]  # an interaction
        + 0.5 * (x[:, 2] ** 2 - 1.0)  # a curvature
    )
    noise = 0.3 * torch.randn(rows, generator=gen)
    y = (score + noise > 0).float()
    return x, y


def new_network() -> Network:
    """The benchmarked module, with weights that depend only on SEED."""
    torch.manual_seed(SEED)
    return Network(
        encoders={"number": DenseEncoder(width=FEATURES)},
        hidden_dims=HIDDEN_DIMS,
        dropout=0.0,
        task="binary",
    )


def new_optimizer(network: nn.Module) -> torch.optim.AdamW:
    """AdamW with weight decay on weight matrices only, biases undecayed, as the Trainer builds it."""
    parameters = list(network.parameters())
    return torch.optim.AdamW(
        [
            {"params": [p for p in parameters if p.ndim > 1], "weight_decay": WEIGHT_DECAY},
            {"params": [p for p in parameters if p.ndim <= 1], "weight_decay": 0.0},
        ],
        lr=LEARNING_RATE,
    )


class TerminalSink(io.TextIOWrapper):
    """``os.devnull`` that says it is a terminal: a progress bar draws in full, nobody sees it."""

    def isatty(self) -> bool:
        return True


@contextlib.contextmanager
def progress_stream(choice: str) -> Iterator[io.TextIOBase]:
    """Where the progress bars write: ``terminal`` (default), ``devnull`` or ``stderr``."""
    if choice == "stderr":
        yield sys.stderr
        return
    raw = open(os.devnull, "wb")  # noqa: SIM115 - closed by the wrapper below
    kind = TerminalSink if choice == "terminal" else io.TextIOWrapper
    with kind(raw, encoding="utf-8", write_through=True) as stream:
        yield stream


# -- the loops -----------------------------------------------------------------------------------
def train_plain(
    network: Network, x: torch.Tensor, y: torch.Tensor, *, epochs: int, batch_size: int
) -> float:
    """The textbook loop; returns the seconds it took."""
    optimizer = new_optimizer(network)
    order_generator = generator(SEED, stream=1)  # the Trainer's data order, for a like-for-like run
    rows = x.shape[0]
    start = clock()
    for _ in range(epochs):
        network.train()
        order = torch.randperm(rows, generator=order_generator)
        for begin in range(0, rows, batch_size):
            index = order[begin : begin + batch_size]
            output = network({"number": x[index]})  # (B,) logits
            loss = F.binary_cross_entropy_with_logits(output, y[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    network.eval()
    return clock() - start


def train_bare(
    network: Network, x: torch.Tensor, y: torch.Tensor, *, epochs: int, batch_size: int
) -> float:
    """deepstrata's Trainer as the plain loop: constant rate, no bar, checkpoint or callback."""
    trainer = Trainer(
        network,
        loss_fn=network.loss,
        learning_rate=LEARNING_RATE,
        weight_decay=WEIGHT_DECAY,
        schedule="constant",  # the plain loop's rate
        batch_size=batch_size,
        max_epochs=epochs,
        patience=epochs,  # the first epoch always improves, so at most epochs - 1 without
        seed=SEED,
        progress=None,
    )
    start = clock()
    trainer.fit({"number": x}, y)
    return clock() - start


def train_engine(
    network: Network,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    epochs: int,
    batch_size: int,
    progress_to: str,
    temp_root: str | None,
) -> float:
    """The whole engine: onecycle, live progress bar, a checkpoint per epoch, metrics.jsonl."""
    with (
        tempfile.TemporaryDirectory(prefix="deepstrata-bench-", dir=temp_root) as run_dir,
        progress_stream(progress_to) as stream,
    ):
        run_dir = Path(run_dir)
        trainer = Trainer(
            network,
            loss_fn=network.loss,
            learning_rate=LEARNING_RATE,
            weight_decay=WEIGHT_DECAY,
            # schedule: the default, "onecycle", as a user gets it
            batch_size=batch_size,
            max_epochs=epochs,
            patience=epochs,
            seed=SEED,
            checkpoint_dir=run_dir / "checkpoint",  # every epoch; checkpoint_interval: default
            callbacks=[MetricsLog(run_dir / "metrics.jsonl")],
            progress=Progress(stream=stream),
        )
        start = clock()
        trainer.fit({"number": x}, y)
        seconds = clock() - start
        # The engine did its work: one line per epoch, a committed checkpoint.
        lines = (run_dir / "metrics.jsonl").read_text(encoding="utf-8").splitlines()
        if len(lines) != epochs or not has_checkpoint(run_dir / "checkpoint"):
            raise RuntimeError(f"engine run left {len(lines)} metrics lines / no checkpoint")
    return seconds


# -- Lightning (optional) --------------------------------------------------------------------------
def lightning_version() -> str | None:
    if importlib.util.find_spec("lightning") is None:
        return None
    import lightning

    return lightning.__version__


def quiet_lightning() -> None:
    """Lightning's banner lines (GPU available, tips) and its advice on DataLoader workers
    (the batches are tensor slices in the main process, on purpose) and logging intervals
    (metrics are logged per epoch) would drown the figures."""
    import lightning  # noqa: F401 - its import sets its loggers to INFO: quieten them after

    for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", message=r".*does not have many workers.*")
    warnings.filterwarnings("ignore", message=r".*LitLogger.*")
    warnings.filterwarnings("ignore", message=r".*smaller than the logging interval.*")
    warnings.filterwarnings("ignore", message=r".*treespec, LeafSpec.*")  # Lightning vs torch 2.13


class IndexBatches(torch.utils.data.Sampler):
    """The Trainer's batches: one shuffle per epoch from its order generator, sliced."""

    def __init__(self, rows: int, batch_size: int) -> None:
        self.rows, self.batch_size = rows, batch_size
        self.generator = generator(SEED, stream=1)

    def __len__(self) -> int:
        return math.ceil(self.rows / self.batch_size)

    def __iter__(self) -> Iterator[torch.Tensor]:
        order = torch.randperm(self.rows, generator=self.generator)
        for begin in range(0, self.rows, self.batch_size):
            yield order[begin : begin + self.batch_size]


class TensorRows(torch.utils.data.Dataset):
    """``dataset[index_tensor]`` -> ``({"number": x[index]}, y[index])``: a whole batch at once."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.x, self.y = x, y

    def __len__(self) -> int:
        return self.x.shape[0]

    def __getitem__(self, index: torch.Tensor) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        return {"number": self.x[index]}, self.y[index]


def train_lightning(
    network: Network,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    epochs: int,
    batch_size: int,
    mode: str,
    progress_to: str,
    temp_root: str | None,
) -> float:
    """``lightning.Trainer(...).fit``: ``mode`` "engine" mirrors the whole engine, "bare" the bare one."""
    import lightning as L
    from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint
    from lightning.pytorch.loggers import CSVLogger

    whole = mode == "engine"
    rows = x.shape[0]
    total_steps = epochs * math.ceil(rows / batch_size)

    class Module(L.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.network = network

        def training_step(self, batch, batch_index):
            inputs, target = batch
            loss = self.network.loss(self.network(inputs), target)
            if whole:  # the epoch's mean loss, as the Trainer's record has it
                self.log(
                    "loss",
                    loss,
                    on_epoch=True,
                    on_step=False,
                    prog_bar=True,
                    batch_size=len(target),
                )
            return loss

        def configure_optimizers(self):
            optimizer = new_optimizer(self.network)
            if not whole:
                return optimizer
            # The Trainer's onecycle (deepstrata.train.schedules.build_schedule), stepped per batch.
            schedule = torch.optim.lr_scheduler.OneCycleLR(
                optimizer,
                max_lr=[group["lr"] for group in optimizer.param_groups],
                total_steps=total_steps,
                pct_start=PCT_START,
                anneal_strategy="cos",
                cycle_momentum=True,
            )
            return {
                "optimizer": optimizer,
                "lr_scheduler": {"scheduler": schedule, "interval": "step"},
            }

    loader = torch.utils.data.DataLoader(
        TensorRows(x, y), sampler=IndexBatches(rows, batch_size), batch_size=None
    )
    with (
        tempfile.TemporaryDirectory(prefix="lightning-bench-", dir=temp_root) as run_dir,
        progress_stream(progress_to) as stream,
    ):
        trainer = L.Trainer(
            accelerator="cpu",
            devices=1,
            precision="32-true",
            max_epochs=epochs,
            default_root_dir=run_dir,
            enable_model_summary=False,
            num_sanity_val_steps=0,
            enable_progress_bar=whole,
            enable_checkpointing=whole,
            logger=CSVLogger(run_dir) if whole else False,
            callbacks=[
                ModelCheckpoint(dirpath=Path(run_dir) / "checkpoints"),  # every epoch, the latest
                LearningRateMonitor(logging_interval="epoch"),
            ]
            if whole
            else [],
        )
        module = Module()
        # TQDMProgressBar writes to whatever sys.stdout is when the bar is made.
        with contextlib.redirect_stdout(stream):
            start = clock()
            trainer.fit(module, train_dataloaders=loader)
            seconds = clock() - start
    network.eval()
    return seconds


@torch.no_grad()
def largest_weight_difference(a: Network, b: Network) -> float:
    return max(
        float((pa - pb).abs().max()) for pa, pb in zip(a.parameters(), b.parameters(), strict=True)
    )


# -- the comparison --------------------------------------------------------------------------------
Loop = Callable[..., float]


def run_size(
    rows: int, *, epochs: int, batch_size: int, repeats: int, loops: dict[str, Loop], threads: int
) -> dict[str, float]:
    """Print one line per repeat, the medians and the best runs; returns the median ratios."""
    x, y = make_data(rows)
    samples = rows * epochs
    print(
        f"\n{rows:,} rows x {FEATURES} features, {epochs} epoch{'s' * (epochs > 1)}, "
        f"batch {batch_size}, {samples:,} samples per run, positive share {float(y.mean()):.2f}"
    )
    lightning_against = "engine" if "engine" in loops else "bare"
    rates: dict[str, list[float]] = {name: [] for name in loops}
    ratios: dict[str, list[float]] = {"bare": [], "engine": [], "lightning": []}
    networks: dict[str, Network] = {}
    for repeat in range(1, repeats + 1):
        for name, loop in loops.items():
            networks[name] = new_network()
            torch.set_num_threads(threads)  # in case a loop (Lightning) changed it
            gc.collect()
            rates[name].append(
                samples / loop(networks[name], x, y, epochs=epochs, batch_size=batch_size)
            )
        plain = rates["plain"][-1]
        parts = [f"plain {plain:>9,.0f}/s"]
        for name in ("bare", "engine"):
            ratios[name].append(rates[name][-1] / plain)
            parts.append(f"{name} {rates[name][-1]:>9,.0f}/s {ratios[name][-1]:.3f}")
        if "lightning" in loops:
            ratios["lightning"].append(rates[lightning_against][-1] / rates["lightning"][-1])
            parts.append(
                f"lightning {rates['lightning'][-1]:>9,.0f}/s "
                f"({lightning_against}/lightning {ratios['lightning'][-1]:.3f})"
            )
        print(f"  repeat {repeat}: " + " | ".join(parts), flush=True)

    result = {name: median(values) for name, values in ratios.items() if values}
    verdict = {
        name: "met" if result[name] >= target else "MISSED"
        for name, target in (("bare", TARGET_BARE), ("engine", TARGET_ENGINE))
    }
    line = (
        f"  median: plain {median(rates['plain']):,.0f} samples/s; "
        f"bare/plain {result['bare']:.3f} (target >= {TARGET_BARE}: {verdict['bare']}); "
        f"engine/plain {result['engine']:.3f} (target >= {TARGET_ENGINE}: {verdict['engine']})"
    )
    if "lightning" in loops:
        line += (
            f"; lightning {median(rates['lightning']):,.0f} samples/s, "
            f"{lightning_against}/lightning {result['lightning']:.3f}"
        )
    print(line)
    # Load from elsewhere only ever slows a run down, so the fastest run of each
    # loop is the least disturbed one: a second, noise-resistant reading.
    best = {name: max(values) for name, values in rates.items()}
    line = (
        f"  best:   plain {best['plain']:,.0f} samples/s; bare/plain {best['bare'] / best['plain']:.3f}; "
        f"engine/plain {best['engine'] / best['plain']:.3f}"
    )
    if "lightning" in loops:
        line += f"; {lightning_against}/lightning {best[lightning_against] / best['lightning']:.3f}"
    print(line)
    # Same seed, data order and arithmetic: these weights should agree (the Trainer
    # restores its best epoch by training loss, which is nearly always the last).
    checks = [f"plain vs bare {largest_weight_difference(networks['plain'], networks['bare']):.1e}"]
    if "lightning" in loops:
        difference = largest_weight_difference(networks[lightning_against], networks["lightning"])
        checks.append(f"{lightning_against} vs lightning {difference:.1e}")
    print(f"  largest |weight difference| after the last repeat: {', '.join(checks)}")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--sizes", type=int_list, default=None, help="rows per data set, e.g. 100000,1000000"
    )
    parser.add_argument(
        "--epochs",
        type=int_list,
        default=None,
        help="epochs per size, one value for all or one per size (default 3,1)",
    )
    parser.add_argument(
        "--repeats", type=int, default=None, help="timed rounds per size (default 5)"
    )
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument(
        "--threads", type=int, default=None, help="torch threads (default: all cores)"
    )
    parser.add_argument(
        "--progress-to",
        choices=["terminal", "devnull", "stderr"],
        default="terminal",
        help="where the progress bars write: os.devnull posing as a terminal (live bar, "
        "default), os.devnull as a plain file (text lines), or the real stderr",
    )
    parser.add_argument(
        "--lightning",
        choices=["engine", "bare", "off"],
        default="engine",
        help="Lightning's Trainer mirroring the whole engine (default), the bare one, or not run",
    )
    parser.add_argument(
        "--temp-dir",
        default=None,
        help="where the runs' checkpoint directories go (default: the system temp dir)",
    )
    parser.add_argument("--quick", action="store_true", help="smoke run: tiny sizes, 1 repeat")
    args = parser.parse_args()

    sizes = args.sizes or ([4_096, 16_384] if args.quick else [100_000, 1_000_000])
    epochs = args.epochs or ([1] if args.quick else [3, 1])
    repeats = args.repeats or (1 if args.quick else 5)
    if len(epochs) == 1:
        epochs = epochs * len(sizes)
    if len(epochs) != len(sizes):
        parser.error(
            f"--epochs: expected 1 or {len(sizes)} values (one per size), got {len(epochs)}"
        )

    threads = set_threads(args.threads)
    print(
        header(
            "train throughput: deepstrata Trainer (bare, whole engine) vs plain PyTorch loop",
            threads,
        )
    )
    temp_root = args.temp_dir or tempfile.gettempdir()
    print(
        f"# model: Network(DenseEncoder({FEATURES}) -> MLP {HIDDEN_DIMS} -> binary head), dropout 0, "
        f"AdamW lr {LEARNING_RATE:g} wd {WEIGHT_DECAY:g} (weight matrices), no validation, patience = epochs"
    )
    bar = {
        "terminal": "live rich bar into os.devnull posing as a terminal",
        "devnull": "text lines into os.devnull",
        "stderr": "stderr"
        + (" (a terminal: live bar)" if sys.stderr.isatty() else " (text lines)"),
    }[args.progress_to]
    print(
        "# bare: Trainer, schedule constant, progress None, no checkpoints, no callbacks\n"
        f"# engine: Trainer, schedule onecycle (default), Progress ({bar}), checkpoint every epoch "
        f"under {temp_root} ({filesystem_of(temp_root)}), MetricsLog"
    )

    loops: dict[str, Loop] = {
        "plain": train_plain,
        "bare": train_bare,
        "engine": partial(train_engine, progress_to=args.progress_to, temp_root=temp_root),
    }
    version = lightning_version()
    if args.lightning == "off":
        print("# lightning: off (--lightning off)")
    elif version is None:
        print(f"lightning not installed: skipped ({LIGHTNING_INSTALL})")
    else:
        quiet_lightning()
        loops["lightning"] = partial(
            train_lightning, mode=args.lightning, progress_to=args.progress_to, temp_root=temp_root
        )
        mirror = (
            "OneCycleLR per step, TQDMProgressBar (same sink), ModelCheckpoint every epoch, "
            "CSVLogger + LearningRateMonitor: mirrors engine"
            if args.lightning == "engine"
            else "constant rate, no progress bar, checkpointing or logger: mirrors bare"
        )
        print(f"# lightning {version}: lightning.Trainer, the Trainer's index batches; {mirror}")

    # Warm-up: first calls pay for kernel selection, allocator growth and imports.
    x, y = make_data(min(16_384, max(sizes)))
    for loop in loops.values():
        loop(new_network(), x, y, epochs=1, batch_size=args.batch_size)
    del x, y

    results = {
        rows: run_size(
            rows,
            epochs=count,
            batch_size=args.batch_size,
            repeats=repeats,
            loops=loops,
            threads=threads,
        )
        for rows, count in zip(sizes, epochs, strict=True)
    }
    against = "engine" if args.lightning == "engine" else "bare"
    print("\nsummary (median ratios of samples/s; >= 1 means the first-named is faster)")
    columns = ["bare/plain", "engine/plain"] + (
        [f"{against}/lightning"] if "lightning" in loops else []
    )
    print(f"  {'rows':>12}  " + "  ".join(f"{c:>16}" for c in columns))
    for rows, ratio in results.items():
        figures = [ratio["bare"], ratio["engine"]] + (
            [ratio["lightning"]] if "lightning" in loops else []
        )
        print(f"  {rows:>12,}  " + "  ".join(f"{f:>16.3f}" for f in figures))
    print(footer())


if __name__ == "__main__":
    main()
