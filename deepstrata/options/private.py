"""The options of ``fit --private`` (DP-SGD, :mod:`deepstrata.train.private`) and the rule
that refuses, naming the flag, the options DP-SGD cannot honour. Declared here rather than
in :mod:`deepstrata.config` (which gathers them) to keep that file readable.
"""

from __future__ import annotations

from deepstrata.errors import ConfigError
from deepstrata.options.spec import Interval, Option, flag

OPTIONS = (
    Option(
        "private",
        False,
        "Differentially private training (DP-SGD, Opacus): each training row's gradient "
        "clipped, noise added; the (epsilon, delta) spent is recorded.",
        group="privacy",
    ),
    Option(
        "target_epsilon",
        None,
        "--private: the privacy budget epsilon the noise is set for.",
        Interval(0, open="low"),
        type="float",
        optional=True,
        group="privacy",
        extra={"shown": "3"},
    ),
    Option(
        "target_delta",
        None,
        "--private: delta, the chance the guarantee fails.",
        Interval(0, 1, open="both"),
        type="float",
        optional=True,
        group="privacy",
        extra={"shown": "1e-5, or 1/(10 rows) for more than 10,000 rows"},
    ),
    Option(
        "max_grad_norm",
        None,
        "--private: each row's gradient is clipped to this L2 norm.",
        Interval(0, open="low"),
        type="float",
        optional=True,
        group="privacy",
        extra={"shown": "1"},
    ),
)


def rule(config) -> None:
    """--private: the options DP-SGD cannot honour are refused, its own need it; the
    ensemble (a classical model on the same rows, outside the budget) turns off."""
    if not config.private:
        for name in ("target_epsilon", "target_delta", "max_grad_norm"):
            if getattr(config, name) is not None:
                raise ConfigError("is for private training: add --private", option=flag(name))
        return
    import importlib.util

    if importlib.util.find_spec("opacus") is None:
        raise ConfigError(
            "DP-SGD comes from Opacus: pip install 'deepstrata[privacy]'", option="--private"
        )
    refused = (
        ("folds", config.folds, "each row would be trained on K-1 times, spending K-1 budgets"),
        ("ensemble", config.ensemble, "the classical model trains on the rows without noise"),
        ("strategy", config.strategy == "features", "a classical head trains without noise"),
        (
            "gradient_accumulation",
            config.gradient_accumulation > 1,
            "DP-SGD clips each row's "
            "gradient within one step; accumulated batches cannot be clipped per sample",
        ),
        (
            "gradient_clip",
            config.gradient_clip,
            "DP-SGD clips each row's gradient to "
            "--max-grad-norm; a clip of the batch's gradient does not go with it",
        ),
        ("mixup", config.mixup, "a mixed row's gradient depends on two rows"),
        ("precision", config.precision in ("fp16", "bf16"), "per-sample gradients in 32 bits"),
        ("freeze", config.freeze == "gradual", "parameters joining mid-fit"),
        ("drop_label_issues", config.drop_label_issues, "a first fit without noise finds them"),
        ("relabel_issues", config.relabel_issues, "a first fit without noise finds them"),
        (
            "time",
            getattr(config, "time", None),
            "the forecaster trains in its own loop, without DP-SGD",
        ),
        (
            "imbalance",
            getattr(config, "imbalance", None) == "sample",
            "an oversampled row is trained on several times a step; --imbalance weight "
            "keeps each row's gradient clipped once",
        ),
    )
    for name, refuse, why in refused:
        if refuse:
            raise ConfigError(f"does not go with --private: {why}", option=flag(name))
    config.ensemble = False
    if config.target_epsilon is None:
        config.target_epsilon = 3.0
    if config.max_grad_norm is None:
        config.max_grad_norm = 1.0
