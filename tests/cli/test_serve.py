"""The two commands as the CLI runs them (in this process), and their import cost."""

from __future__ import annotations

import subprocess
import sys

import pytest
import typer

from deepstrata.cli import serve as commands

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture
def run(capsys, monkeypatch):
    """``deepstrata ARGS`` with serve and export registered as cli.py registers them."""
    from deepstrata import cli

    app = typer.Typer(add_completion=False, rich_markup_mode=None)
    app.command()(commands.serve)
    app.command()(commands.export)
    monkeypatch.setattr(cli, "app", app)

    def invoke(*args):
        capsys.readouterr()
        try:
            cli.main([str(a) for a in args])
            code = 0
        except SystemExit as exit_:
            code = exit_.code or 0
        out, err = capsys.readouterr()
        return code, out, err

    return invoke


def test_export_writes_beside_the_bundle_and_says_how_to_serve_it(run, churn_bundle):
    code, out, err = run("export", churn_bundle, "--format", "onnx")
    assert code == 0, err
    target = churn_bundle.with_name(churn_bundle.name + "-onnx")
    assert (target / "member-0.onnx").is_file() and (target / "export.json").is_file()
    assert "ONNX Runtime matches PyTorch within 0.0001" in out
    assert f"deepstrata serve {churn_bundle} --backend onnx" in out
    assert "largest difference" in err
    code, _, err = run("export", churn_bundle)
    assert code == 1 and "error: --output:" in err and "--overwrite" in err


def test_serve_refuses_an_onnx_backend_without_an_export(run, churn_bundle):
    code, _, err = run("serve", churn_bundle, "--backend", "onnx")
    assert code == 1 and "error: --onnx: no ONNX export" in err
    code, _, err = run("serve", churn_bundle, "--onnx", churn_bundle)
    assert code == 1 and "--onnx names an export for --backend onnx" in err


def test_the_commands_import_nothing_heavy_until_they_run():
    script = (
        "import sys, deepstrata.cli, deepstrata.cli.serve; "
        "print(sorted(m for m in ('torch', 'fastapi', 'uvicorn', 'onnx', 'onnxruntime', "
        "'pandas', 'pydantic') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.stdout.strip() == "[]", result.stderr


@pytest.fixture
def never_listening(monkeypatch):
    """``serve`` fails the test instead of serving (and hanging) if it gets to the port."""
    from deepstrata.serve import server

    def listen(*args):
        raise AssertionError("serve got as far as taking the port")

    monkeypatch.setattr(server, "listen", listen)


@pytest.mark.parametrize("value", ["", "   ", "\n"])
@pytest.mark.usefixtures("never_listening")
def test_an_empty_token_variable_is_refused_naming_it(run, churn_bundle, monkeypatch, value):
    """Set but empty used to mean "no token": authentication silently off."""
    monkeypatch.setenv("DEEPSTRATA_SERVE_TOKEN", value)
    code, _, err = run("serve", churn_bundle)
    assert code == 1 and "error: DEEPSTRATA_SERVE_TOKEN: is set but empty" in err


@pytest.mark.usefixtures("never_listening")
def test_a_token_with_whitespace_around_it_is_refused(run, churn_bundle, monkeypatch):
    """The Authorization header's value is stripped: such a token could never match."""
    from deepstrata.errors import ConfigError
    from deepstrata.serve.settings import ServeSettings

    token = "correct-horse-battery-staple"
    for padded in (f" {token}", f"{token}\n"):
        with pytest.raises(ConfigError, match="whitespace") as caught:
            ServeSettings(token=padded).validate()
        assert caught.value.option == "--token"
    monkeypatch.setenv("DEEPSTRATA_SERVE_TOKEN", f"{token}\n")
    code, _, err = run("serve", churn_bundle)
    assert code == 1 and "error: DEEPSTRATA_SERVE_TOKEN: starts or ends with whitespace" in err


@pytest.mark.usefixtures("never_listening")
def test_the_decode_budget_and_connection_limits_are_flags_checked_by_name(run, churn_bundle):
    code, out, _ = run("serve", "--help")
    for flag in ("--decode-budget", "--max-header-bytes", "--header-timeout", "--keep-alive"):
        assert flag in out
    for args, expected in [
        (("--decode-budget", "0"), "error: --decode-budget: expected a number above 0, got 0.0"),
        (("--header-timeout", "0"), "error: --header-timeout: expected a number of seconds"),
        (("--max-header-bytes", "0"), "error: --max-header-bytes: expected a whole number"),
    ]:
        code, _, err = run("serve", churn_bundle, *args)
        assert code == 1 and expected in err, err
