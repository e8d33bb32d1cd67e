"""``fit --group COLUMN`` across the recipes: every group on one side of every split.

The split functions are tested in tests/data/test_split.py; here, that each recipe passes
the groups, records them, keeps the column out of the model, and refuses too few groups
(or a missing column) before any work.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import deepstrata
from deepstrata.config import FitConfig
from deepstrata.errors import ConfigError, DataError
from tests.conftest import make_churn_frame

QUICK = {"max_epochs": 2, "learning_rate": 0.01, "hidden_dims": [16], "progress": False}


def with_speakers(rows: int = 120, speakers: int = 12) -> pd.DataFrame:
    """The churn table with a ``speaker`` column: each speaker's rows hold both classes."""
    frame = make_churn_frame(rows=rows, seed=3)
    frame["speaker"] = [f"s{i % speakers:02d}" for i in range(rows)]
    return frame


def test_one_split_keeps_each_speaker_on_one_side_and_out_of_the_model():
    frame = with_speakers()
    model = deepstrata.fit(frame, target="churned", group="speaker", **QUICK)
    groups = model.metrics["groups"]
    assert groups["column"] == "speaker" and groups["total"] == 12
    assert groups["train"] + groups["validation"] == 12  # no speaker on both sides
    assert groups["validation"] >= 1
    assert "speaker" not in [f.name for f in model.schema.inputs]
    assert next(f.role for f in model.schema.features if f.name == "speaker") == "group"
    model.predict(frame.drop(columns=["speaker", "churned"]).head(3))  # no group needed


def test_regression_splits_by_group_too():
    frame = with_speakers().assign(monthly=lambda f: f["monthly"].fillna(0))
    frame = frame.drop(columns=["churned"])
    model = deepstrata.fit(frame, target="monthly", group="speaker", **QUICK)
    groups = model.metrics["groups"]
    assert groups["train"] + groups["validation"] == groups["total"] == 12


def test_folds_hold_each_speaker_out_once():
    model = deepstrata.fit(with_speakers(), target="churned", group="speaker", folds=3, **QUICK)
    per_fold = model.metrics["groups"]["per_fold"]
    assert len(per_fold) == 3
    assert all(fold["train"] + fold["validation"] == 12 for fold in per_fold)
    assert sum(fold["validation"] for fold in per_fold) == 12  # each held out in one fold


def test_cross_fitting_keeps_speakers_apart_in_both_splits():
    model = deepstrata.fit(
        with_speakers(), target="churned", group="speaker", folds=3, ensemble=True, **QUICK
    )
    per_fold = model.metrics["groups"]["per_fold"]
    assert all(f["train"] + f["stop"] + f["held_out"] == 12 for f in per_fold)
    assert sum(f["held_out"] for f in per_fold) == 12
    assert model.metrics["ensemble"]["cross_fitted"]["groups"] == model.metrics["groups"]


@pytest.mark.parametrize(
    ("options", "error", "words"),
    [
        ({"group": "speakr"}, ConfigError, "did you mean 'speaker'"),
        ({"group": "speaker", "folds": 13}, DataError, "12 group(s) in the labelled rows"),
        ({"group": "plan"}, DataError, "3 group(s)"),  # fine for one split...
        ({"group": "one"}, DataError, "1 group(s) in the labelled rows; a validation split"),
    ],
)
def test_too_few_groups_or_a_missing_column_fail_before_any_work(tmp_path, options, error, words):
    frame = with_speakers().assign(one="x")
    if options["group"] == "plan":
        options = {**options, "folds": 4, "ensemble": True}  # ...not for 4 folds and an inner split
        words = "3 group(s) in the labelled rows; --ensemble --folds 4 needs at least 5"
    run = tmp_path / "run"
    with pytest.raises(error, match=words.replace("(", r"\(").replace(")", r"\)")) as raised:
        deepstrata.fit(frame, target="churned", run_dir=run, **{**QUICK, **options})
    assert not run.exists()  # refused before the run directory was made
    if error is DataError:
        assert raised.value.column == options["group"]
    else:
        assert raised.value.option == "--group"


def test_a_row_without_a_group_is_named():
    frame = with_speakers()
    frame.loc[7, "speaker"] = None
    with pytest.raises(DataError, match="have no group") as raised:
        deepstrata.fit(frame, target="churned", group="speaker", **QUICK)
    assert (raised.value.column, raised.value.row) == ("speaker", 8)


@pytest.mark.parametrize(
    ("options", "words"),
    [
        ({"group_pattern": "(unclosed"}, "not a regular expression"),
        ({"group_pattern": r"\w+"}, "needs a capture group"),
        ({"group_pattern": r"(\w+)", "group": "speaker"}, "makes the column 'group'"),
    ],
)
def test_a_group_pattern_is_checked_with_the_options(options, words):
    with pytest.raises(ConfigError, match=words):
        FitConfig(**options)


def test_a_folder_takes_its_groups_from_the_file_names(tmp_path):
    for word in ("yes", "no"):
        for speaker in ("ann", "bob", "cy", "dee", "eve", "fay"):
            for take in range(3):
                path = tmp_path / "words" / word / f"{speaker}_{take}.txt"
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(f"{word} said {speaker} {take} " * 3, encoding="utf-8")
    model = deepstrata.fit(
        tmp_path / "words", group_pattern=r"^[^/]+/(\w+)_", text_encoder="bag", **QUICK
    )
    assert model.config.group == "group"
    groups = model.metrics["groups"]
    assert groups["total"] == 6 and groups["train"] + groups["validation"] == 6
    assert np.array_equal([f.name for f in model.schema.inputs], ["text"])
