"""The deck's native charts: python-pptx scatter, line and bar charts that PowerPoint and LibreOffice edit.

The figures of the deck are drawn here from the :class:`~hpo.analysis.report.StudyReport`, with the
colours and markers of :mod:`hpo.analysis.plots` (whose Plotly figures stay for HTML, PNG and SVG), so
the deck needs no browser. python-pptx has no API for error bars (the accuracies' 95% intervals, the
refits' ± std) nor for a logarithmic axis; :func:`add_error_bars` and :func:`_log_axis` write those
DrawingML elements (``c:errBars``, ``c:logBase``) into the chart part directly.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from hpo.analysis import plots
from hpo.analysis.intervals import lower_key, upper_key
from hpo.analysis.pareto import AXIS_LABELS
from hpo.analysis.report import StudyReport, format_count, history_arrays
from hpo.trials import PARAM_COUNT, TRAIN_SECONDS, VAL_ACCURACY

TWIN_SUFFIX = " (drawn on top)"  # the name of an on_top series' twin, out of the legend
KNEE_OUTLINE = "#000000"  # the knee's diamond is ringed in black: its ties are rings of its own orange
FONT_PT = 14  # axis and legend text: readable from the back of a room, as the Plotly figures' 18 px
ACCURACY_FORMAT = "0%"

# Where an error bar's values go: one c:numLit per direction, as PowerPoint writes custom error bars.
_PLUS, _MINUS = "plus", "minus"


def _rgb(colour: str):
    from pptx.dml.color import RGBColor

    return RGBColor.from_string(colour.lstrip("#").upper())


def _chart(slide: Any, chart_type: Any, data: Any, box: Sequence[float]) -> Any:
    """A chart in ``box`` (left, top, width, height in inches), legend at the bottom, no title (the slide has one)."""
    from pptx.enum.chart import XL_LEGEND_POSITION
    from pptx.util import Inches, Pt

    left, top, width, height = (Inches(v) for v in box)
    chart = slide.shapes.add_chart(chart_type, left, top, width, height, data).chart
    chart.has_title = False
    chart.has_legend = True
    chart.legend.position = XL_LEGEND_POSITION.BOTTOM
    chart.legend.include_in_layout = False
    chart.legend.font.size = Pt(FONT_PT - 2)
    chart.font.size = Pt(FONT_PT)
    return chart


def _axis(axis: Any, title: str, number_format: str | None = None, gridlines: bool = True) -> None:
    from pptx.util import Pt

    axis.has_title = True
    axis.axis_title.text_frame.text = title
    for run in axis.axis_title.text_frame.paragraphs[0].runs:
        run.font.size = Pt(FONT_PT)
        run.font.bold = False
    axis.has_major_gridlines = gridlines
    if gridlines:
        axis.major_gridlines.format.line.color.rgb = _rgb("#e5e5e5")
    axis.tick_labels.font.size = Pt(FONT_PT - 1)
    if number_format is not None:
        axis.tick_labels.number_format = number_format
        axis.tick_labels.number_format_is_linked = False


def _log_axis(axis: Any, values: Sequence[float]) -> None:
    """Make a value axis logarithmic (base 10) from the decade below the smallest value to the one above the largest.

    python-pptx has no API for it: ``c:logBase`` is the first child of the axis' ``c:scaling``.
    """
    from pptx.oxml import parse_xml
    from pptx.oxml.ns import nsdecls, qn

    decades = _log_decades(values)
    if decades is None:
        return
    scaling = axis._element.find(qn("c:scaling"))
    scaling.insert(0, parse_xml(f'<c:logBase {nsdecls("c")} val="10"/>'))
    low, high = decades
    axis.minimum_scale, axis.maximum_scale = 10.0**low, 10.0**high


def _log_decades(values: Sequence[float]) -> tuple[int, int] | None:
    """The log axis' range as powers of ten: the decade below the smallest value to the one above the largest."""
    positive = [v for v in values if v and v > 0]
    if not positive:
        return None
    low, high = math.floor(math.log10(min(positive))), math.ceil(math.log10(max(positive)))
    return low, max(high, low + 1)


