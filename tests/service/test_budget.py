"""The study's time budget: its syntax, the interval arithmetic, the display rule, and a real run.

The real run starts ``hpo run --workers 2 --budget 20s`` on the fake CIFAR and polls ``hpo status``
while it runs: the study ends within one epoch of its deadline (plus a small constant for start-up
and the last tell), nothing stays RUNNING, and trials stopped at the deadline are PRUNED
``deadline`` with their history and value.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time

import optuna
import pytest
from optuna.trial import TrialState
from typer.testing import CliRunner

from hpo import budget as budgets
from hpo import study as studies
from hpo.cli import app
from hpo.config import StudyConfig, load_study
from hpo.errors import ConfigError
from hpo.monitor import Countdown
from hpo.storage import open_storage
from hpo.trials import StopReason, TrialRecord
from hpo.workers.deadline import WorkerDeadline, budget_clock
from hpo.workers.liveness import Heartbeat, alive_intervals

HPO = [sys.executable, "-m", "hpo"]


def _interval(worker, host, device, start, end):
    return budgets.AliveInterval(worker, host, device, start, end)


# ---- pure rules ------------------------------------------------------------------------------


@pytest.mark.parametrize("spans,expected", [
    ([], 0.0), ([(0, 10)], 10.0), ([(0, 10), (5, 15), (20, 25)], 20.0), ([(5, 15), (0, 10)], 15.0),
    ([(0, 10), (10, 12)], 12.0), ([(0, 10), (2, 3)], 10.0), ([(5, 1)], 0.0),
])
def test_union_of_intervals(spans, expected):
    assert budgets.union_seconds(spans) == expected


def test_device_time_counts_a_cpu_once_per_host_and_each_gpu_slot():
    intervals = [
        _interval("a-1", "a", "cpu", 0, 10), _interval("a-2", "a", "cpu", 5, 15),  # one CPU: union 15
        _interval("b-1", "b", "cpu", 0, 10),  # another host's CPU: +10
        _interval("a-3", "a", "cuda:0", 0, 10), _interval("a-4", "a", "cuda:0", 0, 10),  # two GPU slots: +20
    ]
    assert budgets.device_seconds(intervals) == 45.0
    assert budgets.wall_seconds(intervals) == 15.0
    assert budgets.spent_seconds(budgets.TimeBudget(100, device=True), intervals) == 45.0
    assert budgets.spent_seconds(budgets.TimeBudget(100), intervals) == 15.0
    assert budgets.spending_rate(budgets.TimeBudget(100, device=True), intervals) == 4.0


@pytest.mark.parametrize("text,seconds,device", [
    ("20s", 20, False), ("5m", 300, False), ("1.5h", 5400, False), ("2 hours", 7200, False), ("90 SEC", 90, False),
    ("3dh", 10800, True), ("3 device-hours", 10800, True), ("0.5dh", 1800, True),
])
def test_budget_syntax(text, seconds, device):
    assert budgets.parse_budget(text) == budgets.TimeBudget(seconds, device=device)


@pytest.mark.parametrize("text", ["5", "5x", "-1m", "0m", "", "m5", "1h30m", "five minutes"])
def test_bad_budget_is_one_sentence(text):
    with pytest.raises(ConfigError, match="--budget") as info:
        budgets.parse_budget(text)
    assert "90s, 5m, 2h" in str(info.value) and "\n" not in str(info.value)


def test_countdown_never_grows():
    countdown = Countdown()
    assert [countdown(v) for v in (None, 100, 120, 90, None, 95, 10)] == [None, 100, 100, 90, 90, 90, 10]


def test_stored_budget_round_trips():
    for budget in (budgets.TimeBudget(300), budgets.TimeBudget(7200, device=True)):
        assert budgets.stored_budget(budget.to_dict()) == budget
    assert budgets.stored_budget(None) is None and budgets.stored_budget({"weeks": 1}) is None
    assert budgets.TimeBudget(300).describe() == "5m00s" and budgets.TimeBudget(10800, True).describe() == "3 device-hours"


# ---- study files -----------------------------------------------------------------------------


def test_budget_in_a_study_file(tmp_path, study_file):
    plain = load_study(study_file(tmp_path, "timed"))
    path = study_file(tmp_path, "timed", extra="budget: {minutes: 5}\n")
    timed = load_study(path)
    assert timed.budget == budgets.TimeBudget(300) and timed.n_trials == 4
    # A budget, like N, is no change of definition; a study without one keeps its dict.
    assert timed.definition_hash() == plain.definition_hash()
    assert "budget" not in plain.to_dict() and timed.to_dict()["budget"] == {"seconds": 300.0}
    assert StudyConfig.from_dict(timed.to_dict()).budget == timed.budget
    # Without n_trials, a study with a budget has no limit N: it runs until its deadline.
    path.write_text("\n".join(l for l in path.read_text().splitlines() if not l.startswith("n_trials")) + "\n")
    only_budget = load_study(path)
    assert only_budget.n_trials is None and only_budget.definition_hash() == plain.definition_hash()
    assert StudyConfig.from_dict(only_budget.to_dict()).n_trials is None
    assert load_study(study_file(tmp_path, "timed", extra="budget: {device_hours: 3}\n")).budget.device


@pytest.mark.parametrize("value,fragment", [
    ("{minutes: -1}", "budget.minutes must be a number > 0"), ("{weeks: 1}", "unknown key budget.weeks"),
    ("5", "budget must be a mapping"), ("{minutes: 1, hours: 1}", "budget must be a mapping"),
    ("{hours: true}", "budget.hours must be a number > 0"),
])
def test_bad_budget_in_a_study_file_exits_2(tmp_path, study_file, value, fragment):
    path = study_file(tmp_path, "badbudget", extra=f"budget: {value}\n")
    result = CliRunner().invoke(app, ["validate", str(path)])
    assert result.exit_code == 2, result.output
    assert "badbudget.yaml" in result.output and fragment in result.output, result.output
    assert len(result.output.strip().splitlines()) == 1


@pytest.mark.parametrize("command", ["run", "worker"])
def test_bad_budget_flag_exits_2(tmp_path, study_file, command):
    study = str(study_file(tmp_path, "flag")) if command == "run" else "flag"
    result = CliRunner().invoke(app, [command, "--study", study, "--budget", "5x", "--storage", f"sqlite:///{tmp_path}/b.db"])
    assert result.exit_code == 2 and "--budget '5x' is not a duration" in result.output, result.output
    assert len(result.output.strip().splitlines()) == 1


# ---- the clock on a real storage ---------------------------------------------------------------


def test_alive_intervals_from_presence_records(monkeypatch):
    monkeypatch.setenv("HPO_HEARTBEAT_SECONDS", "1")
    study = optuna.create_study(storage=optuna.storages.InMemoryStorage())
    studies.set_limits(study, budget=budgets.TimeBudget(100))
    now = time.time()
    first = Heartbeat.for_study(study, "h-1", {"host": "h", "pid": 1, "device": "cpu", "device_name": "cpu"})
    first.started = now - 30
    first.beat()
    first.leave()  # closed: [now - 30, now]
    second = Heartbeat.for_study(study, "h-2", {"host": "h", "pid": 2, "device": "cpu", "device_name": "cpu"})
    second.started = now - 10
    second.beat()  # live: up to now
    every, live = alive_intervals(study, now=now + 2)  # within the stale limit (3 heartbeats of 1 s)
    assert sorted((i.worker, i.start, round(i.end - now)) for i in every) == [("h-1", now - 30, 0), ("h-2", now - 10, 2)]
    assert [i.worker for i in live] == ["h-2"]
    clock = budget_clock(study)
    assert 29.9 <= clock.spent <= 31 and clock.left == pytest.approx(100 - clock.spent)  # the union: h-2 overlaps h-1
    # A worker that stopped beating without leaving (killed) ends at its last beat once it is stale.
    every, live = alive_intervals(study, now=now + 60)
    assert not live and budgets.wall_seconds(every) == pytest.approx(30, abs=0.5)
    # The same worker id joining again keeps its earlier life.
    again = Heartbeat.for_study(study, "h-1", {"host": "h", "pid": 1, "device": "cpu", "device_name": "cpu"})
    assert again.closed == [[now - 30, pytest.approx(now, abs=1)]]


def test_worker_deadline_passes_when_the_budget_is_spent(monkeypatch):
    monkeypatch.setenv("HPO_HEARTBEAT_SECONDS", "1")
    study = optuna.create_study(storage=optuna.storages.InMemoryStorage())
    worker = Heartbeat.for_study(study, "w", {"host": "h", "pid": 1, "device": "cpu", "device_name": "cpu"})
    worker.started = time.time() - 50
    worker.beat()
    deadline = WorkerDeadline(study, timeout=None)
    assert deadline.reason() is None  # no time budget
    studies.set_limits(study, budget=budgets.TimeBudget(100))
    deadline.refresh()
    assert deadline.reason() is None
    studies.set_limits(study, budget=budgets.TimeBudget(40))  # changed like N: a later --budget
    deadline.refresh()
    assert deadline.reason() == StopReason.DEADLINE
    assert WorkerDeadline(optuna.create_study(), timeout=0).reason() == StopReason.INTERRUPTED


# ---- a real run: 2 worker processes, a 20 s budget ----------------------------------------------

BUDGET_SECONDS = 20.0
EPOCHS = 25  # a trial lasts 12-16 s: the first ones complete, the second ones are mid-way at the deadline
SLEEP_PER_EPOCH = "0.5"  # each epoch lasts at least this
STARTUP_SECONDS = 5.0  # the last tell, the presence write and process exit after the deadline


def _time_left(output: str) -> float | None:
    match = re.search(r"(\d+)m(\d\d)s of \S+ left", output)
    return int(match.group(1)) * 60 + int(match.group(2)) if match else None


def _deadline_instant(intervals, budget: float) -> float:
    """The unix time at which the union of the intervals reached ``budget`` seconds."""
    spent, end = 0.0, None
    for start, stop in sorted((i.start, i.end) for i in intervals):
        if end is not None and stop <= end:
            continue
        start = max(start, end) if end is not None else start
        if spent + (stop - start) >= budget:
            return start + (budget - spent)
        spent, end = spent + (stop - start), stop
    return float("inf")


@pytest.mark.slow
def test_two_workers_end_at_the_deadline(tmp_path, worker_env, unique_name, study_file):
    url = f"sqlite:///{tmp_path}/budget.db"
    path = study_file(tmp_path, unique_name, epochs=EPOCHS, extra="budget: {minutes: 10}\n")
    path.write_text("\n".join(l for l in path.read_text().splitlines() if not l.startswith("n_trials")) + "\n")
    env = {**worker_env, "HPO_FAULT_SLEEP_PER_EPOCH": SLEEP_PER_EPOCH, "COLUMNS": "200"}
    run = subprocess.Popen(HPO + ["run", "--study", str(path), "--workers", "2", "--devices", "cpu", "--budget", "20s",
                                  "--storage", url, "--log-dir", str(tmp_path / "logs")],
                           env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=tmp_path)
    shown = []
    while run.poll() is None:
        status = subprocess.run(HPO + ["status", unique_name, "--storage", url], env=env, capture_output=True,
                                text=True, timeout=60, cwd=tmp_path)
        left = _time_left(status.stdout)
        if left is not None:
            shown.append(left)
        time.sleep(0.5)
    output = run.communicate(timeout=60)[0]
    assert run.returncode == 0, output
    assert len(set(shown)) >= 2 and shown == sorted(shown, reverse=True), shown  # time left only decreases
    assert shown[-1] < BUDGET_SECONDS

    study = optuna.load_study(study_name=unique_name, storage=open_storage(url))
    assert studies.budget_of(study) == budgets.TimeBudget(BUDGET_SECONDS)  # --budget beat the file's 10 minutes
    assert studies.n_trials_of(study) is None
    trials = study.get_trials()
    assert not [t.number for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    # Epoch durations from the stored histories (wall clock between epoch ends).
    epoch_seconds = []
    for t in trials:
        elapsed = [0.0] + [e["elapsed_seconds"] for e in TrialRecord.of(t).epochs]
        epoch_seconds += [b - a for a, b in zip(elapsed, elapsed[1:])]
    longest_epoch = max(epoch_seconds)
    every, live = alive_intervals(study)
    assert not live
    union = budgets.wall_seconds(every)
    assert BUDGET_SECONDS <= union <= BUDGET_SECONDS + longest_epoch + STARTUP_SECONDS, (union, longest_epoch)
    deadline = _deadline_instant(every, BUDGET_SECONDS)
    assert all(t.datetime_start.timestamp() <= deadline + 1.0 for t in trials)  # nothing starts past it
    assert all(t.datetime_complete.timestamp() <= deadline + longest_epoch + STARTUP_SECONDS for t in trials)

    stopped = [t for t in trials if TrialRecord.of(t).stop_reason == StopReason.DEADLINE]
    assert stopped, [(t.state, TrialRecord.of(t).stop_reason_text) for t in trials]
    for t in stopped:
        record = TrialRecord.of(t)
        assert t.state == TrialState.PRUNED and 1 <= len(record.epochs) < EPOCHS
        assert t.value == pytest.approx(record.epochs[-1]["val_accuracy"]) == pytest.approx(record.val_accuracy)
    assert "left" in output


@pytest.mark.slow
def test_timeout_stops_running_trials_at_the_next_epoch_end(tmp_path, worker_env, unique_name, study_file):
    url = f"sqlite:///{tmp_path}/timeout.db"
    # A trial lasts 25-32 s here, and the timeout (counted from launch, before the workers start) falls
    # inside the first ones however long the start-up takes, up to 12 s. With 12-16 s trials and a 15 s
    # timeout, a machine that started its workers in 1.5 s finished them at 14.5 s: nothing was running.
    path = study_file(tmp_path, unique_name, epochs=2 * EPOCHS, n_trials=50)
    env = {**worker_env, "HPO_FAULT_SLEEP_PER_EPOCH": SLEEP_PER_EPOCH}
    timeout = 12.0
    proc = subprocess.run(HPO + ["run", "--study", str(path), "--workers", "2", "--devices", "cpu", "--timeout", str(timeout),
                                 "--storage", url, "--log-dir", str(tmp_path / "logs")],
                          env=env, capture_output=True, text=True, timeout=240, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    logs = "".join(p.read_text() for p in (tmp_path / "logs" / unique_name).glob("worker-*.log"))
    assert "timeout reached" in logs and "interrupting the workers" not in proc.stderr  # no signal was needed
    study = optuna.load_study(study_name=unique_name, storage=open_storage(url))
    trials = study.get_trials()
    assert not [t for t in trials if t.state == TrialState.RUNNING]
    # As before: a trial running at the timeout is interrupted and queued to resume from its checkpoint.
    interrupted = [t for t in trials if TrialRecord.of(t).stop_reason == StopReason.INTERRUPTED]
    assert interrupted and all(t.state == TrialState.FAIL for t in interrupted)
    assert sorted(TrialRecord.of(t).retry_of for t in trials if t.state == TrialState.WAITING) == sorted(
        t.number for t in interrupted)
    # Within one epoch of the timeout (which starts before the workers do): every worker left within
    # a longest epoch, plus a small constant, of the first worker's start + the timeout.
    epoch_seconds = [b - a for t in trials for a, b in zip([0.0] + [e["elapsed_seconds"] for e in TrialRecord.of(t).epochs],
                                                          [e["elapsed_seconds"] for e in TrialRecord.of(t).epochs])]
    every, _ = alive_intervals(study)
    first_start = min(i.start for i in every)
    assert max(i.end for i in every) <= first_start + timeout + max(epoch_seconds) + STARTUP_SECONDS
