"""Every shipped study and search space validates, samples, and builds model/trainer configs."""

from __future__ import annotations

import json
from pathlib import Path

import optuna
import pytest

from hpo.pruners import create_pruner
from hpo.config import StudyConfig, load_study
from hpo.space import SearchSpace, encode_params, load_space, suggest
from hpo.train_config import TrainConfig
from hpo.trial_config import TrialConfig

ROOT = Path(__file__).resolve().parent.parent
STUDY_FILES = sorted((ROOT / "studies").glob("*.yaml"))
SPACE_FILES = sorted((ROOT / "search_spaces").glob("*.yaml"))


def test_shipped_files_exist():
    assert {p.stem for p in STUDY_FILES} >= {
        "densenet-mini", "resnet-mini", "preact-resnet-mini", "vgg-mini", "transfer-mini", "ladder",
        "cpu-quick", "cpu-small", "densenet-mini-mo", "cifar10-resnet", "cifar10-densenet", "cifar100-resnet",
    }
    assert {p.stem for p in SPACE_FILES} >= {"resnet", "preact_resnet", "densenet", "vgg", "transfer", "ladder", "small", "quick"}


def _check_configs(values: dict) -> None:
    """A sampled configuration must build the family's config and a TrainConfig."""
    TrialConfig.from_params(values, TrainConfig())


@pytest.mark.parametrize("path", SPACE_FILES, ids=lambda p: p.name)
def test_search_space_validates_and_samples(path):
    space = load_space(path, origin=f"search_spaces/{path.name}")
    assert space.description
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(25):
        trial = study.ask()
        values = suggest(trial, space)
        _check_configs(values)
        study.tell(trial, 0.0)


@pytest.mark.parametrize("path", STUDY_FILES, ids=lambda p: p.name)
def test_study_validates_and_enqueued_trials_replay(path):
    study_config = load_study(path)
    assert study_config.name == path.stem
    assert study_config.description
    assert study_config.objectives[0] == "val_accuracy"
    study = optuna.create_study(
        directions=study_config.directions(), sampler=optuna.samplers.RandomSampler(seed=0)
    )
    for entry in study_config.enqueue:
        study.enqueue_trial(encode_params(study_config.space, entry))
    for entry in study_config.enqueue:
        trial = study.ask()
        values = suggest(trial, study_config.space)
        for name, value in entry.items():
            assert values[name] == value, (name, value, values[name])
        _check_configs(values)
        assert study_config.trial_config(trial.params).params == values
        study.tell(trial, [0.0] * len(study_config.objectives))


@pytest.mark.parametrize("path", STUDY_FILES, ids=lambda p: p.name)
def test_stored_definition_reads_back_with_the_same_hash(path):
    study = load_study(path)
    again = StudyConfig.from_dict(json.loads(json.dumps(study.to_dict())))
    assert again.to_dict() == study.to_dict()
    assert again.definition_hash() == study.definition_hash()
    assert again.base_train == study.base_train


def test_lab_studies_enqueue_the_reference_recipe_with_schedule_first():
    for name in ("densenet-mini", "resnet-mini", "preact-resnet-mini", "vgg-mini"):
        study = load_study(ROOT / "studies" / f"{name}.yaml")
        assert study.dataset.kind == "minicifar" and study.dataset.n_classes == 4 and study.dataset.R == 5
        assert study.pruner.name == "asha"
        reference = study.enqueue[0]
        assert {k: reference[k] for k in ("optimizer", "lr", "momentum", "weight_decay", "schedule", "augment")} == {
            "optimizer": "sgd", "lr": 0.1, "momentum": 0.9, "weight_decay": 5e-4, "schedule": "cosine", "augment": "crop+flip",
        }
        names = study.space.names()
        assert names.index("schedule") < min(i for i, n in enumerate(names) if "." in n)


def test_ladder_enqueues_the_practice_in_order():
    study = load_study(ROOT / "studies" / "ladder.yaml")
    assert study.pruner.name == "none"
    rungs = study.enqueue
    assert [r["model"] for r in rungs] == ["linear", "mlp", "mlp"] + ["cnn"] * 6 + ["resnet", "transfer"]
    assert rungs[0]["optimizer"] == "sgd"
    assert rungs[1]["mlp.hidden"] == [1024] and rungs[1]["mlp.activation"] == "relu"
    assert rungs[2]["mlp.hidden"] == [1024, 512, 256] and rungs[2]["schedule"] == "step"
    assert rungs[3]["cnn.channels"] == [16, 16] and rungs[3]["cnn.kernel_size"] == 5
    assert rungs[3]["cnn.downsample"] == "stride" and rungs[3]["optimizer"] == "adam"
    assert rungs[4]["cnn.downsample"] == "maxpool"
    assert rungs[5]["cnn.dropout"] > 0 and rungs[4]["cnn.dropout"] == 0
    assert rungs[6]["cnn.batch_norm"] and not rungs[5]["cnn.batch_norm"]
    assert [r["cnn.activation"] for r in rungs[6:9]] == ["relu", "leaky_relu", "selu"]
    assert study.space["resnet.depth"].value == 18
    assert study.space["transfer.backbone"].value == "resnet18" and study.space["transfer.mode"].value == "finetune"
    assert study.n_trials >= len(rungs)


def test_transfer_space_offers_no_augmentation_when_frozen():
    space = load_space(ROOT / "search_spaces" / "transfer.yaml", origin="transfer.yaml")
    assert space["augment"].when == {"transfer.mode": ("finetune",)}
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    modes = set()
    for _ in range(30):
        trial = study.ask()
        values = suggest(trial, space)
        modes.add(values["transfer.mode"])
        assert ("augment" in values) == (values["transfer.mode"] == "finetune")
        study.tell(trial, 0.0)
    assert modes == {"frozen", "finetune"}
    assert load_study(ROOT / "studies" / "transfer-mini.yaml").train["augment"] == "none"


def test_cpu_quick_is_small():
    study = load_study(ROOT / "studies" / "cpu-quick.yaml")
    # Its own budget ends it: 4 minutes of worker time, N open (5 minutes in all on 2 cores, BENCHMARKS.md).
    assert study.budget is not None and study.budget.seconds == 240 and not study.budget.device and study.n_trials is None
    assert study.epochs <= 4 and study.dataset.kind == "minicifar" and study.dataset.R >= 5
    assert study.objectives == ("val_accuracy", "param_count", "train_seconds")
    # Judged once, at epoch 2 of 4: no trial is stopped after three quarters of its cost.
    pruner = create_pruner(study.pruner.name, study.pruner.args, objectives=study.objectives, epochs=study.epochs)
    assert pruner.rungs() == [2]
    assert isinstance(study.space, SearchSpace)


def test_cpu_small_is_the_previous_quickstart():
    study = load_study(ROOT / "studies" / "cpu-small.yaml")
    assert study.n_trials == 20 and study.epochs == 4 and study.objectives == ("val_accuracy",)
    assert study.pruner.name == "asha" and study.pruner.args["min_resource"] == 1


def test_multi_objective_study():
    study = load_study(ROOT / "studies" / "densenet-mini-mo.yaml")
    assert study.objectives == ("val_accuracy", "param_count", "train_seconds")
    assert study.directions() == ["maximize", "minimize", "minimize"]
    assert (study.sampler.name, study.pruner.name) == ("nsga2", "mo_asha")
