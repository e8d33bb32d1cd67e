import inspect
import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.datasets import make_blobs, make_regression
from sklearn.model_selection import GridSearchCV, StratifiedKFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

import deepstrata
from deepstrata.config import FitConfig
from deepstrata.errors import DataWarning
from deepstrata.sklearn import MIN_PREDICT_ROWS, DeepClassifier, DeepRegressor

# Small and quick, with a learning rate high enough that the checks' tiny data sets
# (30 rows, one step per epoch) are learnt in a few epochs, not passed by luck.
FAST = {"hidden_dims": (16,), "max_epochs": 20, "learning_rate": 1e-2}


# No check is expected to fail, so expected_failed_checks is empty; the two checks
# that sklearn skips itself need SCIPY_ARRAY_API set (array-API input).
@parametrize_with_checks([DeepClassifier(**FAST), DeepRegressor(**FAST)])
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


def blobs(rows=120, centers=3, seed=0):
    X, y = make_blobs(n_samples=rows, centers=centers, n_features=4, random_state=seed)
    return X, y


def regression(rows=120, seed=0):
    X, y = make_regression(n_samples=rows, n_features=5, noise=5.0, random_state=seed)
    return X, y


def test_defaults_are_deepstrata_defaults():
    config = FitConfig()
    for estimator in (DeepClassifier, DeepRegressor):
        params = {name: p.default for name, p in inspect.signature(estimator).parameters.items()}
        assert params.pop("random_state") == config.seed
        assert params.pop("verbose") is False
        assert params.pop("hidden_dims") == tuple(config.hidden_dims)
        assert params == {name: getattr(config, name) for name in params}


def test_get_params_set_params_clone():
    clf = DeepClassifier(dropout=0.3, hidden_dims=(8, 4))
    params = clf.get_params()
    assert params["dropout"] == 0.3 and params["hidden_dims"] == (8, 4)
    assert params["random_state"] == 0 and params["batch_size"] is None
    assert clf.set_params(dropout=0.0, max_epochs=3) is clf
    assert clf.dropout == 0.0 and clf.max_epochs == 3

    fitted = DeepClassifier(**FAST).fit(*blobs())
    copy = clone(fitted)
    assert copy.get_params() == fitted.get_params()
    assert not hasattr(copy, "model_") and not hasattr(copy, "classes_")


