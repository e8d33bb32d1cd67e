"""A model card (Mitchell et al. 2019) in Markdown, from what a bundle knows.

Sections: model details, intended use, data, evaluation, metrics by group, limitations,
ethical considerations. What only the owner knows (intended use, users, out-of-scope
uses, more limitations and ethical considerations) comes from ``card.yaml``
(:func:`read_card_file`); what the bundle knows (task, inputs, rows, metrics, calibration,
fairness thresholds, label errors dropped, an audit's groups) is filled in. A section
nobody filled says so, rather than being left out.

``deepstrata card BUNDLE`` prints it; the report shows it as its "Model card" section.

>>> card = model_card({"schema": {"task": "binary", "target": "y", "features": []}}, {})
>>> card.splitlines()[0]
'# Model card: predict `y`'
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from deepstrata.errors import ConfigError

OWNER_KEYS = (
    "name",
    "owner",
    "intended_use",
    "intended_users",
    "out_of_scope",
    "limitations",
    "ethical_considerations",
)
UNSTATED = "_Not stated by the owner: add `{key}` to card.yaml (`deepstrata card --card`)._"


def read_card_file(path: str | Path) -> dict:
    """card.yaml: a mapping of the keys in :data:`OWNER_KEYS` to text (or lists of text)."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path} not found", option="--card")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        raise ConfigError(f"{path} is not valid YAML: {error}", option="--card") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a mapping of key: text", option="--card")
    unknown = sorted(set(map(str, data)) - set(OWNER_KEYS))
    if unknown:
        raise ConfigError(
            f"unknown key(s) {', '.join(unknown)} in {path}; expected {', '.join(OWNER_KEYS)}",
            option="--card",
        )
    return {str(k): v for k, v in data.items()}


def _owner(owner: Mapping, key: str) -> str:
    value = owner.get(key)
    if not value:
        return UNSTATED.format(key=key)
    if isinstance(value, list):
        return "\n".join(f"- {item}" for item in value)
    return str(value).strip()


def _number(value) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def _details(config: Mapping, metrics: Mapping, owner: Mapping) -> list[str]:
    schema = config.get("schema", {})
    inputs = [f for f in schema.get("features", []) if f.get("role") == "input"]
    training = config.get("training", {})
    lines = [
        f"- Task: {schema.get('task')}, predicting `{schema.get('target')}`",
        f"- Inputs ({len(inputs)}): " + ", ".join(f"`{f['name']}` ({f['kind']})" for f in inputs),
        f"- Members: {len(config.get('members', []))} "
        f"(strategy {metrics.get('strategy', {}).get('used') or training.get('strategy')})",
        f"- Trained with deepstrata {config.get('versions', {}).get('deepstrata', '?')}, "
        f"seed {training.get('seed')}",
    ]
    if owner.get("owner"):
        lines.insert(0, f"- Owner: {owner['owner']}")
    classes = config.get("target", {}).get("classes")
    if classes:
        lines.append("- Classes: " + ", ".join(f"`{c}`" for c in classes))
    return lines


def _evaluation(metrics: Mapping) -> list[str]:
    validation = metrics.get("validation", {})
    cv = metrics.get("cross_validation")
    rows = metrics.get("rows", {})
    where = (
        f"out-of-fold predictions of {cv.get('folds')} folds ({rows.get('validation')} rows)"
        if cv
        else f"{rows.get('validation', '?')} validation rows held out of training"
    )
    lines = [f"Scored on {where}.", "", "| metric | value |", "|---|---|"]
    lines += [f"| {name} | {_number(value)} |" for name, value in validation.items()]
    calibration = metrics.get("calibration")
    if calibration:
        lines += [
            "",
            f"Calibrated by temperature {calibration.get('temperature', 0):.3g}: expected "
            f"calibration error {calibration.get('ece_before', 0):.4f} -> "
            f"{calibration.get('ece_after', 0):.4f}.",
        ]
    return lines


def _groups(metrics: Mapping, audit: Mapping | None) -> list[str]:
    lines = []
    fairness = metrics.get("fairness")
    if fairness:
        plain, held = fairness["plain"], fairness["held_out"]
        name = fairness["constraint"].replace("_", " ")
        lines += [
            f"Group thresholds (`--fairness {fairness['constraint']}`, strength "
            f"{fairness['strength']:g}) on held-out rows: {name} difference "
            f"{plain['disparity']:.4f} -> {held['disparity']:.4f}, accuracy "
            f"{plain['accuracy']:.4f} -> {held['accuracy']:.4f}.",
            "",
        ]
    if audit:
        lines += _audit_tables(audit)
    if not lines:
        lines = ["_No groups known: fit with `--sensitive COL` or pass `--audit audit.json`._"]
    return lines


