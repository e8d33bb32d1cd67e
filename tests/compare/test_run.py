"""``deepstrata compare``: learning curves of the network against classical families.

One real run on the churn-like table (every tabular kind) is shared by the module;
spies record which rows each fit was given, so the split rules are checked on what
actually trained, not on what the code meant to pass.
"""

from __future__ import annotations

import base64
import json
import math

import numpy as np
import pandas as pd
import pytest

from deepstrata.compare import run as compare_module
from deepstrata.compare.run import CompareResult, compare
from deepstrata.errors import ConfigError, DataError
from tests.conftest import make_churn_frame, torch_threads

FAST = {"max_epochs": 3, "learning_rate": 0.01, "progress": False}  # no range test
FAMILIES = ("network", "logreg", "forest", "gbm", "svm")


@pytest.fixture(scope="module")
def run():
    """(result, the rows each fit saw): 5 families x 2 fractions x 2 seeds on 200 rows."""
    seen = []
    network, classical = compare_module._network, compare_module._classical

    def spy_network(sub, train, validation, test_rows, metric):
        seen.append(("network", sub.cfg.seed, sub.frame.index, train, test_rows[0].index))
        return network(sub, train, validation, test_rows, metric)

    def spy_classical(sub, train, validation, test_rows, families, options, metric):
        seen.append(("classical", sub.cfg.seed, sub.frame.index, train, test_rows[0].index))
        return classical(sub, train, validation, test_rows, families, options, metric)

    with pytest.MonkeyPatch.context() as patch, torch_threads(1):
        patch.setattr(compare_module, "_network", spy_network)
        patch.setattr(compare_module, "_classical", spy_classical)
        result = compare(
            make_churn_frame(),
            target="churned",
            fractions=(1.0, 0.5),
            seeds=(0, 1),
            families=FAMILIES,
            **FAST,
        )
    return result, seen


def test_the_result_dict_has_the_compare_json_format(run):
    result, _ = run
    found = json.loads(json.dumps(result.to_dict()))  # plain JSON
    assert list(found) == [
        "data",
        "target",
        "metric",
        "higher_is_better",
        "test_rows",
        "fractions",
        "seeds",
        "points",
        "skipped",
        "winners",
    ]
    assert found["data"] == "<DataFrame>" and found["target"] == "churned"
    assert found["metric"] == "accuracy" and found["higher_is_better"] is True
    assert found["test_rows"] == 40  # 20 % of 200, stratified
    assert found["fractions"] == [0.5, 1.0] and found["seeds"] == [0, 1]
    assert found["skipped"] == {}
    assert len(found["points"]) == len(FAMILIES) * 2 * 2
    for point in found["points"]:
        assert set(point) == {"family", "fraction", "rows", "seed", "value", "seconds"}
        assert point["rows"] == {0.5: 80, 1.0: 160}[point["fraction"]]
        assert 0.5 <= point["value"] <= 1.0, point  # the rule is learnable: above chance
        assert point["seconds"] >= 0
    assert {(p["family"], p["fraction"], p["seed"]) for p in found["points"]} == {
        (f, fr, s) for f in FAMILIES for fr in (0.5, 1.0) for s in (0, 1)
    }


def test_no_fit_sees_a_test_row_and_subsets_are_nested(run):
    result, seen = run
    tests = {tuple(test) for *_, test in seen}
    assert len(tests) == 1  # one test split for every seed and fraction
    test = set(next(iter(tests)))
    assert len(test) == result.test_rows
    everything = set(range(200))
    for family in ("network", "classical"):
        for seed in (0, 1):
            subsets = [set(rows) for f, s, rows, _, _ in seen if f == family and s == seed]
            small, full = sorted(subsets, key=len)
            assert not (full & test)
            assert small < full  # nested
            assert full == everything - test  # 100 %: the whole training pool
    # The network and the classical families of one (seed, fraction) get the same rows,
    # and the same training rows inside them (preprocessors are fitted on those).
    by_key = {}
    for _, seed, rows, train, _ in seen:
        by_key.setdefault((seed, len(rows)), []).append((tuple(rows), tuple(train)))
    assert all(len(set(pairs)) == 1 and len(pairs) == 2 for pairs in by_key.values())
    # The seeds draw different subsets.
    halves = [set(rows) for f, s, rows, _, _ in seen if f == "network" and len(rows) == 80]
    assert halves[0] != halves[1]


