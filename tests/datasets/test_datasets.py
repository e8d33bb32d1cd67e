import pandas as pd

from deepstrata.datasets import penguins_path


def test_penguins_ship_inside_the_package_with_the_expected_shape():
    frame = pd.read_csv(penguins_path())
    assert frame.shape == (344, 7)
    assert sorted(frame["species"].unique()) == ["Adelie", "Chinstrap", "Gentoo"]
    assert frame["bill_length_mm"].isna().sum() == 2  # the demo shows missing-value handling
