"""Explanations: milliseconds per explained row for each method, and the overhead of
``Model.explain`` against calling the library directly on the bare network (issue 17).

A network (no ensemble) is fitted on a synthetic 20-column table of numbers with a
yes/no target. Each method explains the probability of the predicted class with every
column's baseline at its training median, through ``Model.explain`` (which also reads
the frame, preprocesses it, and sums attributions back into columns) and, where a
library does the same on its own, through that library on the bare network over the
preprocessed block built outside the timing:

* ig: captum ``IntegratedGradients`` on the network's input (50 steps, batched);
* shap: shap ``KernelExplainer`` on the network, background = the median row;
* lime: lime ``LimeBase`` on the same sampled neighbourhood;
* permutation: no library counterpart (written here; see deepstrata/explain/permutation.py);
* gradshap: captum ``GradientShap`` on the network's input (50 draws, the median row);
* tree: a LightGBM member (the ensemble keeps it on an axis-aligned target), against shap
  ``TreeExplainer`` on its booster over the same features (interventional, one reference);
* a 64-px image column, IG per pixel (bare: captum ``IntegratedGradients`` on the pixels),
  and LIME over its SLIC superpixels (bare: lime ``LimeImageExplainer`` on the network);
* a 128-token text column: IG over the column, its words by KernelSHAP (2W + 512
  coalitions; timed with the cheap permutation method on the one column), IG per token
  (bare: captum ``IntegratedGradients`` on the token embeddings, fed in by a hook) and
  attention rollout;
* a 1-s audio column (64 mels): IG with its time x frequency map (bare: captum
  ``IntegratedGradients`` on the spectrogram block, which is the network's input).

Faithfulness is not measured in the timed calls. Medians of ``--repeats``.

    python bench/explain.py            # 200 rows for ig and permutation, 20 for shap and lime
    python bench/explain.py --quick    # a smoke run
"""

from __future__ import annotations

import argparse
from functools import partial

import numpy as np
import pandas as pd
import torch
from _common import footer, header, set_threads, timed

import deepstrata
from deepstrata.data.sources import read_table
from deepstrata.preprocess.frame import transform_frame

COLUMNS = 20


def table(rows: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        rng.normal(0, 1, (rows, COLUMNS)), columns=[f"x{i}" for i in range(COLUMNS)]
    )
    score = frame.x0 + frame.x1 - frame.x2 + 0.5 * frame.x3 * frame.x4
    frame["y"] = np.where(score + rng.normal(0, 0.3, rows) > 0, "yes", "no")
    return frame


