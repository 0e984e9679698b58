"""Write a collected study as slides, a web page, images or a front table.

``export(report, fmt, out)``: ``pptx`` and ``html`` are whole reports, ``csv``/``md``/``tex`` are
the front table, ``png``/``svg`` write one file per figure into the folder ``out``. One module
per kind of output: ``render`` (static images, through Kaleido and a headless Chromium), ``charts``
(the deck's native python-pptx charts),
``tables`` (csv, md, tex), ``page`` (html), ``slides`` (pptx); ``summary`` holds the text they share.
"""

from __future__ import annotations

from pathlib import Path

from hpo.analysis import plots
from hpo.analysis.export.page import write_html
from hpo.analysis.export.render import BROWSER_MISSING, IMAGE_SCALE, browser_session, find_browser, render_images
from hpo.analysis.export.slides import MAX_SLIDE_PARAM_COLUMNS, MAX_SLIDE_ROWS, MAX_SPACE_ROWS, write_pptx
from hpo.analysis.export.tables import tex_escape, write_csv, write_latex, write_markdown
from hpo.analysis.report import StudyReport
from hpo.errors import ConfigError

FORMATS = ("pptx", "html", "png", "svg", "csv", "md", "tex")
IMAGE_FORMATS = ("png", "svg")


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
        HpoError: When png/svg export finds no browser (pptx needs none).
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


__all__ = [
    "BROWSER_MISSING",
    "FORMATS",
    "IMAGE_FORMATS",
    "IMAGE_SCALE",
    "MAX_SLIDE_PARAM_COLUMNS",
    "MAX_SLIDE_ROWS",
    "MAX_SPACE_ROWS",
    "browser_session",
    "export",
    "find_browser",
    "render_images",
    "tex_escape",
    "write_csv",
    "write_html",
    "write_latex",
    "write_markdown",
    "write_pptx",
]
