"""What every split of one ``fit`` shares: the table, its schema, the encoded target.

:func:`prepare` runs once per fit, before any training: the schema and task, the rows
with a target, every file of every file column decoded once (bad files listed in one
error, or left out with ``--skip-bad-files``), the target encoded, the strategy chosen.
Everything it refuses, it refuses before any work is written.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch

from deepstrata import tasks
from deepstrata.config import FitConfig, check_for_task
from deepstrata.data.files import BadFile, bad_files_error
from deepstrata.data.folders import with_groups
from deepstrata.data.schema import Schema, infer_schema
from deepstrata.data.split import train_validation_split
from deepstrata.data.table import Table
from deepstrata.errors import ConfigError, DataWarning
from deepstrata.kinds import KINDS
from deepstrata.model.model import Model
from deepstrata.preprocess.frame import transform_frame
from deepstrata.preprocess.target import TargetEncoder
from deepstrata.pretrained.strategy import choose_strategy, pretrained_kinds
from deepstrata.train.precision import resolve_device

SMALLEST_PRETRAINED_SIDE = 32  # EfficientNet-Lite0's side shrinks 32-fold: less is no image
FEW_ROWS = (
    10  # labelled rows below which fit warns that it can learn little (README: "Too little data")
)
FEW_VALIDATION_ROWS = 10  # held-out rows below which fit warns, suggesting --folds
FEW_CLASS_ROWS = 5  # a class with fewer rows is learnt and judged on too few: a warning


@dataclass
class Prepared:
    """What every split of one ``fit`` shares."""

    cfg: FitConfig
    table: Table
    frame: pd.DataFrame  # labelled rows only
    schema: Schema
    target_encoder: TargetEncoder
    encoded: np.ndarray  # encoded target, one per row of ``frame``
    skipped: list[BadFile] = field(default_factory=list)  # rows left out: unreadable files
    strategy: dict = field(default_factory=dict)  # used, requested, reason (see pretrained)
    pretrained: dict[str, str] = field(default_factory=dict)  # kind -> pretrained network used

    @property
    def task(self):
        """The task's code (:mod:`deepstrata.tasks`)."""
        return tasks.get(self.schema.task)

    @property
    def groups(self) -> np.ndarray | None:
        """Each row's group (``--group``) as text, for the splits; None without one."""
        if self.cfg.group is None:
            return None
        return self.frame[self.cfg.group].astype(str).to_numpy()

    @property
    def options(self) -> dict:
        """What preprocessors and encoders read: the config plus the pretrained networks."""
        return {**self.cfg.to_dict(), "pretrained": self.pretrained}

    def validation_split(self) -> tuple[np.ndarray, np.ndarray]:
        """(training rows, validation rows) as the options say: stratified by the task,
        ``--validation-fraction``, seeded, whole ``--group``s on one side."""
        return train_validation_split(
            self.encoded,
            stratify=self.task.stratify,
            fraction=self.cfg.validation_fraction,
            seed=self.cfg.seed,
            groups=self.groups,
        )

    def new_preprocessors(self, rows: np.ndarray) -> dict:
        """One preprocessor per input column, fitted on ``rows`` of the table."""
        frame, options = self.frame.iloc[rows], self.options
        return {
            f.name: KINDS[f.kind].new_preprocessor(options).fit(frame[f.name], self.table)
            for f in self.schema.inputs
        }


@dataclass
class Trained:
    """One trained member and what its training chose and left."""

    member: object  # a deepstrata.model.member Member or FeatureMember
    history: dict
    raw_outputs: np.ndarray | None  # validation outputs before calibration
    info: dict  # learning rate, precision, calibration: what the run chose and why
    artifacts: dict[str, bytes]


