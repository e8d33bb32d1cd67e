"""The report's robustness section: what adversarial training (``fit --adversarial``)
cost and bought, from ``metrics["adversarial"]`` (see deepstrata.attack.adversarial):
the defended network beside its undefended twin (clean and PGD-10 robust accuracy,
epoch time), or, when no twin was trained, why the cost was not measured."""

from __future__ import annotations

from deepstrata.report.html import Html, Section, fmt, note, table
from deepstrata.report.inputs import Inputs


def robustness_section(bundle: Inputs) -> Section | None:
    record = bundle.metrics.get("adversarial")
    if not record:
        return None
    basis = record.get("time_factor_basis", "estimated from the seconds spent perturbing")
    rows = [
        [
            "method",
            f"{record['method']} ({record['steps']} step(s) of {record['step_size']}, random start)",
        ],
        ["epsilon", f"{record['epsilon']:.4g} ({record['epsilon'] * 255:.3g}/255)"],
        ["training-time factor", f"{fmt(record['time_factor'], 3)} x plain training ({basis})"],
        *(
            [["estimated within the run", f"{fmt(record['time_factor_estimated'], 3)} x"]]
            if "time_factor_estimated" in record
            else []
        ),
        [
            "seconds perturbing / training",
            f"{fmt(record['seconds_perturbing'], 3)} / {fmt(record['seconds_training'], 3)}",
        ],
    ]
    body = table(["", "value"], rows)
    twin = record.get("undefended")
    if twin is not None:
        body += _comparison(record, twin) + note(
            f"Clean-accuracy cost {fmt(record['clean_accuracy_cost'])} (undefended minus "
            f"defended), robust-accuracy gain {fmt(record['robust_accuracy_gain'])}, both on "
            f"the validation rows. Undefended: {twin['trained']} (its weights are not kept)."
        )
    else:
        if "validation_robust_accuracy" in record:
            body += table(
                ["validation accuracy", "adversarially trained"],
                [
                    ["clean", fmt(record["validation_clean_accuracy"])],
                    [f"under {record['robust_attack']}", fmt(record["validation_robust_accuracy"])],
                ],
                numeric=(1,),
            )
        body += note(
            "The clean-accuracy cost was not measured: "
            f"{record.get('cost_not_measured', 'no undefended twin was trained')}."
        )
    body += note("`deepstrata attack BUNDLE DATA` measures robust accuracy at other budgets.")
    return Section("robustness", "Adversarial training", Html(body))


def _comparison(record: dict, twin: dict) -> Html:
    """Undefended vs adversarially trained: clean, robust, median epoch seconds."""

    def row(label: str, key: str, digits: int = 4) -> list:
        plain, defended = twin.get(key), record.get(key)
        change = defended - plain if plain is not None and defended is not None else None
        return [label, fmt(plain, digits), fmt(defended, digits), fmt(change, digits)]

    return table(
        ["on the validation rows", "undefended", "adversarially trained", "change"],
        [
            row("accuracy, clean", "validation_clean_accuracy"),
            row(f"accuracy under {record['robust_attack']}", "validation_robust_accuracy"),
            row("median epoch seconds", "epoch_seconds", 3),
        ],
        numeric=(1, 2, 3),
    )
