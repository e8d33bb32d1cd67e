"""``explain(model, data, method=...)``: validate, explain, measure faithfulness.

Everything a user can get wrong is checked before any model runs: an unknown method,
one that does not apply to this model, a row range outside the data, more rows than
``max_rows``, a missing input column, a class the model does not have.
"""

from __future__ import annotations

import time
import warnings

import numpy as np
import pandas as pd

from deepstrata.data.sources import read_table
from deepstrata.data.table import Table
from deepstrata.errors import ConfigError, DataWarning
from deepstrata.explain import faithfulness as faith
from deepstrata.explain import tokens
from deepstrata.explain.attention import attention_refusal, attention_words
from deepstrata.explain.baselines import check_image_baseline
from deepstrata.explain.dependence import partial_dependence
from deepstrata.explain.explanation import Explanation
from deepstrata.explain.methods import METHODS, resolve
from deepstrata.explain.regions import region_faithfulness
from deepstrata.explain.target import Target
from deepstrata.explain.words import text_columns, word_values

MAX_ROWS = 1000
COMPLETENESS_TOLERANCE = 0.01


def networks_only(model) -> bool:
    return all(hasattr(member, "network") for member in model.members)


def check_method(model, method: str) -> str:
    """The method's registry name, or ConfigError saying why it does not apply.
    ``attention`` explains the columns as ``auto`` does, and words by attention rollout."""
    if method == "attention":
        reason = attention_refusal(model, text_columns(model))
        if reason:
            raise ConfigError(reason, option="--method")
        method = "auto"
    name = resolve(method, networks_only=networks_only(model), model=model)
    if name not in METHODS:
        raise ConfigError(
            f"unknown method {method!r}; expected auto, {', '.join(METHODS)} or attention",
            option="--method",
        )
    reason = METHODS[name].refusal(
        columns=len(model.schema.inputs), networks_only=networks_only(model)
    ) or METHODS[name].model_refusal(model)
    if reason:
        raise ConfigError(reason, option="--method")
    return name


def select_rows(
    model, data, rows: tuple[int, int | None] | None, max_rows: int, target_class=None
) -> Table:
    """The rows to explain, as a Table, after every check on them."""
    table = data if isinstance(data, Table) else read_table(_frame(data))
    count = len(table.frame)
    start, stop = (0, count) if rows is None else rows
    stop = count if stop is None else stop
    if not (0 <= start < stop <= count):
        raise ConfigError(
            f"rows {start}:{stop} are outside the data ({count} rows: 0:{count})", option="--rows"
        )
    if stop - start > max_rows:
        raise ConfigError(
            f"{stop - start} rows to explain, more than {max_rows}; pick fewer with --rows "
            "or raise --max-rows",
            option="--max-rows",
        )
    missing = [f.name for f in model.schema.inputs if f.name not in table.frame.columns]
    if missing:
        raise table.error(
            f"input column {missing[0]!r} is missing (the model was trained with: "
            f"{', '.join(f.name for f in model.schema.inputs)})",
            column=missing[0],
        )
    if target_class is not None and not model.spec.classifier:
        raise ConfigError("a regression model has no classes to pick", option="--target-class")
    if target_class is not None:
        names = [str(c) for c in model.classes]
        if str(target_class) not in names:
            raise ConfigError(
                f"{target_class!r} is not a class of this model (its classes: {', '.join(names)})",
                option="--target-class",
            )
    frame = table.frame.iloc[start:stop].reset_index(drop=True)
    lines = None if table.lines is None else table.lines[start:stop]
    return Table(frame=frame, source=table.source, lines=lines)


def _frame(data):
    return pd.DataFrame(data) if isinstance(data, list) else data


def explain(
    model,
    data,
    *,
    method: str = "auto",
    rows: tuple[int, int | None] | None = None,
    target_class=None,
    max_rows: int = MAX_ROWS,
    samples: int | None = None,
    steps: int = 50,
    seed: int = 0,
    faithfulness: bool = True,
    compare: tuple[str, ...] = (),
    words: bool = True,
    image_baseline: str = "blurred",
) -> Explanation:
    """Attributions of ``model``'s predictions on ``data`` (see ``Model.explain``);
    ``image_baseline``: ``blurred`` (each row's own image blurred) or ``mean`` (the
    training mean colour), :mod:`deepstrata.explain.baselines`."""
    check_image_baseline(image_baseline)
    name = check_method(model, method)
    others = [check_method(model, other) for other in compare]
    table = select_rows(model, data, rows, max_rows, target_class)
    settings = {"samples": samples, "steps": steps, "seed": seed}
    started = time.perf_counter()
    target = Target(model, table, target_class=target_class, image_baseline=image_baseline)
    values, used = METHODS[name].run(target, **settings)
    maps = used.pop("maps", {})
    seconds = time.perf_counter() - started
    offset = 0 if rows is None else rows[0]
    explanation = Explanation(
        method=name,
        columns=target.columns,
        values=values,
        base_values=target.base,
        predictions=target.predictions,
        rows=np.arange(offset, offset + target.rows),
        classes=target.class_names(),
        settings={
            **used,
            "baselines": target.baselines(),
            "explained": "probability of the class" if target.classes is not None else "value",
            "seconds": seconds,
            "ms_per_row": 1000 * seconds / target.rows,
        },
        maps=maps,
        pixels={column: target.pixels(column) for column in maps},
    )
    explanation.dependence = partial_dependence(target, explanation.global_importance())
    _describe_maps(model, explanation)
    if method == "attention" or words:
        _add_words(model, target, explanation, method, steps=steps, seed=seed)
    if faithfulness:
        explanation.faithfulness = measure(model, table, target, explanation, settings, others)
        for column, entries in explanation.words.items():
            explanation.faithfulness.update(faith.word_deletion(target, column, entries, seed=seed))
        # an image's (a spectrogram's) cells, ranked by the method's map
        explanation.faithfulness.update(region_faithfulness(target, explanation.maps, seed=seed))
    return explanation


