import pytest

from deepstrata.cli import main


def test_fit_with_a_bad_time_writes_nothing(tmp_path, capsys):
    from tests.forecast.conftest import tiny_panel

    frame = tiny_panel()
    frame["date"] = frame["date"].astype(str)
    frame.loc[3, "date"] = "2015-13-45"
    data = tmp_path / "sales.csv"
    frame.to_csv(data, index=False)
    out = tmp_path / "runs" / "sales"
    with pytest.raises(SystemExit) as exit_:
        main(
            [
                "fit",
                str(data),
                "--target",
                "units",
                "--time",
                "date",
                "--series",
                "store",
                "--horizon",
                "3",
                "-o",
                str(out),
            ]
        )
    assert exit_.value.code == 1
    assert "line 5 (row 4), column 'date'" in capsys.readouterr().err
    assert not out.exists()
