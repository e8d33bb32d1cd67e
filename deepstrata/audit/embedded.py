"""Label errors and near duplicates of images and text through pretrained embeddings.

An image or text column becomes one vector per row through its kind's pretrained
network (EfficientNet-Lite0: 1,280 values; all-MiniLM-L6-v2: 384), cached on disk like
``--strategy features`` (:func:`deepstrata.recipes.embed.embed`). Then:

- **label errors**: a logistic regression on the vectors, fitted K times on the other
  folds, gives each row out-of-fold class probabilities (no network trained K times);
  cleanlab reads them as it reads the networks' (:mod:`deepstrata.audit.labels`);
- **near duplicates**: two rows whose vectors are within ``cosine`` cosine distance
  (a resized, re-encoded or lightly edited copy of an image; a reworded sentence), and
  test rows that near-duplicate a training row (leakage).

>>> vectors = np.array([[1.0, 0.0], [0.999, 0.04], [0.0, 1.0]])
>>> cosine_pairs(vectors, 0.01)
[(0, 1, 0.000801)]
"""

from __future__ import annotations

import numpy as np

COSINE = 0.05  # near duplicates: at most this cosine distance (1 - cosine similarity)
EMBEDDED_KINDS = ("image", "text")


def embedded_columns(table, cfg) -> list[tuple[str, str]]:
    """``[(column, kind)]``: the inputs with a pretrained network (image, text)."""
    from deepstrata.recipes.prepare import schema_for

    schema = schema_for(table, cfg)
    return [(f.name, f.kind) for f in schema.inputs if f.kind in EMBEDDED_KINDS]


def vectors_of(data, columns: list[tuple[str, str]], *, progress=False) -> np.ndarray:
    """``(rows, D)`` L2-normalised embeddings of ``columns`` of ``data`` side by side (each
    column's block normalised on its own, then the whole scaled to length 1)."""
    from deepstrata.recipes.embed import embed

    blocks = []
    for name, kind in columns:
        frame = embed(data, name, kind=kind, progress=progress)
        block = frame[[c for c in frame.columns if str(c).startswith(f"{name}_")]]
        block = block.to_numpy(dtype=np.float64)
        norms = np.linalg.norm(block, axis=1, keepdims=True)
        blocks.append(block / np.where(norms > 0, norms, 1.0))
    vectors = np.concatenate(blocks, axis=1)
    return vectors / np.sqrt(len(columns))


def out_of_fold(
    vectors: np.ndarray, labels: np.ndarray, classes: int, *, folds: int, seed: int = 0
) -> np.ndarray:
    """``(rows, classes)`` out-of-fold probabilities of a logistic regression on
    ``vectors`` (stratified ``folds``); a class absent from a fold's training rows gets 0."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold
    from sklearn.preprocessing import StandardScaler

    probabilities = np.zeros((len(labels), classes))
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    for train, held in splitter.split(vectors, labels):
        scaler = StandardScaler().fit(vectors[train])
        model = LogisticRegression(C=0.5, max_iter=1000, random_state=seed)
        model.fit(scaler.transform(vectors[train]), labels[train])
        probabilities[np.ix_(held, model.classes_)] = model.predict_proba(
            scaler.transform(vectors[held])
        )
    return probabilities


def cosine_pairs(
    vectors: np.ndarray, cosine: float = COSINE, query: np.ndarray | None = None
) -> list[tuple[int, int, float]]:
    """``(i, j, distance)`` within ``cosine`` cosine distance: within ``vectors`` (i < j)
    or from a row of ``query`` (i) to a row of ``vectors`` (j). The vectors are unit long,
    so the Euclidean radius ``sqrt(2 * cosine)`` finds them."""
    from sklearn.neighbors import NearestNeighbors

    if len(vectors) == 0:
        return []
    index = NearestNeighbors(radius=float(np.sqrt(2 * cosine))).fit(vectors)
    distances, neighbours = index.radius_neighbors(vectors if query is None else query)
    pairs = []
    for i, (near, far) in enumerate(zip(neighbours, distances)):
        for j, distance in zip(near, far):
            if query is not None or i < j:
                pairs.append((i, int(j), round(float(distance) ** 2 / 2, 6)))
    return sorted(pairs, key=lambda pair: pair[2])


def near_duplicates(vectors: np.ndarray, labels, cosine: float = COSINE) -> dict:
    """duplicates()'s ``near`` entry, on embeddings (exact copies included: a file's
    bytes are compared by the exact check, its content here)."""
    pairs = cosine_pairs(vectors, cosine)
    return {
        "on": "pretrained embeddings",
        "cosine": cosine,
        "pairs_found": len(pairs),
        "rows": len({j for _, j, _ in pairs}),
        "pairs": [
            {"rows": [i + 1, j + 1], "distance": d, "labels": [str(labels[i]), str(labels[j])]}
            for i, j, d in pairs
        ],
    }


def near_leakage(train: np.ndarray, test: np.ndarray, cosine: float = COSINE) -> dict:
    """leakage()'s ``near`` entry on embeddings: each test row's closest training row."""
    closest: dict[int, tuple[int, float]] = {}
    for i, j, d in cosine_pairs(train, cosine, query=test):
        if i not in closest or d < closest[i][1]:
            closest[i] = (j, d)
    return {
        "on": "pretrained embeddings",
        "rows": len(closest),
        "pairs": [
            {"test_row": i + 1, "train_row": j + 1, "distance": d}
            for i, (j, d) in sorted(closest.items(), key=lambda item: item[1][1])
        ],
    }
