"""The optional packages of the audits, imported when first needed.

A missing one is a :class:`~deepstrata.errors.MissingPackageError` naming the extra that
brings it (``pip install 'deepstrata[audit]'``), raised before any work.
"""

from __future__ import annotations


def fairlearn_metrics():
    """``fairlearn.metrics`` (MetricFrame and the disparity functions)."""
    try:
        from fairlearn import metrics
    except ImportError as error:
        from deepstrata.errors import MissingPackageError

        raise MissingPackageError(
            f"the fairness audit needs fairlearn ({error})", extra="audit"
        ) from None
    return metrics


def cleanlab_filter():
    """``cleanlab.filter`` (find_label_issues) — confident learning."""
    try:
        from cleanlab import filter as cleanlab_filter
    except ImportError as error:
        from deepstrata.errors import MissingPackageError

        raise MissingPackageError(
            f"the label-error search needs cleanlab ({error})", extra="audit"
        ) from None
    return cleanlab_filter
