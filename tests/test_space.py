"""Search-space YAML: validation messages, sampling with conditions, splitting, grids."""

from __future__ import annotations

import json
import math

import optuna
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hpo.errors import ConfigError
from hpo.space import (
    Param,
    SearchSpace,
    decode_params,
    encode_params,
    grid_values,
    is_conditional,
    load_space,
    suggest,
)

ORIGIN = "search_spaces/test.yaml"

DENSENET = {
    "description": "DenseNet test space",
    "params": {
        "model": "densenet",
        "densenet.growth_rate": {"type": "int", "low": 8, "high": 32, "step": 4},
        "densenet.depth": {"choices": ["cifar", 121]},
        "optimizer": {"choices": ["sgd", "adamw"]},
        "lr": {"type": "float", "low": 1.0e-3, "high": 0.3, "log": True},
        "momentum": {"type": "float", "low": 0.8, "high": 0.99, "when": {"optimizer": "sgd"}},
        "schedule": {"choices": ["cosine", "onecycle", "step", "plateau"]},
        "weight_decay": {"type": "float", "low": 1.0e-5, "high": 1.0e-2, "log": True},
        "augment": {"choices": ["none", "flip", "crop+flip", "crop+flip+cutout"]},
        "batch_size": {"choices": [64, 128, 256]},
    },
}

MULTI_FAMILY = {
    "params": {
        "model": {"choices": ["resnet", "mlp"]},
        "resnet.blocks": {"choices": [[1, 1, 1, 1], [2, 2, 2, 2]]},
        "resnet.width": {"type": "int", "low": 8, "high": 16},
        "mlp.width": {"choices": [64, 128]},
        "optimizer": {"choices": ["sgd", "adam"]},
        "momentum": {"type": "float", "low": 0.5, "high": 0.9, "when": {"optimizer": "sgd"}},
        "nesterov": {"value": True, "when": {"optimizer": "sgd"}},
        "lr": {"type": "float", "low": 0.01, "high": 0.1, "step": 0.01},
    }
}


def with_param(name, spec, base=DENSENET):
    params = dict(base["params"])
    params[name] = spec
    return {**base, "params": params}


def space_error(data) -> str:
    with pytest.raises(ConfigError) as info:
        load_space(data, origin=ORIGIN)
    message = str(info.value)
    assert message.startswith(f"{ORIGIN}: "), message
    assert "\n" not in message
    return message


# --- loading -----------------------------------------------------------------------------------


def test_load_densenet_space_kinds_and_order():
    space = load_space(DENSENET, origin=ORIGIN)
    assert space.names() == list(DENSENET["params"])
    assert space.description == "DenseNet test space"
    assert space["model"] == Param("model", "fixed", value="densenet")
    assert space["densenet.growth_rate"].kind == "int"
    assert space["densenet.growth_rate"].step == 4
    assert space["lr"].kind == "float" and space["lr"].log
    assert space["momentum"].when == {"optimizer": ("sgd",)}
    assert space["densenet.depth"].choices == ("cifar", 121)


def test_load_from_file_and_float_without_dot(tmp_path):
    # PyYAML alone reads 1e-3 as a string; the space loader must read it as a number.
    path = tmp_path / "lr.yaml"
    path.write_text("params:\n  model: mlp\n  lr: {type: float, low: 1e-3, high: 3e-1, log: true}\n")
    space = load_space(path, origin="lr.yaml")
    assert space["lr"].low == pytest.approx(0.001)
    assert space["lr"].high == pytest.approx(0.3)


