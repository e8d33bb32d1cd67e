"""The network, the best classical model and ``fit --ensemble``, on real tables.

Five installed data sets (nothing is downloaded): scikit-learn's breast cancer
(569 rows, binary), wine (178, 3 classes), digits as a table (1,797 x 64 pixel
columns, 10 classes) and diabetes (442, regression), and deepstrata's embedded
Palmer penguins (344, 3 species, missing values, two category columns).

Per data set and seed: a stratified 80/20 train/test split drawn by the seed, then
on the training rows what ``fit(train, ensemble=True, folds=5)`` does
(``deepstrata.recipes.crossfit``): on each of 5 folds a network and the classical models are
trained on the other folds (stopping early on an inner split of them) and predict the
held-out fold; the classical head with the lowest out-of-fold loss is the classical
side, and the weight and the verdict are chosen on every row's out-of-fold outputs.
Three models are scored from that one cross-fit:

* **network**: the 5 fold networks, averaged (the weight 1);
* **classical**: the 5 fold classical models, averaged (the weight 0);
* **ensemble**: what ``fit --ensemble --folds 5`` keeps: the mix at the chosen weight
  when it beats both out of fold, otherwise the better side alone (what a user gets;
  tests/test_crossfit.py checks that ``fit`` keeps exactly this).

``--folds 0`` measures ``fit --ensemble`` with one validation split instead: three
separate fits on the same training rows (the network alone, the classical model the
ensemble chose, alone, and the ensemble), each holding out the same 20 % to validate.

Each is scored on the test rows (``model.evaluate``): accuracy, or R² for
regression. The table shows the median over seeds, and the seconds (median) the
network and classical sides took over all folds, and the whole ensemble fit.
"best single" is the better of the network and classical
medians; "per seed" counts the seeds where the ensemble's test value was at least
that seed's better single model's. The target (issue 6): the ensemble >= the best
single model on at least three data sets of four; the last line counts them,
whatever the outcome.

    python bench/compare.py --threads 1          # 5 data sets x 3 seeds: about 5 minutes
    python bench/compare.py --threads 1 --quick  # smoke run: 1 seed, 40 epochs at most
    python bench/compare.py --datasets wine,diabetes --seeds 5
    python bench/compare.py --threads 1 --folds 0  # fit --ensemble on one validation split
"""

from __future__ import annotations

import argparse
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd
from _common import clock, footer, header, median, set_threads
from sklearn.model_selection import train_test_split
from threadpoolctl import threadpool_limits

import deepstrata


@dataclass
class Dataset:
    name: str
    load: Callable[[], pd.DataFrame]
    target: str
    regression: bool = False
    numbers: bool = False  # every input column a number (see digits below)


def _sklearn(loader: str) -> Callable[[], pd.DataFrame]:
    def load() -> pd.DataFrame:
        import sklearn.datasets

        return getattr(sklearn.datasets, loader)(as_frame=True).frame

    return load


def _penguins() -> pd.DataFrame:
    from deepstrata.datasets import penguins_path

    return pd.read_csv(penguins_path())


DATASETS = {
    "breast_cancer": Dataset("breast_cancer", _sklearn("load_breast_cancer"), "target"),
    "wine": Dataset("wine", _sklearn("load_wine"), "target"),
    # A pixel that is 0 or 1 in every training row would be inferred boolean, and a 2
    # among the test rows refused: pixels are intensities, so every column is a number.
    "digits": Dataset("digits", _sklearn("load_digits"), "target", numbers=True),
    "diabetes": Dataset("diabetes", _sklearn("load_diabetes"), "target", regression=True),
    "penguins": Dataset("penguins", _penguins, "species"),
}
FITS = ("network", "classical", "ensemble")


def split_seed(dataset: Dataset, frame: pd.DataFrame, seed: int, options: dict):
    """The seed's train/test split and the options every fit of it shares."""
    labels = None if dataset.regression else frame[dataset.target]
    train, test = train_test_split(frame, test_size=0.2, random_state=seed, stratify=labels)
    common = {"target": dataset.target, "seed": seed, "progress": False, **options}
    if dataset.numbers:
        common["columns"] = {name: "number" for name in frame if name != dataset.target}
    return train, test, common