def test_classifier_fits_and_predicts_probabilities():
    X, y = blobs()
    clf = DeepClassifier(**FAST).fit(X, y)
    assert isinstance(clf.model_, deepstrata.Model) and clf.n_features_in_ == 4
    np.testing.assert_array_equal(clf.classes_, [0, 1, 2])
    proba = clf.predict_proba(X)
    assert proba.shape == (len(X), 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    np.testing.assert_array_equal(clf.predict(X), clf.classes_[proba.argmax(axis=1)])
    assert clf.score(X, y) > 0.95


def test_string_labels_round_trip():
    X, y = blobs(centers=2)
    names = np.array(["no", "yes"])[y]
    clf = DeepClassifier(**FAST).fit(X, names)
    np.testing.assert_array_equal(clf.classes_, ["no", "yes"])
    predicted = clf.predict(X)
    assert predicted.dtype == names.dtype and set(predicted) == {"no", "yes"}
    assert clf.score(X, names) > 0.95

    objects = clf.fit(X, names.astype(object)).predict(X)
    assert objects.dtype == object and isinstance(objects[0], str)


def test_integer_labels_stay_integers():
    X, y = blobs()
    labels = np.array([-5, 7, 100])[y]
    predicted = DeepClassifier(**FAST).fit(X, labels).predict(X)
    assert predicted.dtype == labels.dtype
    assert set(predicted.tolist()) == {-5, 7, 100}


def test_one_class_is_refused():
    X, _ = blobs()
    with pytest.raises(ValueError, match="class"):
        DeepClassifier(**FAST).fit(X, np.zeros(len(X)))


def test_too_few_samples_to_hold_out_a_validation_split():
    with pytest.raises(ValueError, match="every class has a single row"):
        DeepClassifier(**FAST).fit([[0.0], [1.0]], ["a", "b"])
    with pytest.raises(ValueError, match="1 sample"):
        DeepRegressor(**FAST).fit([[0.0]], [1.0])
    # A large validation_fraction still leaves every class a training row.
    model = DeepClassifier(**FAST, validation_fraction=0.9).fit(np.ones((4, 1)), [0, 0, 1, 1])
    assert model.model_.metrics["rows"] == {"train": 2, "validation": 2}


def test_invalid_parameters_fail_at_fit_naming_the_parameter():
    clf = DeepClassifier(dropout=2.0)  # __init__ only stores
    with pytest.raises(ValueError, match="dropout"):
        clf.fit(*blobs())


def test_every_column_is_a_number_feature():
    # An integer run looks like an id, a 0/1 column like a boolean, a constant like
    # nothing: inference would drop or re-kind them; the estimators force numbers.
    rows = 60
    rng = np.random.default_rng(0)
    X = np.column_stack([np.arange(rows), rng.integers(0, 2, rows), np.ones(rows)])
    y = rng.normal(size=rows)
    model = DeepRegressor(**FAST).fit(X, y).model_
    assert [(f.name, f.kind) for f in model.schema.inputs] == [
        ("x0", "number"),
        ("x1", "number"),
        ("x2", "number"),
    ]


def test_missing_values_are_imputed_and_infinity_is_refused():
    X, y = regression()
    X[::7, 1] = np.nan
    reg = DeepRegressor(**FAST).fit(X, y)
    assert np.isfinite(reg.predict(X)).all()
    X[3, 0] = np.inf
    with pytest.raises(ValueError, match="infinity"):
        reg.predict(X)
    with pytest.raises(ValueError, match="infinity"):
        DeepRegressor(**FAST).fit(X, y)


def test_a_feature_missing_everywhere_is_ignored_with_a_warning():
    X, y = blobs()
    X[:, 2] = np.nan
    with pytest.warns(DataWarning, match="x2"):
        clf = DeepClassifier(**FAST).fit(X, y)
    assert clf.n_features_in_ == 4
    assert [f.name for f in clf.model_.schema.inputs] == ["x0", "x1", "x3"]
    assert clf.score(X, y) > 0.9
    with pytest.raises(ValueError, match="every feature"):
        DeepClassifier(**FAST).fit(np.full((10, 2), np.nan), [0, 1] * 5)


def test_dataframe_input_sets_feature_names():
    X, y = blobs()
    frame = pd.DataFrame(X, columns=["a", "b", "c", "d"])
    clf = DeepClassifier(**FAST).fit(frame, y)
    np.testing.assert_array_equal(clf.feature_names_in_, ["a", "b", "c", "d"])
    # The same numbers as an array make the same model.
    from_array = DeepClassifier(**FAST).fit(X, y)
    np.testing.assert_array_equal(clf.predict_proba(frame), from_array.predict_proba(X))


def test_same_random_state_same_model_and_global_generators_untouched():
    X, y = regression()
    np.random.seed(123)
    expected_draw = np.random.rand()
    np.random.seed(123)
    first = DeepRegressor(**FAST, random_state=3).fit(X, y).predict(X)
    assert np.random.rand() == expected_draw  # fit did not reseed the caller's generator
    second = DeepRegressor(**FAST, random_state=3).fit(X, y).predict(X)
    other = DeepRegressor(**FAST, random_state=4).fit(X, y).predict(X)
    np.testing.assert_array_equal(first, second)
    assert not np.array_equal(first, other)


@pytest.mark.parametrize("estimator", [DeepClassifier(**FAST), DeepRegressor(**FAST)])
def test_a_rows_prediction_does_not_depend_on_its_batch(estimator):
    X, y = blobs(rows=150)
    estimator.fit(X, y)
    method = getattr(estimator, "predict_proba", estimator.predict)
    whole = method(X)
    for size in (1, 2, 7, 100):
        parts = np.concatenate([method(X[i : i + size]) for i in range(0, len(X), size)])
        # BLAS may round a product over many rows differently in the last bit for the
        # rows of its final, partial block; hence a float32 tolerance here ...
        np.testing.assert_allclose(parts, whole, rtol=1e-6, atol=1e-6)
    # ... and exact equality where every call is padded to the same MIN_PREDICT_ROWS.
    head = X[:MIN_PREDICT_ROWS]
    for size in (1, 2, 7):
        parts = np.concatenate([method(head[i : i + size]) for i in range(0, len(head), size)])
        np.testing.assert_array_equal(parts, method(head))


def test_saved_bundle_predicts_like_the_estimator(tmp_path):
    X, y = blobs()
    clf = DeepClassifier(**FAST).fit(X, y)
    loaded = deepstrata.load(clf.model_.save(tmp_path / "bundle"))
    frame = pd.DataFrame(X, columns=[f"x{i}" for i in range(X.shape[1])])
    np.testing.assert_allclose(loaded.predict_proba(frame), clf.predict_proba(X), rtol=1e-6)


def test_pipeline_with_standard_scaler():
    X, y = regression()
    pipeline = make_pipeline(StandardScaler(), DeepRegressor(**FAST)).fit(X, y)
    assert pipeline.predict(X).shape == (len(X),)
    assert pipeline.score(X, y) > 0.8


def test_cross_val_score():
    X, y = blobs()
    scores = cross_val_score(
        DeepClassifier(**FAST), X, y, cv=StratifiedKFold(3, shuffle=True, random_state=0)
    )
    assert scores.shape == (3,) and scores.min() > 0.9


def test_grid_search_over_dropout():
    X, y = blobs()
    search = GridSearchCV(DeepClassifier(**FAST), {"dropout": [0.0, 0.3]}, cv=2).fit(X, y)
    assert search.best_params_["dropout"] in (0.0, 0.3)
    assert search.best_estimator_.dropout == search.best_params_["dropout"]
    assert search.score(X, y) > 0.9


def test_quiet_by_default_and_verbose_shows_progress(capsys):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        DeepRegressor(**FAST).fit(*regression())
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""
    DeepRegressor(**FAST, verbose=True).fit(*regression())
    captured = capsys.readouterr()
    assert captured.out == "" and "val_loss" in captured.err
