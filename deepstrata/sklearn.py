"""scikit-learn estimators over deepstrata: :class:`DeepClassifier` and :class:`DeepRegressor`.

They take numeric arrays (NaN allowed: every column is a ``number`` feature,
whose preprocessor imputes the median and flags missing values), so they fit
in a ``Pipeline``, ``cross_val_score`` or ``GridSearchCV`` like any other
estimator. ``X`` becomes a DataFrame with columns ``x0 .. x{n-1}``, every one
forced to the ``number`` kind: schema inference never sees an sklearn array,
so an integer column is never taken for an id nor a 0/1 column for a boolean.

>>> from sklearn.datasets import load_iris
>>> from deepstrata.sklearn import DeepClassifier
>>> X, y = load_iris(return_X_y=True)
>>> clf = DeepClassifier(hidden_dims=(16,), max_epochs=5).fit(X, y)
>>> clf.predict(X[:2]).shape, clf.predict_proba(X[:2]).shape
((2,), (2, 3))
"""

from __future__ import annotations

import inspect
import numbers
import warnings

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.utils import check_random_state
from sklearn.utils.multiclass import check_classification_targets, type_of_target
from sklearn.utils.validation import check_is_fitted, validate_data

from deepstrata.api import Model, fit
from deepstrata.config import OPTIONS as CONFIG_OPTIONS
from deepstrata.errors import DataWarning

__all__ = ["DeepClassifier", "DeepRegressor"]

TARGET = "y"  # the target column's name; inputs are x0, x1, ... so it never collides
# Matrix products over fewer rows than this take other BLAS kernels, whose float32
# rounding differs in the last bit; short batches are padded to it so that a row's
# prediction does not depend on how many rows share its call.
MIN_PREDICT_ROWS = 64


# The FitConfig options that are estimator parameters (those an array of numbers can use),
# with their declared defaults; lists become tuples (a parameter's default must not be a
# mutable object shared by every instance).
OPTIONS = [option for option in CONFIG_OPTIONS.values() if option.sklearn]
PARAMETERS = {
    **{o.name: tuple(o.default) if isinstance(o.default, list) else o.default for o in OPTIONS},
    "random_state": 0,  # -> seed; None or a RandomState draws one
    "verbose": False,  # -> progress
}


class _DeepEstimator(BaseEstimator):
    """Parameters and the fit/predict plumbing that both estimators share.

    Parameters are :class:`deepstrata.config.FitConfig`'s options marked for scikit-learn
    (same names, same defaults: :data:`PARAMETERS`), plus ``random_state`` (-> ``seed``)
    and ``verbose`` (-> ``progress``).
    """

    def __init__(self, **parameters) -> None:
        unknown = sorted(set(parameters) - set(PARAMETERS))
        if unknown:
            raise TypeError(
                f"{type(self).__name__} got unexpected parameter(s) {', '.join(unknown)}; "
                f"its parameters are {', '.join(PARAMETERS)}"
            )
        for name, value in {**PARAMETERS, **parameters}.items():
            setattr(self, name, value)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True  # imputed and flagged by the number preprocessor
        return tags

    def _validate(self, X, y) -> tuple[np.ndarray, np.ndarray]:
        return validate_data(
            self,
            X,
            y,
            dtype=np.float64,
            ensure_all_finite="allow-nan",  # NaN is a missing value; inf is an error
            ensure_min_samples=2,  # one row for training, one for validation
            y_numeric=isinstance(self, RegressorMixin),
            multi_output=_indicator(self, y),
        )

    def _fit_model(self, X: np.ndarray, target: np.ndarray, *, task: str) -> Model:
        """Train on ``X`` (float64, NaN for missing) and the encoded ``target``."""
        names = [f"x{i}" for i in range(X.shape[1])]
        empty = [name for name, column in zip(names, X.T) if np.isnan(column).all()]
        if len(empty) == len(names):
            raise ValueError(
                f"{type(self).__name__}: every feature of X is missing (NaN) in every sample; "
                "there is nothing to learn from"
            )
        if empty:
            # Like SimpleImputer: a feature with no value at all carries no signal, so it
            # is left out of the network (n_features_in_ still counts it).
            warnings.warn(
                f"feature(s) {', '.join(empty)} of X are missing in every sample and are ignored",
                DataWarning,
                stacklevel=3,
            )
        frame = pd.DataFrame(X, columns=names)
        frame[TARGET] = target
        return fit(
            frame,
            target=TARGET,
            task=task,
            columns=dict.fromkeys(names, "number"),
            ignore=empty,
            **{
                o.name: list(v) if isinstance(v := getattr(self, o.name), tuple) else v
                for o in OPTIONS
            },
            seed=_seed(self.random_state),
            progress=bool(self.verbose),
            ensemble=False,  # the estimator is the network; scikit-learn composes ensembles
        )

    def _frame(self, X) -> tuple[pd.DataFrame, int]:
        """Validated ``X`` as the DataFrame the Model was trained on (no target), padded
        with missing rows to :data:`MIN_PREDICT_ROWS`, and its number of real rows."""
        check_is_fitted(self)
        X = validate_data(self, X, dtype=np.float64, ensure_all_finite="allow-nan", reset=False)
        frame = pd.DataFrame(X, columns=[f"x{i}" for i in range(X.shape[1])])
        return frame.reindex(range(max(len(frame), MIN_PREDICT_ROWS))), len(frame)


