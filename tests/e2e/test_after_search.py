"""After the search, on a real study: `hpo pareto`, `hpo evaluate`, `hpo export --format csv`, `hpo reproduce`."""

from __future__ import annotations

import csv
import json
import re
import shutil
import subprocess

import numpy as np
import pytest
from e2ekit import EPOCHS, HPO, N_CLASSES, TEST_PER_CLASS, E2EStudy
from optuna._hypervolume import compute_hypervolume
from optuna.trial import TrialState
from typer.testing import CliRunner

from hpo.analysis.intervals import wilson_interval
from hpo.cli import app

pytestmark = pytest.mark.slow

runner = CliRunner()


def hpo(*args: str) -> str:
    """Run one `hpo` command in-process and return its output (exit code 0 asserted)."""
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def test_pareto_json_agrees_with_optuna(e2e_study: E2EStudy):
    study = e2e_study.load()
    assert study.metric_names == ["val_accuracy", "param_count", "train_seconds"]
    report = json.loads(hpo("pareto", "--study", e2e_study.name, "--storage", e2e_study.url, "--format", "json"))
    assert report["study"] == e2e_study.name
    assert report["axes"] == ["val_accuracy", "param_count", "train_seconds"]

    best = {t.number: t for t in study.best_trials}
    numbers = [row["trial"] for row in report["front"]]
    assert sorted(numbers) == sorted(best)
    assert numbers == sorted(best, key=lambda n: (-best[n].values[0], n))  # best accuracy first
    for row in report["front"]:
        assert [row["val_accuracy"], row["param_count"], row["train_seconds"]] == pytest.approx(best[row["trial"]].values)
        assert row["knee"] == (row["trial"] == report["knee_trial"])
        # The interval of each accuracy from the validation images the trial stored.
        n_val = best[row["trial"]].user_attrs["n_val_images"]
        assert (row["val_accuracy_lower"], row["val_accuracy_upper"]) == pytest.approx(
            wilson_interval(row["val_accuracy"], n_val), rel=1e-12)
    by_trial = {row["trial"]: row for row in report["front"]}
    knee_interval = (by_trial[report["knee_trial"]]["val_accuracy_lower"], by_trial[report["knee_trial"]]["val_accuracy_upper"])
    for number, row in by_trial.items():
        overlaps = row["val_accuracy_lower"] <= knee_interval[1] and knee_interval[0] <= row["val_accuracy_upper"]
        assert row["ties_knee"] == (overlaps and number != report["knee_trial"])

    # The documented normalisation, computed here by hand: 1 - accuracy, log10(params) / log10(1e8),
    # seconds / 600. The hypervolume is Optuna's over the unit box; the knee is nearest the ideal point
    # among the front trials left after taking them cheapest first (parameters, seconds, then the more
    # accurate, then the lower number) and dropping each whose accuracy interval overlaps that of a
    # trial kept before it that is no worse in parameters and seconds (the README's knee rule).
    values = np.array([best[n].values for n in numbers])
    losses = np.column_stack([1 - values[:, 0], np.log10(values[:, 1]) / 8, values[:, 2] / 600])
    assert report["hypervolume"] == pytest.approx(compute_hypervolume(losses, np.ones(3)), rel=1e-9)

    def ties(i: int, j: int) -> bool:
        a, b = by_trial[numbers[i]], by_trial[numbers[j]]
        return a["val_accuracy_lower"] <= b["val_accuracy_upper"] and b["val_accuracy_lower"] <= a["val_accuracy_upper"]

    kept: list[int] = []
    for i in sorted(range(len(numbers)), key=lambda i: (values[i, 1], values[i, 2], -values[i, 0], numbers[i])):
        if not any(ties(i, j) and values[j, 1] <= values[i, 1] and values[j, 2] <= values[i, 2] for j in kept):
            kept.append(i)
    ideal = losses[kept].min(axis=0)
    assert report["knee_trial"] == numbers[kept[int(np.argmin(np.linalg.norm(losses[kept] - ideal, axis=1)))]]


