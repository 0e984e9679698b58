"""The Python API for notebooks and scripts: a stored study as pandas frames and Plotly figures.

::

    import hpo

    study = hpo.open_study("cpu-quick")        # storage: argument, $HPO_STORAGE, $OPTUNA_STORAGE, sqlite:///hpo.db
    study.trials_frame()                       # one row per trial (pandas)
    study.front()                              # the Pareto front, knee marked
    study.figures()["front_params"]            # a Plotly figure: renders inline in Jupyter
    study.export("cpu-quick.pptx")             # as `hpo export`, the format from the suffix
    study.optuna                               # the optuna.Study itself

The read-only commands (``hpo status``, ``pareto``, ``export``) are thin layers over this module.
Nothing here creates a database or exits: errors are hpo's own (:class:`hpo.errors.HpoError` and its
subclasses), one sentence each.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import optuna

from hpo.analysis.intervals import lower_key, upper_key
from hpo.errors import ConfigError
from hpo.trials import EPOCHS_RUN, HISTORY, STOP_REASON

if TYPE_CHECKING:
    import pandas as pd
    import plotly.graph_objects as go

    from hpo.analysis.report import StudyReport

PARAM_PREFIX = "params_"  # parameter columns of the trials frame, as in Optuna's trials_dataframe()


def study_name_of(study: str) -> str:
    """The stored study's name for ``study``: a name, or a study file (``studies/x.yaml`` -> ``x``).

    A study file's ``name`` must equal its file name (``hpo run`` refuses it otherwise), so the stem
    names the stored study.

    Raises:
        ConfigError: the name cannot be a study name (see ``hpo.storage.safe_component``).
    """
    from hpo.storage import safe_component

    return safe_component(Path(study).stem if study.endswith((".yaml", ".yml")) else study)


def open_study(name: str, storage: str | None = None) -> Study:
    """Open a study that ``hpo run`` stored, for reading (it never creates a database or a study).

    Args:
        name: The study's name, or its study file (``studies/cpu-quick.yaml``).
        storage: A storage URL; default ``$HPO_STORAGE``, then ``$OPTUNA_STORAGE``, then
            ``sqlite:///hpo.db`` (see ``hpo.storage``).

    Returns:
        The study.

    Raises:
        ConfigError: a bad URL or name, a SQLite or journal file that does not exist.
        HpoError: no such study in the storage (the message names the ones there).
        EnvironmentFault: the database server cannot be reached.
    """
    from hpo.storage import open_storage, resolve_storage_url
    from hpo.study import load_stored

    url = resolve_storage_url(storage)
    study_name = study_name_of(name)
    return Study(load_stored(study_name, open_storage(url, must_exist=True)), url)


class Study:
    """A stored study, read through hpo's analysis: frames, the front, figures and exports.

    Every method reads the storage anew, so a study that workers are still running shows its
    latest trials.

    Attributes:
        optuna: The ``optuna.Study`` (for Optuna's own API: ``best_trials``, ``trials_dataframe``...).
        storage_url: Where it is stored.
    """

    def __init__(self, study: optuna.Study, storage_url: str | None = None) -> None:
        self.optuna = study
        self.storage_url = storage_url

    @property
    def name(self) -> str:
        """The study's name."""
        return self.optuna.study_name

    def __repr__(self) -> str:
        from hpo.storage import mask_url

        where = f" in {mask_url(self.storage_url)}" if self.storage_url else ""
        return f"<hpo.Study {self.name!r}{where}: {len(self.optuna.get_trials(deepcopy=False))} trials>"

    def report(self, axes: Sequence[str] | str | None = None, *, importances: bool = True) -> StudyReport:
        """The study collected for a report (what ``hpo export`` draws from).

        Args:
            axes: Front axes, full or short names (``"acc,params,time"``, ``["acc", "macs"]``);
                default accuracy, parameters and training time.
            importances: Fit the parameter importances (the slow part of a report).

        Raises:
            ConfigError: an unknown axis.
        """
        from hpo.analysis.report import DEFAULT_AXES, collect

        return collect(self.optuna, _axes(axes) or DEFAULT_AXES, importances=importances)

    def trials_frame(self) -> pd.DataFrame:
        """One row per trial, by trial number.

        Columns: ``number``, ``state`` (COMPLETE, PRUNED, FAIL, RUNNING, WAITING), ``stop_reason``
        (None for complete trials), each objective (``val_accuracy``, ``param_count``...) with the
        accuracies' 95% interval ends beside them (``val_accuracy_lower``/``_upper``, None where the
        number of images is unknown), one ``params_<name>`` column per parameter (None where a trial
        does not use it), ``epochs_run``, ``history`` (the list of per-epoch dicts), then the rest of
        the trial record (``test_accuracy`` once ``hpo evaluate`` ran, ``macs``, ``images_per_second``,
        ...), ``datetime_start`` and ``datetime_complete``.
        """
        import pandas as pd

        report = self.report(importances=False)
        objectives = list(dict.fromkeys([*report.metric_names, *report.axes]))
        params = sorted({name for row in report.trials for name in row["params"]})
        records = []
        for row in report.trials:
            record: dict[str, Any] = {"number": row["number"], "state": row["state"], STOP_REASON: row.get(STOP_REASON)}
            for name in objectives:
                record[name] = row.get(name)
                if lower_key(name) in row:
                    record[lower_key(name)], record[upper_key(name)] = row[lower_key(name)], row[upper_key(name)]
            record.update({PARAM_PREFIX + name: row["params"].get(name) for name in params})
            record[EPOCHS_RUN], record[HISTORY] = row.get(EPOCHS_RUN), row.get(HISTORY) or []
            record.update({k: v for k, v in row.items() if k not in record and k not in ("values", "params")})
            records.append(record)
        frame = pd.DataFrame.from_records(records)
        if frame.empty:
            return pd.DataFrame(columns=["number", "state", STOP_REASON, *objectives, EPOCHS_RUN, HISTORY])
        # Put the datetimes last, where Optuna's trials_dataframe() has them too.
        order = [c for c in frame.columns if not c.startswith("datetime_")] + [c for c in frame.columns if c.startswith("datetime_")]
        return frame[order]

    def front(self, axes: Sequence[str] | str | None = None) -> pd.DataFrame:
        """The Pareto front of the complete trials, best validation accuracy first.

        The columns are those of ``hpo pareto --format csv``: ``trial``, ``val_accuracy`` with
        ``val_accuracy_lower``/``_upper``, ``param_count``, ``macs``, ``train_seconds``
        (``test_accuracy`` once evaluated), ``knee`` (True on the knee trial), ``ties_knee`` (the
        accuracy cannot be told from the knee's), then the parameters that vary.

        Args:
            axes: Front axes, full or short names; default accuracy, parameters and training time.
        """
        import pandas as pd

        from hpo.analysis.report import KNEE, front_table

        table = front_table(self.report(axes, importances=False))
        if not table:
            return pd.DataFrame(columns=["trial", KNEE])
        return pd.DataFrame.from_records(table)

    def figures(self, axes: Sequence[str] | str | None = None) -> dict[str, go.Figure]:
        """The report's Plotly figures, by the file names ``hpo export --format png`` gives them.

        ``front_params``, ``front_time`` (``front_macs`` when MACs is an axis), ``learning_curves``,
        ``importance`` and the optimisation history. Each renders inline as a notebook cell's value.

        Args:
            axes: Front axes, full or short names.
        """
        from hpo.analysis import plots

        return plots.figures(self.report(axes))

    def export(self, path: str | Path, format: str | None = None, axes: Sequence[str] | str | None = None) -> list[Path]:
        """Write the report as ``hpo export`` does.

        Args:
            path: The file to write (``report.pptx``), or for png/svg the folder for one file per figure.
            format: pptx, html, png, svg, csv, md or tex; default the suffix of ``path``.
            axes: Front axes, full or short names.

        Returns:
            The written files.

        Raises:
            ConfigError: no format and ``path`` has no suffix, or an unknown format.
            HpoError: png/svg need a Chromium, and none is found (pptx draws native charts, no browser).
        """
        from hpo.analysis.export import FORMATS, export

        path = Path(path)
        fmt = format or path.suffix.lstrip(".")
        if not fmt:
            raise ConfigError(f"export to {path}: give the format ({', '.join(FORMATS)}) or a file name with that suffix")
        # Only the whole reports and the figures show importances; the tables need not fit them.
        figures = fmt.lower() in ("pptx", "html", "png", "svg")
        return export(self.report(axes, importances=figures), fmt, path)


def _axes(axes: Sequence[str] | str | None) -> list[str]:
    if axes is None:
        return []
    if isinstance(axes, str):
        axes = axes.split(",")
    return [a.strip() for a in axes if a.strip()]


__all__ = ["PARAM_PREFIX", "Study", "open_study", "study_name_of"]