def _accuracy_range(axis: Any, values: Sequence[float]) -> None:
    """Fit the accuracy axis to the values (error bars' ends included), on whole 5% steps within [0, 1]."""
    known = [v for v in values if v is not None and math.isfinite(v)]
    if not known:
        return
    low = max(0.0, math.floor(min(known) * 20 - 0.5) / 20)
    high = min(1.0, math.ceil(max(known) * 20 + 0.5) / 20)
    axis.minimum_scale, axis.maximum_scale = low, max(high, low + 0.05)


def _style(series: Any, colour: str, marker: str = "CIRCLE", size: int = 9, line_pt: float | None = None,
           hollow: bool = False, dash: bool = False, outline: str | None = None) -> None:
    """Marker and line of one series; without ``line_pt`` the points stay unconnected; ``outline``
    rings each marker in another colour (the knee's, dark, so it stands out among its orange ties)."""
    from pptx.enum.chart import XL_MARKER_STYLE
    from pptx.enum.dml import MSO_LINE
    from pptx.util import Pt

    series.smooth = False
    series.marker.style = getattr(XL_MARKER_STYLE, marker)
    if marker != "NONE":
        series.marker.size = size
        if hollow:
            series.marker.format.fill.background()
        else:
            series.marker.format.fill.solid()
            series.marker.format.fill.fore_color.rgb = _rgb(colour)
        series.marker.format.line.color.rgb = _rgb(outline or colour)
        series.marker.format.line.width = Pt(2 if hollow or outline else 0.75)
    line = series.format.line
    if line_pt is None:
        line.fill.background()
        return
    line.color.rgb = _rgb(colour)
    line.width = Pt(line_pt)
    if dash:
        line.dash_style = MSO_LINE.DASH


def add_error_bars(series: Any, plus: Sequence[float | None], minus: Sequence[float | None], colour: str,
                   width_pt: float = 1.25) -> None:
    """Give an XY series vertical error bars of custom lengths, as a ``c:errBars`` element.

    python-pptx has no error-bar API, so the DrawingML is written into the series: direction y,
    both ways, custom values (``c:plus``/``c:minus``, each a ``c:numLit`` with one point per data
    point; a point whose length is None is left out, so that point has no bar).

    Args:
        series: A python-pptx XY series.
        plus: Length of each point's bar above it (None: no bar), in the order of its points.
        minus: Length of each point's bar below it.
        colour: The bars' colour, ``#rrggbb``.
        width_pt: The bars' line width in points.
    """
    from pptx.oxml import parse_xml
    from pptx.oxml.ns import nsdecls, qn

    def literal(values: Sequence[float | None]) -> str:
        points = "".join(f'<c:pt idx="{i}"><c:v>{float(v)!r}</c:v></c:pt>' for i, v in enumerate(values)
                         if v is not None)
        return f'<c:numLit><c:formatCode>General</c:formatCode><c:ptCount val="{len(values)}"/>{points}</c:numLit>'

    element = parse_xml(
        f'<c:errBars {nsdecls("c", "a")}><c:errDir val="y"/><c:errBarType val="both"/><c:errValType val="cust"/>'
        f'<c:noEndCap val="0"/><c:{_PLUS}>{literal(plus)}</c:{_PLUS}><c:{_MINUS}>{literal(minus)}</c:{_MINUS}>'
        f'<c:spPr><a:ln w="{int(width_pt * 12700)}"><a:solidFill><a:srgbClr val="{colour.lstrip("#").upper()}"/>'
        f'</a:solidFill></a:ln></c:spPr></c:errBars>'
    )
    ser = series._element
    for old in ser.findall(qn("c:errBars")):
        ser.remove(old)
    # CT_ScatterSer's sequence puts errBars after the labels and trendlines, before c:xVal.
    ser.find(qn("c:xVal")).addprevious(element)


def error_bar_values(series: Any) -> dict[str, list[float | None]]:
    """The custom error-bar lengths of an XY series, read back from its ``c:errBars``.

    Args:
        series: A python-pptx XY series (of a written or a re-opened deck).

    Returns:
        ``{"plus": [...], "minus": [...]}``, one entry per data point (None where the point has no
        bar); empty when the series has no error bars.
    """
    from pptx.oxml.ns import qn

    bars = series._element.find(qn("c:errBars"))
    if bars is None:
        return {}
    result = {}
    for direction in (_PLUS, _MINUS):
        literal = bars.find(qn(f"c:{direction}")).find(qn("c:numLit"))
        values: list[float | None] = [None] * int(literal.find(qn("c:ptCount")).get("val"))
        for point in literal.findall(qn("c:pt")):
            values[int(point.get("idx"))] = float(point.find(qn("c:v")).text)
        result[direction] = values
    return result


