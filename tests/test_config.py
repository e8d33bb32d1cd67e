import pytest

from deepstrata.config import FitConfig, load_config_file, parse_columns
from deepstrata.errors import ConfigError


@pytest.mark.parametrize(
    ("field", "value", "flag"),
    [
        ("learning_rate", 0, "--learning-rate"),
        ("dropout", 1.0, "--dropout"),
        ("batch_size", 0, "--batch-size"),
        ("max_epochs", 0, "--max-epochs"),
        ("validation_fraction", 1.0, "--validation-fraction"),
        ("time_limit", -5, "--time-limit"),
        ("task", "ranking", "--task"),
        ("hidden_dims", [], "--hidden-dims"),
    ],
)
def test_invalid_values_name_the_flag(field, value, flag):
    with pytest.raises(ConfigError) as error:
        FitConfig(**{field: value}).validate()
    assert error.value.option == flag and str(error.value).startswith(flag)


def test_keys_may_be_flags_or_field_names():
    config = FitConfig.from_dict({"max-epochs": 7, "learning_rate": 0.01, "column": ["a=category"]})
    assert (
        config.max_epochs == 7
        and config.learning_rate == 0.01
        and config.columns == {"a": "category"}
    )


def test_unknown_key_suggests_the_right_one():
    with pytest.raises(ConfigError, match="did you mean '--max-epochs'"):
        FitConfig.from_dict({"max-epoch": 3}, source="run.yaml")


def test_parse_columns_forms():
    assert parse_columns("zip=category") == {"zip": "category"}
    assert parse_columns({"zip": "category"}) == {"zip": "category"}
    with pytest.raises(ConfigError, match="NAME=KIND"):
        parse_columns(["zip"])


def test_yaml_file(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("max-epochs: 3\ncolumn:\n  - plan=category\n")
    assert FitConfig.from_dict(load_config_file(path)).max_epochs == 3
    path.write_text("- just\n- a list\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config_file(path)
    with pytest.raises(ConfigError, match="not found"):
        load_config_file(tmp_path / "missing.yaml")