def test_subsets_keep_the_classes_shares(run):
    _, seen = run
    target = make_churn_frame()["churned"]
    share = (target == "yes").mean()
    for *_, rows, _, _ in seen:
        assert abs((target.iloc[rows] == "yes").mean() - share) < 0.03


def _winners_by_hand(found: dict) -> list[dict]:
    winners = []
    for fraction in found["fractions"]:
        means = {}
        for p in found["points"]:
            if p["fraction"] == fraction and math.isfinite(p["value"]):
                means.setdefault(p["family"], []).append(p["value"])
        sign = 1 if found["higher_is_better"] else -1
        family = max(means, key=lambda f: sign * np.mean(means[f]))
        winners.append(family)
    return winners


def test_the_winners_are_the_best_means(run):
    result, _ = run
    found = result.to_dict()
    assert [w["family"] for w in found["winners"]] == _winners_by_hand(found)
    for winner in found["winners"]:
        values = [
            p["value"]
            for p in found["points"]
            if p["family"] == winner["family"] and p["fraction"] == winner["fraction"]
        ]
        assert winner["mean"] == pytest.approx(np.mean(values))
        assert winner["rows"] == {0.5: 80, 1.0: 160}[winner["fraction"]]


def _result(points, *, higher_is_better=True, families=("network", "logreg")) -> CompareResult:
    return CompareResult(
        data="a&b.csv",
        target="y",
        task="regression",
        metric="r2" if higher_is_better else "rmse",
        higher_is_better=higher_is_better,
        test_rows=10,
        fractions=sorted({p[1] for p in points}),
        seeds=sorted({p[2] for p in points}),
        families=list(families),
        points=[
            {
                "family": f,
                "fraction": fr,
                "rows": int(fr * 100),
                "seed": s,
                "value": v,
                "seconds": 0.1,
            }
            for f, fr, s, v in points
        ],
    )


def test_winners_follow_the_metrics_direction_skip_nan_and_name_ties():
    points = [
        ("network", 0.5, 0, 3.0),
        ("network", 0.5, 1, 5.0),  # mean 4
        ("logreg", 0.5, 0, 2.0),
        ("logreg", 0.5, 1, float("nan")),  # undefined on one seed: mean of the rest, 2
        ("network", 1.0, 0, 1.0),
        ("logreg", 1.0, 0, 1.0),
    ]
    lower = _result(points, higher_is_better=False)
    assert [(w["family"], w["mean"]) for w in lower.winners()] == [
        ("logreg", 2.0),
        ("network", 1.0),
    ]
    higher = _result(points, higher_is_better=True)
    assert [w["family"] for w in higher.winners()] == ["network", "network"]
    header, rows = higher.table()
    assert header == ["family", "50% (50 rows)", "100% (100 rows)"]
    assert rows[0] == ["network", "4.0000 ± 1.0000", "1.0000 ± 0.0000"]  # ± half the range
    assert "tied with logreg" in higher.lines()[1]


def test_the_page_is_self_contained_and_escaped(tmp_path):
    result = _result([("network", 0.5, 0, 0.9), ("logreg", 0.5, 0, 0.8)])
    result.target = "<script>alert(1)</script>"
    result.families = ["network", "<i>logreg</i>"]
    result.points[1]["family"] = "<i>logreg</i>"
    page = result.html()
    assert "<script" not in page and "<i>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "a&amp;b.csv" in page
    assert "http://" not in page and "https://" not in page and "<link" not in page
    assert "default-src 'none'; img-src data:" in page  # the report's CSP: nothing loads
    sources = page.split('src="')[1:]
    assert len(sources) == 1 and sources[0].startswith("data:image/png;base64,")
    png = base64.b64decode(sources[0].split('"')[0].removeprefix("data:image/png;base64,"))
    assert png.startswith(b"\x89PNG")


