"""The backdoor check (activation clustering, Chen et al. 2018).

Fast: activations with a planted tight cluster that the other rows place in another
class are flagged, a class's own sub-population is not; the probe, its activations and
the check's files through ``audit_data`` on a tiny image folder. Slow: scikit-learn's
digits (8x8 PNGs) with a 3x3 trigger stamped on 5 % of the ones, relabelled seven:
at least 80 % of them flagged, at most 5 % of the clean rows.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from deepstrata.audit.backdoor import activation_clusters, probe_settings
from deepstrata.config import FitConfig
from deepstrata.data.folders import LABEL

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def planted(seed: int = 0):
    """Three classes of activations; class 2 holds 10 rows that look like class 0 plus a
    strong trigger direction, and class 1 a legitimate sub-population of its own."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(3, 24)) * 4
    trigger = np.zeros(24)
    trigger[:3] = 12.0
    rows, labels = [], []
    for label in range(3):
        rows.append(centres[label] + rng.normal(size=(150, 24)))
        labels += [label] * 150
    rows.append(centres[1] + 2.5 + rng.normal(size=(20, 24)) * 0.5)  # a style of class 1
    labels += [1] * 20
    rows.append(centres[0] + trigger + rng.normal(size=(10, 24)) * 0.5)  # poisoned
    labels += [2] * 10
    return np.vstack(rows), np.asarray(labels)


def test_a_tight_cluster_claimed_by_another_class_is_flagged():
    activations, labels = planted()
    result = activation_clusters(activations, labels, ["zero", "one", "two"])
    assert result["flagged_classes"] == ["two"]
    assert result["rows"] == list(range(471, 481))  # the ten planted rows, 1-based
    two = result["classes"][2]
    assert two["small_share"] == pytest.approx(10 / 160) and two["moved_to"] == "zero"
    one = result["classes"][1]
    assert one["elsewhere"] < 0.5 and not one["poisoned"]  # its own style stays its own


def test_small_classes_are_not_checked():
    activations, labels = planted()
    few = np.flatnonzero(labels == 1)[:10]
    chosen = np.concatenate([np.flatnonzero(labels != 1), few])
    result = activation_clusters(activations[chosen], labels[chosen], ["zero", "one", "two"])
    assert result["classes"][1] == {"class": "one", "rows": 10, "checked": False}


def test_the_probe_trains_without_dropout_folds_or_pretrained_features():
    cfg = FitConfig.from_dict({"target": "y", "folds": 5, "dropout": 0.3, "ensemble": True})
    probe = probe_settings(cfg)
    assert (probe.folds, probe.ensemble, probe.dropout, probe.strategy) == (
        None,
        False,
        0.0,
        "scratch",
    )
    assert cfg.folds == 5  # the user's settings are left alone


def digits_folder(folder, *, count=None, source=1, target=7, share=0.05, seed=0):
    """scikit-learn's digits as 8x8 PNGs in class folders; a 3x3 white patch (bottom
    right) on ``share`` of the ``source`` images, which move to the ``target`` folder.
    Returns the folder and the poisoned files' paths (relative)."""
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    pixels = np.round(digits.images * (255 / 16)).astype(np.uint8)
    labels = digits.target
    if count is not None:
        chosen = np.flatnonzero(np.isin(labels, [source, target, 0]))[:count]
        pixels, labels = pixels[chosen], labels[chosen]
    rng = np.random.default_rng(seed)
    sources = np.flatnonzero(labels == source)
    poisoned = set(rng.choice(sources, max(1, round(share * len(sources))), replace=False))
    paths = []
    for index, (image, label) in enumerate(zip(pixels, labels)):
        if index in poisoned:
            image = image.copy()
            image[-4:-1, -4:-1] = 255
            label = target
        path = folder / str(label) / f"{index}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image, mode="L").save(path)
        if index in poisoned:
            paths.append(f"{label}/{index}.png")
    return folder, set(paths)


def test_audit_data_runs_the_check_on_an_image_folder(tmp_path):
    from deepstrata.audit.dataset import audit_data

    folder, _ = digits_folder(tmp_path / "digits", count=120, share=0.2)
    tiny = {"max_epochs": 1, "image_size": 8, "learning_rate": 3e-3, "hidden_dims": [16]}
    cfg = FitConfig.from_dict({"target": LABEL, "seed": 0, **tiny})
    result, files = audit_data(folder, cfg, labels=False, embeddings=False, progress=False)
    check = result["backdoor"]
    assert [c["class"] for c in check["classes"]] == ["0", "1", "7"]
    assert check["found"] == len(check["rows"]) == files["backdoor.csv"].count(b"\n") - 1
    assert "Backdoor check" in files["audit_data.html"].decode()
    json.dumps(result)  # plain JSON


@pytest.mark.slow
def test_a_planted_trigger_is_found_on_digits(tmp_path):
    from deepstrata.audit.dataset import audit_data

    folder, poisoned = digits_folder(tmp_path / "digits")
    cfg = FitConfig.from_dict({"target": LABEL, "max_epochs": 10, "seed": 0})
    result, files = audit_data(folder, cfg, labels=False, embeddings=False, progress=False)
    import io

    import pandas as pd

    listed = pd.read_csv(io.BytesIO(files["backdoor.csv"]))
    flagged = set(listed["image"])
    clean = result["rows"] - len(poisoned)
    recall = len(flagged & poisoned) / len(poisoned)
    false_share = len(flagged - poisoned) / clean
    print(
        f"digits, 3x3 trigger on {len(poisoned)} ones relabelled 7: flagged {len(flagged)}, "
        f"{recall:.0%} of the poisoned, {false_share:.2%} of {clean} clean rows; "
        f"classes flagged {result['backdoor']['flagged_classes']}"
    )
    for entry in result["backdoor"]["classes"]:
        print(entry)
    assert recall >= 0.8
    assert false_share <= 0.05
