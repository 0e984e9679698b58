"""The notebook API (hpo.open_study, hpo.Study) on a study stored in a real SQLite file, read with pandas."""

from __future__ import annotations

import optuna
import pandas as pd
import pytest
from optuna.trial import TrialState

import hpo
from hpo.analysis.intervals import wilson_interval
from hpo.analysis.report import front_table
from hpo.analysis.terminal import front_csv
from hpo.errors import ConfigError, HpoError

N_VAL = 400  # images behind the one stored validation accuracy with its count


def _same(cell, value) -> bool:
    """A frame cell holds ``value``; pandas shows a missing value (None) as NaN."""
    return pd.isna(cell) if value is None else cell == value


@pytest.fixture(scope="module")
def stored(builders, tmp_path_factory) -> str:
    """The synthetic study copied into a SQLite file, plus one complete trial that stored its image count;
    returns the storage URL (the tests only read it)."""
    url = f"sqlite:///{tmp_path_factory.mktemp('api') / 'api.db'}"
    source = builders.synthetic_study(n_complete=8)
    optuna.copy_study(from_study_name="synthetic", from_storage=source._storage, to_storage=url)
    study = optuna.load_study(study_name="synthetic", storage=url)
    accuracy = 300 / N_VAL
    builders.add(study, {"width": 64, "lr": 0.01, "batch_size": 64}, TrialState.COMPLETE, [accuracy, 4_096_000, 90.0],
                 **builders.attrs(accuracy, 4_096_000, 90.0, n_val_images=N_VAL))
    return url


def test_trials_frame_has_one_row_per_trial_with_reasons_objectives_intervals_params_and_history(stored):
    study = hpo.open_study("synthetic", storage=stored)
    frame = study.trials_frame()
    trials = study.optuna.get_trials()

    assert isinstance(frame, pd.DataFrame)
    assert list(frame["number"]) == [t.number for t in trials]
    assert list(frame["state"]) == [t.state.name for t in trials]
    assert list(frame.columns[:3]) == ["number", "state", "stop_reason"]
    assert {"params_width", "params_lr", "params_batch_size", "epochs_run", "history"} <= set(frame.columns)
    assert list(frame.columns[-2:]) == ["datetime_start", "datetime_complete"]
    by_number = frame.set_index("number")
    for trial in trials:
        row = by_number.loc[trial.number]
        assert row["params_width"] == trial.params["width"]
        assert _same(row["stop_reason"], trial.user_attrs.get("stop_reason"))
        assert row["history"] == trial.user_attrs.get("history", [])
        if trial.state == TrialState.COMPLETE:
            assert row["val_accuracy"] == pytest.approx(trial.values[0])
            assert row["param_count"] == round(trial.values[1])
    # The interval is there where the images are known, and is the Wilson interval of that count.
    last = by_number.loc[trials[-1].number]
    assert (last["val_accuracy_lower"], last["val_accuracy_upper"]) == pytest.approx(wilson_interval(300 / N_VAL, N_VAL))
    assert pd.isna(by_number.loc[0, "val_accuracy_lower"])  # no image count stored, none derivable
    assert sorted(frame["stop_reason"].dropna()) == ["constraint", "diverged", "oom", "pruned", "pruned", "pruned"]


def test_front_is_the_pareto_table_with_the_knee_marked(stored):
    study = hpo.open_study("synthetic", storage=stored)
    front = study.front()
    report = study.report(importances=False)

    assert list(front["trial"]) == [row["trial"] for row in front_table(report)]
    assert front["knee"].sum() == 1
    assert int(front.loc[front["knee"], "trial"].iloc[0]) == report.knee_trial
    complete = {t.number for t in study.optuna.get_trials(states=(TrialState.COMPLETE,))}
    assert set(front["trial"]) <= complete
    # Two axes give a 2-D front: never more trials than on three.
    assert len(study.front("acc,params")) <= len(front)


