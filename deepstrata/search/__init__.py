"""Search over the configuration and the architecture on Optuna: the space derived from
the configuration's options, samplers (Bayesian, evolutionary, reinforcement learning),
pruning, and studies shared by many workers through one database."""
