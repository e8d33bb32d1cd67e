"""The report's sections drawn from the bundle's own records: summary, data, training,
cross-validation, the model's choice, learning curves, configuration. (The sections
about where the model is wrong, read from the validation rows, are in
:mod:`deepstrata.report.validation`.)"""

from __future__ import annotations

import json
import math

from deepstrata.report.html import Html, Section, esc, fmt, image, note, table
from deepstrata.report.inputs import METRIC_NAMES, Inputs


def overview(bundle: Inputs) -> Section:
    metrics = bundle.metrics
    validation = metrics.get("validation", {})
    cv = metrics.get("cross_validation")
    cards = "".join(
        f'<div class="card"><div class="value">{esc(fmt(value))}</div>'
        f'<div class="label">{esc(METRIC_NAMES.get(name, name))}</div></div>'
        for name, value in validation.items()
        if isinstance(value, int | float)
    )
    rows, facts = metrics.get("rows", {}), []
    if cv:
        facts.append(("evaluated on", f"out-of-fold predictions of {cv.get('folds')} folds"))
    elif rows:
        facts.append(
            ("rows", f"{fmt(rows.get('train'))} training, {fmt(rows.get('validation'))} validation")
        )
    strategy = metrics.get("strategy", {})
    if strategy:
        facts.append(("strategy", f"{strategy.get('used')} — {strategy.get('reason', '')}"))
    if "head" in metrics:
        facts.append(("head", f"{metrics['head'].get('chosen')} on pretrained embeddings"))
    rate = metrics.get("learning_rate", {})
    if rate.get("used") is not None:
        how = "the range test's suggestion" if rate.get("configured") == "auto" else "set by hand"
        facts.append(("learning rate", f"{rate['used']:.3g} ({how})"))
    history = metrics.get("history", {})
    if history.get("best_epoch"):
        facts.append(
            (
                "best epoch",
                f"{history['best_epoch']} of {len(history.get('epochs', []))}; {history.get('stopped', '')}",
            )
        )
    calibration = metrics.get("calibration")
    if calibration:
        facts.append(
            (
                "calibration",
                f"temperature {fmt(calibration.get('temperature'), 3)}, expected calibration "
                f"error {fmt(calibration.get('ece_before'))} → {fmt(calibration.get('ece_after'))}",
            )
        )
    facts += _rare_class_facts(metrics)
    if metrics.get("device"):
        facts.append(("device", metrics["device"]))
    listing = "".join(f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in facts)
    subject = "out-of-fold" if cv else "validation"
    body = f'<h3>{esc(subject)} metrics</h3><div class="cards">{cards}</div>' if cards else ""
    return Section("summary", "Summary", body + f"<dl>{listing}</dl>")


def _rare_class_facts(metrics: dict) -> list[tuple[str, str]]:
    """What ``--imbalance`` found and did, and the decision threshold when one was chosen."""
    facts = []
    rare = metrics.get("imbalance")
    if rare and (rare.get("rare") or rare.get("method") != "none"):
        facts.append(
            (
                "imbalance",
                f"rarest class {rare.get('rarest_class')} is "
                f"{100 * float(rare.get('rarest_share', 0)):.2g}% of the training rows; "
                f"{rare.get('method')} (--imbalance {rare.get('configured')})",
            )
        )
    decision = metrics.get("decision") or {}
    if decision.get("threshold") is not None:
        facts.append(
            ("decision threshold", f"{fmt(decision['threshold'], 3)} ({decision.get('rule')})")
        )
    return facts