def test_figures_are_named_as_the_png_export_names_them_and_render_as_notebook_output(stored, monkeypatch):
    import plotly.graph_objects as go
    import plotly.io as pio

    from hpo.analysis import plots

    study = hpo.open_study("synthetic", storage=stored)
    figures = study.figures()
    assert list(figures) == list(plots.figures(study.report(importances=False)))  # the stems png export writes
    assert list(figures)[:2] == ["front_params", "front_time"]
    assert all(isinstance(f, go.Figure) for f in figures.values())
    # Jupyter picks Plotly's mimetype renderer: the cell's value is then the figure itself.
    monkeypatch.setattr(pio.renderers, "default", "plotly_mimetype")
    bundle = figures["front_params"]._repr_mimebundle_(include=None, exclude=None)
    assert bundle["application/vnd.plotly.v1+json"]["data"]


def test_export_takes_the_format_from_the_suffix_like_hpo_export(stored, tmp_path):
    study = hpo.open_study("synthetic", storage=stored)
    (path,) = study.export(tmp_path / "front.csv")
    assert path == tmp_path / "front.csv"
    written, front = pd.read_csv(path), study.front()
    assert list(written.columns) == list(front.columns) == front_csv(study.report(importances=False)).split("\r\n")[0].split(",")
    assert list(written["trial"]) == list(front["trial"])
    assert list(written["val_accuracy"]) == pytest.approx(list(front["val_accuracy"]))
    (md,) = study.export(tmp_path / "table", format="md")
    assert md.read_text().startswith("|") or "trial" in md.read_text()
    with pytest.raises(ConfigError, match="give the format"):
        study.export(tmp_path / "no-suffix")


def test_storage_comes_from_hpo_storage_then_optuna_storage_then_the_default(stored, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HPO_STORAGE", raising=False)
    monkeypatch.setenv("OPTUNA_STORAGE", stored)
    assert hpo.open_study("synthetic").storage_url == stored
    monkeypatch.setenv("HPO_STORAGE", f"sqlite:///{tmp_path / 'other.db'}")
    with pytest.raises(ConfigError, match="other.db does not exist"):  # HPO_STORAGE wins, and is not created
        hpo.open_study("synthetic")
    monkeypatch.delenv("HPO_STORAGE")
    monkeypatch.delenv("OPTUNA_STORAGE")
    with pytest.raises(ConfigError, match="hpo.db does not exist"):
        hpo.open_study("synthetic")
    assert not (tmp_path / "hpo.db").exists()


def test_a_missing_study_is_hpos_own_error_naming_the_studies_there(stored):
    with pytest.raises(HpoError, match="no study named 'nope'.*synthetic"):
        hpo.open_study("nope", storage=stored)
    with pytest.raises(ConfigError):
        hpo.open_study("../escape", storage=stored)
    # A study file names its stored study by its file name.
    assert hpo.open_study("studies/synthetic.yaml", storage=stored).name == "synthetic"


def test_an_empty_study_gives_empty_frames_with_their_columns(tmp_path):
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    optuna.create_study(study_name="empty", storage=url)
    study = hpo.open_study("empty", storage=url)
    frame = study.trials_frame()
    assert frame.empty and {"number", "state", "stop_reason", "history"} <= set(frame.columns)
    assert study.front().empty
    assert "empty" in repr(study) and "0 trials" in repr(study)


@pytest.mark.browser
def test_png_export_writes_one_file_per_figure_and_moves_a_progress_bar(stored, tmp_path, browser):
    import io

    from rich.console import Console

    from hpo import progress

    study = hpo.open_study("synthetic", storage=stored)
    console = Console(file=io.StringIO(), force_terminal=True, width=120)
    progress.show(console)
    try:
        paths = study.export(tmp_path / "figures", format="png")
    finally:
        progress.hide()
    assert [p.name for p in paths] == [f"{name}.png" for name in study.figures()]
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in paths)
    text = console.file.getvalue()
    assert f"rendering {len(paths)} figures (png)" in text and f"{len(paths)}/{len(paths)}" in text
