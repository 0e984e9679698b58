"""The trial vocabulary's stop-reason table, as README and DECISIONS state it."""

from __future__ import annotations

import pytest
from optuna.trial import TrialState

from hpo.trials import OBJECTIVES, StopReason, TrialRecord, directions

# reason -> (state, retried from its checkpoint, counted in N, counts towards the failure streak)
TABLE = {
    "pruned": (TrialState.PRUNED, False, True, False),
    "diverged": (TrialState.PRUNED, False, True, False),
    "too_slow": (TrialState.PRUNED, False, True, False),
    "deadline": (TrialState.PRUNED, False, True, False),
    "constraint": (TrialState.FAIL, False, False, True),
    "oom": (TrialState.FAIL, False, False, True),
    "error": (TrialState.FAIL, False, False, True),
    "interrupted": (TrialState.FAIL, True, False, False),
    "worker_lost": (TrialState.FAIL, True, False, False),
    "budget": (TrialState.FAIL, False, False, False),
}


@pytest.mark.parametrize("value", sorted(TABLE))
def test_stop_reason_table(value):
    reason = StopReason(value)
    assert (reason.state, reason.retryable, reason.counts_in_budget, reason.counts_as_failure) == TABLE[value]
    assert str(reason) == value


def test_every_reason_is_in_the_table():
    assert {r.value for r in StopReason} == set(TABLE)


def test_record_round_trip_keeps_what_it_does_not_know():
    attrs = {"val_accuracy": 0.7, "stop_reason": "pruned", "later_release_field": 3}
    record = TrialRecord.from_attrs(attrs)
    assert record.stop_reason is StopReason.PRUNED and record.extra == {"later_release_field": 3}
    assert record.to_attrs() == attrs
    unknown = TrialRecord.from_attrs({"stop_reason": "a_reason_from_the_future"})
    assert unknown.stop_reason is None and unknown.stop_reason_text == "a_reason_from_the_future"
    assert unknown.to_attrs() == {"stop_reason": "a_reason_from_the_future"}


def test_directions_come_from_the_objective_table():
    assert directions(["val_accuracy", "param_count", "train_seconds", "macs"]) == [
        "maximize", "minimize", "minimize", "minimize"]
    assert set(OBJECTIVES) == {"val_accuracy", "param_count", "train_seconds", "macs"}
