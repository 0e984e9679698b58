"""The front table as CSV (raw numbers), Markdown and LaTeX (numbers as people read them)."""

from __future__ import annotations

import csv
from pathlib import Path

from hpo.analysis.export.summary import COLUMN_TITLES, header, refit_text, summary_sentence, warm_start_text
from hpo.analysis.report import (
    FRONT_TABLE_METRICS,
    KNEE,
    TIES_KNEE,
    StudyReport,
    display_cell,
    front_table,
    shown_columns,
)
from hpo.trials import PARAM_COUNT, TRAIN_SECONDS, VAL_ACCURACY


def write_csv(report: StudyReport, out: Path) -> None:
    """Write the front table with raw numbers (accuracy as a fraction, seconds, counts), each
    accuracy followed by its interval's ``_lower`` and ``_upper`` (empty where n is unknown).

    Args:
        report: A collected study.
        out: The CSV file.
    """
    table = front_table(report)
    columns = list(table[0]) if table else ["trial", *FRONT_TABLE_METRICS, KNEE, TIES_KNEE]
    with open(out, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        for row in table:
            writer.writerow({k: ("" if v is None else v) for k, v in row.items()})


def write_markdown(report: StudyReport, out: Path) -> None:
    """Write the front table as a Markdown (GitHub) table under a one-line summary; accuracies
    carry their 95% interval, ``Ties knee`` marks the trials whose interval overlaps the knee's.

    Args:
        report: A collected study.
        out: The .md file.
    """
    table = front_table(report)
    lines = [
        f"# Pareto front of study `{report.name}`",
        "",
        summary_sentence(report),
        "",
        *([warm_start_text(report), ""] if warm_start_text(report) else []),
        *([refit_text(report), ""] if refit_text(report) else []),
    ]
    if table:
        columns = shown_columns(table)
        lines.append("| " + " | ".join(header(c).replace("|", "\\|") for c in columns) + " |")
        lines.append("|" + "|".join(":---:" if c in (KNEE, TIES_KNEE) else "---:" for c in columns) + "|")
        for row in table:
            cells = [display_cell(row, c).replace("|", "\\|") for c in columns]
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
    columns = shown_columns(table) or ["trial", VAL_ACCURACY, PARAM_COUNT, TRAIN_SECONDS]
    align = "".join("c" if c in (KNEE, TIES_KNEE) else ("l" if c not in COLUMN_TITLES else "r") for c in columns)
    lines = [
        f"% Pareto front of study {report.name}; needs \\usepackage{{booktabs}}",
        f"\\begin{{tabular}}{{{align}}}",
        "\\toprule",
        " & ".join(tex_escape(header(c)) for c in columns) + " \\\\",
        "\\midrule",
    ]
    for row in table:
        cells = [tex_escape(display_cell(row, c)) for c in columns]
        lines.append(" & ".join(cells) + " \\\\")
    lines += ["\\bottomrule", "\\end{tabular}"]
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