def test_evaluate_pareto_stores_test_accuracy_for_the_csv(e2e_study: E2EStudy, tmp_path):
    # Evaluate a copy, so the other tests see the study as `hpo run` left it.
    copy = tmp_path / "study.db"
    shutil.copyfile(e2e_study.db_path, copy)
    url = f"sqlite:///{copy}"
    out = hpo("evaluate", "--study", e2e_study.name, "--pareto", "--storage", url, "--data-dir", str(e2e_study.data_dir),
              "--artifacts", str(e2e_study.artifacts), "--device", "cpu")
    # Each accuracy with its 95% interval, in percent: "val accuracy 70.00% [52.1, 83.3]  test accuracy ...".
    found = list(re.finditer(r"trial\s+(\d+)\s+val accuracy (\S+)% \[(\S+), (\S+)\]\s+"
                             r"test accuracy (\S+)% \[(\S+), (\S+)\]", out))
    values = {int(m[1]): [float(m[i]) / 100 for i in range(2, 8)] for m in found}
    printed = {n: (v[0], v[3]) for n, v in values.items()}
    intervals = {n: ((v[1], v[2]), (v[4], v[5])) for n, v in values.items()}
    study = e2e_study.load(url)
    best = {t.number: t for t in study.best_trials}
    assert sorted(printed) == sorted(best), out
    n_test = N_CLASSES * TEST_PER_CLASS
    n_val = best[min(best)].user_attrs["n_val_images"]
    assert n_val == N_CLASSES * 30 // 4  # 30 training images per class, a quarter validate
    for number, (val, test) in printed.items():
        assert val == pytest.approx(best[number].values[0], abs=6e-5)  # printed to 0.01 point
        assert 0.0 <= test <= 1.0
        assert test * n_test == pytest.approx(round(test * n_test), abs=6e-5 * n_test)  # k of the 40 test images
        (val_low, val_high), (test_low, test_high) = intervals[number]
        assert (val_low, val_high) == pytest.approx(wilson_interval(best[number].values[0], n_val), abs=6e-4)
        assert (test_low, test_high) == pytest.approx(wilson_interval(test, n_test), abs=6e-4)
        assert study.user_attrs[f"test_images:{number}"] == n_test

    front_csv = tmp_path / "front.csv"
    hpo("export", "--study", e2e_study.name, "--storage", url, "--format", "csv", "--out", str(front_csv))
    with open(front_csv, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert "test_accuracy" in rows[0]
    assert {int(row["trial"]) for row in rows} == set(printed)
    for row in rows:
        assert float(row["test_accuracy"]) == pytest.approx(printed[int(row["trial"])][1], abs=6e-5)
        low, high = intervals[int(row["trial"])][1]  # printed to 0.1 point
        assert (float(row["test_accuracy_lower"]), float(row["test_accuracy_upper"])) == pytest.approx((low, high), abs=6e-4)
    # The original study is untouched: its front table has no test column.
    original = tmp_path / "original.csv"
    hpo("export", "--study", e2e_study.name, "--storage", e2e_study.url, "--format", "csv", "--out", str(original))
    assert "test_accuracy" not in original.read_text().splitlines()[0]


def test_reproduce_matches_the_stored_trial_on_cpu(e2e_study: E2EStudy):
    study = e2e_study.load()
    complete = [t for t in study.trials if t.state == TrialState.COMPLETE]
    # A trial whose accuracy is not pinned at 0 or 1 says most about reproducing the training.
    trial = min(complete, key=lambda t: (abs(t.user_attrs["val_accuracy"] - 0.5), t.number))
    proc = subprocess.run(
        HPO + ["reproduce", "--study", e2e_study.name, "--trial", str(trial.number), "--storage", e2e_study.url,
               "--device", "cpu"],
        env=e2e_study.env, cwd=e2e_study.folder, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    epochs = [float(m[1]) / 100 for m in re.finditer(r"^epoch\s+\d+\s+val accuracy (\S+)%", proc.stdout, re.M)]
    stored = [record["val_accuracy"] for record in trial.user_attrs["history"]]
    assert len(epochs) == len(stored) == EPOCHS
    assert epochs == pytest.approx(stored, abs=6e-5)  # printed to 0.01 point
    assert f"trial {trial.number}: val accuracy" in proc.stdout
    assert "(difference +0.00 points)" in proc.stdout, proc.stdout
    # Training time compared like for like: train_seconds, the sum of the epochs' seconds, on both sides.
    seconds = [float(m[1]) for m in re.finditer(r"^epoch\s+\d+\s+val accuracy \S+\s+\((\S+) s\)", proc.stdout, re.M)]
    now, stored_seconds = re.search(r"train_seconds (\S+) s now, (\S+) s stored", proc.stdout).groups()
    assert float(now) == pytest.approx(sum(seconds), abs=0.05 * (len(seconds) + 1))
    assert float(stored_seconds) == pytest.approx(trial.user_attrs["train_seconds"], abs=0.05)
    assert trial.user_attrs["train_seconds"] == pytest.approx(sum(e["epoch_seconds"] for e in trial.user_attrs["history"]))
