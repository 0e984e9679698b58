"""The HTML report: one self-contained interactive page."""

from __future__ import annotations

import html
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hpo.analysis import plots
from hpo.analysis.export.summary import (
    INTERVAL_NOTE,
    budget_text,
    dataset_text,
    display_columns,
    header,
    knee_items,
    strategy_lines,
    summary_sentence,
)
from hpo.analysis.report import KNEE, TIES_KNEE, StudyReport, display_cell, front_table


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
tr.ties td { background: #fffaf3; }
.figure { margin: 1.5em 0; }
"""


_FIGURE_TITLES = {
    "front_params": "Accuracy vs parameters",
    "front_time": "Accuracy vs training time",
    "front_macs": "Accuracy vs MACs",
    "learning_curves": "Learning curves of the front",
    "importance": "Hyperparameter importance",
    plots.HISTORY_FIGURE: "Optimization history",
    "robustness": "Robustness: refits over seeds",
}


def _front_table(report: StudyReport) -> str:
    """The front table, the knee's row and those that tie with it marked, every row linkable as ``#trial-N``."""
    table = front_table(report)
    if not table:
        return "<p>No complete trial yet.</p>"
    columns = display_columns(report, table, max_params=None)
    head = "".join(f"<th>{html.escape(header(c))}</th>" for c in columns)
    body = []
    for row in table:
        cls = ' class="knee"' if row[KNEE] else ' class="ties"' if row[TIES_KNEE] else ""
        cells = "".join(f"<td>{html.escape(display_cell(row, c))}</td>" for c in columns)
        body.append(f'<tr id="trial-{row["trial"]}"{cls}>{cells}</tr>')
    return (f'<table class="front"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'
            f'<p class="note">{html.escape(INTERVAL_NOTE)}</p>')


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
        ("Dataset", dataset_text(report)),
        ("Budget", budget_text(report)),
        ("Hardware", report.hardware or "not recorded"),
        ("Report date", report.created.strftime("%Y-%m-%d %H:%M UTC")),
        ("hpo version", report.hpo_version or "not recorded"),
    ]
    parts.append(_html_table(["", ""], facts, "facts"))
    parts.append(f'<p id="summary">{html.escape(summary_sentence(report))}</p>')

    parts.append("<h2>Search space and strategy</h2>")
    parts.append(_html_table(["Parameter", "Range / choices"], list(report.search_space.items())))
    parts.append("<ul>" + "".join(f"<li>{html.escape(line)}</li>" for line in strategy_lines(report)) + "</ul>")

    figures = plots.figures(report)
    include_js: Any = True  # the first figure carries plotly.js inline; the rest reuse it
    for key, figure in figures.items():
        parts.append(f"<h2>{html.escape(_FIGURE_TITLES.get(key, key))}</h2>")
        parts.append(
            '<div class="figure">'
            + figure.to_html(full_html=False, include_plotlyjs=include_js, div_id=f"fig-{key}")
            + "</div>"
        )
        include_js = False
        if key == "front_time" or (key == "front_params" and "front_time" not in figures):
            parts.append(f"<h2>Pareto front on ({html.escape(', '.join(report.axes))})</h2>")
            parts.append(_front_table(report))
        if key == "importance" and report.importance_notes:
            parts.append(
                "<ul>" + "".join(f"<li>{html.escape(n)}</li>" for n in report.importance_notes.values()) + "</ul>"
            )

    params, metrics = knee_items(report)
    if report.knee_trial is not None:
        parts.append(f"<h2>Knee trial {report.knee_trial} in detail</h2>")
        parts.append(_html_table(["Parameter", "Value"], params))
        parts.append(_html_table(["Metric", "Value"], metrics))
    parts.append("</body></html>")
    out.write_text("\n".join(parts), encoding="utf-8")
