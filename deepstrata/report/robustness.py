"""The report's robustness section: what adversarial training (``fit --adversarial``)
cost and bought, from ``metrics["adversarial"]`` (see deepstrata.attack.adversarial)."""

from __future__ import annotations

from deepstrata.report.html import Html, Section, fmt, note, table
from deepstrata.report.inputs import Inputs


def robustness_section(bundle: Inputs) -> Section | None:
    record = bundle.metrics.get("adversarial")
    if not record:
        return None
    rows = [
        [
            "method",
            f"{record['method']} ({record['steps']} step(s) of {record['step_size']}, random start)",
        ],
        ["epsilon", f"{record['epsilon']:.4g} ({record['epsilon'] * 255:.3g}/255)"],
        ["training-time factor", f"{fmt(record['time_factor'], 3)} x plain training"],
        [
            "seconds perturbing / training",
            f"{fmt(record['seconds_perturbing'], 3)} / {fmt(record['seconds_training'], 3)}",
        ],
    ]
    if "validation_robust_accuracy" in record:
        rows += [
            ["validation accuracy, clean", fmt(record["validation_clean_accuracy"])],
            [
                f"validation accuracy under {record['robust_attack']}",
                fmt(record["validation_robust_accuracy"]),
            ],
        ]
    body = table(["", "value"], rows) + note(
        "The clean-accuracy cost is the gap to a model fitted without --adversarial on the "
        "same rows; `deepstrata attack BUNDLE DATA` measures robust accuracy at other budgets."
    )
    return Section("robustness", "Adversarial training", Html(body))
