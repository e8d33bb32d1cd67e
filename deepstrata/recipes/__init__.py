"""Recipes: the ways ``fit`` turns prepared data into a model, over the training blocks.

=================  ===============================================================
module             what it does
=================  ===============================================================
``prepare``        once per fit: schema, task, labelled rows, decoded files, target
``network``        one network on one split: preprocessors, train, calibrate
``features``       a pretrained extractor under a classical head (``--strategy features``)
``single``         one validation split (the default)
``crossval``       K folds (``--folds K``): refit or the K networks
``crossfit``       K folds cross-fitted with a classical model (``--ensemble --folds K``)
``ensemble``       weighing a network against a classical model (``--ensemble``)
``records``        what a fit leaves for its report (validation rows, data summary)
``run``            read, prepare, pick the recipe, keep the run directory
``embed``          a column's pretrained embeddings (``deepstrata embed``)
=================  ===============================================================

Named after torchtune's recipes: plain functions over the blocks below (``model``,
``train``, ``classical``), which know nothing of them.
"""
