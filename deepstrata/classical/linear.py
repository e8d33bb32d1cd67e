"""``logreg``: logistic regression (classification) or ridge regression on standardised features.

scikit-learn fits; the head keeps only the numbers (column mean and scale,
coefficients, intercepts) and computes outputs in NumPy, so a loaded head needs
neither scikit-learn nor pickle.
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
    is_regression,
    single_score,
    standardisation,
    state_meta,
    task_outputs,
)
from deepstrata.errors import ConfigError


class LinearHead:
    """Logistic regression (binary, multinomial for K > 2) or ridge regression.

    ``C`` is the inverse L2 strength of the logistic regression, ``alpha`` the
    ridge's L2 strength; both act on standardised features, so one value suits
    embeddings of any scale. ``max_iter`` bounds L-BFGS; 1k rows of 1280-d
    embeddings converge in a few hundred iterations.

    Fitted attributes: ``mean_``, ``scale_`` (D,); ``coef_`` (M, D), ``intercept_`` (M,)
    with M = 1 for binary and regression, K for multiclass. A class without training
    rows gets zero coefficients and the intercept ``ABSENT_CLASS_SCORE``.

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> features = rng.normal(size=(90, 3))                      # (N, D)
    >>> target = np.argmax(features, axis=1)                     # (N,) in 0..2
    >>> head = LinearHead(task="multiclass", num_classes=3).fit(features, target)
    >>> scores = head.outputs(features)                          # (N, K)
    >>> scores.shape, float((scores.argmax(axis=1) == target).mean()) > 0.9
    ((90, 3), True)
    """

    name = "logreg"

    def __init__(
        self,
        *,
        task: str,
        num_classes: int = 0,
        seed: int = 0,
        C: float = 1.0,
        alpha: float = 1.0,
        max_iter: int = 5000,
    ) -> None:
        self.task = task
        self.num_classes = num_classes
        self.seed = seed
        self.C = C
        self.alpha = alpha
        self.max_iter = max_iter

    def fit(
        self,
        features: np.ndarray,
        target: np.ndarray,
        *,
        validation: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> Self:
        """Fit on (N, D) ``features`` and (N,) ``target``. ``validation`` is unused (no early stop)."""
        features, target, _ = check_fit_inputs(self, features, target, validation)
        for option, value in (("C", self.C), ("alpha", self.alpha), ("max_iter", self.max_iter)):
            if not value > 0:
                raise ConfigError(f"expected a positive number, got {value!r}", option=option)
        mean, scale = standardisation(features)
        standardised = (features - mean) / scale
        if is_regression(self.task):
            from sklearn.linear_model import Ridge

            model = Ridge(alpha=self.alpha).fit(standardised, target)
            coef, intercept = model.coef_.reshape(1, -1), np.reshape(model.intercept_, (1,))
        else:
            coef, intercept = self._fit_logistic(standardised, target)
        self.mean_, self.scale_ = mean, scale
        self.coef_ = np.ascontiguousarray(coef, dtype=np.float64)
        self.intercept_ = np.ascontiguousarray(intercept, dtype=np.float64)
        return self

    def _fit_logistic(
        self, standardised: np.ndarray, target: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        from sklearn.linear_model import LogisticRegression

        model = LogisticRegression(C=self.C, max_iter=self.max_iter, random_state=self.seed)
        model.fit(standardised, target)
        if single_score(self.task):
            return model.coef_, model.intercept_  # (1, D), (1,): score > 0 means class 1
        present = model.classes_
        coef = np.zeros((self.num_classes, standardised.shape[1]))
        intercept = np.full(self.num_classes, ABSENT_CLASS_SCORE)
        if len(present) == 2:
            # scikit-learn fits two classes as one binary score s; scores (-s/2, s/2)
            # give the same softmax probabilities as sigmoid(s).
            coef[present], intercept[present] = (
                np.concatenate([-model.coef_, model.coef_]) / 2,
                np.concatenate([-model.intercept_, model.intercept_]) / 2,
            )
        else:
            coef[present], intercept[present] = model.coef_, model.intercept_
        return coef, intercept

    def outputs(self, features: np.ndarray) -> np.ndarray:
        """Binary (N,) logits, multiclass (N, K) logits, regression (N,) standardised values."""
        check_fitted(self, "coef_")
        features = check_features(features, num_features=len(self.mean_))
        standardised = (features - self.mean_) / self.scale_
        return task_outputs(self.task, standardised @ self.coef_.T + self.intercept_)

    def state(self) -> tuple[dict, dict[str, np.ndarray]]:
        """``(meta, arrays)``: JSON-ready settings and the mean, scale, coef, intercept arrays."""
        check_fitted(self, "coef_")
        meta = state_meta(self)
        arrays = {
            "mean": self.mean_,
            "scale": self.scale_,
            "coef": self.coef_,
            "intercept": self.intercept_,
        }
        return meta, arrays

    @classmethod
    def from_state(cls, meta: dict, arrays: dict[str, np.ndarray]) -> Self:
        """The fitted head ``state()`` described."""
        head = check_state(cls, meta)
        head.mean_, head.scale_ = arrays["mean"], arrays["scale"]
        head.coef_, head.intercept_ = arrays["coef"], arrays["intercept"]
        return head
