"""The CLI driven in-process (CliRunner) and as real processes on real storages."""

from __future__ import annotations

import subprocess

import optuna
import pytest
from optuna.trial import TrialState
from typer.testing import CliRunner

from hpo.cli import app
from hpo.storage import open_storage

import sys

HPO = [sys.executable, "-m", "hpo"]

runner = CliRunner()


def invoke(*args, env=None):
    return runner.invoke(app, list(args), env=env)


def _counts(url: str, name: str) -> dict[str, int]:
    study = optuna.load_study(study_name=name, storage=open_storage(url))
    counts = {s.name: 0 for s in TrialState}
    for trial in study.trials:
        counts[trial.state.name] += 1
    return counts


# ---- bad input: one sentence, exit code 2, no traceback --------------------------------------


BASE = {
    "name": "bad",
    "dataset": "{kind: minicifar, n_classes: 4, R: 5}",
    "space": "{params: {model: cnn, lr: {type: float, low: 1.0e-3, high: 0.1, log: true}}}",
}


@pytest.mark.parametrize(
    "override,fragment",
    [
        ({"epochs": "ten"}, "epochs"),
        ({"sampler": "simulated-annealing"}, "sampler"),
        ({"pruner": "{name: median}", "objectives": "[val_accuracy, param_count]"}, "pruner"),
        ({"dataset": "{kind: minicifar, n_classes: 11}"}, "n_classes"),
        ({"space": "{params: {model: transformer}}"}, "model"),
        ({"space": "{params: {model: cnn, lr: {type: float, low: 0, high: 1, log: true}}}"}, "lr.low"),
        ({"space": "{params: {model: cnn, lr: {type: float, low: 2, high: 1}}}"}, "lr"),
        ({"unknown_key": "1"}, "unknown_key"),
        ({"epochs": "[\n"}, "bad.yaml"),
    ],
)
def test_bad_study_files_exit_2_with_one_sentence(tmp_path, override, fragment):
    path = tmp_path / "bad.yaml"
    path.write_text("".join(f"{k}: {v}\n" for k, v in {**BASE, **override}.items()))
    assert invoke("validate", str(tmp_path / "ok.yaml")).exit_code == 2  # missing file: exit 2 as well
    result = invoke("validate", str(path))
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert "bad.yaml" in result.output and fragment in result.output, result.output
    assert len(result.output.strip().splitlines()) == 1


