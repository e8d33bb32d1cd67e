import json

from deepstrata.cli.demo import run_demo


def test_demo_runs_end_to_end_and_reports_where_things_went(tmp_path, capsys):
    result = run_demo(tmp_path / "demo")
    printed = capsys.readouterr().out
    bundle = tmp_path / "demo" / "bundle"
    assert {"config.json", "weights.safetensors", "metrics.json", "manifest.json"} <= {
        p.name for p in bundle.iterdir()
    }
    assert (tmp_path / "demo" / "predictions.csv").is_file()
    assert str(bundle) in printed and "held-out test metrics" in printed
    # Penguin species are well separated by bill and flipper sizes.
    assert result["metrics"]["accuracy"] >= 0.9
    assert json.loads((bundle / "config.json").read_text())["schema"]["target"] == "species"
    # the hint names the extra as pip wants it (rich once took "[serve]" for a style)
    assert "pip install 'deepstrata[serve]'" in printed
