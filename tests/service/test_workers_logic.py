"""The worker loop's decisions on real Optuna storages: budget, stale trials, retries, slots."""

from __future__ import annotations

import time

import optuna
import pytest
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState, create_trial

from hpo import study as studies
from hpo import trials
from hpo import workers
from hpo.errors import ConfigError, DeviceError, HpoError


def _study(n_trials: int = 3) -> optuna.Study:
    study = optuna.create_study(storage=optuna.storages.InMemoryStorage(), direction="maximize")
    study.set_user_attr(studies.ATTR_N_TRIALS, n_trials)
    return study


def _add(study, state, number_value=0.5, **user_attrs):
    study.add_trial(create_trial(state=state, value=number_value if state == TrialState.COMPLETE else None,
                                 params={"x": 0.5}, distributions={"x": FloatDistribution(0, 1)}, user_attrs=user_attrs))


@pytest.mark.parametrize(
    "finished,running,waiting,expected",
    [(3, 0, 0, "stop"), (4, 0, 0, "stop"), (2, 0, 0, "ask"), (2, 1, 0, "wait"), (1, 1, 0, "ask"), (2, 1, 1, "ask")],
)
def test_next_action_follows_the_budget(finished, running, waiting, expected):
    assert workers.next_action(workers.BudgetState(finished, running, waiting), 3) == expected


def test_beyond_budget_fails_only_the_highest_numbers():
    study = _study()
    for _ in range(2):
        _add(study, TrialState.COMPLETE)
    a = study.ask()  # number 2: within N=3
    b = study.ask()  # number 3: a concurrent worker took the last slot
    assert not workers.beyond_budget(study, a.number, 3)
    assert workers.beyond_budget(study, b.number, 3)


def test_stale_trial_is_failed_and_retried_once(monkeypatch):
    monkeypatch.setenv("HPO_HEARTBEAT_SECONDS", "1")
    study = _study()
    trial = study.ask({"x": FloatDistribution(0, 1)})
    trial.suggest_float("x", 0, 1)
    trial.set_user_attr("checkpoint", "artifact-123")
    study._storage.set_trial_system_attr(trial._trial_id, trials.SYS_HEARTBEAT, time.time() - 10)
    fresh = study.ask()
    study._storage.set_trial_system_attr(fresh._trial_id, trials.SYS_HEARTBEAT, time.time())

    assert workers.reap_stale_trials(study) == [trial.number]
    assert workers.reap_stale_trials(study) == []  # already reaped: no second retry
    lost = study.get_trials()[trial.number]
    assert lost.state == TrialState.FAIL and lost.user_attrs["stop_reason"] == "worker_lost"
    waiting = study.get_trials(states=(TrialState.WAITING,))
    assert len(waiting) == 1
    retry = waiting[0]
    assert retry.params == lost.params
    assert retry.system_attrs[trials.SYS_RESUME] == "artifact-123"
    assert retry.system_attrs[trials.SYS_RETRIES] == 1
    assert study.get_trials()[fresh.number].state == TrialState.RUNNING


def test_after_a_storage_outage_the_reaper_waits_for_the_others_to_beat_again(monkeypatch):
    # The other workers' heartbeat threads may sleep out one more retry step after the outage ends:
    # no trial is taken for lost before the stale limit plus that step has passed since this
    # process's last storage error.
    from hpo.storage import MAX_RETRY_DELAY_SECONDS, RetryingStorage

    monkeypatch.setenv("HPO_HEARTBEAT_SECONDS", "1")
    storage = RetryingStorage(optuna.storages.InMemoryStorage(), "in-memory")
    study = optuna.create_study(storage=storage, direction="maximize")
    trial = study.ask({"x": FloatDistribution(0, 1)})
    beat = time.time()
    storage.set_trial_system_attr(trial._trial_id, trials.SYS_HEARTBEAT, beat)
    storage.last_error_time = beat + 1.0  # the outage ended 1 s after the owner's last beat
    limit = workers.STALE_HEARTBEATS * 1.0
    just_stale = storage.last_error_time + limit + 0.5  # stale by the heartbeat alone
    assert workers.reap_stale_trials(study, now=just_stale) == []
    assert workers.reap_stale_trials(study, now=storage.last_error_time + limit + MAX_RETRY_DELAY_SECONDS - 0.5) == []
    assert workers.reap_stale_trials(study, now=storage.last_error_time + limit + MAX_RETRY_DELAY_SECONDS + 0.5) == [trial.number]


def test_retries_stop_after_two():
    study = _study()
    study.add_trial(create_trial(state=TrialState.FAIL, params={"x": 0.1}, distributions={"x": FloatDistribution(0, 1)},
                                 system_attrs={trials.SYS_RETRIES: 2, trials.SYS_RETRY_OF: 0}))
    assert studies.enqueue_retry(study, study.get_trials()[0], "worker_lost") is False  # crashes: at most twice
    assert not study.get_trials(states=(TrialState.WAITING,))
    # A user stop (issue 13) uses up no retry: queued even after two crash retries, the count unchanged.
    assert studies.enqueue_retry(study, study.get_trials()[0], "interrupted") is True
    assert [t.system_attrs[trials.SYS_RETRIES] for t in study.get_trials(states=(TrialState.WAITING,))] == [2]


