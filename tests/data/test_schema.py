import numpy as np
import pandas as pd
import pytest

from deepstrata.data.schema import Schema, group_hints, infer_schema, infer_task
from deepstrata.errors import ConfigError, DataError, DataWarning


def frame(rows: int = 40) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        {
            "customer_id": [f"C{i:04d}" for i in range(rows)],
            "row_number": np.arange(rows),
            "age": rng.integers(18, 80, rows),
            "spend": rng.normal(50, 10, rows),
            "plan": rng.choice(["basic", "pro", "max"], rows),
            "active": rng.choice(["yes", "no"], rows),
            "flag01": rng.choice([0, 1], rows),
            "signup": pd.date_range("2024-01-01", periods=rows, freq="D").strftime("%Y-%m-%d"),
            "note": [f"customer said the product was fine number {i} overall" for i in range(rows)],
            "country": ["NL"] * rows,
            "churned": rng.choice(["yes", "no"], rows),
        }
    )


def kinds_roles(schema: Schema) -> dict:
    return {f.name: (f.kind, f.role) for f in schema.features}


def test_infers_kind_and_role_of_every_column():
    schema = infer_schema(frame(), target="churned")
    got = kinds_roles(schema)
    assert got["customer_id"][1] == "ignore"
    assert got["row_number"][1] == "ignore"
    assert got["age"] == ("number", "input")
    assert got["spend"] == ("number", "input")  # unique floats are measurements, not ids
    assert got["plan"] == ("category", "input")
    assert got["active"] == ("boolean", "input")
    assert got["flag01"] == ("boolean", "input")
    assert got["signup"] == ("datetime", "input")
    assert got["note"] == ("text", "input")
    assert got["country"][1] == "ignore"  # constant
    assert "constant" in next(f.reason for f in schema.features if f.name == "country")
    assert got["churned"][1] == "target"
    assert schema.task == "binary"


def test_overrides_force_kind_and_ignore():
    schema = infer_schema(frame(), target="churned", columns={"age": "category"}, ignore=["plan"])
    got = kinds_roles(schema)
    assert got["age"] == ("category", "input")
    assert got["plan"][1] == "ignore"


def test_unknown_override_column_suggests_a_close_name():
    with pytest.raises(ConfigError, match="did you mean 'spend'"):
        infer_schema(frame(), target="churned", columns={"spnd": "number"})


def test_unknown_kind_is_a_config_error():
    with pytest.raises(ConfigError, match="unknown kind"):
        infer_schema(frame(), target="churned", columns={"age": "colour"})


def test_missing_target_names_the_column():
    with pytest.raises(DataError) as error:
        infer_schema(frame(), target="churn", source="data.csv")
    assert error.value.column == "churn" and error.value.file == "data.csv"


def test_all_missing_column_is_ignored_with_a_warning_or_refused_when_forced():
    data = frame().assign(empty=np.nan)
    with pytest.warns(DataWarning, match="every value is missing"):
        schema = infer_schema(data, target="churned")
    assert kinds_roles(schema)["empty"][1] == "ignore"
    with pytest.raises(DataError) as error:
        infer_schema(data, target="churned", columns={"empty": "number"})
    assert error.value.column == "empty"


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (["a", "b"] * 10, "binary"),
        ([True, False] * 10, "binary"),
        (["a", "b", "c"] * 10, "multiclass"),
        ([0, 1, 2] * 10, "multiclass"),
        (np.linspace(0, 1, 30), "regression"),
        (list(range(100)), "regression"),  # many integer values: a quantity, not classes
    ],
)
def test_task_follows_the_target(values, expected):
    assert infer_task(pd.Series(values)) == expected


def test_task_override_is_checked():
    assert infer_task(pd.Series([0, 1, 2] * 5), task="regression") == "regression"
    with pytest.raises(DataError, match="2 classes"):
        infer_task(pd.Series([0, 1, 2] * 5), task="binary")
    with pytest.raises(DataError, match="numeric target"):
        infer_task(pd.Series(["a", "b"] * 5), task="regression")
    with pytest.raises(ConfigError):
        infer_task(pd.Series([0, 1]), task="ranking")


def test_single_class_target_is_refused():
    with pytest.raises(DataError, match="single value"):
        infer_task(pd.Series(["yes"] * 10), column="churned")


def test_mostly_numeric_strings_stay_numbers_so_the_bad_value_is_reported():
    values = [str(v) for v in range(30)] + ["oops"]
    schema = infer_schema(pd.DataFrame({"x": values, "y": [0, 1] * 15 + [0]}), target="y")
    assert kinds_roles(schema)["x"] == ("number", "input")


def test_schema_round_trips_through_a_dict():
    schema = infer_schema(frame(), target="churned")
    assert Schema.from_dict(schema.to_dict()) == schema


def with_speakers(rows: int = 60) -> pd.DataFrame:
    data = frame(rows)
    data["speaker"] = [f"s{i % 12}" for i in range(rows)]  # 12 speakers, 5 rows each
    data["patient_id"] = np.arange(rows) % 15  # 15 patients, numbered
    return data


def test_the_group_column_has_a_role_of_its_own_and_is_no_input():
    schema = infer_schema(with_speakers(), target="churned", group="speaker")
    speaker = next(f for f in schema.features if f.name == "speaker")
    assert (speaker.kind, speaker.role) == ("category", "group")
    assert "12 values" in speaker.reason
    assert "speaker" not in [f.name for f in schema.inputs]
    assert Schema.from_dict(schema.to_dict()).features == schema.features


def test_a_missing_group_column_is_named_with_a_close_name():
    with pytest.raises(ConfigError, match="did you mean 'speaker'") as raised:
        infer_schema(with_speakers(), target="churned", group="speakr")
    assert raised.value.option == "--group"
    with pytest.raises(ConfigError, match="is the target"):
        infer_schema(with_speakers(), target="churned", group="churned")


def test_inspect_says_which_columns_look_like_groups():
    data = with_speakers()
    hints = group_hints(data, infer_schema(data, target="churned"))
    assert hints == [
        "column speaker looks like a group (12 values, 5 rows each on average): "
        "--group speaker keeps each on one side of validation",
        "column patient_id looks like a group (15 values, 4 rows each on average): "
        "--group patient_id keeps each on one side of validation",
    ]
    # the target, unique ids, few values and the chosen group are no hint
    data["churned"] = [f"c{i % 12}" for i in range(len(data))]
    schema = infer_schema(data, target="churned", group="speaker")
    assert [hint.split()[1] for hint in group_hints(data, schema)] == ["patient_id"]
