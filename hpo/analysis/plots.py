"""Plotly figures of a collected study; they only draw what `report.collect` computed.

Every figure is sized for a 16:9 slide (1200 x 675 px, 18 pt text) so the PNGs drop into the
PowerPoint export unchanged and stay readable from the back of a room.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go

from hpo.analysis.intervals import lower_key, upper_key
from hpo.analysis.pareto import AXIS_LABELS
from hpo.analysis.report import (
    StudyReport,
    display_cell,
    format_cell,
    format_count,
    history_arrays,
)
from hpo.trials import MACS, PARAM_COUNT, TRAIN_SECONDS, VAL_ACCURACY

WIDTH, HEIGHT, FONT_SIZE = 1200, 675, 18

# Okabe-Ito colours: distinguishable with the common colour-vision deficiencies.
GREY = "#b8b8b8"
PRUNED = "#e69f00"
FRONT = "#0072b2"
KNEE = "#d55e00"
PALETTE = ["#0072b2", "#d55e00", "#009e73", "#cc79a7", "#e69f00", "#56b4e9", "#f0e442", "#000000"]


def _layout(fig: go.Figure, title: str, x_title: str, y_title: str) -> go.Figure:
    fig.update_layout(
        title={"text": title, "x": 0.02, "xanchor": "left"},
        width=WIDTH,
        height=HEIGHT,
        font={"size": FONT_SIZE},
        template="plotly_white",
        margin={"l": 90, "r": 40, "t": 80, "b": 80},
        legend={"bgcolor": "rgba(255,255,255,0.8)"},
    )
    fig.update_xaxes(title_text=x_title)
    fig.update_yaxes(title_text=y_title)
    return fig


def _hover(row: dict[str, Any]) -> str:
    parts = [f"trial {row['number']}"]
    for key in (VAL_ACCURACY, PARAM_COUNT, TRAIN_SECONDS, MACS):
        if row.get(key) is not None:
            parts.append(f"{key}: {display_cell(row, key)}")
    parts += [f"{name}: {format_cell(name, value)}" for name, value in sorted(row["params"].items())]
    return "<br>".join(parts)


def accuracy_error_bars(rows: list[dict[str, Any]], colour: str, thickness: float = 1.5) -> dict[str, Any] | None:
    """Plotly ``error_y`` of the rows' validation accuracies: their 95% intervals, asymmetric.

    Args:
        rows: Trial rows, in the order of the trace's points.
        colour: The bars' colour.
        thickness: The bars' line width.

    Returns:
        The ``error_y`` dict (``array`` up to the upper end, ``arrayminus`` down to the lower one;
        None for a row whose interval is unknown), or None when no row has an interval.
    """
    lower, upper = lower_key(VAL_ACCURACY), upper_key(VAL_ACCURACY)
    if all(r.get(lower) is None or r.get(upper) is None for r in rows):
        return None
    known = [r.get(lower) is not None and r.get(upper) is not None for r in rows]
    return {
        "type": "data",
        "symmetric": False,
        "array": [r[upper] - r[VAL_ACCURACY] if k else None for r, k in zip(rows, known)],
        "arrayminus": [r[VAL_ACCURACY] - r[lower] if k else None for r, k in zip(rows, known)],
        "color": colour,
        "thickness": thickness,
        "width": 4,
    }


def _scatter(rows: list[dict[str, Any]], axis: str, bars: str | None = None, **kwargs: Any) -> go.Scatter:
    """Accuracy against ``axis``; with ``bars`` (a colour), each accuracy's interval as an error bar."""
    rows = [r for r in rows if r.get(axis) is not None and r.get(VAL_ACCURACY) is not None]
    error_y = accuracy_error_bars(rows, bars) if bars is not None else None
    if error_y is not None:
        kwargs["error_y"] = error_y
    return go.Scatter(
        x=[r[axis] for r in rows],
        y=[r[VAL_ACCURACY] for r in rows],
        text=[_hover(r) for r in rows],
        hoverinfo="text",
        **kwargs,
    )


