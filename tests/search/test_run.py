"""``deepstrata search`` from end to end on a tiny table: outputs, refit, resume, bad input."""

import json

import pytest

from deepstrata.config import FitConfig, load_config_file
from tests.search.conftest import run_search


def test_a_search_writes_its_record_page_best_config_and_refit_bundle(searched):
    out, output = searched
    record = json.loads((out / "search.json").read_text())
    assert record["counts"]["complete"] == 3 and record["objectives"] == ["val_loss", "params"]
    assert record["baseline"]["number"] == 0  # the default configuration ran first
    assert record["best"]["number"] in record["pareto_front"]
    assert record["sampler"] == "tpe" and "objectives" in record["sampler_reason"]
    assert {t["number"] for t in record["trials"]} == {0, 1, 2}
    options = load_config_file(out / "best.yaml")
    FitConfig.from_dict(options)  # what fit --config takes
    assert options["target"] == "y" and options["max_epochs"] == 2
    page = (out / "search.html").read_text()
    assert "Pareto front" in page and "http" not in page.replace("http-equiv", "")
    bundle = out / "bundle"
    assert json.loads((bundle / "search.json").read_text())["best"] == record["best"]
    assert "Search" in (bundle / "report.html").read_text()
    assert "best trial" in output and "bundle written to" in output


def test_resume_finishes_a_search_whose_process_stopped(searched, tmp_path):
    out, _ = searched
    code, output = run_search(tmp_path, "--resume", str(out), "--no-refit")
    assert code == 0, output
    assert "best trial" in output  # nothing left to run: the outputs are written again
    record = json.loads((out / "search.json").read_text())
    assert record["counts"]["complete"] == 3 and record["run"]["status"] == "finished"


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--sampler", "bayes"], "--sampler: unknown sampler 'bayes'"),
        (["--objectives", "val_loss,speed"], "--objectives: unknown objective 'speed'"),
        (["--workers", "999"], "--workers: must be in [1, "),
        (["--pick", "cheapest"], "--pick: expected best or fastest-within"),
        (["--time-limit", "soon"], "--time-limit: expected a duration"),
        (["--pruner", "early"], "--pruner: expected one of hyperband"),
        (["--storage", "postgresql://me:hunter2@127.0.0.1:1/db"], "me:***@127.0.0.1:1/db"),
    ],
)
def test_bad_input_is_named_before_any_trial_and_nothing_is_written(tmp_path, flags, message):
    code, output = run_search(tmp_path, *flags, "-o", str(tmp_path / "out"))
    assert code == 1 and message in output and "hunter2" not in output
    assert not (tmp_path / "out").exists()


def test_a_search_space_entry_outside_its_constraint_is_named(tmp_path):
    run_search(tmp_path, "--sampler", "nope")  # writes the data and the YAML
    (tmp_path / "search.yaml").write_text("search_space:\n  dropout: {low: 0, high: 1.5}\n")
    code, output = run_search(tmp_path, "-o", str(tmp_path / "out"))
    assert code == 1 and "search.yaml: search_space.dropout: high 1.5: must be in [0, 1)" in output
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_a_search_on_a_real_table_beats_the_default_configurations_validation_loss(tmp_path):
    """scikit-learn's breast cancer table (569 rows, 30 numbers): 20 trials of TPE, unpruned."""
    from sklearn.datasets import load_breast_cancer

    from deepstrata.cli import main

    load_breast_cancer(as_frame=True).frame.to_csv(tmp_path / "cancer.csv", index=False)
    main_args = ["search", str(tmp_path / "cancer.csv"), "--target", "target", "--trials", "20", "--pruner", "none",
                 "--max-epochs", "30", "--sampler", "tpe", "--no-refit", "--quiet",
                 "-o", str(tmp_path / "out")]  # fmt: skip
    main(main_args)
    record = json.loads((tmp_path / "out" / "search.json").read_text())
    baseline, best = record["baseline"]["values"][0], record["best"]["values"][0]
    print(f"default configuration val_loss {baseline:.4f}, best of the search {best:.4f}")
    assert best < baseline and record["best"]["number"] != 0