def test_base_of_the_bad_cases_is_valid(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("".join(f"{k}: {v}\n" for k, v in BASE.items()))
    result = invoke("validate", str(path))
    assert result.exit_code == 0, result.output


def test_validate_shipped_study():
    result = invoke("validate", "cpu-quick")
    assert result.exit_code == 0 and "cpu-quick.yaml: ok" in result.output


def test_unknown_study_lists_available(tmp_path):
    result = invoke("validate", "no-such-study")
    assert result.exit_code == 2 and "cpu-quick" in result.output


def test_missing_device_is_refused(tmp_path, study_file):
    path = study_file(tmp_path, "dev")
    result = invoke("run", "--study", str(path), "--devices", "cuda:3", "--storage", f"sqlite:///{tmp_path}/x.db")
    assert result.exit_code == 2 and "cuda:3" in result.output and "Traceback" not in result.output


def test_missing_data_is_one_sentence(tmp_path, study_file):
    path = study_file(tmp_path, "nodata")
    result = invoke("run", "--study", str(path), "--data-dir", str(tmp_path / "empty"), "--storage", f"sqlite:///{tmp_path}/x.db")
    assert result.exit_code == 2 and "empty" in result.output and "Traceback" not in result.output


def test_models_lists_reference_variants():
    result = invoke("models", "--classes", "10")
    assert result.exit_code == 0
    lines = {line.split()[0]: line for line in result.output.splitlines() if line.startswith("  ") and len(line.split()) == 3}
    assert lines["resnet18"].split()[1] == "11,173,962"
    assert lines["densenet_cifar"].split()[1] == "1,000,618"
    for name in ("preact_resnet18", "densenet121", "vgg16"):
        assert name in lines


def test_train_prints_epochs_and_resumes(fake_cifar, tmp_path):
    ckpt = tmp_path / "c.pt"
    args = ["train", "--model", "cnn", "--depth", "2", "--width", "8", "--dataset", "minicifar", "--R", "1",
            "--data-dir", str(fake_cifar), "--epochs", "2", "--set", "lr=0.05", "--set", "batch_norm=true",
            "--device", "cpu", "--checkpoint", str(ckpt)]
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    assert "epoch   1" in result.output and "epoch   2" in result.output and ckpt.exists()
    result = invoke("train", "--model", "cnn", "--set", "bogus=1", "--data-dir", str(fake_cifar))
    assert result.exit_code == 2 and "bogus" in result.output


# ---- real worker processes ---------------------------------------------------------------------


def _run(args, env, timeout=240, cwd=None):
    # cwd: logs/ and the default storage land in the test's folder, never in the repository.
    proc = subprocess.run(HPO + args, env=env, capture_output=True, text=True, timeout=timeout, cwd=cwd or env.get("HPO_TEST_CWD"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


@pytest.mark.slow
def test_two_workers_reach_exactly_n_then_a_late_worker_joins(tmp_path, worker_env, unique_name, study_file):
    url = f"sqlite:///{tmp_path}/study.db"
    path = study_file(tmp_path, unique_name, n_trials=5)
    _run(["run", "--study", str(path), "--n-trials", "5", "--workers", "2", "--devices", "cpu", "--storage", url,
          "--log-dir", str(tmp_path / "logs")], worker_env)
    counts = _counts(url, unique_name)
    assert counts["COMPLETE"] + counts["PRUNED"] == 5
    assert counts["RUNNING"] == counts["WAITING"] == 0
    assert (tmp_path / "logs" / unique_name / "worker-0.log").exists()
    # A later worker with a bigger budget joins the stored study and adds exactly the difference.
    _run(["worker", "--study", unique_name, "--n-trials", "7", "--devices", "cpu", "--storage", url], worker_env)
    counts = _counts(url, unique_name)
    assert counts["COMPLETE"] + counts["PRUNED"] == 7 and counts["RUNNING"] == 0
    status = _run(["status", unique_name, "--storage", url], worker_env)
    assert "7" in status.stdout and "complete" in status.stdout


@pytest.mark.slow
@pytest.mark.postgres
def test_concurrent_workers_on_postgresql(tmp_path, worker_env, postgres_url, unique_name, study_file):
    path = study_file(tmp_path, unique_name, n_trials=6)
    env = {**worker_env, "HPO_STORAGE": postgres_url}
    _run(["run", "--study", str(path), "--workers", "2", "--devices", "cpu"], env)
    # A second, independent worker started after the first run finished finds nothing left to do...
    _run(["worker", "--study", unique_name, "--devices", "cpu"], env)
    counts = _counts(postgres_url, unique_name)
    assert counts["COMPLETE"] + counts["PRUNED"] == 6 and counts["RUNNING"] == 0
    # ...and two workers started at the same time on a raised budget end at exactly 9.
    procs = [subprocess.Popen(HPO + ["worker", "--study", unique_name, "--n-trials", "9", "--devices", "cpu"], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=tmp_path) for _ in range(2)]
    for p in procs:
        out, _ = p.communicate(timeout=240)
        assert p.returncode == 0, out
    counts = _counts(postgres_url, unique_name)
    assert counts["COMPLETE"] + counts["PRUNED"] == 9 and counts["RUNNING"] == 0
    optuna.delete_study(study_name=unique_name, storage=open_storage(postgres_url))


@pytest.mark.slow
def test_multi_objective_pruning_stops_trials(tmp_path, worker_env, unique_name, study_file):
    url = f"sqlite:///{tmp_path}/mo.db"
    path = study_file(tmp_path, unique_name, n_trials=10, epochs=3, sampler="random",
                       objectives="[val_accuracy, param_count, train_seconds]",
                       pruner="{name: mo_asha, args: {min_resource: 1, reduction_factor: 2}}")
    _run(["run", "--study", str(path), "--devices", "cpu", "--storage", url], worker_env)
    study = optuna.load_study(study_name=unique_name, storage=open_storage(url))
    states = [t.state for t in study.trials]
    assert states.count(TrialState.PRUNED) >= 1, [t.user_attrs.get("history") for t in study.trials]
    assert states.count(TrialState.COMPLETE) + states.count(TrialState.PRUNED) == 10
    assert study.metric_names == ["val_accuracy", "param_count", "train_seconds"]
    pruned = [t for t in study.trials if t.state == TrialState.PRUNED]
    assert all(t.user_attrs["stop_reason"] == "pruned" for t in pruned)
    assert all(len(t.user_attrs["history"]) < 3 for t in pruned)


@pytest.mark.slow
def test_changed_definition_is_refused(tmp_path, worker_env, unique_name, study_file):
    url = f"sqlite:///{tmp_path}/c.db"
    path = study_file(tmp_path, unique_name, n_trials=1, epochs=1)
    _run(["run", "--study", str(path), "--devices", "cpu", "--storage", url], worker_env)
    study_file(tmp_path, unique_name, n_trials=1, epochs=2)
    proc = subprocess.run(HPO + ["run", "--study", str(path), "--devices", "cpu", "--storage", url], env=worker_env,
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 2 and "epochs" in proc.stderr and "--allow-changed-definition" in proc.stderr
    assert "Traceback" not in proc.stderr