def test_yaml_syntax_error_names_file_and_line(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("params:\n  model: mlp\n  lr: {type: float, low: 1\n")
    with pytest.raises(ConfigError, match=r"broken\.yaml: invalid YAML at line \d+"):
        load_space(path, origin="broken.yaml")


def test_missing_file():
    with pytest.raises(ConfigError, match="nowhere.yaml: file not found"):
        load_space("/nonexistent/nowhere.yaml", origin="nowhere.yaml")


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ([1, 2], "the top level must be a mapping"),
        ({"params": {"model": "mlp"}, "include": ["x.yaml"]}, "unknown key include; valid keys: description, params"),
        ({"description": "x"}, "params must be a non-empty mapping"),
        ({"params": {"model": "mlp"}, "description": 3}, "description must be a string"),
        (with_param("lr", {"type": "float", "low": 0, "high": 0.3, "log": True}),
         "params.lr.low must be > 0 when log: true (got 0)"),
        (with_param("lr", {"type": "float", "low": "small", "high": 0.3}), "params.lr.low must be a number"),
        (with_param("lr", {"type": "float", "low": 0.5, "high": 0.1}), "params.lr.low must be <= high"),
        (with_param("lr", {"type": "float", "low": 0.1, "high": 0.5, "step": 0}), "params.lr.step must be > 0"),
        (with_param("lr", {"type": "float", "low": 0.1, "high": 0.5, "step": -0.1}), "params.lr.step must be > 0"),
        (with_param("lr", {"type": "float", "low": 0.1, "high": 0.5, "log": True, "step": 0.1}),
         "params.lr cannot have both log: true and step"),
        (with_param("lr", {"type": "float", "low": 0.1, "high": 0.5, "log": "yes please"}), "params.lr.log must be true or false"),
        (with_param("lr", {"type": "float", "low": 0.1, "high": 0.5, "scale": 2}), "params.lr has an unknown key scale"),
        (with_param("lr", {"type": "complex", "low": 0.1, "high": 0.5}), "params.lr.type must be float or int"),
        (with_param("lr", {"type": "float", "high": 0.5}), "params.lr.low is required"),
        (with_param("batch_size", {"type": "int", "low": 16.5, "high": 64}),
         "params.batch_size.low must be an integer for type: int"),
        (with_param("batch_size", {"type": "int", "low": 16, "high": 64, "step": 0.5}),
         "params.batch_size.step must be an integer"),
        (with_param("batch_size", {"type": "float", "low": 16, "high": 64}), "params.batch_size is a range of float"),
        (with_param("optimizer", {"choices": []}), "params.optimizer.choices must be a non-empty list"),
        (with_param("optimizer", {"choices": "sgd"}), "params.optimizer.choices must be a non-empty list"),
        (with_param("optimizer", {"choices": ["sgd", "sgd"]}), "params.optimizer.choices lists 'sgd' twice"),
        (with_param("optimizer", {"choices": ["sgd", "lion"]}), "params.optimizer.choices[1] is not allowed ('lion')"),
        (with_param("optimizer", {"choices": ["sgd"], "low": 1}), "params.optimizer is categorical, so low does not apply"),
        ({"params": {"model": "mlp", "optimizer": "lion"}}, "params.optimizer is not allowed ('lion')"),
        (with_param("augment", {"choices": ["none", "mixup"]}), "params.augment.choices[1] is not allowed ('mixup')"),
        (with_param("schedule", "exponential"), "params.schedule is not allowed ('exponential')"),
        (with_param("batch_size", "big"), "params.batch_size must be int (got 'big')"),
        (with_param("momentum", {"type": "float", "low": 0.8, "high": 0.99, "when": {"optimiser": "sgd"}}),
         "params.momentum.when names optimiser, which is not an earlier parameter"),
        (with_param("momentum", {"type": "float", "low": 0.8, "high": 0.99, "when": {"augment": "flip"}}),
         "params.momentum.when names augment, which is not an earlier parameter"),
        (with_param("momentum", {"type": "float", "low": 0.8, "high": 0.99, "when": {"optimizer": "sdg"}}),
         "params.momentum.when.optimizer is 'sdg', a value params.optimizer never takes"),
        (with_param("momentum", {"type": "float", "low": 0.8, "high": 0.99, "when": "sgd"}),
         "params.momentum.when must be a mapping"),
        (with_param("model", "transformer"), "params.model names unknown family 'transformer'; registered families:"),
        (with_param("resnet.depth", {"choices": [18, 34]}), "params.resnet.depth is a knob of resnet, which params.model never selects"),
        (with_param("densenet.colour", {"choices": [1, 2]}), "params.densenet.colour: densenet has no knob 'colour'; valid knobs:"),
        (with_param("densenet.depth", {"choices": ["cifar", 122]}), "params.densenet.depth.choices[1] is not allowed (122)"),
        (with_param("wings.span", 3), "params.wings.span names unknown family 'wings'"),
        (with_param("learning_rate", 0.1), "params.learning_rate is not a model family knob or trainer option; valid keys: model, <family>.<knob>,"),
        (with_param("epochs", 10), "params.epochs: epochs is set by the study"),
        (with_param("seed", {"choices": [0, 1]}), "params.seed: seed is set by the study"),
        ({"params": {"lr": 0.1}}, "params.model is required"),
        ({"params": {"densenet.depth": "cifar", "model": "densenet"}}, "params.densenet.depth must come after params.model"),
        ({"params": {"model": {"type": "int", "low": 1, "high": 2}}}, "params.model must be a family name or {choices"),
        ({"params": {"model": "mlp", "lr": {"choices": [0.1], "type": "float"}}}, "params.lr needs exactly one of value, choices or type/low/high"),
        ({"params": {"model": "mlp", "lr": {"log": True}}}, "params.lr needs exactly one of value, choices or type/low/high"),
        ({"params": {"model": "mlp", "bad name": 1}}, "params has an invalid parameter name 'bad name'"),
        ({"params": {"model": "mlp", "augment": {"type": "float", "low": 0.0, "high": 1.0}}}, "params.augment is a range of float, but the field takes str"),
    ],
)
def test_invalid_space_gives_one_sentence_naming_the_key(data, expected):
    assert expected in space_error(data)