def prepare(table: Table, cfg: FitConfig) -> Prepared:
    """Schema, labelled rows, decoded files, encoded target and strategy (see module doc)."""
    if cfg.group_pattern is not None:
        table = with_groups(table, cfg.group_pattern)  # a folder: the group from file names
    schema = schema_for(table, cfg)
    check_for_task(cfg, schema.task)
    task = tasks.get(schema.task)
    frame = table.frame
    labelled = ~task.missing_targets(frame[cfg.target])
    if not labelled.all():
        warnings.warn(
            f"{int((~labelled).sum())} row(s) without a value in the target {cfg.target!r} were left out",
            DataWarning,
            stacklevel=3,
        )
        frame = frame[labelled]
    frame, skipped = _check_files(table, frame, schema, cfg)
    if len(frame) < 2:
        raise table.error(f"need at least 2 labelled rows to train, found {len(frame)}")
    if cfg.group is not None:
        check_groups(table, frame[cfg.group], cfg)
    target_encoder = TargetEncoder(schema.task).fit(frame[cfg.target], table)
    encoded = target_encoder.encode(frame[cfg.target], table)
    _warn_if_few(cfg, task, target_encoder, encoded)
    requested = cfg.strategy
    used, reason = choose_strategy(
        schema, len(frame), requested, resolve_device(cfg.device).type, classical=task.classical
    )
    if cfg.ensemble and used == "features":
        raise ConfigError(
            f"--ensemble needs a network, and --strategy {requested} chose features ({reason}); "
            "pass --strategy scratch or finetune",
            option="--ensemble",
        )
    if cfg.ensemble and not task.classical:
        raise ConfigError(
            f"--ensemble mixes the network with a classical model, and classical models do "
            f"not serve the {schema.task} task; fit without --ensemble",
            option="--ensemble",
        )
    cfg.strategy = used  # the bundle and run.json record what was used
    pretrained = pretrained_kinds(schema) if used != "scratch" else {}
    side = getattr(cfg, "image_size", None)
    if "image" in pretrained and side is not None and side < SMALLEST_PRETRAINED_SIDE:
        raise ConfigError(
            f"--image-size {side} is too small for the pretrained image network "
            f"({pretrained['image']} halves the side 5 times; --strategy {used}: {reason}); "
            f"pass --image-size {SMALLEST_PRETRAINED_SIDE} or more, or --strategy scratch",
            option="--image-size",
        )
    strategy = {"used": used, "requested": requested, "reason": reason}
    return Prepared(
        cfg, table, frame, schema, target_encoder, encoded, skipped, strategy, pretrained
    )


def groups_needed(cfg: FitConfig) -> tuple[int, str]:
    """The fewest groups the splits of ``cfg`` can keep apart, and what needs them."""
    if cfg.folds and cfg.ensemble:  # the held-out fold, and an inner split of the rest
        return cfg.folds + 1, f"--ensemble --folds {cfg.folds}"
    if cfg.folds:
        return cfg.folds, f"--folds {cfg.folds}"
    return 2, "a validation split"


def schema_for(table: Table, cfg: FitConfig):
    """The schema a fit with ``cfg`` infers for ``table`` (target, task, columns, ignore,
    group as the options say)."""
    return infer_schema(
        table.frame,
        target=cfg.target,
        task=cfg.task,
        columns=cfg.columns,
        ignore=cfg.ignore,
        source=table.source,
        group=cfg.group,
    )


def check_groups(table: Table, values: pd.Series, cfg: FitConfig) -> None:
    """DataError naming the --group column when a labelled row has no group, or when there
    are fewer groups than the splits need (before any work)."""
    missing = values.isna().to_numpy()
    if missing.any():
        raise table.error(
            f"{int(missing.sum())} labelled row(s) have no group (the first is named here)",
            column=cfg.group,
            position=int(values.index[missing][0]),
            hint="give every row a group, or leave those rows out",
        )
    count, (needed, what) = values.nunique(), groups_needed(cfg)
    if count < needed:
        raise table.error(
            f"{count} group(s) in the labelled rows; {what} needs at least {needed}, each "
            "group on one side",
            column=cfg.group,
            hint="fewer --folds, or a column with more groups",
        )


def group_counts(prepared: Prepared, sides: dict | list[dict]) -> dict:
    """metrics.json's ``groups`` entry: the column, the number of groups, and how many
    each side holds (``sides``: name -> row positions; for folds, a list of such, one per
    fold). Empty without --group."""
    groups = prepared.groups
    if groups is None:
        return {}

    def count(rows_by_side: dict) -> dict:
        return {name: len(np.unique(groups[rows])) for name, rows in rows_by_side.items()}

    entry = {"column": prepared.cfg.group, "total": len(np.unique(groups))}
    if isinstance(sides, list):
        entry["per_fold"] = [count(fold) for fold in sides]
    else:
        entry.update(count(sides))
    return {"groups": entry}


