"""``--strategy features``: pretrained networks as feature extractors under a classical model.

A row becomes one vector: each image or text column through its pretrained network
(EfficientNet-Lite0, all-MiniLM-L6-v2), numbers, booleans and dates as their
preprocessors scaled them, categories one-hot. The pretrained networks run once per
distinct input and their embeddings are cached on disk (:mod:`deepstrata.pretrained.cache`),
so trying another head, a refit or another fold costs seconds. On top, a classical
model (:mod:`deepstrata.classical`): ``--head logreg|svm|gbm|mlp``, or ``auto``, which
fits each on the training rows and keeps the best on the validation rows. Its
scores are temperature-calibrated on the validation rows, as a network's logits are.

The bundle holds the classical model as arrays (and LightGBM's own text format), and
names each pretrained network by package, version and weight-file sha256: loading
refuses installed weights that differ.
"""

from __future__ import annotations

import time
import warnings

import numpy as np

from deepstrata import tasks
from deepstrata.calibrate.temperature import calibrate
from deepstrata.errors import ConfigError
from deepstrata.kinds import encoder_options
from deepstrata.model.extractor import build_extractor
from deepstrata.model.member import FeatureMember
from deepstrata.recipes.prepare import Trained, transform

# --head auto leaves LightGBM out on wider features (EfficientNet's 1,280 columns): on
# 3,000 28-px digits it took 460-720 s of a 12-minute fit and lost to the logistic
# regression (0.954 both), which fitted in seconds (bench/transfer.py --only features-fit).
GBM_MAX_COLUMNS = 512
AUTO_HEADS = ("logreg", "svm", "gbm", "mlp")  # tried by --head auto, simplest first (ties)


def fixed_feature_networks(schema, *, who: str, option: str, remedy: str) -> dict[str, str]:
    """``{kind: pretrained network}`` that turn every input column into fixed features
    (tabular kinds need none); a ConfigError naming the first column no network can
    turn into features, and a missing package's error naming its extra, before any work.
    ``who`` needs the features, ``remedy`` says what to do instead."""
    from deepstrata.pretrained.registry import get
    from deepstrata.pretrained.strategy import TABULAR, pretrained_kinds

    task = tasks.get(schema.task)
    if not task.classical:
        raise ConfigError(
            f"{who} is a classical model, and classical models do not serve the "
            f"{schema.task} task; {remedy}",
            option=option,
        )
    networks = pretrained_kinds(schema)
    for feature in schema.inputs:
        if feature.kind not in TABULAR and feature.kind not in networks:
            raise ConfigError(
                f"column {feature.name!r} is {feature.kind}: {who} needs fixed features and "
                f"{feature.kind} has no pretrained network to make them; {remedy}",
                option=option,
            )
    for name in networks.values():
        get(name).require()
    return networks


def head_score(task: str, raw: np.ndarray, encoded: np.ndarray) -> tuple[float, dict]:
    """(higher is better, metrics) of a head's raw validation outputs: accuracy, or -RMSE."""
    return tasks.get(task).head_score(raw, encoded)