def plot_front(report: StudyReport, axis: str = PARAM_COUNT) -> go.Figure:
    """Validation accuracy against one cost axis, with the 2-D front, the knee and its ties.

    All complete trials are grey, pruned trials (smaller budget) have their own marker, the
    front of accuracy against ``axis`` is highlighted and connected, and the report's knee trial
    (the knee of the front on all the report's axes) is starred and annotated. Every accuracy
    with a known number of images carries its 95% interval as an error bar, and the front
    trials whose interval overlaps the knee's are ringed in the knee's colour.

    Args:
        report: A collected study.
        axis: ``param_count`` (log x), ``train_seconds`` or ``macs`` (log x).

    Returns:
        The figure.
    """
    info = report.pair_fronts[axis]
    complete = report.rows("COMPLETE")
    pruned = report.rows("PRUNED")
    front_numbers = set(info.front_trial_numbers)
    front_rows = sorted(
        (report.trial(n) for n in front_numbers), key=lambda r: (r[axis], -r[VAL_ACCURACY])
    )
    fig = go.Figure()
    fig.add_trace(
        _scatter(
            [r for r in complete if r["number"] not in front_numbers],
            axis,
            mode="markers",
            name=f"complete ({len(complete)})",
            marker={"color": GREY, "size": 10},
            bars=GREY,
        )
    )
    if pruned:
        fig.add_trace(
            _scatter(
                pruned,
                axis,
                mode="markers",
                name=f"pruned ({len(pruned)}, last epoch)",
                marker={"color": PRUNED, "size": 10, "symbol": "x"},
                bars=PRUNED,
            )
        )
    fig.add_trace(
        _scatter(
            front_rows,
            axis,
            mode="lines+markers",
            line={"color": FRONT, "width": 3, "shape": "hv"},
            name=f"Pareto front ({len(front_rows)})",
            marker={"color": FRONT, "size": 13},
            bars=FRONT,
        )
    )
    ties = [row for row in report.front_rows if report.front.ties_knee(row["number"])]
    if ties:
        fig.add_trace(_scatter(ties, axis, mode="markers", name=f"ties the knee ({len(ties)})",
                               marker={"color": KNEE, "size": 24, "symbol": "circle-open", "line": {"width": 3}}))
    _draw_knee(fig, report, axis)
    title = f"{report.name}: validation accuracy vs {AXIS_LABELS[axis].split(' (')[0].lower()}"
    _layout(fig, title, AXIS_LABELS[axis], "Validation accuracy")
    fig.update_yaxes(tickformat=".0%")
    if report.log_scale(axis):
        fig.update_xaxes(type="log")
    return fig


def _draw_knee(fig: go.Figure, report: StudyReport, axis: str) -> None:
    """Star and annotate the report's knee trial, when it has a value on ``axis``."""
    knee = report.knee_trial
    if knee is None or report.trial(knee).get(axis) is None:
        return
    row = report.trial(knee)
    fig.add_trace(
        _scatter(
            [row],
            axis,
            mode="markers",
            name=f"knee (trial {knee})",
            marker={"color": KNEE, "size": 22, "symbol": "star", "line": {"width": 1}},
        )
    )
    # Annotations on a log axis take the exponent, not the value.
    x = np.log10(row[axis]) if report.log_scale(axis) else row[axis]
    fig.add_annotation(
        x=x,
        y=row[VAL_ACCURACY],
        text=(
            f"knee: trial {knee}<br>{display_cell(row, VAL_ACCURACY)}, "
            f"{format_count(row.get(PARAM_COUNT))} params, "
            f"{format_cell(TRAIN_SECONDS, row.get(TRAIN_SECONDS))} s"
        ),
        showarrow=True,
        arrowhead=2,
        ax=60,
        ay=60,
        bgcolor="rgba(255,255,255,0.9)",
        bordercolor=KNEE,
    )


# Learning curves: (metric of an epoch, line dash, legend suffix).
_CURVES = ((VAL_ACCURACY, "solid", "val"), (lambda m: m.train_accuracy, "dash", "train"))


