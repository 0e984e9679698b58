"""The figures draw what the report computed: the right trials in the right traces."""

from __future__ import annotations

import numpy as np
import pytest

from hpo.analysis import plots
from hpo.analysis.report import StudyReport


def trace(fig, prefix: str):
    matches = [t for t in fig.data if t.name and t.name.startswith(prefix)]
    assert len(matches) == 1, [t.name for t in fig.data]
    return matches[0]


@pytest.mark.parametrize("axis", ["param_count", "train_seconds"])
def test_front_figure_highlights_the_2d_front_and_marks_the_knee(report: StudyReport, axis):
    fig = plots.plot_front(report, axis)
    info = report.pair_fronts[axis]
    front = trace(fig, "Pareto front")
    front_rows = [report.trial(n) for n in info.front_trial_numbers]
    assert sorted(front.x) == sorted(r[axis] for r in front_rows)
    assert list(front.x) == sorted(front.x)  # connected left to right
    assert len(front.x) == len(info.front_trial_numbers)

    background = trace(fig, "complete")
    complete = {r["number"] for r in report.rows("COMPLETE")}
    assert len(background.x) == len(complete - set(info.front_trial_numbers))
    pruned = trace(fig, "pruned")
    assert len(pruned.x) == len(report.pruned_numbers) == 4

    knee = report.trial(report.knee_trial)
    star = trace(fig, "knee")
    assert (star.x[0], star.y[0]) == (knee[axis], knee["val_accuracy"])
    assert f"trial {report.knee_trial}" in fig.layout.annotations[0].text

    assert fig.layout.width == 1200 and fig.layout.height == 675 and fig.layout.font.size == 18
    assert fig.layout.xaxis.title.text and fig.layout.yaxis.title.text == "Validation accuracy"
    assert (fig.layout.xaxis.type == "log") == (axis == "param_count")


def test_learning_curves_show_train_and_validation_of_front_trials(report: StudyReport):
    fig = plots.plot_learning_curves(report, max_trials=3)
    names = [t.name for t in fig.data]
    chosen = [r["number"] for r in report.front_rows][:3]
    if report.knee_trial not in chosen:
        chosen = chosen[:2] + [report.knee_trial]
    for number in chosen:
        assert any(n.startswith(f"trial {number}") and n.endswith(" val") for n in names)
        assert any(n.startswith(f"trial {number}") and n.endswith(" train") for n in names)
    assert len(fig.data) == 2 * len(chosen)
    val = next(t for t in fig.data if t.name.startswith(f"trial {chosen[0]}") and t.name.endswith("val"))
    history = report.trial(chosen[0])["history"]
    assert list(val.y) == pytest.approx([h["val_accuracy"] for h in history])


def test_importance_bars_match_the_report(report: StudyReport):
    fig = plots.plot_importances(report)
    assert len(fig.data) == len(report.importances)
    accuracy_bars = fig.data[list(report.importances).index("val_accuracy")]
    for param, value in zip(accuracy_bars.y, accuracy_bars.x):
        assert value == pytest.approx(report.importances["val_accuracy"][param])
    assert accuracy_bars.y[-1] == "width"  # most important drawn on top


def test_importance_figure_explains_why_it_is_empty(report: StudyReport):
    empty = StudyReport(**{**report.__dict__, "importances": {}, "importance_notes": {"val_accuracy": "too few"}})
    fig = plots.plot_importances(empty)
    assert len(fig.data) == 0
    assert "too few" in fig.layout.annotations[0].text


def test_history_best_so_far_is_the_running_maximum(report: StudyReport):
    fig = plots.plot_history(report)
    best = trace(fig, "best so far")
    complete = [r for r in report.rows("COMPLETE")]
    assert list(best.x) == [r["number"] for r in complete]
    assert np.all(np.diff(best.y) >= 0)
    assert best.y[-1] == pytest.approx(max(r["val_accuracy"] for r in complete))


def test_figures_are_named_for_files(report: StudyReport):
    assert list(plots.figures(report)) == ["front_params", "front_time", "learning_curves", "importance", "history"]
