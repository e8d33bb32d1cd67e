"""fit's adversarial-training options: flags, the epsilon constraint, the rule relating them."""

from __future__ import annotations

import pytest

from deepstrata.config import FitConfig
from deepstrata.errors import ConfigError
from deepstrata.options.attack import OPTIONS


def test_the_options_are_fit_flags():
    assert [option.flag for option in OPTIONS] == [
        "--adversarial",
        "--epsilon",
        "--adversarial-steps",
        "--adversarial-reference",
    ]
    cfg = FitConfig(adversarial="pgd", epsilon="4/255", adversarial_steps="3")
    assert (cfg.adversarial, cfg.epsilon, cfg.adversarial_steps) == ("pgd", "4/255", 3)
    assert cfg.adversarial_reference is True  # the undefended twin by default


@pytest.mark.parametrize(
    ("options", "flag", "words"),
    [
        ({"epsilon": "4/255"}, "--epsilon", "add --adversarial"),
        ({"adversarial": "pgd", "epsilon": "8"}, "--epsilon", "did you mean 8/255"),
        ({"adversarial": "cw"}, "--adversarial", "none, fgsm, pgd"),
        ({"adversarial_reference": False}, "--no-adversarial-reference", "add --adversarial"),
    ],
)
def test_bad_fit_options_name_the_flag(options, flag, words):
    with pytest.raises(ConfigError, match=words) as raised:
        FitConfig(**options)
    assert raised.value.option == flag
