"""Write a collected study as slides, a web page, images or a front table.

``export(report, fmt, out)``: ``pptx`` and ``html`` are whole reports, ``csv``/``md``/``tex`` are
the front table, ``png``/``svg`` write one file per figure into the folder ``out``.

Static images (png, svg, and the figures inside pptx) are rendered by Plotly's Kaleido, which
drives a headless Chrome or Chromium. Kaleido finds it through ``BROWSER_PATH`` or ``PATH``
(Debian's ``/usr/bin/chromium`` included); :func:`find_browser` checks this first so a missing
browser is one clear sentence rather than a stack trace.
"""

from __future__ import annotations

import contextlib
import csv
import html
import os
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import plotly.graph_objects as go

from hpo.analysis import plots
from hpo.analysis.pareto import AXIS_LABELS
from hpo.analysis.report import StudyReport, format_cell, front_table
from hpo.errors import ConfigError, HpoError

FORMATS = ("pptx", "html", "png", "svg", "csv", "md", "tex")
IMAGE_FORMATS = ("png", "svg")

BROWSER_MISSING = (
    "PNG/SVG/PPTX export needs Chrome or Chromium: install it (e.g. apt-get install chromium) "
    "or set BROWSER_PATH"
)

# Slides show at most this many front trials and parameters, so text never overflows a slide.
MAX_SLIDE_ROWS = 12
MAX_SLIDE_PARAM_COLUMNS = 4
MAX_SPACE_ROWS = 14

# Rendered at twice the layout size: sharp on a projector, and the text keeps its slide size.
IMAGE_SCALE = 2

_COLUMN_TITLES = {
    "trial": "Trial",
    "val_accuracy": "Val acc",
    "param_count": "Params",
    "macs": "MACs",
    "train_seconds": "Train s",
    "test_accuracy": "Test acc",
    "knee": "Knee",
}


def find_browser() -> str:
    """Path of the Chrome/Chromium that Kaleido will use.

    Returns:
        The executable's path (``BROWSER_PATH`` when set, else the first Chromium-based browser
        on ``PATH`` or in the usual install places).

    Raises:
        HpoError: When no usable browser is found.
    """
    from choreographer.browsers.chromium import Chromium

    path = Chromium.find_browser(skip_local=False)
    if not path or not os.path.isfile(path) or not os.access(path, os.X_OK):
        raise HpoError(BROWSER_MISSING)
    return str(path)


_browser_sessions = 0  # depth of nested browser_session() blocks


@contextlib.contextmanager
def browser_session() -> Iterator[None]:
    """Keep one headless browser open for every render inside the block.

    Starting Chromium and warming Plotly up costs seconds, each figure after that a fraction of
    one: wrap several exports (or a test session) in this block to pay the start once.

    Raises:
        HpoError: When no browser is found.
    """
    global _browser_sessions
    import kaleido

    find_browser()
    if _browser_sessions == 0:
        # MathJax would come from a CDN (offline machines wait for it) and no figure uses LaTeX.
        kaleido.start_sync_server(mathjax=False, silence_warnings=True)
    _browser_sessions += 1
    try:
        yield
    finally:
        _browser_sessions -= 1
        if _browser_sessions == 0:
            kaleido.stop_sync_server(silence_warnings=True)


def render_images(
    figures: Mapping[str, go.Figure], fmt: str, out_dir: Path, scale: float = IMAGE_SCALE
) -> list[Path]:
    """Render figures to static files, one per figure, in one browser.

    Args:
        figures: File stem -> figure.
        fmt: ``png`` or ``svg``.
        out_dir: Folder to write into (created if missing).
        scale: Pixel density multiplier (PNG pixels per layout pixel).

    Returns:
        The written paths, in the order of ``figures``.

    Raises:
        HpoError: When no browser is found.
    """
    import kaleido
    from choreographer.errors import ChromeNotFoundError

    find_browser()
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / f"{stem}.{fmt}" for stem in figures]
    specs = [
        {
            "fig": figure.to_dict(),
            "path": path,
            "opts": {"format": fmt, "width": plots.WIDTH, "height": plots.HEIGHT, "scale": scale},
        }
        for figure, path in zip(figures.values(), paths)
    ]
    try:
        if _browser_sessions:
            kaleido.write_fig_from_object_sync(specs)
        else:
            kaleido.write_fig_from_object_sync(specs, kopts={"mathjax": False})
    except ChromeNotFoundError as error:
        raise HpoError(BROWSER_MISSING) from error
    return paths