def plot_learning_curves(report: StudyReport, max_trials: int = 6) -> go.Figure:
    """Train and validation accuracy per epoch of the front trials (best first, knee included).

    The gap between the solid (validation) and dashed (train) line of a colour shows overfitting.

    Args:
        report: A collected study.
        max_trials: Most trials drawn, so the legend stays readable.

    Returns:
        The figure.
    """
    numbers = [row["number"] for row in report.front_rows]
    chosen = numbers[:max_trials]
    knee = report.knee_trial
    if knee is not None and knee not in chosen:
        chosen = chosen[: max_trials - 1] + [knee]
    fig = go.Figure()
    for colour, number in zip(PALETTE * 4, chosen):
        row = report.trial(number)
        label = f"trial {number}" + (" (knee)" if number == knee else "")
        for metric, dash, suffix in _CURVES:
            epochs, values = history_arrays(row, metric)
            if epochs.size == 0:
                continue
            fig.add_trace(
                go.Scatter(
                    x=epochs,
                    y=values,
                    mode="lines+markers",
                    name=f"{label} {suffix}",
                    legendgroup=str(number),
                    line={"color": colour, "dash": dash, "width": 3},
                    marker={"size": 6},
                )
            )
    if not fig.data:
        fig.add_annotation(text="no per-epoch history recorded", showarrow=False, x=0.5, y=0.5,
                           xref="paper", yref="paper")
    _layout(fig, f"{report.name}: learning curves of the front (solid val, dashed train)",
            "Epoch", "Accuracy")
    fig.update_yaxes(tickformat=".0%")
    return fig


def plot_importances(report: StudyReport) -> go.Figure:
    """fANOVA hyperparameter importance for accuracy and each front axis, as horizontal bars.

    Args:
        report: A collected study.

    Returns:
        The figure; when no importance could be computed it shows the reason instead.
    """
    fig = go.Figure()
    params = sorted({p for values in report.importances.values() for p in values})
    if VAL_ACCURACY in report.importances:
        # Sort by importance for accuracy, the question readers ask first; least important at the
        # bottom is how plotly stacks categories, so sort ascending.
        params.sort(key=lambda p: report.importances[VAL_ACCURACY].get(p, 0.0))
    for colour, (target, values) in zip(PALETTE, report.importances.items()):
        fig.add_trace(
            go.Bar(
                y=params,
                x=[values.get(p, 0.0) for p in params],
                orientation="h",
                name=AXIS_LABELS.get(target, target).split(" (")[0],
                marker={"color": colour},
            )
        )
    _layout(fig, f"{report.name}: hyperparameter importance (fANOVA)",
            "Importance (fraction of variance explained)", "")
    fig.update_layout(barmode="group")
    if not fig.data:
        notes = "<br>".join(report.importance_notes.values()) or "no importance computed"
        fig.add_annotation(text=notes, showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper",
                           font={"size": FONT_SIZE + 2})
        # Empty axes with made-up ticks would suggest data; show only the reason.
        fig.update_xaxes(visible=False)
        fig.update_yaxes(visible=False)
    return fig


def plot_history(report: StudyReport) -> go.Figure:
    """Validation accuracy of each trial in order, and the best so far.

    Args:
        report: A collected study.

    Returns:
        The figure.
    """
    fig = go.Figure()
    complete = [r for r in report.rows("COMPLETE") if r.get(VAL_ACCURACY) is not None]
    pruned = [r for r in report.rows("PRUNED") if r.get(VAL_ACCURACY) is not None]
    fig.add_trace(
        go.Scatter(
            x=[r["number"] for r in complete],
            y=[r[VAL_ACCURACY] for r in complete],
            mode="markers",
            name="complete",
            marker={"color": FRONT, "size": 10},
            text=[_hover(r) for r in complete],
            hoverinfo="text",
        )
    )
    if pruned:
        fig.add_trace(
            go.Scatter(
                x=[r["number"] for r in pruned],
                y=[r[VAL_ACCURACY] for r in pruned],
                mode="markers",
                name="pruned (last epoch)",
                marker={"color": PRUNED, "size": 10, "symbol": "x"},
            )
        )
    if complete:
        best = np.maximum.accumulate([r[VAL_ACCURACY] for r in complete])
        fig.add_trace(
            go.Scatter(
                x=[r["number"] for r in complete],
                y=best,
                mode="lines",
                line={"color": KNEE, "width": 3, "shape": "hv"},
                name="best so far",
            )
        )
    _layout(fig, f"{report.name}: optimization history", "Trial number", "Validation accuracy")
    fig.update_yaxes(tickformat=".0%")
    return fig


DODGE_DECADES = 0.05  # side by side on a log axis: configurations of one size, this far apart
DODGE_FRACTION = 0.03  # on a linear axis: this fraction of the largest value