def _label(series: Any, index: int, text: str, colour: str, position: str = "RIGHT") -> None:
    """A data label beside one point (the knee's annotation, a trial's number)."""
    from pptx.enum.chart import XL_LABEL_POSITION
    from pptx.util import Pt

    label = series.points[index].data_label
    label.has_text_frame = True
    label.text_frame.text = text
    label.position = getattr(XL_LABEL_POSITION, position)
    for paragraph in label.text_frame.paragraphs:
        for run in paragraph.runs:
            run.font.size = Pt(FONT_PT - 2)
            run.font.color.rgb = _rgb(colour)


def _hide_from_legend(chart: Any, series: Any) -> None:
    """Leave one series out of the legend (a ``c:legendEntry`` marked deleted; python-pptx has no API)."""
    from pptx.oxml import parse_xml
    from pptx.oxml.ns import nsdecls, qn

    legend = chart._chartSpace.find(".//" + qn("c:legend"))
    entry = parse_xml(f'<c:legendEntry {nsdecls("c")}><c:idx val="{series.index}"/><c:delete val="1"/></c:legendEntry>')
    legend.find(qn("c:legendPos")).addnext(entry)


def _points(rows: Sequence[Mapping[str, Any]], axis: str) -> list[Mapping[str, Any]]:
    return [r for r in rows if r.get(axis) is not None and r.get(VAL_ACCURACY) is not None]


def _interval_bars(rows: Sequence[Mapping[str, Any]]) -> tuple[list[float | None], list[float | None]] | None:
    """Each row's 95% accuracy interval as (lengths up, lengths down); None when no row has one."""
    lower, upper = lower_key(VAL_ACCURACY), upper_key(VAL_ACCURACY)
    known = [r.get(lower) is not None and r.get(upper) is not None for r in rows]
    if not any(known):
        return None
    return ([r[upper] - r[VAL_ACCURACY] if k else None for r, k in zip(rows, known)],
            [r[VAL_ACCURACY] - r[lower] if k else None for r, k in zip(rows, known)])


def _xy_chart(slide: Any, chart_type: Any, drawn: Sequence[tuple[str, Sequence[tuple[float, float]], dict]],
              box: Sequence[float]) -> tuple[Any, list[tuple[Any, str, Sequence[tuple[float, float]], dict]]]:
    """An XY chart of (legend name, points, style) entries; returns it and (series, name, points, style) in drawing order.

    The series are drawn longest first: LibreOffice (7.4) drops every series of an imported XY
    chart that a longer one follows. The short series (the knee, its ties) then come last, on top
    in PowerPoint; LibreOffice paints the first series on top, where the grey trials stacked at
    one parameter count hid the knee, hence the twin of an ``on_top`` entry.
    """
    from pptx.chart.data import XyChartData

    ordered = sorted((entry for entry in drawn if entry[1]), key=lambda entry: -len(entry[1]))
    # An entry styled "on_top" (the knee) is drawn twice: last, on top in PowerPoint, and first as
    # its twin, on top in LibreOffice, padded with copies of its last point to the longest series'
    # length (so that no series is shorter than one after it) and left out of the legend.
    ordered = [(f"{name}{TWIN_SUFFIX}", [*points, *[points[-1]] * (len(ordered[0][1]) - len(points))],
                {**style, "twin": True}) for name, points, style in ordered if style.get("on_top")] + ordered
    data = XyChartData()
    for name, points, _ in ordered:
        series = data.add_series(name)
        for x, y in points:
            series.add_data_point(x, y)
    chart = _chart(slide, chart_type, data, box)
    return chart, [(series, *entry) for series, entry in zip(chart.plots[0].series, ordered)]


