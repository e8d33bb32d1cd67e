"""Audits: is a model fair across groups of people, and are a table's labels right?

================  ==================================================================
module            what it does
================  ==================================================================
``groups``        sensitive columns checked and turned into groups (and intersections)
``bootstrap``     percentile intervals of per-group rates, resampled within each group
``fairness``      per-group metrics and disparities over Fairlearn's ``MetricFrame``
``page``          audit.html: the fairness audit as one self-contained page
``run``           ``deepstrata audit``: a bundle over labelled rows -> audit.json + html
``labels``        likely label errors by confident learning (cleanlab) from out-of-fold
                  probabilities
``duplicates``    exact and near duplicates within a table and across train and test
``dataset``       ``deepstrata audit-data``: labels, duplicates and leakage of a table
``card``          a model card in Markdown from what the bundle knows
================  ==================================================================

Fairlearn and cleanlab are optional (``pip install 'deepstrata[audit]'``) and imported
inside the functions that use them.
"""
