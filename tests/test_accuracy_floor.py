"""Accuracy floors for the sklearn estimators at their default settings.

Five-fold cross-validation on scikit-learn's bundled data sets (no download):
a floor met with defaults is evidence about the defaults a user gets, not about
hyper-parameters tuned to pass. The per-fold figures are printed (``pytest -s``)
and every assertion message carries the mean. About 15 s on 2 CPU cores.
"""

import numpy as np
from sklearn.datasets import load_breast_cancer, load_diabetes, load_wine
from sklearn.model_selection import KFold, StratifiedKFold, cross_val_score

from deepstrata.sklearn import DeepClassifier, DeepRegressor


def five_fold(estimator, loader, cv, name: str) -> float:
    X, y = loader(return_X_y=True)
    scores = cross_val_score(estimator, X, y, cv=cv)
    print(f"{name}: folds {np.round(scores, 4).tolist()}, mean {scores.mean():.4f}")
    return float(scores.mean())


def test_breast_cancer_accuracy_at_least_095():
    cv = StratifiedKFold(5, shuffle=True, random_state=0)
    mean = five_fold(DeepClassifier(), load_breast_cancer, cv, "breast_cancer accuracy")
    assert mean >= 0.95, f"breast_cancer 5-fold mean accuracy {mean:.4f} < 0.95"


def test_wine_accuracy_at_least_095():
    cv = StratifiedKFold(5, shuffle=True, random_state=0)
    mean = five_fold(DeepClassifier(), load_wine, cv, "wine accuracy")
    assert mean >= 0.95, f"wine 5-fold mean accuracy {mean:.4f} < 0.95"


def test_diabetes_r2_at_least_040():
    cv = KFold(5, shuffle=True, random_state=0)
    mean = five_fold(DeepRegressor(), load_diabetes, cv, "diabetes R²")
    assert mean >= 0.40, f"diabetes 5-fold mean R² {mean:.4f} < 0.40"
