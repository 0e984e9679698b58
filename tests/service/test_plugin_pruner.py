"""A multi-objective pruner registered through the public registry prunes a real study.

The pruner is a plug-in: a BasePruner subclass and a factory registered with
``register_pruner(..., multi_objective=True)``, nothing else. The study (accuracy and parameter
count, SQLite, the fake CIFAR) is run by the worker's own trial loop, ``hpo.workers.run_worker``,
in this process, with the real trainer.
"""

from __future__ import annotations

import textwrap

import optuna
import pytest
from optuna.trial import TrialState

from hpo import pruners
from hpo.trials import StopReason, TrialRecord

SPACE = """\
params:
  model: cnn
  cnn.channels: {choices: [[4], [16]]}
  cnn.kernel_size: 3
  lr: {type: float, low: 1.0e-2, high: 0.1, log: true}
  optimizer: sgd
  batch_size: 32
  augment: none
"""


class LargeModelsStopEarly(pruners.BasePruner):
    """Stops, after epoch 1, every trial whose model has more parameters than ``max_params``."""

    def __init__(self, max_params: int) -> None:
        self.max_params = max_params
        self.calls: list[tuple[int, int]] = []

    def should_prune(self, study, trial, epoch, metrics) -> bool:
        self.calls.append((trial.number, epoch))
        return epoch == 1 and TrialRecord.of(trial).param_count > self.max_params


@pytest.fixture
def plugin_pruner(monkeypatch):
    monkeypatch.setattr(pruners.registry, "PRUNERS", dict(pruners.registry.PRUNERS))  # leaves no trace
    made: list[LargeModelsStopEarly] = []

    @pruners.register_pruner("large_stop_early", description="stop large models after one epoch",
                             multi_objective=True, arg_names=["max_params"])
    def _factory(args, *, objectives, epochs):
        made.append(LargeModelsStopEarly(**args))
        return made[-1]

    return made


def test_plugin_multi_objective_pruner_prunes_through_the_worker_loop(tmp_path, fake_cifar, plugin_pruner):
    from hpo.config import load_study
    from hpo.data import load_dataset
    from hpo.storage import open_storage
    from hpo.study import create_or_load
    from hpo.workers import WorkerOptions, run_worker

    (tmp_path / "space.yaml").write_text(SPACE)
    (tmp_path / "plug.yaml").write_text(textwrap.dedent("""\
        name: plug
        dataset: {kind: minicifar, n_classes: 4, R: 1, train_size: 0.75}
        space: space.yaml
        objectives: [val_accuracy, param_count]
        sampler: {name: random, args: {seed: 3}}
        pruner: {name: large_stop_early, args: {max_params: 10000}}
        epochs: 3
        n_trials: 6
        enqueue: [{cnn.channels: [4]}, {cnn.channels: [16]}]
        seed: 0
        """))
    config = load_study(tmp_path / "plug.yaml")
    dataset = load_dataset(config.dataset, str(fake_cifar), split_seed=config.seed)
    url = f"sqlite:///{tmp_path}/plug.db"
    create_or_load(config, open_storage(url), n_trials=None, dataset_fingerprint=dataset.fingerprint)

    outcome = run_worker(WorkerOptions(study_name="plug", storage_url=url, device="cpu", data_dir=str(fake_cifar),
                                       artifacts=str(tmp_path / "artifacts")))

    assert plugin_pruner, "the worker built the registered pruner"
    study = optuna.load_study(study_name="plug", storage=url)
    trials = study.get_trials(deepcopy=False)
    assert outcome.get("COMPLETE", 0) + outcome.get("PRUNED", 0) == 6
    large = [t for t in trials if TrialRecord.of(t).param_count > 10000]
    small = [t for t in trials if TrialRecord.of(t).param_count <= 10000]
    assert large and small  # both enqueued sizes ran
    for trial in large:
        record = TrialRecord.of(trial)
        assert trial.state == TrialState.PRUNED and record.stop_reason == StopReason.PRUNED
        assert record.epochs_run == 1 and len(record.epochs) == 1
    for trial in small:
        assert trial.state == TrialState.COMPLETE and TrialRecord.of(trial).epochs_run == 3
    # Asked after every epoch but the last: the compute of the last epoch is already spent.
    calls = [call for pruner in plugin_pruner for call in pruner.calls]
    assert all(epoch < 3 for _, epoch in calls)
    assert {(t.number, 1) for t in large} <= set(calls)
