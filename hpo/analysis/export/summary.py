"""The text every report format shares: facts about the study, the summary, the knee's details."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from hpo.analysis.intervals import is_interval_key
from hpo.analysis.refits import REFIT_SEEDS, REFIT_TEST, REFIT_VAL, is_refit_detail_key
from hpo.analysis.report import KNEE, TIES_KNEE, WARM_FROM, StudyReport, display_cell, format_cell
from hpo.data.sizes import KIND_CLASSES, split_sizes_of
from hpo.trials import MACS, N_VAL_IMAGES, OBJECTIVES, PARAM_COUNT, REPORTED_FIELDS, TEST_ACCURACY, TRAIN_SECONDS, VAL_ACCURACY

# Short titles of the front table's columns; parameter columns keep their names.
COLUMN_TITLES = {
    "trial": "Trial",
    VAL_ACCURACY: "Val acc",
    PARAM_COUNT: "Params",
    MACS: "MACs",
    TRAIN_SECONDS: "Train s",
    TEST_ACCURACY: "Test acc",
    KNEE: "Knee",
    TIES_KNEE: "Ties knee",
    WARM_FROM: "Warm from",  # a warm-start trial's source, STUDY#N
    REFIT_VAL: "Refit val (mean ± std)",
    REFIT_TEST: "Refit test (mean ± std)",
    REFIT_SEEDS: "Seeds",
}

# What the front tables say under them about the intervals and the marks.
INTERVAL_NOTE = ("Accuracies with their 95% Wilson interval; 'Ties knee': the interval overlaps the knee's, "
                 "so the validation images cannot tell the two apart.")


def header(column: str) -> str:
    """The title of a front-table column."""
    return COLUMN_TITLES.get(column, column)


def dataset_text(report: StudyReport) -> str:
    """The dataset in a few words, e.g. ``minicifar, 4 classes, R=5, 80% of the training images for
    training, 20% for validation (3,200 / 800)`` (the counts where the definition gives them)."""
    dataset = report.definition.get("dataset") or {}
    if not isinstance(dataset, Mapping) or not dataset:
        return "dataset not recorded"
    kind = str(dataset.get("kind", "minicifar"))  # a section without a kind is MINICIFAR's (the default)
    parts = [kind]
    # n_classes and R shape MINICIFAR only; a stored CIFAR-10 or folder definition carries their defaults.
    if kind == "minicifar":
        if dataset.get("n_classes") is not None:
            parts.append(f"{dataset['n_classes']} classes")
        if dataset.get("R") is not None:
            parts.append(f"R={dataset['R']}")
    elif kind in KIND_CLASSES:
        parts.append(f"{KIND_CLASSES[kind]} classes")
    elif kind == "folder" and dataset.get("image_size") is not None:
        parts.append(f"images resized to {dataset['image_size']}x{dataset['image_size']}")
    fraction = dataset.get("train_size")
    if isinstance(fraction, (int, float)) and 0 < fraction < 1:
        text = f"{100 * fraction:.3g}% of the training images for training, {100 * (1 - fraction):.3g}% for validation"
        parts.append(text + _split_counts(report, dataset))
    return ", ".join(parts)


def _split_counts(report: StudyReport, dataset: Mapping[str, Any]) -> str:
    """`` (3,200 / 800)`` when the trials' validation counts agree with the definition's split;
    `` (30 validation images)`` when they measured on another count (a smaller data folder)."""
    counts = {row[N_VAL_IMAGES] for row in report.trials if row.get(N_VAL_IMAGES)}
    sizes = split_sizes_of(dataset)
    if sizes is not None and counts == {sizes.val}:
        return f" ({sizes.train:,} / {sizes.val:,})"
    if len(counts) == 1:
        return f" ({next(iter(counts)):,} validation images)"
    return ""


def budget_text(report: StudyReport) -> str:
    """The budget, e.g. ``20 trials, up to 4 epochs each`` or ``4m of worker time, up to 4 epochs each``."""
    n_trials = report.n_trials if report.n_trials is not None else report.definition.get("n_trials")
    epochs = report.definition.get("epochs")
    parts = []
    if n_trials is not None:
        parts.append(f"{n_trials} trials")
    if report.time_budget is not None:
        parts.append(f"{report.time_budget} of worker time")
    if epochs is not None:
        parts.append(f"up to {epochs} epochs each")
    return ", ".join(parts) or "budget not recorded"


def _named_args(spec: Any) -> str:
    if not spec:
        return "none"
    if isinstance(spec, str):
        return spec
    if isinstance(spec, Mapping):
        name = str(spec.get("name", "?"))
        args = spec.get("args") or {}
        if args:
            name += " (" + ", ".join(f"{k}={v}" for k, v in args.items()) + ")"
        return name
    return str(spec)


def _duration(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    if seconds >= 60:
        return f"{seconds / 60:.1f} min"
    return f"{seconds:.0f} s"


def counts_text(report: StudyReport) -> str:
    """Trials by state, e.g. ``14 complete, 4 pruned, 2 failed``."""
    counts = report.state_counts
    text = (
        f"{counts.get('COMPLETE', 0)} complete, {counts.get('PRUNED', 0)} pruned, "
        f"{counts.get('FAIL', 0)} failed"
    )
    running = counts.get("RUNNING", 0) + counts.get("WAITING", 0)
    if running:
        text += f", {running} running"
    return text


def summary_sentence(report: StudyReport) -> str:
    """One sentence: trials, training time, the front's size, its hypervolume and knee."""
    knee = report.knee_trial
    axes = ", ".join(report.axes)
    text = (
        f"{counts_text(report)} trials, {_duration(report.compute_seconds)} of training; "
        f"front on ({axes}) has {len(report.front.front_trial_numbers)} "
        f"{'trial' if len(report.front.front_trial_numbers) == 1 else 'trials'}, "
        f"hypervolume {report.hypervolume:.4f}"
    )
    if knee is not None:
        text += f", knee trial {knee}"
    return text + "."


