import torch

from deepstrata.encoders.category import CategoryEncoder, embedding_dim
from deepstrata.encoders.text import BagOfEmbeddingsEncoder


def test_embedding_width_grows_slowly_and_is_capped():
    assert embedding_dim(2) == 2
    assert embedding_dim(10) < embedding_dim(100) <= 32
    assert embedding_dim(1_000_000) == 32


def test_each_category_column_gets_its_own_table():
    encoder = CategoryEncoder(cardinalities=[3, 50])
    codes = torch.tensor([[0, 49], [2, 1]])
    out = encoder(codes)
    assert out.shape == (2, embedding_dim(3) + embedding_dim(50))
    # Column 0's part depends only on column 0's code.
    first = embedding_dim(3)
    torch.testing.assert_close(out[0, :first], encoder.embeddings[0].weight[0])


def test_bag_of_words_ignores_padding():
    encoder = BagOfEmbeddingsEncoder(vocabulary_sizes=[10], lengths=[4])
    padded = encoder(torch.tensor([[5, 6, 0, 0]]))
    unpadded = BagOfEmbeddingsEncoder.forward(encoder, torch.tensor([[5, 6, 5, 6]]))
    torch.testing.assert_close(padded, unpadded)  # the mean of {5, 6} either way