def _warn_if_few(cfg: FitConfig, task, target_encoder, encoded: np.ndarray) -> None:
    """A warning, with the reason, when the rows are few for what fit will do with them:
    a handful of rows, classes of a handful of rows, or a validation split too small to
    decide on. (Fewer than 2 rows, or a class too small to split, is an error.)"""
    if len(encoded) < FEW_ROWS:
        warnings.warn(
            f"only {len(encoded)} labelled rows: a network trained on so few, and validated "
            "on one or two, says little about new data; add rows",
            DataWarning,
            stacklevel=4,
        )
    if task.stratify:
        codes, counts = np.unique(encoded, return_counts=True)
        labels = target_encoder.labels()
        rare = [f"{labels[c]!r} ({n})" for c, n in zip(codes, counts) if n < FEW_CLASS_ROWS]
        if rare:
            warnings.warn(
                f"class{'es' if len(rare) > 1 else ''} {', '.join(rare[:10])} of {cfg.target!r} "
                f"{'have' if len(rare) > 1 else 'has'} fewer than {FEW_CLASS_ROWS} rows: the "
                "model sees almost nothing of them and validation judges them on one or two",
                DataWarning,
                stacklevel=4,
            )
    held_out = round(len(encoded) * cfg.validation_fraction)
    if not cfg.folds and held_out < FEW_VALIDATION_ROWS:
        warnings.warn(
            f"about {held_out} row{'s are' if held_out != 1 else ' is'} held out for validation: "
            "early stopping and calibration decide on them, and a row or two can swing them; "
            "with few rows, "
            "--folds 5 uses every row for validation once",
            DataWarning,
            stacklevel=4,
        )


def _check_files(
    table: Table, frame: pd.DataFrame, schema, cfg: FitConfig
) -> tuple[pd.DataFrame, list[BadFile]]:
    """Decode every file of every file column once, before any training (the decode cache
    keeps the arrays for the preprocessors). Bad files: one error listing them all, or
    with ``skip_bad_files`` their rows left out and returned."""
    options = cfg.to_dict()
    bad: list[BadFile] = []
    for feature in schema.inputs:
        kind = KINDS[feature.kind]
        if kind.files:
            found = kind.new_preprocessor(options).bad_files(frame[feature.name], table)
            if found and not cfg.skip_bad_files:
                raise bad_files_error(found, table, feature.name, f"{feature.kind} file")
            bad += [
                BadFile(b.position, b.path, f"column {feature.name!r}: {b.reason}") for b in found
            ]
    if not bad:
        return frame, []
    warnings.warn(
        f"{len(bad)} row(s) left out because a file could not be read (--skip-bad-files); "
        "the list is in skipped_files.csv",
        DataWarning,
        stacklevel=4,
    )
    return frame.drop(index=sorted({b.position for b in bad})), bad


def transform(preprocessors, frame: pd.DataFrame, table: Table) -> dict[str, torch.Tensor]:
    """Rows through fitted preprocessors, quietly: rare training values and validation-only
    values are expected to be unknown here."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        return transform_frame(preprocessors, frame, table)


def held_out_outputs(prepared: Prepared, member, rows: np.ndarray) -> np.ndarray:
    """A member's calibrated outputs on ``rows`` of the prepared table."""
    inputs = transform(member.preprocessors, prepared.frame.iloc[rows], prepared.table)
    return calibrated(member.raw_outputs(inputs), member)


def calibrated(raw: np.ndarray, member) -> np.ndarray:
    """Raw outputs of ``member`` after its temperature (as the task applies it)."""
    return tasks.get(member.architecture["task"]).calibrated(raw, member.temperature)


def assemble(
    prepared: Prepared,
    members: list,
    artifacts: dict,
    *,
    weights: list[float] | None = None,
    decision: dict | None = None,
) -> Model:
    """The Model of ``members`` fit on ``prepared`` (skipped files listed with it)."""
    if prepared.skipped:
        artifacts = {**artifacts, "skipped_files.csv": _skipped_table(prepared)}
    return Model(
        schema=prepared.schema,
        members=members,
        target_encoder=prepared.target_encoder,
        config=prepared.cfg,
        artifacts=artifacts,
        weights=weights,
        decision=decision,
    )


def _skipped_table(prepared: Prepared) -> bytes:
    """The rows ``--skip-bad-files`` left out: where, which file, why (CSV)."""
    rows = [
        {**prepared.table.location(b.position), "file": b.path, "reason": b.reason}
        for b in prepared.skipped
    ]
    return (
        pd.DataFrame(rows, columns=["row", "line", "file", "reason"]).to_csv(index=False).encode()
    )
