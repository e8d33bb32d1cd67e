"""Attacks on a model and its data, and the defences: evasion (FGSM, PGD), adversarial
training, membership inference, private training, extraction through the API, and drift."""