def strategy_lines(report: StudyReport) -> list[str]:
    """How the study searched: objectives, sampler, pruner, outcomes, compute and hypervolume."""
    objectives = ", ".join(
        f"{direction} {name}" for name, direction in zip(report.metric_names, report.directions)
    )
    reasons = ", ".join(f"{k}: {v}" for k, v in sorted(report.stop_reason_counts.items()))
    ref = report.reference
    params_key, seconds_key = (OBJECTIVES[name].reference_key for name in (PARAM_COUNT, TRAIN_SECONDS))
    lines = [
        f"Objectives: {objectives}",
        f"Sampler: {_named_args(report.definition.get('sampler'))}",
        f"Pruner: {_named_args(report.definition.get('pruner'))}",
        f"Trials: {counts_text(report)}",
    ]
    if reasons:
        lines.append(f"Stop reasons: {reasons}")
    if warm_start_text(report):
        lines.append(warm_start_text(report))
    if refit_text(report):
        lines.append(refit_text(report))
    lines += [
        f"Compute spent: {_duration(report.compute_seconds)} of training",
        f"Hypervolume: {report.hypervolume:.4f} (reference: acc 0, "
        f"{ref[params_key]:.0e} params, {ref[seconds_key]:g} s)",
    ]
    return lines


def refit_text(report: StudyReport) -> str:
    """What the refits say: which configurations, how many seeds, the knee on their means, and the
    neighbours whose order the seeds do not settle; ``""`` for a study without refits."""
    from hpo.analysis.refits import within_spread_text

    if not report.refits:
        return ""
    seeds = sorted({stats.n for stats in report.refits.values()})
    text = (f"Refits: trials {', '.join(map(str, sorted(report.refits)))} retrained with "
            f"{'/'.join(map(str, seeds))} new seeds each (mean ± std over seeds in the table); "
            f"knee chosen on the refit means: trial {report.knee_trial}.")
    return f"{text} {within_spread_text(report.refits)}".rstrip()


def warm_start_text(report: StudyReport) -> str:
    """``Warm start: trials 0, 1 warm-started from resnet-mini (its trials 7, 3).``, or ``""`` for a study without one."""
    from hpo.warm_start import describe_marks

    marks = {row["number"]: row[WARM_FROM] for row in report.trials if row.get(WARM_FROM)}
    return f"Warm start: {describe_marks(marks)}." if marks else ""


# Accuracies and losses of the knee trial: validation first, then test, then training.
_SPLITS = ("val", "test", "train")


def _detail_order(name: str, value: Any) -> tuple[int, int]:
    """Accuracies, then losses (each by split), then the other numbers, then text (device, checkpoint)."""
    for kind, suffix in enumerate(("accuracy", "loss")):
        if name.endswith(suffix):
            return kind, next((i for i, split in enumerate(_SPLITS) if name.startswith(split)), len(_SPLITS))
    return (2 if isinstance(value, (int, float)) else 3), 0


def knee_items(report: StudyReport) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """The knee trial's parameters and recorded metrics, as (name, shown value) pairs.

    Args:
        report: A collected study.

    Returns:
        (parameters by name, metrics in :func:`_detail_order`); both empty without a knee.
    """
    knee = report.knee_trial
    if knee is None:
        return [], []
    row = report.trial(knee)
    params = [(name, format_cell(name, value)) for name, value in sorted(row["params"].items())]
    # The knee is a complete trial, so it has no stop reason to show.
    recorded = [(name, row[name]) for name in REPORTED_FIELDS if row.get(name) is not None]
    metrics = [(name, display_cell(row, name)) for name, _ in sorted(recorded, key=lambda item: _detail_order(*item))]
    return params, metrics


def display_columns(report: StudyReport, table: Sequence[Mapping[str, Any]], max_params: int | None) -> list[str]:
    """The front-table columns a page or slide shows: metrics (MACs only when recorded), then parameters.

    Args:
        report: A collected study.
        table: Its front table.
        max_params: At most this many parameters, the most important for accuracy first (None: all).

    Returns:
        Column names.
    """
    if not table:
        return []
    columns = [c for c in table[0] if c in COLUMN_TITLES]
    if all(row.get(MACS) is None for row in table):
        columns.remove(MACS)
    if TIES_KNEE in columns and (len(table) == 1 or all(row.get(TIES_KNEE) is None for row in table)):
        columns.remove(TIES_KNEE)  # no interval known, or the knee alone: nothing to mark
    params = [c for c in table[0] if c not in COLUMN_TITLES and not is_interval_key(c) and not is_refit_detail_key(c)]
    if max_params is not None:
        # The parameters that matter most for accuracy earn the few columns a slide has.
        ranking = report.importances.get(VAL_ACCURACY, {})
        params = sorted(params, key=lambda p: -ranking.get(p, 0.0))[:max_params]
    return columns + params
