"""`hpo refit`'s choices and queue on a real SQLite study: what is chosen, what is refused, what is
queued again, and that a refit study's worker only runs its queue (never samples, never prunes)."""

from __future__ import annotations

import optuna
import pytest
from optuna.trial import TrialState
from typer.testing import CliRunner

from hpo.cli import app
from hpo.config import load_study
from hpo.refit import choose_trials, prepare_refits
from hpo.storage import open_storage
from hpo.study import create_or_load
from hpo.workers import WorkerOptions, run_worker

runner = CliRunner()

ACCURACIES = [0.40, 0.70, 0.55, 0.65]


@pytest.fixture
def searched(tmp_path, study_file, unique_name):
    """A stored study with four COMPLETE trials of known accuracy (trial 1 best, then 3, 2, 0), and one FAIL."""
    path = study_file(tmp_path, unique_name, n_trials=5)
    url = f"sqlite:///{tmp_path}/hpo.db"
    study = create_or_load(load_study(path), open_storage(url), n_trials=None, dataset_fingerprint="")
    dist = {"lr": optuna.distributions.FloatDistribution(1e-3, 0.1, log=True),
            "cnn.channels": optuna.distributions.CategoricalDistribution(["[4]", "[8]"])}
    for i, accuracy in enumerate(ACCURACIES):
        study.add_trial(optuna.trial.create_trial(params={"lr": 0.01 * (i + 1), "cnn.channels": "[4]"}, distributions=dist,
                                                  values=[accuracy], user_attrs={"val_accuracy": accuracy}))
    study.add_trial(optuna.trial.create_trial(state=TrialState.FAIL, params={"lr": 0.02, "cnn.channels": "[8]"},
                                              distributions=dist))
    return url, study


def test_top_k_takes_the_best_validation_accuracies_and_trials_keep_their_order(searched):
    _url, study = searched
    assert choose_trials(study, top=2) == [1, 3]
    assert choose_trials(study, top=10) == [1, 3, 2, 0]
    assert choose_trials(study, trials=[2, 0, 2]) == [2, 0]


@pytest.mark.parametrize("args, fragment", [
    ([], "exactly one of --pareto, --trials 3,7 or --top K (got none)"),
    (["--top", "2", "--pareto"], "(got --pareto, --top)"),
    (["--trials", "4"], "--trials 4: not COMPLETE"),
    (["--trials", "9"], "--trials 9: no such trial"),
    (["--trials", "3,x"], "--trials '3,x' is not a list of trial numbers"),
    (["--top", "0"], "--top must be at least 1 (got 0)"),
    (["--top", "2", "--seeds", "0"], "--seeds"),
])
def test_bad_choices_are_one_sentence_and_exit_2(searched, args, fragment):
    url, study = searched
    result = runner.invoke(app, ["refit", "--study", study.study_name, "--storage", url, "--devices", "cpu", *args])
    assert result.exit_code == 2, result.output
    assert fragment in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1
    if "not COMPLETE" in fragment:
        assert "complete trials are 0-3" in result.output


def test_refit_of_a_missing_database_creates_nothing(tmp_path):
    result = runner.invoke(app, ["refit", "--study", "x", "--top", "1", "--storage", f"sqlite:///{tmp_path}/none.db"])
    assert result.exit_code == 2 and "does not exist" in result.output
    assert not (tmp_path / "none.db").exists()


def test_pairs_are_queued_once_and_more_seeds_add_only_the_new_ones(searched):
    _url, study = searched
    first = prepare_refits(study, [1, 3], 2)
    assert first.seeds == (1, 2) and first.queued == ((1, 1), (1, 2), (3, 1), (3, 2))
    again = prepare_refits(study, [1, 3], 2)
    assert again.queued == () and len(again.in_flight) == 4
    more = prepare_refits(study, [1, 3], 3)
    assert more.queued == ((1, 3), (3, 3))
    refit = optuna.load_study(study_name=first.study_name, storage=study._storage)
    assert refit.user_attrs["n_trials"] == 6 and refit.user_attrs["refit_of_study"] == study.study_name
    waiting = refit.get_trials(states=(TrialState.WAITING,))
    assert sorted((t.system_attrs["hpo:refit_of"], t.system_attrs["hpo:refit_seed"]) for t in waiting) == \
        [(1, 1), (1, 2), (1, 3), (3, 1), (3, 2), (3, 3)]
    assert all(t.params == study.trials[t.system_attrs["hpo:refit_of"]].params for t in waiting)
    # The search study is untouched: its trials, and its N.
    assert len(study.get_trials()) == 5 and study.user_attrs["n_trials"] == 5


def test_a_refit_worker_runs_its_queue_and_stops_without_sampling(searched, fake_cifar, tmp_path):
    url, study = searched
    plan = prepare_refits(study, [1], 1)
    outcome = run_worker(WorkerOptions(study_name=plan.study_name, storage_url=url, device="cpu", data_dir=str(fake_cifar),
                                       artifacts=str(tmp_path / "artifacts"), threads=1))
    assert outcome == {"COMPLETE": 1}
    refit = optuna.load_study(study_name=plan.study_name, storage=open_storage(url))
    (trial,) = refit.get_trials()
    assert trial.state == TrialState.COMPLETE and trial.params == study.trials[1].params
    assert trial.user_attrs["n_test_images"] > 0 and trial.user_attrs["checkpoint"]
    # Nothing queued: a second worker stops at once instead of sampling a new configuration.
    assert run_worker(WorkerOptions(study_name=plan.study_name, storage_url=url, device="cpu", data_dir=str(fake_cifar),
                                    artifacts=str(tmp_path / "artifacts"), threads=1)) == {}
    assert len(refit.get_trials()) == 1


def test_a_refit_studys_status_names_no_lucky_seed_and_points_at_its_search_study(searched):
    from rich.console import Console

    from hpo import monitor

    url, study = searched
    plan = prepare_refits(study, [1], 2)
    refit = optuna.load_study(study_name=plan.study_name, storage=open_storage(url))
    for trial, accuracy in zip(refit.get_trials(states=(TrialState.WAITING,)), (0.71, 0.69)):
        running = refit.ask()  # takes the queued pair, as a worker does
        assert running.number == trial.number
        refit.tell(running, [accuracy])
    snapshot = monitor.progress(refit)
    assert snapshot.counts["COMPLETE"] == 2 and snapshot.best == [] and snapshot.refits_of == study.study_name
    line = monitor.summary_line(snapshot)
    assert f"seed runs; mean ± std per configuration: hpo status {study.study_name}" in line and "71.00%" not in line
    console = Console(width=200, record=True)
    console.print(monitor.render(snapshot))
    assert f"their mean ± std: hpo status {study.study_name}" in console.export_text()
    assert monitor.progress(study).refits_of is None and monitor.progress(study).best  # the search study keeps its best