def data_section(bundle: Inputs) -> Section:
    summary = bundle.summary or {}
    schema = bundle.config.get("schema", {})
    parts = []
    rows = summary.get("rows", schema.get("rows"))
    line = f"{fmt(rows)} rows"
    if summary.get("source"):
        line = f"{summary['source']}: {line}"
    if summary.get("labelled") not in (None, rows):
        line += f", {fmt(summary['labelled'])} with a value in {bundle.target}"
    split = summary.get("split") or bundle.metrics.get("rows") or {}
    if {"train", "validation"} <= set(split):
        line += (
            f"; {fmt(split['train'])} for training, "
            f"{fmt(split['validation'])} held out for validation"
        )
    elif split:
        line += "; " + ", ".join(f"{k} {fmt(v)}" for k, v in split.items())
    parts.append(f"<p>{esc(line)}.</p>")
    target = summary.get("target", {})
    if target.get("classes"):
        counts = {str(k): int(v) for k, v in target["classes"].items()}
        total = sum(counts.values()) or 1
        biggest = max(counts.values()) or 1
        shown = sorted(counts.items(), key=lambda kv: -kv[1])
        lines = [
            [
                label,
                count,
                f"{100 * count / total:.1f}%",
                Html(f'<span class="bar" style="width:{100 * count / biggest:.0f}px"></span>'),
            ]
            for label, count in shown[:50]
        ]
        parts.append(f"<h3>class balance of {esc(bundle.target)}</h3>")
        parts.append(table(["class", "rows", "share", ""], lines, numeric=(1, 2)))
        if len(shown) > 50:
            parts.append(note(f"{len(shown) - 50} rarer classes not shown."))
    elif target.get("summary"):
        stats = target["summary"]
        parts.append(f"<h3>distribution of {esc(bundle.target)}</h3>")
        parts.append(table(list(stats), [list(stats.values())], numeric=tuple(range(len(stats)))))
    columns = summary.get("columns") or schema.get("features", [])
    if columns:
        total = summary.get("rows", schema.get("rows")) or 0
        lines = []
        for column in columns:
            missing = int(column.get("missing") or 0)
            share = f" ({100 * missing / total:.1f}%)" if total and missing else ""
            distinct = column.get("distinct", column.get("unique"))
            lines.append(
                [
                    column.get("name"),
                    column.get("kind"),
                    column.get("role"),
                    f"{missing:,}{share}",
                    distinct,
                ]
            )
        parts.append("<h3>columns</h3>")
        parts.append(
            table(["column", "kind", "role", "missing", "distinct"], lines, numeric=(3, 4))
        )
    return Section("data", "Data", "".join(parts))


def training_section(bundle: Inputs) -> Section:
    from deepstrata.report import plots

    metrics, parts = bundle.metrics, []
    history = metrics.get("history", {})
    if bundle.epochs:
        parts.append(
            image(
                plots.training_curves_png(bundle.epochs, best_epoch=history.get("best_epoch")),
                "training curves",
            )
        )
        best = history.get("best_epoch")
        stopped = history.get("stopped")
        parts.append(
            note(
                (f"best epoch {best} (dotted line); " if best else "")
                + (f"training stopped: {stopped}." if stopped else "")
            )
        )
    elif "head" in metrics or bundle.metrics.get("strategy", {}).get("used") == "features":
        head = metrics.get("head", {}).get("chosen", "classical")
        parts.append(
            note(
                f"no training curves: the features strategy fits a {head} head on pretrained embeddings, without epochs."
            )
        )
    else:
        parts.append(note("no training curves: the bundle records no per-epoch history."))
    rate = metrics.get("learning_rate", {})
    sweep = next(
        (bundle.files[n] for n in ("lr_range.png", "lr_range.fold-1.png") if n in bundle.files),
        None,
    )
    if sweep or rate:
        parts.append("<h3>learning-rate range test</h3>")
        if rate.get("rule"):
            suggestion = float(rate.get("suggestion", math.nan))
            parts.append(f"<p>suggested {suggestion:.3g}: {esc(rate['rule'])}.</p>")
        if sweep:
            caption = "loss against learning rate in a short sweep before training"
            parts.append(image(sweep, "learning-rate range test", caption))
    return Section("training", "Training", "".join(parts))


def cross_validation_section(bundle: Inputs) -> Section | None:
    cv = bundle.metrics.get("cross_validation")
    if not cv:
        return None
    names = list(cv.get("mean", {}))
    rows = [
        [f"fold {i}", *(fold.get(n) for n in names), fold.get("best_epoch")]
        for i, fold in enumerate(cv.get("per_fold", []), 1)
    ]
    rows.append(
        [
            Html("<b>mean ± std</b>"),
            *(f"{fmt(cv['mean'][n])} ± {fmt(cv['std'][n])}" for n in names),
            "",
        ]
    )
    body = f"<p>{esc(cv.get('folds'))} folds; the model kept: {esc(cv.get('model', '?'))}.</p>"
    body += table(
        ["", *(METRIC_NAMES.get(n, n) for n in names), "best epoch"],
        rows,
        numeric=tuple(range(1, len(names) + 2)),
    )
    return Section("cross-validation", "Cross-validation", body)


