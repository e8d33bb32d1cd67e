"""The command line: one short typed function per command, over the Python API.

Heavy libraries (torch, pandas, scikit-learn) are imported inside the commands,
so ``deepstrata --help`` answers fast. Every user error exits with status 1 and
a one-line ``error: …`` naming file, column and row where known.
"""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path
from typing import Annotated

import typer

from deepstrata.compare_cli import compare
from deepstrata.evaluate.report import report
from deepstrata.serve.commands import export, serve

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    rich_markup_mode=None,
    help="deepstrata: a table in, a trained, evaluated neural network out.",
)

DataArg = Annotated[
    Path,
    typer.Argument(help="A CSV, TSV, Parquet or JSONL file, or a folder of class sub-folders."),
]
BundleArg = Annotated[Path, typer.Argument(help="A bundle directory written by `deepstrata fit`.")]
ColumnOpt = Annotated[
    list[str] | None,
    typer.Option("--column", help="Force a column's kind: NAME=KIND (repeatable)."),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable JSON on stdout.")]


@app.command()
def inspect(
    data: DataArg,
    target: Annotated[str | None, typer.Option(help="The column to predict.")] = None,
    column: ColumnOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Show the schema deepstrata infers: one row per column (kind, role, why)."""
    from deepstrata.config import parse_columns
    from deepstrata.data.folders import default_target, is_folder, summary
    from deepstrata.data.schema import format_schema, infer_schema
    from deepstrata.data.sources import read_table
    from deepstrata.display import print_table

    table = read_table(data)
    target = target or default_target(table)  # as fit does: a folder's class sub-folder
    schema = infer_schema(
        table.frame, target=target, columns=parse_columns(column or []), source=table.source
    )
    if as_json:
        print(json.dumps(schema.to_dict(), indent=2))
        return
    title = f"{data}: {schema.rows} rows" + (f", task {schema.task}" if schema.task else "")
    if is_folder(table):
        title = summary(table) + (f", task {schema.task}" if schema.task else "")
    print_table(
        title,
        ["column", "kind", "role", "missing", "unique", "examples", "why"],
        format_schema(schema),
    )


@app.command()
def fit(
    ctx: typer.Context,
    data: Annotated[
        Path | None,
        typer.Argument(
            help="A CSV, TSV, Parquet or JSONL file, or a folder of class sub-folders "
            "(omit with --resume)."
        ),
    ] = None,
    target: Annotated[str | None, typer.Option(help="The column to predict.")] = None,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Bundle directory [runs/<data name>].")
    ] = None,
    config: Annotated[
        Path | None, typer.Option(help="YAML file whose keys are these flags.")
    ] = None,
    task: Annotated[
        str | None, typer.Option(help="binary | multiclass | regression [inferred].")
    ] = None,
    column: ColumnOpt = None,
    ignore: Annotated[
        list[str] | None, typer.Option(help="Leave a column out (repeatable).")
    ] = None,
    hidden_dims: Annotated[
        str | None, typer.Option(help="Widths of the combiner's layers, e.g. 256,128.")
    ] = None,
    dropout: Annotated[
        str | None, typer.Option(help="One rate, or one per block, e.g. 0.3,0.1. [0.1]")
    ] = None,
    learning_rate: Annotated[
        str | None, typer.Option(help="A rate, or auto: the range test's suggestion. [auto]")
    ] = None,
    schedule: Annotated[
        str | None, typer.Option(help="onecycle | cosine | constant | plateau. [onecycle]")
    ] = None,
    weight_decay: Annotated[float | None, typer.Option(help="[1e-4]")] = None,
    label_smoothing: Annotated[float | None, typer.Option(help="Classifiers. [0]")] = None,
    gradient_clip: Annotated[float | None, typer.Option(help="Max gradient norm. [off]")] = None,
    mixup: Annotated[float | None, typer.Option(help="Mixup Beta alpha, e.g. 0.2. [off]")] = None,
    batch_size: Annotated[int | None, typer.Option(help="[chosen from the row count]")] = None,
    gradient_accumulation: Annotated[
        int | None, typer.Option(help="Batches per optimizer step. [1]")
    ] = None,
    max_epochs: Annotated[int | None, typer.Option(help="[200]")] = None,
    patience: Annotated[
        int | None, typer.Option(help="Epochs without improvement before stopping. [20]")
    ] = None,
    min_delta: Annotated[float | None, typer.Option()] = None,
    monitor: Annotated[
        str | None,
        typer.Option(help="What picks the best epoch: loss | accuracy (classifiers). [loss]"),
    ] = None,
    validation_fraction: Annotated[float | None, typer.Option(help="[0.2]")] = None,
    folds: Annotated[
        int | None, typer.Option(help="K-fold cross-validation: train K models.")
    ] = None,
    cv_model: Annotated[
        str | None,
        typer.Option(
            help="With --folds: refit (on all rows) | ensemble (the K models). "
            "[refit; with --ensemble: ensemble]"
        ),
    ] = None,
    calibrate: Annotated[
        bool | None,
        typer.Option("--calibrate/--no-calibrate", help="Temperature scaling. [on]"),
    ] = None,
    precision: Annotated[str | None, typer.Option(help="32 | bf16 | fp16 | auto. [32]")] = None,
    device: Annotated[str | None, typer.Option(help="auto | cpu | cuda | mps. [auto]")] = None,
    time_limit: Annotated[float | None, typer.Option(help="Seconds of training at most.")] = None,
    checkpoint_minutes: Annotated[
        float | None, typer.Option(help="Checkpoint long epochs this often. [10]")
    ] = None,
    tensorboard: Annotated[
        bool, typer.Option("--tensorboard", help="TensorBoard event files in the run directory.")
    ] = False,
    min_category_count: Annotated[int | None, typer.Option()] = None,
    seed: Annotated[int | None, typer.Option()] = None,
    skip_bad_files: Annotated[
        bool,
        typer.Option(
            "--skip-bad-files",
            help="Leave out rows whose image/audio file cannot be read (listed in the bundle).",
        ),
    ] = False,
    decode_workers: Annotated[
        int | None, typer.Option(help="Processes decoding files. [by the file count]")
    ] = None,
    strategy: Annotated[
        str | None,
        typer.Option(
            help="scratch | finetune | features: how image and text columns use pretrained "
            "networks. [auto: features for small data, see the docs]"
        ),
    ] = None,
    head: Annotated[
        str | None,
        typer.Option(
            help="features (and --ensemble's classical side): auto | logreg | svm | gbm | mlp. "
            "[auto: best on validation]"
        ),
    ] = None,
    ensemble: Annotated[
        bool,
        typer.Option(
            "--ensemble",
            help="Also fit the best classical model (logreg, svm, gbm) and mix it with the "
            "network when that beats both on validation. With --folds K: weighed on every "
            "row's out-of-fold outputs (K networks; steadier on small tables).",
        ),
    ] = False,
    freeze: Annotated[
        str | None,
        typer.Option(help="finetune: none | all | gradual (a stage more each epoch). [none]"),
    ] = None,
    pretrained_lr_scale: Annotated[
        float | None,
        typer.Option(help="finetune: pretrained layers' fraction of the learning rate. [0.1]"),
    ] = None,
    image_size: Annotated[
        int | None, typer.Option(help="Images: pixels per side. [64; 224 pretrained]")
    ] = None,
    image_resize: Annotated[
        str | None, typer.Option(help="Images: crop | pad | squash to a square. [crop]")
    ] = None,
    image_augment: Annotated[
        str | None,
        typer.Option(help="Images: any of crop,flip,rotate,color, or none. [all four]"),
    ] = None,
    image_width: Annotated[
        int | None, typer.Option(help="Images: CNN channels in its first stage. [32]")
    ] = None,
    image_depth: Annotated[
        int | None, typer.Option(help="Images: CNN stages of residual blocks. [3]")
    ] = None,
    max_image_pixels: Annotated[
        int | None, typer.Option(help="Images: larger ones are refused. [50000000]")
    ] = None,
    text_encoder: Annotated[
        str | None, typer.Option(help="Text: transformer | cnn | bag. [transformer]")
    ] = None,
    text_max_length: Annotated[int | None, typer.Option(help="Text: tokens kept. [128]")] = None,
    text_vocabulary: Annotated[
        int | None, typer.Option(help="Text: subword vocabulary size. [8000]")
    ] = None,
    text_layers: Annotated[int | None, typer.Option(help="Text: transformer layers. [2]")] = None,
    text_heads: Annotated[int | None, typer.Option(help="Text: attention heads. [4]")] = None,
    text_width: Annotated[int | None, typer.Option(help="Text: model width. [64]")] = None,
    text_token_dropout: Annotated[
        float | None, typer.Option(help="Text: chance of dropping each token in training. [0.1]")
    ] = None,
    sample_rate: Annotated[int | None, typer.Option(help="Audio: resampled to. [16000]")] = None,
    audio_seconds: Annotated[
        float | None, typer.Option(help="Audio: clips cut or padded to. [1.0]")
    ] = None,
    audio_mels: Annotated[int | None, typer.Option(help="Audio: mel bands. [64]")] = None,
    spec_augment: Annotated[
        bool | None,
        typer.Option("--spec-augment/--no-spec-augment", help="Audio: SpecAugment. [on]"),
    ] = None,
    audio_width: Annotated[
        int | None, typer.Option(help="Audio: CNN channels in its first stage. [32]")
    ] = None,
    audio_depth: Annotated[int | None, typer.Option(help="Audio: CNN stages. [3]")] = None,
    run_dir: Annotated[
        Path | None,
        typer.Option(
            help="Checkpoints and logs [<out>.run]. The default one is removed once the "
            "bundle is written (kept with --tensorboard); a named one keeps its logs."
        ),
    ] = None,
    resume: Annotated[
        Path | None,
        typer.Option(help="Continue the run in this run directory exactly where it stopped."),
    ] = None,
    overwrite: Annotated[
        bool, typer.Option(help="Replace an existing bundle and run directory.")
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress display.")] = False,
) -> None:
    """Train a network on DATA and write a bundle (checkpoints and logs go to the run directory)."""
    import shutil

    from deepstrata.config import FitConfig, load_config_file
    from deepstrata.errors import ConfigError
    from deepstrata.train.run import RunDirectory

    flags = {
        "target": target,
        "task": task,
        "learning_rate": learning_rate,
        "schedule": schedule,
        "weight_decay": weight_decay,
        "label_smoothing": label_smoothing,
        "gradient_clip": gradient_clip,
        "mixup": mixup,
        "batch_size": batch_size,
        "gradient_accumulation": gradient_accumulation,
        "max_epochs": max_epochs,
        "patience": patience,
        "min_delta": min_delta,
        "monitor": monitor,
        "validation_fraction": validation_fraction,
        "folds": folds,
        "cv_model": cv_model,
        "calibrate": calibrate,
        "precision": precision,
        "device": device,
        "time_limit": time_limit,
        "checkpoint_minutes": checkpoint_minutes,
        "tensorboard": tensorboard or None,
        "min_category_count": min_category_count,
        "seed": seed,
        "skip_bad_files": skip_bad_files or None,
        "decode_workers": decode_workers,
        "strategy": strategy,
        "head": head,
        "ensemble": ensemble or None,
        "freeze": freeze,
        "pretrained_lr_scale": pretrained_lr_scale,
        "image_size": image_size,
        "image_resize": image_resize,
        "image_augment": image_augment,
        "image_width": image_width,
        "image_depth": image_depth,
        "max_image_pixels": max_image_pixels,
        "text_encoder": text_encoder,
        "text_max_length": text_max_length,
        "text_vocabulary": text_vocabulary,
        "text_layers": text_layers,
        "text_heads": text_heads,
        "text_width": text_width,
        "text_token_dropout": text_token_dropout,
        "sample_rate": sample_rate,
        "audio_seconds": audio_seconds,
        "audio_mels": audio_mels,
        "spec_augment": spec_augment,
        "audio_width": audio_width,
        "audio_depth": audio_depth,
        "hidden_dims": _numbers(hidden_dims, int, "--hidden-dims"),
        "dropout": _numbers(dropout, float, "--dropout"),
        "column": column or None,
        "ignore": ignore or None,
    }
    given = {k: v for k, v in flags.items() if v is not None}

    if resume is not None:
        if given or config is not None or out is not None or run_dir is not None:
            named = (
                ", ".join(f"--{k.replace('_', '-')}" for k in given) or "--config/--out/--run-dir"
            )
            raise ConfigError(
                f"a resumed run keeps the options it started with; leave out {named}",
                option="--resume",
            )
        recorded = RunDirectory(resume).read()
        if recorded.get("finished"):
            raise ConfigError(
                f"{resume} is a finished run; its bundle is at {recorded.get('out', '?')}",
                option="--resume",
            )
        if "out" not in recorded or "data_path" not in recorded:
            raise ConfigError(
                f"{resume} was started from Python (deepstrata.fit(..., run_dir=...)); "
                "resume it there with resume=True",
                option="--resume",
            )
        data = data or Path(recorded["data_path"])
        cfg = FitConfig.from_dict(recorded["config"], source=str(resume)).validate()
        destination, run_path = Path(recorded["out"]), resume
        keep_run = recorded.get("keep", True)
        overwrite = True  # the run owns its bundle path
    else:
        if data is None:
            ctx.fail("Missing argument 'DATA': the data to train on (or --resume RUN_DIR)")
        settings = load_config_file(config) if config else {}
        if settings:  # unknown keys fail here, named as the file spells them
            FitConfig.from_dict(settings, source=str(config))
        settings = {str(k).replace("-", "_"): v for k, v in settings.items()}
        settings.update(given)
        cfg = FitConfig.from_dict(settings, source=str(config or "flags")).validate()
        destination = out or Path("runs") / Path(data).stem
        run_path = run_dir or destination.with_name(destination.name + ".run")
        # The default run directory exists for resuming; a finished run leaves only the
        # bundle, unless the user named the directory or asked for TensorBoard logs there.
        keep_run = run_dir is not None or bool(cfg.tensorboard)
        here, bundle = run_path.resolve(), destination.resolve()
        if here == bundle or bundle in here.parents or here in bundle.parents:
            raise ConfigError(
                f"the run directory {run_path} and the bundle {destination} must not overlap",
                option="--run-dir",
            )
        if destination.exists() and not overwrite:
            raise ConfigError(
                f"{destination} already exists; pass --overwrite or choose another --out",
                option="--out",
            )
        if overwrite and (run_path / "run.json").is_file():
            shutil.rmtree(run_path)  # only ever a run directory, never a folder of the user's

    from deepstrata import api

    if not quiet:
        print(
            f"run directory {run_path} (resume with: deepstrata fit --resume {run_path})",
            file=sys.stderr,
        )
    model = api.fit(
        data,
        config=cfg,
        progress=not quiet,
        run_dir=run_path,
        resume=resume is not None,
        keep_checkpoints=True,
        run_record={
            "out": str(destination.resolve()),
            "data_path": str(Path(data).resolve()),
            "keep": keep_run,
        },
    )
    path = model.save(destination, overwrite=overwrite)
    RunDirectory(run_path).finish(keep=keep_run)
    _print_fit_summary(model)
    print(f"bundle written to {path}")
    if keep_run:
        print(f"logs kept in {run_path}")


def _numbers(text: str | None, kind: type, option: str) -> list | None:
    """``"256,128"`` -> ``[256, 128]``; one number stays a list of one for widths."""
    from deepstrata.errors import ConfigError

    if text is None:
        return None
    try:
        values = [kind(part) for part in text.split(",")]
    except ValueError:
        raise ConfigError(
            f"expected comma-separated {kind.__name__}s, got {text!r}", option=option
        ) from None
    return values[0] if kind is float and len(values) == 1 else values


def _print_fit_summary(model) -> None:
    metrics = model.metrics
    cv = metrics.get("cross_validation")
    if cv:
        from deepstrata.display import print_table

        print_table(
            f"{cv['folds']}-fold cross-validation (mean ± std over folds)",
            ["metric", "mean", "std"],
            [[n, f"{cv['mean'][n]:.4f}", f"{cv['std'][n]:.4f}"] for n in cv["mean"]],
        )
        title = f"out-of-fold metrics ({metrics['rows']['validation']} rows)"
    else:
        title = f"validation metrics ({metrics['rows']['validation']} rows)"
    _print_metrics(title, metrics["validation"])
    strategy = metrics.get("strategy", {}).get("used")
    if strategy and strategy != "scratch":
        head = metrics.get("head", {}).get("chosen")
        print(
            f"strategy {strategy}" + (f": pretrained features under a {head} head" if head else "")
        )
    if "ensemble" in metrics:
        print(f"ensemble with {metrics['ensemble']['classical']}: {metrics['ensemble']['reason']}")
    calibration = metrics.get("calibration")
    if calibration:
        print(
            f"calibration: temperature {calibration['temperature']:.3g}, expected calibration "
            f"error {calibration['ece_before']:.4f} -> {calibration['ece_after']:.4f}"
        )


@app.command()
def predict(
    bundle: BundleArg,
    data: DataArg,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="CSV to write [stdout].")
    ] = None,
    proba: Annotated[
        bool, typer.Option("--proba", help="Add one probability column per class.")
    ] = False,
    keep: Annotated[
        list[str] | None, typer.Option(help="Copy an input column (e.g. an id) into the output.")
    ] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing --output file.")] = False,
) -> None:
    """Predict every row of DATA with a bundle."""
    from deepstrata import api
    from deepstrata.errors import ConfigError

    if output is not None and output.exists() and not overwrite:
        raise ConfigError(f"{output} already exists; pass --overwrite", option="--output")
    frame = api.load(bundle).predictions(data, proba=proba, keep=keep or [])
    if output is None:
        frame.to_csv(sys.stdout, index=False)
        return
    _write_atomically(output, lambda path: frame.to_csv(path, index=False))
    print(f"{len(frame)} predictions written to {output}", file=sys.stderr)


def _write_atomically(path: Path, write) -> None:
    """``write(temporary_path)`` beside ``path``, then renamed onto it: a failure leaves no
    half-written file and the old one whole."""
    import os
    import tempfile

    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(handle)
    try:
        write(temporary)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


@app.command()
def embed(
    data: DataArg,
    column: Annotated[
        str | None,
        typer.Option(help="The image or text column [a folder's files; the only such column]."),
    ] = None,
    output: Annotated[Path, typer.Option("--output", "-o", help="Parquet file to write.")] = Path(
        "embeddings.parquet"
    ),
    keep: Annotated[
        list[str] | None, typer.Option(help="Copy an input column (e.g. an id) into the output.")
    ] = None,
    image_size: Annotated[int | None, typer.Option(help="Images: pixels per side. [224]")] = None,
    text_max_length: Annotated[int, typer.Option(help="Text: tokens kept.")] = 128,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing output file.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress lines.")] = False,
) -> None:
    """Write a column's pretrained embeddings (EfficientNet-Lite0, all-MiniLM-L6-v2) to Parquet."""
    from deepstrata.embed import embed as embed_column
    from deepstrata.errors import ConfigError

    if output.exists() and not overwrite:
        raise ConfigError(f"{output} already exists; pass --overwrite", option="--output")
    frame = embed_column(
        data,
        column,
        keep=keep or [],
        image_size=image_size,
        text_max_length=text_max_length,
        progress=not quiet,
    )
    _write_atomically(output, lambda path: frame.to_parquet(path, index=False))
    width = sum(1 for name in frame.columns if name.rsplit("_", 1)[-1].isdigit())
    print(f"{len(frame)} rows x {width} values written to {output}", file=sys.stderr)


@app.command()
def evaluate(bundle: BundleArg, data: DataArg, as_json: JsonOpt = False) -> None:
    """Metrics of a bundle on DATA (which must include the target column)."""
    from deepstrata import api

    metrics = api.load(bundle).evaluate(data)
    if as_json:
        print(json.dumps(metrics, indent=2))
    else:
        _print_metrics(f"{data}", metrics)


def _print_metrics(title: str, metrics: dict) -> None:
    from deepstrata.display import print_table

    print_table(
        title, ["metric", "value"], [[name, f"{value:.4f}"] for name, value in metrics.items()]
    )


@app.command()
def demo(
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Where the demo writes its files.")
    ] = Path("runs/demo"),
    max_epochs: Annotated[int, typer.Option()] = 200,
) -> None:
    """Train on the embedded Palmer penguins data, end to end, in well under two minutes."""
    from deepstrata.demo import run_demo

    run_demo(out, max_epochs=max_epochs)


app.command("compare")(compare)
app.command("report")(report)
app.command("serve")(serve)
app.command("export")(export)


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"warning: {message}", file=sys.stderr)


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the app, turning user errors into one clear line and exit 1."""
    from deepstrata.errors import DeepstrataError

    warnings.showwarning = _show_warning
    try:
        app(args=argv, standalone_mode=False)
    except DeepstrataError as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(1) from None
    except typer.Exit as exit_:
        raise SystemExit(exit_.exit_code) from None
    except typer.Abort:
        print("aborted", file=sys.stderr)
        raise SystemExit(130) from None
    except typer.TyperException as error:  # usage errors (typer's own copy of click)
        error.show()
        raise SystemExit(error.exit_code) from None


if __name__ == "__main__":
    main()
