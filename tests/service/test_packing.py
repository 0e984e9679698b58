"""Memory-aware packing (``--per-device auto``) on CPU, through the device-memory seam with fake figures.

In-process: the setting, the gate's rule on fake figures, a slot that waits for memory instead of
failing, and expected peaks taken from earlier trials of the same shape. With real processes:
``hpo run --workers 4 --per-device auto`` on a simulated device that fits two trials at once.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import optuna
import pytest
import torch
from optuna.trial import TrialState
from typer.testing import CliRunner

from hpo import workers
from hpo.cli import app
from hpo.errors import ConfigError
from hpo.workers import packing

GIB = 2**30

# One fixed architecture (so every trial has the same shape), lr searched so that trials differ.
FIXED_SPACE = """\
params:
  model: cnn
  cnn.channels: [4]
  cnn.kernel_size: 3
  lr: {type: float, low: 1.0e-3, high: 0.1, log: true}
  optimizer: sgd
  batch_size: 32
  augment: none
"""


def _write_study(folder: Path, name: str, *, n_trials: int, epochs: int = 2, extra: str = "") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}-space.yaml").write_text(FIXED_SPACE)
    path = folder / f"{name}.yaml"
    path.write_text(textwrap.dedent(f"""\
        name: {name}
        dataset: {{kind: minicifar, n_classes: 4, R: 1, train_size: 0.75}}
        space: {name}-space.yaml
        sampler: random
        pruner: none
        epochs: {epochs}
        n_trials: {n_trials}
        seed: 0
        """) + extra)
    return path


def _fake_device(path: Path, free: int, total: int | None = None, trial_bytes: int = 0) -> Path:
    path.write_text(json.dumps({"free": int(free), "total": int(total or free), "trial_bytes": int(trial_bytes)}))
    return path


class _NoStudy:
    def get_trials(self, deepcopy=False, states=None):
        return []


def _gate(tmp_path: Path, fake: Path, poll: float = 0.05) -> packing.MemoryGate:
    ledger = packing.Ledger(tmp_path / "ledger")
    return packing.MemoryGate(_NoStudy(), None, torch.device("cpu"), ledger=ledger,
                              memory=packing.FileMemory(fake, ledger), poll_seconds=poll)


# ---------------------------------------------------------------------------------------------
# The setting
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("value, expected", [("auto", "auto"), ("AUTO", "auto"), ("3", 3), (2, 2), (None, None)])
def test_per_device_takes_a_count_or_auto(value, expected):
    assert packing.parse_per_device(value) == expected


@pytest.mark.parametrize("value", ["0", 0, -1, "two", True, 1.5, ""])
def test_per_device_refuses_anything_else_naming_the_setting(value):
    with pytest.raises(ConfigError, match=r"--per-device must be a whole number of at least 1, or auto"):
        packing.parse_per_device(value)


def test_study_file_per_device_is_read_and_checked(tmp_path):
    from hpo.config import load_study

    good = load_study(_write_study(tmp_path, "packed", n_trials=2, extra="per_device: auto\n"))
    assert packing.study_per_device(good) == "auto"
    assert "per_device" not in good.to_dict()  # how a machine runs it, not what the study is
    plain = load_study(_write_study(tmp_path, "plain", n_trials=2))
    assert packing.study_per_device(plain) is None
    bad = _write_study(tmp_path, "bad", n_trials=2, extra="per_device: lots\n")
    result = CliRunner().invoke(app, ["validate", str(bad)])
    assert result.exit_code == 2
    assert "bad.yaml: per_device must be a whole number of at least 1, or auto (got 'lots')" in result.output


def test_auto_plans_one_slot_per_core_on_the_cpu_and_workers_still_wins():
    from hpo.device import available_cpu_count

    assert len(workers.plan_slots("cpu", "auto")) == available_cpu_count()
    assert [s.device for s in workers.plan_slots("cpu", "auto", workers=3)] == ["cpu"] * 3


# ---------------------------------------------------------------------------------------------
# The gate's rule, on fake figures
# ---------------------------------------------------------------------------------------------


def test_a_slot_alone_on_its_device_starts_whatever_the_figures(tmp_path):
    gate = _gate(tmp_path, _fake_device(tmp_path / "device.json", free=0))
    go, figures = gate.decide(100 * GIB)
    assert go and figures["running"] == 0


def test_a_trial_starts_only_while_it_fits_free_memory_minus_pending_trials(tmp_path):
    fake = _fake_device(tmp_path / "device.json", free=10 * GIB)
    gate = _gate(tmp_path, fake)
    other = {"id": "other", "pid": os.getpid(), "expected": 2 * GIB, "known": True,
             "realized": False, "held": 0}
    gate.ledger.write(other)
    # Pending (first epoch not ended): its 2 GiB are not in `free` yet, so they are taken off it.
    need_fits = (10 * GIB - 2 * GIB - packing.MARGIN_BYTES) / (1 + packing.MARGIN_FRACTION)
    assert gate.decide(int(need_fits) - 1)[0]
    assert not gate.decide(int(need_fits) + GIB)[0]
    # Past its first epoch it holds its memory on the simulated device: the same sums, now from `free`.
    other.update(realized=True, held=2 * GIB)
    gate.ledger.write(other)
    go, figures = gate.decide(int(need_fits) - 1)
    assert go and figures["free"] == 8 * GIB and figures["pending"] == 0
    assert not gate.decide(int(need_fits) + GIB)[0]


def test_nothing_starts_beside_a_trial_of_unknown_size_until_its_first_epoch_ends(tmp_path):
    gate = _gate(tmp_path, _fake_device(tmp_path / "device.json", free=100 * GIB))
    probe = {"id": "probe", "pid": os.getpid(), "expected": 0, "known": False, "realized": False, "held": 0}
    gate.ledger.write(probe)
    assert not gate.decide(1)[0]
    assert not gate.decide(None)[0]
    probe.update(realized=True, held=GIB)
    gate.ledger.write(probe)
    assert gate.decide(1)[0] and gate.decide(None)[0]


def test_a_dead_process_entry_does_not_hold_the_device(tmp_path):
    gate = _gate(tmp_path, _fake_device(tmp_path / "device.json", free=0))
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    gate.ledger.write({"id": "dead", "pid": int(dead.stdout), "expected": 50 * GIB, "known": True, "realized": False})
    assert gate.ledger.entries() == []
    assert gate.decide(GIB)[0]


def test_a_slot_that_does_not_fit_waits_then_starts_when_the_other_trial_ends(tmp_path):
    fake = _fake_device(tmp_path / "device.json", free=4 * GIB)
    first, second = _gate(tmp_path, fake), _gate(tmp_path, fake)
    held = first.acquire(2 * GIB)
    first.realize(held)  # the simulated device now has 2 GiB free: 2 GiB x 1.25 + 1 GiB does not fit
    started = []
    thread = threading.Thread(target=lambda: started.append(second.acquire(2 * GIB)), daemon=True)
    thread.start()
    for _ in range(600):  # the second slot logs that it waits (no timing asserted: it is polled)
        if any(e["event"] == "wait" for e in first.ledger.events()):
            break
        time.sleep(0.05)
    assert not started, "the second trial started although it did not fit"
    first.release(held)
    thread.join(30)
    assert started and started[0]["expected"] == 2 * GIB
    events = [e["event"] for e in first.ledger.events()]
    assert events == ["start", "realized", "wait", "end", "start"]
    second.release(started[0])
    assert packing.max_running(first.ledger.events()) == 1


# ---------------------------------------------------------------------------------------------
# Expected peaks from earlier trials, through a real worker
# ---------------------------------------------------------------------------------------------


def test_worker_gates_trials_with_the_peak_of_earlier_trials_of_the_same_shape(tmp_path, fake_cifar, monkeypatch):
    from hpo.config import load_study
    from hpo.data import load_dataset
    from hpo.models import count_params
    from hpo.storage import open_storage
    from hpo.study import create_or_load
    from hpo.train import train

    monkeypatch.setenv(packing.PACKING_DIR_ENV, str(tmp_path / "packing"))
    monkeypatch.setenv(packing.FAKE_MEMORY_ENV, str(_fake_device(tmp_path / "device.json", free=64 * GIB)))
    config = load_study(_write_study(tmp_path, "peaks", n_trials=3))
    url = f"sqlite:///{tmp_path}/peaks.db"
    dataset = load_dataset(config.dataset, str(fake_cifar), split_seed=config.seed)
    create_or_load(config, open_storage(url), n_trials=None, dataset_fingerprint=dataset.fingerprint)
    sizes = []

    def trainer_with_known_peak(model, data, train_config, **options):
        result = train(model, data, train_config, **options)
        sizes.append(count_params(model))
        result.peak_memory_bytes = 1000 * sizes[-1]  # a figure the test knows, in place of this process's RSS
        return result

    options = workers.WorkerOptions(study_name="peaks", storage_url=url, device="cpu", data_dir=str(fake_cifar),
                                    artifacts=str(tmp_path / "artifacts"), threads=1, packing=True)
    assert workers.run_worker(options, trainer=trainer_with_known_peak) == {"COMPLETE": 3}
    ledger = packing.Ledger.for_device(torch.device("cpu"))
    starts = [e for e in ledger.events() if e["event"] == "start"]
    # The first trial of the shape is its own probe; the next ones expect the peak the first recorded.
    assert [s["expected"] for s in starts] == [None, 1000 * sizes[0], 1000 * sizes[0]]
    study = optuna.load_study(study_name="peaks", storage=open_storage(url))
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 3
    assert ledger.entries() == []  # every trial took itself off the ledger


# ---------------------------------------------------------------------------------------------
# Real processes: hpo run --per-device auto on a simulated device that fits two trials
# ---------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_hpo_run_per_device_auto_packs_only_what_fits_and_never_fails_a_trial(tmp_path, worker_env):
    from hpo.storage import open_storage
    from hpo.trials import StopReason, TrialRecord

    study_path = _write_study(tmp_path, "packed", n_trials=1)
    url = f"sqlite:///{tmp_path}/packed.db"
    # Slow heartbeats: 4 workers on 2 cores must not have a trial reaped as lost (a retry is a 6th start);
    # this test is about the memory gate, not liveness.
    env = {**worker_env, packing.PACKING_DIR_ENV: str(tmp_path / "packing"), "HPO_FAULT_SLEEP_PER_EPOCH": "1.5",
           "HPO_HEARTBEAT_SECONDS": "10"}
    common = [sys.executable, "-m", "hpo", "run", "--study", str(study_path), "--storage", url, "--devices", "cpu",
              "--log-dir", str(tmp_path / "logs")]
    # One trial first: its recorded peak (this process's RSS on CPU) is the shape's expected peak.
    subprocess.run(common + ["--workers", "1"], env=env, check=True, capture_output=True, timeout=300)
    study = optuna.load_study(study_name="packed", storage=open_storage(url))
    peak = TrialRecord.of(study.trials[0]).peak_memory_bytes
    assert peak and peak > 0
    # A simulated device on which two such trials fit beside each other, and a third does not.
    free = int(2.7 * peak) + packing.MARGIN_BYTES
    env[packing.FAKE_MEMORY_ENV] = str(_fake_device(tmp_path / "device.json", free=free))
    done = subprocess.run(common + ["--workers", "4", "--per-device", "auto", "--n-trials", "6"], env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    trials = optuna.load_study(study_name="packed", storage=open_storage(url)).trials
    # Exactly N, and no trial failed for want of memory. Workers that ask at the same moment may
    # create a trial past N: it ends FAIL "budget" before any training (DECISIONS: the exact budget).
    assert [t.state for t in trials if t.state != TrialState.FAIL] == [TrialState.COMPLETE] * 6
    assert all(TrialRecord.of(t).stop_reason is StopReason.BUDGET for t in trials if t.state == TrialState.FAIL)
    ledger_dirs = list((tmp_path / "packing").iterdir())
    assert len(ledger_dirs) == 1
    events = packing.Ledger(ledger_dirs[0]).events()
    assert sum(e["event"] == "start" for e in events) == 5  # every trial of this run went through the gate
    assert packing.max_running(events) <= 2
    assert any(e["event"] == "wait" for e in events)


def test_hpo_worker_refuses_a_bad_per_device_with_status_2(tmp_path):
    result = CliRunner().invoke(app, ["worker", "--study", "nope", "--per-device", "0",
                                      "--storage", f"sqlite:///{tmp_path}/none.db"])
    assert result.exit_code == 2
    assert "--per-device must be a whole number of at least 1, or auto (got '0')" in result.output