class DeepClassifier(ClassifierMixin, _DeepEstimator):
    """A deepstrata network (MLP over scaled numbers) as an sklearn classifier.

    Parameters: ``hidden_dims`` (widths of the hidden layers), ``dropout``,
    ``learning_rate``, ``weight_decay``, ``batch_size`` (None: chosen from the
    number of rows), ``max_epochs``, ``patience`` (epochs without validation-loss
    improvement before stopping), ``validation_fraction`` (held out of ``X``,
    stratified by class, for early stopping), ``random_state`` (an int is the
    deepstrata seed: same seed, same machine, same weights) and ``verbose``.

    ``y`` may be a 2-D 0/1 indicator (multilabel: each row any number of labels).

    Fitted attributes: ``classes_`` (sorted labels, y's dtype; multilabel: the label
    columns ``0 .. L-1``), ``n_features_in_``,
    ``feature_names_in_`` (when X is a DataFrame with string column names) and
    ``model_`` (the :class:`deepstrata.api.Model`; ``model_.save(path)`` writes a bundle).

    >>> import numpy as np
    >>> X = np.r_[np.zeros((20, 2)), np.ones((20, 2))]
    >>> y = np.array(["no"] * 20 + ["yes"] * 20)
    >>> DeepClassifier(hidden_dims=(8,), max_epochs=30).fit(X, y).predict([[1.0, 1.0]])
    array(['yes'], dtype='<U3')
    """

    def fit(self, X, y) -> DeepClassifier:
        X, y = self._validate(X, y)
        check_classification_targets(y)
        if type_of_target(y) == "multilabel-indicator":
            return self._fit_multilabel(X, y)
        self.classes_, codes = np.unique(y, return_inverse=True)
        if len(self.classes_) < 2:
            raise ValueError(
                f"DeepClassifier needs at least 2 classes in y, got 1 class ({self.classes_[0]!r})"
            )
        task = "binary" if len(self.classes_) == 2 else "multiclass"
        self.model_ = self._fit_model(X, codes.astype(np.int64), task=task)
        return self

    def _fit_multilabel(self, X: np.ndarray, y: np.ndarray) -> DeepClassifier:
        """A 2-D 0/1 ``y``: one sigmoid per column (label), as scikit-learn's MLPClassifier."""
        self.classes_ = np.arange(y.shape[1])
        target = np.empty(len(y), dtype=object)
        target[:] = [[str(k) for k in np.flatnonzero(row)] for row in y]
        self.model_ = self._fit_model(X, target, task="multilabel")
        return self

    @property
    def _multilabel(self) -> bool:
        check_is_fitted(self)
        return self.model_.spec.prediction == "labels"

    def predict_proba(self, X) -> np.ndarray:
        """``(n_samples, n_classes)`` probabilities, columns in the order of ``classes_``
        (multilabel: each label's own probability)."""
        frame, rows = self._frame(X)
        proba = self.model_.predict_proba(frame)[:rows]
        ordered = np.empty_like(proba)
        ordered[:, np.asarray(self.model_.classes)] = proba  # model classes are class codes
        return ordered

    def predict(self, X) -> np.ndarray:
        """Labels from ``classes_`` (y's dtype), the most probable for each sample; for a
        multilabel ``y``, the ``(n_samples, n_labels)`` 0/1 indicator (each label at the
        threshold chosen on the validation rows)."""
        if self._multilabel:
            frame, rows = self._frame(X)
            indicator = np.zeros((rows, len(self.classes_)), dtype=np.int64)
            for row, labels in enumerate(self.model_.predict(frame)[:rows]):
                indicator[row, np.asarray(labels, dtype=np.int64)] = 1
            return indicator
        proba = self.predict_proba(X)
        return self.classes_[np.argmax(proba, axis=1)]


class DeepRegressor(RegressorMixin, _DeepEstimator):
    """A deepstrata network (MLP over scaled numbers) as an sklearn regressor.

    Same parameters as :class:`DeepClassifier`; the target is standardised for
    training and predictions come back in y's units. The validation split is a
    plain shuffled one. Fitted attributes: ``n_features_in_``,
    ``feature_names_in_`` (for DataFrame input) and ``model_``.

    >>> import numpy as np
    >>> X = np.linspace(0, 1, 40)[:, None]
    >>> DeepRegressor(hidden_dims=(8,), max_epochs=5).fit(X, 3 * X[:, 0]).predict(X[:2]).shape
    (2,)
    """

    def fit(self, X, y) -> DeepRegressor:
        X, y = self._validate(X, y)
        self.model_ = self._fit_model(X, y.astype(np.float64), task="regression")
        return self

    def predict(self, X) -> np.ndarray:
        """``(n_samples,)`` float64 predictions in y's units."""
        frame, rows = self._frame(X)
        return np.asarray(self.model_.predict(frame)[:rows], dtype=np.float64)


def _indicator(estimator, y) -> bool:
    """A classifier's ``y`` of several columns: a multilabel indicator. (One column is a
    1-D target, which scikit-learn ravels with a warning.)"""
    if not isinstance(estimator, ClassifierMixin):
        return False
    shape = np.asarray(y).shape
    return len(shape) == 2 and shape[1] > 1


def _seed(random_state) -> int:
    """An int is the seed itself (``random_state=0`` is deepstrata's ``seed=0``);
    None or a RandomState draws one, as sklearn estimators do."""
    if isinstance(random_state, numbers.Integral) and not isinstance(random_state, bool):
        if random_state < 0:
            raise ValueError(f"random_state must be a non-negative int, got {random_state}")
        return int(random_state)
    return int(check_random_state(random_state).randint(np.iinfo(np.int32).max))


# scikit-learn reads an estimator's parameters from its __init__'s signature.
_DeepEstimator.__init__.__signature__ = inspect.Signature(
    [
        inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD),
        *(
            inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default)
            for name, default in PARAMETERS.items()
        ),
    ]
)
