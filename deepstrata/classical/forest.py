"""``forest``: a random forest (or extremely randomised trees), stored as arrays.

scikit-learn grows the trees; the head keeps each tree's nodes as plain arrays
(scikit-learn's ``tree_`` attributes: children, split feature, threshold, leaf
values) concatenated over the trees, and walks them in NumPy, so a loaded forest
needs neither pickle nor scikit-learn. The arrays grow with the rows: a fully
grown tree has up to about one leaf per training row, so ``T`` trees on ``N`` rows
keep up to ``2 N T`` nodes (``max_depth`` or ``min_samples_leaf`` bound it).
"""

from __future__ import annotations

from typing import Self

import numpy as np

from deepstrata.classical import (
    ABSENT_CLASS_SCORE,
    check_features,
    check_fit_inputs,
    check_fitted,
    check_state,
    check_task,
    is_regression,
    single_score,
    state_meta,
    task_outputs,
)
from deepstrata.errors import ConfigError

# A forest's class frequencies can be exactly 0; as logits that is minus infinity.
# The floor keeps outputs finite (a wrong "certain" row costs at most log(1e4) = 9.2
# nats of log loss) without changing any argmax; calibration rescales them after.
PROBABILITY_FLOOR = 1e-4

# Rows x trees walked at once: the node-index matrix and its gathers stay a few MB.
_WALK_ELEMENTS = 1_000_000


