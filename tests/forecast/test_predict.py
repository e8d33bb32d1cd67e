import numpy as np
import pytest

from deepstrata.errors import DataError
from deepstrata.forecast.predict import quantile_column
from tests.forecast.conftest import tiny_panel
from tests.forecast.test_fit import future_rows, panel_csv_with


def test_quantile_columns_are_named_by_percent():
    assert quantile_column("units", 0.1) == "units_q10" and quantile_column("y", 0.975) == "y_q97.5"


def test_a_covariate_missing_from_the_future_rows_is_named(forecaster, tmp_path):
    frame = tiny_panel()
    future = future_rows(frame)
    future.loc[2, "promo"] = np.nan
    with pytest.raises(
        DataError,
        match="column 'promo': the known-ahead covariate is missing from a future row of series a",
    ):
        forecaster.predictions(panel_csv_with(frame, future, tmp_path))
    with pytest.raises(DataError, match="0 future rows of series a"):
        forecaster.predictions(panel_csv_with(frame, future.iloc[:0], tmp_path))