def _front_series(report: StudyReport, axis: str) -> list[tuple[str, list[Mapping[str, Any]], dict[str, Any]]]:
    """(legend name, rows, style) of each kind of trial a front chart shows."""
    front_numbers = set(report.pair_fronts[axis].front_trial_numbers)
    complete = report.rows("COMPLETE")
    pruned = report.rows("PRUNED")
    front = sorted((report.trial(n) for n in front_numbers), key=lambda r: (r[axis], -r[VAL_ACCURACY]))
    ties = [row for row in report.front_rows if report.front.ties_knee(row["number"])]
    knee = report.knee_trial
    series = [(f"complete ({len(complete)})", [r for r in complete if r["number"] not in front_numbers],
               {"colour": plots.GREY, "bars": True})]
    if pruned:
        series.append((f"pruned ({len(pruned)}, last epoch)", pruned, {"colour": plots.PRUNED, "marker": "X", "bars": True}))
    series.append((f"Pareto front ({len(front)})", front, {"colour": plots.FRONT, "size": 11, "bars": True, "step": True}))
    if ties:
        series.append((f"ties the knee ({len(ties)})", ties, {"colour": plots.KNEE, "size": 18, "hollow": True}))
    if knee is not None:
        series.append((f"knee (trial {knee})", [report.trial(knee)], {"colour": plots.KNEE, "marker": "DIAMOND", "size": 16,
                                                                  "outline": KNEE_OUTLINE, "on_top": True}))
    return [(name, _points(rows, axis), style) for name, rows, style in series if _points(rows, axis)]


def _step(rows: Sequence[Mapping[str, Any]], axis: str) -> list[tuple[float, float]]:
    """The front as a staircase (across, then up), as the Plotly figure draws it (``shape="hv"``)."""
    steps: list[tuple[float, float]] = []
    for row in rows:
        if steps:
            steps.append((row[axis], steps[-1][1]))
        steps.append((row[axis], row[VAL_ACCURACY]))
    return steps


FRONT_LINE = "Pareto front line"  # the staircase joining the front, left out of the legend


def add_front_chart(slide: Any, report: StudyReport, axis: str, box: Sequence[float]) -> Any:
    """Validation accuracy against one cost axis as an XY scatter: every trial, the front connected, the knee marked.

    As :func:`hpo.analysis.plots.plot_front`: complete trials grey, pruned ones orange crosses, the
    2-D front blue and joined as a staircase, the front trials that tie the knee ringed and the
    knee an orange diamond, labelled beside it where the label fits (else in the note under the chart,
    :func:`knee_caption`); every accuracy with a known number of images carries its 95%
    interval as an error bar. Parameters and MACs get a log axis, training time one where it spans
    30x or more (``StudyReport.log_scale``).

    Args:
        slide: The slide to draw on.
        report: A collected study.
        axis: ``param_count``, ``train_seconds`` or ``macs``.
        box: (left, top, width, height) in inches.

    Returns:
        The python-pptx chart.
    """
    from pptx.enum.chart import XL_CHART_TYPE

    kinds = _front_series(report, axis)
    rows_of = {name: rows for name, rows, _ in kinds}
    drawn = [(name, [(r[axis], r[VAL_ACCURACY]) for r in rows], style) for name, rows, style in kinds]
    drawn += [(FRONT_LINE, _step(rows, axis), {"colour": style["colour"], "line": True})
              for _, rows, style in kinds if style.get("step")]
    chart, series_list = _xy_chart(slide, XL_CHART_TYPE.XY_SCATTER, drawn, box)
    ends: list[float] = []
    for series, name, points, style in series_list:
        if style.get("line"):
            _style(series, style["colour"], marker="NONE", line_pt=2.5)
            _hide_from_legend(chart, series)
            continue
        _style(series, style["colour"], style.get("marker", "CIRCLE"), style.get("size", 9), hollow=style.get("hollow", False),
               outline=style.get("outline"))
        if style.get("twin"):
            _hide_from_legend(chart, series)
            continue
        rows = rows_of[name]
        bars = _interval_bars(rows) if style.get("bars") else None
        if bars is not None:
            add_error_bars(series, *bars, colour=style["colour"])
        up, down = bars or ([None] * len(rows), [None] * len(rows))
        ends += [r[VAL_ACCURACY] + (u or 0.0) for r, u in zip(rows, up)] + [r[VAL_ACCURACY] - (d or 0.0) for r, d in zip(rows, down)]
        if name.startswith("knee") and knee_label_fits(report, axis):
            _label(series, 0, knee_label(report), plots.KNEE, position="LEFT")
    _axis(chart.value_axis, "Validation accuracy", ACCURACY_FORMAT)
    _accuracy_range(chart.value_axis, ends)
    _axis(chart.category_axis, AXIS_LABELS[axis], _cost_format(axis))
    if report.log_scale(axis):
        _log_axis(chart.category_axis, [x for _, points, _ in drawn for x, _ in points])
    return chart


