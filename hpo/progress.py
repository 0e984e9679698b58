"""Progress bars for the long steps: the first-time image decode, ``evaluate``, ``refit``, ``export``.

Library code reports progress through :func:`task` (or :func:`track`) and never prints: nothing is
shown until a front end calls :func:`show`. The CLI does, when stderr is a terminal, so a notebook,
a worker process or a pipe stays quiet; a bar is drawn with Rich on stderr, beside the output.

Example, in library code::

    from hpo import progress

    with progress.task("decoding images", total=len(paths)) as advance:
        for chunk in chunks:
            decode(chunk)
            advance(len(chunk))

    for trial in progress.track(trials, "evaluating trials"):
        ...

Tasks may nest (``evaluate``'s trials, each decoding its data): each open task is one line of the
same display, removed when its block ends.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

T = TypeVar("T")

_console: Any = None  # the rich Console bars are drawn on; None: bars are not shown
_display: Any = None  # the rich Progress while at least one task is open
_open_tasks = 0


def show(console: Any = None) -> bool:
    """Show progress bars from now on.

    Args:
        console: A ``rich.console.Console`` to draw on. None: stderr, and only when stderr is a
            terminal (a pipe or a log file gets no bars).

    Returns:
        Whether bars will be shown.
    """
    global _console
    if console is None:
        if not sys.stderr.isatty():
            return False
        from rich.console import Console

        console = Console(stderr=True)
    _console = console
    return True


def hide() -> None:
    """Show no progress bars from now on (the default)."""
    global _console
    _console = None


def shown() -> bool:
    """Whether :func:`show` is in force."""
    return _console is not None


def _nothing(_advance: float = 1) -> None:
    return None


@contextlib.contextmanager
def task(description: str, total: float | None = None) -> Iterator[Callable[[float], None]]:
    """A progress bar for the block; yields ``advance(n=1)``.

    Args:
        description: What is being done, e.g. ``"decoding images"``.
        total: Units of work (images, trials, figures); None for a bar without an end.

    Yields:
        A function that records ``n`` more units done. Without :func:`show` it does nothing.
    """
    global _display, _open_tasks
    if _console is None:
        yield _nothing
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    if _display is None:
        _display = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                            TimeElapsedColumn(), console=_console, transient=False)
        _display.start()
    display = _display
    task_id = display.add_task(description, total=total)
    _open_tasks += 1

    def advance(n: float = 1) -> None:
        display.advance(task_id, n)

    try:
        yield advance
    finally:
        _open_tasks -= 1
        if _open_tasks:
            display.remove_task(task_id)  # a nested task: its parent's line stays
        else:
            display.stop()
            _display = None


def track(items: Iterable[T], description: str, total: float | None = None) -> Iterator[T]:
    """``items``, one by one, advancing a progress bar (see :func:`task`).

    Args:
        items: What to iterate over.
        description: What is being done.
        total: How many items; default ``len(items)`` where it has one.
    """
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    with task(description, total) as advance:
        for item in items:
            yield item
            advance(1)


__all__ = ["hide", "show", "shown", "task", "track"]
