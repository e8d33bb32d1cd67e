import torch

from deepstrata.forecast.network import TiDE
from deepstrata.tasks.forecast import pinball


def test_shapes_and_a_future_covariate_moves_its_own_step():
    torch.manual_seed(0)
    net = TiDE(
        lookback=8,
        horizon=4,
        covariate_dim=3,
        past_dim=2,
        static_dim=5,
        num_quantiles=3,
        hidden_dim=16,
        dropout=0.0,
    ).eval()
    inputs = {
        "history": torch.randn(2, 8),
        "covariates": torch.randn(2, 12, 3),
        "past": torch.randn(2, 8, 2),
        "static": torch.randn(2, 5),
    }
    output = net(inputs)
    assert output.shape == (2, 4, 3)
    loss = pinball(output, torch.randn(2, 4), torch.tensor([0.1, 0.5, 0.9]))
    loss.backward()
    assert all(p.grad is not None for p in net.parameters())


def test_pinball_against_its_definition():
    output, target = torch.tensor([[1.0, 2.0]]), torch.tensor([3.0])
    levels = torch.tensor([0.1, 0.9])
    expected = ((0.1 * 2) + (0.9 * 1)) / 2
    assert torch.isclose(pinball(output, target, levels), torch.tensor(expected))
