"""Why this prediction? Attributions per row and raw input column, with their
faithfulness measured.

``explain(model, data, method=...)`` (also ``Model.explain``) returns an
:class:`Explanation`. Methods (:data:`METHODS`): integrated gradients and gradient SHAP
through Captum (networks), TreeSHAP through shap (LightGBM members), KernelSHAP and exact
Shapley values through shap and LIME through lime (any model: they only call it; LIME
also over images' superpixels), and permutation importance. Text columns get words
(integrated gradients per token, attention rollout or KernelSHAP over words), audio
columns time x frequency maps. Every method explains the
probability of the predicted class (or ``target_class``; the value for regression) of
the whole model, preprocessing, calibration and members included, one attribution per
raw input column. The libraries are the ``explain`` extra, imported on first use.
"""

from deepstrata.explain.explanation import Explanation
from deepstrata.explain.methods import METHODS
from deepstrata.explain.run import MAX_ROWS, explain

__all__ = ["MAX_ROWS", "METHODS", "Explanation", "explain"]
