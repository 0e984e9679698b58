"""Study YAML: validation messages, defaults, round trip, hashing, lookup and --set typing."""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hpo.config import (
    CheckpointPolicy,
    Component,
    Constraints,
    HypervolumeReference,
    StudyConfig,
    load_study,
)
from hpo.errors import ConfigError
from hpo.study_files import find_study_file, list_studies
from hpo.train_config import TrainConfig
from hpo.trials import OBJECTIVES, directions
from hpo.typed import parse_overrides

SPACE = {
    "description": "test space",
    "params": {
        "model": "densenet",
        "schedule": {"choices": ["cosine", "step"]},
        "lr": {"type": "float", "low": 1.0e-3, "high": 0.3, "log": True},
        "densenet.growth_rate": {"type": "int", "low": 8, "high": 32, "step": 4},
        "densenet.depth": {"choices": ["cifar", 121]},
        "optimizer": {"choices": ["sgd", "adamw"]},
        "momentum": {"type": "float", "low": 0.8, "high": 0.99, "when": {"optimizer": "sgd"}},
        "batch_size": {"choices": [64, 128]},
    },
}

STUDY = {
    "name": "mini",
    "description": "a test study",
    "dataset": {"kind": "minicifar", "n_classes": 4, "R": 5, "train_size": 0.8},
    "space": "../search_spaces/test.yaml",
    "objectives": ["val_accuracy"],
    "sampler": {"name": "tpe", "args": {"multivariate": True}},
    "pruner": {"name": "asha", "args": {"min_resource": 2, "reduction_factor": 3}},
    "epochs": 15,
    "n_trials": 100,
    "train": {"batch_size": 128},
    "constraints": {"max_params": 5.0e6, "max_macs": None, "max_epoch_seconds": 120},
    "enqueue": [
        {"model": "densenet", "densenet.depth": "cifar", "lr": 0.1, "optimizer": "sgd", "momentum": 0.9, "schedule": "cosine"}
    ],
    "seed": 0,
    "hypervolume_reference": {"params": 1.0e8, "train_seconds": 600},
    "checkpoints": {"keep": "front", "disk_budget_mb": 2000},
}


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A working directory with studies/ and search_spaces/, like a user's project."""
    (tmp_path / "studies").mkdir()
    (tmp_path / "search_spaces").mkdir()
    (tmp_path / "search_spaces" / "test.yaml").write_text(yaml.safe_dump(SPACE, sort_keys=False))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def write_study(project: Path, study: dict, name: str = "mini") -> Path:
    path = project / "studies" / f"{name}.yaml"
    path.write_text(yaml.safe_dump(study, sort_keys=False))
    return path


def changed(**changes) -> dict:
    study = copy.deepcopy(STUDY)
    for key, value in changes.items():
        if value is _DROP:
            study.pop(key, None)
        else:
            study[key] = value
    return study


_DROP = object()


def study_error(project: Path, study) -> str:
    path = project / "studies" / "mini.yaml"
    path.write_text(yaml.safe_dump(study, sort_keys=False))
    with pytest.raises(ConfigError) as info:
        load_study(path)
    message = str(info.value)
    assert "\n" not in message
    return message


# --- a good file -------------------------------------------------------------------------------


def test_load_study_full(project):
    path = write_study(project, STUDY)
    study = load_study(path)
    assert study.name == "mini"
    assert study.source == str(path)
    assert study.dataset.kind == "minicifar" and study.dataset.n_classes == 4 and study.dataset.R == 5
    assert study.space.names() == list(SPACE["params"])
    assert study.objectives == ("val_accuracy",)
    assert study.directions() == ["maximize"]
    assert study.sampler == Component("tpe", {"multivariate": True})
    assert study.pruner == Component("asha", {"min_resource": 2, "reduction_factor": 3})
    assert (study.epochs, study.n_trials, study.seed) == (15, 100, 0)
    assert study.train == {"batch_size": 128}
    assert study.constraints == Constraints(max_params=5.0e6, max_macs=None, max_epoch_seconds=120.0)
    assert study.enqueue[0]["lr"] == 0.1
    assert study.checkpoints == CheckpointPolicy(keep="front", disk_budget_mb=2000.0)


def test_load_by_name_from_local_studies_dir(project):
    write_study(project, STUDY)
    assert load_study("mini").name == "mini"


