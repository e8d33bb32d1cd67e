"""bench/explain.py's second half: TreeSHAP, LIME superpixels, IG per token, attention
rollout and audio maps, each against its library on the bare model where there is one.
Run through ``python bench/explain.py --part new`` (or ``all``)."""

from __future__ import annotations

import tempfile
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from _common import timed

import deepstrata
from deepstrata.data.sources import read_table
from deepstrata.preprocess.frame import transform_frame


def line(label: str, count: int, ours_ms: float, theirs_ms: float | None) -> None:
    if theirs_ms is None:
        print(f"{label:26} {count:5d} {ours_ms:21.2f} {'—':>21} {'—':>6}")
    else:
        print(f"{label:26} {count:5d} {ours_ms:21.2f} {theirs_ms:21.2f} {ours_ms / theirs_ms:6.2f}")


def compare(label, model, rows, method, options, bare, repeats) -> None:
    call = partial(model.explain, rows, method=method, faithfulness=False, **options)
    ours_ms = 1000 * timed(call, repeats) / len(rows)
    theirs_ms = None if bare is None else 1000 * timed(bare, repeats) / len(rows)
    line(label, len(rows), ours_ms, theirs_ms)


def blocks_of(model, rows: pd.DataFrame, member=None) -> dict:
    member = member or model.members[0]
    return transform_frame(member.preprocessors, rows, read_table(rows))


def tree(args, count: int) -> None:
    """20 numbers, yes where x0 and x1 are both positive: the ensemble keeps LightGBM."""
    import shap

    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(0, 1, (2000, 20)), columns=[f"x{i}" for i in range(20)])
    frame["y"] = np.where((frame.x0 > 0) & (frame.x1 > 0), "yes", "no")
    model = deepstrata.fit(
        frame, target="y", ensemble=True, head="gbm", max_epochs=1, progress=False, seed=0
    )
    member = model.members[0]
    if getattr(getattr(member, "head", None), "name", None) != "gbm" or len(model.members) > 1:
        print("tree: the ensemble did not keep LightGBM alone; skipped")
        return
    rows = frame.drop(columns="y").head(10 * count)
    blocks = blocks_of(model, rows, member)
    with torch.inference_mode():
        features = member.extractor(blocks).double().numpy()
        reference = member.extractor({k: torch.zeros_like(v[:1]) for k, v in blocks.items()})

    def bare():
        explainer = shap.TreeExplainer(
            member.head.booster_,
            data=reference.double().numpy(),
            feature_perturbation="interventional",
            model_output="raw",
        )
        explainer.shap_values(features, check_additivity=False)

    compare("tree (LightGBM)", model, rows, "tree", {}, bare, args.repeats)


def images(args, count: int, folder: Path) -> None:
    from lime import lime_image
    from lime.wrappers.scikit_image import SegmentationAlgorithm
    from PIL import Image

    from deepstrata.explain.superpixels import _quiet

    rng = np.random.default_rng(0)
    paths = []
    for index in range(60):
        path = folder / f"{index}.png"
        Image.fromarray(rng.integers(0, 255, (64, 64, 3)).astype(np.uint8)).save(path)
        paths.append(str(path))
    data = pd.DataFrame({"photo": paths, "y": ["a", "b"] * 30})
    model = deepstrata.fit(
        data, target="y", image_size=64, max_epochs=1, progress=False, ensemble=False,
        strategy="scratch",
    )  # fmt: skip
    rows = data.drop(columns="y").head(max(2, count // 4))
    pixels = blocks_of(model, rows)["image"].numpy().reshape(-1, 3, 64, 64).transpose(0, 2, 3, 1)
    network = model.network

    def classify(images):
        block = torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2))).reshape(
            len(images), -1
        )
        with torch.no_grad():
            positive = torch.sigmoid(network({"image": block.to(torch.uint8)}))
        return torch.stack([1 - positive, positive], dim=1).numpy()

    def bare():
        for row in range(len(pixels)):
            explainer = lime_image.LimeImageExplainer(random_state=row)
            with _quiet():
                explainer.explain_instance(
                    pixels[row], classify, labels=(1,), hide_color=(128, 128, 128),
                    num_samples=1000, batch_size=100,
                    segmentation_fn=SegmentationAlgorithm(
                        "slic", n_segments=100, compactness=10, start_label=0
                    ),
                )  # fmt: skip

    compare("image 64 px: lime superpix", model, rows, "lime", {}, bare, args.repeats)


def texts(args, count: int) -> None:
    from captum.attr import IntegratedGradients

    rng = np.random.default_rng(0)
    words = [f"w{i}" for i in range(300)]
    data = pd.DataFrame(
        {"review": [" ".join(rng.choice(words, 100)) for _ in range(60)], "y": ["a", "b"] * 30}
    )
    model = deepstrata.fit(
        data, target="y", text_max_length=128, max_epochs=1, progress=False, ensemble=False,
        strategy="scratch",
    )  # fmt: skip
    rows = data.drop(columns="y").head(count)
    ids = blocks_of(model, rows)["text"]
    network = model.network
    layer = network.encoders["text"].columns[0].tokens
    state = {}

    def replace(module, args, output):
        return state.get("values")

    def forward(embeddings, ids):
        state["values"] = embeddings
        handle = layer.register_forward_hook(replace)
        try:
            return torch.sigmoid(network({"text": ids}))
        finally:
            handle.remove()
            state.clear()

    def bare():
        seen = {}
        capture = layer.register_forward_hook(lambda m, a, out: seen.setdefault("own", out))
        with torch.no_grad():  # the embeddings at the length the encoder cuts the batch to
            network({"text": ids})
        capture.remove()
        own = seen["own"]
        IntegratedGradients(forward).attribute(
            own, baselines=torch.zeros_like(own), additional_forward_args=(ids,), n_steps=50
        )

    compare("text 128 tokens: ig/token", model, rows, "ig", {}, bare, args.repeats)
    compare("text 128 tokens: rollout", model, rows, "attention", {}, None, args.repeats)


def audio(args, count: int, folder: Path) -> None:
    import soundfile
    from captum.attr import IntegratedGradients

    rng = np.random.default_rng(0)
    paths = []
    for index in range(40):
        path = folder / f"clip{index}.wav"
        soundfile.write(path, rng.normal(0, 0.1, 16000).astype(np.float32), 16000)
        paths.append(str(path))
    data = pd.DataFrame({"clip": paths, "y": ["a", "b"] * 20})
    model = deepstrata.fit(
        data, target="y", columns={"clip": "audio"}, max_epochs=1, progress=False,
        ensemble=False,
    )  # fmt: skip
    rows = data.drop(columns="y").head(count)
    block = blocks_of(model, rows)["audio"]
    network = model.network

    def bare():
        IntegratedGradients(lambda x: torch.sigmoid(network({"audio": x}))).attribute(
            block, baselines=torch.zeros_like(block), n_steps=50
        )

    compare("audio 1 s: ig time x freq", model, rows, "ig", {}, bare, args.repeats)


def more(args, count: int) -> None:
    folder = Path(tempfile.mkdtemp(prefix="explain-bench-more-"))
    tree(args, count)
    images(args, count, folder)
    texts(args, count)
    audio(args, count, folder)
