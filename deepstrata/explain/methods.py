"""The registry of explanation methods: one entry each, naming its code and what it
needs of a model. A method is ``run(target, **settings) -> (values, settings)`` with
``values`` of shape ``(rows, columns)`` (:mod:`deepstrata.explain.target`).

>>> sorted(METHODS)
['exact', 'gradshap', 'ig', 'lime', 'permutation', 'shap', 'tree']
>>> METHODS["exact"].refusal(columns=12, networks_only=True)
'exact Shapley values need at most 10 input columns; this model has 12 (use shap)'
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from deepstrata.explain.shapley import MAX_EXACT_COLUMNS


@dataclass(frozen=True)
class Method:
    """``additive``: a row's values sum to f(x) - f(baseline) (completeness is measured);
    ``networks``: every member must be a network; ``max_columns``: a limit on columns;
    ``check``: ``"module:function"`` of the model saying why the method does not apply
    to it, or None."""

    name: str
    ref: str
    summary: str
    library: str
    additive: bool = False
    networks: bool = False
    max_columns: int | None = None
    check: str | None = None

    @property
    def run(self):
        return _load(self.ref)

    def model_refusal(self, model) -> str | None:
        """Why this method does not apply to ``model`` (its ``check``), or None."""
        return None if self.check is None else _load(self.check)(model)

    def refusal(self, *, columns: int, networks_only: bool) -> str | None:
        """Why this method does not apply to such a model, or None."""
        if self.networks and not networks_only:
            return (
                f"{self.summary} needs every member to be a network; this model has a "
                "classical member (use shap, exact, lime or permutation)"
            )
        if self.max_columns is not None and columns > self.max_columns:
            return (
                f"{self.summary} need at most {self.max_columns} input columns; this model "
                f"has {columns} (use shap)"
            )
        return None


METHODS = {
    method.name: method
    for method in (
        Method(
            "ig",
            "deepstrata.explain.gradients:integrated_gradients",
            "integrated gradients",
            "captum",
            additive=True,
            networks=True,
        ),
        Method(
            "shap", "deepstrata.explain.shapley:kernel_shap", "KernelSHAP", "shap", additive=True
        ),
        Method(
            "exact",
            "deepstrata.explain.shapley:exact_shapley",
            "exact Shapley values",
            "shap",
            additive=True,
            max_columns=MAX_EXACT_COLUMNS,
        ),
        Method(
            "gradshap",
            "deepstrata.explain.gradshap:gradient_shap",
            "gradient SHAP",
            "captum",
            networks=True,
        ),
        Method(
            "tree",
            "deepstrata.explain.treeshap:tree_shap",
            "TreeSHAP",
            "shap",
            additive=True,
            check="deepstrata.explain.treeshap:refusal",
        ),
        Method("lime", "deepstrata.explain.lime:lime_values", "LIME", "lime"),
        Method(
            "permutation",
            "deepstrata.explain.permutation:permutation_values",
            "permutation importance",
            "deepstrata",
        ),
    )
}


def _load(ref: str):
    module, attribute = ref.split(":")
    return getattr(importlib.import_module(module), attribute)


def resolve(method: str, *, networks_only: bool, model=None) -> str:
    """``auto``: integrated gradients when every member is a network, TreeSHAP when the
    others are LightGBM (``model`` given), else KernelSHAP."""
    if method != "auto":
        return method
    if networks_only:
        return "ig"
    if model is not None and METHODS["tree"].model_refusal(model) is None:
        return "tree"
    return "shap"
