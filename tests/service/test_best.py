"""``hpo best``: a real small study run by real workers, exported, then loaded back by ``load.py`` in a
fresh Python process that classifies an image and re-measures the validation accuracy on CPU."""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import optuna
import pytest
import torch
from optuna.trial import TrialState
from typer.testing import CliRunner

import hpo
from hpo.analysis.refits import refit_study_name, stats_from_trials
from hpo.best import BY_BEST, BY_REFIT_MEAN, choose
from hpo.cli import app
from hpo.errors import HpoError
from hpo.trials import SYS_REFIT_OF, SYS_REFIT_SEED, TrialRecord, record_attrs

HPO = [sys.executable, "-m", "hpo"]
runner = CliRunner()

SPACE = """\
params:
  model: cnn
  cnn.channels: {choices: [[4], [8]]}
  cnn.kernel_size: 3
  lr: {type: float, low: 1.0e-3, high: 0.1, log: true}
  optimizer: sgd
  batch_size: 32
  augment: none
"""


def _study_file(folder: Path, name: str) -> Path:
    (folder / "tiny.yaml").write_text(SPACE)
    path = folder / f"{name}.yaml"
    path.write_text(textwrap.dedent(f"""\
        name: {name}
        description: tiny study for hpo best
        dataset: {{kind: minicifar, n_classes: 4, R: 1, train_size: 0.75}}
        space: tiny.yaml
        objectives: [val_accuracy]
        sampler: random
        pruner: none
        epochs: 2
        n_trials: 3
        seed: 0
        """))
    return path


