"""A black-box evasion attack for any model, classical members included: ART's
HopSkipJump (Chen, Jordan and Wainwright 2020) through its ``BlackBoxClassifier``,
querying only the model's probabilities.

It searches, row by row, for the *smallest* change that flips the prediction, on the
number columns in raw units divided by each column's inter-quartile range (so the L-inf
distance it minimises is the budget's unit: a fraction of the IQR), within the range of
the attacked rows. A row counts as robust at ``eps`` when its clean prediction is right
and the attack found no flip closer than ``eps``. Other columns keep their values.
"""

from __future__ import annotations

import time

import numpy as np

from deepstrata.errors import ConfigError, MissingPackageError
from deepstrata.preprocess.number import IQR_TO_STD

MAX_ITERATIONS = 20
MAX_EVALUATIONS = 500  # model queries per gradient estimate: the attack's cost


def _art():
    try:
        from art.attacks.evasion import HopSkipJump
        from art.estimators.classification import BlackBoxClassifier
    except ImportError:
        raise MissingPackageError(
            "--attack hopskipjump needs the Adversarial Robustness Toolbox: "
            "pip install 'deepstrata[attack]'",
            extra="attack",
        ) from None
    return HopSkipJump, BlackBoxClassifier


def number_columns(model) -> list[tuple[str, float]]:
    """(column, IQR in raw units) of each number input, from the first member's
    preprocessors (every member sees the same raw columns)."""
    pres = model.members[0].preprocessors
    return [(name, pre.scale * IQR_TO_STD) for name, pre in pres.items() if pre.kind == "number"]


def hop_skip_jump(model, table, encoded, epsilons, *, norm: str, seed: int, note) -> dict:
    """Per row, HopSkipJump's closest flip; robust accuracy per budget (see module doc)."""
    columns = number_columns(model)
    if not columns:
        raise ConfigError(
            "hopskipjump moves number columns; this model has none", option="--attack"
        )
    HopSkipJump, BlackBoxClassifier = _art()
    frame = table.frame
    names = [name for name, _ in columns]
    iqr = np.array([max(value, 1e-12) for _, value in columns])
    raw = frame[names].to_numpy(dtype=np.float64)  # (rows, D)
    z = raw / iqr  # the attack's space: raw units / IQR
    low, high = np.nanmin(z, axis=0), np.nanmax(z, axis=0)
    inputs = [f.name for f in model.schema.inputs]
    labels = np.asarray(encoded)
    started = time.perf_counter()
    np.random.seed(seed)  # ART draws from numpy's global generator
    distances, clean_right, examples = [], [], []
    for row in range(len(frame)):
        fixed = {name: frame[name].iloc[row] for name in inputs if name not in names}

        def predict(batch: np.ndarray, fixed=fixed) -> np.ndarray:
            values = {name: [value] * len(batch) for name, value in fixed.items()}
            values.update({name: list(batch[:, i] * iqr[i]) for i, name in enumerate(names)})
            return model.probabilities_of(model.outputs_of_values(values))

        x = np.nan_to_num(z[row : row + 1], nan=0.0).astype(np.float32)
        right = int(predict(x).argmax(1)[0]) == int(labels[row])
        clean_right.append(right)
        if not right:
            distances.append(0.0)
            continue
        classifier = BlackBoxClassifier(
            predict, input_shape=(len(names),), nb_classes=len(model.classes),
            clip_values=(low.astype(np.float32), high.astype(np.float32)),
        )  # fmt: skip
        attack = HopSkipJump(
            classifier, norm=np.inf if norm == "linf" else 2, max_iter=MAX_ITERATIONS,
            max_eval=MAX_EVALUATIONS, init_eval=min(50, MAX_EVALUATIONS), verbose=False,
        )  # fmt: skip
        adversarial = attack.generate(x)
        flipped = int(predict(adversarial).argmax(1)[0]) != int(labels[row])
        change = (adversarial - x)[0]
        distance = float(np.abs(change).max() if norm == "linf" else np.linalg.norm(change))
        distances.append(distance if flipped else np.inf)
        if flipped and len(examples) < 4:
            examples.append(_example(model, row, labels, names, x[0], adversarial[0], iqr, predict))
        if (row + 1) % 10 == 0:
            note(f"hopskipjump: {row + 1}/{len(frame)} rows")
    seconds = time.perf_counter() - started
    distances, clean_right = np.asarray(distances), np.asarray(clean_right)
    rows = len(frame)
    return {
        "attack": "hopskipjump",
        "norm": norm,
        "steps": MAX_ITERATIONS,
        "step_size": f"geometric search, {MAX_EVALUATIONS} queries per gradient estimate",
        "random_start": True,
        "rows": rows,
        "units": {"number": "fraction of each column's inter-quartile range (raw units)"},
        "clean_accuracy": float(clean_right.mean()),
        "median_distance": float(np.median(distances[clean_right])) if clean_right.any() else None,
        "epsilons": [
            {
                "epsilon": eps,
                "robust_accuracy": float((clean_right & (distances > eps)).mean()),
                "success_rate": float(
                    (clean_right & (distances <= eps)).sum() / max(clean_right.sum(), 1)
                ),
                "seconds": seconds,
                "seconds_per_1000_rows": seconds / rows * 1000,
            }
            for eps in epsilons
        ],
        "examples": examples,
    }


def _example(model, row, labels, names, before, after, iqr, predict) -> dict:
    classes = [str(c) for c in model.classes]
    return {
        "row": int(row),
        "label": classes[int(labels[row])],
        "clean_prediction": classes[int(predict(before[None]).argmax(1)[0])],
        "adversarial_prediction": classes[int(predict(after[None]).argmax(1)[0])],
        "numbers": [
            {"column": name, "before": float(before[i] * iqr[i]), "after": float(after[i] * iqr[i])}
            for i, name in enumerate(names)
        ],
    }
