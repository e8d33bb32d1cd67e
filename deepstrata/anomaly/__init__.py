"""Anomaly detection without labels: ``deepstrata anomalies DATA``.

Each row becomes one feature vector (:mod:`deepstrata.model.extractor`); a small
autoencoder's reconstruction error is its score (:mod:`.detector`), with scikit-learn's
isolation forest scored beside it as the classical baseline (:mod:`.run`). The detector
is saved as a bundle and scores new rows through ``deepstrata predict`` (:mod:`.bundle`).
With ``--time`` each step of a series is scored instead by its out-of-sample one-step
forecast residual (:mod:`.series`, :mod:`.series_run`), the forest reading lag features.
"""
