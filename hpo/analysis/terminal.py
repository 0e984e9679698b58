"""The Pareto front for a terminal (``hpo pareto``): a Rich table, CSV or JSON text.

The functions return text or a renderable; the command line prints them.
"""

from __future__ import annotations

import csv
import io
import json
from typing import TYPE_CHECKING

from hpo.analysis.report import (
    CONFIDENCE,
    KNEE,
    TIES_KNEE,
    WARM_FROM,
    StudyReport,
    display_cell,
    front_table,
    shown_columns,
)

if TYPE_CHECKING:
    from rich.table import Table

FORMATS = ("table", "csv", "json")


def front_json(report: StudyReport) -> str:
    """The front as a JSON document: study, axes, hypervolume, knee trial, the intervals'
    confidence level and the front table (accuracies with ``_lower``/``_upper``, ``ties_knee``).

    Args:
        report: A collected study.

    Returns:
        The JSON text (indented, no final newline).
    """
    return json.dumps({"study": report.name, "axes": report.front.axes, "hypervolume": report.hypervolume,
                       "knee_trial": report.knee_trial, "confidence": CONFIDENCE, "front": front_table(report)},
                      indent=2, default=str)


def front_csv(report: StudyReport) -> str:
    """The front table as CSV with raw numbers (one header line, one line per front trial).

    Args:
        report: A collected study.

    Returns:
        The CSV text.
    """
    rows = front_table(report)
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=list(rows[0]) if rows else ["trial"])
    writer.writeheader()
    writer.writerows(rows)
    return text.getvalue()


def front_rich_table(report: StudyReport) -> Table:
    """The front table as people read it (accuracies as % with their 95% interval, counts short),
    the knee and the trials that tie with it marked.

    Args:
        report: A collected study.

    Returns:
        A Rich table, titled with the axes, the number of front trials and the hypervolume.
    """
    from rich.table import Table

    rows = front_table(report)
    warm = "; warm_from: the study#trial a warm-start trial took its configuration from" if rows and WARM_FROM in rows[0] else ""
    table = Table(title=f"{report.name}: Pareto front over {', '.join(report.front.axes)} "
                        f"({len(rows)} of {len(report.rows('COMPLETE'))} complete trials; hypervolume {report.hypervolume:.4f})",
                  caption=f"accuracies [{100 * CONFIDENCE:.0f}% Wilson interval]; ties: its interval overlaps the knee's{warm}")
    columns = shown_columns(rows) or ["trial"]
    marks = {KNEE: "knee", TIES_KNEE: "ties"}
    for column in columns:
        table.add_column(column, justify="center" if column in marks else "right")
    for row in rows:
        table.add_row(*((marks[c] if row[c] else "") if c in marks else display_cell(row, c) for c in columns))
    return table