def bare_probability(network, block: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
    """The bare network's probability of each row's class (binary: one logit)."""
    positive = torch.sigmoid(network({"number": block}))
    chosen = torch.stack([1 - positive, positive], dim=1)
    return chosen.gather(1, classes[:, None])[:, 0]


def bare_ig(network, block, classes, steps):
    from captum.attr import IntegratedGradients

    method = IntegratedGradients(partial(bare_probability, network))
    return method.attribute(
        block, baselines=torch.zeros_like(block), additional_forward_args=(classes,), n_steps=steps
    )


def bare_gradshap(network, block, classes, draws):
    from captum.attr import GradientShap

    method = GradientShap(partial(bare_probability, network))
    return method.attribute(
        block, baselines=torch.zeros_like(block[:1]), additional_forward_args=(classes,),
        n_samples=draws,
    )  # fmt: skip


def bare_kernel(network, block, classes, samples):
    import shap

    out = []
    for row in range(len(block)):
        cls = classes[row : row + 1]

        def f(x, cls=cls):
            with torch.no_grad():
                tensor = torch.from_numpy(np.asarray(x, dtype=np.float32))
                return bare_probability(network, tensor, cls.expand(len(tensor))).numpy()

        explainer = shap.KernelExplainer(f, np.zeros((1, COLUMNS)))
        out.append(
            explainer.shap_values(
                block[row : row + 1].numpy(), nsamples=samples, l1_reg=False, silent=True
            )
        )
    return out


def bare_lime(network, block, classes, samples):
    from lime.lime_base import LimeBase
    from sklearn.metrics import pairwise_distances

    from deepstrata.explain.lime import KERNEL_WIDTH, _kernel, neighbourhood

    explainer = LimeBase(partial(_kernel, width=KERNEL_WIDTH), random_state=0)
    for row in range(len(block)):
        masks = neighbourhood(COLUMNS, samples, np.random.default_rng(row))
        data = masks.astype(float)
        masked = torch.from_numpy(np.where(masks, block[row].numpy(), 0).astype(np.float32))
        with torch.no_grad():
            labels = bare_probability(network, masked, classes[row].expand(samples)).numpy()
        distances = pairwise_distances(data, data[:1], metric="cosine").ravel() * 100
        explainer.explain_instance_with_data(
            data, labels[:, None], distances, 0, COLUMNS, feature_selection="none"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--part", choices=("all", "table", "files", "new"), default="all")
    args = parser.parse_args()
    threads = set_threads(args.threads)
    print(
        header(
            "explain: ms per explained row, Model.explain against the library on the bare network",
            threads,
        )
    )
    print(
        f"{'method':26} {'rows':>5} {'Model.explain ms/row':>21} {'library, bare ms/row':>21} {'ratio':>6}"
    )
    if args.part in ("all", "table"):
        tables(args)
    if args.part in ("all", "files"):
        raw_files(args, 8 if args.quick else 20)
    if args.part in ("all", "new"):
        from explain_more import more

        more(args, 8 if args.quick else 20)
    print(footer())


def tables(args) -> None:
    """The 20-column table, every method."""
    many, few = (40, 5) if args.quick else (200, 20)
    frame = table(2000)
    model = deepstrata.fit(
        frame,
        target="y",
        ensemble=False,
        max_epochs=3 if args.quick else 10,
        progress=False,
        seed=0,
    )
    rows = table(many, seed=1).drop(columns="y")
    network = model.network
    block = transform_frame(model.preprocessors, rows, read_table(rows))["number"]
    scaled = {name: pre.width for name, pre in model.preprocessors.items()}
    assert set(scaled.values()) == {1}, "the bare comparison needs one value per column"
    with torch.no_grad():
        classes = (network({"number": block}) > 0).long()
    runs = [
        ("ig (50 steps)", "ig", {}, many, lambda n: bare_ig(network, block[:n], classes[:n], 50)),
        (
            "shap (2088 coalitions)",
            "shap",
            {},
            few,
            lambda n: bare_kernel(network, block[:n], classes[:n], 2 * COLUMNS + 2048),
        ),
        (
            "lime (1000 neighbours)",
            "lime",
            {},
            few,
            lambda n: bare_lime(network, block[:n], classes[:n], 1000),
        ),
        ("permutation (5 repeats)", "permutation", {}, many, None),
        (
            "gradshap (50 draws)",
            "gradshap",
            {},
            many,
            lambda n: bare_gradshap(network, block[:n], classes[:n], 50),
        ),
    ]
    for label, method, options, count, bare in runs:
        explain = partial(
            model.explain, rows.head(count), method=method, faithfulness=False, **options
        )
        ours_ms = 1000 * timed(explain, args.repeats) / count
        if bare is None:
            print(f"{label:26} {count:5d} {ours_ms:21.2f} {'—':>21} {'—':>6}")
            continue
        theirs_ms = 1000 * timed(partial(bare, count), args.repeats) / count
        print(f"{label:26} {count:5d} {ours_ms:21.2f} {theirs_ms:21.2f} {ours_ms / theirs_ms:6.2f}")


def raw_files(args, count: int) -> None:
    """A 64-px image column (IG per pixel: heat maps) and a 128-token text column (IG on
    the column, KernelSHAP over its words), on networks trained one epoch (the cost of an
    explanation does not depend on how well the network learnt)."""
    import tempfile
    from pathlib import Path

    from PIL import Image

    rng = np.random.default_rng(0)
    folder = Path(tempfile.mkdtemp(prefix="explain-bench-"))
    paths = []
    for index in range(60):
        path = folder / f"{index}.png"
        Image.fromarray(rng.integers(0, 255, (64, 64, 3)).astype(np.uint8)).save(path)
        paths.append(str(path))
    images = pd.DataFrame({"photo": paths, "y": ["a", "b"] * 30})
    words = [f"w{i}" for i in range(300)]
    texts = pd.DataFrame(
        {
            "review": [" ".join(rng.choice(words, 100)) for _ in range(60)],
            "y": ["a", "b"] * 30,
        }
    )
    fit = {"max_epochs": 1, "progress": False, "ensemble": False, "strategy": "scratch"}
    image_model = deepstrata.fit(images, target="y", image_size=64, **fit)
    text_model = deepstrata.fit(texts, target="y", text_max_length=128, **fit)
    block = transform_frame(
        image_model.preprocessors, images.head(count), read_table(images.head(count))
    )["image"]
    network = image_model.network
    mean = torch.from_numpy(np.asarray(image_model.preprocessors["photo"].mean, np.float32))
    baseline = (mean * 255).round().repeat_interleave(64 * 64)[None].expand_as(block)

    def bare_image_ig(n):
        from captum.attr import IntegratedGradients

        def forward(pixels):
            return torch.sigmoid(network({"image": pixels}))  # binary: one logit per row

        IntegratedGradients(forward).attribute(
            block[:n].float(), baselines=baseline[:n].float(), n_steps=50
        )

    runs = [
        ("image 64 px: ig per pixel", image_model, images, "ig", {}, bare_image_ig),
        ("text 128 tokens: ig", text_model, texts, "ig", {"words": False}, None),
        ("text 128 tokens: words", text_model, texts, "permutation", {}, None),
    ]
    for label, model, data, method, options, bare in runs:
        rows = data.drop(columns="y").head(count)
        call = partial(model.explain, rows, method=method, faithfulness=False, **options)
        ours_ms = 1000 * timed(call, args.repeats) / count
        if bare is None:
            print(f"{label:26} {count:5d} {ours_ms:21.2f} {'—':>21} {'—':>6}")
            continue
        theirs_ms = 1000 * timed(partial(bare, count), args.repeats) / count
        print(f"{label:26} {count:5d} {ours_ms:21.2f} {theirs_ms:21.2f} {ours_ms / theirs_ms:6.2f}")


if __name__ == "__main__":
    main()
