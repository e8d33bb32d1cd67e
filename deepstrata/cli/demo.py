"""``deepstrata demo``: the whole path on the embedded Palmer penguins data.

Schema -> training with progress -> evaluation on held-out rows -> bundle ->
reload -> predictions, printing where every file went. No download.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer


def demo(
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Where the demo writes its files.")
    ] = Path("runs/demo"),
    max_epochs: Annotated[int, typer.Option()] = 200,
) -> None:
    """Train on the embedded Palmer penguins data, end to end, in well under two minutes."""
    run_demo(out, max_epochs=max_epochs)


def run_demo(out: Path, *, max_epochs: int = 200, seed: int = 0) -> dict:
    import pandas as pd

    import deepstrata
    from deepstrata.cli.display import console as get_console
    from deepstrata.cli.display import print_table
    from deepstrata.data.schema import format_schema, infer_schema
    from deepstrata.data.split import train_validation_split
    from deepstrata.datasets import penguins_path

    console = get_console()
    start = time.perf_counter()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    source = penguins_path()
    frame = pd.read_csv(source)
    console.print(
        f"[bold]deepstrata demo[/bold]: predict a penguin's species from {source.name} "
        f"({len(frame)} rows, shipped inside deepstrata)\n",
        soft_wrap=True,
    )

    labelled = frame.dropna(subset=["species"]).reset_index(drop=True)
    train_rows, test_rows = train_validation_split(
        labelled["species"].to_numpy(), stratify=True, fraction=0.25, seed=seed
    )
    train_csv, test_csv = out / "train.csv", out / "test.csv"
    labelled.iloc[train_rows].to_csv(train_csv, index=False)
    labelled.iloc[test_rows].to_csv(test_csv, index=False)
    console.print(f"1. held out {len(test_rows)} rows for testing: {train_csv} / {test_csv}")

    schema = infer_schema(labelled, target="species")
    print_table(
        "2. the schema deepstrata inferred",
        ["column", "kind", "role", "missing", "unique", "examples", "why"],
        format_schema(schema),
    )

    console.print("3. training (the network: category embeddings + numbers -> MLP -> 3 classes)")
    # The network alone (on a table fit would also weigh the classical models): the demo
    # shows the network and its bundle (weights.safetensors); `try next` shows the rest.
    model = deepstrata.fit(
        train_csv, target="species", max_epochs=max_epochs, seed=seed, ensemble=False
    )

    bundle = model.save(out / "bundle", overwrite=True)
    reloaded = deepstrata.load(bundle)
    metrics = reloaded.evaluate(test_csv)
    print_table(
        f"4. held-out test metrics ({len(test_rows)} rows never seen in training)",
        ["metric", "value"],
        [[k, f"{v:.4f}"] for k, v in metrics.items()],
    )

    test_frame = labelled.iloc[test_rows]
    sample = test_frame.groupby("species", sort=False).head(2)  # a couple of each species
    predictions = reloaded.predictions(sample.drop(columns=["species"]), proba=True)
    predictions.insert(0, "species (truth)", sample["species"].to_numpy())
    predictions_csv = out / "predictions.csv"
    predictions.to_csv(predictions_csv, index=False)
    print_table(
        "5. a few predictions from the reloaded bundle",
        list(predictions.columns),
        [
            [f"{v:.3f}" if isinstance(v, float) else str(v) for v in row]
            for row in predictions.itertuples(index=False)
        ],
    )

    seconds = time.perf_counter() - start
    _say_where(console, seconds, bundle, predictions_csv, train_csv, test_csv, out)
    return {"metrics": metrics, "bundle": str(bundle), "seconds": seconds}


def _say_where(console, seconds, bundle, predictions_csv, train_csv, test_csv, out) -> None:
    """Where every file went, and the commands to try next."""
    console.print(
        f"\nwhere everything went ({seconds:.0f}s in all):\n"
        f"  bundle       {bundle}/  (config.json, weights.safetensors, metrics.json, manifest.json)\n"
        f"  report       {bundle / 'report.html'}  (open it in a browser)\n"
        f"  predictions  {predictions_csv}\n"
        f"  data         {train_csv}, {test_csv}\n"
        f"try next:\n"
        f"  deepstrata inspect {train_csv} --target species\n"
        f"  deepstrata evaluate {bundle} {test_csv}\n"
        f"  deepstrata predict {bundle} {test_csv} -o {out / 'all_predictions.csv'} --proba --overwrite\n"
        f"  deepstrata compare {train_csv} --target species    # the network against classical models\n"
        f"  deepstrata fit {train_csv} --target species --ensemble --folds 5 -o {out / 'ensemble'}"
        "  # network + classical, cross-fitted\n"
        f"  deepstrata serve {bundle}                           # predictions over HTTP "
        "(the serve extra: pip install 'deepstrata[serve]'; make test installs it)",
        soft_wrap=True,
        markup=False,  # rich would take [serve] for a style and drop it
    )
