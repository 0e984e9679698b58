"""Progress people can see: the live display's running trials (epoch, last accuracy), one line per finished
trial without a terminal, progress bars for long steps, and a real `hpo run` through pipes that stays short."""

from __future__ import annotations

import io
import subprocess
import sys

import numpy as np
import optuna
import pytest
from optuna.trial import TrialState
from PIL import Image
from rich.console import Console

from hpo import monitor, progress
from hpo.trials import SYS_WORKER

HPO = [sys.executable, "-m", "hpo"]
EPOCHS = 4


def _history(accuracies: list[float]) -> list[dict]:
    return [{"epoch": i + 1, "train_loss": 1.0, "train_accuracy": a, "val_loss": 1.0, "val_accuracy": a,
             "epoch_seconds": 1.0, "images_per_second": 100.0, "lr": 0.1, "elapsed_seconds": i + 1.0}
            for i, a in enumerate(accuracies)]


def _study(tmp_path) -> optuna.Study:
    study = optuna.create_study(study_name="live", storage=f"sqlite:///{tmp_path / 'live.db'}")
    study.set_user_attr("definition", {"epochs": EPOCHS})
    study.set_user_attr("n_trials", 3)
    return study


def _running(study: optuna.Study, worker: str, accuracies: list[float]) -> optuna.Trial:
    trial = study.ask()
    study._storage.set_trial_system_attr(trial._trial_id, SYS_WORKER, worker)
    trial.set_user_attr("history", _history(accuracies))
    return trial


def test_running_trials_show_their_worker_epoch_and_last_accuracy(tmp_path):
    study = _study(tmp_path)
    _running(study, "host-1-0", [0.40, 0.6125])
    _running(study, "host-1-1", [])
    snapshot = monitor.progress(study)
    assert snapshot.running == [
        {"number": 0, "worker": "host-1-0", "epoch": 2, "epochs": EPOCHS, "accuracy": 0.6125},
        {"number": 1, "worker": "host-1-1", "epoch": 0, "epochs": EPOCHS, "accuracy": None},
    ]
    console = Console(width=200, record=True, file=io.StringIO())
    console.print(monitor.render(snapshot))
    text = console.export_text()
    assert "running trials" in text and "2/4" in text and "61.25%" in text and "host-1-0" in text
    assert monitor.running_text(snapshot.running[0]) == "trial 0: epoch 2/4, last 61.25%"


def test_a_multi_objective_summary_names_the_fronts_most_accurate_trial_not_its_oldest(tmp_path):
    study = optuna.create_study(study_name="front", storage=f"sqlite:///{tmp_path / 'front.db'}",
                                directions=["maximize", "minimize"])
    study.set_metric_names(["val_accuracy", "param_count"])
    for accuracy, params in [(0.60, 1_000), (0.50, 5_000), (0.73, 20_000), (0.65, 8_000)]:
        study.add_trial(optuna.trial.create_trial(values=[accuracy, params]))
    snapshot = monitor.progress(study)
    assert snapshot.front_size == 3  # trial 1 (50%, 5,000) is dominated by trial 0
    assert [b["number"] for b in snapshot.best] == [2, 3, 0]  # the most accurate first
    line = monitor.summary_line(snapshot)
    assert "front of 3, most accurate: trial 2 val_accuracy=73.00%, param_count=20,000" in line and " best " not in line
    console = Console(width=200, record=True)
    console.print(monitor.render(snapshot))
    assert "the front (most accurate first)" in console.export_text()
    # One objective keeps its one best trial.
    single = optuna.create_study(study_name="one", storage=f"sqlite:///{tmp_path / 'front.db'}", direction="maximize")
    single.set_metric_names(["val_accuracy"])
    for accuracy in (0.6, 0.7):
        single.add_trial(optuna.trial.create_trial(value=accuracy))
    assert " best val_accuracy=70.00% (trial 1)" in monitor.summary_line(monitor.progress(single))


