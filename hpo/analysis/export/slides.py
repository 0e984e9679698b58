"""The slide deck: a 16:9 PowerPoint ready to present."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from hpo.analysis.export import charts
from hpo.analysis.export.summary import (
    INTERVAL_NOTE,
    budget_text,
    dataset_text,
    display_columns,
    header,
    knee_items,
    strategy_lines,
)
from hpo.analysis.pareto import AXIS_LABELS
from hpo.analysis.refits import REFIT_SEEDS
from hpo.analysis.report import FANOVA, KNEE, PED_ANOVA, StudyReport, display_cell, front_table
from hpo.trials import MACS, PARAM_COUNT, TRAIN_SECONDS
from hpo.trials import VAL_ACCURACY

# Slides show at most this many front trials and parameters, so text never overflows a slide.
MAX_SLIDE_ROWS = 12
MAX_SLIDE_PARAM_COLUMNS = 4
MAX_SPACE_ROWS = 14
# How wide table text sets (LibreOffice's DejaVu Sans, wider than PowerPoint's Calibri), to fit columns.
CHAR_EM = 0.64  # a digit or lower-case letter, in em ("73.50% [70.3, 76.4]" sets 1.8 in wide at 13 pt)
NARROW_EM, NARROW_CHARS = 0.34, frozenset(" .,:;'!|il[]()-/")
CAPITAL_EM = 0.72
WIDE_EM, WIDE_CHARS = 0.95, frozenset("%mwMW±")
BOLD_WIDTH = 1.12  # a bold character, in regular characters of the same size (DejaVu Sans Bold)
CELL_PADDING_INCHES = 0.2  # a cell's left and right margins (python-pptx's default: 0.1 in each)
MIN_TABLE_SIZE = 10  # points: below this a table is no longer readable on a projected slide
FRONT_TABLE_WIDTH = 12.5  # inches
FRONT_TABLE_MIN_SIZE = 10  # points: the front table drops parameter columns rather than go smaller


def write_pptx(report: StudyReport, out: Path) -> None:
    """Write a 16:9 deck ready to present: title, strategy, fronts, table, curves, importance, knee.

    The figures are native python-pptx charts (hpo.analysis.export.charts), editable in
    PowerPoint and LibreOffice, so no browser is needed; tables are capped at
    :data:`MAX_SLIDE_ROWS` rows so nothing overflows.

    Args:
        report: A collected study.
        out: The .pptx file.
    """
    from pptx import Presentation
    from pptx.util import Inches

    deck = Presentation()
    deck.slide_width, deck.slide_height = Inches(13.333), Inches(7.5)
    _title_slide(deck, report)
    _strategy_slide(deck, report)
    for axis, title in ((PARAM_COUNT, "Accuracy vs parameters"), (TRAIN_SECONDS, "Accuracy vs training time"),
                        (MACS, "Accuracy vs MACs")):
        if axis in report.pair_fronts:
            _chart_slide(deck, title, lambda slide, box, axis=axis: charts.add_front_chart(slide, report, axis, box),
                         note=" ".join(filter(None, ["Error bars: 95% Wilson intervals of the accuracies.", _FRONT_NOTE,
                                                     charts.knee_caption(report, axis)])))
    _front_table_slide(deck, report)
    if report.refits:
        _robustness_slide(deck, report)
    _chart_slide(deck, "Learning curves of the front", lambda slide, box: charts.add_learning_curves_chart(slide, report, box),
                 note="Solid: validation accuracy; dashed: training accuracy, per epoch.",
                 empty="No per-epoch history recorded.")
    _importance_slide(deck, report)
    _knee_slide(deck, report)
    deck.save(str(out))


_FRONT_NOTE = "Grey: every complete trial; blue: the Pareto front; orange: the knee and the trials that tie it."


def _set_title(slide: Any, text: str, size: int = 32) -> None:
    from pptx.util import Inches, Pt

    title = slide.shapes.title
    title.left, title.top, title.width, title.height = Inches(0.5), Inches(0.25), Inches(12.33), Inches(0.9)
    title.text = text
    for paragraph in title.text_frame.paragraphs:
        for run in paragraph.runs:
            run.font.size = Pt(size)
            run.font.bold = True


def _text_box(slide: Any, lines: Sequence[str], left: float, top: float, width: float, height: float,
              size: int = 18) -> None:
    from pptx.util import Inches, Pt

    box = slide.shapes.add_textbox(Inches(left), Inches(top), Inches(width), Inches(height))
    frame = box.text_frame
    frame.word_wrap = True
    for i, line in enumerate(lines):
        paragraph = frame.paragraphs[0] if i == 0 else frame.add_paragraph()
        paragraph.text = line
        paragraph.space_after = Pt(6)
        for run in paragraph.runs:
            run.font.size = Pt(size)


def _table(slide: Any, headers: Sequence[str], rows: Sequence[Sequence[str]], left: float, top: float,
           width: float, size: int = 14, bold_rows: Sequence[int] = ()) -> None:
    from pptx.util import Inches, Pt

    row_height = 0.38
    shape = slide.shapes.add_table(
        len(rows) + 1, len(headers), Inches(left), Inches(top), Inches(width),
        Inches(row_height * (len(rows) + 1)),
    )
    table = shape.table
    cells = [list(headers), *[list(v) for v in rows]]
    size, widths = column_widths(cells, width, size, bold_rows)
    for column, inches in zip(table.columns, widths):
        column.width = Inches(inches)
    for r, values in enumerate(cells):
        table.rows[r].height = Inches(row_height)
        for c, value in enumerate(values):
            cell = table.cell(r, c)
            cell.text = value
            for paragraph in cell.text_frame.paragraphs:
                for run in paragraph.runs:
                    run.font.size = Pt(size)
                    run.font.bold = r == 0 or (r - 1) in bold_rows


def column_widths(cells: Sequence[Sequence[str]], width: float, size: int,
                  bold_rows: Sequence[int] = ()) -> tuple[int, list[float]]:
    """The font size and column widths (inches) at which a table's text fits its width unbroken.

    Each column needs its longest line as :func:`text_em` measures it (a header only its longest
    word: it may wrap between words), bold text :data:`BOLD_WIDTH` times more, capped at 24 digits'
    width so that one very long value (a checkpoint id, wrapping at its dashes) does not squeeze the rest. Where the needs exceed ``width`` the size
    steps down, to :data:`MIN_TABLE_SIZE` at least; what is left over is shared by need.

    Args:
        cells: The header row, then the body rows.
        width: The table's width in inches.
        size: The font size wanted, in points.
        bold_rows: Body rows (0-based) set in bold, like the knee's.
    """
    counts = _column_ems(cells, bold_rows)
    while size > MIN_TABLE_SIZE and sum(_needs(counts, size)) > width:
        size -= 1
    wanted = _needs(counts, size)
    return size, [width * n / sum(wanted) for n in wanted]


def table_fits(cells: Sequence[Sequence[str]], width: float, size: int, bold_rows: Sequence[int] = ()) -> bool:
    """Whether a table's text fits ``width`` inches unbroken at ``size`` points (see :func:`column_widths`)."""
    return sum(_needs(_column_ems(cells, bold_rows), size)) <= width