def _audit_tables(audit: Mapping) -> list[str]:
    lines = [f"From the audit on `{audit.get('data')}` ({audit.get('rows')} rows):", ""]
    for grouping in audit.get("groupings", []):
        names = list(grouping["groups"][0]["metrics"]) if grouping["groups"] else []
        lines += [
            f"**By {grouping['name']}**",
            "",
            "| group | rows | " + " | ".join(names) + " |",
            "|---|---|" + "---|" * len(names),
        ]
        for group in grouping["groups"]:
            cells = [_number(group["metrics"][n]["value"]) for n in names]
            lines.append(f"| {group['group']} | {group['count']} | " + " | ".join(cells) + " |")
        if grouping["too_small"]:
            small = ", ".join(f"{g['group']} ({g['count']})" for g in grouping["too_small"])
            lines.append(f"\nToo small to score: {small}.")
        lines.append("")
        for name, value in grouping["disparities"].items():
            lines.append(f"- {name.replace('_', ' ')}: {_number(value['value'])}")
        rule = grouping.get("four_fifths")
        if rule:
            verdict = "passes" if rule["passes"] else "**fails**"
            lines.append(f"- four-fifths rule: {verdict} (ratio {_number(rule['ratio'])})")
        lines.append("")
    return lines


def _sensitive_rows(metrics: Mapping) -> list[str]:
    sensitive = metrics.get("sensitive")
    if not sensitive:
        return []
    lines = []
    for column, counts in sensitive["rows"].items():
        hidden = " (audit only: not an input)" if column in sensitive.get("audit_only", []) else ""
        shown = ", ".join(f"{group} {count}" for group, count in counts.items())
        lines.append(f"- Labelled rows by `{column}`{hidden}: {shown}")
    return lines


def _known_limits(config: Mapping, metrics: Mapping) -> list[str]:
    rows = metrics.get("rows", {}).get("train")
    found = []
    if isinstance(rows, int) and rows < 1000:
        found.append(f"- Trained on {rows} rows: expect its scores to move on new data.")
    issues = metrics.get("label_issues")
    if issues:
        how = (
            "relabelled with the suggested class (`--relabel-issues`)"
            if "relabelled_rows" in issues
            else "left out (`--drop-label-issues`)"
        )
        found.append(
            f"- {issues['found']} of {issues['rows_checked']} training rows were likely "
            f"label errors, {how}."
        )
    return found


def model_card(
    config: Mapping, metrics: Mapping, owner: Mapping | None = None, audit: Mapping | None = None
) -> str:
    """The Markdown model card of a bundle's config.json and metrics.json, with the
    owner's card.yaml and an audit.json when given."""
    owner = owner or {}
    target = config.get("schema", {}).get("target")
    summary = metrics.get("rows", {})
    sensitive = config.get("training", {}).get("sensitive")
    ethics = [_owner(owner, "ethical_considerations")]
    if sensitive:
        ethics.append(
            f"- Sensitive columns named at training: `{sensitive}` (they are inputs unless "
            "left out): check the metrics by group before each use."
        )
    parts = [
        f"# Model card: {owner.get('name') or f'predict `{target}`'}",
        "",
        "## Model details",
        *_details(config, metrics, owner),
        "",
        "## Intended use",
        _owner(owner, "intended_use"),
        "",
        "**Intended users.** " + _owner(owner, "intended_users"),
        "",
        "**Out of scope.** " + _owner(owner, "out_of_scope"),
        "",
        "## Data",
        f"- Training rows: {summary.get('train', '?')}; held out: {summary.get('validation', '?')}",
        *_sensitive_rows(metrics),
        "",
        "## Evaluation",
        *_evaluation(metrics),
        "",
        "## Metrics by group",
        *_groups(metrics, audit),
        "",
        "## Limitations",
        *_known_limits(config, metrics),
        _owner(owner, "limitations"),
        "",
        "## Ethical considerations",
        *ethics,
        "",
    ]
    return "\n".join(parts)


