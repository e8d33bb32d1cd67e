"""What attacks and defences cost (issue 19), as a table of named cases, each against a
plain baseline measured in the same run:

- ``fgsm-image`` / ``pgd10-image``: seconds per 1,000 rows to attack a 64-px image
  network (the default scratch ResNet: width 32, depth 3), against plain prediction;
- ``fgsm-table`` / ``pgd10-table``: the same on a 20-column table of numbers;
- ``adv-fgsm-epoch`` / ``adv-pgd7-epoch``: one epoch of adversarial training (fast FGSM,
  Madry PGD-7) on the 64-px images, against one plain epoch (the factor).

Other defences add their case to ``CASES`` (a name -> function returning the measured and
baseline seconds). Figures are medians of ``--repeats`` runs; read the ratios.

    python bench/attack.py                 # 256 image rows, 2,000 table rows, 3 repeats
    python bench/attack.py --quick         # 64 / 500 rows, 1 repeat: a smoke run
    python bench/attack.py --cases pgd10-image,adv-fgsm-epoch
"""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd
import torch
from _common import clock, footer, header, median, set_threads

from deepstrata.attack.adversarial import AdversarialPerturbation
from deepstrata.attack.evasion import make_attack
from deepstrata.data.table import Table
from deepstrata.model.network import build_network
from deepstrata.preprocess.image import ImagePreprocessor
from deepstrata.preprocess.number import NumberPreprocessor
from deepstrata.train.trainer import Trainer

SIZE = 64
CLASSES = 10


def image_case(rows: int):
    pre = ImagePreprocessor()
    pre.size = SIZE
    preprocessors = {"photo": pre}
    network = build_network(
        preprocessors, task="multiclass", num_classes=CLASSES, hidden_dims=[64], dropout=0.0
    )
    generator = torch.Generator().manual_seed(0)
    pixels = torch.randint(0, 256, (rows, 3 * SIZE * SIZE), generator=generator, dtype=torch.uint8)
    return (
        network,
        preprocessors,
        {"image": pixels},
        torch.randint(0, CLASSES, (rows,), generator=generator),
    )


def table_case(rows: int):
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({f"x{i}": rng.normal(size=rows) for i in range(20)})
    table = Table(frame=frame, source="bench", lines=None)
    preprocessors = {name: NumberPreprocessor().fit(frame[name], table) for name in frame}
    network = build_network(
        preprocessors, task="multiclass", num_classes=2, hidden_dims=[256, 128], dropout=0.0
    )
    values = np.concatenate([pre.transform(frame[n], table) for n, pre in preprocessors.items()], 1)
    return (
        network,
        preprocessors,
        {"number": torch.from_numpy(values)},
        torch.from_numpy(rng.integers(0, 2, rows)),
    )


def attack_seconds(build, rows: int, method: str, epsilon: float) -> tuple[float, float]:
    """(attack, plain prediction) seconds for ``rows`` rows, in chunks of 256."""
    network, preprocessors, inputs, target = build(rows)
    network.eval()
    start = clock()
    with torch.no_grad():
        for i in range(0, rows, 256):
            network({k: v[i : i + 256] for k, v in inputs.items()})
    plain = clock() - start
    attack = make_attack(network, preprocessors, inputs, method=method, steps=10)
    start = clock()
    for i in range(0, rows, 256):
        attack({k: v[i : i + 256] for k, v in inputs.items()}, target[i : i + 256], epsilon)
    return clock() - start, plain


def epoch_seconds(rows: int, method: str | None) -> float:
    network, preprocessors, inputs, target = image_case(rows)
    perturb = None
    if method is not None:
        perturb = AdversarialPerturbation(preprocessors, method=method, epsilon=8 / 255, steps=7)
    trainer = Trainer(
        network, loss_fn=network.loss, max_epochs=1, batch_size=64, precision="32",
        perturb=perturb, progress=None,
    )  # fmt: skip
    start = clock()
    trainer.fit(inputs, target)
    return clock() - start


CASES = {
    "fgsm-image": lambda a: attack_seconds(image_case, a.image_rows, "fgsm", 8 / 255),
    "pgd10-image": lambda a: attack_seconds(image_case, a.image_rows, "pgd", 8 / 255),
    "fgsm-table": lambda a: attack_seconds(table_case, a.table_rows, "fgsm", 0.1),
    "pgd10-table": lambda a: attack_seconds(table_case, a.table_rows, "pgd", 0.1),
    "adv-fgsm-epoch": lambda a: (
        epoch_seconds(a.image_rows, "fgsm"),
        epoch_seconds(a.image_rows, None),
    ),
    "adv-pgd7-epoch": lambda a: (
        epoch_seconds(a.image_rows, "pgd"),
        epoch_seconds(a.image_rows, None),
    ),
}
ROWS = {"image": "image_rows", "table": "table_rows", "epoch": "image_rows"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image-rows", type=int, default=256)
    parser.add_argument("--table-rows", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--cases", default=",".join(CASES))
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.image_rows, args.table_rows, args.repeats = 64, 500, 1
    threads = set_threads(args.threads)
    print(header("attack and defence cost (bench/attack.py)", threads))
    print(f"{'case':<16} {'rows':>6} {'s/1000 rows':>12} {'baseline s/1000':>16} {'factor':>8}")
    for name in args.cases.split(","):
        rows = getattr(args, ROWS[name.rsplit("-", 1)[1]])
        runs = [CASES[name](args) for _ in range(args.repeats)]
        measured = median([r[0] for r in runs]) / rows * 1000
        baseline = median([r[1] for r in runs]) / rows * 1000
        print(
            f"{name:<16} {rows:>6} {measured:>12.3f} {baseline:>16.3f} {measured / baseline:>8.2f}"
        )
    print(footer())


if __name__ == "__main__":
    main()
