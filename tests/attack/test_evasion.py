"""FGSM and PGD in each input's own units, on tiny networks built by hand."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from deepstrata.attack.evasion import Attack, Units, embedding_modules, input_units, make_attack
from deepstrata.preprocess.image import ImagePreprocessor
from deepstrata.preprocess.number import IQR_TO_STD, NumberPreprocessor

SIZE = 4
WIDTH = 3 * SIZE * SIZE


class PixelNet(nn.Module):
    """uint8-valued pixels -> logits, normalised inside like the image encoder."""

    def __init__(self, classes: int = 3) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.linear = nn.Sequential(nn.Linear(WIDTH, 16), nn.Tanh(), nn.Linear(16, classes))

    def forward(self, inputs):
        x = inputs["image"].float() / 255
        return self.linear((x - 0.5) / 0.25)

    def loss(self, output, target):
        return nn.functional.cross_entropy(output, target)


def _pixels(rows: int = 8) -> dict:
    generator = torch.Generator().manual_seed(1)
    return {"image": torch.randint(0, 256, (rows, WIDTH), generator=generator, dtype=torch.uint8)}


def _image_pre() -> dict:
    pre = ImagePreprocessor()
    pre.size = SIZE
    return {"photo": pre}


def test_fgsm_matches_captum_in_pixel_units():
    robust = pytest.importorskip("captum.robust")
    network, inputs = PixelNet().eval(), _pixels()
    target = torch.arange(8) % 3
    epsilon = 8 / 255
    ours = make_attack(network, _image_pre(), inputs, method="fgsm")(inputs, target, epsilon)
    captum = robust.FGSM(  # its default loss is -log of the outputs: give it probabilities
        lambda x: network({"image": x * 255}).softmax(1), lower_bound=0, upper_bound=1
    )
    with pytest.warns(UserWarning, match="require gradients"):
        theirs = captum.perturb(inputs["image"].float() / 255, epsilon, target) * 255
    torch.testing.assert_close(ours["image"], theirs, atol=1e-3, rtol=0)


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_pgd_stays_in_the_budget_and_the_pixel_range(norm):
    network, inputs = PixelNet().eval(), _pixels()
    target = torch.arange(8) % 3
    epsilon = 8 / 255 if norm == "linf" else 0.5
    attack = make_attack(network, _image_pre(), inputs, method="pgd", norm=norm, steps=5)
    before = network.linear[0].weight.clone()
    adversarial = attack(inputs, target, epsilon)["image"]
    change = (adversarial - inputs["image"].float()) / 255  # in [0, 1] pixel units
    assert adversarial.min() >= 0 and adversarial.max() <= 255
    if norm == "linf":
        assert change.abs().max() <= epsilon + 1e-6
    else:
        assert change.norm(dim=1).max() <= epsilon + 1e-5
    loss = nn.functional.cross_entropy
    assert loss(network({"image": adversarial}), target) > loss(network(inputs), target)
    assert network.linear[0].weight.grad is None  # the attack leaves parameter gradients alone
    torch.testing.assert_close(network.linear[0].weight, before)


def test_numbers_move_by_a_fraction_of_the_iqr_within_the_seen_range():
    pre = NumberPreprocessor()
    pre.flag_missing = True
    x = torch.tensor([[0.5, 0.0], [-1.0, 0.0], [0.0, 1.0], [2.0, 0.0]])  # (value, missing flag)
    units = input_units({"income": pre}, {"number": x})["number"]
    torch.testing.assert_close(units.scale, torch.tensor([[IQR_TO_STD, 0.0]]))

    class Net(nn.Module):
        def forward(self, inputs):
            return torch.stack([inputs["number"][:, 0], -inputs["number"][:, 0]], 1)

    attack = Attack(Net(), nn.functional.cross_entropy, units={"number": units}, steps=5)
    adversarial = attack({"number": x}, torch.zeros(4, dtype=torch.long), 0.1)["number"]
    assert torch.equal(adversarial[:, 1], x[:, 1])  # flags untouched
    assert adversarial[2, 0] == x[2, 0]  # a missing value stays missing
    assert adversarial[:, 0].min() >= -1.0 and adversarial[:, 0].max() <= 2.0  # seen range
    moved = (x[:, 0] - adversarial[:, 0]).abs()
    assert moved.max() <= 0.1 * IQR_TO_STD + 1e-6  # 0.1 IQR in scaled units
    assert moved[0] > 0.1 and moved[1] == 0  # pushed down, but not below the seen minimum


def test_embeddings_are_attacked_in_their_own_units():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.encoders = nn.ModuleDict({"category": nn.Embedding(5, 4)})
            self.head = nn.Linear(4, 2)

        def forward(self, inputs):
            return self.head(self.encoders["category"](inputs["category"][:, 0]))

    network = Net()
    found = embedding_modules(network)
    assert [module for module, _ in found] == [network.encoders["category"]]
    codes = {"category": torch.tensor([[1], [2], [3]])}
    target = network(codes).argmax(1)
    attack = Attack(network, nn.functional.cross_entropy, units={}, embeddings=found, steps=5)
    after = attack.outputs(codes, target, 0.5)
    clean = network(codes)
    assert nn.functional.cross_entropy(after, target) > nn.functional.cross_entropy(clean, target)
    assert torch.equal(codes["category"], torch.tensor([[1], [2], [3]]))  # ids unchanged


def test_units_reject_unknown_norms():
    with pytest.raises(ValueError, match="norm"):
        Attack(PixelNet(), None, units={"image": Units(torch.ones(1, WIDTH))}, norm="l1")


def test_random_start_depends_on_the_seed_only():
    network, inputs = PixelNet().eval(), _pixels()
    target = torch.arange(8) % 3
    runs = [
        make_attack(network, _image_pre(), inputs, method="pgd", steps=2, seed=seed)(
            inputs, target, 8 / 255
        )["image"]
        for seed in (3, 3, 4)
    ]
    assert torch.equal(runs[0], runs[1]) and not torch.equal(runs[0], runs[2])
    assert np.isfinite(runs[0].numpy()).all()
