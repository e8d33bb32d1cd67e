"""The command line: one short typed function per command, over the Python API.

One module per command group: :mod:`~deepstrata.cli.fit` (its flags made from the
configuration's options), :mod:`~deepstrata.cli.predict` (predict, evaluate),
:mod:`~deepstrata.cli.data` (inspect, embed), :mod:`~deepstrata.cli.compare`,
:mod:`~deepstrata.cli.report`, :mod:`~deepstrata.cli.explain`,
:mod:`~deepstrata.cli.serve` (serve, export),
:mod:`~deepstrata.cli.audit` (audit, audit-data, card), :mod:`~deepstrata.cli.drift`,
:mod:`~deepstrata.cli.privacy` (privacy, steal), :mod:`~deepstrata.cli.search`,
:mod:`~deepstrata.cli.attack`, :mod:`~deepstrata.cli.anomalies` and
:mod:`~deepstrata.cli.demo`. Heavy libraries (torch, pandas, scikit-learn) are
imported inside the commands, so ``deepstrata --help`` answers fast. Every user error
exits with status 1 and a one-line ``error: …`` naming file, column and row where known.
"""

from __future__ import annotations

import importlib
import sys
import warnings

import typer

# command -> the module of this package that defines it (registered in this order)
COMMANDS = {
    "inspect": "data",
    "fit": "fit",
    "predict": "predict",
    "embed": "data",
    "evaluate": "predict",
    "demo": "demo",
    "compare": "compare",
    "report": "report",
    "explain": "explain",
    "serve": "serve",
    "export": "serve",
    "audit": "audit",
    "audit-data": "audit",
    "card": "audit",
    "drift": "drift",
    "privacy": "privacy",
    "steal": "privacy",
    "search": "search",
    "attack": "attack",
    "anomalies": "anomalies",
}

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    rich_markup_mode=None,
    help="deepstrata: a table in, a trained, evaluated neural network out.",
)
for _name, _module in COMMANDS.items():
    _function = _name.replace("-", "_")  # audit-data -> audit_data
    app.command(_name)(getattr(importlib.import_module(f"deepstrata.cli.{_module}"), _function))


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"warning: {message}", file=sys.stderr)


ARGV: list[str] = []  # this command line: `fit --nproc N` runs it again in each rank


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the app, turning user errors into one clear line and exit 1."""
    from deepstrata.errors import DeepstrataError

    ARGV[:] = sys.argv[1:] if argv is None else argv

    warnings.showwarning = _show_warning
    try:
        app(args=argv, standalone_mode=False)
    except DeepstrataError as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(1) from None
    except typer.Exit as exit_:
        raise SystemExit(exit_.exit_code) from None
    except typer.Abort:
        print("aborted", file=sys.stderr)
        raise SystemExit(130) from None
    except typer.TyperException as error:  # usage errors (typer's own copy of click)
        error.show()
        raise SystemExit(error.exit_code) from None


if __name__ == "__main__":
    main()
