"""Intervals on every accuracy: split sizes from a definition, the knee rule, and every output that shows them."""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import optuna
import pytest
from optuna.trial import TrialState

from hpo.analysis import plots, terminal
from hpo.analysis.export import export
from hpo.analysis.intervals import (
    accuracy_interval,
    measured_on,
    tie,
    ties_with,
    whole_count,
    wilson_interval,
)
from hpo.analysis.pareto import front_info, knee_point, tied_costlier_mask
from hpo.analysis.report import collect, display_cell, front_table
from hpo.data import DatasetConfig, load_dataset
from hpo.data.sizes import SplitSizes, split_sizes, split_sizes_of

AXES = ["val_accuracy", "param_count", "train_seconds"]


# --- split sizes from the definition ------------------------------------------------------------


@pytest.mark.parametrize("section, sizes", [
    ({"kind": "minicifar", "n_classes": 4, "R": 5, "train_size": 0.8}, SplitSizes(3200, 800, 800)),  # the Quickstart
    ({"kind": "minicifar", "n_classes": 10, "R": 10, "train_size": 0.8}, SplitSizes(4000, 1000, 1000)),
    ({"kind": "minicifar", "n_classes": 4, "R": 1, "train_size": 0.75}, SplitSizes(15000, 5000, 4000)),
    # 3 x 1666 = 4998 kept; round(0.75 x 4998) = round(3748.5) = 3748 (half to even, as load_dataset)
    ({"kind": "minicifar", "n_classes": 3, "R": 3, "train_size": 0.75}, SplitSizes(3748, 1250, 999)),
    ({"kind": "cifar10", "train_size": 0.8}, SplitSizes(40000, 10000, 10000)),
    ({"kind": "cifar100", "train_size": 0.9}, SplitSizes(45000, 5000, 10000)),
])
def test_split_sizes_of_known_definitions(section, sizes):
    assert split_sizes(DatasetConfig.from_dict(section)) == sizes
    assert split_sizes_of(section) == sizes


def test_no_sizes_for_a_folder_or_a_bad_section():
    assert split_sizes_of({"kind": "folder", "train_size": 0.8}) is None
    assert split_sizes_of({"kind": "minicifar", "train_size": 400}) is None  # invalid: no sizes, no error
    assert split_sizes_of(None) is None and split_sizes_of({}) is None


@pytest.mark.parametrize("n_classes, R, train_size", [(4, 1, 0.75), (4, 3, 0.7), (3, 7, 0.5), (10, 2, 0.8)])
def test_split_sizes_are_what_load_dataset_splits(fake_cifar, n_classes, R, train_size):
    # The fake has 30 training and 10 test images per class; the arithmetic is the same as for 5000 / 1000.
    config = DatasetConfig(kind="minicifar", n_classes=n_classes, R=R, train_size=train_size)
    data = load_dataset(config, fake_cifar, split_seed=0)
    assert split_sizes(config, per_class=(30, 10)) == SplitSizes(len(data.train), len(data.val), len(data.test))


# --- counts and intervals -------------------------------------------------------------------------


def test_whole_counts_and_measured_on():
    assert whole_count(23 / 30, 30) and not whole_count(23 / 30, 5000)
    assert whole_count(0.7, 800) and whole_count(0.0, 7) and whole_count(1.0, 7)
    assert measured_on(30, 5000, [0.1234]) == 30  # a stored count is the truth
    assert measured_on(None, 800, [0.7, 0.55, None]) == 800  # 560 and 440 of 800: fits
    assert measured_on(None, 5000, [23 / 30]) is None  # the legacy trial on the fake CIFAR: does not fit
    assert measured_on(None, None, [0.7]) is None and measured_on(None, 800, [None]) is None


def test_accuracy_interval_and_ties():
    assert accuracy_interval(0.7, 800) == wilson_interval(0.7, 800)
    assert accuracy_interval(None, 800) is None and accuracy_interval(0.7, None) is None
    assert accuracy_interval(1.5, 800) is None  # shown without an interval rather than failing
    intervals = [wilson_interval(0.70, 800), wilson_interval(0.72, 800), wilson_interval(0.80, 800), None]
    assert ties_with(intervals, 0) == [True, True, False, None]