def text_em(text: str) -> float:
    """How wide ``text`` sets, in em of a regular sans-serif face: narrow punctuation, digits and
    lower case, capitals, and the widest signs (%, m, w) told apart."""
    return sum(NARROW_EM if ch in NARROW_CHARS else WIDE_EM if ch in WIDE_CHARS else
               CAPITAL_EM if ch.isupper() else CHAR_EM for ch in text)


def _column_ems(cells: Sequence[Sequence[str]], bold_rows: Sequence[int]) -> list[float]:
    """Each column's need in em (see :func:`column_widths`)."""
    def need(c: int) -> float:
        most = 0.0
        for r, row in enumerate(cells):
            text = str(row[c])
            lines = text.split() if r == 0 else text.splitlines()
            longest = min(max((text_em(line) for line in lines), default=0.0), 24 * CHAR_EM)
            most = max(most, longest * (BOLD_WIDTH if r == 0 or (r - 1) in bold_rows else 1.0))
        return most

    return [need(c) for c in range(len(cells[0]))]


def _needs(ems: Sequence[float], points: int) -> list[float]:
    return [em * points / 72 + CELL_PADDING_INCHES for em in ems]


def _title_slide(deck: Any, report: StudyReport) -> None:
    from pptx.util import Inches, Pt

    slide = deck.slides.add_slide(deck.slide_layouts[0])
    title = slide.shapes.title
    title.left, title.top, title.width, title.height = Inches(0.8), Inches(1.6), Inches(11.7), Inches(1.5)
    title.text = f"HPO study: {report.name}"
    for run in title.text_frame.paragraphs[0].runs:
        run.font.size = Pt(44)
        run.font.bold = True
    subtitle = slide.placeholders[1]
    subtitle.left, subtitle.top, subtitle.width, subtitle.height = Inches(0.8), Inches(3.3), Inches(11.7), Inches(3.5)
    lines = []
    description = report.definition.get("description")
    if description:
        lines.append(str(description))
    lines += [
        f"Dataset: {dataset_text(report)}",
        f"Budget: {budget_text(report)}",
        f"Hardware: {report.hardware or 'not recorded'}",
        f"Date: {report.created.strftime('%Y-%m-%d')}",
    ]
    frame = subtitle.text_frame
    frame.word_wrap = True
    for i, line in enumerate(lines):
        paragraph = frame.paragraphs[0] if i == 0 else frame.add_paragraph()
        paragraph.text = line
        for run in paragraph.runs:
            run.font.size = Pt(22)