def test_failure_streak_stops_the_study():
    study = _study(n_trials=3)
    _add(study, TrialState.COMPLETE)
    for _ in range(2):
        _add(study, TrialState.FAIL, stop_reason="error", error="boom")
    _add(study, TrialState.FAIL, stop_reason="interrupted")  # not the configuration's fault
    workers.check_failure_streak(study, 3)
    _add(study, TrialState.FAIL, stop_reason="oom", error="out of memory")
    with pytest.raises(HpoError, match="3 consecutive failed trials"):
        workers.check_failure_streak(study, 3)


def test_plan_slots_on_cpu():
    slots = workers.plan_slots("cpu", per_device=3)
    assert [s.device for s in slots] == ["cpu"] * 3
    assert all(s.threads >= 1 for s in slots)
    assert [s.device for s in workers.plan_slots("cpu", workers=2)] == ["cpu", "cpu"]


def test_plan_slots_refuses_missing_devices_and_bad_counts():
    with pytest.raises(DeviceError, match="cuda:3"):
        workers.plan_slots("cuda:3")
    with pytest.raises(ConfigError, match="--per-device"):
        workers.plan_slots("cpu", per_device=0)
    with pytest.raises(ConfigError, match="--workers"):
        workers.plan_slots("cpu", workers=0)


def test_stored_study_and_trial_lookup_say_what_exists():
    storage = optuna.storages.InMemoryStorage()
    study = optuna.create_study(study_name="present", storage=storage)
    study.add_trial(create_trial(state=TrialState.COMPLETE, value=0.1, params={"x": 0.5},
                                 distributions={"x": FloatDistribution(0, 1)}))
    assert studies.load_stored("present", storage).study_name == "present"
    assert studies.get_trial(study, 0).value == 0.1
    with pytest.raises(HpoError, match="no study named 'absent'.*studies there: present"):
        studies.load_stored("absent", storage)
    with pytest.raises(HpoError, match="has no trial 7"):
        studies.get_trial(study, 7)


def test_a_trial_interrupted_before_it_trains_is_named_as_this_workers(monkeypatch):
    # A press that lands while the new trial's parameters are still being sampled: the trial is
    # recorded as interrupted, and the launcher's "interrupted:" line (which names the trials of
    # its own workers) and the reaper's owner lookup both find it, so it must carry its worker.
    from hpo.workers import worker as worker_mod
    from hpo.workers.interrupts import Interrupted, interrupted_trials

    def pressed(ctx, trial):
        raise KeyboardInterrupt

    monkeypatch.setattr(worker_mod, "run_trial", pressed)
    study = _study()
    heartbeat = workers.Heartbeat(study._storage, study._study_id, "host-7-0", {"host": "h"})
    with pytest.raises(Interrupted):
        worker_mod.run_one(study, None, None, heartbeat)
    trial = study.get_trials()[0]
    assert trial.state == TrialState.FAIL and trial.user_attrs["stop_reason"] == "interrupted"
    assert trial.system_attrs[trials.SYS_WORKER] == "host-7-0"
    found = interrupted_trials(study, "host-7")
    assert (found.queued, found.running) == ((0,), ())


def test_a_press_while_the_trial_is_created_is_raised_once_the_worker_owns_it(monkeypatch):
    # A real SIGINT, through the worker's own handler, landing inside ask (the storage has created the
    # trial, the sampler is still at work): held until the owner is stamped, then the trial is
    # recorded as interrupted and queued, never left RUNNING with no owner for the reaper to guess at.
    import os
    import signal

    from hpo.workers import worker as worker_mod
    from hpo.workers.interrupts import InterruptCounter, Interrupted

    study = _study()
    asked = study.ask

    def ask_pressed(*args, **kwargs):
        trial = asked(*args, **kwargs)
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.05)  # the handler runs here: before the fix, KeyboardInterrupt left ask at this line
        return trial

    monkeypatch.setattr(study, "ask", ask_pressed)
    monkeypatch.setattr(worker_mod, "run_trial", lambda ctx, trial: pytest.fail("a pressed trial must not train"))
    heartbeat = workers.Heartbeat(study._storage, study._study_id, "host-7-0", {"host": "h"})
    counter = InterruptCounter().install()
    try:
        with pytest.raises(Interrupted) as raised:
            worker_mod.run_one(study, None, None, heartbeat, counter)
    finally:
        counter.restore()
    assert raised.value.numbers == (0,) and raised.value.recorded
    first, retry = study.get_trials()
    assert first.state == TrialState.FAIL and first.user_attrs["stop_reason"] == "interrupted"
    assert first.system_attrs[trials.SYS_WORKER] == "host-7-0"
    assert retry.state == TrialState.WAITING and retry.system_attrs[trials.SYS_RETRY_OF] == 0


