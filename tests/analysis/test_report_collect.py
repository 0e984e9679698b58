"""collect() and front_table() on studies built by hand, shaped like the ones `hpo run` writes."""

from __future__ import annotations

import math

import optuna
import pytest
from optuna.trial import TrialState

from hpo.analysis.pareto import hypervolume
from hpo.analysis.report import collect, front_table, history_arrays
from hpo.errors import ConfigError

AXES = ["val_accuracy", "param_count", "train_seconds"]


def hand_study(builders, evaluated: bool = False) -> optuna.Study:
    """Five complete trials with a known front {0, 1, 3, 4}, a better-looking pruned one, a failure."""
    study = optuna.create_study(
        storage=optuna.storages.InMemoryStorage(), directions=["maximize", "minimize", "minimize"], study_name="hand"
    )
    study.set_metric_names(AXES)
    study.set_user_attr("definition", {**builders.definition, "hypervolume_reference": {"params": 1e7, "train_seconds": 400}})
    study.set_user_attr("hardware", "test box")
    complete = [
        (0.90, 1e6, 100.0, 32),  # 0: front (knee candidate)
        (0.80, 1e5, 50.0, 8),  # 1: front
        (0.70, 1e6, 200.0, 32),  # 2: dominated by 0
        (0.95, 4e6, 300.0, 64),  # 3: front
        (0.80, 1e5, 50.0, 8),  # 4: duplicate of 1, so on the front too
    ]
    for number, (accuracy, params, seconds, width) in enumerate(complete):
        extra = {"test_accuracy": accuracy - 0.01} if evaluated and number == 3 else {}
        builders.add(
            study,
            {"width": width, "lr": 0.01 * (number + 1)},
            TrialState.COMPLETE,
            [accuracy, params, seconds],
            **builders.attrs(accuracy, params, seconds, **extra),
        )
    # Pruned with a better accuracy on a smaller budget: never on the front.
    builders.add(study, {"width": 8, "lr": 0.02}, TrialState.PRUNED, None,
                 **builders.attrs(0.99, 1e4, 10.0, epochs=1, stop_reason="pruned"))
    builders.add(study, {"width": 64, "lr": 0.02}, TrialState.FAIL, None, stop_reason="oom", train_seconds=7.0)
    return study


@pytest.fixture(scope="module")
def hand_report(builders):
    return collect(hand_study(builders))


def test_collect_counts_front_knee_and_hypervolume(hand_report):
    report = hand_report
    assert report.name == "hand"
    assert report.hardware == "test box"
    assert report.n_trials == 20  # from the definition: no --n-trials override stored
    assert report.directions == ["maximize", "minimize", "minimize"]
    assert report.metric_names == AXES
    assert report.state_counts == {"COMPLETE": 5, "PRUNED": 1, "FAIL": 1}
    assert report.stop_reason_counts == {"pruned": 1, "oom": 1}
    assert report.compute_seconds == pytest.approx(100 + 50 + 200 + 300 + 50 + 10 + 7)
    assert report.pruned_numbers == [5]
    assert sorted(report.front.front_trial_numbers) == [0, 1, 3, 4]
    assert report.reference["params"] == 1e7 and report.reference["train_seconds"] == 400
    front_points = [[0.90, 1e6, 100.0], [0.80, 1e5, 50.0], [0.95, 4e6, 300.0]]
    assert report.hypervolume == pytest.approx(hypervolume(front_points, AXES, report.reference))
    # Normalised (ref 1e7 params, 400 s): 0 -> (0.10, 6/7, 0.25), 1 -> (0.20, 5/7, 0.125),
    # 3 -> (0.05, 0.943, 0.75). Ideal (0.05, 5/7, 0.125): trial 1 is nearest (0.15 away; 0 is 0.20).
    assert report.knee_trial == 1
    # Pair fronts for the figures: accuracy vs params has {0, 1, 3, 4}; vs time the same here.
    assert sorted(report.pair_fronts["param_count"].front_trial_numbers) == [0, 1, 3, 4]


def test_rows_carry_values_attrs_and_history(hand_report):
    report = hand_report
    row = report.trial(3)
    assert row["state"] == "COMPLETE"
    assert row["params"] == {"width": 64, "lr": pytest.approx(0.04)}
    assert row["param_count"] == 4_000_000 and isinstance(row["param_count"], int)
    assert row["macs"] == 120_000_000
    assert row["epochs_run"] == 4
    epochs, values = history_arrays(row, "val_accuracy")
    assert epochs.tolist() == [1, 2, 3, 4]
    assert values[-1] == pytest.approx(0.95)
    failed = report.trial(6)
    assert failed["state"] == "FAIL" and failed["stop_reason"] == "oom" and failed["val_accuracy"] is None
    with pytest.raises(KeyError):
        report.trial(99)


