"""The report's Privacy section: what ``fit --private`` spent (metrics.json ``privacy``)."""

from __future__ import annotations

from deepstrata.report.html import Section, esc, table
from deepstrata.report.inputs import Inputs


def privacy_section(bundle: Inputs) -> Section | None:
    """The (epsilon, delta) DP-SGD spent, its noise and clipping, and what it rests on;
    None for a model trained without --private."""
    spent = bundle.metrics.get("privacy")
    if not spent:
        return None
    rows = [
        ["epsilon spent", spent.get("epsilon")],
        ["delta", spent.get("delta")],
        ["target epsilon", spent.get("target_epsilon")],
        ["noise multiplier", spent.get("noise_multiplier")],
        ["per-row gradient clip (L2)", spent.get("max_grad_norm")],
        ["sampling rate (batch / rows)", spent.get("sample_rate")],
        ["optimizer steps (planned)", f"{spent.get('steps')} ({spent.get('planned_steps')})"],
    ]
    body = (
        f"<p>Trained with {esc(spent.get('mechanism', 'DP-SGD'))}; budget by the "
        f"{esc(spent.get('accountant', '?'))} accountant. Covers {esc(spent.get('covers', ''))}; "
        f"{esc(spent.get('sampling', ''))}.</p>"
    )
    return Section("privacy", "Privacy", body + table(["", "value"], rows, numeric=(1,)))