def test_a_trial_created_past_n_reads_as_budget_not_as_a_fault(tmp_path):
    from hpo.trials import StopReason

    study = optuna.create_study(study_name="raced", storage=f"sqlite:///{tmp_path / 'raced.db'}")
    study.set_user_attr("n_trials", 1)
    study.add_trial(optuna.trial.create_trial(value=0.7))
    study.add_trial(optuna.trial.create_trial(state=TrialState.FAIL, user_attrs={"stop_reason": StopReason.BUDGET.value}))
    snapshot = monitor.progress(study)
    assert "failed 1 (1 budget: past N, never trained)" in monitor.summary_line(snapshot)
    console = Console(width=200, record=True, force_terminal=True)
    console.print(monitor.render(snapshot))
    assert "\x1b[31mfailed" not in console.export_text(styles=True)  # not red: nothing failed
    study.add_trial(optuna.trial.create_trial(state=TrialState.FAIL, user_attrs={"stop_reason": StopReason.OOM.value}))
    console = Console(width=200, record=True, force_terminal=True)
    console.print(monitor.render(monitor.progress(study)))
    assert "failed 2 (1 budget: past N, never trained)" in console.export_text(clear=False)
    assert "\x1b[31mfailed" in console.export_text(styles=True)  # red once a trial really failed


def test_without_a_terminal_one_line_per_finished_trial_and_a_still_running_line_a_minute(tmp_path, monkeypatch):
    study = _study(tmp_path)
    out = io.StringIO()
    display = monitor.LiveDisplay(study, 0.0, 0, stream=out, interactive=False)
    monkeypatch.setattr(display, "REDRAW_SECONDS", 0.0)
    first = _running(study, "w-0", [0.5])
    with display:
        for _ in range(20):  # many ticks, nothing new: nothing printed
            display()
        assert out.getvalue() == ""
        study.tell(first, 0.55)
        second = _running(study, "w-0", [0.3, 0.45])
        for _ in range(20):
            display()
        assert out.getvalue().splitlines() == ["trial 0 complete: value=55.00% (1 epoch)"]
        display.last_line_time -= display.STILL_RUNNING_SECONDS  # a minute without news
        display()
        display()
        still = out.getvalue().splitlines()[1:]
        assert len(still) == 1 and still[0].startswith("still running: trial 1: epoch 2/4, last 45.00% (live: 1/3")
        study.tell(second, state=TrialState.PRUNED)
        display.last_time = float("inf")  # the final tick falls inside the redraw limit: __exit__ still reports it
    lines = out.getvalue().splitlines()
    assert lines[-1].startswith("trial 1 pruned") and len(lines) == 3


def test_progress_bars_only_where_shown(tmp_path, monkeypatch):
    from hpo.data import folder

    for split, per_class in (("train", 6), ("test", 2)):
        for label in ("a", "b"):
            (tmp_path / split / label).mkdir(parents=True)
            for i in range(per_class):
                Image.fromarray(np.full((8, 8, 3), i * 20, np.uint8)).save(tmp_path / split / label / f"{i}.jpg")
    monkeypatch.setattr(folder, "_PARALLEL_MIN_IMAGES", 4)
    assert not progress.shown()
    plain = folder.read_image_folder(tmp_path, 8)
    console = Console(file=io.StringIO(), force_terminal=True, width=120)
    try:
        assert progress.show(console)
        shown = folder.read_image_folder(tmp_path, 8)
        assert list(progress.track([1, 2, 3], "evaluating trials")) == [1, 2, 3]
    finally:
        progress.hide()
    text = console.file.getvalue()
    assert "decoding 16 images" in text and "16/16" in text and "evaluating trials" in text and "3/3" in text
    assert all(np.array_equal(a, b) for a, b in zip(plain[1:], shown[1:]))  # the same images either way
    # Without a terminal (here: the test's captured stderr), show() declines.
    assert progress.show() is False and not progress.shown()


@pytest.mark.slow
def test_a_three_trial_run_through_pipes_writes_at_most_40_lines(tmp_path, worker_env, study_file, unique_name):
    path = study_file(tmp_path, unique_name, n_trials=3, epochs=2)
    url = f"sqlite:///{tmp_path / 'run.db'}"
    proc = subprocess.run(HPO + ["run", "--study", str(path), "--devices", "cpu", "--storage", url,
                                 "--log-dir", str(tmp_path / "logs")],
                          env=worker_env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines() + proc.stderr.splitlines()
    assert len(lines) <= 40, "\n".join(lines)
    finished = [line for line in proc.stderr.splitlines() if line.startswith("trial ")]
    assert len(finished) == 3, proc.stderr  # one line per trial
    assert "A new study created" not in proc.stderr  # Optuna's own log lines only with -v
    summary = [line for line in lines if line.startswith(f"{unique_name}: 3/3 finished")]
    assert len(summary) == 1, "\n".join(lines)  # the last status line, once
