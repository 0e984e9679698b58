"""After the search: test-set accuracy from saved checkpoints, and retraining a trial to check it.

The test split is never used during a search; ``evaluate_trials`` is the only place that reads
it, from the checkpoints stored in the artifact store (no retraining).
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from hpo import compat, progress
from hpo import study as studies
from hpo.errors import HpoError
from hpo.trials import (
    TEST_ACCURACY_PREFIX,
    TEST_IMAGES_PREFIX,
    TrialRecord,
    train_seconds_of,
)


@dataclass
class Evaluation:
    """Test-set result of one trial."""

    trial: int
    val_accuracy: float | None
    test_accuracy: float
    test_loss: float
    n_test_images: int | None = None  # the images test_accuracy was measured on
    n_val_images: int | None = None  # the images val_accuracy was measured on, when the trial stored it


def pareto_trial_numbers(study: optuna.Study) -> list[int]:
    """The trials on the study's front (accuracy, parameters, training time), from complete trials."""
    from hpo.analysis.report import collect

    return list(collect(study).front.front_trial_numbers)


def existing_artifact_store(artifacts: str | None, why: str) -> Any:
    """The artifact store of a study's checkpoints, opened to read: it creates no folder.

    Raises:
        HpoError: the folder does not exist, saying ``why`` that matters (e.g. "there are no checkpoints
            to evaluate") and how to point at the right one.
    """
    from hpo.storage import open_artifact_store

    store = open_artifact_store(artifacts, create=False)
    if store is None:
        raise HpoError(f"the artifact store folder {artifacts or os.environ.get('HPO_ARTIFACTS') or 'artifacts'} does not "
                       f"exist, so {why}; pass --artifacts (or HPO_ARTIFACTS) pointing at the folder the study's workers "
                       "wrote to")
    return store


def study_dataset(study: optuna.Study, config: Any, data_dir: str | None) -> Any:
    """The study's dataset, loaded without downloading, and checked to be the data its trials used."""
    from hpo.data import load_dataset

    dataset = load_dataset(config.dataset, data_dir, split_seed=config.seed, download=False)
    studies.check_fingerprint(study, dataset.fingerprint)
    return dataset


def evaluate_trials(study: optuna.Study, numbers: list[int], *, data_dir: str | None, device: str = "auto",
                    artifacts: str | None = None) -> list[Evaluation]:
    """Measure test accuracy of trials from their stored checkpoints, and store it with the study
    (``test_accuracy:<number>``) with the number of test images (``test_images:<number>``).

    Args:
        study: the study.
        numbers: trial numbers (COMPLETE trials with a checkpoint).
        data_dir: data folder (same data as the search: the fingerprint is checked).
        device: where to evaluate.
        artifacts: the artifact store folder.

    Returns:
        One evaluation per trial.
    """
    from hpo.device import resolve_device
    from hpo.train import eval_normalization, evaluate

    config = studies.definition_of(study)
    # Unknown or unfinished trials, and a missing artifact store, are refused before any data is read.
    chosen = [_evaluable(study, number) for number in numbers]
    store = existing_artifact_store(artifacts, "there are no checkpoints to evaluate")
    dataset = study_dataset(study, config, data_dir)
    dev = resolve_device(device, flag="--device")
    results = []
    with tempfile.TemporaryDirectory(prefix="hpo-eval-") as tmp:
        for number, trial in progress.track(list(zip(numbers, chosen)), "evaluating trials on the test set"):
            record = TrialRecord.of(trial)
            state = _read_checkpoint(store, record.checkpoint, Path(tmp) / f"trial-{number}.pt", number)
            model = config.trial_config(trial.params).build_model(len(dataset.classes))
            model.load_state_dict(state["model"])
            model.to(dev)
            mean, std = eval_normalization(model, dataset)
            loss, accuracy = evaluate(model, dataset.test, device=dev, mean=mean, std=std, batch_size=1024)
            study.set_user_attr(f"{TEST_ACCURACY_PREFIX}{number}", float(accuracy))
            study.set_user_attr(f"{TEST_IMAGES_PREFIX}{number}", len(dataset.test))
            results.append(Evaluation(number, record.val_accuracy, float(accuracy), float(loss),
                                      n_test_images=len(dataset.test),
                                      n_val_images=record.n_val_images or len(dataset.val)))
    return results