def test_save_refuses_to_overwrite_without_permission(tmp_path):
    result = _result([("network", 1.0, 0, 0.9)])
    out = result.save(tmp_path / "churn.compare")
    assert sorted(p.name for p in out.iterdir()) == ["compare.html", "compare.json"]
    assert json.loads((out / "compare.json").read_text()) == result.to_dict()
    with pytest.raises(ConfigError, match="already exists") as error:
        result.save(out)
    assert error.value.option == "--out"
    result.points[0]["value"] = 0.5
    result.save(out, overwrite=True)
    assert json.loads((out / "compare.json").read_text())["points"][0]["value"] == 0.5
    assert sorted(p.name for p in tmp_path.iterdir()) == ["churn.compare"]  # nothing left over
    theirs = tmp_path / "mine"
    theirs.mkdir()
    (theirs / "notes.txt").write_text("keep me")
    with pytest.raises(ConfigError, match="not a compare output"):
        result.save(theirs, overwrite=True)
    assert (theirs / "notes.txt").read_text() == "keep me"


def test_svm_is_skipped_above_its_row_limit_and_says_why(monkeypatch):
    from deepstrata.classical import svm

    monkeypatch.setattr(svm, "MAX_ROWS", 100)
    result = compare(
        make_churn_frame(),
        target="churned",
        fractions=(0.5, 1.0),
        seeds=(0,),
        families=("logreg", "svm"),
        **FAST,
    )
    ran = {(p["family"], p["rows"]) for p in result.points}
    assert ran == {("logreg", 80), ("logreg", 160), ("svm", 80)}
    reason = result.to_dict()["skipped"]["svm"]
    assert "more than 100 training rows" in reason and "fraction 1" in reason
    assert any(line.startswith("svm skipped: ") for line in result.lines())


def test_regression_scores_in_the_targets_units_and_lower_rmse_wins(capsys):
    from sklearn.datasets import load_diabetes

    frame = load_diabetes(as_frame=True).frame.iloc[:150]
    result = compare(
        frame,
        target="target",
        fractions=(0.5, 1.0),
        seeds=(0,),
        families=("logreg", "gbm"),
        metric="rmse",
        max_epochs=3,
        learning_rate=0.01,
    )
    found = result.to_dict()
    assert found["metric"] == "rmse" and found["higher_is_better"] is False
    assert all(20 < p["value"] < 150 for p in found["points"])  # the target's std is about 77
    assert [w["family"] for w in found["winners"]] == _winners_by_hand(found)
    lines = [line for line in capsys.readouterr().err.splitlines() if " seed 0: rmse " in line]
    assert len(lines) == 4  # one line per fit


def test_a_missing_target_names_the_column():
    with pytest.raises(DataError, match="not found") as error:
        compare(make_churn_frame(), target="churn", **FAST)
    assert error.value.column == "churn"


@pytest.mark.parametrize(
    ("arguments", "option"),
    [
        ({"fractions": (0.0, 1.0)}, "--fractions"),
        ({"fractions": (0.01,)}, "--fractions"),  # 2 rows: too few to train on
        ({"families": ("network", "knn")}, "--families"),
        ({"seeds": ()}, "--seeds"),
        ({"test_fraction": 1.0}, "--test-fraction"),
        ({"metric": "r2"}, "--metric"),  # a classifier's
        ({"folds": 5}, "--folds"),
    ],
)
def test_bad_arguments_name_their_option(arguments, option):
    with pytest.raises(ConfigError) as error:
        compare(make_churn_frame(), target="churned", **{**FAST, **arguments})
    assert error.value.option == option