def export(report: StudyReport, fmt: str, out: Path) -> list[Path]:
    """Write the report in one format.

    Args:
        report: A collected study (see report.collect).
        fmt: One of :data:`FORMATS`.
        out: For png/svg the folder that gets one file per figure; otherwise the file to write
            (when ``out`` is an existing folder, ``<study name>.<fmt>`` is written inside it).

    Returns:
        The written paths.

    Raises:
        ConfigError: For an unknown format.
        HpoError: When png/svg/pptx export finds no browser.
    """
    fmt = fmt.lower().lstrip(".")
    if fmt not in FORMATS:
        raise ConfigError(f"unknown export format {fmt!r}: use one of {', '.join(FORMATS)}")
    out = Path(out)
    if fmt in IMAGE_FORMATS:
        return render_images(plots.figures(report), fmt, out)
    if out.is_dir():
        out = out / f"{report.name}.{fmt}"
    out.parent.mkdir(parents=True, exist_ok=True)
    writer = {
        "pptx": write_pptx,
        "html": write_html,
        "csv": write_csv,
        "md": write_markdown,
        "tex": write_latex,
    }[fmt]
    writer(report, out)
    return [out]


# ---------------------------------------------------------------------------------------------
# Front table: csv, md, tex


def write_csv(report: StudyReport, out: Path) -> None:
    """Write the front table with raw numbers (accuracy as a fraction, seconds, counts).

    Args:
        report: A collected study.
        out: The CSV file.
    """
    table = front_table(report)
    columns = list(table[0]) if table else ["trial", "val_accuracy", "param_count", "macs", "train_seconds", "knee"]
    with open(out, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        for row in table:
            writer.writerow({k: ("" if v is None else v) for k, v in row.items()})


def _header(column: str) -> str:
    return _COLUMN_TITLES.get(column, column)


def write_markdown(report: StudyReport, out: Path) -> None:
    """Write the front table as a Markdown (GitHub) table under a one-line summary.

    Args:
        report: A collected study.
        out: The .md file.
    """
    table = front_table(report)
    lines = [
        f"# Pareto front of study `{report.name}`",
        "",
        _summary_sentence(report),
        "",
    ]
    if table:
        columns = list(table[0])
        lines.append("| " + " | ".join(_header(c).replace("|", "\\|") for c in columns) + " |")
        lines.append("|" + "|".join("---:" if c != "knee" else ":---:" for c in columns) + "|")
        for row in table:
            cells = [format_cell(c, row[c]).replace("|", "\\|") for c in columns]
            lines.append("| " + " | ".join(cells) + " |")
    else:
        lines.append("No complete trial yet.")
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")


_TEX_ESCAPES = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
}


def tex_escape(text: str) -> str:
    """Escape LaTeX's special characters.

    Args:
        text: Plain text.

    Returns:
        Text that typesets as itself.
    """
    return "".join(_TEX_ESCAPES.get(ch, ch) for ch in text)


def write_latex(report: StudyReport, out: Path) -> None:
    """Write the front table as a booktabs ``tabular`` ready for ``\\input``.

    Args:
        report: A collected study.
        out: The .tex file (needs ``\\usepackage{booktabs}`` in the document).
    """
    table = front_table(report)
    columns = list(table[0]) if table else ["trial", "val_accuracy", "param_count", "train_seconds"]
    align = "".join("c" if c == "knee" else ("l" if c not in _COLUMN_TITLES else "r") for c in columns)
    lines = [
        f"% Pareto front of study {report.name}; needs \\usepackage{{booktabs}}",
        f"\\begin{{tabular}}{{{align}}}",
        "\\toprule",
        " & ".join(tex_escape(_header(c)) for c in columns) + " \\\\",
        "\\midrule",
    ]
    for row in table:
        cells = [tex_escape(format_cell(c, row[c])) for c in columns]
        lines.append(" & ".join(cells) + " \\\\")
    lines += ["\\bottomrule", "\\end{tabular}"]
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")


# ---------------------------------------------------------------------------------------------
# Shared text


def _dataset_text(report: StudyReport) -> str:
    dataset = report.definition.get("dataset") or {}
    if not isinstance(dataset, Mapping) or not dataset:
        return "dataset not recorded"
    parts = [str(dataset.get("kind", "dataset"))]
    if dataset.get("n_classes") is not None:
        parts.append(f"{dataset['n_classes']} classes")
    if dataset.get("R") is not None:
        parts.append(f"R={dataset['R']}")
    if dataset.get("train_size") is not None:
        parts.append(f"{dataset['train_size']} training images")
    return ", ".join(parts)


def _budget_text(report: StudyReport) -> str:
    n_trials = report.n_trials if report.n_trials is not None else report.definition.get("n_trials")
    epochs = report.definition.get("epochs")
    parts = []
    if n_trials is not None:
        parts.append(f"{n_trials} trials")
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


