"""Drift: which inputs of new rows no longer look like the training rows, and how much.

A bundle keeps what its training rows looked like (``drift_reference.json``, see
:mod:`deepstrata.model.reference`); :func:`check_drift` sets new rows beside it, column
by column:

- numbers and dates: the population stability index (PSI) over the training rows'
  decile bins (plus a bin for missing values) and the two-sample Kolmogorov–Smirnov
  test against the kept sample of training values (``scipy.stats.ks_2samp``);
- categories and booleans: PSI over the categories and the chi-square test of the
  2 × K table of training and new counts (``scipy.stats.chi2_contingency``);
- text, image and audio: the model's own encoder's vectors of a sample of new rows
  against the kept training vectors (both projected alike): the squared maximum mean
  discrepancy (MMD, RBF kernel, Gretton et al. 2012) with a permutation p-value, and
  the distance between the two means in training spreads;
- the model's predictions on the new rows against its held-out predictions at fit time.

A column is flagged when its test rejects at ``alpha`` *and*, where PSI is defined, the
PSI reaches ``psi_threshold``: with many rows a test rejects shifts too small to matter,
and with few rows PSI is noisy; requiring both keeps false alarms rare (the rate over
unshifted resamples is measured in ``tests/attack/test_drift.py``). Embeddings have no
PSI: their permutation test decides alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path

import numpy as np

from deepstrata.errors import BundleError, ConfigError
from deepstrata.model.reference import (
    EMBED_ROWS,
    MISSING,
    OTHER,
    PREDICTION,
    REFERENCE,
    VERSION,
    category_values,
    column_embeddings,
    numeric_values,
    projection,
)

ALPHA = 0.01  # a test's level: a column is flagged only below it
# PSI's usual reading (credit scoring, Siddiqi 2006): < 0.1 stable, 0.1-0.25 a moderate
# shift, > 0.25 a major one. A flagged column has at least a moderate one.
PSI_THRESHOLD = 0.1
PERMUTATIONS = 200  # of the MMD test: p-values down to 1/201
_FLOOR = 1e-4  # a bin's share below this counts as this much (PSI's log needs no zeros)


@dataclass
class DriftReport:
    """Per column (and the predictions) the statistics of one check; ``drift`` is whether
    anything was flagged."""

    rows: int
    columns: list[dict]
    prediction: dict | None
    alpha: float
    psi_threshold: float
    notes: list[str] = field(default_factory=list)

    @property
    def drift(self) -> bool:
        flagged = [c["drifted"] for c in self.columns]
        return any(flagged) or bool(self.prediction and self.prediction["drifted"])

    @property
    def drifted(self) -> list[str]:
        return [c["column"] for c in self.columns if c["drifted"]]

    def to_dict(self) -> dict:
        return {
            "drift": self.drift,
            "drifted": self.drifted,
            "rows": self.rows,
            "alpha": self.alpha,
            "psi_threshold": self.psi_threshold,
            "columns": self.columns,
            "prediction": self.prediction,
            "notes": self.notes,
        }


def psi(expected: np.ndarray, actual: np.ndarray) -> float:
    """Population stability index ``sum((a - e) * ln(a / e))`` of two share vectors."""
    expected = np.maximum(np.asarray(expected, dtype=np.float64), _FLOOR)
    actual = np.maximum(np.asarray(actual, dtype=np.float64), _FLOOR)
    return float(np.sum((actual - expected) * np.log(actual / expected)))


def _bins(labels: list[str], reference, new) -> dict:
    """The shares side by side, as the drift page draws them."""
    return {
        "labels": [str(label) for label in labels],
        "reference": [float(share) for share in reference],
        "new": [float(share) for share in new],
    }


def _verdict(p_value: float, index: float | None, alpha: float, threshold: float) -> bool:
    if not np.isfinite(p_value) or p_value >= alpha:
        return False
    return index is None or index >= threshold


def numeric_drift(reference: dict, values: np.ndarray, *, alpha: float, threshold: float) -> dict:
    """PSI and KS of float ``values`` (NaN: missing) against a numeric reference."""
    from scipy.stats import ks_2samp

    present = values[~np.isnan(values)]
    edges = np.asarray(reference["edges"])
    counts = np.bincount(np.searchsorted(edges, present, side="right"), minlength=len(edges) + 1)
    total = max(len(values), 1)
    actual = np.append(counts / total, 1 - len(present) / total)
    expected = np.append(reference["shares"], reference["missing"])
    index = psi(expected, actual)
    sample = np.asarray(reference["sample"])
    if len(present) and len(sample):
        # scipy's exact p-value costs milliseconds from a few hundred rows a side, where
        # the asymptotic one is as good
        method = "asymp" if min(len(sample), len(present)) >= 100 else "auto"
        result = ks_2samp(sample, present, method=method)
        statistic, p_value = float(result.statistic), float(result.pvalue)
    else:  # no values on one side: only the missing share can be compared (PSI)
        statistic, p_value = float("nan"), float("nan")
    labels = [f"< {edges[0]:.4g}"] if len(edges) else ["all"]
    labels += [f"{low:.4g} – {high:.4g}" for low, high in pairwise(edges)]
    labels += [f"≥ {edges[-1]:.4g}"] if len(edges) else []
    return {
        "test": "ks",
        "statistic": statistic,
        "p_value": p_value,
        "psi": index,
        "missing": float(actual[-1]),
        "reference_missing": float(reference["missing"]),
        "bins": _bins([*labels, MISSING], expected, actual),
        "drifted": _verdict(p_value, index, alpha, threshold)
        or (not np.isfinite(p_value) and index >= threshold),
    }


def categorical_drift(
    reference: dict, values: np.ndarray, *, alpha: float, threshold: float
) -> dict:
    """PSI and chi-square of text ``values`` (:func:`category_values`) against a
    categorical reference; values it never saw are pooled as ``<other>``."""
    from scipy.stats import chi2_contingency

    known = reference["counts"]
    names = list(known)
    import pandas as pd

    counted = pd.Series(values, dtype=object).value_counts(sort=False)  # hashing, not sorting
    new = dict.fromkeys(names, 0)
    unseen = 0
    for name, count in counted.items():
        if name in new:
            new[name] += count
        else:
            unseen += count
    if unseen:
        new[OTHER] = new.get(OTHER, 0) + unseen
        known = {**known, OTHER: known.get(OTHER, 0)}
    names = list(known)
    table = np.array([[known[n] for n in names], [new[n] for n in names]], dtype=np.float64)
    shown = table  # every category, for the page (the test drops empty ones)
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2 or table[1].sum() == 0:
        statistic, p_value = 0.0, 1.0  # one category on both sides: nothing to test
    else:
        result = chi2_contingency(table, correction=False)
        statistic, p_value = float(result.statistic), float(result.pvalue)
    index = psi(table[0] / table[0].sum(), table[1] / max(table[1].sum(), 1))
    return {
        "test": "chi2",
        "statistic": statistic,
        "p_value": p_value,
        "psi": index,
        "missing": new.get(MISSING, 0) / max(len(values), 1),
        "unseen": unseen / max(len(values), 1),
        "bins": _bins(names, *(row / max(row.sum(), 1) for row in shown)),
        "drifted": _verdict(p_value, index, alpha, threshold),
    }


def mmd_test(
    reference: np.ndarray,
    new: np.ndarray,
    *,
    bandwidth: float,
    rng: np.random.Generator,
    permutations: int = PERMUTATIONS,
) -> tuple[float, float]:
    """``(MMD², p-value)``: the biased squared maximum mean discrepancy with an RBF kernel of
    ``bandwidth``, and its p-value over ``permutations`` random splits of the pooled rows.
    Written here (numpy, a few lines) because the maintained implementations come with
    whole frameworks (alibi-detect: TensorFlow).

    Each split's statistic is the quadratic form ``w K w`` (``w``: 1/n on one side's rows,
    -1/m on the other's), which is ``mean Kxx + mean Kyy - 2 mean Kxy``: all splits in one
    matrix product, 12-100 times quicker than indexing the kernel split by split (serve
    computes it when /metrics is scraped)."""
    pooled = np.concatenate([reference, new])  # (n + m, d)
    norms = (pooled**2).sum(1)
    squared = np.maximum(norms[:, None] + norms[None, :] - 2 * pooled @ pooled.T, 0.0)
    kernel = np.exp(-squared / (2 * bandwidth**2))
    n, total = len(reference), len(pooled)
    orders = [np.arange(total)] + [rng.permutation(total) for _ in range(permutations)]
    sides = np.where(np.arange(total) < n, 1.0 / n, -1.0 / max(total - n, 1))
    weights = np.empty((len(orders), total))
    np.put_along_axis(weights, np.stack(orders), np.broadcast_to(sides, weights.shape), axis=1)
    statistics = np.einsum("pi,pi->p", weights @ kernel, weights)  # (1 + permutations,)
    observed = float(statistics[0])
    beaten = int((statistics[1:] >= observed).sum())
    return observed, (beaten + 1) / (permutations + 1)


def embedding_drift(reference: dict, vectors: np.ndarray, *, alpha: float, seed: int) -> dict:
    """MMD and mean shift of a column's raw encoder ``vectors`` against its reference."""
    projected = vectors @ projection(reference["width"], reference["seed"])
    return projected_drift(reference, projected, alpha=alpha, seed=seed)


