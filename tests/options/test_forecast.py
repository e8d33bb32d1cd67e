from deepstrata.options.forecast import parse_columns


def test_columns_are_split_and_kept_once():
    assert parse_columns("store, item,store") == ["store", "item"]
    assert parse_columns(None) == []