def test_defaults(project):
    minimal = {"dataset": {"kind": "minicifar"}, "space": "../search_spaces/test.yaml"}
    study = load_study(write_study(project, minimal))
    assert study.name == "mini"  # the file stem
    assert study.objectives == ("val_accuracy",)
    assert study.sampler.name == "tpe"
    assert study.pruner.name == "asha"
    assert (study.epochs, study.n_trials, study.seed) == (10, 50, 0)
    assert study.hypervolume_reference.params == 1e8 and study.hypervolume_reference.train_seconds == 600
    assert study.hypervolume_reference == HypervolumeReference(params=1e8, train_seconds=600.0, macs=1e10)
    assert study.checkpoints == CheckpointPolicy(keep="front", disk_budget_mb=2000.0)
    assert study.constraints == Constraints()
    assert study.enqueue == () and study.train == {}


def test_multi_objective_defaults_to_mo_asha(project):
    study = load_study(
        write_study(project, changed(objectives=["val_accuracy", "param_count", "train_seconds"], sampler="nsga2", pruner=_DROP))
    )
    assert study.pruner.name == "mo_asha"
    assert study.directions() == ["maximize", "minimize", "minimize"]
    assert study.is_multi_objective


def test_short_component_forms_and_inline_space(project):
    study = load_study(write_study(project, changed(sampler="random", pruner="none", space=SPACE)))
    assert study.sampler == Component("random", {})
    assert study.pruner == Component("none", {})
    assert study.space.description == "test space"


def test_objectives_table():
    assert dict(zip(OBJECTIVES, directions(OBJECTIVES))) == {
        "val_accuracy": "maximize", "param_count": "minimize", "train_seconds": "minimize", "macs": "minimize"
    }


# --- round trip and hash -----------------------------------------------------------------------


def test_to_dict_round_trips_through_json(project):
    study = load_study(write_study(project, STUDY))
    stored = json.loads(json.dumps(study.to_dict()))
    assert list(stored) == list(study.to_dict())  # stable key order
    again = StudyConfig.from_dict(stored)
    assert again.to_dict() == study.to_dict()
    assert again.space == study.space
    assert again.definition_hash() == study.definition_hash()
    assert again.source == "<database>"


def test_from_dict_validates(project):
    stored = load_study(write_study(project, STUDY)).to_dict()
    stored["epochs"] = "ten"
    with pytest.raises(ConfigError, match=r"^<database>: epochs must be an integer"):
        StudyConfig.from_dict(stored)


def test_definition_hash_ignores_n_trials_but_not_the_space(project):
    base = load_study(write_study(project, STUDY)).definition_hash()
    more_trials = load_study(write_study(project, changed(n_trials=7))).definition_hash()
    assert more_trials == base
    space = copy.deepcopy(SPACE)
    space["params"]["lr"]["high"] = 0.5
    wider_lr = load_study(write_study(project, changed(space=space))).definition_hash()
    assert wider_lr != base
    inline_same = load_study(write_study(project, changed(space=SPACE))).definition_hash()
    assert inline_same == base  # the space's content counts, not where it is written
    assert load_study(write_study(project, changed(epochs=16))).definition_hash() != base