def test_unknown_trainer_key_lists_valid_keys():
    message = space_error(with_param("lr_max", 0.1))
    assert "valid keys:" in message and "weight_decay" in message and "batch_size" in message


def test_family_names_validate_each_family_knob():
    data = {"params": {"model": {"choices": ["resnet", "mlp"]}, "mlp.depth": 2, "resnet.dept": 18}}
    assert "params.resnet.dept: resnet has no knob 'dept'" in space_error(data)


def test_infinite_float_is_refused():
    data = with_param("lr", {"type": "float", "low": 0.1, "high": float("inf")})
    assert "params.lr.high must be a number" in space_error(data)


def test_int_range_accepts_float_field():
    # An int range for a float field is fine (ints are floats); the reverse is not.
    space = load_space(with_param("warmup_epochs", {"type": "int", "low": 0, "high": 3}), origin=ORIGIN)
    assert space["warmup_epochs"].kind == "int"


def test_type_is_implied_by_trainer_field():
    space = load_space(with_param("batch_size", {"low": 32, "high": 256}), origin=ORIGIN)
    assert space["batch_size"].kind == "int"
    space = load_space(with_param("label_smoothing", {"low": 0, "high": 0.2}), origin=ORIGIN)
    assert space["label_smoothing"].kind == "float" and isinstance(space["label_smoothing"].low, float)


# --- round trip --------------------------------------------------------------------------------


@pytest.mark.parametrize("data", [DENSENET, MULTI_FAMILY])
def test_to_dict_round_trips_through_json(data):
    space = load_space(data, origin=ORIGIN)
    stored = json.loads(json.dumps(space.to_dict()))
    again = SearchSpace.from_dict(stored)
    assert again == space
    assert again.to_dict() == space.to_dict()


# --- sampling ----------------------------------------------------------------------------------


def _run(space: SearchSpace, n_trials: int, seed: int = 0):
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    configs = []

    def objective(trial):
        values = suggest(trial, space)
        configs.append((values, dict(trial.params)))
        return 0.0

    study.optimize(objective, n_trials=n_trials)
    return study, configs