def _strategy_slide(deck: Any, report: StudyReport) -> None:
    slide = deck.slides.add_slide(deck.slide_layouts[5])
    _set_title(slide, "Search space & strategy")
    space = list(report.search_space.items())
    if len(space) > MAX_SPACE_ROWS:
        hidden = len(space) - (MAX_SPACE_ROWS - 1)
        space = space[: MAX_SPACE_ROWS - 1] + [(f"... {hidden} more", "see the HTML report")]
    rows = [(name, text if len(text) <= 48 else text[:45] + "...") for name, text in space]
    if rows:
        _table(slide, ["Parameter", "Range / choices"], rows, 0.5, 1.3, 6.8, size=13)
    _text_box(slide, strategy_lines(report), 7.6, 1.3, 5.3, 5.8, size=17)


def _chart_slide(deck: Any, title: str, draw: Callable[[Any, tuple[float, ...]], Any], note: str = "",
                 empty: str = "") -> None:
    """A slide with one native chart under its title (and a note at the foot); ``empty`` when nothing is drawn."""
    slide = deck.slides.add_slide(deck.slide_layouts[5])
    _set_title(slide, title)
    if draw(slide, (0.4, 1.15, 12.53, 5.6 if note else 6.2)) is None:
        _text_box(slide, [empty], 0.6, 1.4, 12, 1)
    if note:
        _text_box(slide, [note], 0.6, 6.85, 12.1, 0.6, size=12)


def _importance_slide(deck: Any, report: StudyReport) -> None:
    """hpo's fANOVA importances (left) beside PED-ANOVA's, the evaluator optuna-dashboard shows (right)."""
    slide = deck.slides.add_slide(deck.slide_layouts[5])
    _set_title(slide, "Hyperparameter importance")
    shown = [(report.importances, f"{FANOVA} (hpo's reports)", 0.3),
             (report.ped_anova_importances, f"{PED_ANOVA} (optuna-dashboard's panel)", 6.75)]
    for importances, title, left in shown:
        if charts.add_importance_chart(slide, importances, title, (left, 1.15, 6.3, 5.6)) is None:
            _text_box(slide, [f"{title}: not computed."], left + 0.2, 1.4, 5.9, 1)
    # Without any importance the reasons are the whole story; with some, they say what is missing.
    notes = "; ".join(report.importance_notes.values())
    _text_box(slide, [notes or "fANOVA: variance explained by each parameter (random forest); PED-ANOVA: how much "
                               "each parameter's distribution in the best 10% of trials differs from all trials."],
              0.6, 6.85, 12.1, 0.6, size=12)


def _front_table_slide(deck: Any, report: StudyReport) -> None:
    slide = deck.slides.add_slide(deck.slide_layouts[5])
    table = front_table(report)
    shown = slide_rows(table)
    top = next((i for i, row in enumerate(shown) if row is not table[i]), len(shown))  # the most accurate shown
    more = f" (top {top} of {len(table)} by accuracy)" if len(table) > len(shown) else ""
    _set_title(slide, f"Pareto front trials{more}", size=30 if more else 32)
    if not table:
        _text_box(slide, ["No complete trial yet."], 0.6, 1.4, 12, 1)
        return
    knee_rows = [i for i, row in enumerate(shown) if row[KNEE]]
    # As many parameters (the most important first) as leave the table readable: the refit columns
    # of a refitted study take the room of some.
    for n_params in range(MAX_SLIDE_PARAM_COLUMNS, -1, -1):
        columns = display_columns(report, shown, max_params=n_params)
        rows = [[display_cell(row, c) for c in columns] for row in shown]
        if table_fits([[header(c) for c in columns], *rows], FRONT_TABLE_WIDTH, FRONT_TABLE_MIN_SIZE, knee_rows):
            break
    _table(slide, [header(c) for c in columns], rows, 0.4, 1.15, FRONT_TABLE_WIDTH,
           size=13 if len(columns) > 8 else 14, bold_rows=knee_rows)
    axes = ", ".join(AXIS_LABELS[a].split(" (")[0].lower() for a in report.axes)
    refit_note = " Knee chosen on the refit means; 'Ties knee' there: the seed spreads (mean ± std) overlap." if report.refits else ""
    knee_added = any(row.get(KNEE) for row in shown[top:])
    refits_added = any(row.get(REFIT_SEEDS) and not row.get(KNEE) for row in shown[top:])
    what = {(True, False): "its row", (False, True): "refitted rows", (True, True): "its row and refitted rows"}
    knee_note = (f"knee in bold ({what[knee_added, refits_added]} added below the {top} most accurate)"
                 if knee_added or refits_added else "knee in bold")
    _text_box(slide, [f"Front on {axes}; {knee_note}. Hypervolume {report.hypervolume:.4f}.{refit_note}", INTERVAL_NOTE],
              0.4, 6.45, 12.5, 0.95, size=13)  # at the foot: 13 rows render 0.39 in, a two-line header 0.5


