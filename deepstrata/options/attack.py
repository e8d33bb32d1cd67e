"""fit's options about adversarial training (:mod:`deepstrata.attack.adversarial`), and
the rule relating them; :mod:`deepstrata.config` joins them to its own.

>>> [option.flag for option in OPTIONS]
['--adversarial', '--epsilon', '--adversarial-steps', '--adversarial-reference']
"""

from __future__ import annotations

from deepstrata.errors import ConfigError
from deepstrata.options.spec import AtLeast, Choice, Lazy, Option

OPTIONS = (
    Option(
        "adversarial",
        "none",
        "Adversarial training: none | fgsm (fast, random start) | pgd (Madry).",
        Choice("none", "fgsm", "pgd"),
    ),
    Option(
        "epsilon",
        None,
        "--adversarial's budget in the input's units (pixels in [0, 1]; numbers: a "
        "fraction of the IQR), e.g. 4/255.",
        Lazy("deepstrata.attack.budget:check_epsilon"),  # torch-free: no heavy import
        type="str",
        optional=True,
        extra={"shown": "8/255"},
    ),
    Option("adversarial_steps", 7, "--adversarial pgd: steps per batch.", AtLeast(1)),
    Option(
        "adversarial_reference",
        True,
        "--adversarial: also train the undefended twin (same rows, split, seed and "
        "settings, no perturbation) to measure the clean-accuracy cost and the time "
        "factor; off: half the cost, neither measured.",
    ),
)


def rule(config) -> None:
    """A budget, or skipping the undefended twin, means nothing without adversarial
    training."""
    if config.epsilon is not None and config.adversarial == "none":
        raise ConfigError(
            f"--epsilon {config.epsilon} is the budget of adversarial training: add "
            "--adversarial fgsm or pgd",
            option="--epsilon",
        )
    if not config.adversarial_reference and config.adversarial == "none":
        raise ConfigError(
            "skips the undefended twin of adversarial training, which is not asked for: add "
            "--adversarial fgsm or pgd",
            option="--no-adversarial-reference",
        )