def projected_drift(
    reference: dict,
    projected: np.ndarray,
    *,
    alpha: float,
    seed: int,
    permutations: int = PERMUTATIONS,
) -> dict:
    """The same of vectors already projected as the reference's (serve keeps those)."""
    kept = np.asarray(reference["sample"], dtype=np.float64)
    rng = np.random.default_rng(seed)
    value, p_value = mmd_test(
        kept, projected, bandwidth=reference["bandwidth"], rng=rng, permutations=permutations
    )
    spread = np.sqrt(((kept - kept.mean(0)) ** 2).sum(1).mean())
    shift = float(np.linalg.norm(projected.mean(0) - kept.mean(0)) / max(spread, 1e-12))
    return {
        "test": "mmd",
        "statistic": value,
        "p_value": p_value,
        "psi": None,
        "mean_shift": shift,
        "drifted": _verdict(p_value, None, alpha, 0.0),
    }


def reference_of(model, bundle: str | Path | None = None) -> dict:
    """The training rows' distributions a loaded bundle kept (``drift_reference.json``); a
    bundle fitted before they were kept is a BundleError saying to refit."""
    import json

    where = str(bundle) if bundle is not None else None
    kept = model.artifacts.get(REFERENCE)
    if kept is None:
        raise BundleError(
            f"has no {REFERENCE}: it was fitted by a deepstrata release before drift checks; "
            "refit it with this version to keep the training rows' distributions",
            path=where,
        )
    try:
        reference = json.loads(kept)
        version = reference.get("version")
    except (ValueError, AttributeError) as error:
        raise BundleError(f"{REFERENCE} is not a JSON object: {error}", path=where) from None
    if version != VERSION:
        raise BundleError(
            f"{REFERENCE} has format version {version!r}; this release reads version {VERSION}",
            path=where,
        )
    return reference


