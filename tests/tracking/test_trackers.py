"""Trackers on their real stores: one worker run logs a study to MLflow, W&B (offline) and TensorBoard.

The study (fake CIFAR, a tiny CNN, 2 epochs) enqueues three configurations: a small one, one over
``max_params`` (FAIL ``constraint`` before any training) and a small one again. The worker loop runs
in this process with the real trainer, then each store is read back with its own reader: MLflow's
client on a SQLite tracking store (not the study's database), W&B's offline run files, and
TensorBoard's event reader. A plug-in tracker that raises on every call shows that a tracker's
failure never fails a trial.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from hpo.analysis.intervals import accuracy_interval
from hpo.trials import TrialRecord

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


class Broken:
    name = "broken"
    wants_checkpoint = False

    def on_trial_start(self, start):
        self.started = start.number  # works: the later calls fail

    def on_epoch(self, metrics):
        raise RuntimeError("tracker down")

    def on_trial_end(self, end):
        raise RuntimeError("tracker down")

    def close(self):
        pass


@pytest.fixture(scope="module")
def tracked(tmp_path_factory, fake_cifar):
    """Run the study once; return what the tests read back."""
    from hpo.config import load_study
    from hpo.data import load_dataset
    from hpo.storage import open_storage
    from hpo.study import create_or_load
    from hpo.tracking import registry
    from hpo.workers import WorkerOptions, run_worker

    tmp_path = tmp_path_factory.mktemp("tracked")
    saved = dict(registry._TRACKERS)
    registry.register_tracker("broken", description="raises")(lambda settings, study: Broken())
    monkeypatch = pytest.MonkeyPatch()
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    monkeypatch.setenv("WANDB_SILENT", "true")
    mlflow_uri = f"sqlite:///{tmp_path}/mlflow.db"
    (tmp_path / "space.yaml").write_text(SPACE)
    (tmp_path / "tracked.yaml").write_text(textwrap.dedent(f"""\
        name: tracked
        dataset: {{kind: minicifar, n_classes: 4, R: 1, train_size: 0.75}}
        space: space.yaml
        sampler: {{name: random, args: {{seed: 3}}}}
        pruner: none
        epochs: 2
        n_trials: 2
        constraints: {{max_params: 10000}}
        enqueue: [{{cnn.channels: [4], lr: 0.05}}, {{cnn.channels: [16]}}, {{cnn.channels: [4], lr: 0.02}}]
        tracking:
          mlflow: {mlflow_uri}
          wandb: {{project: hpo-test}}
          broken: {{}}
        """))
    try:
        config = load_study(tmp_path / "tracked.yaml")
        dataset = load_dataset(config.dataset, str(fake_cifar), split_seed=config.seed)
        url = f"sqlite:///{tmp_path}/study.db"
        create_or_load(config, open_storage(url), n_trials=None, dataset_fingerprint=dataset.fingerprint)
        outcome = run_worker(WorkerOptions(study_name="tracked", storage_url=url, device="cpu", data_dir=str(fake_cifar),
                                           artifacts=str(tmp_path / "artifacts"), tensorboard_dir=str(tmp_path / "tb")))
    finally:
        registry._TRACKERS.clear()
        registry._TRACKERS.update(saved)
        monkeypatch.undo()
    study = optuna.load_study(study_name="tracked", storage=url)
    return {"tmp": tmp_path, "outcome": outcome, "trials": study.get_trials(), "mlflow": mlflow_uri}


def test_the_trials_ran_despite_a_failing_tracker(tracked):
    states = [t.state for t in tracked["trials"]]
    assert states == [TrialState.COMPLETE, TrialState.FAIL, TrialState.COMPLETE]
    assert TrialRecord.of(tracked["trials"][1]).stop_reason_text == "constraint"


def test_mlflow_runs_hold_params_curves_finals_stop_reason_and_checkpoint(tracked, tmp_path):
    from mlflow.artifacts import download_artifacts
    from mlflow.tracking import MlflowClient

    from hpo.checkpoints import load_checkpoint

    client = MlflowClient(tracking_uri=tracked["mlflow"])
    experiment = client.get_experiment_by_name("tracked")
    runs = {int(r.data.tags["hpo.trial"]): r for r in client.search_runs([experiment.experiment_id])}
    assert sorted(runs) == [0, 1, 2]
    for trial in tracked["trials"]:
        run, record = runs[trial.number], TrialRecord.of(trial)
        assert run.info.run_name == f"trial-{trial.number}"
        assert run.data.params["lr"] == str(trial.params["lr"])
        assert run.data.params["model"] == "cnn" and run.data.params["optimizer"] == "sgd"  # the space's fixed values
        assert run.data.metrics["param_count"] == record.param_count
        if trial.state == TrialState.FAIL:
            assert run.info.status == "FAILED" and run.data.tags["stop_reason"] == "constraint"
            assert "val_accuracy" not in run.data.metrics
            assert client.list_artifacts(run.info.run_id) == []
            continue
        assert run.info.status == "FINISHED" and run.data.tags["stop_reason"] == "none"
        curve = client.get_metric_history(run.info.run_id, "val_accuracy")
        assert [(m.step, m.value) for m in curve] == [(e["epoch"], e["val_accuracy"]) for e in record.epochs]
        assert [m.step for m in client.get_metric_history(run.info.run_id, "train_loss")] == [1, 2]
        lower, upper = accuracy_interval(record.val_accuracy, record.n_val_images)
        assert run.data.metrics["val_accuracy"] == pytest.approx(trial.values[0])
        assert run.data.metrics["val_accuracy_lower"] == pytest.approx(lower)
        assert run.data.metrics["val_accuracy_upper"] == pytest.approx(upper)
        assert lower < record.val_accuracy < upper
        assert run.data.metrics["train_seconds"] == pytest.approx(record.train_seconds)
        assert [a.path for a in client.list_artifacts(run.info.run_id)] == ["checkpoint.pt"]
        local = download_artifacts(artifact_uri=f"{run.info.artifact_uri}/checkpoint.pt", dst_path=str(tmp_path))
        assert len(load_checkpoint(local)["history"]) == 2  # a real checkpoint, of the trial's last epoch
    # Beside the tracking database, not in the worker's working directory.
    assert (tracked["tmp"] / "mlruns").is_dir()


def test_wandb_offline_runs_hold_the_same(tracked):
    from wandb_files import offline_runs

    runs = offline_runs(tracked["tmp"])
    assert sorted(runs) == ["tracked-trial-0", "tracked-trial-1", "tracked-trial-2"]
    for trial in tracked["trials"]:
        run, record = runs[f"tracked-trial-{trial.number}"], TrialRecord.of(trial)
        assert run.project == "hpo-test" and run.group == "tracked"
        assert run.config["lr"] == pytest.approx(trial.params["lr"]) and run.config["model"] == "cnn"
        assert run.summary["param_count"] == record.param_count
        assert run.summary["stop_reason"] == record.stop_reason_text
        if trial.state == TrialState.FAIL:
            assert run.exit_code == 1 and run.history == [] and run.artifacts == []
            continue
        assert run.exit_code == 0
        curve = [(step, items["val_accuracy"]) for step, items in run.history if "val_accuracy" in items]
        assert curve == [(e["epoch"], e["val_accuracy"]) for e in record.epochs]
        lower, upper = accuracy_interval(record.val_accuracy, record.n_val_images)
        assert run.summary["val_accuracy_lower"] == pytest.approx(lower)
        assert run.summary["val_accuracy_upper"] == pytest.approx(upper)
        assert run.artifacts == [(f"tracked-trial-{trial.number}-checkpoint", "model", ["checkpoint.pt"])]


def test_tensorboard_gets_hparams_beside_the_curves(tracked):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    for trial in tracked["trials"]:
        events = EventAccumulator(str(tracked["tmp"] / "tb" / "tracked" / f"trial-{trial.number:05d}"))
        events.Reload()
        hparams, metrics = {}, []
        for content in events.PluginTagToContent("hparams").values():
            data = plugin_data_pb2.HParamsPluginData.FromString(content)
            if data.HasField("session_start_info"):
                hparams = {k: v.WhichOneof("kind") and getattr(v, v.WhichOneof("kind"))
                           for k, v in data.session_start_info.hparams.items()}
            if data.HasField("experiment"):
                metrics = [m.name.tag for m in data.experiment.metric_infos]
        assert hparams["lr"] == pytest.approx(trial.params["lr"])
        assert hparams["model"] == "cnn" and hparams["hpo/state"] == trial.state.name
        assert "final/param_count" in metrics
        assert events.Scalars("final/param_count")[-1].value == TrialRecord.of(trial).param_count
        if trial.state == TrialState.COMPLETE:
            assert [s.step for s in events.Scalars("val_accuracy")] == [1, 2]  # the curves, in the same run
            assert events.Scalars("final/val_accuracy")[-1].value == pytest.approx(trial.values[0])


def test_the_training_path_imports_no_tracker_package():
    import subprocess
    import sys

    code = ("import sys, hpo, hpo.workers, hpo.config, hpo.tracking; from hpo.config import load_study; "
            "load_study('cpu-quick'); print(sorted(m for m in ('mlflow', 'wandb') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).resolve().parents[2], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