# The knee's label goes left of its point. It stays inside the plot when the point lies at least
# this far along the cost axis (the label is about a sixth of the plot's width, and the chart's own
# axis maximum may exceed the largest value), and it must not cover another trial: the knee is
# chosen on every axis at once, so on one axis' chart trials may lie left of it at its height.
KNEE_LABEL_ROOM = 0.25
KNEE_LABEL_HALF_HEIGHT = 0.06  # the label's half height, as a fraction of the accuracy axis' span


def knee_label(report: StudyReport) -> str:
    """The knee's annotation: ``knee: trial 30, 64.9%, 3.16k params``."""
    row = report.trial(report.knee_trial)
    return f"knee: trial {row['number']}, {100 * row[VAL_ACCURACY]:.1f}%, {format_count(row.get(PARAM_COUNT))} params"


def knee_label_fits(report: StudyReport, axis: str) -> bool:
    """Whether the knee's label fits left of its point on the ``axis`` front chart, inside the
    plot and over no other trial (see :data:`KNEE_LABEL_ROOM`); False without a knee on that axis."""
    knee = report.knee_trial
    x = None if knee is None else report.trial(knee).get(axis)
    if x is None or (report.log_scale(axis) and x <= 0):
        return False
    others = [row for _, rows, _ in _front_series(report, axis) for row in rows if row["number"] != knee]
    xs = [x] + [row[axis] for row in others]
    if report.log_scale(axis):
        low, high = _log_decades(xs)
        along = [(math.log10(v) - low) / (high - low) if v > 0 else 0.0 for v in xs]
    else:
        low, high = min(0.0, min(xs)), max(xs)
        along = [(v - low) / (high - low) if high > low else 0.0 for v in xs]
    ys = [report.trial(knee)[VAL_ACCURACY]] + [row[VAL_ACCURACY] for row in others]
    span = (max(ys) - min(ys)) or 1.0
    covered = any(along[0] - KNEE_LABEL_ROOM <= a < along[0] and abs(y - ys[0]) <= KNEE_LABEL_HALF_HEIGHT * span
                  for a, y in zip(along[1:], ys[1:]))
    return along[0] >= KNEE_LABEL_ROOM and not covered


def knee_caption(report: StudyReport, axis: str) -> str:
    """The knee's annotation for the note under its front chart, when it does not fit on the chart ("" otherwise)."""
    if report.knee_trial is None or report.trial(report.knee_trial).get(axis) is None or knee_label_fits(report, axis):
        return ""
    return f"The orange diamond is the {knee_label(report)}."


def _cost_format(axis: str) -> str:
    """Counts with thousands separators; seconds as the numbers need (0.01 s in a test, 600 on a GPU)."""
    return "General" if axis == TRAIN_SECONDS else "#,##0"


def curve_trials(report: StudyReport, max_trials: int = 6) -> list[int]:
    """The trials whose learning curves are drawn: the front's best first, the knee always among them."""
    chosen = [row["number"] for row in report.front_rows][:max_trials]
    knee = report.knee_trial
    if knee is not None and knee not in chosen:
        chosen = chosen[: max_trials - 1] + [knee]
    return chosen


