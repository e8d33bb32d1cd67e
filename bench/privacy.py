"""What the privacy defences cost and buy (issue 19, points 4-6 and 10).

1. **DP-SGD epoch time**: ``fit --private`` against a plain fit of the same network on the
   same rows (a 20-column table: 16 numbers, 4 categories; batches of 256, a fixed rate,
   no ensemble), the median seconds of an epoch from each fit's history, fits interleaved.
   The ratio is the cost of Opacus's per-sample gradients, clipping and noise.
2. **Membership inference, regularisation and DP** on real data: statsmodels' Fair affairs
   survey (a noisy target: 1,000 members, 2,000 non-members) and scikit-learn's breast
   cancer table (an easy one: 284 members, 285 non-members). Each model: accuracy on members and non-members, the loss-threshold
   and shadow-model attacks' AUC and TPR at 1 % FPR, and the epsilon DP-SGD spent.
   "overfit": every training row twice (validation rows are copies, so early stopping
   never fires), no dropout, no weight decay, 200 epochs; "default": fit's defaults;
   "regularised": dropout 0.3, weight decay 0.05; "DP eps": --private at that target.
3. **Model theft**: the fidelity of a surrogate trained on N answers of part 1's plain
   model, under each output policy (probabilities, rounded, labels).

    python bench/privacy.py                 # 20,000 rows, 3 epochs; 100,1000,10000 queries
    python bench/privacy.py --quick         # a smoke run
"""

from __future__ import annotations

import argparse
import warnings

import numpy as np
import pandas as pd
from _common import footer, header, int_list, median, set_threads

import deepstrata
from deepstrata.attack.extraction import steal
from deepstrata.attack.membership import membership_risk

FIXED = {"progress": False, "ensemble": False, "learning_rate": 1e-3}


def table(rows: int, seed: int) -> pd.DataFrame:
    """16 normal numbers and 4 categories of 8 values; a noisy rule for the label."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(rng.normal(size=(rows, 16)), columns=[f"n{i}" for i in range(16)])
    for i in range(4):
        frame[f"c{i}"] = np.asarray([f"v{j}" for j in range(8)])[rng.integers(0, 8, rows)]
    score = frame.n0 + frame.n1 * frame.n2 + frame.c0.isin(["v0", "v1"]) - 0.5 * frame.n3
    frame["label"] = np.where(score + rng.normal(0, 0.5, rows) > 0.2, "yes", "no")
    return frame


def epoch_seconds(model) -> float:
    return median([epoch["seconds"] for epoch in model.metrics["history"]["epochs"]])


def timing(rows: int, epochs: int, repeats: int):
    frame = table(rows, seed=0)
    options = {**FIXED, "batch_size": 256, "schedule": "constant", "max_epochs": epochs}
    plain, private, model = [], [], None
    for _ in range(repeats):
        model = deepstrata.fit(frame, target="label", patience=epochs + 1, **options)
        plain.append(epoch_seconds(model))
        dp = deepstrata.fit(frame, target="label", private=True, target_epsilon=3, **options)
        private.append(epoch_seconds(dp))
    accuracy = model.metrics["validation"]["accuracy"], dp.metrics["validation"]["accuracy"]
    print(f"\n## 1. epoch seconds, {rows} rows x 20 columns, batches of 256 (median of {repeats})")
    print(f"plain {median(plain):.3f} s   DP-SGD {median(private):.3f} s   "
          f"factor {median(private) / median(plain):.2f}x")  # fmt: skip
    spent = dp.metrics["privacy"]
    print(f"accuracy plain {accuracy[0]:.3f}, DP-SGD {accuracy[1]:.3f} at epsilon "
          f"{spent['epsilon']:.2f} (delta {spent['delta']:.0e}, noise "
          f"{spent['noise_multiplier']:.2f}, {spent['steps']} steps)")  # fmt: skip
    return model


def cancer() -> tuple[pd.DataFrame, pd.DataFrame]:
    """scikit-learn's breast cancer table: half the rows members, half not."""
    from sklearn.datasets import load_breast_cancer

    frame = load_breast_cancer(as_frame=True).frame
    frame["target"] = np.where(frame.target == 1, "benign", "malignant")
    order = np.random.default_rng(0).permutation(len(frame))
    half = len(frame) // 2
    return frame.iloc[order[:half]].reset_index(drop=True), frame.iloc[order[half:]]