def check_options(alpha: float, psi_threshold: float) -> None:
    if not 0 < alpha < 1:
        raise ConfigError(f"alpha must be between 0 and 1, got {alpha}", option="--alpha")
    if not psi_threshold >= 0:
        raise ConfigError(
            f"the PSI threshold must be at least 0, got {psi_threshold}", option="--psi-threshold"
        )


def check_drift(
    bundle,
    data,
    *,
    alpha: float = ALPHA,
    psi_threshold: float = PSI_THRESHOLD,
    seed: int = 0,
    model=None,
) -> DriftReport:
    """Set the rows of ``data`` (a file, a DataFrame) beside the training rows of ``bundle``
    (a bundle directory, or a fitted :class:`~deepstrata.model.model.Model`).

    Everything is checked before any work: the options, the bundle and its reference, and
    that ``data`` holds every input column (a DataError naming the first one missing).
    ``model``: the bundle already loaded (saves loading it again).

    >>> check_drift("runs/loans", "new_month.csv").drifted      # doctest: +SKIP
    ['income']
    """
    from deepstrata.data.sources import read_table
    from deepstrata.model.model import Model, load

    check_options(alpha, psi_threshold)
    if isinstance(bundle, Model):
        model, bundle = bundle, None
    model = model if model is not None else load(bundle)
    reference = reference_of(model, bundle)
    table = read_table(data)
    names = [feature.name for feature in model.schema.inputs]
    missing = [name for name in names if name not in table.frame.columns]
    if missing:
        raise table.error(
            f"input column{'s' if len(missing) > 1 else ''} {', '.join(map(repr, missing))} "
            f"missing: the model was trained with {', '.join(map(repr, names))}",
            column=missing[0],
        )
    if len(table.frame) == 0:
        raise table.error("no rows to check for drift")
    columns = column_drifts(model, reference, table, alpha, psi_threshold, seed)
    prediction = prediction_drift(model, reference, table, alpha, psi_threshold)
    notes = [] if prediction is not None else ["the bundle kept no held-out predictions"]
    return DriftReport(len(table.frame), columns, prediction, alpha, psi_threshold, notes)