# Databases written by earlier releases store a study's to_dict() and its definition_hash(); a
# changed hash would make every existing study refuse to resume. Computed with hpo 0.1.0 (commit
# 02f95fb), before StudyConfig had typed checkpoints, hypervolume_reference, dataset and train.
CPU_QUICK_HASH = "714438fcee8677d5946b8c4a3dfd99a3996d7b3a7689225a08fb98f716a98aa5"
CIFAR10_RESNET_HASH = "456cf922f919aa4c1700fb63ecda02cc3bef99cb3dc55bc2865b2d5f2e261c69"
CPU_QUICK_DICT = {
    "name": "cpu-quick",
    "description": "Quickstart on CPU: 20 small models on MINICIFAR (4 classes, R 5), 4 epochs, ASHA (~5 min on 2 cores)",
    "dataset": {"kind": "minicifar", "n_classes": 4, "R": 5, "train_size": 0.8, "image_size": 32},
    "space": {
        "description": "CPU-sized: small CNN / MLP / ResNet10 (width 8-16) / tiny DenseNet, lr, schedule, optimizer",
        "params": {
            "model": {"choices": ["cnn", "mlp", "resnet", "densenet"]},
            "cnn.channels": {"choices": [[8, 16], [16, 32]]},
            "cnn.batch_norm": {"choices": [False, True]},
            "cnn.downsample": {"choices": ["stride", "maxpool"]},
            "mlp.hidden": {"choices": [[128], [256]]},
            "resnet.depth": 10,
            "resnet.width": {"choices": [8, 12, 16]},
            "densenet.growth_rate": {"choices": [6, 8, 12]},
            "densenet.block_config": [2, 2, 2],
            "optimizer": {"choices": ["sgd", "adamw"]},
            "lr": {"type": "float", "low": 0.001, "high": 0.3, "log": True},
            "momentum": {"type": "float", "low": 0.8, "high": 0.99, "when": {"optimizer": "sgd"}},
            "weight_decay": {"type": "float", "low": 1e-05, "high": 0.01, "log": True},
            "schedule": {"choices": ["cosine", "onecycle"]},
            "augment": {"choices": ["none", "flip", "crop+flip"]},
            "batch_size": {"choices": [64, 128]},
        },
    },
    "objectives": ["val_accuracy"],
    "sampler": {"name": "tpe", "args": {"multivariate": True}},
    "pruner": {"name": "asha", "args": {"min_resource": 1, "reduction_factor": 3}},
    "epochs": 4,
    "n_trials": 20,
    "train": {"batch_size": 64},
    "constraints": {"max_params": 1000000.0, "max_macs": None, "max_epoch_seconds": 60.0},
    "enqueue": [{"model": "resnet", "resnet.width": 16, "optimizer": "sgd", "lr": 0.05, "momentum": 0.9,
                 "weight_decay": 0.0005, "schedule": "cosine", "augment": "crop+flip", "batch_size": 64}],
    "seed": 0,
    "hypervolume_reference": {"params": 100000000.0, "train_seconds": 600.0, "macs": 10000000000.0},
    "checkpoints": {"keep": "front", "disk_budget_mb": 500.0},
}


def test_shipped_definition_and_hash_are_pinned():
    # 0.1.0's cpu-quick, as its databases store it, reads back with the same hash and dict.
    stored = StudyConfig.from_dict(CPU_QUICK_DICT)
    assert stored.definition_hash() == CPU_QUICK_HASH
    assert stored.to_dict() == CPU_QUICK_DICT
    # cpu-small is that study under another name (the benchmarks' base): same definition otherwise.
    small = load_study("cpu-small").to_dict()
    assert {k: v for k, v in small.items() if k not in ("name", "description")} == {
        k: v for k, v in CPU_QUICK_DICT.items() if k not in ("name", "description")}
    assert load_study("cifar10-resnet").definition_hash() == CIFAR10_RESNET_HASH


def test_stored_cifar10_definition_reads_back():
    # to_dict() stores MINICIFAR's n_classes and R at their defaults for every kind; reading it back
    # must not take them for keys the file gave.
    study = load_study("cifar10-resnet")
    again = StudyConfig.from_dict(json.loads(json.dumps(study.to_dict())))
    assert again.dataset == study.dataset
    assert again.definition_hash() == CIFAR10_RESNET_HASH


def test_base_train_and_trial_config(project):
    study = load_study(write_study(project, STUDY))
    base = study.base_train
    assert base == TrainConfig.from_dict({"batch_size": 128, "epochs": 15, "seed": 0, "max_epoch_seconds": 120.0})
    assert base is not study.base_train  # a fresh, mutable TrainConfig each time
    own_limit = load_study(write_study(project, changed(train={"max_epoch_seconds": 30.0}))).base_train
    assert own_limit.max_epoch_seconds == 30.0  # train: wins over constraints.max_epoch_seconds
    stored = {"densenet.growth_rate": 12, "densenet.depth": "cifar", "optimizer": "sgd", "lr": 0.01,
              "momentum": 0.85, "schedule": "step", "batch_size": 64}  # FrozenTrial.params: no fixed model
    config = study.trial_config(stored)
    assert config.family == "densenet" and config.params["model"] == "densenet"  # fixed value added
    assert config.model.growth_rate == 12 and config.model.depth == "cifar"
    assert (config.train.lr, config.train.momentum, config.train.batch_size, config.train.epochs) == (0.01, 0.85, 64, 15)
    assert study.trial_config(config.params) == config  # decoded params give the same config