def model_choice_section(bundle: Inputs) -> Section | None:
    metrics, parts = bundle.metrics, []
    head = metrics.get("head")
    if head:
        parts.append(
            f"<p>head {esc(head.get('chosen'))} chosen (requested: {esc(head.get('requested'))}).</p>"
        )
        candidates = head.get("candidates") or []
        keys = [k for k in dict.fromkeys(k for c in candidates for k in c) if k != "head"]
        rows = [[c.get("head"), *(c.get(k) for k in keys)] for c in candidates]
        parts.append(table(["head", *keys], rows, numeric=tuple(range(1, len(keys) + 1))))
    ensemble = metrics.get("ensemble")
    if ensemble:
        kept = "kept" if ensemble.get("kept") else "not kept"
        parts.append(
            f"<h3>network + {esc(ensemble.get('classical', 'classical'))} ensemble: {esc(kept)}</h3>"
            f"<p>{esc(ensemble.get('reason', ''))}</p>"
        )
        scores = ensemble.get("validation", {})
        rows = [[name, value] for name, value in scores.items()]
        if ensemble.get("weight_network") is not None:
            rows.append(["weight of the network", ensemble["weight_network"]])
        scored = "out-of-fold" if ensemble.get("cross_fitted") else "validation"
        parts.append(table(["", f"{scored} {ensemble.get('metric', '')}"], rows, numeric=(1,)))
    return Section("model", "Model choice", "".join(parts)) if parts else None


def learning_curve_section(bundle: Inputs) -> Section | None:
    from deepstrata.report.plots import learning_curve_png

    compare = bundle.compare
    if not compare:
        return None
    parts = [
        f"<p>{esc(compare.get('metric'))} of each model family trained on growing fractions of "
        f"{esc(compare.get('data', 'the data'))} (seeds {esc(', '.join(map(str, compare.get('seeds', []))))}); "
        "the line is the mean, the band spans the seeds.</p>",
        image(learning_curve_png(compare), "learning curves"),
    ]
    winners = compare.get("winners") or []
    if winners:
        rows = [
            [f"{w.get('fraction', 0):g}", w.get("rows"), w.get("family"), w.get("mean")]
            for w in winners
        ]
        parts.append(
            table(["fraction", "training rows", "best family", "mean"], rows, numeric=(0, 1, 3))
        )
    for family, reason in (compare.get("skipped") or {}).items():
        parts.append(note(f"{family} skipped: {reason}"))
    return Section("compare", "Learning curves", "".join(parts))


def explanation_section(bundle: Inputs) -> Section | None:
    """What `deepstrata explain --into-bundle` saved: the global importance with its
    interval, and how faithful the method was."""
    explained = bundle.explain
    if not explained:
        return None
    importance = explained.get("global_importance") or []
    top = max((float(e.get("importance") or 0) for e in importance), default=0.0) or 1.0
    rows = [
        [
            e.get("column"),
            Html(
                f'<span class="bar" style="width:{120 * float(e.get("importance") or 0) / top:.0f}px">'
                "</span>"
            ),
            e.get("importance"),
            e.get("low"),
            e.get("high"),
        ]
        for e in importance
    ]
    settings = explained.get("settings") or {}
    parts = [
        f"<p>Mean |attribution| per input column by {esc(explained.get('method'))} "
        f"(of the {esc(settings.get('explained', 'prediction'))}), with a 95 % bootstrap "
        "interval over the explained rows.</p>",
        table(["column", "", "mean |attribution|", "low", "high"], rows, numeric=(2, 3, 4)),
    ]
    faithfulness = explained.get("faithfulness") or {}
    measured = [
        [key.replace("_", " "), value]
        for key, value in faithfulness.items()
        if not isinstance(value, dict)
    ]
    if measured:
        parts.append(
            f"<details><summary>faithfulness</summary>{table(['measure', 'value'], measured, numeric=(1,))}</details>"
        )
    return Section("explain", "What drives the predictions", "".join(parts))


def configuration_section(bundle: Inputs) -> Section:
    training = bundle.config.get("training", {})
    rows = [
        [k.replace("_", " "), json.dumps(v) if isinstance(v, list | dict) else v]
        for k, v in training.items()
    ]
    versions = bundle.config.get("versions", {})
    files = [[name, len(content)] for name, content in sorted(bundle.files.items())]
    body = (
        f"<details><summary>training configuration</summary>{table(['option', 'value'], rows)}</details>"
        f"<details><summary>bundle files</summary>{table(['file', 'bytes'], files, numeric=(1,))}</details>"
        f"<p class=note>{esc(' · '.join(f'{k} {v}' for k, v in versions.items()))}</p>"
    )
    return Section("configuration", "Configuration", body)


# -- the page ------------------------------------------------------------------------------------
