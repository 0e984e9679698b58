"""Studies built by hand, shaped like the ones `hpo run` writes (values, user attrs, definition)."""

from __future__ import annotations

import math
import os
from types import SimpleNamespace

import numpy as np
import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState

METRICS = ["val_accuracy", "param_count", "train_seconds"]
DIRECTIONS = ["maximize", "minimize", "minimize"]

DEFINITION = {
    "name": "synthetic",
    "description": "Hand-built study for the analysis tests",
    "dataset": {"kind": "minicifar", "n_classes": 10, "R": 10, "train_size": 400},
    "space": {"params": {"width": {"type": "int", "low": 8, "high": 64}, "optimizer": "sgd"}},
    "objectives": METRICS,
    "sampler": {"name": "nsga2", "args": {"population_size": 8}},
    "pruner": {"name": "mo_successive_halving", "args": {}},
    "epochs": 4,
    "n_trials": 20,
    "constraints": {},
    "seed": 0,
    "hypervolume_reference": {"params": 1e8, "train_seconds": 600},
}

DISTRIBUTIONS = {
    "width": IntDistribution(8, 64, step=8),
    "lr": FloatDistribution(1e-4, 1e-1, log=True),
    "batch_size": CategoricalDistribution([64, 128, 256]),
}


def history(final_val: float, final_train: float, epochs: int, epoch_seconds: float) -> list[dict]:
    """Per-epoch records rising linearly to the final accuracies, like the trainer writes."""
    records = []
    for epoch in range(1, epochs + 1):
        fraction = epoch / epochs
        records.append(
            {
                "epoch": epoch,
                "train_loss": 2.3 * (1 - 0.7 * fraction),
                "train_accuracy": 0.1 + (final_train - 0.1) * fraction,
                "val_loss": 2.3 * (1 - 0.6 * fraction),
                "val_accuracy": 0.1 + (final_val - 0.1) * fraction,
                "epoch_seconds": epoch_seconds,
                "images_per_second": 400 / epoch_seconds,
                "lr": 0.01,
                "elapsed_seconds": epoch * epoch_seconds,
            }
        )
    return records


def attrs(val_accuracy: float, param_count: int, train_seconds: float, epochs: int = 4, **extra) -> dict:
    return {
        "val_accuracy": val_accuracy,
        "param_count": int(param_count),
        "macs": int(param_count * 30),
        "train_seconds": float(train_seconds),
        "epochs_run": epochs,
        "images_per_second": 400 * epochs / max(train_seconds, 1e-9),
        "device_name": "cpu",
        "peak_memory_bytes": 10_000_000,
        "train_accuracy": min(1.0, val_accuracy + 0.05),
        "train_loss": 0.5,
        "val_loss": 0.9,
        "history": history(val_accuracy, min(1.0, val_accuracy + 0.05), epochs, train_seconds / epochs),
        **extra,
    }


def add(study: optuna.Study, params: dict, state: TrialState, values=None, **user_attrs) -> None:
    distributions = {name: DISTRIBUTIONS[name] for name in params}
    study.add_trial(
        optuna.trial.create_trial(
            params=params, distributions=distributions, values=values, state=state, user_attrs=user_attrs
        )
    )


def synthetic_study(n_complete: int = 14, seed: int = 0) -> optuna.Study:
    """A 3-objective study: accuracy and cost both grow with width; lr matters for accuracy only.

    Trials: ``n_complete`` COMPLETE, 4 PRUNED (stop_reason pruned/diverged), 2 FAIL (constraint,
    oom), in that order after the complete ones.
    """
    rng = np.random.RandomState(seed)
    study = optuna.create_study(storage=optuna.storages.InMemoryStorage(), directions=DIRECTIONS, study_name="synthetic")
    study.set_metric_names(METRICS)
    study.set_user_attr("definition", DEFINITION)
    study.set_user_attr("hardware", "1x CPU (test)")
    study.set_user_attr("hpo_version", "0.1.0")
    for _ in range(n_complete):
        width = int(rng.choice([8, 16, 24, 32, 40, 48, 56, 64]))
        lr = float(10 ** rng.uniform(-4, -1))
        batch = int(rng.choice([64, 128, 256]))
        # Accuracy peaks at lr = 1e-2 and grows with width; cost grows with width squared.
        accuracy = 0.35 + 0.3 * (width / 64) - 0.08 * abs(math.log10(lr) + 2) + rng.uniform(0, 0.02)
        param_count = 1000 * width**2
        seconds = 2.0 * width * (256 / batch) ** 0.2 + rng.uniform(0, 1)
        add(
            study,
            {"width": width, "lr": lr, "batch_size": batch},
            TrialState.COMPLETE,
            [accuracy, param_count, seconds],
            **attrs(accuracy, param_count, seconds),
        )
    for i, reason in enumerate(["pruned", "pruned", "diverged", "pruned"]):
        width = 8 * (i + 1)
        add(
            study,
            {"width": width, "lr": 0.05, "batch_size": 64},
            TrialState.PRUNED,
            None,
            **attrs(0.2, 1000 * width**2, 5.0, epochs=1, stop_reason=reason),
        )
    add(study, {"width": 64, "lr": 0.01, "batch_size": 64}, TrialState.FAIL, None, stop_reason="constraint")
    add(
        study,
        {"width": 64, "lr": 0.01, "batch_size": 256},
        TrialState.FAIL,
        None,
        stop_reason="oom",
        train_seconds=3.0,
    )
    return study


@pytest.fixture(scope="session")
def study() -> optuna.Study:
    return synthetic_study()


@pytest.fixture(scope="session")
def report(study):
    from hpo.analysis.report import collect

    return collect(study)


@pytest.fixture(scope="session")
def builders() -> SimpleNamespace:
    """The study-building helpers of this file, for tests that build their own small study."""
    return SimpleNamespace(add=add, attrs=attrs, history=history, synthetic_study=synthetic_study,
                           distributions=DISTRIBUTIONS, definition=DEFINITION)


@pytest.fixture
def browser() -> None:
    """Skip without Chromium on a developer machine; under CI (``CI`` set) a missing browser fails."""
    from hpo.analysis.export import find_browser
    from hpo.errors import HpoError

    try:
        find_browser()
    except HpoError as error:
        if os.environ.get("CI"):
            pytest.fail(f"{error}; CI must run the browser tests")
        pytest.skip(str(error))
