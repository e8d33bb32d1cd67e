"""Calibration: outputs whose probabilities can be taken at their word.

:mod:`~deepstrata.calibrate.temperature` fits one temperature per member on held-out
logits (Guo et al., 2017) and measures the expected calibration error. Conformal sets
and intervals will join here. Each task says what it calibrates
(:meth:`deepstrata.tasks.base.Task.calibration_nll`) and what it decides from the
calibrated outputs (``decide``: the multilabel task's per-label thresholds).
"""