def test_suggest_samples_only_active_params_in_range():
    space = load_space(MULTI_FAMILY, origin=ORIGIN)
    _, configs = _run(space, 60)
    seen_families, seen_optimizers = set(), set()
    for values, optuna_params in configs:
        family = values["model"]
        seen_families.add(family)
        seen_optimizers.add(values["optimizer"])
        knobs = {n for n in values if "." in n}
        assert all(n.startswith(family + ".") for n in knobs)
        if family == "resnet":
            assert values["resnet.blocks"] in ([1, 1, 1, 1], [2, 2, 2, 2])
            assert isinstance(values["resnet.width"], int) and 8 <= values["resnet.width"] <= 16
            # Optuna stores list choices as JSON text.
            assert json.loads(optuna_params["resnet.blocks"]) == values["resnet.blocks"]
        else:
            assert values["mlp.width"] in (64, 128)
        if values["optimizer"] == "sgd":
            assert 0.5 <= values["momentum"] <= 0.9
            assert values["nesterov"] is True
            assert "nesterov" not in optuna_params  # fixed values are not sampled
        else:
            assert "momentum" not in values and "momentum" not in optuna_params
            assert "nesterov" not in values
        lr_steps = (values["lr"] - 0.01) / 0.01
        assert 0.01 <= values["lr"] <= 0.1 + 1e-12 and abs(lr_steps - round(lr_steps)) < 1e-6
        assert list(values) == [n for n in space.names() if n in values]  # space order
        assert decode_params(space, optuna_params) == values
    assert seen_families == {"resnet", "mlp"}
    assert seen_optimizers == {"sgd", "adam"}


def test_suggest_fixed_model_and_log_range():
    space = load_space(DENSENET, origin=ORIGIN)
    _, configs = _run(space, 30, seed=1)
    for values, optuna_params in configs:
        assert values["model"] == "densenet" and "model" not in optuna_params
        assert values["densenet.growth_rate"] in range(8, 33, 4)
        assert 1e-3 <= values["lr"] <= 0.3
        assert 1e-5 <= values["weight_decay"] <= 1e-2
        assert ("momentum" in values) == (values["optimizer"] == "sgd")


def test_sample_builds_typed_configs_over_the_base():
    from hpo.models.resnet import ResNetConfig
    from hpo.train_config import TrainConfig
    from hpo.trial_config import TrialConfig

    space = load_space(MULTI_FAMILY, origin=ORIGIN)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=3))
    base = TrainConfig.from_dict({"epochs": 3, "seed": 7, "batch_size": 32})
    families = set()
    for _ in range(20):
        trial = study.ask()
        config = space.sample(trial, base)
        assert isinstance(config, TrialConfig) and config.family == config.params["model"]
        assert decode_params(space, trial.params) == config.params
        assert (config.train.epochs, config.train.seed, config.train.batch_size) == (3, 7, 32)
        assert config.train.lr == config.params["lr"] and config.train.optimizer == config.params["optimizer"]
        if config.family == "resnet":
            assert isinstance(config.model, ResNetConfig)
            assert list(config.model.blocks) == config.params["resnet.blocks"]
        families.add(config.family)
        study.tell(trial, 0.0)
    assert families == {"resnet", "mlp"}
    assert base.lr == TrainConfig().lr  # the base is not changed by sampling


def test_encode_params_feeds_enqueue_trial():
    space = load_space(MULTI_FAMILY, origin=ORIGIN)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    wanted = {"model": "resnet", "resnet.blocks": [2, 2, 2, 2], "optimizer": "adam", "nesterov": True}
    study.enqueue_trial(encode_params(space, wanted))
    trial = study.ask()
    values = suggest(trial, space)
    assert values["model"] == "resnet"
    assert values["resnet.blocks"] == [2, 2, 2, 2]
    assert values["optimizer"] == "adam"


# --- grid, conditional -------------------------------------------------------------------------