def fair() -> tuple[pd.DataFrame, pd.DataFrame]:
    """statsmodels' Fair (1978) affairs survey, 6,366 women: target "any affair" (32 %) from
    8 answers, a noisy target; 1,000 rows members, 2,000 others."""
    import statsmodels.api as sm

    frame = sm.datasets.fair.load_pandas().data
    frame["target"] = np.where(frame.pop("affairs") > 0, "yes", "no")
    order = np.random.default_rng(0).permutation(len(frame))
    return frame.iloc[order[:1000]].reset_index(drop=True), frame.iloc[order[1000:3000]]


DATASETS = {"fair": fair, "cancer": cancer}


MODELS = {
    "overfit": {"hidden_dims": [256, 256], "dropout": 0.0, "weight_decay": 0.0,
                "max_epochs": 200, "patience": 200, "schedule": "constant", "calibrate": False},
    "default": {},
    "regularised": {"dropout": 0.3, "weight_decay": 0.05},
}  # fmt: skip


def membership(dataset: str, epsilons: list[float], shadows: int) -> None:
    members, others = DATASETS[dataset]()
    print(f"\n## 2. membership inference, {dataset} ({len(members)} members, "
          f"{len(others)} non-members; half of those train the shadows)")  # fmt: skip
    print("model            acc(in)  acc(out)  loss AUC  loss TPR@1%  shadow AUC  "
          "shadow TPR@1%  epsilon")  # fmt: skip
    runs = [(name, options) for name, options in MODELS.items()]
    runs += [(f"DP eps {e:g}", {"private": True, "target_epsilon": e, "max_epochs": 60})
             for e in epsilons]  # fmt: skip
    for name, options in runs:
        data = pd.concat([members, members], ignore_index=True) if name == "overfit" else members
        model = deepstrata.fit(data, target="target", progress=False, ensemble=False, **options)
        result = membership_risk(model, data, others, shadows=shadows)
        loss, shadow = result["attacks"]["loss"], result["attacks"]["shadow"]
        spent = model.metrics.get("privacy")
        print(f"{name:<16} {result['generalisation']['members']['accuracy']:.3f}    "
              f"{result['generalisation']['non_members']['accuracy']:.3f}     "
              f"{loss['auc']:.3f}     {loss['tpr_at_1pct_fpr']:.3f}        "
              f"{shadow['auc']:.3f}       {shadow['tpr_at_1pct_fpr']:.3f}          "
              + (f"{spent['epsilon']:.2f}" if spent else "-"))  # fmt: skip


def theft(victim, queries: list[int], pool_rows: int) -> None:
    pool = table(pool_rows, seed=1).drop(columns="label")
    print(f"\n## 3. surrogate fidelity against queries ({pool_rows} attacker rows; "
          "past them, made-up rows)")  # fmt: skip
    print("output         " + "".join(f"{n:>10}" for n in queries) + "   seconds")
    for policy in ("probabilities", "rounded", "labels"):
        result = steal(victim, pool, queries=queries, output=policy)
        fidelity = "".join(f"{point['fidelity']:>10.3f}" for point in result["curve"])
        seconds = sum(point["seconds"] for point in result["curve"])
        print(f"{policy:<15}{fidelity}   {seconds:.0f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--queries", type=int_list, default=[100, 1000, 10000])
    parser.add_argument("--epsilons", type=lambda t: [float(x) for x in t.split(",")],
                        default=[1.0, 3.0, 8.0])  # fmt: skip
    parser.add_argument("--shadows", type=int, default=2)
    parser.add_argument("--data", type=lambda t: t.split(","), default=["fair", "cancer"])
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.rows, args.epochs, args.repeats, args.queries = 2_000, 2, 1, [100, 1000]
        args.epsilons, args.shadows, args.data = [3.0], 1, ["fair"]
    threads = set_threads(args.threads)
    print(header("privacy: DP-SGD cost, membership inference, model theft", threads))
    warnings.simplefilter("ignore")
    victim = timing(args.rows, args.epochs, args.repeats)
    for dataset in args.data:
        try:
            membership(dataset, args.epsilons, args.shadows)
        except ImportError as error:  # statsmodels (Fair) is no dependency of deepstrata
            print(f"\n## 2. {dataset}: skipped ({error}); pip install statsmodels")
    theft(victim, args.queries, pool_rows=min(args.rows, 20_000))
    print(footer())


if __name__ == "__main__":
    main()