def test_front_table_sorted_by_accuracy_with_knee_and_varying_params(hand_report):
    report = hand_report
    table = front_table(report)
    assert [row["trial"] for row in table] == [3, 0, 1, 4]
    assert [row["knee"] for row in table] == [False, False, True, False]
    assert list(table[0]) == ["trial", "val_accuracy", "val_accuracy_lower", "val_accuracy_upper", "param_count",
                              "macs", "train_seconds", "knee", "ties_knee", "lr", "width"]
    # No image count stored, and the definition's train_size (400) gives none: no interval, no ties.
    assert all(row["val_accuracy_lower"] is None and row["ties_knee"] in (None, False) for row in table)
    assert table[0]["width"] == 64 and table[0]["param_count"] == 4_000_000
    assert "test_accuracy" not in table[0]  # nothing evaluated yet


def test_front_table_shows_test_accuracy_once_evaluated(builders):
    table = front_table(collect(hand_study(builders, evaluated=True)))
    by_trial = {row["trial"]: row for row in table}
    assert by_trial[3]["test_accuracy"] == pytest.approx(0.94)
    assert by_trial[0]["test_accuracy"] is None


def test_collect_takes_short_axis_names_and_refuses_unknown(builders):
    study = hand_study(builders)
    report = collect(study, axes=["acc", "time"])
    assert report.axes == ["val_accuracy", "train_seconds"]
    assert sorted(report.front.front_trial_numbers) == [0, 1, 3, 4]
    with pytest.raises(ConfigError, match="unknown Pareto axis"):
        collect(study, axes=["acc", "energy"])


def test_single_objective_study_reads_accuracy_from_the_value(builders):
    study = optuna.create_study(storage=optuna.storages.InMemoryStorage(), direction="maximize")
    for number, (accuracy, params) in enumerate([(0.6, 1e5), (0.7, 1e6), (0.5, 1e6)]):
        # The attr disagrees on purpose: the objective value is what the sampler saw.
        attrs = builders.attrs(0.0, params, 10.0 * (number + 1))
        builders.add(study, {"width": 8 * (number + 1), "lr": 0.01}, TrialState.COMPLETE, [accuracy], **attrs)
    report = collect(study)
    assert report.metric_names == ["val_accuracy"]
    assert [report.trial(n)["val_accuracy"] for n in range(3)] == [0.6, 0.7, 0.5]
    assert sorted(report.front.front_trial_numbers) == [0, 1]
    assert report.definition == {} and report.reference["params"] == 1e8
    assert report.n_trials is None
    study.set_user_attr("n_trials", 7)  # what `--n-trials 7` stores
    assert collect(study).n_trials == 7


def test_importance_with_too_few_trials_is_a_note_not_an_error(builders):
    study = optuna.create_study(storage=optuna.storages.InMemoryStorage(), direction="maximize")
    for number in range(4):
        width = 8 * (number + 1)
        builders.add(study, {"width": width, "lr": 0.01 * (number + 1)}, TrialState.COMPLETE, [0.3 + 0.01 * number],
                     **builders.attrs(0.3 + 0.01 * number, 1000 * width**2, 10.0))
    report = collect(study)
    assert report.importances == {}
    assert "at least 5 complete trials" in report.importance_notes["val_accuracy"]
    assert set(report.importance_notes) == set(AXES)


def test_importance_with_one_varying_parameter_is_a_note(builders):
    study = optuna.create_study(storage=optuna.storages.InMemoryStorage(), direction="maximize")
    for number in range(8):
        width = 8 * (number + 1)
        builders.add(study, {"width": width, "lr": 0.01}, TrialState.COMPLETE, [0.3 + 0.01 * number],
                     **builders.attrs(0.3 + 0.01 * number, 1000 * width**2, 10.0))
    report = collect(study)
    assert report.importances == {}
    assert "two varying parameters" in report.importance_notes["val_accuracy"]


def test_importance_finds_the_parameter_that_drives_each_target(report):
    # In the synthetic study width drives accuracy, parameter count and time.
    assert set(report.importances) == set(AXES)
    for target, values in report.importances.items():
        assert sum(values.values()) == pytest.approx(1.0)
        assert max(values, key=values.get) == "width", target
    assert report.importance_notes == {}


def test_synthetic_report_summary(report, study):
    assert report.state_counts == {"COMPLETE": 14, "PRUNED": 4, "FAIL": 2}
    assert report.stop_reason_counts == {"pruned": 3, "diverged": 1, "constraint": 1, "oom": 1}
    expected_seconds = sum(t.user_attrs.get("train_seconds", 0.0) for t in study.trials)
    assert report.compute_seconds == pytest.approx(expected_seconds)
    best = {t.number for t in study.best_trials}
    assert set(report.front.front_trial_numbers) == best
    assert report.knee_trial in best
    assert report.search_space["width"] == "[8, 64] step 8"
    assert report.search_space["lr"] == "[0.0001, 0.1] log"
    assert report.search_space["batch_size"] == "{64, 128, 256}"
    assert report.search_space["optimizer"] == "fixed: sgd"
    assert report.varying_params == ["batch_size", "lr", "width"]
    assert 0 < report.hypervolume < 1 and math.isfinite(report.hypervolume)
