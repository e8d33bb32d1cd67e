"""A backdoor check for image data: activation clustering (Chen et al. 2018).

A backdoor (a small trigger stamped on a few images whose label was changed to a target
class) makes the network learn two reasons for the target class: its real features, and
the trigger. In the network's last hidden layer the target class's rows then split into
a large cluster (the real ones) and a small, tight one (the poisoned ones); a clean class
does not split that way.

:func:`probe_activations` trains a probe network on every labelled row (no dropout, no
pretrained features: the probe must memorise what the rows say, trigger included) and
reads each row's activations at the combiner's output (the layer before the head).
:func:`activation_clusters` then, per given class, reduces the activations to a few
principal components, splits them into two by k-means, and flags the class when the
smaller cluster holds at most ``max_share`` of the class's rows and the split is clear
(silhouette at least ``min_silhouette``); the flagged class's small-cluster rows are
listed.

Written over scikit-learn rather than with ART's ``ActivationDefence``: ART needs an
ART classifier wrapping the whole network and the inputs as one array, which a network
of several columns of several kinds (and our preprocessors) does not fit; the method is
PCA + k-means + two numbers per class, a few lines here.

>>> rng = np.random.default_rng(0)
>>> a, b = rng.normal(size=(150, 16)), rng.normal(size=(150, 16)) + 3.0
>>> poisoned = rng.normal(size=(10, 16)) * 0.3 + np.r_[[6.0] * 2, [0.0] * 14]  # a + trigger
>>> labels = np.repeat([0, 1, 1], [150, 150, 10])
>>> result = activation_clusters(np.vstack([a, b, poisoned]), labels, ["a", "b"])
>>> result["flagged_classes"], result["rows"] == list(range(301, 311))
(['b'], True)
"""

from __future__ import annotations

import copy
import dataclasses

import numpy as np

COMPONENTS = 10  # principal components kept per class (Chen et al.: 10 by ICA)
MAX_SHARE = 0.35  # the smaller cluster's share of its class, at most (ART's default)
MIN_ELSEWHERE = 0.5  # the small cluster's share put in another class by the other rows
MIN_ROWS = 20  # classes with fewer rows are not checked


def activation_clusters(
    activations: np.ndarray,
    labels: np.ndarray,
    classes: list,
    *,
    rows: np.ndarray | None = None,
    max_share: float = MAX_SHARE,
    min_elsewhere: float = MIN_ELSEWHERE,
    seed: int = 0,
) -> dict:
    """Per class of ``labels`` (indices into ``classes``): the smaller cluster's share, the
    silhouette of the split, the share of the small cluster that the other rows' classifier
    puts in another class (``elsewhere``) and whether the class looks poisoned; ``rows``:
    the 1-based row numbers of the flagged classes' small clusters (``rows`` maps
    positions to row numbers)."""
    activations = np.asarray(activations, dtype=np.float64)
    rows = np.arange(len(activations)) if rows is None else np.asarray(rows)
    report, flagged_rows, flagged = [], [], []
    for index, name in enumerate(classes):
        members = np.flatnonzero(labels == index)
        entry = {"class": str(name), "rows": len(members), "checked": False}
        if len(members) < MIN_ROWS or len(classes) < 2:
            report.append(entry)
            continue
        small, entry["small_share"], entry["silhouette"] = _split(activations[members], seed)
        suspects = members[small]
        entry["elsewhere"], entry["moved_to"] = _reclassified(
            activations, labels, suspects, classes, seed
        )
        poisoned = entry["small_share"] <= max_share and entry["elsewhere"] >= min_elsewhere
        report.append({**entry, "checked": True, "poisoned": bool(poisoned)})
        if poisoned:
            flagged.append(str(name))
            flagged_rows.extend(int(r) + 1 for r in rows[suspects])
    return {
        "method": "activation clustering (Chen et al. 2018): PCA, 2-means per class, "
        "exclusionary reclassification of the smaller cluster",
        "max_share": max_share,
        "min_elsewhere": min_elsewhere,
        "classes": report,
        "flagged_classes": flagged,
        "rows": sorted(flagged_rows),
    }


