"""The slide deck: a 16:9 PowerPoint ready to present."""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hpo.analysis import plots
from hpo.analysis.export.render import render_images
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
from hpo.analysis.report import KNEE, StudyReport, display_cell, front_table

# Slides show at most this many front trials and parameters, so text never overflows a slide.
MAX_SLIDE_ROWS = 12
MAX_SLIDE_PARAM_COLUMNS = 4
MAX_SPACE_ROWS = 14


def write_pptx(report: StudyReport, out: Path) -> None:
    """Write a 16:9 deck ready to present: title, strategy, fronts, table, curves, importance, knee.

    Figures are PNGs rendered by Kaleido at slide size; tables are capped at
    :data:`MAX_SLIDE_ROWS` rows so nothing overflows.

    Args:
        report: A collected study.
        out: The .pptx file.

    Raises:
        HpoError: When no browser is available to render the figures.
    """
    from pptx import Presentation
    from pptx.util import Inches

    figures = plots.figures(report)
    with tempfile.TemporaryDirectory(prefix="hpo-pptx-") as tmp:
        images = dict(zip(figures, render_images(figures, "png", Path(tmp))))
        deck = Presentation()
        deck.slide_width, deck.slide_height = Inches(13.333), Inches(7.5)
        _title_slide(deck, report)
        _strategy_slide(deck, report)
        _picture_slide(deck, "Accuracy vs parameters", images["front_params"])
        _picture_slide(deck, "Accuracy vs training time", images["front_time"])
        if "front_macs" in images:
            _picture_slide(deck, "Accuracy vs MACs", images["front_macs"])
        _front_table_slide(deck, report)
        _picture_slide(deck, "Learning curves of the front", images["learning_curves"])
        # Without any importance the figure itself states why; a note repeating it is noise.
        _picture_slide(deck, "Hyperparameter importance", images["importance"],
                       note="; ".join(report.importance_notes.values()) if report.importances else "")
        _knee_slide(deck, report)
        deck.save(str(out))


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
    _fit_column_widths(table, [list(headers), *[list(v) for v in rows]], Inches(width))
    for r, values in enumerate([list(headers), *[list(v) for v in rows]]):
        table.rows[r].height = Inches(row_height)
        for c, value in enumerate(values):
            cell = table.cell(r, c)
            cell.text = value
            for paragraph in cell.text_frame.paragraphs:
                for run in paragraph.runs:
                    run.font.size = Pt(size)
                    run.font.bold = r == 0 or (r - 1) in bold_rows


def _fit_column_widths(table: Any, cells: Sequence[Sequence[str]], total: int) -> None:
    """Share the table's width among columns by their longest text, so that short columns do not
    take the room that headers like ``cnn.channels`` need to stay on one line."""
    from pptx.util import Emu

    # Each column gets its longest line plus padding, in characters; the cap keeps one very long
    # value (a checkpoint id, wrapping at its dashes) from squeezing names like peak_memory_bytes.
    weights = [
        min(max((len(line) for row in cells for line in str(row[c]).splitlines()), default=0), 24) + 3
        for c in range(len(cells[0]))
    ]
    widths = [total * w // sum(weights) for w in weights]
    widths[-1] += total - sum(widths)
    for column, width in zip(table.columns, widths):
        column.width = Emu(width)


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


def _picture_slide(deck: Any, title: str, image: Path, note: str = "") -> None:
    from pptx.util import Inches

    slide = deck.slides.add_slide(deck.slide_layouts[5])
    _set_title(slide, title)
    height = 6.1 if not note else 5.6
    width = height * plots.WIDTH / plots.HEIGHT
    slide.shapes.add_picture(str(image), Inches((13.333 - width) / 2), Inches(1.2), Inches(width), Inches(height))
    if note:
        _text_box(slide, [note], 0.6, 6.85, 12.1, 0.6, size=12)


def _front_table_slide(deck: Any, report: StudyReport) -> None:
    slide = deck.slides.add_slide(deck.slide_layouts[5])
    table = front_table(report)
    shown = table[:MAX_SLIDE_ROWS]
    more = f" (top {len(shown)} of {len(table)} by accuracy)" if len(table) > len(shown) else ""
    _set_title(slide, f"Pareto front trials{more}", size=30 if more else 32)
    if not table:
        _text_box(slide, ["No complete trial yet."], 0.6, 1.4, 12, 1)
        return
    columns = display_columns(report, shown, max_params=MAX_SLIDE_PARAM_COLUMNS)
    rows = [[display_cell(row, c) for c in columns] for row in shown]
    knee_rows = [i for i, row in enumerate(shown) if row[KNEE]]
    _table(slide, [header(c) for c in columns], rows, 0.4, 1.3, 12.5,
           size=13 if len(columns) > 8 else 14, bold_rows=knee_rows)
    axes = ", ".join(AXIS_LABELS[a].split(" (")[0].lower() for a in report.axes)
    _text_box(slide, [f"Front on {axes}; knee in bold. Hypervolume {report.hypervolume:.4f}.", INTERVAL_NOTE],
              0.4, 1.3 + 0.38 * (len(rows) + 1) + 0.15, 12.5, 0.9, size=14)


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
