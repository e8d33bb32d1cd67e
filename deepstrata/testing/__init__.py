"""Shipped contract checks, in the spirit of scikit-learn's ``check_estimator``.

Whoever adds a kind, a task or a classical head runs the matching check on it; the
project's own ``tests/testing/test_checks.py`` runs every check over every registry entry, so a
kind that trains but cannot be served, or a task whose labels do not round-trip, fails
there rather than in a user's hands.

- :func:`check_kind`: a :class:`~deepstrata.kinds.Kind` end to end: fit and transform on
  its own examples (missing values included), the JSON state round trip, the encoder's
  shape and gradients, the features block, the HTTP field (a JSON value in, the same
  block out), and the ONNX export of a network on the kind's synthetic sample.
- :func:`check_task`: a task's target encoding round trip, head, loss, probabilities,
  point predictions, mixing, metrics, epoch figures and calibration.
- :func:`check_head`: a classical head's fit, output shapes and state round trip.

>>> from deepstrata.testing import check_task
>>> check_task("binary")
"""

from deepstrata.testing.checks import check_head, check_kind, check_task

__all__ = ["check_head", "check_kind", "check_task"]
