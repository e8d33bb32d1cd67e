"""Training throughput: deepstrata's Trainer against the textbook PyTorch loop.

Both loops train the same module (deepstrata's ``Network``: a dense block of 50
floats -> MLP [256, 256] -> binary head, no dropout), freshly built from the
same seed for every run, on the same pre-built tensors, with the same batch
size, optimiser (AdamW, lr 1e-3, weight decay 1e-4), data order and number of
epochs. Only the loop differs, so samples/s deepstrata / samples/s plain is the
cost of the Trainer's bookkeeping (loss sum, time-limit check, early stopping).

The Trainer gets no validation set and ``patience = epochs``, so early stopping
can never end a run early; ``progress=None``. Runs are interleaved (plain,
deepstrata, plain, deepstrata, ...) so that a change in machine load hits both.

    python bench/train_throughput.py                      # 100k x 3 epochs, 1M x 1 epoch, 5 repeats
    python bench/train_throughput.py --quick              # smoke run, seconds
    python bench/train_throughput.py --sizes 200000 --epochs 2 --repeats 3
"""

from __future__ import annotations

import argparse
import gc

import torch
from _common import clock, footer, header, int_list, median, set_threads
from torch.nn import functional as F

from deepstrata.encoders.dense import DenseEncoder
from deepstrata.network import Network
from deepstrata.seeding import generator
from deepstrata.train.trainer import Trainer

FEATURES = 50
HIDDEN_DIMS = [256, 256]
LEARNING_RATE = 1e-3
WEIGHT_DECAY = 1e-4
SEED = 0
TARGET_RATIO = 0.95


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


def train_plain(
    network: Network, x: torch.Tensor, y: torch.Tensor, *, epochs: int, batch_size: int
) -> float:
    """The textbook loop; returns the seconds it took."""
    optimizer = torch.optim.AdamW(network.parameters(), lr=LEARNING_RATE, weight_decay=WEIGHT_DECAY)
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


def train_deepstrata(
    network: Network, x: torch.Tensor, y: torch.Tensor, *, epochs: int, batch_size: int
) -> float:
    """deepstrata's Trainer, early stopping off, no validation; returns the seconds ``fit`` took."""
    trainer = Trainer(
        network,
        loss_fn=network.loss,
        learning_rate=LEARNING_RATE,
        weight_decay=WEIGHT_DECAY,
        batch_size=batch_size,
        max_epochs=epochs,
        patience=epochs,  # the first epoch always improves, so at most epochs - 1 without
        seed=SEED,
        progress=None,
    )
    start = clock()
    trainer.fit({"number": x}, y)
    return clock() - start


@torch.no_grad()
def largest_weight_difference(a: Network, b: Network) -> float:
    return max(
        float((pa - pb).abs().max()) for pa, pb in zip(a.parameters(), b.parameters(), strict=True)
    )


def run_size(rows: int, *, epochs: int, batch_size: int, repeats: int) -> float:
    """Print one line per repeat and the medians; returns the median ratio."""
    x, y = make_data(rows)
    samples = rows * epochs
    print(
        f"\n{rows:,} rows x {FEATURES} features, {epochs} epoch{'s' * (epochs > 1)}, "
        f"batch {batch_size}, {samples:,} samples per run, positive share {float(y.mean()):.2f}"
    )
    plain_rates, deepstrata_rates, ratios = [], [], []
    for repeat in range(1, repeats + 1):
        plain_network = new_network()
        gc.collect()
        plain_rate = samples / train_plain(
            plain_network, x, y, epochs=epochs, batch_size=batch_size
        )
        deepstrata_network = new_network()
        gc.collect()
        deepstrata_rate = samples / train_deepstrata(
            deepstrata_network, x, y, epochs=epochs, batch_size=batch_size
        )
        ratio = deepstrata_rate / plain_rate
        plain_rates.append(plain_rate)
        deepstrata_rates.append(deepstrata_rate)
        ratios.append(ratio)
        print(
            f"  repeat {repeat}: plain {plain_rate:>10,.0f} samples/s   "
            f"deepstrata {deepstrata_rate:>10,.0f} samples/s   ratio {ratio:.3f}",
            flush=True,
        )
    # Same seed, same data order, same arithmetic: the weights should agree (the
    # Trainer restores its best epoch by training loss, which is nearly always the last).
    difference = largest_weight_difference(plain_network, deepstrata_network)
    ratio = median(ratios)
    verdict = "met" if ratio >= TARGET_RATIO else "MISSED"
    print(
        f"  median: plain {median(plain_rates):,.0f} samples/s, "
        f"deepstrata {median(deepstrata_rates):,.0f} samples/s, "
        f"ratio deepstrata/plain {ratio:.3f} (target >= {TARGET_RATIO}: {verdict})"
    )
    # Load from elsewhere only ever slows a run down, so the fastest run of each
    # loop is the least disturbed one: a second, noise-resistant reading.
    print(
        f"  best:   plain {max(plain_rates):,.0f} samples/s, "
        f"deepstrata {max(deepstrata_rates):,.0f} samples/s, "
        f"ratio {max(deepstrata_rates) / max(plain_rates):.3f}; "
        f"largest |weight difference| after the last pair {difference:.1e}"
    )
    return ratio


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
        "--repeats", type=int, default=None, help="timed pairs per size (default 5)"
    )
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument(
        "--threads", type=int, default=None, help="torch threads (default: all cores)"
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
    print(header("train throughput: deepstrata Trainer vs plain PyTorch loop", threads))
    print(
        f"# model: Network(DenseEncoder({FEATURES}) -> MLP {HIDDEN_DIMS} -> binary head), dropout 0, "
        f"AdamW lr {LEARNING_RATE:g} wd {WEIGHT_DECAY:g}; Trainer: no validation, patience = epochs"
    )

    # Warm-up: first calls pay for kernel selection and allocator growth.
    x, y = make_data(min(16_384, max(sizes)))
    train_plain(new_network(), x, y, epochs=1, batch_size=args.batch_size)
    train_deepstrata(new_network(), x, y, epochs=1, batch_size=args.batch_size)
    del x, y

    results = {
        rows: run_size(rows, epochs=count, batch_size=args.batch_size, repeats=repeats)
        for rows, count in zip(sizes, epochs, strict=True)
    }
    print("\nsummary (median ratio deepstrata/plain, samples/s; >= 1 means deepstrata is faster)")
    for rows, ratio in results.items():
        print(f"  {rows:>12,} rows: {ratio:.3f}")
    print(footer())


if __name__ == "__main__":
    main()
