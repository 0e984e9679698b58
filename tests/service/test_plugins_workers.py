"""Plug-ins reach every worker process: a study names a module, and each worker imports it first.

The plug-in (written in the test's folder, put on PYTHONPATH) registers a model family the study's
search space uses, and a callback through ``hpo.register_callback``; the study also names a
``module:function`` callback. ``hpo run`` with two real worker processes trains every trial with
the plug-in's family, and each callback is called once per finished trial with its FrozenTrial.
A worker whose PYTHONPATH lacks the module stops with exit code 2 and one line naming it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import optuna
import pytest
from optuna.trial import TrialState

from hpo.trials import StopReason, TrialRecord

HPO = [sys.executable, "-m", "hpo"]

PLUGIN = textwrap.dedent('''\
    """A lab's plug-in: a model family and two callbacks."""
    import os
    from dataclasses import dataclass

    from torch import nn

    import hpo
    from hpo.models.registry import register_family


    @dataclass
    class TwoConvConfig:
        width: int = 4  # channels of both convolutions


    @register_family("twoconv", TwoConvConfig, "two 3x3 convolutions, global pooling, a linear head")
    def build(config, num_classes):
        return nn.Sequential(nn.Conv2d(3, config.width, 3, padding=1), nn.ReLU(),
                             nn.Conv2d(config.width, config.width, 3, padding=1), nn.ReLU(),
                             nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(config.width, num_classes))


    def _line(kind, trial):
        with open(os.environ["LAB_CALLS"], "a") as calls:
            calls.write(f"{kind} {os.getpid()} {type(trial).__name__} {trial.number} {trial.state.name}\\n")


    @hpo.register_callback
    def registered(study, trial):
        _line("registered", trial)


    def from_study(study, trial):
        _line("study", trial)
''')

SPACE = """\
params:
  model: twoconv
  twoconv.width: {choices: [4, 6]}
  lr: {type: float, low: 1.0e-2, high: 0.1, log: true}
  optimizer: sgd
  batch_size: 32
  augment: none
"""


@pytest.fixture
def plugged(tmp_path, worker_env):
    (tmp_path / "plug").mkdir()
    (tmp_path / "plug" / "lab_plugin.py").write_text(PLUGIN)
    (tmp_path / "space.yaml").write_text(SPACE)
    study = tmp_path / "plugged.yaml"
    study.write_text(textwrap.dedent("""\
        name: plugged
        dataset: {kind: minicifar, n_classes: 4, R: 1, train_size: 0.75}
        space: space.yaml
        sampler: random
        pruner: none
        epochs: 1
        n_trials: 3
        plugins: [lab_plugin]
        callbacks: [lab_plugin:from_study]
        """))
    # Slow heartbeats: a trial reaped as lost on a loaded machine would add a retry; liveness is not checked here.
    env = {**worker_env, "LAB_CALLS": str(tmp_path / "calls.txt"), "HPO_HEARTBEAT_SECONDS": "10"}
    with_plugin = {**env, "PYTHONPATH": str(tmp_path / "plug") + os.pathsep + env["PYTHONPATH"]}
    return study, with_plugin, env


@pytest.mark.slow
def test_every_worker_imports_the_plugins_and_runs_the_callbacks(tmp_path, plugged):
    study, env, _ = plugged
    url = f"sqlite:///{tmp_path}/study.db"
    mlflow_uri = f"sqlite:///{tmp_path}/mlflow.db"
    proc = subprocess.run(HPO + ["run", "--study", str(study), "--workers", "2", "--devices", "cpu", "--storage", url,
                                 "--log-dir", str(tmp_path / "logs"), "--mlflow", mlflow_uri], env=env,
                          capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    every = optuna.load_study(study_name="plugged", storage=url).get_trials()
    # Two workers asking at once may create a trial past N: FAIL "budget", untrained, no callback.
    trials = [t for t in every if TrialRecord.of(t).stop_reason is not StopReason.BUDGET]
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 3
    assert all(t.params["twoconv.width"] in (4, 6) for t in trials)  # the plug-in's family, built by the workers
    lines = [line.split() for line in (tmp_path / "calls.txt").read_text().splitlines()]
    for kind in ("registered", "study"):
        calls = [line for line in lines if line[0] == kind]
        assert sorted(int(line[3]) for line in calls) == [0, 1, 2]  # once per finished trial
        assert {(line[2], line[4]) for line in calls} == {("FrozenTrial", "COMPLETE")}
    assert {int(line[1]) for line in lines} != {os.getpid()}  # called in the worker processes, not here
    # --mlflow reached the worker processes (WorkerOptions travel as JSON): one run per trial.
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=mlflow_uri)
    runs = client.search_runs([client.get_experiment_by_name("plugged").experiment_id])
    assert sorted(r.info.run_name for r in runs) == ["trial-0", "trial-1", "trial-2"]
    assert {r.data.params["model"] for r in runs} == {"twoconv"}


@pytest.mark.slow
def test_a_worker_that_cannot_import_a_plugin_stops_with_one_line(tmp_path, plugged, monkeypatch):
    from hpo import callbacks
    from hpo.config import load_study
    from hpo.models import registry
    from hpo.storage import open_storage
    from hpo.study import create_or_load
    from hpo.workers import WorkerOptions
    from hpo.workers.launch import worker_environment

    study, env, bare = plugged
    url = f"sqlite:///{tmp_path}/study.db"
    # Creating the study here imports the plug-in in this process: it must leave no trace.
    monkeypatch.setattr(registry, "_FAMILIES", dict(registry.families()))
    monkeypatch.setattr(callbacks, "_REGISTERED", [])
    sys.path.insert(0, str(tmp_path / "plug"))
    try:
        create_or_load(load_study(study), open_storage(url), n_trials=None, dataset_fingerprint="")
    finally:
        sys.path.remove(str(tmp_path / "plug"))
        sys.modules.pop("lab_plugin", None)
    options = WorkerOptions(study_name="plugged", storage_url=url, device="cpu", threads=1)
    proc = subprocess.run([sys.executable, "-m", "hpo.workers"], env={**bare, **worker_environment(options)},
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "plugins[0]: module lab_plugin cannot be imported" in lines[0] and "PYTHONPATH" in lines[0]
    proc = subprocess.run(HPO + ["worker", "--study", "plugged", "--storage", url, "--devices", "cpu"], env=bare,
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 2 and "module lab_plugin cannot be imported" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert optuna.load_study(study_name="plugged", storage=url).get_trials() == []  # stopped before its first trial
