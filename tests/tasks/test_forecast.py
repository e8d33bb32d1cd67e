import numpy as np
import torch

from deepstrata.tasks.forecast import Forecast, smape
from deepstrata.testing import check_task


def test_the_task_keeps_the_contract_and_its_loss_is_half_the_mae():
    check_task("forecast")
    output, target = torch.tensor([1.0, 3.0]), torch.tensor([2.0, 2.0])
    assert torch.isclose(Forecast().loss(output, target), torch.tensor(0.5))


def test_smape_in_percent():
    assert smape(np.array([100.0, 0.0]), np.array([100.0, 0.0])) == 0
    assert smape(np.array([1.0]), np.array([3.0])) == 100.0