def add_learning_curves_chart(slide: Any, report: StudyReport, box: Sequence[float]) -> Any | None:
    """Train (dashed) and validation (solid) accuracy per epoch of the front trials, as an XY line chart.

    As :func:`hpo.analysis.plots.plot_learning_curves`: one colour per trial, the knee named.

    Args:
        slide: The slide to draw on.
        report: A collected study.
        box: (left, top, width, height) in inches.

    Returns:
        The chart, or None when no trial recorded a per-epoch history (nothing is drawn then).
    """
    from pptx.enum.chart import XL_CHART_TYPE

    knee = report.knee_trial
    drawn = []  # (name, epochs, values, colour, dashed)
    for colour, number in zip(plots.PALETTE * 4, curve_trials(report)):
        label = f"trial {number}" + (" (knee)" if number == knee else "")
        for metric, dashed, suffix in ((VAL_ACCURACY, False, "val"), (lambda m: m.train_accuracy, True, "train")):
            epochs, values = history_arrays(report.trial(number), metric)
            if epochs.size:
                drawn.append((f"{label} {suffix}", epochs, values, colour, dashed))
    if not drawn:
        return None
    chart, series_list = _xy_chart(slide, XL_CHART_TYPE.XY_SCATTER_LINES, [
        (name, [(float(e), float(v)) for e, v in zip(epochs, values)], {"colour": colour, "dash": dashed})
        for name, epochs, values, colour, dashed in drawn], box)
    for series, _, _, style in series_list:
        _style(series, style["colour"], size=6, line_pt=2.25, dash=style["dash"])
    _axis(chart.value_axis, "Accuracy", ACCURACY_FORMAT)
    _accuracy_range(chart.value_axis, [float(v) for _, _, values, _, _ in drawn for v in values])
    _axis(chart.category_axis, "Epoch", "0", gridlines=False)
    first = min(float(epochs.min()) for _, epochs, _, _, _ in drawn)
    last = max(float(epochs.max()) for _, epochs, _, _, _ in drawn)
    chart.category_axis.minimum_scale, chart.category_axis.maximum_scale = math.floor(first), max(math.ceil(last), first + 1)
    chart.category_axis.major_unit = max(1.0, math.ceil((last - first) / 10))
    return chart


def add_robustness_chart(slide: Any, report: StudyReport, box: Sequence[float], axis: str = PARAM_COUNT) -> Any:
    """The refitted configurations against ``axis``: search run, each refit seed, the refit mean with ± std bars.

    As :func:`hpo.analysis.plots.plot_robustness`: the search's single run hollow grey, every refit
    seed a small blue dot, the mean over the seeds a labelled blue diamond whose error bar is one
    standard deviation each way (a ``c:errBars`` element), the knee chosen on the means a larger orange diamond.

    Args:
        slide: The slide to draw on.
        report: A collected study with refits.
        box: (left, top, width, height) in inches.
        axis: The cost axis (log scale for parameters and MACs).

    Returns:
        The chart.
    """
    from pptx.enum.chart import XL_CHART_TYPE

    from hpo.analysis.refits import refit_rows

    rows = {row["number"]: row for row in report.rows("COMPLETE")}
    chosen = [rows[n] for n in sorted(report.refits) if n in rows and rows[n].get(axis) is not None]
    chosen = plots.dodged(chosen, axis, report.log_scale(axis))  # one size, several configurations: side by side
    means = refit_rows(chosen, report.refits)
    seeds = [(row[axis], value) for row in chosen for value in report.refits[row["number"]].values()]
    knee = next((r for r in means if r["number"] == report.knee_trial), None)
    drawn = [("search run (one seed)", [(r[axis], r[VAL_ACCURACY]) for r in _points(chosen, axis)],
              {"colour": plots.GREY, "size": 11, "hollow": True}),
             ("one refit seed", seeds, {"colour": plots.FRONT, "size": 5}),
             ("refit mean ± std", [(r[axis], r[VAL_ACCURACY]) for r in means], {"colour": plots.FRONT, "marker": "DIAMOND", "size": 11})]
    if knee is not None:
        drawn.append((f"knee (trial {knee['number']})", [(knee[axis], knee[VAL_ACCURACY])],
                      {"colour": plots.KNEE, "marker": "DIAMOND", "size": 18, "outline": KNEE_OUTLINE, "on_top": True}))
    chart, series_list = _xy_chart(slide, XL_CHART_TYPE.XY_SCATTER, drawn, box)
    spread = [report.refits[r["number"]].std() or 0.0 for r in means]
    for series, name, points, style in series_list:
        _style(series, style["colour"], style.get("marker", "CIRCLE"), style["size"], hollow=style.get("hollow", False),
               outline=style.get("outline"))
        if style.get("twin"):
            _hide_from_legend(chart, series)
        elif name == "refit mean ± std":
            add_error_bars(series, spread, spread, colour=plots.FRONT, width_pt=1.75)
            for i, row in enumerate(means):
                # Beside its point, on the outer side where configurations of one size stand side by side.
                left = row[axis] < report.trial(row["number"])[axis]
                _label(series, i, f"trial {row['number']}", plots.FRONT, position="LEFT" if left else "RIGHT")
    values = [y for _, points, _ in drawn for _, y in points]
    values += [r[VAL_ACCURACY] + s for r, s in zip(means, spread)] + [r[VAL_ACCURACY] - s for r, s in zip(means, spread)]
    _axis(chart.value_axis, "Validation accuracy", ACCURACY_FORMAT)
    _accuracy_range(chart.value_axis, values)
    _axis(chart.category_axis, AXIS_LABELS[axis], _cost_format(axis))
    if report.log_scale(axis):
        _log_axis(chart.category_axis, [x for _, points, _ in drawn for x, _ in points])
    return chart