# --- the knee rule, on a hand-made front ----------------------------------------------------------

# Accuracy (measured on 800 images) against parameters. A and B tie (0.70 [0.667, 0.731] and 0.72
# [0.688, 0.750]) and A is cheaper; C and D tie (0.90 [0.877, 0.919], 0.905 [0.883, 0.923]), C cheaper.
HAND_FRONT = np.array([[0.70, 1e4], [0.72, 1.2e4], [0.90, 1e7], [0.905, 2e7]])
HAND_INTERVALS = [wilson_interval(a, 800) for a in HAND_FRONT[:, 0]]


def test_tied_costlier_members_are_set_aside():
    mask = tied_costlier_mask(HAND_FRONT, ["val_accuracy", "param_count"], HAND_INTERVALS)
    assert mask.tolist() == [False, True, False, True]


def test_the_knee_is_chosen_after_setting_them_aside():
    axes = ["val_accuracy", "param_count"]
    # Normalised: A (0.30, 0.500), B (0.28, 0.510), C (0.10, 0.875), D (0.095, 0.913). Without
    # intervals the ideal is (0.095, 0.5) and B is nearest (0.185; A 0.205): 2% more accuracy
    # that 800 images cannot confirm. Without B and D the ideal is (0.10, 0.5): A (0.20) beats C (0.375).
    assert knee_point(HAND_FRONT, axes) == 1
    assert knee_point(HAND_FRONT, axes, intervals=HAND_INTERVALS) == 0
    # Unknown intervals neither are set aside nor set others aside.
    assert knee_point(HAND_FRONT, axes, intervals=[None, None, None, None]) == 1
    assert tied_costlier_mask(HAND_FRONT, axes, [HAND_INTERVALS[0], None, None, None]).tolist() == [False] * 4


def test_the_rule_keeps_the_cheapest_and_one_of_equal_twins():
    axes = ["val_accuracy", "param_count", "train_seconds"]
    twins = np.array([[0.7, 1e4, 10.0], [0.7, 1e4, 10.0]])
    assert tied_costlier_mask(twins, axes, [wilson_interval(0.7, 800)] * 2).tolist() == [False, True]
    # Everything ties: only the cheapest stays, so the knee is it.
    points = np.array([[0.70, 1e4, 30.0], [0.71, 1e5, 20.0], [0.72, 1e6, 10.0]])
    wide = [(0.0, 1.0)] * 3
    assert tied_costlier_mask(points, axes, wide).tolist() == [False, False, False]  # none no worse on both costs
    assert tied_costlier_mask(points[:, :2], axes[:2], wide).tolist() == [False, True, True]
    assert knee_point(points[:, :2], axes[:2], intervals=wide) == 0
    # Without an accuracy axis there is nothing to tie.
    assert not tied_costlier_mask(points[:, 1:], axes[1:], wide).any()


def test_ties_do_not_chain_a_confirmed_gain_away():
    # 60%, 64% and 68% on 800 images at growing cost: 64% ties both (0.606 < 0.633 and 0.647 < 0.672),
    # 68% does not tie 60% (0.647 > 0.633). 64% is set aside for 60%; 68% ties only that set-aside
    # trial, and its gain over the cheaper trial that stays is confirmed, so it stays.
    axes = ["val_accuracy", "param_count"]
    chain = np.array([[0.60, 1e4], [0.64, 2e4], [0.68, 3e4]])
    intervals = [wilson_interval(a, 800) for a in chain[:, 0]]
    assert tie(intervals[0], intervals[1]) and tie(intervals[1], intervals[2]) and not tie(intervals[0], intervals[2])
    assert tied_costlier_mask(chain, axes, intervals).tolist() == [False, True, False]
    # The order of the rows does not matter: the cheapest are taken first.
    assert tied_costlier_mask(chain[::-1], axes, intervals[::-1]).tolist() == [False, True, False]


