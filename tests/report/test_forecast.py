from deepstrata.report.forecast import forecast_report


def test_the_page_has_the_backtest_table_and_an_inline_fan():
    figures = {
        "mase": 0.5,
        "rmsse": 0.6,
        "smape": 3.0,
        "wql": 0.02,
        "coverage": 0.8,
        "nominal_coverage": 0.8,
        "windows": 4,
    }
    metrics = {
        "backtest": {"network": figures, "seasonal_naive": {**figures, "mase": 1.0}, "cutoffs": 2},
        "data": {
            "series": 2,
            "shortest": 40,
            "longest": 48,
            "ragged": True,
            "inserted_timestamps": 1,
        },
        "examples": [
            {
                "series": "a",
                "history": list(range(30)),
                "cutoff": 24,
                "forecast": [[i - 1, i, i + 1] for i in range(24, 30)],
            }
        ],
    }
    page = forecast_report(metrics, "units")
    assert "seasonal naive" in page and "MASE" in page and "data:image/png;base64," in page
    assert "http://" not in page and "https://" not in page