def test_audio_columns_have_no_classical_features(tmp_path):
    import soundfile

    rng = np.random.default_rng(0)
    paths = []
    for index in range(12):
        path = tmp_path / f"clip{index}.wav"
        soundfile.write(path, rng.normal(0, 0.1, 1600).astype(np.float32), 16000)
        paths.append(str(path))
    frame = pd.DataFrame({"clip": paths, "x": range(12), "y": ["a", "b"] * 6})
    with pytest.raises(ConfigError, match="column 'clip' is audio") as error:
        compare(frame, target="y", columns={"clip": "audio"}, families=("network", "logreg"))
    assert error.value.option == "--families"


def test_the_command_prints_the_table_and_writes_the_page(tmp_path, churn_csv, capsys):
    import typer
    from typer.testing import CliRunner

    from deepstrata.cli.compare import compare as command

    app = typer.Typer()
    app.command()(command)
    app.command("noop")(lambda: None)  # two commands: the name is given as with the real CLI
    out = tmp_path / "cmp"
    arguments = [
        "compare", str(churn_csv), "--target", "churned", "--fractions", "0.5,1",
        "--seeds", "0", "--families", "network,logreg", "--max-epochs", "2",
        "--learning-rate", "0.01", "--out", str(out), "-q",
    ]  # fmt: skip
    with torch_threads(1):
        result = CliRunner().invoke(app, arguments)
    assert result.exit_code == 0, result.output
    assert "network" in result.output and "logreg" in result.output
    assert "50% (80 rows)" in result.output and "100% (160 rows)" in result.output
    assert "wins" in result.output
    found = json.loads((out / "compare.json").read_text())
    assert found["data"] == str(churn_csv) and len(found["points"]) == 4
    assert (out / "compare.html").read_text().startswith("<!DOCTYPE html>")
    again = CliRunner().invoke(app, arguments)  # refused before any training
    assert isinstance(again.exception, ConfigError) and again.exception.option == "--out"


def test_overwrite_onto_a_folder_that_is_not_a_compare_is_refused_before_training(
    tmp_path, churn_csv, cli, monkeypatch
):
    import deepstrata.compare.run

    def never(*args, **kwargs):
        raise AssertionError("compare ran: the refusal came too late")

    monkeypatch.setattr(deepstrata.compare.run, "compare", never)
    precious = tmp_path / "thesis"
    precious.mkdir()
    (precious / "chapter1.tex").write_text("keep me")
    result = cli("compare", churn_csv, "--target", "churned", "--out", precious, "--overwrite")
    assert "not a compare output" in result.error_line()
    assert (precious / "chapter1.tex").read_text() == "keep me"


def test_with_a_group_no_group_is_on_both_sides_of_the_test_or_of_a_validation(capsys):
    frame = make_churn_frame().assign(speaker=lambda f: [f"s{i % 20}" for i in range(len(f))])
    seen = []
    classical = compare_module._classical

    def spy(sub, train, validation, test_rows, families, options, metric):
        seen.append((sub.frame["speaker"], train, validation, test_rows[0]["speaker"]))
        return classical(sub, train, validation, test_rows, families, options, metric)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(compare_module, "_classical", spy)
        compare(
            frame,
            target="churned",
            group="speaker",
            fractions=(0.5, 1.0),
            seeds=(0, 1),
            families=("logreg",),
            **{**FAST, "progress": True},
        )
    assert len(seen) == 4
    for speakers, train, validation, test in seen:
        assert not set(speakers) & set(test)  # the test speakers are never trained on
        assert not set(speakers.iloc[train]) & set(speakers.iloc[validation])
    half, full = seen[0][0], seen[1][0]
    assert set(half.index) <= set(full.index)  # nested
    cut = [g for g in set(half) if (half == g).sum() != (full == g).sum()]
    assert len(cut) <= 1  # whole groups, but for the last one taken
    assert "groups of 'speaker'" in capsys.readouterr().err


def test_too_few_groups_to_compare_are_named_before_any_fit():
    frame = make_churn_frame().assign(pair=lambda f: np.arange(len(f)) % 2)
    with pytest.raises(
        DataError, match=r"2 group\(s\) in the labelled rows, and a test split"
    ) as error:
        compare(frame, target="churned", group="pair", families=("logreg",), **FAST)
    assert error.value.column == "pair"