def test_a_held_press_wins_over_an_error_and_a_second_press_is_never_held():
    import os
    import signal

    from hpo.workers.interrupts import InterruptCounter

    counter = InterruptCounter().install()
    try:
        with pytest.raises(KeyboardInterrupt):  # the error in the block does not swallow the press
            with counter.hold():
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(0.05)
                raise RuntimeError("the storage failed while the press was held")
        again = InterruptCounter().install()
        reached = []
        with pytest.raises(KeyboardInterrupt):
            with again.hold():
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(0.05)
                reached.append("held")
                os.kill(os.getpid(), signal.SIGINT)  # the second press: at once, inside the block
                time.sleep(0.05)
                reached.append("not reached")
        again.restore()
        assert reached == ["held"] and again.presses == 2
    finally:
        counter.restore()


def test_heartbeat_beats_the_running_trial_and_always_the_worker_presence():
    study = _study()
    heartbeat = workers.Heartbeat(study._storage, study._study_id, "w-1", {"host": "h"})
    trial = study.ask({"x": FloatDistribution(0, 1)})
    heartbeat.claim(trial._trial_id)  # what run_one does as soon as it has the trial
    assert heartbeat.trial_id == trial._trial_id
    assert study._storage.get_trial(trial._trial_id).system_attrs[trials.SYS_WORKER] == "w-1"
    first = study._storage.get_trial(trial._trial_id).system_attrs[trials.SYS_HEARTBEAT]
    assert abs(first - time.time()) < 60
    study.tell(trial, 0.5)
    # A beat that still names the finished trial: the trial is left alone, the presence is written.
    before = time.time()
    heartbeat.beat()
    assert study._storage.get_trial(trial._trial_id).system_attrs[trials.SYS_HEARTBEAT] == first
    assert [w["worker"] for w in workers.live_workers(study)] == ["w-1"]
    assert study._storage.get_study_system_attrs(study._study_id)["hpo:worker:w-1"]["time"] >= before


def test_worker_options_travel_through_the_environment_without_the_storage_url_in_them(tmp_path):
    options = workers.WorkerOptions(study_name="s", storage_url="postgresql://u:secret@db/hpo", device="cpu",
                                    worker_id="w-3", threads=2, timeout=5.0)
    env = workers.worker_environment(options, tmp_path / "w.log")
    assert env["HPO_STORAGE"] == options.storage_url and "secret" not in env[workers.OPTIONS_ENV]
    assert workers.options_from_environment(env) == (options, str(tmp_path / "w.log"))
    with pytest.raises(ConfigError, match="HPO_WORKER_OPTIONS: unknown settings colour"):
        workers.options_from_environment({workers.OPTIONS_ENV: '{"study_name": "s", "colour": 1}'})
    with pytest.raises(ConfigError, match="HPO_WORKER_OPTIONS is not set"):
        workers.options_from_environment({})


def test_entry_point_exits_like_the_cli(tmp_path, capsys):
    options = workers.WorkerOptions(study_name="absent", storage_url=f"sqlite:///{tmp_path}/hpo.db", device="cpu")
    assert workers.entry_point(workers.worker_environment(options)) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: no study named 'absent'") and len(err.strip().splitlines()) == 1
    assert workers.entry_point({}) == 2


def test_launch_runs_one_worker_in_process_only():
    options = workers.WorkerOptions(study_name="s", storage_url="sqlite:///:memory:")
    with pytest.raises(ValueError, match="one worker"):
        workers.launch(options, [workers.Slot("cpu", 1)] * 2, in_process=True)
    with pytest.raises(ValueError, match="log_dir"):
        workers.launch(options, [workers.Slot("cpu", 1)])


def test_run_worker_trains_through_the_trainer_it_is_given(tmp_path, fake_cifar, study_file):
    from hpo.config import load_study
    from hpo.data import load_dataset
    from hpo.storage import open_storage
    from hpo.study import create_or_load
    from hpo.train import train

    config = load_study(study_file(tmp_path, "hook", epochs=2, n_trials=2))
    url = f"sqlite:///{tmp_path}/hook.db"
    dataset = load_dataset(config.dataset, str(fake_cifar), split_seed=config.seed)
    create_or_load(config, open_storage(url), n_trials=None, dataset_fingerprint=dataset.fingerprint)
    calls = []

    def counting_trainer(*args, **kwargs):
        calls.append(kwargs["faults"])
        return train(*args, **kwargs)

    options = workers.WorkerOptions(study_name="hook", storage_url=url, device="cpu", data_dir=str(fake_cifar),
                                    artifacts=str(tmp_path / "artifacts"), threads=1)
    assert workers.run_worker(options, trainer=counting_trainer) == {"COMPLETE": 2}
    assert len(calls) == 2 and all(plan is not None for plan in calls)  # the fault plan read once at the start