def test_front_info_reads_intervals_and_marks_ties_with_the_knee():
    rows = [{"number": i, "val_accuracy": a, "param_count": p,
             "val_accuracy_lower": lo, "val_accuracy_upper": hi}
            for i, ((a, p), (lo, hi)) in enumerate(zip(HAND_FRONT, HAND_INTERVALS))]
    info = front_info(rows, ["val_accuracy", "param_count"])
    assert info.knee_trial == 0
    assert [info.ties_knee(n) for n in range(4)] == [False, True, False, False]
    plain = front_info([{k: v for k, v in row.items() if "_lower" not in k and "_upper" not in k} for row in rows],
                       ["val_accuracy", "param_count"])
    assert plain.knee_trial == 1 and plain.ties_knee(0) is None and plain.ties_knee(1) is False


# --- reports on generated studies -----------------------------------------------------------------

N_VAL = 800


def interval_study(builders, *, stored: bool = True, test_of: int | None = None) -> optuna.Study:
    """Five complete trials on MINICIFAR's 800 validation images: accuracies k / 800.

    Front {0, 1, 2, 3}: 1 ties 0 and is costlier (set aside), 3 ties 2 and is costlier; 4 is dominated.
    ``stored=False`` leaves out n_val_images, as trials stored before it was added.
    """
    study = optuna.create_study(storage=optuna.storages.InMemoryStorage(), directions=["maximize", "minimize", "minimize"],
                                study_name="intervals")
    study.set_metric_names(AXES)
    definition = {**builders.definition, "dataset": {"kind": "minicifar", "n_classes": 4, "R": 5, "train_size": 0.8}}
    study.set_user_attr("definition", definition)
    trials = [(560, 1e4, 10.0, 8), (576, 1.2e4, 11.0, 16), (720, 1e7, 60.0, 48), (724, 2e7, 70.0, 56), (400, 2e7, 90.0, 64)]
    for number, (k, params, seconds, width) in enumerate(trials):
        attrs = builders.attrs(k / N_VAL, params, seconds)
        attrs["history"] = [{**entry, "val_accuracy": (k - 80 * (4 - entry["epoch"])) / N_VAL} for entry in attrs["history"]]
        if stored:
            attrs["n_val_images"] = N_VAL
        builders.add(study, {"width": width, "lr": 0.01}, TrialState.COMPLETE, [k / N_VAL, params, seconds], **attrs)
    if test_of is not None:
        study.set_user_attr(f"test_accuracy:{test_of}", 300 / 400)
        study.set_user_attr(f"test_images:{test_of}", 400)
    return study


@pytest.fixture(scope="module")
def interval_report(builders):
    return collect(interval_study(builders, test_of=2))


def test_rows_and_front_table_carry_intervals_ties_and_the_knee(interval_report):
    report = interval_report
    row = report.trial(0)
    assert row["n_val_images"] == N_VAL
    assert (row["val_accuracy_lower"], row["val_accuracy_upper"]) == pytest.approx((0.6674, 0.7307), abs=1e-4)
    table = front_table(report)
    assert [r["trial"] for r in table] == [3, 2, 1, 0]
    assert report.knee_trial == 0  # without intervals: 1 (see test_the_knee_is_chosen_after_setting_them_aside)
    by_trial = {r["trial"]: r for r in table}
    assert [by_trial[n]["ties_knee"] for n in range(4)] == [False, True, False, False]
    assert list(table[0])[:12] == ["trial", "val_accuracy", "val_accuracy_lower", "val_accuracy_upper", "param_count",
                                   "macs", "train_seconds", "test_accuracy", "test_accuracy_lower",
                                   "test_accuracy_upper", "knee", "ties_knee"]
    # hpo evaluate's test accuracy, on its 400 stored test images
    assert (by_trial[2]["test_accuracy_lower"], by_trial[2]["test_accuracy_upper"]) == pytest.approx(wilson_interval(0.75, 400))
    assert by_trial[0]["test_accuracy"] is None and by_trial[0]["test_accuracy_lower"] is None
    assert display_cell(by_trial[0], "val_accuracy") == "70.00% [66.7, 73.1]"