def card_section(bundle):
    """The report's "Model card" section: the card as its Markdown text."""
    from deepstrata.report.html import Html, Section, esc

    text = model_card(bundle.config, bundle.metrics)
    return Section("card", "Model card", Html(f'<pre class="card">{esc(text)}</pre>'))


def groups_section(bundle):
    """The report's "Groups" section after ``fit --sensitive --fairness``: the thresholds
    per group and the trade-off of accuracy against the disparity; None without them."""
    from deepstrata.report.html import Html, Section, image, note, table

    fairness = bundle.metrics.get("fairness")
    chosen = bundle.config.get("fairness")
    by_group = _validation_by_group(bundle)
    if not by_group and not (fairness and chosen):
        return None
    if fairness and fairness.get("method") == "reweigh":
        return Section("groups", "Groups", Html("".join([*by_group, *_reweighed(bundle)])))
    if not (fairness and chosen):
        return Section("groups", "Groups", Html("".join(by_group)))
    thresholds = table(
        ["group", "threshold on P(" + str(chosen.get("positive", "positive")) + ")"],
        [[group, value] for group, value in chosen["thresholds"].items()],
        numeric=(1,),
    )
    rows = [[row["strength"], row["accuracy"], row["disparity"]] for row in fairness["tradeoff"]]
    name = fairness["constraint"].replace("_", " ")
    parts = [
        note(
            f"Thresholds per group of {', '.join(chosen['columns'])}, chosen on "
            f"{fairness['held_out']['rows']} held-out rows to shrink the {name} difference "
            f"(strength {fairness['strength']:g}); other groups keep {chosen['default']}."
        ),
        thresholds,
        table(["strength", "accuracy", f"{name} difference"], rows, numeric=(0, 1, 2)),
    ]
    if "fairness_tradeoff.png" in bundle.files:
        parts.append(image(bundle.files["fairness_tradeoff.png"], "accuracy against disparity"))
    return Section("groups", "Groups", Html("".join([*by_group, *parts])))


def _reweighed(bundle) -> list[str]:
    """``fit --fairness-method reweigh``'s trade-off: one network per strength of the
    Kamiran-Calders weights, scored on the held-out rows."""
    from deepstrata.report.html import image, note, table

    fairness = bundle.metrics["fairness"]
    name = fairness["constraint"].replace("_", " ")
    rows = [[row["strength"], row["accuracy"], row["disparity"]] for row in fairness["tradeoff"]]
    parts = [
        note(
            f"Trained with Kamiran-Calders row weights (label independent of the group of "
            f"{', '.join(fairness.get('columns', []))}) raised to each strength (0: plain); "
            f"the model is strength {fairness['strength']:g}, scored on "
            f"{fairness['held_out']['rows']} held-out rows."
        ),
        table(["strength", "accuracy", f"{name} difference"], rows, numeric=(0, 1, 2)),
    ]
    if "fairness_tradeoff.png" in bundle.files:
        parts.append(image(bundle.files["fairness_tradeoff.png"], "accuracy against disparity"))
    return parts


def _validation_by_group(bundle) -> list[str]:
    """Per group of each sensitive column (``fit --sensitive``): held-out rows, accuracy
    and, for a classifier, how often each is predicted the second class; [] without."""
    from deepstrata.data.sensitive import column_labels
    from deepstrata.report.html import note, table

    sensitive = bundle.metrics.get("sensitive")
    frame = bundle.predictions
    if not sensitive or frame is None or not bundle.classifier:
        return []
    classes = bundle.config.get("target", {}).get("classes") or []
    second = str(classes[1]) if len(classes) == 2 else None
    parts = []
    for column in sensitive["columns"]:
        if column not in frame.columns:
            continue
        labels = column_labels(frame[column].replace("", None))
        rows = []
        for group in sorted(set(labels)):
            mask = labels == group
            correct = (frame["_target"][mask] == frame["_prediction"][mask]).mean()
            row = [group, int(mask.sum()), float(correct)]
            if second is not None:
                row.append(float((frame["_prediction"][mask] == second).mean()))
            rows.append(row)
        header = ["group", "held-out rows", "accuracy"]
        header += [f"predicted {second}"] if second is not None else []
        parts.append(table([column, *header[1:]], rows, numeric=(1, 2, 3)))
    if parts:
        parts.insert(
            0,
            note(
                "On the held-out rows, by each sensitive column (fit --sensitive); "
                "`deepstrata audit` gives every rate with its interval."
            ),
        )
    return parts