def test_typed_sections_read_as_their_stored_mappings(project):
    study = load_study(write_study(project, STUDY))
    assert study.checkpoints.keep == "front" and dict(study.checkpoints) == {"keep": "front", "disk_budget_mb": 2000.0}
    assert study.hypervolume_reference.to_dict() == {"params": 1e8, "train_seconds": 600.0, "macs": 1e10}
    assert study.hypervolume_reference["macs"] == 1e10
    with pytest.raises(TypeError):
        study.train["lr"] = 0.5  # type: ignore[index]


# --- errors ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("study", "expected"),
    [
        (changed(colour="red"), "studies/mini.yaml: unknown key colour; valid keys: name, description"),
        (changed(epochs="ten"), "studies/mini.yaml: epochs must be an integer >= 1 (got 'ten')"),
        (changed(epochs=0), "studies/mini.yaml: epochs must be >= 1 (got 0)"),
        (changed(epochs=True), "studies/mini.yaml: epochs must be an integer"),
        (changed(n_trials=-1), "studies/mini.yaml: n_trials must be >= 1 (got -1)"),
        (changed(seed=1.5), "studies/mini.yaml: seed must be an integer >= 0"),
        (changed(description=["x"]), "studies/mini.yaml: description must be a string"),
        (changed(dataset={"kind": "imagenet"}), "studies/mini.yaml: dataset.kind must be one of cifar10, cifar100, folder, minicifar (got 'imagenet')"),
        (changed(dataset={"kind": "minicifar", "n_classes": 11}), "studies/mini.yaml: dataset.n_classes must be between 2 and 10 for minicifar"),
        (changed(dataset={"kind": "minicifar", "n_classes": "four"}), "studies/mini.yaml: dataset.n_classes must be int"),
        (changed(dataset={"kind": "cifar10", "R": 5}), "studies/mini.yaml: dataset.R applies only to kind: minicifar"),
        (changed(dataset={"kind": "cifar100", "n_classes": 10}), "studies/mini.yaml: dataset.n_classes applies only to kind: minicifar"),
        (changed(dataset={"kind": "minicifar", "train_size": 1.5}), "studies/mini.yaml: dataset.train_size must be a fraction"),
        (changed(dataset={"kind": "minicifar", "colour": 1}), "studies/mini.yaml: unknown key dataset.colour; valid keys:"),
        (changed(dataset=_DROP), "studies/mini.yaml: dataset is required"),
        (changed(dataset=[1]), "studies/mini.yaml: dataset must be a mapping"),
        (changed(objectives=["val_accuracy", "latency"]), "studies/mini.yaml: objectives[1] is 'latency'; valid objectives: val_accuracy, param_count, train_seconds, macs"),
        (changed(objectives=["param_count"]), "studies/mini.yaml: objectives must start with val_accuracy"),
        (changed(objectives=["param_count", "val_accuracy"]), "studies/mini.yaml: objectives must start with val_accuracy"),
        (changed(objectives=["val_accuracy", "val_accuracy"]), "studies/mini.yaml: objectives lists val_accuracy twice"),
        (changed(objectives=[]), "studies/mini.yaml: objectives must be a non-empty list"),
        (changed(sampler="bayesian-magic"), "studies/mini.yaml: unknown sampler 'bayesian-magic'"),
        (changed(sampler={"name": "tpe", "args": {"n_startup": 3}}), "studies/mini.yaml: sampler.args.n_startup is not an argument"),
        (changed(sampler={"name": "tpe", "kwargs": {}}), "studies/mini.yaml: unknown key sampler.kwargs; valid keys: name, args"),
        (changed(sampler=3), "studies/mini.yaml: sampler must be a name or"),
        (changed(pruner="guillotine"), "studies/mini.yaml: unknown pruner 'guillotine'"),
        (changed(pruner={"name": "asha", "args": ["x"]}), "studies/mini.yaml: pruner.args must be a mapping"),
        (changed(sampler="grid"), "studies/mini.yaml: grid sampler needs finite choices: params.lr has log: true"),
        (changed(enqueue=[{"learning_rate": 0.1}]), "studies/mini.yaml: enqueue[0] names learning_rate, which is not a parameter of the space"),
        (changed(enqueue=[{"lr": 3.0}]), "studies/mini.yaml: enqueue[0] gives lr = 3.0, outside its float range [0.001, 0.3]"),
        (changed(enqueue=[{"optimizer": "lion"}]), "studies/mini.yaml: enqueue[0] gives optimizer = 'lion', outside its choices"),
        (changed(enqueue=[{"densenet.growth_rate": 10}]), "studies/mini.yaml: enqueue[0] gives densenet.growth_rate = 10, outside its int range [8, 32] step 4"),
        (changed(enqueue=[{"model": "vgg"}]), "studies/mini.yaml: enqueue[0] gives model = 'vgg', outside its fixed value 'densenet'"),
        (changed(enqueue=[{"optimizer": "adamw", "momentum": 0.9}]), "studies/mini.yaml: enqueue[0] gives momentum, which is not sampled"),
        (changed(enqueue=[{}]), "studies/mini.yaml: enqueue[0] must be a non-empty mapping"),
        (changed(enqueue={"lr": 0.1}), "studies/mini.yaml: enqueue must be a list"),
        (changed(name="other"), "studies/mini.yaml: name must equal the file name 'mini' (got 'other')"),
        (changed(name="../mini"), "studies/mini.yaml: name must use only letters, digits"),
        (changed(name=".mini"), "studies/mini.yaml: name must use only letters, digits"),
        (changed(name="a/b"), "studies/mini.yaml: name must use only letters, digits"),
        (changed(name=5), "studies/mini.yaml: name must use only letters, digits"),
        (changed(space="../search_spaces/missing.yaml"), "studies/mini.yaml: space file ../search_spaces/missing.yaml not found"),
        (changed(space=_DROP), "studies/mini.yaml: space is required"),
        (changed(space=5), "studies/mini.yaml: space must be a file path or an inline mapping"),
        (changed(space={"params": {"model": "densenet", "lr": {"type": "float", "low": 0, "high": 1, "log": True}}}),
         "studies/mini.yaml: space.params.lr.low must be > 0 when log: true (got 0)"),
        (changed(train={"learning_rate": 0.1}), "studies/mini.yaml: unknown key train.learning_rate; valid keys: optimizer, lr"),
        (changed(train={"epochs": 3}), "studies/mini.yaml: train.epochs is set by the study's top-level epochs key"),
        (changed(train={"batch_size": "large"}), "studies/mini.yaml: train.batch_size must be int (got 'large')"),
        (changed(train={"augment": "mixup"}), "studies/mini.yaml: train.augment is not allowed ('mixup')"),
        (changed(train=[1]), "studies/mini.yaml: train must be a mapping"),
        (changed(constraints={"max_params": -5}), "studies/mini.yaml: constraints.max_params must be a number > 0 or null (got -5)"),
        (changed(constraints={"max_flops": 5}), "studies/mini.yaml: unknown key constraints.max_flops; valid keys: max_params, max_macs, max_epoch_seconds"),
        (changed(hypervolume_reference={"params": 1e8, "accuracy": 1}), "studies/mini.yaml: unknown key hypervolume_reference.accuracy"),
        (changed(hypervolume_reference={"train_seconds": 0}), "studies/mini.yaml: hypervolume_reference.train_seconds must be a number > 0"),
        (changed(checkpoints={"keep": "best"}), "studies/mini.yaml: checkpoints.keep must be one of all, front, none (got 'best')"),
        (changed(checkpoints={"keep": "all", "budget": 1}), "studies/mini.yaml: unknown key checkpoints.budget"),
        ([1, 2, 3], "studies/mini.yaml: the top level must be a mapping"),
        ("just text", "studies/mini.yaml: the top level must be a mapping"),
    ],
)
def test_invalid_study_gives_one_sentence_naming_file_and_key(project, study, expected):
    assert expected in study_error(project, study)


