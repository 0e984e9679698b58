"""`hpo refit`: chosen configurations retrained over new seeds, as real processes, through a SIGKILL.

The refits live in ``<study>.refit`` in the same storage: the search study's N, budget and sampler
never see them. A refit run killed with SIGKILL halfway resumes on the next `hpo refit`; at the end
every (configuration, seed) pair has exactly one finished refit, none lost and none run twice.
"""

from __future__ import annotations

import os
import subprocess
from collections import Counter

import pytest
from optuna.trial import TrialState

from faultkit import (HPO, create_study, fault_env, freeze_and_kill, load, logs_of, run_worker_here, wait_for,
                      worker_pids, write_study)

pytestmark = [pytest.mark.faults, pytest.mark.slow]

EPOCHS = 3
N_TRIALS = 3
SEEDS = 3


def _refit_pairs(study):
    return [(t.system_attrs["hpo:refit_of"], t.system_attrs["hpo:refit_seed"])
            for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))]


def test_refit_top_two_survives_a_sigkill_and_reports_mean_and_std(sqlite_url, unique_name, fake_cifar, tmp_path, procs):
    study_file = write_study(tmp_path, unique_name, epochs=EPOCHS, n_trials=N_TRIALS)
    create_study(study_file, sqlite_url, fake_cifar)
    run_worker_here(sqlite_url, unique_name, fake_cifar, tmp_path / "artifacts")
    search = load(sqlite_url, unique_name)
    before = [(t.number, t.state, t.values) for t in search.get_trials(deepcopy=False)]
    complete = sorted(search.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)), key=lambda t: (-t.values[0], t.number))
    top2 = [t.number for t in complete[:2]]

    env = fault_env(fake_cifar, tmp_path, sqlite_url, HPO_FAULT_SLEEP_PER_EPOCH="1.5")
    def refit_args(seeds: int) -> list[str]:
        return [*HPO, "refit", "--study", unique_name, "--top", "2", "--seeds", str(seeds), "--devices", "cpu",
                "--log-dir", str(tmp_path / "logs")]

    args = refit_args(SEEDS)
    out = open(tmp_path / "refit1.out", "ab")
    first = subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, cwd=tmp_path)
    procs.append(first)
    refit_name = f"{unique_name}.refit"

    watched = wait_for(lambda: load(sqlite_url, refit_name), 120, "the refit study to be created")  # one view, polled

    def halfway():
        done = watched.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        running = [t for t in watched.get_trials(deepcopy=False, states=(TrialState.RUNNING,)) if t.user_attrs.get("history")]
        return done and running and len(done) < 2 * SEEDS

    wait_for(halfway, 180, "some refits finished and one mid-way")
    workers = worker_pids(load(sqlite_url, refit_name))
    assert workers

    def send(sig: int) -> None:
        for pid in workers:
            os.kill(pid, sig)

    # The worker, halfway through a refit, checked again while frozen (the launcher then ends with its worker's code).
    freeze_and_kill(send, halfway, 180, "some refits finished and one mid-way")
    first.wait(timeout=60)
    killed = load(sqlite_url, refit_name)
    finished_before = {t.number: tuple(t.values) for t in killed.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))}
    assert killed.get_trials(deepcopy=False, states=(TrialState.RUNNING,)), "the kill left no refit mid-way"

    second = subprocess.run(args, env={**env, "HPO_FAULT_SLEEP_PER_EPOCH": "0"}, capture_output=True, text=True,
                            cwd=tmp_path, timeout=600)
    assert second.returncode == 0, second.stderr + logs_of(tmp_path)
    assert "resumed" in second.stderr

    refit = load(sqlite_url, refit_name)
    pairs = _refit_pairs(refit)
    # Every pair finished exactly once: none lost, none run twice.
    assert Counter(pairs) == Counter({(n, s): 1 for n in top2 for s in (1, 2, 3)}), pairs
    assert {t.number: tuple(t.values) for t in refit.get_trials(deepcopy=False) if t.number in finished_before} == finished_before
    lost = [t for t in refit.get_trials(deepcopy=False, states=(TrialState.FAIL,))]
    states = [(t.number, t.state.name, t.user_attrs.get("stop_reason"), t.system_attrs.get("hpo:refit_seed")) for t in refit.trials]
    assert lost and all(t.user_attrs.get("stop_reason") == "worker_lost" for t in lost), states
    for trial in refit.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        assert trial.params == search.trials[trial.system_attrs["hpo:refit_of"]].params
        assert 0.0 <= trial.user_attrs["test_accuracy"] <= 1.0 and trial.user_attrs["n_test_images"] > 0
        assert len(trial.user_attrs["history"]) == EPOCHS  # never pruned
    # Different seeds train differently (initialisation, order): not the same curve three times.
    for number in top2:
        curves = {tuple(h["train_loss"] for h in t.user_attrs["history"]) for t in refit.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
                  if t.system_attrs["hpo:refit_of"] == number}
        assert len(curves) == SEEDS

    # The search study is untouched: same trials, states and values; its N still met exactly.
    assert [(t.number, t.state, t.values) for t in load(sqlite_url, unique_name).get_trials(deepcopy=False)] == before
    # The summary: mean ± std for both configurations, beside the search run.
    for number in top2:
        assert any(line.split()[0] == str(number) and "±" in line and "3 seeds" in line for line in second.stdout.splitlines()), second.stdout

    status = subprocess.run([*HPO, "status", unique_name], env=env, capture_output=True, text=True, timeout=120)
    assert status.returncode == 0 and "refits" in status.stdout and status.stdout.count("3 seeds") >= 2, status.stdout

    # A third call finds nothing to do, and adding seeds queues only the new ones.
    again = subprocess.run(refit_args(SEEDS + 1), env={**env, "HPO_FAULT_SLEEP_PER_EPOCH": "0"}, capture_output=True, text=True,
                           cwd=tmp_path, timeout=600)
    assert again.returncode == 0, again.stderr
    assert "6 finished, 0 resumed, 2 queued" in again.stderr
    assert Counter(_refit_pairs(load(sqlite_url, refit_name))) == Counter({(n, s): 1 for n in top2 for s in (1, 2, 3, 4)})