def fit_heads(
    candidates: tuple[str, ...],
    train: tuple[np.ndarray, np.ndarray],
    validation: tuple[np.ndarray, np.ndarray] | None,
    *,
    task: str,
    num_classes: int,
    seed: int,
    report=lambda line: None,
):
    """The head to keep, fit on ``train``, and a table of how each candidate scored.

    With one candidate there is nothing to choose. Otherwise each is scored on the
    validation rows, or, when they are fewer than ``CROSS_VALIDATE_BELOW`` (20 rows
    would pick by the luck of a few) or absent (a refit on every row), by K-fold
    cross-validation over the training and validation rows together. The chosen head
    is then fit on the training rows.
    """
    from deepstrata.classical import new_head
    from deepstrata.classical.svm import MAX_ROWS

    def fitted(name, features, target, held_out=None):
        head = new_head(name, task=task, num_classes=num_classes, seed=seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", category=UserWarning)  # convergence chatter
            return head.fit(features, target, validation=held_out)

    metric = "rmse" if not tasks.get(task).classifier else "accuracy"
    if len(candidates) == 1:
        head = fitted(candidates[0], *train, validation)
        if validation is None:
            return head, []
        score, metrics = head_score(task, head.outputs(validation[0]), validation[1])
        report(f"head {head.name}: validation {metric} {abs(score):.4g}")
        return head, [{"head": head.name, "score": score, "scored_by": "validation", **metrics}]
    everything = train if validation is None else tuple(map(np.concatenate, zip(train, validation)))
    small = validation is None or len(validation[0]) < CROSS_VALIDATE_BELOW
    folds = _folds(*everything, task, seed) if small else None
    if folds is None and validation is None:
        return fitted(candidates[0], *train), []  # too few rows per class to compare
    table, best, best_score = [], None, -np.inf
    for name in candidates:
        if name == "svm" and len(train[0]) > MAX_ROWS:
            table.append({"head": name, "skipped": f"more than {MAX_ROWS} training rows"})
            continue
        if name == "gbm" and train[0].shape[1] > GBM_MAX_COLUMNS:
            reason = (
                f"{train[0].shape[1]} columns, more than {GBM_MAX_COLUMNS} (--head gbm fits it)"
            )
            report(f"head gbm skipped: {reason}")
            table.append({"head": name, "skipped": reason})
            continue
        started = time.perf_counter()
        if folds is None:
            head = fitted(name, *train, validation)
            score, metrics = head_score(task, head.outputs(validation[0]), validation[1])
            how = "validation"
        else:
            features, target = folds["features"], folds["target"]
            scores = [
                head_score(
                    task,
                    fitted(name, features[fit], target[fit]).outputs(features[held]),
                    target[held],
                )[0]
                for fit, held in folds["splits"]
            ]
            score, metrics, how = float(np.mean(scores)), {}, f"{len(scores)}-fold cross-validation"
        seconds = round(time.perf_counter() - started, 3)
        table.append(
            {"head": name, "score": score, "scored_by": how, "seconds": seconds, **metrics}
        )
        report(f"head {name}: {how} {metric} {abs(score):.4g} ({seconds:.1f}s)")
        if score > best_score:
            best, best_score = name, score
    return fitted(best, *train, validation), table


CROSS_VALIDATE_BELOW = 200  # validation rows under which heads are compared by K-fold CV


def _folds(features: np.ndarray, target: np.ndarray, task: str, seed: int) -> dict | None:
    """Up to 5 folds over the rows (stratified for classes); None when a class has one row."""
    from sklearn.model_selection import KFold, StratifiedKFold

    if not tasks.get(task).stratify:
        splitter = KFold(n_splits=min(5, len(target)), shuffle=True, random_state=seed)
    else:
        smallest = int(np.unique(target, return_counts=True)[1].min())
        if smallest < 2:
            return None
        splitter = StratifiedKFold(n_splits=min(5, smallest), shuffle=True, random_state=seed)
    return {
        "features": features,
        "target": target,
        "splits": list(splitter.split(features, target)),
    }


def image_sizes(preprocessors: dict, options: dict) -> dict:
    """``{"image_size": {column: {size, source_side, chosen_by}}}`` for metrics.json: the side
    each image column went to the pretrained network at, and why; ``{}`` without images."""
    from deepstrata.pretrained.inputs import rule

    sizes = {}
    for name, pre in preprocessors.items():
        if pre.kind != "image":
            continue
        chosen_by = "--image-size" if options.get("image_size") else rule()
        side = getattr(pre, "source_side", None)
        sizes[name] = {"size": pre.size, "source_side": side, "chosen_by": chosen_by}
    return {"image_size": sizes} if sizes else {}


def train_features(
    prepared,
    train_rows: np.ndarray,
    val_rows: np.ndarray | None,
    *,
    progress,
    heads: tuple[str, ...] | None = None,
):
    """The features counterpart of :func:`deepstrata.recipes.network.train_split`; ``heads``: the
    candidates (default: ``--head``, or every head for ``auto``)."""
    from deepstrata.pretrained.registry import get
    from deepstrata.seeding import seed_everything

    cfg, schema, table = prepared.cfg, prepared.schema, prepared.table
    val_rows = val_rows if val_rows is not None else np.arange(0)  # a refit on every row
    options = prepared.options
    preprocessors = prepared.new_preprocessors(train_rows)
    seed_everything(cfg.seed)
    extractor = build_extractor(preprocessors, options)
    report = progress.note if progress is not None else (lambda line: None)
    rows = np.concatenate([train_rows, val_rows])
    inputs = transform(preprocessors, prepared.frame.iloc[rows], table)
    started = time.perf_counter()
    features, counts = extractor.extract(inputs, cache=True, report=report)
    extract_seconds = time.perf_counter() - started
    n_train = len(train_rows)
    train = (features[:n_train], prepared.encoded[train_rows])
    validation = (features[n_train:], prepared.encoded[val_rows]) if len(val_rows) else None
    task = schema.task
    num_classes = len(prepared.target_encoder.classes)
    candidates = heads or (AUTO_HEADS if cfg.head == "auto" else (cfg.head,))
    head, heads_table = fit_heads(
        candidates,
        train,
        validation,
        task=task,
        num_classes=num_classes,
        seed=cfg.seed,
        report=report,
    )
    if len(candidates) > 1:
        report(f"head {head.name} chosen: the best score of {', '.join(candidates)}")
    architecture = {
        "task": task,
        "num_classes": num_classes,
        "options": encoder_options(sorted({f.kind for f in schema.inputs}), options),
        "features": features.shape[1],
    }
    identities = [get(name).identity() for name in sorted(set(options["pretrained"].values()))]
    member = FeatureMember(preprocessors, extractor, head, architecture, pretrained=identities)
    raw = head.outputs(validation[0]) if validation is not None else None
    info: dict = {
        "features": {
            "dimensions": int(features.shape[1]),
            "extraction": counts,
            "extraction_seconds": round(extract_seconds, 3),
            **image_sizes(preprocessors, options),
        },
        "head": {"chosen": head.name, "requested": cfg.head, "candidates": heads_table},
    }
    if prepared.task.classifier and cfg.calibrate and validation is not None:
        info["calibration"] = calibrate(member, raw, validation[1])
    history = {"epochs": [], "best_epoch": 0, "stopped": f"head {head.name} fit on embeddings"}
    return Trained(member, history, raw, info, {})