def test_multi_objective_refuses_single_objective_pruner(project):
    message = study_error(project, changed(objectives=["val_accuracy", "param_count"], sampler="nsga2", pruner="asha"))
    assert message.startswith("studies/mini.yaml: ") and "pruner" in message and "asha" in message


def test_multi_objective_refuses_single_objective_sampler(project):
    message = study_error(project, changed(objectives=["val_accuracy", "param_count"], sampler="cmaes", pruner="none"))
    assert message.startswith("studies/mini.yaml: ") and "cmaes" in message


def test_grid_sampler_with_finite_space(project):
    space = {"params": {"model": "densenet", "densenet.depth": {"choices": ["cifar", 121]}, "lr": {"type": "float", "low": 0.05, "high": 0.2, "step": 0.05}}}
    study = load_study(write_study(project, changed(sampler="grid", space=space, enqueue=_DROP)))
    assert study.sampler.name == "grid"


def test_yaml_syntax_error_names_file_and_line(project):
    path = project / "studies" / "mini.yaml"
    path.write_text("name: mini\ndataset: {kind: minicifar\nspace: x\n")
    with pytest.raises(ConfigError, match=r"^studies/mini\.yaml: invalid YAML at line \d+, column \d+"):
        load_study(path)


def test_space_file_errors_name_the_space_file(project):
    (project / "search_spaces" / "bad.yaml").write_text("params:\n  model: densenet\n  lr: {type: float, low: 0, high: 1, log: true}\n")
    with pytest.raises(ConfigError, match=r"^search_spaces/bad\.yaml: params\.lr\.low must be > 0 when log: true \(got 0\)$"):
        load_study(write_study(project, changed(space="../search_spaces/bad.yaml", enqueue=_DROP)))