def _evaluable(study: optuna.Study, number: int) -> optuna.trial.FrozenTrial:
    trial = studies.get_trial(study, number)
    if trial.state != TrialState.COMPLETE or not TrialRecord.of(trial).checkpoint:
        raise HpoError(f"trial {number} is {trial.state.name.lower()} and has no final checkpoint; "
                       "evaluate complete trials (e.g. --pareto)")
    return trial


def _read_checkpoint(store, artifact_id: str, path: Path, number: int) -> dict:
    """The trainer state a trial stored, downloaded to ``path``; unlike a retry, evaluate cannot do without it."""
    from hpo.checkpoints import CheckpointError, load_checkpoint

    try:
        optuna.artifacts.download_artifact(artifact_store=store, file_path=str(path), artifact_id=artifact_id)
        return load_checkpoint(path, map_location="cpu")
    except (OSError, CheckpointError, optuna.artifacts.exceptions.ArtifactNotFound) as exc:
        folder = compat.artifact_store_folder(store)
        raise HpoError(f"trial {number}: its checkpoint {artifact_id} cannot be read from the artifact store "
                       f"{folder if folder is not None else ''} ({exc}); pass --artifacts "
                       "with the folder the workers used") from None


@dataclass
class Reproduction:
    """A retrained trial against its stored result."""

    trial: int
    stored_val_accuracy: float | None
    val_accuracy: float
    stored_train_seconds: float | None  # the stored train_seconds: the sum of its epochs' seconds
    train_seconds: float  # the same quantity of the retraining: the sum of its epochs' epoch_seconds
    n_val_images: int | None = None  # the validation images both accuracies were measured on

    @property
    def difference(self) -> float | None:
        """New minus stored validation accuracy (None when none was stored)."""
        return None if self.stored_val_accuracy is None else self.val_accuracy - self.stored_val_accuracy


def reproduce_trial(study: optuna.Study, number: int, *, data_dir: str | None, device: str = "auto",
                    on_epoch=None) -> Reproduction:
    """Retrain a trial from its stored parameters and the study seed, for as many epochs as it ran.

    Args:
        study: the study.
        number: a COMPLETE or PRUNED trial.
        data_dir: data folder (same data as the search: the fingerprint is checked).
        device: where to train.
        on_epoch: called with each epoch's ``EpochMetrics``.

    Returns:
        The new and the stored validation accuracy (identical on CPU for the same package versions).
    """
    from hpo.data import load_dataset
    from hpo.device import resolve_device
    from hpo.train import train

    config = studies.definition_of(study)
    trial = studies.get_trial(study, number)
    if trial.state not in (TrialState.COMPLETE, TrialState.PRUNED):
        raise HpoError(f"trial {number} is {trial.state.name.lower()}; reproduce a complete or pruned trial")
    dataset = load_dataset(config.dataset, data_dir, split_seed=config.seed, download=False)
    studies.check_fingerprint(study, dataset.fingerprint)
    trial_config = config.trial_config(trial.params)
    model = trial_config.build_model(len(dataset.classes))
    record = TrialRecord.of(trial)
    epochs = int(record.epochs_run or trial_config.train.epochs)
    # A pruned trial stopped early: rerun the same epochs under the same schedule (its full length).
    history = _train_epochs(train, model, dataset, trial_config.train, epochs, resolve_device(device, flag="--device"), on_epoch)
    # Both sides are train_seconds, the sum of epoch_seconds (training + evaluation), never the
    # wall clock with the data loading and compilation before the first epoch.
    stored_seconds = record.train_seconds
    if stored_seconds is None and record.epochs:
        stored_seconds = train_seconds_of(record.epochs)
    return Reproduction(
        trial=number,
        stored_val_accuracy=record.val_accuracy,
        val_accuracy=float(history[-1].val_accuracy),
        stored_train_seconds=stored_seconds,
        train_seconds=train_seconds_of([m.to_dict() for m in history]),
        n_val_images=len(dataset.val),
    )


class _StopAfter(Exception):
    pass


def _train_epochs(train, model, dataset, train_config, epochs, device, on_epoch) -> list:
    """Per-epoch metrics of the first ``epochs`` epochs (the schedule keeps its full length)."""
    history = []

    def callback(metrics):
        history.append(metrics)
        if on_epoch is not None:
            on_epoch(metrics)
        if metrics.epoch >= epochs:
            raise _StopAfter

    try:
        train(model, dataset, train_config, device=device, on_epoch=callback)
    except _StopAfter:
        pass
    return history
