"""The training loop and what reports on it."""