def _split(block: np.ndarray, seed: int) -> tuple[np.ndarray, float, float]:
    """The smaller of two k-means clusters of ``block``'s principal components (a boolean
    mask), its share and the silhouette of the split."""
    from sklearn.cluster import KMeans
    from sklearn.decomposition import PCA
    from sklearn.metrics import silhouette_score

    width = min(COMPONENTS, block.shape[1], len(block) - 1)
    reduced = PCA(n_components=width, random_state=seed).fit_transform(block - block.mean(axis=0))
    split = KMeans(n_clusters=2, n_init=10, random_state=seed).fit_predict(reduced)
    sizes = np.bincount(split, minlength=2)
    small = int(sizes.argmin())
    silhouette = float(silhouette_score(reduced, split)) if sizes.min() > 1 else 0.0
    return split == small, float(sizes[small] / len(block)), silhouette


def _reclassified(activations, labels, suspects, classes, seed) -> tuple[float, str | None]:
    """Exclusionary reclassification (Chen et al. 2018, on activations instead of a
    retrained network): a classifier fitted on every row but the ``suspects`` classifies
    them. A legitimate sub-population of a class stays in it; poisoned rows, whose only
    tie to their given class was the trigger, go to their true class. Returns the share
    sent to another class and the class most of them went to."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    keep = np.ones(len(labels), dtype=bool)
    keep[suspects] = False
    scaler = StandardScaler().fit(activations[keep])
    classifier = LogisticRegression(C=0.1, max_iter=500, random_state=seed)
    classifier.fit(scaler.transform(activations[keep]), labels[keep])
    said = classifier.predict(scaler.transform(activations[suspects]))
    moved = said[said != labels[suspects]]
    where = str(classes[np.bincount(moved).argmax()]) if len(moved) else None
    return float(len(moved) / max(len(suspects), 1)), where


def penultimate(member, table) -> np.ndarray:
    """``(rows, width)`` activations of ``member``'s network at its combiner's output (the
    layer the head reads) for every row of ``table``."""
    import torch

    from deepstrata.preprocess.frame import transform_frame
    from deepstrata.train.batches import forward_in_chunks

    seen: list[torch.Tensor] = []
    hook = member.network.combiner.register_forward_hook(
        lambda module, inputs, output: seen.append(output.detach().float().cpu())
    )
    try:
        member.network.eval()
        forward_in_chunks(member.network, transform_frame(member.preprocessors, table.frame, table))
    finally:
        hook.remove()
    return torch.cat(seen).numpy()


def probe_settings(cfg):
    """The probe network's settings: the user's, on every row, without dropout, folds,
    ensemble or pretrained features (a from-scratch network that memorises its rows)."""
    settings = copy.deepcopy(cfg)
    settings.folds = None
    settings.ensemble = False
    settings.dropout = 0.0
    settings.strategy = "scratch"
    settings.mixup = 0.0
    settings.label_smoothing = 0.0
    settings.validation_fraction = min(settings.validation_fraction, 0.1)
    return settings


def check_images(table, cfg, *, progress=False) -> dict:
    """The backdoor check of ``table`` (an image folder or a table with an image column):
    a probe network trained on it, its activations clustered per given class."""
    from deepstrata.recipes.run import run_fit

    model = run_fit(table, probe_settings(cfg), progress=progress)
    member = model.members[0]
    target = table.frame[cfg.target]
    labelled = np.flatnonzero(target.notna().to_numpy())
    lines = None if table.lines is None else table.lines[labelled]
    subset = dataclasses.replace(
        table, frame=table.frame.iloc[labelled].reset_index(drop=True), lines=lines
    )
    activations = penultimate(member, subset)
    labels = model.target_encoder.encode(target.iloc[labelled], table)
    result = activation_clusters(activations, labels, model.classes, rows=labelled, seed=cfg.seed)
    result["probe"] = {"validation": model.metrics.get("validation", {})}
    return result