def slide_rows(table: Sequence[dict[str, Any]], limit: int = MAX_SLIDE_ROWS) -> list[dict[str, Any]]:
    """The front table's rows a slide has room for: the ``limit`` most accurate, except that the
    knee (the trial the deck recommends) and every refitted configuration are always among them,
    taking the places of the least accurate others, so that the caption's "knee in bold" and the
    refit columns always point at rows. Rows keep the table's order."""
    must = [i for i, row in enumerate(table) if row.get(KNEE) or row.get(REFIT_SEEDS)][:limit]
    rest = [i for i in range(len(table)) if i not in must][: limit - len(must)]
    return [table[i] for i in sorted(must + rest)]


def _robustness_slide(deck: Any, report: StudyReport) -> None:
    """The refits: the refit means with ± std error bars (left, a native chart), the ranking before and after (right)."""
    from hpo.analysis.refits import ranking, within_spread_text

    slide = deck.slides.add_slide(deck.slide_layouts[5])
    _set_title(slide, "Robustness: refits over seeds")
    charts.add_robustness_chart(slide, report, (0.3, 1.2, 7.9, 4.9))
    single = {n: report.trial(n).get(VAL_ACCURACY) for n in report.refits if any(r["number"] == n for r in report.trials)}
    ranked = ranking(report.refits, single)[:MAX_SLIDE_ROWS]
    rows = [[str(r["trial"]), "-" if r["single"] is None else f"{100 * r['single']:.2f}%",
             f"{100 * r['mean']:.2f}% ± {100 * r['std']:.2f}", str(r["n"]), f"{r['rank_before']} → {r['rank_after']}"]
            for r in ranked]
    if rows:
        _table(slide, ["Trial", "Search run", "Refit mean ± std", "Seeds", "Rank"], rows, 8.4, 1.3, 4.7, size=12,
               bold_rows=[i for i, r in enumerate(ranked) if r["trial"] == report.knee_trial])
    sizes = [report.trial(n).get(PARAM_COUNT) for n in report.refits if any(r["number"] == n for r in report.trials)]
    side = " Configurations of one size are drawn side by side." if len(set(sizes)) < len(sizes) else ""
    notes = [f"Error bars: ± one standard deviation over the refit seeds; dots: single seeds.{side} "
             f"Knee chosen on the refit means: trial {report.knee_trial} (bold).",
             within_spread_text(report.refits) or "Every neighbour in the ranking is further apart than its seed spread."]
    _text_box(slide, notes, 0.4, 6.2, 12.5, 1.1, size=13)


def _knee_slide(deck: Any, report: StudyReport) -> None:
    slide = deck.slides.add_slide(deck.slide_layouts[5])
    knee = report.knee_trial
    if knee is None:
        _set_title(slide, "Knee trial")
        _text_box(slide, ["No complete trial yet, so no knee point."], 0.6, 1.4, 12, 1)
        return
    _set_title(slide, f"Knee trial {knee} in detail")
    params, metrics = knee_items(report)
    params = params[:MAX_SPACE_ROWS]
    metrics = metrics[:MAX_SPACE_ROWS]
    if params:
        _table(slide, ["Parameter", "Value"], [(k, v[:40]) for k, v in params], 0.5, 1.3, 6.0, size=13)
    if metrics:
        _table(slide, ["Metric", "Value"], [(k, v[:40]) for k, v in metrics], 6.9, 1.3, 6.0, size=13)