def dodged(rows: Sequence[Mapping[str, Any]], axis: str, log: bool) -> list[dict[str, Any]]:
    """Copies of ``rows`` whose ``axis`` values, where several rows share one, are spread side by
    side around it, so that configurations of the same size (refits of two learning rates of one
    network) do not hide each other's seeds and error bars. The others keep their value."""
    groups: dict[Any, list[int]] = {}
    for i, row in enumerate(rows):
        groups.setdefault(row[axis], []).append(i)
    step = DODGE_FRACTION * max((abs(row[axis]) for row in rows), default=0.0)
    out = [dict(row) for row in rows]
    for x, members in groups.items():
        for k, i in enumerate(members):
            offset = k - (len(members) - 1) / 2
            out[i][axis] = x * 10 ** (offset * DODGE_DECADES) if log and x > 0 else x + offset * step
    return out


def plot_robustness(report: StudyReport, axis: str = PARAM_COUNT) -> go.Figure:
    """The refitted configurations against ``axis``: each search run (hollow) beside its refits'
    validation mean with ± one standard deviation as error bars and the per-seed values as dots;
    the knee chosen on the refit means starred."""
    from hpo.analysis.refits import refit_rows

    fig = go.Figure()
    rows = {row["number"]: row for row in report.rows("COMPLETE")}
    chosen = [rows[n] for n in sorted(report.refits) if n in rows and rows[n].get(axis) is not None]
    chosen = dodged(chosen, axis, report.log_scale(axis))
    fig.add_trace(_scatter(chosen, axis, mode="markers", name="search run (one seed)",
                           marker={"color": "rgba(0,0,0,0)", "size": 12, "line": {"color": GREY, "width": 2}}))
    means = [r for r in refit_rows(chosen, report.refits)]
    seeds_x, seeds_y = [], []
    for row in chosen:
        for value in report.refits[row["number"]].values():
            seeds_x.append(row[axis])
            seeds_y.append(value)
    fig.add_trace(go.Scatter(x=seeds_x, y=seeds_y, mode="markers", name="one refit seed",
                             marker={"color": FRONT, "size": 6, "opacity": 0.45}, hoverinfo="skip"))
    std = {n: report.refits[n].std() or 0.0 for n in report.refits}
    fig.add_trace(go.Scatter(
        x=[r[axis] for r in means], y=[r[VAL_ACCURACY] for r in means], mode="markers+text",
        name="refit mean ± std", text=[f"trial {r['number']}" for r in means],
        textposition=["top left" if r[axis] < report.trial(r["number"])[axis] else "top right" for r in means],
        marker={"color": FRONT, "size": 11, "symbol": "diamond"},
        error_y={"type": "data", "array": [std[r["number"]] for r in means], "color": FRONT, "thickness": 2, "width": 6},
    ))
    knee = report.knee_trial
    if knee is not None and any(r["number"] == knee for r in means):
        row = next(r for r in means if r["number"] == knee)
        fig.add_trace(go.Scatter(x=[row[axis]], y=[row[VAL_ACCURACY]], mode="markers", name=f"knee (trial {knee})",
                                 marker={"color": KNEE, "size": 20, "symbol": "star"}))
    _layout(fig, f"{report.name}: refits over seeds", AXIS_LABELS[axis], "Validation accuracy")
    if report.log_scale(axis):
        fig.update_xaxes(type="log")
    fig.update_yaxes(tickformat=".0%")
    return fig


# The optimisation history's file stem is its plot function's name; spelled out, it would be the
# trial attribute name that only hpo.trials may spell (tests/test_architecture.py).
HISTORY_FIGURE = plot_history.__name__.removeprefix("plot_")


def figures(report: StudyReport) -> dict[str, go.Figure]:
    """Every figure of the report, keyed by a file-name-safe name.

    Args:
        report: A collected study.

    Returns:
        ``front_params``, ``front_time`` (and ``front_macs`` when MACs is a report axis),
        ``learning_curves``, ``importance`` and ``history``, in slide order; ``robustness`` when
        the study has refits.
    """
    result = {
        "front_params": plot_front(report, PARAM_COUNT),
        "front_time": plot_front(report, TRAIN_SECONDS),
    }
    if MACS in report.axes:
        result["front_macs"] = plot_front(report, MACS)
    result["learning_curves"] = plot_learning_curves(report)
    result["importance"] = plot_importances(report)
    result[HISTORY_FIGURE] = plot_history(report)
    if report.refits:
        result["robustness"] = plot_robustness(report)
    return result