def test_counts_are_derived_for_trials_stored_before(builders, interval_report):
    report = collect(interval_study(builders, stored=False))
    assert report.trial(0)["n_val_images"] == N_VAL  # 4 classes x 1000 kept, 20% validate; k / 800 fits
    for number in range(5):
        for key in ("val_accuracy_lower", "val_accuracy_upper"):
            assert report.trial(number)[key] == pytest.approx(interval_report.trial(number)[key])
    assert report.knee_trial == 0
    # One accuracy that is no whole number of 800 images: that trial gets no interval.
    study = interval_study(builders, stored=False)
    builders.add(study, {"width": 8, "lr": 0.02}, TrialState.COMPLETE, [0.7001, 9e3, 9.0], **builders.attrs(0.7001, 9e3, 9.0))
    odd = collect(study).trial(5)
    assert odd["n_val_images"] is None and odd["val_accuracy_lower"] is None


def test_pareto_json_csv_and_table(interval_report):
    document = json.loads(terminal.front_json(interval_report))
    assert document["confidence"] == 0.95 and document["knee_trial"] == 0
    first = document["front"][0]
    assert first["val_accuracy_lower"] < first["val_accuracy"] < first["val_accuracy_upper"]
    assert {row["trial"]: row["ties_knee"] for row in document["front"]} == {3: False, 2: False, 1: True, 0: False}
    rows = list(csv.DictReader(terminal.front_csv(interval_report).splitlines()))
    assert float(rows[0]["val_accuracy_lower"]) == pytest.approx(wilson_interval(724 / 800, 800)[0])
    assert [row["ties_knee"] for row in rows] == ["False", "False", "True", "False"]
    from rich.console import Console

    console = Console(width=240, record=True)
    console.print(terminal.front_rich_table(interval_report))
    text = console.export_text()
    assert "70.00% [66.7, 73.1]" in text and "ties" in text and "val_accuracy_lower" not in text


def test_every_file_export_shows_the_intervals(interval_report, tmp_path):
    (path,) = export(interval_report, "csv", tmp_path / "front.csv")
    header = path.read_text().splitlines()[0].split(",")
    assert {"val_accuracy_lower", "val_accuracy_upper", "test_accuracy_lower", "test_accuracy_upper", "ties_knee"} <= set(header)
    (path,) = export(interval_report, "md", tmp_path / "front.md")
    lines = path.read_text().splitlines()
    assert "Ties knee" in lines[4]
    row_1 = next(line for line in lines if line.startswith("| 1 |"))
    assert "72.00% [68.8, 75.0]" in row_1 and "| yes |" in row_1
    (path,) = export(interval_report, "tex", tmp_path / "front.tex")
    assert "70.00\\% [66.7, 73.1]" in path.read_text()
    (path,) = export(interval_report, "html", tmp_path / "report.html")
    page = path.read_text()
    assert 'id="trial-1" class="ties"' in page and 'id="trial-0" class="knee"' in page
    assert "72.00% [68.8, 75.0]" in page and "95% Wilson interval" in page


def test_front_figures_draw_asymmetric_error_bars_and_ring_the_ties(interval_report):
    for axis in ("param_count", "train_seconds"):
        figure = plots.plot_front(interval_report, axis)
        front = next(trace for trace in figure.data if trace.name.startswith("Pareto front"))
        bars = front.error_y
        assert bars.type == "data" and bars.symmetric is False and bars.visible is not False
        for y, up, down in zip(front.y, bars.array, bars.arrayminus):
            low, high = wilson_interval(y, N_VAL)
            assert (y + up, y - down) == pytest.approx((high, low))
            assert up != pytest.approx(down)  # asymmetric away from 0.5
        ties = next(trace for trace in figure.data if trace.name.startswith("ties the knee"))
        assert list(ties.y) == [576 / 800] and ties.marker.symbol == "circle-open"
        grey = next(trace for trace in figure.data if trace.name.startswith("complete"))
        assert grey.error_y.array is not None  # the dominated trial has its bar too
        assert "[" in figure.layout.annotations[0].text  # the knee's annotation shows its interval