def add_importance_chart(slide: Any, importances: Mapping[str, Mapping[str, float]], title: str,
                         box: Sequence[float]) -> Any | None:
    """Hyperparameter importances as a clustered horizontal bar chart: one bar per (parameter, target).

    Parameters are sorted by their importance for accuracy, the most important at the top, as in
    :func:`hpo.analysis.plots.plot_importances`.

    Args:
        slide: The slide to draw on.
        importances: Target axis -> {parameter: importance} (normalised to sum 1).
        title: The chart's title, naming the evaluator that made them (fANOVA, PED-ANOVA).
        box: (left, top, width, height) in inches.

    Returns:
        The chart, or None without any importance (nothing is drawn then).
    """
    from pptx.chart.data import CategoryChartData
    from pptx.enum.chart import XL_CHART_TYPE
    from pptx.util import Pt

    if not importances:
        return None
    params = sorted({p for values in importances.values() for p in values})
    if VAL_ACCURACY in importances:
        params.sort(key=lambda p: importances[VAL_ACCURACY].get(p, 0.0))  # bars are drawn bottom up
    data = CategoryChartData()
    data.categories = params
    for target, values in importances.items():
        data.add_series(AXIS_LABELS.get(target, target).split(" (")[0], [float(values.get(p, 0.0)) for p in params])
    chart = _chart(slide, XL_CHART_TYPE.BAR_CLUSTERED, data, box)
    chart.has_title = True
    chart.chart_title.text_frame.text = title
    for run in chart.chart_title.text_frame.paragraphs[0].runs:
        run.font.size = Pt(FONT_PT + 2)
        run.font.bold = True
    for colour, series in zip(plots.PALETTE, chart.plots[0].series):
        series.format.fill.solid()
        series.format.fill.fore_color.rgb = _rgb(colour)
    chart.plots[0].gap_width = 60
    _axis(chart.value_axis, "Importance (fraction)", ACCURACY_FORMAT)
    chart.value_axis.minimum_scale = 0.0
    top = max(v for values in importances.values() for v in values.values())
    chart.value_axis.maximum_scale = min(1.0, math.ceil(max(top, 0.01) * 10) / 10)
    chart.category_axis.tick_labels.font.size = Pt(FONT_PT - 1)
    return chart


def chart_series(chart: Any) -> dict[str, list[tuple[float, float]]]:
    """Each XY series of a chart as its (x, y) points, by legend name: what a test reads back.

    Args:
        chart: A python-pptx XY chart (``shape.chart``).

    Returns:
        Series name -> points, in the order of the chart.
    """
    from pptx.oxml.ns import qn

    def numbers(ser: Any, tag: str) -> list[float]:
        cache = ser.find(qn(tag)).find(".//" + qn("c:numCache"))
        return [float(point.find(qn("c:v")).text) for point in cache.findall(qn("c:pt"))]

    return {series.name: list(zip(numbers(series._element, "c:xVal"), numbers(series._element, "c:yVal")))
            for series in chart.plots[0].series}
