"""The README's commands are run as written, after the demo (as the README says)."""

import re
import shlex
from pathlib import Path

import pytest

from deepstrata.cli import main
from deepstrata.cli.demo import run_demo

README = Path(__file__).resolve().parents[2] / "README.md"
pytestmark = pytest.mark.integration


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README.read_text(), flags=re.DOTALL)


def test_readme_opens_with_the_two_commands():
    first = blocks("bash")[0]
    assert first.splitlines()[0].startswith("make demo") and first.splitlines()[1].startswith(
        "make test"
    )


def test_quick_start_commands_and_python_run_as_written(tmp_path, monkeypatch):
    run_demo(tmp_path / "runs" / "demo", max_epochs=20)
    commands = [line[2:] for line in blocks("console")[0].splitlines() if line.startswith("$ ")]
    commands = [c for c in commands if not c.startswith("source ")]
    assert len(commands) >= 4
    monkeypatch.chdir(tmp_path)
    for command in commands:
        words = shlex.split(command)
        assert words[0] == "deepstrata"
        if "--max-epochs" not in words and words[1] == "fit":
            words += ["--max-epochs", "20"]
        try:
            main(words[1:])
        except SystemExit as exit_:
            assert exit_.code in (0, None), f"{command} exited with {exit_.code}"
    assert (tmp_path / "runs" / "predictions.csv").is_file()

    code = blocks("python")[0].replace('target="species")', 'target="species", max_epochs=20)')
    exec(compile(code, "README.md", "exec"), {})
    assert (tmp_path / "runs" / "penguins-py" / "manifest.json").is_file()


def test_the_callback_example_runs_and_stops_training(tmp_path, monkeypatch):
    """The README's callback ends training early: fewer epochs than allowed."""
    run_demo(tmp_path / "runs" / "demo", max_epochs=5)
    monkeypatch.chdir(tmp_path)
    [code] = [b for b in blocks("python") if "class StopAtAccuracy" in b]
    code = code.replace(
        "StopAtAccuracy(0.99)]", "StopAtAccuracy(0.5)], max_epochs=30, progress=False"
    )
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)
    history = namespace["model"].metrics["history"]
    assert history["stopped"].startswith("stopped by a callback"), history["stopped"]
    assert history["epochs"][-1]["val_accuracy"] >= 0.5