def _counts_text(report: StudyReport) -> str:
    counts = report.state_counts
    text = (
        f"{counts.get('COMPLETE', 0)} complete, {counts.get('PRUNED', 0)} pruned, "
        f"{counts.get('FAIL', 0)} failed"
    )
    running = counts.get("RUNNING", 0) + counts.get("WAITING", 0)
    if running:
        text += f", {running} running"
    return text


def _summary_sentence(report: StudyReport) -> str:
    knee = report.knee_trial
    axes = ", ".join(report.axes)
    text = (
        f"{_counts_text(report)} trials, {_duration(report.compute_seconds)} of training; "
        f"front on ({axes}) has {len(report.front.front_trial_numbers)} "
        f"{'trial' if len(report.front.front_trial_numbers) == 1 else 'trials'}, "
        f"hypervolume {report.hypervolume:.4f}"
    )
    if knee is not None:
        text += f", knee trial {knee}"
    return text + "."


def _strategy_lines(report: StudyReport) -> list[str]:
    objectives = ", ".join(
        f"{direction} {name}" for name, direction in zip(report.metric_names, report.directions)
    )
    reasons = ", ".join(f"{k}: {v}" for k, v in sorted(report.stop_reason_counts.items()))
    ref = report.reference
    lines = [
        f"Objectives: {objectives}",
        f"Sampler: {_named_args(report.definition.get('sampler'))}",
        f"Pruner: {_named_args(report.definition.get('pruner'))}",
        f"Trials: {_counts_text(report)}",
    ]
    if reasons:
        lines.append(f"Stop reasons: {reasons}")
    lines += [
        f"Compute spent: {_duration(report.compute_seconds)} of training",
        f"Hypervolume: {report.hypervolume:.4f} (reference: acc 0, "
        f"{ref['params']:.0e} params, {ref['train_seconds']:g} s)",
    ]
    return lines


def _knee_items(report: StudyReport) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    knee = report.knee_trial
    if knee is None:
        return [], []
    row = report.trial(knee)
    params = [(name, format_cell(name, value)) for name, value in sorted(row["params"].items())]
    metric_keys = (
        "val_accuracy",
        "test_accuracy",
        "train_accuracy",
        "val_loss",
        "train_loss",
        "param_count",
        "macs",
        "train_seconds",
        "epochs_run",
        "images_per_second",
        "peak_memory_bytes",
        "device_name",
        "checkpoint",
    )
    metrics = [(key, format_cell(key, row.get(key))) for key in metric_keys if row.get(key) is not None]
    return params, metrics


def _display_columns(report: StudyReport, table: Sequence[Mapping[str, Any]], max_params: int | None) -> list[str]:
    if not table:
        return []
    columns = [c for c in table[0] if c in _COLUMN_TITLES]
    if all(row.get("macs") is None for row in table):
        columns.remove("macs")
    params = [c for c in table[0] if c not in _COLUMN_TITLES]
    if max_params is not None:
        # The parameters that matter most for accuracy earn the few columns a slide has.
        ranking = report.importances.get("val_accuracy", {})
        params = sorted(params, key=lambda p: -ranking.get(p, 0.0))[:max_params]
    return columns + params


# ---------------------------------------------------------------------------------------------
# HTML


def _html_table(headers: Sequence[str], rows: Sequence[Sequence[str]], css_class: str = "") -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(cell)}</td>" for cell in row) + "</tr>" for row in rows
    )
    return f'<table class="{css_class}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