def test_without_counts_the_figures_and_tables_look_as_before(report):
    # The synthetic study stores no counts and its definition gives none.
    figure = plots.plot_front(report, "param_count")
    assert all(trace.error_y.array is None for trace in figure.data)
    assert not any(trace.name.startswith("ties the knee") for trace in figure.data)
    assert all(not math.isnan(row["val_accuracy"]) and row["val_accuracy_lower"] is None for row in front_table(report))


def test_title_slide_says_the_train_fraction(interval_report, report):
    from hpo.analysis.export.summary import dataset_text

    assert dataset_text(interval_report) == (
        "minicifar, 4 classes, R=5, 80% of the training images for training, 20% for validation (3,200 / 800)")
    assert dataset_text(report) == "minicifar, 10 classes, R=10"  # its train_size (400) is no fraction: left out


def test_dataset_text_names_only_what_shapes_the_studys_kind(report):
    import dataclasses

    from hpo.analysis.export.summary import dataset_text

    def text(section):
        return dataset_text(dataclasses.replace(report, definition={**report.definition, "dataset": section}))

    # A stored CIFAR definition carries MINICIFAR's defaults (n_classes 4, R 5): they shape nothing there.
    assert text({"kind": "cifar10", "n_classes": 4, "R": 5, "train_size": 0.9, "image_size": 32}) == (
        "cifar10, 10 classes, 90% of the training images for training, 10% for validation")
    assert text({"kind": "cifar100", "n_classes": 4, "R": 5}) == "cifar100, 100 classes"
    assert text({"kind": "folder", "n_classes": 4, "R": 5, "image_size": 64}) == "folder, images resized to 64x64"
    assert text({"n_classes": 4, "R": 2}) == "minicifar, 4 classes, R=2"  # no kind: MINICIFAR, the default


def test_status_shows_the_best_trials_with_intervals(builders):
    from rich.console import Console

    from hpo import monitor

    snapshot = monitor.progress(interval_study(builders, stored=False))
    assert {b["number"] for b in snapshot.best} == {0, 1, 2, 3}
    assert snapshot.best[0]["interval"] == pytest.approx(wilson_interval(snapshot.best[0]["values"][0], N_VAL))
    console = Console(width=200, record=True)
    console.print(monitor.render(snapshot))
    assert "70.00% [66.7, 73.1]" in console.export_text()  # the one accuracy format (hpo.analysis.intervals)
    first = snapshot.best[0]
    low, high = wilson_interval(first["values"][0], N_VAL)
    assert f"val_accuracy={100 * first['values'][0]:.2f}% [{100 * low:.1f}, {100 * high:.1f}]" in monitor.summary_line(snapshot)


@pytest.mark.browser
def test_the_deck_shows_intervals_and_ties(interval_report, tmp_path, browser):
    from pptx import Presentation

    (path,) = export(interval_report, "pptx", tmp_path / "deck.pptx")
    slides = list(Presentation(str(path)).slides)
    title = "\n".join(shape.text_frame.text for shape in slides[0].shapes if shape.has_text_frame)
    assert "80% of the training images for training, 20% for validation (3,200 / 800)" in title
    table_slide = next(slide for slide in slides if slide.shapes.title.text.startswith("Pareto front trials"))
    (table,) = [shape.table for shape in table_slide.shapes if shape.has_table]
    cells = [[cell.text for cell in row.cells] for row in table.rows]
    ties = cells[0].index("Ties knee")
    assert {row[0]: row[ties] for row in cells[1:]} == {"3": "", "2": "", "1": "yes", "0": ""}
    assert {row[0]: row[1] for row in cells[1:]}["0"] == "70.00% [66.7, 73.1]"
