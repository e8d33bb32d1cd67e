"""The search space: derived from the options' constraints, narrowed by YAML, conditional."""

import optuna
import pytest

from deepstrata.config import OPTIONS, FitConfig
from deepstrata.errors import ConfigError
from deepstrata.search.space import LAYERS, Context, SearchSpace, to_options


def _trial(seed=0):
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    return study.ask()


def test_every_default_decision_meets_its_options_constraint_and_makes_a_valid_config():
    space = SearchSpace.default()
    for name in ("schedule", "text_encoder", "freeze"):  # a Choice's choices, all of them
        assert set(space[name].choices) == set(OPTIONS[name].constraint.choices)
    for seed in range(20):
        context = Context(frozenset({"number", "text", "image"}), classifier=True)
        options = to_options(space.suggest(_trial(seed), context), space)
        FitConfig.from_dict(options)  # every proposal is a configuration fit accepts


def test_conditions_follow_the_data_and_earlier_decisions():
    space = SearchSpace.default()
    numbers = space.suggest(_trial(), Context(frozenset({"number"}), classifier=False))
    assert "label_smoothing" not in numbers  # regression
    assert not any(name.startswith(("text_", "image_", "strategy")) for name in numbers)
    assert sum(name.startswith("hidden_dim_") for name in numbers) == numbers[LAYERS]
    seen = set()
    for seed in range(30):
        chosen = space.suggest(_trial(seed), Context(frozenset({"text"})))
        seen.add(chosen["strategy"])
        assert ("text_layers" in chosen) == (chosen.get("text_encoder") == "transformer")
        assert ("head" in chosen) == (chosen["strategy"] == "features")
    assert seen == {"scratch", "finetune", "features"}


def test_defaults_reproduce_the_default_configuration():
    space = SearchSpace.default()
    chosen = space.defaults(Context(frozenset({"number"})))
    options = to_options(chosen, space)
    assert options["hidden_dims"] == OPTIONS["hidden_dims"].default
    assert options["dropout"] == OPTIONS["dropout"].default
    assert chosen["learning_rate_factor"] == 1.0


def test_yaml_narrows_widens_fixes_and_removes():
    space = SearchSpace.default().narrowed(
        {
            "dropout": {"low": 0.0, "high": 0.2},
            "schedule": ["onecycle", "plateau"],
            "max-epochs": {"low": 5, "high": 30},  # an option the default space leaves alone
            "text_encoder": "bag",
            "mixup": False,
        }
    )
    assert space["dropout"].high == 0.2 and space["schedule"].choices == ("onecycle", "plateau")
    assert space["max_epochs"].kind == "int"
    assert space.fixed == {"text_encoder": "bag"} and "mixup" not in space.params
    again = type(space).from_dict(space.to_dict())
    assert again.params == space.params and again.fixed == space.fixed


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        (
            {"dropuot": {"low": 0, "high": 1}},
            "search_space.dropuot: not a searchable option; did you mean 'dropout'",
        ),
        ({"dropout": {"low": 0, "high": 1}}, "search_space.dropout: high 1: must be in [0, 1)"),
        ({"max_epochs": {"low": 0, "high": 5}}, "search_space.max_epochs: low 0: must be >= 1"),
        ({"schedule": ["cosine", "linear"]}, "search_space.schedule: expected one of"),
        ({"weight_decay": {"low": 0, "high": 1, "log": True}}, "a log range needs low > 0"),
        ({"hidden_layers": {"low": 1, "high": 9}}, "within [1, 4]"),
        ({"dropout": {"low": 0.3, "high": 0.1}}, "low 0.3 is above high 0.1"),
        ({"dropout": "lots"}, "search_space.dropout: expected a number"),
    ],
)
def test_a_bad_entry_is_named(entry, message):
    with pytest.raises(ConfigError) as caught:
        SearchSpace.default().narrowed(entry)
    assert message in str(caught.value)