def run_seed(dataset: Dataset, frame: pd.DataFrame, seed: int, options: dict) -> dict:
    """One split, three fits: ``{fit: (test value, seconds)}`` and the ensemble's verdict."""
    train, test, common = split_seed(dataset, frame, seed, options)
    metric = "r2" if dataset.regression else "accuracy"
    result: dict = {}

    started = clock()
    ensemble = deepstrata.fit(train, ensemble=True, **common)
    result["ensemble"] = (ensemble.evaluate(test)[metric], clock() - started)
    verdict = ensemble.metrics["ensemble"]
    result["verdict"] = verdict

    started = clock()
    network = deepstrata.fit(train, **common)
    result["network"] = (network.evaluate(test)[metric], clock() - started)

    started = clock()
    classical = classical_alone(train, verdict["classical"], common)
    result["classical"] = (classical.evaluate(test)[metric], clock() - started)
    return result


def run_seed_cross_fitted(
    dataset: Dataset, frame: pd.DataFrame, seed: int, options: dict, folds: int
) -> dict:
    """One split, one cross-fit, three models from it (see the module doc)."""
    from deepstrata.config import FitConfig
    from deepstrata.data.sources import read_table
    from deepstrata.recipes.crossfit import cross_fit
    from deepstrata.recipes.prepare import assemble
    from deepstrata.recipes.prepare import prepare as _prepare
    from deepstrata.seeding import preserved_random_state
    from deepstrata.train.progress import Progress

    train, test, common = split_seed(dataset, frame, seed, options)
    metric = "r2" if dataset.regression else "accuracy"
    settings = {k: v for k, v in common.items() if k != "progress"}
    cfg = FitConfig.from_dict({**settings, "ensemble": True, "folds": folds}, source="bench")
    started = clock()
    with preserved_random_state():  # as fit does
        prepared = _prepare(read_table(train), cfg.validate())
        fit = cross_fit(
            prepared, run=None, resume=False, progress=Progress(enabled=False), callbacks=[]
        )
    total = clock() - started
    verdict = fit.verdict
    seconds = verdict["cross_fitted"]["seconds"]

    def scored(weight: float) -> float:
        members, weights = fit.members(weight)
        return assemble(prepared, members, {}, weights=weights).evaluate(test)[metric]

    return {
        "network": (scored(1.0), seconds["network"]),
        "classical": (scored(0.0), seconds["classical"]),
        "ensemble": (scored(verdict["weight_network"]), total),
        "verdict": verdict,
    }


