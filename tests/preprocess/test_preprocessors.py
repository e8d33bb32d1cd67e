import warnings

import numpy as np
import pandas as pd
import pytest

from deepstrata.data.sources import read_table
from deepstrata.errors import DataError, DataWarning
from deepstrata.preprocess.boolean import BooleanPreprocessor
from deepstrata.preprocess.category import MISSING, UNKNOWN, CategoryPreprocessor
from deepstrata.preprocess.datetime import DatetimePreprocessor
from deepstrata.preprocess.number import NumberPreprocessor
from deepstrata.preprocess.target import TargetEncoder


def fitted(pre, values):
    column = pd.Series(values, name="c")
    table = read_table(pd.DataFrame({"c": column}))
    return pre.fit(column, table), table


def test_number_imputes_flags_and_scales_robustly():
    values = [1.0, 2.0, 3.0, 4.0, np.nan, 1000.0]
    pre, table = fitted(NumberPreprocessor(), values)
    assert pre.center == 3.0 and pre.flag_missing
    out = pre.transform(pd.Series(values, name="c"), table)
    assert out.shape == (6, 2)
    assert out[4, 0] == 0.0 and out[4, 1] == 1.0  # median-imputed, flagged
    assert out[5, 0] == pre.clip  # the outlier is clipped, not allowed to dominate
    assert abs(out[:4, 0]).max() < 2  # ...and does not squash the ordinary values


def test_number_reports_text_and_infinity_with_the_row():
    pre, table = fitted(NumberPreprocessor(), [1.0, 2.0, 3.0])
    with pytest.raises(DataError) as error:
        pre.transform(pd.Series(["1", "2", "abc"], name="c"), table)
    assert error.value.column == "c" and error.value.row == 3 and "abc" in str(error.value)
    with pytest.raises(DataError, match="finite") as error:
        pre.transform(pd.Series([1.0, np.inf], name="c"), table)
    assert error.value.row == 2


def test_error_rows_refer_to_the_whole_table_not_the_subset():
    table = read_table(pd.DataFrame({"c": ["1", "2", "3", "x", "5"]}))
    subset = table.frame["c"].iloc[[2, 3]]  # the training split keeps original labels
    with pytest.raises(DataError) as error:
        NumberPreprocessor().fit(subset, table)
    assert error.value.row == 4


def test_category_rare_and_unseen_values_go_to_unknown_with_a_warning():
    pre, table = fitted(CategoryPreprocessor(min_count=2), ["a", "a", "b", "b", "c", None])
    assert pre.vocabulary == ["a", "b"]  # "c" is rarer than min_count
    with pytest.warns(DataWarning, match="'zebra'"):
        out = pre.transform(pd.Series(["a", "zebra", None], name="c"), table)
    assert out[:, 0].tolist() == [2, UNKNOWN, MISSING]


def test_category_values_match_across_int_and_float_spellings():
    pre, table = fitted(CategoryPreprocessor(min_count=1), [10, 20, 10])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = pre.transform(pd.Series([10.0, np.nan, 20.0], name="c"), table)
    assert out[:, 0].tolist() == [2, MISSING, 3]


def test_boolean_words_and_bad_values():
    pre, table = fitted(BooleanPreprocessor(), ["Yes", "no", "TRUE", "f"])
    out = pre.transform(pd.Series(["y", "N", "1"], name="c"), table)
    assert out[:, 0].tolist() == [1.0, -1.0, 1.0]
    with pytest.raises(DataError, match="maybe") as error:
        pre.transform(pd.Series(["yes", "maybe"], name="c"), table)
    assert error.value.row == 2


def test_datetime_cycles_and_bad_values():
    pre, table = fitted(
        DatetimePreprocessor(), ["2024-01-01 10:00", "2024-07-01 22:00", "2023-12-31 00:00"]
    )
    assert pre.has_time and pre.width == 9
    out = pre.transform(pd.Series(["2024-12-31", "2025-01-01"], name="c"), table)
    # December sits next to January: their month encodings are close.
    assert np.linalg.norm(out[0, 1:3] - out[1, 1:3]) < 0.6
    with pytest.raises(DataError, match="date") as error:
        pre.transform(pd.Series(["2024-01-01", "not a date"], name="c"), table)
    assert error.value.row == 2


def test_target_encoder_round_trips_labels_and_values():
    table = read_table(pd.DataFrame({"y": [2, 10, 2]}))
    encoder = TargetEncoder("multiclass").fit(table.frame["y"], table)
    assert encoder.classes == ["2", "10"]  # natural order, not "10" < "2"
    codes = encoder.encode(table.frame["y"], table)
    assert encoder.decode(codes).tolist() == [2, 10, 2]

    table = read_table(pd.DataFrame({"y": [1.0, 2.0, 3.0]}))
    encoder = TargetEncoder("regression").fit(table.frame["y"], table)
    np.testing.assert_allclose(
        encoder.decode(encoder.encode(table.frame["y"], table)), [1, 2, 3], rtol=1e-6
    )


def test_target_encoder_refuses_unknown_classes_with_the_row():
    table = read_table(pd.DataFrame({"y": ["a", "b", "c"]}))
    encoder = TargetEncoder("binary").fit(table.frame["y"].iloc[:2], table)
    with pytest.raises(DataError) as error:
        encoder.encode(table.frame["y"], table)
    assert error.value.row == 3 and error.value.column == "y"


@pytest.mark.parametrize(
    "values",
    [["a", None, "zebra", " b "], [10.0, np.nan, 20.0, 30.0], [True, False, None, True]],
)
def test_category_few_rows_path_matches_the_vectorised_path(values):
    from deepstrata.preprocess.category import FEW_ROWS

    pre, table = fitted(
        CategoryPreprocessor(min_count=1), ["a", "b", "10", "20", "true", "false"] * 2
    )
    few = pd.Series(values, name="c")
    many = pd.Series(values * (FEW_ROWS // len(values) + 1), name="c")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        np.testing.assert_array_equal(
            pre.transform(few, table), pre.transform(many, table)[: len(values)]
        )