def column_drifts(model, reference, table, alpha, threshold, seed) -> list[dict]:
    """One entry per input column (see the module docstring)."""
    frame = table.frame
    kept = reference["columns"]
    embedded = [n for n, entry in kept.items() if entry["statistic"] == "embedding"]
    vectors = {}
    if embedded:
        rng = np.random.default_rng(seed)
        picked = np.sort(rng.permutation(len(frame))[:EMBED_ROWS])
        vectors = column_embeddings(model.members[0], frame.iloc[picked], table, embedded)
    results = []
    for name, entry in kept.items():
        kind = entry["kind"]
        if entry["statistic"] == "numeric":
            values = numeric_values(frame[name].to_numpy(), kind)
            result = numeric_drift(entry, values, alpha=alpha, threshold=threshold)
        elif entry["statistic"] == "categorical":
            values = category_values(frame[name].to_numpy(), kind)
            result = categorical_drift(entry, values, alpha=alpha, threshold=threshold)
        else:
            result = embedding_drift(entry, vectors[name], alpha=alpha, seed=seed)
        results.append({"column": name, "kind": kind, **result})
    return results


def prediction_drift(model, reference, table, alpha, threshold) -> dict | None:
    """The shift of the model's predictions on ``table`` from its held-out ones."""
    kept = reference.get(PREDICTION)
    if kept is None:
        return None
    import warnings

    from deepstrata.errors import DataWarning

    with warnings.catch_warnings():  # unseen categories: the column's own entry says so
        warnings.simplefilter("ignore", DataWarning)
        outputs = model.outputs_of(table)
    cells = model.prediction_cells(outputs, model.groups_of(table.frame))
    return prediction_shift(kept, cells, alpha=alpha, threshold=threshold)


def prediction_shift(kept: dict, cells, *, alpha: float, threshold: float) -> dict:
    """Predictions (one cell each) against the kept held-out ones."""
    if kept["statistic"] == "categorical":
        result = categorical_drift(kept, category_values(cells), alpha=alpha, threshold=threshold)
    else:
        values = np.asarray(cells, dtype=np.float64)
        result = numeric_drift(kept, values, alpha=alpha, threshold=threshold)
    return {"column": PREDICTION, **result}