def classical_alone(train: pd.DataFrame, head: str, common: dict):
    """The ensemble's classical side as a model of its own: what ``fit(ensemble=True)``
    trains beside the network (same rows, split, features and head), without the network.
    ``fit(strategy="features")`` would do it, but refuses tables with no image or text
    column, so this goes through the steps ``fit`` takes (deepstrata.api._single)."""
    from deepstrata.config import FitConfig
    from deepstrata.data.sources import read_table
    from deepstrata.data.split import train_validation_split
    from deepstrata.recipes.ensemble import classical_side
    from deepstrata.recipes.features import train_features
    from deepstrata.recipes.prepare import assemble
    from deepstrata.recipes.prepare import prepare as _prepare
    from deepstrata.seeding import preserved_random_state
    from deepstrata.train.progress import Progress

    settings = {k: v for k, v in common.items() if k != "progress"}
    cfg = FitConfig.from_dict(settings, source="bench").validate()
    with preserved_random_state():
        prepared = _prepare(read_table(train), cfg)
        train_rows, val_rows = train_validation_split(
            prepared.encoded,
            stratify=prepared.schema.task != "regression",
            fraction=cfg.validation_fraction,
            seed=cfg.seed,
        )
        side = classical_side(prepared)
        trained = train_features(
            side, train_rows, val_rows, progress=Progress(enabled=False), heads=(head,)
        )
    return assemble(side, [trained.member], {})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", default=",".join(DATASETS), help="comma-separated")
    parser.add_argument("--seeds", type=int, default=None, help="seeds 0..N-1 (3)")
    parser.add_argument("--max-epochs", type=int, default=None, help="(fit's 200; --quick 40)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (all cores)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 1 seed, 40 epochs")
    parser.add_argument(
        "--folds", type=int, default=5, help="cross-fitted folds; 0: one validation split (5)"
    )
    args = parser.parse_args()

    names = [name.strip() for name in args.datasets.split(",") if name.strip()]
    unknown = [name for name in names if name not in DATASETS]
    if unknown:
        parser.error(f"unknown data sets {unknown}; known: {', '.join(DATASETS)}")
    seeds = list(range(args.seeds or (1 if args.quick else 3)))
    max_epochs = args.max_epochs or (40 if args.quick else None)
    options = {"max_epochs": max_epochs} if max_epochs else {}
    threads = set_threads(args.threads)
    threadpool_limits(limits=threads)  # scikit-learn's and LightGBM's pools too
    print(header("network vs best classical model vs fit --ensemble, test metric", threads))
    if args.folds == 1 or args.folds < 0:
        parser.error("--folds: 0 (one validation split) or at least 2")
    how = (
        f"fit --ensemble --folds {args.folds}: one cross-fit per seed; seconds: the network "
        "and classical sides over all folds, and the whole cross-fit"
        if args.folds
        else "fit --ensemble on one validation split; three fits per seed; seconds per whole fit"
    )
    print(
        f"# {'quick run' if args.quick else 'full run'}: {len(seeds)} seed(s) {seeds}; "
        f"80/20 stratified train/test split per seed; max_epochs "
        f"{max_epochs or 'fit default (200)'}; medians over seeds\n# {how}"
    )

    rows, verdicts = [], []
    for name in names:
        dataset = DATASETS[name]
        frame = dataset.load()
        runs = []
        for seed in seeds:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # convergence chatter from the heads
                if args.folds:
                    runs.append(run_seed_cross_fitted(dataset, frame, seed, options, args.folds))
                else:
                    runs.append(run_seed(dataset, frame, seed, options))
            got = runs[-1]
            print(
                f"  {name} seed {seed}: "
                + ", ".join(f"{fit} {got[fit][0]:.4f} ({got[fit][1]:.1f}s)" for fit in FITS)
                + f"; --ensemble returned the {got['verdict']['returned']} (classical side "
                + f"{got['verdict']['classical']}, network weight "
                + f"{got['verdict']['weight_network']:g})",
                flush=True,
            )
        value = {fit: median([r[fit][0] for r in runs]) for fit in FITS}
        seconds = {fit: median([r[fit][1] for r in runs]) for fit in FITS}
        chosen = pd.Series([r["verdict"]["classical"] for r in runs]).value_counts()
        kept = sum(r["verdict"]["kept"] for r in runs)
        best = max(value["network"], value["classical"])
        ok = value["ensemble"] >= best
        # Per seed, against that seed's better single model on the test rows (an oracle).
        per_seed = sum(r["ensemble"][0] >= max(r["network"][0], r["classical"][0]) for r in runs)
        verdicts.append(ok)
        rows.append(
            [
                name,
                f"{len(frame)}",
                "R²" if dataset.regression else "accuracy",
                f"{value['network']:.4f}",
                f"{value['classical']:.4f} ({'/'.join(chosen.index)})",
                f"{value['ensemble']:.4f}",
                f"{kept}/{len(runs)}",
                " / ".join(f"{seconds[fit]:.1f}" for fit in FITS),
                "yes" if ok else f"no ({value['ensemble'] - best:+.4f})",
                f"{per_seed}/{len(runs)}",
            ]
        )

    header_row = [
        "data set",
        "rows",
        "metric",
        "network",
        "classical (chosen)",
        "ensemble",
        "kept",
        "seconds net / cls / ens",
        "ens >= best single",
        "per seed",
    ]
    widths = [max(len(str(r[i])) for r in [header_row, *rows]) for i in range(len(header_row))]
    for row in [header_row, *rows]:
        print("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths)))
    print(
        f"ensemble >= best single model on {sum(verdicts)} of {len(verdicts)} data sets "
        f"(target: at least 3 of 4); medians over {len(seeds)} seed(s) of test metrics"
    )
    print(footer())


if __name__ == "__main__":
    main()
