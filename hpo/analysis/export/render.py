"""Static images of figures (png, svg), through Kaleido; the slide deck draws native charts instead.

Kaleido drives a headless Chrome or Chromium, found through ``BROWSER_PATH`` or ``PATH``
(Debian's ``/usr/bin/chromium`` included); :func:`find_browser` checks this first so a missing
browser is one clear sentence rather than a stack trace.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping
from pathlib import Path

import plotly.graph_objects as go

from hpo import progress
from hpo.analysis import plots
from hpo.errors import HpoError

BROWSER_MISSING = (
    "PNG/SVG export needs Chrome or Chromium: install it (e.g. apt-get install chromium) "
    "or set BROWSER_PATH"
)


# Rendered at twice the layout size: sharp on a projector, and the text keeps its slide size.
IMAGE_SCALE = 2


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
        if progress.shown() and len(specs) > 1:
            # One figure at a time in one browser, so that a progress bar can move (hpo.progress).
            with browser_session(), progress.task(f"rendering {len(specs)} figures ({fmt})", len(specs)) as advance:
                for spec in specs:
                    kaleido.write_fig_from_object_sync([spec])
                    advance(1)
        elif _browser_sessions:
            kaleido.write_fig_from_object_sync(specs)
        else:
            kaleido.write_fig_from_object_sync(specs, kopts={"mathjax": False})
    except ChromeNotFoundError as error:
        raise HpoError(BROWSER_MISSING) from error
    return paths
