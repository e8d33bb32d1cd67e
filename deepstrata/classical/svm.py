"""``svm``: RBF-kernel support vector machines on standardised features.

Binary: one ``SVC``. Multiclass: one-vs-rest, K binary ``SVC`` (class k against
the rest), so that every class score is a plain kernel expansion. Regression:
``SVR``. The head keeps the numbers only, support vectors ``(S, D)``, dual
coefficients ``(M, S)`` and intercepts ``(M,)``, and computes

    score[m] = sum_s dual_coef[m, s] * exp(-gamma * ||support_vector[s] - x||^2) + intercept[m]

in NumPy. The one-vs-rest models share one support-vector matrix (the union of
their support vectors; a model's coefficient is 0 on the others' vectors), so the
kernel is computed once for all K scores.

The scores are margins, not calibrated logits: the argmax and the sign are the
predictions, but a softmax of them is not a probability estimate to trust.
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

# Kernel SVM training time grows between quadratically and cubically with the rows
# (libsvm's solver over an N x N kernel), and the model keeps up to N support vectors:
# past this a fit takes hours and the bundle gigabytes.
MAX_ROWS = 20_000

# Rows of the (rows, S) kernel block computed at once: about 32 MB of float64.
_KERNEL_ELEMENTS = 4_000_000


class SVMHead:
    """RBF-kernel SVC (binary; one-vs-rest for multiclass) or SVR (regression).

    ``C`` is the soft-margin penalty; ``gamma`` the RBF width, ``"scale"`` meaning
    scikit-learn's ``1 / (D * var(standardised features))``, resolved to a number at
    fit; ``epsilon`` the SVR's tube half-width in standardised target units.
    Fitting on more than ``MAX_ROWS`` rows raises :class:`ConfigError`.

    Fitted attributes: ``mean_``, ``scale_`` (D,); ``support_vectors_`` (S, D) in
    standardised units; ``dual_coef_`` (M, S); ``intercept_`` (M,); ``gamma_`` (float),
    with M = 1 for binary and regression, K for multiclass. A class without training
    rows gets zero coefficients and the intercept ``ABSENT_CLASS_SCORE``.

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> features = rng.normal(size=(80, 2))                      # (N, D)
    >>> target = (np.hypot(*features.T) > 1.2).astype(np.int64)  # a ring: not linear
    >>> head = SVMHead(task="binary").fit(features, target)
    >>> scores = head.outputs(features)                          # (N,)
    >>> scores.shape, float(((scores > 0) == target).mean()) > 0.9
    ((80,), True)
    """

    name = "svm"

    def __init__(
        self,
        *,
        task: str,
        num_classes: int = 0,
        seed: int = 0,
        C: float = 1.0,
        gamma: float | str = "scale",
        epsilon: float = 0.1,
    ) -> None:
        self.task = task
        self.num_classes = num_classes
        self.seed = seed
        self.C = C
        self.gamma = gamma
        self.epsilon = epsilon

    def fit(
        self,
        features: np.ndarray,
        target: np.ndarray,
        *,
        validation: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> Self:
        """Fit on (N, D) ``features`` and (N,) ``target``. ``validation`` is unused (no early stop)."""
        features, target, _ = check_fit_inputs(self, features, target, validation)
        if len(features) > MAX_ROWS:
            raise ConfigError(
                f"a kernel SVM trains in time quadratic to cubic in the rows; {len(features)} "
                f"rows is more than its limit of {MAX_ROWS}. Use --head logreg or --head gbm, "
                "which scale to many rows",
                option="--head",
            )
        if not self.C > 0:
            raise ConfigError(f"expected a positive number, got {self.C!r}", option="C")
        if not self.epsilon >= 0:
            raise ConfigError(f"expected a number >= 0, got {self.epsilon!r}", option="epsilon")
        mean, scale = standardisation(features)
        standardised = (features - mean) / scale
        gamma = self._resolve_gamma(standardised)
        # libsvm draws a seed from NumPy's global generator even when nothing is random
        # (no probability estimates); the caller's stream must not move because of it.
        numpy_state = np.random.get_state()
        try:
            models = self._fit_models(standardised, target, gamma)
        finally:
            np.random.set_state(numpy_state)

        # One support-vector matrix for all models: the union of the rows they use.
        support = np.unique(np.concatenate([rows for rows, _, _ in models]))
        dual_coef = np.zeros((len(models), len(support)))  # (M, S)
        for index, (rows, coefficients, _) in enumerate(models):
            dual_coef[index, np.searchsorted(support, rows)] = coefficients
        intercept = np.array([value for _, _, value in models])  # (M,)
        self.mean_, self.scale_, self.gamma_ = mean, scale, gamma
        self.support_vectors_ = np.ascontiguousarray(standardised[support])
        self.dual_coef_, self.intercept_ = dual_coef, intercept
        return self

    def _resolve_gamma(self, standardised: np.ndarray) -> float:
        if self.gamma == "scale":  # scikit-learn's rule, fixed here as a number
            variance = float(standardised.var())
            return 1.0 / (standardised.shape[1] * variance) if variance > 0 else 1.0
        if isinstance(self.gamma, str) or not self.gamma > 0:
            raise ConfigError(
                f"expected 'scale' or a positive number, got {self.gamma!r}", option="gamma"
            )
        return float(self.gamma)

    def _fit_models(
        self, standardised: np.ndarray, target: np.ndarray, gamma: float
    ) -> list[tuple[np.ndarray, np.ndarray, float]]:
        """``(support rows, dual coefficients, intercept)`` of the model behind each score."""
        from sklearn.svm import SVC, SVR

        def classifier() -> SVC:
            return SVC(kernel="rbf", C=self.C, gamma=gamma)

        def parts(model) -> tuple[np.ndarray, np.ndarray, float]:
            # scikit-learn's public dual_coef_ and intercept_ carry the sign of
            # decision_function: positive means the second class (here 1).
            return model.support_, model.dual_coef_[0], float(model.intercept_[0])

        if is_regression(self.task):
            model = SVR(kernel="rbf", C=self.C, gamma=gamma, epsilon=self.epsilon)
            return [parts(model.fit(standardised, target))]
        if single_score(self.task):
            return [parts(classifier().fit(standardised, target))]
        models = []
        for label in range(self.num_classes):
            is_label = (target == label).astype(np.int64)
            if is_label.any():
                models.append(parts(classifier().fit(standardised, is_label)))
            else:
                models.append((np.empty(0, np.int64), np.empty(0), ABSENT_CLASS_SCORE))
        return models

    def outputs(self, features: np.ndarray) -> np.ndarray:
        """Binary (N,) margins, multiclass (N, K) one-vs-rest margins, regression (N,) values."""
        check_fitted(self, "dual_coef_")
        features = check_features(features, num_features=len(self.mean_))
        standardised = (features - self.mean_) / self.scale_
        support_norms = np.einsum("sd,sd->s", self.support_vectors_, self.support_vectors_)
        rows = max(1, _KERNEL_ELEMENTS // max(1, len(self.support_vectors_)))
        scores = np.empty((len(standardised), len(self.intercept_)))
        for start in range(0, len(standardised), rows):
            chunk = standardised[start : start + rows]  # (n, D)
            # ||x - s||^2 = ||x||^2 + ||s||^2 - 2 x.s, clipped at 0 against rounding
            distances = (
                np.einsum("nd,nd->n", chunk, chunk)[:, None]
                + support_norms[None, :]
                - 2.0 * chunk @ self.support_vectors_.T
            )  # (n, S)
            kernel = np.exp(-self.gamma_ * np.maximum(distances, 0.0))
            scores[start : start + rows] = kernel @ self.dual_coef_.T + self.intercept_  # (n, M)
        return task_outputs(self.task, scores)

    def state(self) -> tuple[dict, dict[str, np.ndarray]]:
        """``(meta, arrays)``: settings and ``gamma``; mean, scale, support vectors, coefficients."""
        check_fitted(self, "dual_coef_")
        meta = state_meta(self) | {"fitted_gamma": self.gamma_}
        arrays = {
            "mean": self.mean_,
            "scale": self.scale_,
            "support_vectors": self.support_vectors_,
            "dual_coef": self.dual_coef_,
            "intercept": self.intercept_,
        }
        return meta, arrays

    @classmethod
    def from_state(cls, meta: dict, arrays: dict[str, np.ndarray]) -> Self:
        """The fitted head ``state()`` described."""
        head = check_state(cls, meta)
        head.mean_, head.scale_, head.gamma_ = arrays["mean"], arrays["scale"], meta["fitted_gamma"]
        head.support_vectors_ = arrays["support_vectors"]
        head.dual_coef_, head.intercept_ = arrays["dual_coef"], arrays["intercept"]
        return head
