import torch

from deepstrata.nn.mlp import MLP


def test_shapes_and_identity_when_no_layers():
    assert MLP(in_dim=5, hidden_dims=[8, 3], dropout=0.1)(torch.randn(4, 5)).shape == (4, 3)
    x = torch.randn(4, 5)
    assert torch.equal(MLP(in_dim=5, hidden_dims=[])(x), x)


def test_a_rows_output_does_not_depend_on_its_batch_in_eval_mode():
    torch.manual_seed(0)
    mlp = MLP(in_dim=5, hidden_dims=[16, 16], dropout=0.5).eval()
    batch = torch.randn(32, 5)
    torch.testing.assert_close(mlp(batch[:1]), mlp(batch)[:1])