def test_grid_values_expand_steps_and_choices():
    space = load_space(
        {
            "params": {
                "model": "resnet",
                "resnet.blocks": {"choices": [[1, 1, 1, 1], [2, 2, 2, 2]]},
                "resnet.width": {"type": "int", "low": 16, "high": 64, "step": 16},
                "lr": {"type": "float", "low": 0.1, "high": 0.3, "step": 0.1},
                "batch_size": {"type": "int", "low": 30, "high": 32},
                "optimizer": "sgd",
            }
        },
        origin=ORIGIN,
    )
    grid = grid_values(space)
    assert list(grid) == ["resnet.blocks", "resnet.width", "lr", "batch_size"]  # fixed ones left out
    assert grid["resnet.blocks"] == [json.dumps([1, 1, 1, 1]), json.dumps([2, 2, 2, 2])]
    assert grid["resnet.width"] == [16, 32, 48, 64]
    assert grid["lr"] == [0.1, 0.2, 0.3]
    assert grid["batch_size"] == [30, 31, 32]
    # Optuna's GridSampler accepts the grid and visits every point exactly once.
    study = optuna.create_study(sampler=optuna.samplers.GridSampler(grid, seed=0))
    seen = set()

    def objective(trial):
        values = suggest(trial, space)
        seen.add((tuple(values["resnet.blocks"]), values["resnet.width"], values["lr"], values["batch_size"]))
        return 0.0

    study.optimize(objective, n_trials=2 * 4 * 3 * 3)
    assert len(seen) == 2 * 4 * 3 * 3


@pytest.mark.parametrize(
    ("spec", "reason"),
    [
        ({"type": "float", "low": 0.01, "high": 0.1}, "params.lr has no step"),
        ({"type": "float", "low": 0.01, "high": 0.1, "log": True}, "params.lr has log: true"),
    ],
)
def test_grid_values_refuse_infinite_params(spec, reason):
    space = load_space(with_param("lr", spec), origin=ORIGIN)
    with pytest.raises(ConfigError, match=f"grid sampler needs finite choices: {reason}"):
        grid_values(space)


def test_is_conditional():
    assert is_conditional(load_space(DENSENET, origin=ORIGIN))  # momentum: when optimizer = sgd
    assert is_conditional(load_space(MULTI_FAMILY, origin=ORIGIN))
    plain = {"params": {"model": "resnet", "resnet.width": {"choices": [16, 32]}, "lr": {"type": "float", "low": 0.01, "high": 0.1}}}
    assert not is_conditional(load_space(plain, origin=ORIGIN))


# --- malformed input never escapes as anything but ConfigError --------------------------------

_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**6), 10**6),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(["model", "resnet", "mlp", "lr", "sgd", "float", "int", "choices", "", "resnet.depth", "when"]),
    st.text(max_size=8),
)
_keys = st.sampled_from(
    ["model", "params", "description", "type", "low", "high", "log", "step", "choices", "when", "value",
     "lr", "optimizer", "momentum", "resnet.depth", "mlp.width", "batch_size", "epochs", "x.y.z"]
) | st.text(max_size=6)
_values = st.recursive(_scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_keys, inner, max_size=5), max_leaves=25)
_space_like = st.fixed_dictionaries(
    {"params": st.dictionaries(_keys, _values, max_size=6)},
    optional={"description": _values, "extra": _values},
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.one_of(_values, _space_like))
def test_random_documents_give_space_or_config_error(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("space") / "random.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True))
    try:
        space = load_space(path, origin="random.yaml")
    except ConfigError as exc:
        assert str(exc).startswith("random.yaml: ")
    else:
        assert isinstance(space, SearchSpace)
        assert SearchSpace.from_dict(json.loads(json.dumps(space.to_dict(), allow_nan=True))) == space


@settings(max_examples=60, deadline=None)
@given(text=st.text(max_size=80))
def test_random_text_gives_space_or_config_error(tmp_path_factory, text):
    path = tmp_path_factory.mktemp("space") / "text.yaml"
    path.write_text(text, encoding="utf-8")
    try:
        load_space(path, origin="text.yaml")
    except ConfigError:
        pass


def test_float_nan_fixed_value_refused():
    assert "params.lr must be a finite number" in space_error(with_param("lr", math.nan))