# --- finding and listing -----------------------------------------------------------------------


def test_find_study_file_by_name_path_and_not_found(project, tmp_path_factory):
    local = write_study(project, STUDY)
    shipped = tmp_path_factory.mktemp("shipped")
    (shipped / "other.yaml").write_text("name: other\n")
    dirs = [project / "studies", shipped]
    assert find_study_file("mini", dirs) == local
    assert find_study_file("other", dirs) == shipped / "other.yaml"
    assert find_study_file(str(local)) == local
    with pytest.raises(ConfigError) as info:
        find_study_file("nope", dirs)
    assert "no study named 'nope'" in str(info.value) and "available: mini, other" in str(info.value)
    with pytest.raises(ConfigError, match="study file studies/nope.yaml does not exist"):
        find_study_file("studies/nope.yaml", dirs)


def test_local_study_hides_shipped_one_and_list_studies(project, tmp_path_factory):
    write_study(project, STUDY)
    shipped = tmp_path_factory.mktemp("shipped")
    (shipped / "mini.yaml").write_text("name: mini\ndescription: shipped\n")
    (shipped / "broken.yaml").write_text("name: [\n")
    (shipped / "extra.yaml").write_text("description: another study\n")
    listing = dict(list_studies([project / "studies", shipped]))
    assert listing["mini"] == "a test study"
    assert listing["extra"] == "another study"
    assert listing["broken"].startswith("(unreadable:")
    assert list(listing) == sorted(listing)


def test_shipped_studies_are_found_from_any_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    names = [name for name, _ in list_studies()]
    assert "cpu-quick" in names and "densenet-mini" in names
    assert find_study_file("cpu-quick").name == "cpu-quick.yaml"


# --- --set KEY=VALUE ---------------------------------------------------------------------------


def test_parse_overrides_types_by_train_config():
    values = parse_overrides(
        ["lr=1e-3", "batch_size=64", "nesterov=false", "augment=none", "milestones=0.3,0.6", "warmup_epochs=1", "optimizer=adamw"],
        TrainConfig,
    )
    assert values == {
        "lr": 0.001,
        "batch_size": 64,
        "nesterov": False,
        "augment": "none",
        "milestones": (0.3, 0.6),
        "warmup_epochs": 1.0,
        "optimizer": "adamw",
    }
    assert isinstance(values["warmup_epochs"], float)
    assert parse_overrides(["milestones=[0.5]"], TrainConfig) == {"milestones": (0.5,)}
    assert parse_overrides(["nesterov=1", "lr=0.1", "lr=0.2"], TrainConfig) == {"nesterov": True, "lr": 0.2}


@dataclass
class _Knobs:
    depth: int | str = 121
    blocks: list[int] | None = None
    block: str | None = None
    width: int = 64
    scale: float = 1.0
    hidden: list[int] = field(default_factory=list)


