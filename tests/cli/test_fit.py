"""``deepstrata fit``'s flags are made from the configuration's option specs: each option
is a flag, with its help and default, and no flag exists without an option."""

from __future__ import annotations

import inspect
import json
import subprocess
import sys

import pytest

from deepstrata.cli.fit import fit
from deepstrata.cli.launch import LAUNCH_FLAGS
from deepstrata.config import OPTIONS, FitConfig
from deepstrata.errors import ConfigError
from deepstrata.options import flag

FILE_FLAGS = {
    "ctx",
    "data",
    "out",
    "config",
    "column",
    "ignore",
    "run_dir",
    "resume",
    "overwrite",
    "quiet",
} | set(LAUNCH_FLAGS)  # the processes (deepstrata.cli.launch): not options either


def test_every_option_is_a_flag_and_every_flag_an_option():
    parameters = set(inspect.signature(fit).parameters)
    options = {name for name, option in OPTIONS.items() if option.cli}
    assert parameters - FILE_FLAGS == options
    assert {"columns", "ignore"} - parameters == {"columns"}  # --column NAME=KIND, repeatable


def test_the_help_shows_each_option_with_its_default(cli):
    text = cli("fit", "--help").out
    for option in OPTIONS.values():
        if option.cli:
            assert option.flag in text, option.flag
    assert "[plateau]" in text and "[200]" in text and "[256,128]" in text
    assert "--text-encoder" in text and "transformer | bag | cnn" in text  # a kind's option


def test_fit_help_answers_in_under_a_second_without_torch():
    code = (
        "import sys, time; t = time.perf_counter(); from deepstrata.cli import main\n"
        "try:\n    main(['fit', '--help'])\nexcept SystemExit:\n    pass\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
        "print(time.perf_counter() - t, file=sys.stderr)"
    )
    best = min(
        float(
            subprocess.run(
                [sys.executable, "-c", code], capture_output=True, text=True, check=True
            ).stderr.split()[-1]
        )
        for _ in range(3)
    )
    assert best < 1.0, f"fit --help took {best:.2f} s"


@pytest.mark.parametrize(
    ("name", "text", "value"),
    [
        ("hidden_dims", "64,32", [64, 32]),
        ("dropout", "0.3,0.1", [0.3, 0.1]),
        ("dropout", "0.2", 0.2),
        ("learning_rate", "3e-4", 3e-4),
        ("learning_rate", "auto", "auto"),
        ("max_epochs", "7", 7),
        ("precision", 16, "16"),
    ],
)
def test_flag_text_becomes_the_option_s_type(name, text, value):
    settings = {name: text}
    if name == "dropout" and isinstance(value, list):
        settings["hidden_dims"] = [8, 8]
    if name == "precision":
        with pytest.raises(ConfigError, match="--precision"):
            FitConfig(**settings)
        return
    assert getattr(FitConfig(**settings), name) == value


def test_the_sklearn_parameters_are_the_options_marked_for_it_with_their_defaults():
    from deepstrata.sklearn import DeepClassifier

    parameters = DeepClassifier().get_params()
    for name, option in OPTIONS.items():
        if option.sklearn:
            default = option.default
            assert parameters[name] == (tuple(default) if isinstance(default, list) else default)
    assert {"random_state", "verbose"} <= set(parameters)


def test_each_constraint_failure_names_the_flag():
    for name, bad in (
        ("patience", 0),
        ("validation_fraction", 1.5),
        ("image_size", 4),
        ("text_width", 30),
        ("schedule", "sometimes"),
        ("audio_mels", 0),
    ):
        with pytest.raises(ConfigError) as error:
            FitConfig(**{name: bad})
        assert error.value.option == flag(name), (name, error.value)


def test_a_no_flag_is_kept_where_the_default_is_not_off():
    """--no-ensemble (default: auto) and --no-calibrate (default: on) were dropped as "not
    given", so the fit ran the ensemble and calibrated anyway; an off-by-default switch
    left off is still not given (a config file's value stands)."""
    from deepstrata.cli.flags import given
    from deepstrata.config import OPTIONS

    values = {"ensemble": False, "calibrate": False, "tensorboard": False, "seed": None}
    assert "tensorboard" in OPTIONS and OPTIONS["tensorboard"].default is False
    assert given(values, OPTIONS) == {"ensemble": False, "calibrate": False}
    assert given({"ensemble": True, "seed": 3}, OPTIONS) == {"ensemble": True, "seed": 3}


def test_no_ensemble_on_the_command_line_fits_the_network_alone(cli, churn_csv, tmp_path):
    out = tmp_path / "net"
    args = ("--max-epochs", "1", "--no-ensemble", "--no-calibrate", "--quiet")
    result = cli("fit", churn_csv, "--target", "churned", "--out", out, *args)
    assert result.code == 0, result.err
    config = json.loads((out / "config.json").read_text())
    assert config["training"]["ensemble"] is False and config["training"]["calibrate"] is False
    assert len(config["members"]) == 1 and not list(out.glob("*lightgbm*"))