MAP_NOTES = {
    "image": "{how} per pixel of {column}: red moved the prediction up from the baseline "
    "image ({baseline}), blue down.",
    "audio": "{how} per time (across) and mel frequency (up) of {column}'s log-mel "
    "spectrogram: red moved the prediction up from a flat spectrogram, blue down.",
}


def _describe_maps(model, explanation) -> None:
    """Each heat map's kind and what it shows, for the page."""
    kinds = {f.name: f.kind for f in model.schema.inputs}
    how = {"lime": "LIME over superpixels", "gradshap": "Gradient SHAP"}.get(
        explanation.method, "Integrated gradients"
    )
    for column in explanation.maps:
        explanation.settings.setdefault("map_kinds", {})[column] = kinds[column]
        note = MAP_NOTES.get(kinds[column], MAP_NOTES["image"])
        explanation.settings.setdefault("map_notes", {})[column] = note.format(
            how=how, column=column, baseline=explanation.settings["baselines"][column]
        )


def _add_words(model, target, explanation, method: str, *, steps: int, seed: int) -> None:
    """Each text column's words: attention rollout (``attention``), integrated gradients
    per token (``ig`` where every member embeds tokens), else KernelSHAP over the words."""
    for column in text_columns(model):
        if method == "attention":
            explanation.words[column] = attention_words(target, column)
            explanation.settings["words"] = "attention rollout (Abnar & Zuidema, 2020)"
        elif explanation.method == "ig" and tokens.applies(model, column):
            entries = tokens.token_ig_words(target, column, steps=steps)
            explanation.words[column] = entries
            explanation.settings["words"] = (
                "integrated gradients per token (padding-token baseline), pieces merged"
            )
            gap = tokens.completeness_gap(target, entries)
            explanation.settings.setdefault("words_completeness_gap", {})[column] = gap
        else:
            explanation.words[column] = word_values(target, column, seed=seed)
            explanation.settings["words"] = "KernelSHAP over each text's words (2W + 512)"


def _flat(values: np.ndarray, maps: dict) -> np.ndarray:
    """Per row: the heat maps' pixels when there are any, else the column attributions."""
    if not maps:
        return values
    return np.concatenate([m.reshape(len(m), -1) for m in maps.values()], axis=1)


def measure(model, table, target, explanation, settings, others) -> dict:
    """The faithfulness measures that apply to this method and model."""
    name, values = explanation.method, explanation.values
    out = faith.curves(target, values, seed=settings["seed"])
    if METHODS[name].additive:
        out.update(faith.completeness(target, values))
        if out["completeness_gap"] > COMPLETENESS_TOLERANCE:
            warnings.warn(
                f"the attributions miss f(x) - f(baseline) by {out['completeness_gap']:.1%} "
                f"(more than {COMPLETENESS_TOLERANCE:.0%}); more --steps narrow the gap"
                + (
                    " (from a flat image GroupNorm jumps where no step sees it: "
                    "--image-baseline blurred)"
                    if target.image_baseline == "mean" and "image" in target.inputs[0].blocks
                    else ""
                ),
                DataWarning,
                stacklevel=3,
            )
    for other in others:
        other_values, _ = METHODS[other].run(target, **settings)
        out.setdefault("rank_agreement", {})[other] = faith.rank_agreement(values, other_values)
    if target.networks_only:  # image columns: the check runs on their heat maps

        def run(randomised, subset, classes):
            again = Target(
                randomised, subset, classes=classes, image_baseline=target.image_baseline
            )
            # the check compares ranks: integrated gradients need no refined steps for it
            values, used = METHODS[name].run(again, **settings, refine=False)
            return _flat(values, used.get("maps", {}))

        out.update(
            faith.randomisation(
                run,
                model,
                table,
                _flat(values, explanation.maps),
                target.classes,
                seed=settings["seed"],
            )
        )
    return out