def test_parse_overrides_unions_lists_and_none():
    values = parse_overrides(["depth=cifar", "blocks=2,2,2,2", "block=none", "hidden=[]"], _Knobs)
    assert values == {"depth": "cifar", "blocks": [2, 2, 2, 2], "block": None, "hidden": []}
    assert parse_overrides(["depth=169"], _Knobs) == {"depth": 169}
    assert parse_overrides(["blocks=[1, 1, 1, 1]"], _Knobs) == {"blocks": [1, 1, 1, 1]}
    assert parse_overrides(["blocks=null"], _Knobs) == {"blocks": None}
    assert parse_overrides(["width=16"], {"width": int}) == {"width": 16}


@pytest.mark.parametrize(
    ("pair", "expected"),
    [
        ("lr", "--set expects KEY=VALUE (got 'lr')"),
        ("learning_rate=0.1", "--set learning_rate=0.1: unknown key 'learning_rate'; valid keys:"),
        ("batch_size=1.5", "--set batch_size=1.5: the value must be int (got '1.5')"),
        ("lr=fast", "--set lr=fast: the value must be float (got 'fast')"),
        ("nesterov=maybe", "--set nesterov=maybe: the value must be bool (got 'maybe')"),
        ("milestones=a,b", "--set milestones=a,b: the value must be tuple[float, ...]"),
        ("lr=nan", "--set lr=nan: the value must be float"),
    ],
)
def test_parse_overrides_errors(pair, expected):
    with pytest.raises(ConfigError) as info:
        parse_overrides([pair], TrainConfig)
    assert expected in str(info.value)


def test_parse_overrides_unknown_key_lists_valid_keys():
    with pytest.raises(ConfigError) as info:
        parse_overrides(["colour=3"], _Knobs)
    assert "valid keys: block, blocks, depth, hidden, scale, width" in str(info.value)


# --- malformed input never escapes as anything but ConfigError --------------------------------

_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**9), 10**9),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(["mini", "minicifar", "cifar10", "tpe", "asha", "grid", "none", "val_accuracy", "../search_spaces/test.yaml", "", ".."]),
    st.text(max_size=8),
)
_keys = st.sampled_from(
    ["name", "dataset", "space", "objectives", "sampler", "pruner", "epochs", "n_trials", "train", "constraints",
     "enqueue", "seed", "hypervolume_reference", "checkpoints", "kind", "n_classes", "R", "args", "params", "lr", "model"]
) | st.text(max_size=6)
_values = st.recursive(_scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_keys, inner, max_size=5), max_leaves=25)
_study_like = st.fixed_dictionaries(
    {},
    optional={
        "name": st.sampled_from(["mini", "other", "../x"]) | _values,
        "dataset": st.fixed_dictionaries({"kind": st.sampled_from(["minicifar", "cifar10", "x"])}, optional={"n_classes": _values, "R": _values}) | _values,
        "space": st.just("../search_spaces/test.yaml") | _values,
        "objectives": st.lists(st.sampled_from(list(OBJECTIVES)), max_size=4) | _values,
        "sampler": st.sampled_from(["tpe", "grid", "nsga2", "random"]) | _values,
        "pruner": st.sampled_from(["asha", "mo_asha", "none"]) | _values,
        "epochs": _values,
        "n_trials": _values,
        "train": _values,
        "constraints": _values,
        "enqueue": st.lists(st.dictionaries(st.sampled_from(["lr", "optimizer", "model", "momentum"]), _scalars), max_size=3) | _values,
        "seed": _values,
        "hypervolume_reference": _values,
        "checkpoints": _values,
    },
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(data=st.one_of(_values, _study_like))
def test_random_documents_give_study_or_config_error(project, data):
    path = project / "studies" / "mini.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True))
    try:
        study = load_study(path)
    except ConfigError as exc:
        assert str(exc).startswith(("studies/mini.yaml: ", "search_spaces/test.yaml: "))
    else:
        assert isinstance(study, StudyConfig)
        assert StudyConfig.from_dict(json.loads(json.dumps(study.to_dict()))).to_dict() == study.to_dict()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(max_size=120))
def test_random_text_gives_study_or_config_error(project, text):
    path = project / "studies" / "mini.yaml"
    path.write_text(text, encoding="utf-8")
    try:
        load_study(path)
    except ConfigError:
        pass
