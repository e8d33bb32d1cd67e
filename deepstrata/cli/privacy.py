"""``deepstrata privacy`` (membership inference against a bundle) and ``deepstrata steal``
(how well a copy is made through its answers): the engines are
:mod:`deepstrata.attack.membership` and :mod:`deepstrata.attack.extraction`.

Each checks all it is given before any work; ``--out`` is written atomically, once.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from deepstrata.cli.common import BundleArg, JsonOpt, QuietOpt, write_atomically

OutOpt = Annotated[Path | None, typer.Option("--out", help="Also write the result as JSON here.")]


def privacy(
    bundle: BundleArg,
    train: Annotated[Path, typer.Argument(help="The rows the bundle was fitted on (members).")],
    test: Annotated[Path, typer.Argument(help="Rows of the same kind it never saw.")],
    attacks: Annotated[str, typer.Option(help="loss,shadow: the attacks to run.")] = "loss,shadow",
    shadows: Annotated[int, typer.Option(help="Shadow models, each fitted as the bundle was.")] = 1,
    seed: Annotated[int, typer.Option(help="Seeds the splits and the shadow models.")] = 0,
    out: OutOpt = None,
    as_json: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Membership inference: can an attacker tell TRAIN rows from TEST rows? AUC and
    true-positive rate at 1 % false-positive rate, per class."""
    from deepstrata.attack.membership import membership_risk

    chosen = tuple(part.strip() for part in attacks.split(",") if part.strip())
    result = membership_risk(
        bundle, train, test, attacks=chosen, shadows=shadows, seed=seed,
        progress=None if quiet else _note,
    )  # fmt: skip
    _finish(result, out, as_json, print_membership)


def steal(
    bundle: BundleArg,
    data: Annotated[Path, typer.Argument(help="The attacker's rows to query (no labels needed).")],
    queries: Annotated[
        str, typer.Option(help="Numbers of queries, e.g. 1000,10000.")
    ] = "1000,10000",
    output: Annotated[
        str, typer.Option(help="What the API answers: probabilities | rounded | labels.")
    ] = "probabilities",
    epochs: Annotated[int, typer.Option(help="The surrogate's epochs at most.")] = 60,
    seed: Annotated[int, typer.Option(help="Seeds the queries and the surrogate.")] = 0,
    out: OutOpt = None,
    as_json: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Model theft: a surrogate trained on N answers; its agreement with the bundle on
    held-out rows (fidelity) for each N."""
    from deepstrata.attack.extraction import parse_queries
    from deepstrata.attack.extraction import steal as run

    counts = parse_queries(queries)
    result = run(
        bundle, data, queries=counts, output=output, epochs=epochs, seed=seed,
        progress=None if quiet else _note,
    )  # fmt: skip
    _finish(result, out, as_json, print_fidelity)


def _note(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _finish(result: dict, out: Path | None, as_json: bool, show) -> None:
    text = json.dumps(result, indent=2)
    if out is not None:
        write_atomically(out, lambda path: Path(path).write_text(text + "\n", encoding="utf-8"))
    if as_json:
        print(text)
    else:
        show(result)


def print_membership(result: dict) -> None:
    from deepstrata.cli.display import print_table

    rows = []
    for name, scores in result["attacks"].items():
        rows.append([name, "all", f"{scores['auc']:.3f}", f"{scores['tpr_at_1pct_fpr']:.3f}"])
        for label, cell in scores.get("per_class", {}).items():
            rows.append([name, label, f"{cell['auc']:.3f}", f"{cell['tpr_at_1pct_fpr']:.3f}"])
    counts = result["rows"]
    print_table(
        f"membership inference ({counts['members']} members, {counts['non_members']} non-members)",
        ["attack", "class", "AUC", "TPR@1%FPR"],
        rows,
    )
    if result.get("privacy"):
        spent = result["privacy"]
        print(f"trained with DP-SGD: epsilon {spent['epsilon']:.2f}, delta {spent['delta']:.1e}")


def print_fidelity(result: dict) -> None:
    from deepstrata.cli.display import print_table

    print_table(
        f"surrogate fidelity ({result['output']}; {result['held_out']} held-out rows)",
        ["queries", "fidelity", "seconds"],
        [
            [str(c["queries"]), f"{c['fidelity']:.3f}", f"{c['seconds']:.1f}"]
            for c in result["curve"]
        ],
    )
