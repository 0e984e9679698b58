"""What the ``hpo`` commands share: the Typer app, the common options, the error wrapper, and
opening a stored study. Each command module registers its commands on ``app``.

Every error prints one sentence and no traceback (``hpo --debug`` adds it): exit code 2 for a user
mistake, 1 for an environment fault, 130 for Ctrl-C; the mapping is ``hpo.faults_user``.
"""
from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Annotated, Optional

import typer
import warnings
from typer._click.exceptions import ClickException
from typer.core import TyperGroup

from hpo.errors import ConfigError, require_positive

# Optuna flags features such as metric names as experimental; that is noise for hpo's users.
warnings.filterwarnings("ignore", message=r".*is experimental.*")

class _OneLineErrors(TyperGroup):
    """Usage errors (an unknown option, a value of the wrong type) as one line, like every other error."""

    def main(self, *args, standalone_mode: bool = True, **kwargs):
        if not standalone_mode:
            return super().main(*args, standalone_mode=False, **kwargs)
        import sys

        from typer._click.exceptions import NoArgsIsHelpError

        from hpo.faults_user import one_line

        try:
            code = super().main(*args, standalone_mode=False, **kwargs)  # an Exit's code, or None when done
        except NoArgsIsHelpError as exc:  # the help is printed already
            sys.exit(exc.exit_code)
        except ClickException as exc:
            ctx = getattr(exc, "ctx", None)
            help_hint = f"; see `{ctx.command_path} --help`" if ctx is not None else ""
            typer.echo(f"error: {one_line(exc.format_message())}{help_hint}", err=True)
            sys.exit(exc.exit_code)
        sys.exit(code if isinstance(code, int) else 0)


app = typer.Typer(
    help="Hyperparameter optimisation of CIFAR-sized image classifiers on Optuna studies.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=True,  # hpo --install-completion (bash, zsh, fish, PowerShell), --show-completion
    cls=_OneLineErrors,
)


def _print_version(value: bool) -> None:
    if value:
        from hpo import __version__

        typer.echo(f"hpo {__version__}")
        raise typer.Exit()


@app.callback()
def _app_options(
    debug: Annotated[bool, typer.Option("--debug", help="Show the traceback of an error (also HPO_DEBUG=1; workers "
                                        "inherit it). Without it every error is one line.")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Also show Optuna's own log lines (\"A new study "
                                          "created ...\", sampler notes).")] = False,
    version: Annotated[bool, typer.Option("--version", callback=_print_version, is_eager=True,
                                          help="Print hpo's version and exit.")] = False,
):
    import optuna

    from hpo.faults_user import DEBUG_ENV

    if debug:
        os.environ[DEBUG_ENV] = "1"
    # Optuna logs at INFO to stderr ("A new study created in RDB ..."): noise beside hpo's own lines.
    optuna.logging.set_verbosity(optuna.logging.INFO if verbose else optuna.logging.WARNING)
    from hpo import progress

    progress.show()  # progress bars for long steps, when stderr is a terminal

# Options shared by several commands.
StudyOpt = Annotated[str, typer.Option("--study", "-s", help="Study name (studies/NAME.yaml) or path to a study YAML file.")]
StorageOpt = Annotated[
    Optional[str],
    typer.Option("--storage", help="Storage URL: sqlite:///FILE, postgresql://..., mysql://..., a journal file path "
                 "(study.log) or redis://HOST:PORT/DB. Prefer HPO_STORAGE or --storage-file: `ps` shows command lines. "
                 "(env: HPO_STORAGE, then OPTUNA_STORAGE; default: sqlite:///hpo.db)", show_default=False),
]
StorageFileOpt = Annotated[Optional[Path], typer.Option("--storage-file", help="File whose first line is the storage URL "
                                                        "(instead of --storage).")]
DataDirOpt = Annotated[
    Optional[str],
    typer.Option("--data-dir", envvar="HPO_DATA_DIR", help="Folder holding cifar-10-batches-py/ or train/ and test/ "
                 "class folders (default ./data)."),
]
ArtifactsOpt = Annotated[
    Optional[str],
    typer.Option("--artifacts", envvar="HPO_ARTIFACTS", help="Artifact store folder for checkpoints (default ./artifacts; "
                 "shared by all machines of a study)."),
]
DevicesOpt = Annotated[str, typer.Option("--devices", help="auto (every GPU, else CPU), cpu, or a list: cuda:0,cuda:1.")]
BudgetOpt = Annotated[Optional[str], typer.Option("--budget", help="Study-wide time budget, stored with the study: 90s, 5m, "
                      "2h (wall clock while any worker runs) or 3dh (device-hours, summed over worker slots).")]


def user_errors(command):
    """Whatever a command raises becomes one line and its exit code (``hpo.faults_user.describe``): 2 for
    a user mistake, 1 for an environment fault or an unexpected error, 130 for Ctrl-C; no traceback
    unless ``hpo --debug``."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except (typer.Exit, typer.Abort, SystemExit, ClickException):  # the app's own exits and usage errors
            raise
        except (Exception, KeyboardInterrupt) as exc:
            from hpo.faults_user import debug_enabled, describe, format_traceback

            fault = describe(exc)
            if debug_enabled():
                typer.echo(format_traceback(exc), err=True)
            typer.echo(fault.message, err=True)
            raise typer.Exit(fault.exit_code) from None

    return wrapper


def open_storage_from(storage: str | None, storage_file: Path | None, *, must_exist: bool = False):
    from hpo.storage import open_storage, resolve_storage_url

    url = resolve_storage_url(storage, storage_file)
    return url, open_storage(url, must_exist=must_exist)


def load_stored_study(name: str, storage_obj):
    from hpo.study import load_stored

    return load_stored(name, storage_obj)


def limits(n_trials: int | None, budget: str | None, timeout: float | None = None):
    """``--n-trials`` and ``--timeout`` checked, and ``--budget`` parsed (None when not given)."""
    from hpo.budget import parse_budget

    require_positive("--timeout", timeout, seconds=True)
    if n_trials is not None and n_trials < 1:
        raise ConfigError(f"--n-trials must be at least 1 (got {n_trials})")
    return parse_budget(budget) if budget is not None else None


def api_study(study: str, storage: str | None, storage_file: Path | None):
    """The stored study through the notebook API (``hpo.open_study``), the storage from the options."""
    from hpo.api import open_study
    from hpo.storage import resolve_storage_url

    return open_study(study, resolve_storage_url(storage, storage_file))


def one_study(positional: str | None, option: str | None) -> str | None:
    """The study named positionally (``hpo status NAME``) or with ``--study``; refuses two different names."""
    if positional and option and positional != option:
        raise ConfigError(f"the study is named twice, {positional!r} and --study {option!r}; give one of them")
    return option or positional


def stored_study(study: str, storage: str | None, storage_file: Path | None):
    return api_study(study, storage, storage_file).optuna


def collect_report(study: str, objectives: str, storage: str | None, storage_file: Path | None):
    """The stored study collected for a report, on the ``--objectives`` axes (``acc,params,time``)."""
    return api_study(study, storage, storage_file).report(objectives)
