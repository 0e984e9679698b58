"""The ``hpo`` command line: a thin layer over the library, one module per group of commands."""

# Each module registers its commands on ``app``; the import order is the order of ``hpo --help``.
from hpo.cli import running  # noqa: F401,I001
from hpo.cli import reports  # noqa: F401
from hpo.cli import files  # noqa: F401
from hpo.cli import training  # noqa: F401
from hpo.cli import refit  # noqa: F401
from hpo.cli import best  # noqa: F401
from hpo.cli.common import app

__all__ = ["app", "main"]


def main() -> None:
    """The console entry point (``hpo``, ``python -m hpo``).

    After Ctrl-C (exit code 130) the interpreter still runs its exit handlers (temporary folders,
    trackers' open runs); a further press then would interrupt them with a traceback, so from there on
    SIGINT and SIGTERM are ignored until the process ends.
    """
    try:
        app(prog_name="hpo")
    except SystemExit as exc:
        if exc.code == 130:
            from hpo.workers.interrupts import ignore_further_interrupts

            ignore_further_interrupts()
        raise
