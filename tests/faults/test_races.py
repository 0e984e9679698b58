"""The three races of issue 13, each interleaved by hand on a real SQLite file.

Each test puts a second party's storage call exactly where the race puts it, through a second
connection to the same file (two engines, as two processes have):

(a) the reaper and the trial's owner: the owner's COMPLETE lands between the reaper's writes;
(b) an interrupted worker and the reaper: the reaper fails the trial between the worker's read of its
    state and its write (inside Optuna's ``tell``);
(c) a dropped connection after a commit: a trial created, or a queued trial taken, by a call whose
    answer was lost must not be created or taken again.
"""

from __future__ import annotations

import time

import optuna
import pytest
import sqlalchemy
from optuna.trial import TrialState

from hpo import compat
from hpo.storage import RetryingStorage, open_retrying_storage, open_storage
from hpo.trials import SYS_HEARTBEAT, StopReason, TrialRecord
from hpo.workers.liveness import reap_stale_trials
from hpo.workers.worker import _record_interrupt

pytestmark = pytest.mark.faults

optuna.logging.set_verbosity(optuna.logging.ERROR)


def after_first_write(storage, action) -> dict:
    """Run ``action()`` once, right after the first commit through ``storage`` that wrote a row."""
    rdb = compat.rdb_storage(getattr(storage, "_backend", storage)) or compat.rdb_storage(storage)
    state = {"wrote": False, "fired": False}

    def on_execute(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith(("INSERT", "UPDATE", "DELETE")):
            state["wrote"] = True

    def on_commit(session):
        if state["wrote"] and not state["fired"]:
            state["fired"] = True
            action()
        state["wrote"] = False

    sqlalchemy.event.listen(rdb.engine, "before_cursor_execute", on_execute)
    sqlalchemy.event.listen(rdb.scoped_session, "after_commit", on_commit)
    return state


def _stale_running_trial(storage) -> tuple[optuna.Study, optuna.Trial]:
    study = optuna.create_study(study_name="races", storage=storage)
    trial = study.ask()
    trial.suggest_float("x", 0.0, 1.0)
    storage.set_trial_system_attr(compat.trial_id(trial), SYS_HEARTBEAT, time.time() - 3600)  # its worker went quiet
    return study, trial


# --- (a) -----------------------------------------------------------------------------------------

def test_a_complete_landing_while_the_reaper_writes_keeps_no_worker_lost_label(tmp_path):
    url = f"sqlite:///{tmp_path}/races.db"
    owner_storage, reaper_storage = open_storage(url), open_storage(url)
    owner_study, trial = _stale_running_trial(owner_storage)
    reaper_study = optuna.load_study(study_name="races", storage=reaper_storage)
    told = []

    def owner_completes():  # the owner was only slow, and tells its result now
        try:
            told.append(owner_storage.set_trial_state_values(compat.trial_id(trial), TrialState.COMPLETE, [0.9]))
        except optuna.exceptions.UpdateFinishedTrialError:
            told.append(False)

    hook = after_first_write(reaper_storage, owner_completes)
    reaped = reap_stale_trials(reaper_study)
    assert hook["fired"] and told, "the interleaving did not happen"

    final = owner_storage.get_trial(compat.trial_id(trial))
    record = TrialRecord.of(final)
    if final.state == TrialState.COMPLETE:
        assert record.stop_reason is None, f"a COMPLETE trial labelled {record.stop_reason}"
        assert reaped == []
    else:
        assert (final.state, record.stop_reason, told) == (TrialState.FAIL, StopReason.WORKER_LOST, [False])
        assert reaped == [trial.number]
    retries = [t for t in owner_study.get_trials() if TrialRecord.of(t).retry_of == trial.number]
    assert len(retries) == (1 if final.state == TrialState.FAIL else 0)


# --- (b) -----------------------------------------------------------------------------------------

class _ReapedBetweenReadAndWrite(RetryingStorage):
    """The worker's storage; once armed, another worker reaps the trial right after this one reads it."""

    reap = None

    def get_trial(self, trial_id):
        trial = super().get_trial(trial_id)
        if self.reap is not None and trial.state == TrialState.RUNNING:
            reap, self.reap = self.reap, None
            reap()
        return trial


def test_b_an_interrupt_after_the_trial_was_reaped_records_nothing_and_raises_nothing(tmp_path):
    url = f"sqlite:///{tmp_path}/races.db"
    storage = _ReapedBetweenReadAndWrite(optuna.storages.get_storage(open_storage(url)), url)
    study, trial = _stale_running_trial(storage)
    other = optuna.load_study(study_name="races", storage=open_retrying_storage(url))
    reaped: list[int] = []
    storage.reap = lambda: reaped.extend(reap_stale_trials(other))

    _record_interrupt(study, trial)  # Ctrl-C's handler; it used to raise UpdateFinishedTrialError from tell

    assert reaped == [trial.number], "the interleaving did not happen"
    final = study.get_trials()
    assert (final[0].state, TrialRecord.of(final[0]).stop_reason) == (TrialState.FAIL, StopReason.WORKER_LOST)
    retries = [t for t in final if TrialRecord.of(t).retry_of == trial.number]
    assert len(retries) == 1 and retries[0].state == TrialState.WAITING  # the reaper's retry, not a second one


def test_b_an_interrupt_after_a_reap_that_relabelled_the_trial_queues_no_second_retry(tmp_path):
    url = f"sqlite:///{tmp_path}/races.db"
    storage = open_retrying_storage(url)
    study, trial = _stale_running_trial(storage)
    other = optuna.load_study(study_name="races", storage=open_retrying_storage(url))
    hook = after_first_write(storage, lambda: reap_stale_trials(other))  # reaped right after our label

    _record_interrupt(study, trial)

    assert hook["fired"]
    retries = [t for t in study.get_trials() if TrialRecord.of(t).retry_of == trial.number]
    assert len(retries) == 1


# --- (c) -----------------------------------------------------------------------------------------

def _drop_after_next_write_commit(storage: RetryingStorage) -> dict:
    """The connection "drops" right after the next commit that wrote: the call fails, its effect stays."""
    def drop():
        raise sqlalchemy.exc.OperationalError("COMMIT", None, Exception("server closed the connection unexpectedly"))

    return after_first_write(storage, drop)


@pytest.fixture
def retrying(tmp_path, monkeypatch) -> RetryingStorage:
    monkeypatch.setattr(time, "sleep", lambda seconds: None)  # the retry's backoff; the interleaving is by hand
    return open_retrying_storage(f"sqlite:///{tmp_path}/races.db")


def test_c_a_created_trial_whose_answer_was_lost_is_not_created_twice(retrying):
    study = optuna.create_study(study_name="races", storage=retrying)
    hook = _drop_after_next_write_commit(retrying)
    trial = study.ask()
    assert hook["fired"], "the connection did not drop"
    running = study.get_trials(states=(TrialState.RUNNING,))
    assert [t.number for t in running] == [trial.number], "an orphan RUNNING trial was left"


def test_c_a_queued_trial_taken_by_a_call_whose_answer_was_lost_is_not_orphaned(retrying):
    study = optuna.create_study(study_name="races", storage=retrying)
    study.enqueue_trial({"x": 0.25})
    hook = _drop_after_next_write_commit(retrying)
    trial = study.ask()
    assert hook["fired"], "the connection did not drop"
    assert trial.suggest_float("x", 0.0, 1.0) == 0.25  # the queued trial, not a fresh one
    running = study.get_trials(states=(TrialState.RUNNING,))
    assert [t.number for t in running] == [trial.number], "the queued trial was left RUNNING with nobody on it"
    assert not study.get_trials(states=(TrialState.WAITING,))
