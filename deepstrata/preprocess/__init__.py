"""One preprocessor per feature kind; the registry lives in deepstrata/kinds.py."""
