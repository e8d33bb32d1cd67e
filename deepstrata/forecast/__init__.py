"""Time and rare events: forecasting across series, rolling-origin backtests, classical
baselines, and anomaly scores without labels."""
