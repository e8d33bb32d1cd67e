"""``deepstrata attack``: how a bundle's accuracy holds up under evasion attacks."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from deepstrata.cli.common import BundleArg, DataArg, JsonOpt, QuietOpt


def attack(
    bundle: BundleArg,
    data: DataArg,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Folder to write [BUNDLE.attack].")
    ] = None,
    method: Annotated[
        str,
        typer.Option("--attack", help="fgsm | pgd (gradients) | hopskipjump (black box)."),
    ] = "pgd",
    epsilon: Annotated[
        str,
        typer.Option(
            help="Budgets, comma-separated, in the input's units (pixels in [0, 1]; "
            "numbers: a fraction of the IQR)."
        ),
    ] = "2/255,4/255,8/255",
    norm: Annotated[str, typer.Option(help="linf | l2.")] = "linf",
    steps: Annotated[int, typer.Option(help="PGD steps (step 2.5 x eps / steps).")] = 10,
    max_rows: Annotated[int, typer.Option(help="Refuse to attack more rows.")] = 10_000,
    seed: Annotated[int, typer.Option(help="Seed of the random starts.")] = 0,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing output folder.")] = False,
    as_json: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Attack a bundle on DATA (with its target): clean and robust accuracy per epsilon,
    success rate, adversarial examples; attack.json and attack.html."""
    from deepstrata import api
    from deepstrata.attack.page import write_folder
    from deepstrata.attack.run import run_attack
    from deepstrata.errors import ConfigError

    folder = output or bundle.with_name(bundle.name + ".attack")
    if folder.exists() and not overwrite:
        raise ConfigError(f"{folder} already exists; pass --overwrite", option="--output")
    if steps < 1:
        raise ConfigError(f"must be >= 1, got {steps}", option="--steps")
    model = api.load(bundle)
    result = run_attack(  # checks every option against the model and data before any work
        model, data, attack=method, epsilons=epsilon, norm=norm, steps=steps,
        max_rows=max_rows, seed=seed, progress=not quiet,
    )  # fmt: skip
    title = f"{model.schema.target} under attack: {Path(str(data)).name}"
    write_folder(result, folder, title=title)
    if as_json:
        print(json.dumps(result, indent=2))
    else:
        from deepstrata.cli.display import print_table

        print_table(
            f"{result['attack']} ({result['norm']}), clean accuracy {result['clean_accuracy']:.4f}",
            ["epsilon", "robust accuracy", "success rate"],
            [
                [f"{e['epsilon']:.4g}", f"{e['robust_accuracy']:.4f}", f"{e['success_rate']:.4f}"]
                for e in result["epsilons"]
            ],
        )
    print(f"attack.html and attack.json in {folder}", file=sys.stderr)
