"""One encoder per feature kind: a kind's preprocessed block -> (B, out_dim)."""