_CSS = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1260px; color: #222; }
table { border-collapse: collapse; margin: 1em 0; }
th, td { border-bottom: 1px solid #ddd; padding: 4px 10px; text-align: right; }
th { background: #f4f4f4; }
td:first-child, th:first-child { text-align: left; }
tr.knee td { font-weight: bold; background: #fff3e6; }
.figure { margin: 1.5em 0; }
"""


def write_html(report: StudyReport, out: Path) -> None:
    """Write one self-contained interactive page: plotly.js is embedded, no network needed.

    Args:
        report: A collected study.
        out: The .html file.
    """
    name = html.escape(report.name)
    parts = [
        "<!DOCTYPE html>",
        f'<html lang="en"><head><meta charset="utf-8"><title>hpo report: {name}</title>',
        f"<style>{_CSS}</style></head><body>",
        f"<h1>Study {name}</h1>",
    ]
    description = report.definition.get("description")
    if description:
        parts.append(f"<p>{html.escape(str(description))}</p>")
    facts = [
        ("Dataset", _dataset_text(report)),
        ("Budget", _budget_text(report)),
        ("Hardware", report.hardware or "not recorded"),
        ("Report date", report.created.strftime("%Y-%m-%d %H:%M UTC")),
        ("hpo version", report.hpo_version or "not recorded"),
    ]
    parts.append(_html_table(["", ""], facts, "facts"))
    parts.append(f'<p id="summary">{html.escape(_summary_sentence(report))}</p>')

    parts.append("<h2>Search space and strategy</h2>")
    parts.append(_html_table(["Parameter", "Range / choices"], list(report.search_space.items())))
    parts.append("<ul>" + "".join(f"<li>{html.escape(line)}</li>" for line in _strategy_lines(report)) + "</ul>")

    figures = plots.figures(report)
    include_js: Any = True  # the first figure carries plotly.js inline; the rest reuse it
    titles = {
        "front_params": "Accuracy vs parameters",
        "front_time": "Accuracy vs training time",
        "front_macs": "Accuracy vs MACs",
        "learning_curves": "Learning curves of the front",
        "importance": "Hyperparameter importance",
        "history": "Optimization history",
    }
    table = front_table(report)
    columns = _display_columns(report, table, max_params=None)
    for key, figure in figures.items():
        parts.append(f"<h2>{html.escape(titles.get(key, key))}</h2>")
        parts.append(
            '<div class="figure">'
            + figure.to_html(full_html=False, include_plotlyjs=include_js, div_id=f"fig-{key}")
            + "</div>"
        )
        include_js = False
        if key == "front_time" or (key == "front_params" and "front_time" not in figures):
            parts.append(f"<h2>Pareto front on ({html.escape(', '.join(report.axes))})</h2>")
            if table:
                head = "".join(f"<th>{html.escape(_header(c))}</th>" for c in columns)
                body = []
                for row in table:
                    cls = ' class="knee"' if row["knee"] else ""
                    cells = "".join(f"<td>{html.escape(format_cell(c, row[c]))}</td>" for c in columns)
                    body.append(f'<tr id="trial-{row["trial"]}"{cls}>{cells}</tr>')
                parts.append(f'<table class="front"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>')
            else:
                parts.append("<p>No complete trial yet.</p>")
        if key == "importance" and report.importance_notes:
            parts.append(
                "<ul>" + "".join(f"<li>{html.escape(n)}</li>" for n in report.importance_notes.values()) + "</ul>"
            )

    params, metrics = _knee_items(report)
    if report.knee_trial is not None:
        parts.append(f"<h2>Knee trial {report.knee_trial} in detail</h2>")
        parts.append(_html_table(["Parameter", "Value"], params))
        parts.append(_html_table(["Metric", "Value"], metrics))
    parts.append("</body></html>")
    out.write_text("\n".join(parts), encoding="utf-8")


# ---------------------------------------------------------------------------------------------
# PowerPoint


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
        f"Dataset: {_dataset_text(report)}",
        f"Budget: {_budget_text(report)}",
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
    _text_box(slide, _strategy_lines(report), 7.6, 1.3, 5.3, 5.8, size=17)


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
    columns = _display_columns(report, shown, max_params=MAX_SLIDE_PARAM_COLUMNS)
    rows = [[format_cell(c, row[c]) for c in columns] for row in shown]
    knee_rows = [i for i, row in enumerate(shown) if row["knee"]]
    _table(slide, [_header(c) for c in columns], rows, 0.4, 1.3, 12.5,
           size=13 if len(columns) > 8 else 14, bold_rows=knee_rows)
    axes = ", ".join(AXIS_LABELS[a].split(" (")[0].lower() for a in report.axes)
    _text_box(slide, [f"Front on {axes}; knee in bold. Hypervolume {report.hypervolume:.4f}."],
              0.4, 1.3 + 0.38 * (len(rows) + 1) + 0.15, 12.5, 0.5, size=14)


def _knee_slide(deck: Any, report: StudyReport) -> None:
    slide = deck.slides.add_slide(deck.slide_layouts[5])
    knee = report.knee_trial
    if knee is None:
        _set_title(slide, "Knee trial")
        _text_box(slide, ["No complete trial yet, so no knee point."], 0.6, 1.4, 12, 1)
        return
    _set_title(slide, f"Knee trial {knee} in detail")
    params, metrics = _knee_items(report)
    params = params[:MAX_SPACE_ROWS]
    metrics = metrics[:MAX_SPACE_ROWS]
    if params:
        _table(slide, ["Parameter", "Value"], [(k, v[:40]) for k, v in params], 0.5, 1.3, 6.0, size=13)
    if metrics:
        _table(slide, ["Metric", "Value"], [(k, v[:40]) for k, v in metrics], 6.9, 1.3, 6.0, size=13)
