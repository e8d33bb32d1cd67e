"""TreeSHAP for LightGBM members: the two columns that matter first, values on the
explained scale, chosen by auto, refused (named) where no LightGBM member is."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import deepstrata
from deepstrata.errors import ConfigError
from deepstrata.explain import explain
from tests.conftest import torch_threads
from tests.explain.conftest import away_from_baseline, two_column_frame

pytest.importorskip("shap", reason="the explain extra (shap) is not installed")


def steps(rows: int, seed: int) -> pd.DataFrame:
    """Yes where x1 and x2 are both positive: axis-aligned steps, which trees fit and a
    network trained for one epoch does not, so the ensemble keeps LightGBM."""
    frame = two_column_frame(rows, seed=seed, classes=True)
    frame["y"] = np.where((frame.x1 > 0) & (frame.x2 > 0), "yes", "no")
    return frame


@pytest.fixture(scope="module")
def gbm_model():
    with torch_threads(1):
        model = deepstrata.fit(
            steps(200, 0), target="y", ensemble=True, head="gbm", progress=False, seed=0,
            max_epochs=1,
        )  # fmt: skip
    assert any(getattr(m, "head", None) is not None for m in model.members)
    return model


def test_treeshap_ranks_the_two_columns_and_adds_up(gbm_model):
    rows = away_from_baseline(steps(300, 1))
    with torch_threads(1):
        explanation = explain(gbm_model, rows)  # auto: LightGBM (and networks)
    assert explanation.method == "tree"
    assert set(explanation.global_importance().column[:2]) == {"x1", "x2"}
    both = ((rows.x1 > 0) & (rows.x2 > 0)).to_numpy()  # "yes": both columns moved it
    top = explanation.top_columns(2)[both]
    wanted = {explanation.columns.index("x1"), explanation.columns.index("x2")}
    assert np.mean([set(row) == wanted for row in top]) >= 0.95
    change = explanation.predictions - explanation.base_values
    np.testing.assert_allclose(explanation.values.sum(axis=1), change, atol=1e-9)
    assert (
        explanation.faithfulness["deletion_area"] < explanation.faithfulness["deletion_area_random"]
    )


def test_treeshap_is_refused_without_a_lightgbm_member(regression_model):
    rows = two_column_frame(seed=1).drop(columns="y").head(5)
    with pytest.raises(ConfigError, match="TreeSHAP needs a LightGBM member") as error:
        explain(regression_model, rows, method="tree")
    assert error.value.option == "--method"