class ForestHead:
    """Random forest (``extra_trees=False``) or extra-trees, classifier or regressor.

    Class scores are the logarithms of the trees' mean leaf frequencies (floored at
    ``PROBABILITY_FLOOR``; binary: ``log(p1 / p0)``), so :func:`deepstrata.tasks.probabilities`
    gives back scikit-learn's ``predict_proba``; regression outputs are the mean
    of the trees' leaf values. ``max_features`` of ``None`` is scikit-learn's default
    per task (``"sqrt"`` for classifiers, all columns for regressors). Trees take
    the features as they come (no standardisation) and refuse NaN.

    Fitted attributes: ``roots_`` (T,) the first node of each tree; per node (all
    trees' nodes side by side) ``left_``, ``right_`` (child indices, -1 at a leaf),
    ``feature_`` (split column), ``threshold_`` (go left when ``x <= threshold``)
    and ``value_`` (nodes, M): class frequencies (K columns; a class without
    training rows stays 0) or the regression value (1 column); ``num_features_``.

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> features = rng.normal(size=(120, 2))                      # (N, D)
    >>> target = (features[:, 0] * features[:, 1] > 0).astype(np.int64)  # not linear
    >>> head = ForestHead(task="binary", n_estimators=50).fit(features, target)
    >>> scores = head.outputs(features)                           # (N,)
    >>> scores.shape, float(((scores > 0) == target).mean()) > 0.95
    ((120,), True)
    """

    name = "forest"

    def __init__(
        self,
        *,
        task: str,
        num_classes: int = 0,
        seed: int = 0,
        n_estimators: int = 200,
        max_depth: int | None = None,
        min_samples_leaf: int = 1,
        max_features: float | str | None = None,
        extra_trees: bool = False,
        num_threads: int | None = None,
    ) -> None:
        self.task = task
        self.num_classes = num_classes
        self.seed = seed
        self.n_estimators = n_estimators
        self.max_depth = max_depth
        self.min_samples_leaf = min_samples_leaf
        self.max_features = max_features
        self.extra_trees = extra_trees
        self.num_threads = num_threads

    def fit(
        self,
        features: np.ndarray,
        target: np.ndarray,
        *,
        validation: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> Self:
        """Fit on (N, D) ``features`` and (N,) ``target``. ``validation`` is unused (no early stop)."""
        features, target, _ = check_fit_inputs(self, features, target, validation)
        self._check_hyperparameters()
        model = self._estimator(len(features) * features.shape[1]).fit(features, target)
        trees = [estimator.tree_ for estimator in model.estimators_]
        sizes = np.array([tree.node_count for tree in trees])
        roots = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
        width = check_task(self.task, self.num_classes) or 1  # classes, or 1 value
        left, right, feature, threshold, value = [], [], [], [], []
        for root, tree in zip(roots, trees):
            leaf = tree.children_left == -1
            left.append(np.where(leaf, -1, tree.children_left + root))
            right.append(np.where(leaf, -1, tree.children_right + root))
            feature.append(np.where(leaf, 0, tree.feature))  # a leaf's -2 would index
            threshold.append(tree.threshold)
            leaf_values = tree.value[:, 0, :]  # (nodes, classes present) or (nodes, 1)
            if is_regression(self.task):
                value.append(leaf_values)
            else:
                # Counts or fractions depending on the scikit-learn version: normalised,
                # as its predict_proba does; columns moved to the classes they stand for.
                frequencies = np.zeros((len(leaf_values), width))
                frequencies[:, model.classes_] = leaf_values / leaf_values.sum(1, keepdims=True)
                value.append(frequencies)
        self.roots_ = roots
        self.left_ = np.ascontiguousarray(np.concatenate(left), dtype=np.int64)
        self.right_ = np.ascontiguousarray(np.concatenate(right), dtype=np.int64)
        self.feature_ = np.ascontiguousarray(np.concatenate(feature), dtype=np.int64)
        self.threshold_ = np.ascontiguousarray(np.concatenate(threshold), dtype=np.float64)
        self.value_ = np.ascontiguousarray(np.concatenate(value), dtype=np.float64)
        self.num_features_ = features.shape[1]
        return self

    def _check_hyperparameters(self) -> None:
        for option in ("n_estimators", "min_samples_leaf"):
            if not getattr(self, option) >= 1:
                raise ConfigError(
                    f"expected a whole number >= 1, got {getattr(self, option)!r}", option=option
                )
        if self.max_depth is not None and not self.max_depth >= 1:
            raise ConfigError(
                f"expected None or a whole number >= 1, got {self.max_depth!r}", option="max_depth"
            )

    def _estimator(self, work: int):
        from sklearn.ensemble import (
            ExtraTreesClassifier,
            ExtraTreesRegressor,
            RandomForestClassifier,
            RandomForestRegressor,
        )

        from deepstrata.classical.gbm import default_threads

        regression = is_regression(self.task)
        if self.extra_trees:
            cls = ExtraTreesRegressor if regression else ExtraTreesClassifier
        else:
            cls = RandomForestRegressor if regression else RandomForestClassifier
        max_features = self.max_features
        if max_features is None:
            max_features = 1.0 if regression else "sqrt"
        return cls(
            n_estimators=self.n_estimators,
            max_depth=self.max_depth,
            min_samples_leaf=self.min_samples_leaf,
            max_features=max_features,
            random_state=self.seed,
            n_jobs=self.num_threads or default_threads(work),
        )

    def outputs(self, features: np.ndarray) -> np.ndarray:
        """Binary (N,) log-odds, multiclass (N, K) log-frequencies, regression (N,) values."""
        check_fitted(self, "value_")
        features = check_features(features, num_features=self.num_features_)
        # scikit-learn compares float32 inputs with float64 thresholds: the same here,
        # so that a value on a threshold goes the same way.
        features = features.astype(np.float32).astype(np.float64)
        trees = len(self.roots_)
        rows = max(1, _WALK_ELEMENTS // (trees * self.value_.shape[1]))  # value_[node]: (n, T, M)
        mean = np.empty((len(features), self.value_.shape[1]))
        for start in range(0, len(features), rows):
            chunk = features[start : start + rows]  # (n, D)
            node = np.broadcast_to(self.roots_, (len(chunk), trees)).copy()  # (n, T)
            row = np.arange(len(chunk))[:, None]
            inner = self.left_[node] != -1
            while inner.any():
                goes_left = chunk[row, self.feature_[node]] <= self.threshold_[node]
                child = np.where(goes_left, self.left_[node], self.right_[node])
                node = np.where(inner, child, node)
                inner = self.left_[node] != -1
            mean[start : start + rows] = self.value_[node].mean(axis=1)  # (n, M)
        if is_regression(self.task):
            return task_outputs(self.task, mean)
        scores = np.log(np.maximum(mean, PROBABILITY_FLOOR))
        if single_score(self.task):
            return scores[:, 1] - scores[:, 0]
        absent = ~(self.value_ > 0).any(axis=0)  # classes no training row had
        scores[:, absent] = ABSENT_CLASS_SCORE
        return scores

    def state(self) -> tuple[dict, dict[str, np.ndarray]]:
        """``(meta, arrays)``: settings; the trees' roots and node arrays."""
        check_fitted(self, "value_")
        meta = state_meta(self) | {"num_features": self.num_features_}
        arrays = {
            "roots": self.roots_,
            "left": self.left_,
            "right": self.right_,
            "feature": self.feature_,
            "threshold": self.threshold_,
            "value": self.value_,
        }
        return meta, arrays

    @classmethod
    def from_state(cls, meta: dict, arrays: dict[str, np.ndarray]) -> Self:
        """The fitted head ``state()`` described."""
        head = check_state(cls, meta)
        head.roots_, head.left_, head.right_ = arrays["roots"], arrays["left"], arrays["right"]
        head.feature_, head.threshold_ = arrays["feature"], arrays["threshold"]
        head.value_, head.num_features_ = arrays["value"], meta["num_features"]
        _check_trees(head)
        return head


def _check_trees(head: ForestHead) -> None:
    """Refuse stored trees that could walk out of their arrays or forever (ValueError):
    every child must come after its parent (so every walk ends), every index and feature
    in range, every leaf value finite."""
    nodes = len(head.left_)
    arrays = (head.left_, head.right_, head.feature_, head.threshold_)
    if any(np.ndim(a) != 1 or len(a) != nodes for a in arrays) or nodes == 0:
        raise ValueError("forest: node arrays of different lengths, or none")
    if np.ndim(head.value_) != 2 or len(head.value_) != nodes or head.value_.shape[1] < 1:
        raise ValueError(f"forest: values of shape {np.shape(head.value_)} for {nodes} nodes")
    if np.ndim(head.roots_) != 1 or len(head.roots_) == 0:
        raise ValueError("forest: no trees")
    if not all(np.issubdtype(a.dtype, np.integer) for a in (head.roots_, *arrays[:3])):
        raise ValueError("forest: node indices and features must be integers")
    index = np.arange(nodes)
    leaf = head.left_ == -1
    inner = ~leaf
    if (head.right_[leaf] != -1).any():
        raise ValueError("forest: a leaf with a right child")
    for child in (head.left_[inner], head.right_[inner]):
        if ((child <= index[inner]) | (child >= nodes)).any():
            raise ValueError("forest: a child that does not come after its parent")
    features = head.feature_[inner]
    if ((features < 0) | (features >= head.num_features_)).any():
        raise ValueError(f"forest: a split on a feature outside 0..{head.num_features_ - 1}")
    if ((head.roots_ < 0) | (head.roots_ >= nodes)).any():
        raise ValueError("forest: a root outside the node arrays")
    if not np.isfinite(head.value_).all() or np.isnan(head.threshold_[inner]).any():
        raise ValueError("forest: a value that is not finite, or a NaN threshold")