def _run(args: list[str], env: dict, cwd: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    proc = subprocess.run(args, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


@pytest.fixture(scope="module")
def searched(fake_cifar, tmp_path_factory) -> dict:
    """A study of 3 tiny CNNs, 2 epochs each, run by a real worker process on SQLite."""
    root = tmp_path_factory.mktemp("best")
    env = {**os.environ, "HPO_OFFLINE": "1", "HPO_DATA_DIR": str(fake_cifar), "HPO_ARTIFACTS": str(root / "artifacts"),
           "HPO_HEARTBEAT_SECONDS": "1", "OMP_NUM_THREADS": "1",
           "PYTHONPATH": str(Path(__file__).resolve().parents[2]) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    url = f"sqlite:///{root}/study.db"
    _run(HPO + ["run", "--study", str(_study_file(root, "tb")), "--devices", "cpu", "--workers", "1", "--storage", url],
         env, root)
    return {"root": root, "env": env, "url": url, "db": root / "study.db", "data": fake_cifar,
            "artifacts": root / "artifacts"}


def _copy(searched: dict, folder: Path, *, artifacts: bool = False) -> tuple[str, Path]:
    """A copy of the study's database (and of its artifact store), for tests that change them."""
    folder.mkdir(parents=True, exist_ok=True)
    source, copy = sqlite3.connect(searched["db"]), sqlite3.connect(folder / "study.db")
    with copy:
        source.backup(copy)
    source.close(), copy.close()
    store = searched["artifacts"]
    if artifacts:
        store = folder / "artifacts"
        shutil.copytree(searched["artifacts"], store)
    return f"sqlite:///{folder}/study.db", store


def _best(url: str, searched: dict, out: Path, *extra: str, artifacts: Path | None = None):
    return runner.invoke(app, ["best", "--study", "tb", "--out", str(out), "--storage", url, "--data-dir",
                               str(searched["data"]), "--artifacts", str(artifacts or searched["artifacts"]), *extra])


def _validation_line(stdout: str) -> tuple[float, int]:
    match = re.search(r"validation accuracy ([0-9.]+) on (\d+) images", stdout)
    assert match, stdout
    return float(match.group(1)), int(match.group(2))


def _reproduces(accuracy: float, n: int, stored: float) -> bool:
    """Equal within 1e-6, or within one image of the n."""
    return math.isclose(accuracy, stored, abs_tol=1e-6) or abs(accuracy - stored) * n <= 1 + 1e-9


@pytest.mark.slow
def test_best_writes_a_folder_that_load_py_reloads_in_a_fresh_process(searched, tmp_path):
    out = tmp_path / "handin"
    result = _best(searched["url"], searched, out)
    assert result.exit_code == 0, result.output
    study = optuna.load_study(study_name="tb", storage=searched["url"])
    config = json.loads((out / "config.json").read_text())
    metrics = json.loads((out / "metrics.json").read_text())
    # Single objective, no refits: the most accurate trial, equal accuracies to the cheaper one.
    complete = [t for t in study.trials if t.state == TrialState.COMPLETE]
    top = max(TrialRecord.of(t).val_accuracy for t in complete)
    assert TrialRecord.of(study.trials[config["trial"]]).val_accuracy == top and config["chosen_by"] == BY_BEST
    stored = TrialRecord.of(study.trials[config["trial"]])
    assert metrics["val_accuracy"] == stored.val_accuracy and metrics["n_val_images"] == stored.n_val_images
    assert metrics["val_accuracy_lower"] <= stored.val_accuracy <= metrics["val_accuracy_upper"]
    assert metrics["val_accuracy_lower"] < metrics["val_accuracy_upper"]  # the Wilson interval of n images
    assert metrics["param_count"] == stored.param_count and metrics["test_accuracy"] is None
    assert config["classes"] == ["airplane", "automobile", "bird", "cat"] and config["image_size"] == 32
    assert config["family"] == "cnn" and config["train"]["lr"] == study.trials[config["trial"]].params["lr"]
    state = torch.load(out / "model.pt", weights_only=True)  # a plain state_dict
    assert all(isinstance(v, torch.Tensor) for v in state.values())

    # A validation image as a PNG; the prediction load.py prints must be the network's on that image.
    from PIL import Image

    from hpo.data import DatasetConfig, load_dataset

    dataset = load_dataset(DatasetConfig(kind="minicifar", n_classes=4, R=1, train_size=0.75), searched["data"],
                           split_seed=0, download=False)
    image = tmp_path / "image.png"
    Image.fromarray(dataset.val.images[0].permute(1, 2, 0).numpy()).save(image)
    exported = hpo.load_model(out)
    assert not exported.model.training
    mean = torch.tensor(config["normalization"]["mean"]).view(1, 3, 1, 1)
    std = torch.tensor(config["normalization"]["std"]).view(1, 3, 1, 1)
    with torch.no_grad():
        probabilities = torch.softmax(exported.model((dataset.val.images[:1].float() / 255 - mean) / std), dim=1)[0]
    expected = int(probabilities.argmax())

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    proc = _run([sys.executable, str(out / "load.py"), str(image), "--validate", str(searched["data"])],
                searched["env"], elsewhere)
    label, probability = re.search(rf"{re.escape(str(image))}: (\w+) \(([0-9.]+)\)", proc.stdout).groups()
    assert label == config["classes"][expected]
    assert float(probability) == pytest.approx(float(probabilities[expected]), abs=1e-4)
    accuracy, n = _validation_line(proc.stdout)
    assert n == stored.n_val_images and _reproduces(accuracy, n, stored.val_accuracy), proc.stdout


@pytest.mark.slow
def test_with_refits_the_best_refit_mean_is_exported_with_the_run_nearest_it(searched, tmp_path):
    url, _store = _copy(searched, tmp_path / "copy")
    _run(HPO + ["refit", "--study", "tb", "--top", "2", "--seeds", "2", "--devices", "cpu", "--workers", "1",
                "--storage", url], searched["env"], tmp_path)
    out = tmp_path / "handin"
    result = _best(url, searched, out)
    assert result.exit_code == 0, result.output
    config = json.loads((out / "config.json").read_text())
    metrics = json.loads((out / "metrics.json").read_text())

    # The expectation, straight from the refit study's trials.
    refit = optuna.load_study(study_name=refit_study_name("tb"), storage=url)
    by_config: dict[int, list] = {}
    for t in refit.trials:
        assert t.state == TrialState.COMPLETE
        by_config.setdefault(int(t.system_attrs[SYS_REFIT_OF]), []).append(t)
    means = {n: sum(TrialRecord.of(t).val_accuracy for t in runs) / len(runs) for n, runs in by_config.items()}
    chosen = max(means, key=lambda n: (means[n], -n))
    runs = by_config[chosen]
    nearest = min(runs, key=lambda t: (round(abs(TrialRecord.of(t).val_accuracy - means[chosen]), 9),
                                       t.system_attrs[SYS_REFIT_SEED]))
    assert config["trial"] == chosen and config["chosen_by"] == BY_REFIT_MEAN
    assert config["refit_run"] == {"study": "tb.refit", "number": nearest.number, "seed": nearest.system_attrs[SYS_REFIT_SEED]}
    assert config["train"]["seed"] == nearest.system_attrs[SYS_REFIT_SEED]
    assert metrics["val_accuracy"] == TrialRecord.of(nearest).val_accuracy
    assert metrics["refits"]["n"] == 2 and metrics["refits"]["val_accuracy_mean"] == pytest.approx(means[chosen])
    assert sorted(r["seed"] for r in metrics["refits"]["runs"]) == [1, 2]
    assert "closest to their mean" in metrics["weights_from"]

    proc = _run([sys.executable, str(out / "load.py"), "--validate", str(searched["data"])], searched["env"], tmp_path)
    accuracy, n = _validation_line(proc.stdout)
    assert _reproduces(accuracy, n, TrialRecord.of(nearest).val_accuracy), proc.stdout


@pytest.mark.slow
def test_bad_input_is_one_sentence_and_exit_2(searched, tmp_path):
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "notes.txt").write_text("mine")
    result = _best(searched["url"], searched, taken)
    assert result.exit_code == 2 and "--force" in result.output and (taken / "notes.txt").exists()
    result = _best(searched["url"], searched, tmp_path / "new", "--trial", "99")
    assert result.exit_code == 2 and "no trial 99" in result.output and not (tmp_path / "new").exists()
    result = runner.invoke(app, ["best", "--study", "nope", "--out", str(tmp_path / "x"), "--storage", searched["url"]])
    assert result.exit_code == 2 and "no study named 'nope'" in result.output
    result = _best(searched["url"], searched, tmp_path / "y", artifacts=tmp_path / "no-store")
    assert result.exit_code == 2 and "--artifacts" in result.output
    assert len(result.output.strip().splitlines()) == 1 and "Traceback" not in result.output


@pytest.mark.slow
def test_weights_removed_by_the_checkpoint_policy_name_the_fix(searched, tmp_path):
    from hpo.checkpoints import apply_policy
    from hpo.storage import open_artifact_store

    url, store = _copy(searched, tmp_path / "copy", artifacts=True)
    apply_policy(optuna.load_study(study_name="tb", storage=url), open_artifact_store(store), {"keep": "none"})
    result = _best(url, searched, tmp_path / "out", artifacts=store)
    assert result.exit_code == 2, result.output
    assert "checkpoint policy" in result.output and "hpo refit --study tb --trials" in result.output
    assert "keep: all" in result.output and len(result.output.strip().splitlines()) == 1


def _search_study(values: list[float]) -> optuna.Study:
    study = optuna.create_study(study_name="s", storage=optuna.storages.InMemoryStorage(), direction="maximize")
    dist = optuna.distributions.FloatDistribution(1e-3, 1.0, log=True)
    for i, value in enumerate(values):
        study.add_trial(optuna.trial.create_trial(
            state=TrialState.COMPLETE, value=value, params={"lr": 0.01 * (i + 1)}, distributions={"lr": dist},
            user_attrs=record_attrs(val_accuracy=value, param_count=1000 * (3 - i), train_seconds=1.0)))
    return study


def _refits(study: optuna.Study, runs: dict[int, list[float]]):
    refit = optuna.create_study(study_name=refit_study_name(study.study_name), direction="maximize")  # never read back
    dist = optuna.distributions.FloatDistribution(1e-3, 1.0, log=True)
    for of, accuracies in runs.items():
        for seed, value in enumerate(accuracies, start=1):
            refit.add_trial(optuna.trial.create_trial(
                state=TrialState.COMPLETE, value=value, params=study.trials[of].params, distributions={"lr": dist},
                user_attrs=record_attrs(val_accuracy=value), system_attrs={SYS_REFIT_OF: of, SYS_REFIT_SEED: seed}))
    return stats_from_trials(refit.trials)


def test_refit_means_overrule_the_single_runs():
    # The search ranks trial 0 first (0.90); over three seeds each, trial 1 is better on average.
    study = _search_study([0.90, 0.85, 0.60])
    stats = _refits(study, {0: [0.80, 0.78, 0.82], 1: [0.86, 0.83, 0.84]})
    choice = choose(study, refits=stats)
    assert (choice.trial, choice.rule) == (1, BY_REFIT_MEAN)
    assert choice.run.seed == 3 and choice.run.val_accuracy == 0.84  # the seed nearest the mean 0.8433
    assert choose(study, trial=0, refits=stats).run is None  # --trial: the search trial's own weights first


def test_without_refits_equal_accuracies_go_to_the_cheaper_trial():
    study = _search_study([0.70, 0.75, 0.75])  # trial 2 ties trial 1 with fewer parameters
    assert (choose(study, refits={}).trial, choose(study, refits={}).rule) == (2, BY_BEST)
    with pytest.raises(HpoError, match="no trial 5"):
        choose(study, trial=5, refits={})


def test_a_multi_objective_study_exports_its_knee():
    from hpo.analysis.report import collect
    from hpo.best import BY_KNEE

    study = optuna.create_study(study_name="mo", storage=optuna.storages.InMemoryStorage(),
                                directions=["maximize", "minimize"])
    study.set_metric_names(["val_accuracy", "param_count"])
    dist = optuna.distributions.FloatDistribution(1e-3, 1.0, log=True)
    for i, (accuracy, params) in enumerate([(0.9, 1e6), (0.85, 1e4), (0.5, 1e3)]):
        study.add_trial(optuna.trial.create_trial(
            state=TrialState.COMPLETE, values=[accuracy, params], params={"lr": 0.01 * (i + 1)}, distributions={"lr": dist},
            user_attrs=record_attrs(val_accuracy=accuracy, param_count=int(params), train_seconds=1.0)))
    choice = choose(study, refits={})
    assert choice.rule == BY_KNEE and choice.trial == collect(study).knee_trial == 1
