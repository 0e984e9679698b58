"""hpo's analysis in optuna-dashboard (issue 15, item 3): the note and figures that `hpo run` and `hpo export`
write, read back through a real `hpo dashboard` server's HTTP API and seen in headless Chromium.

The server runs on a copy of the shared e2e study's database, on which `hpo export` has run.
"""

from __future__ import annotations

import base64
import contextlib
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import optuna
import pytest
from e2ekit import CHROMIUM_FLAGS, E2EStudy, dump_dom, get_json, running_dashboard, visible_text
from optuna_dashboard import get_note, save_note
from PIL import Image
from typer.testing import CliRunner

from hpo.analysis.dashboard import FIGURE_IDS, NOTE_END, NOTE_START
from hpo.analysis.intervals import wilson_interval
from hpo.analysis.report import collect
from hpo.cli import app
from hpo.storage import open_storage

pytestmark = pytest.mark.slow

FRONT_RGB = (0x00, 0x72, 0xB2)  # plots.FRONT
KNEE_RGB = (0xD5, 0x5E, 0x00)  # plots.KNEE


def _knee(e2e_study: E2EStudy, url: str) -> int:
    result = CliRunner().invoke(app, ["pareto", "--study", e2e_study.name, "--storage", url, "--format", "json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)["knee_trial"]


@pytest.fixture(scope="module")
def exported(e2e_study: E2EStudy, tmp_path_factory):
    """A copy of the e2e database whose note holds a user's line, then `hpo export` run on it."""
    folder = tmp_path_factory.mktemp("dashboard-analysis")
    db = folder / "study.db"
    shutil.copy(e2e_study.db_path, db)
    url = f"sqlite:///{db}"
    study = optuna.load_study(study_name=e2e_study.name, storage=open_storage(url))
    save_note(study, get_note(study) + "\n\nMy own remark: rerun trial 3 on the GPU.")
    result = CliRunner().invoke(app, ["export", "--study", e2e_study.name, "--storage", url, "--format", "md",
                                      "--out", str(folder / "front.md")])
    assert result.exit_code == 0, result.output
    assert "warning" not in result.stderr, result.stderr
    return url, folder


@pytest.fixture(scope="module")
def server(e2e_study: E2EStudy, exported):
    """Base URL of a real `hpo dashboard` process on the exported copy."""
    url, folder = exported
    with running_dashboard(url, e2e_study.env, folder, folder / "dashboard.log") as base:
        (summary,) = get_json(f"{base}/api/studies", timeout=30)["study_summaries"]
        yield base, summary["study_id"]


def test_hpo_run_left_the_note_and_the_figures(e2e_study: E2EStudy):
    # The shared study was made by a real `hpo run`; nothing else has written to its database.
    study = e2e_study.load()
    note = get_note(study)
    assert note.startswith(NOTE_START) and note.rstrip().endswith(NOTE_END)
    assert f"### Knee: trial {_knee(e2e_study, e2e_study.url)}" in note
    assert "Sampler: random" in note


def test_the_api_serves_the_note_with_strategy_front_and_knee(e2e_study: E2EStudy, exported, server):
    url, _ = exported
    base, study_id = server
    detail = get_json(f"{base}/api/studies/{study_id}", timeout=30)
    body = detail["note"]["body"]
    knee = _knee(e2e_study, url)
    study = e2e_study.load(url)
    front = sorted(study.best_trials, key=lambda t: (-t.values[0], t.number))
    assert body.startswith(NOTE_START)
    assert "- Sampler: random" in body and "- Objectives: maximize val_accuracy" in body
    rows = [line for line in body.splitlines() if line.startswith("| ") and not line.startswith("| Trial")]
    assert [int(row.split("|")[1].strip(" *")) for row in rows] == [t.number for t in front]
    (knee_row,) = [row for row in rows if row.startswith(f"| **{knee}**")]
    trial = study.trials[knee]
    low, high = wilson_interval(trial.values[0], trial.user_attrs["n_val_images"])
    assert f"**{100 * trial.values[0]:.2f}% [{100 * low:.1f}, {100 * high:.1f}]**" in knee_row
    assert f"### Knee: trial {knee}" in body and "PED-ANOVA" in body and "fANOVA" in body
    # The user's own line, written in the dashboard before the export, is still there after hpo's block.
    assert body.index(NOTE_END) < body.index("My own remark: rerun trial 3 on the GPU.")
    assert body.count(NOTE_START) == 1


def test_the_api_serves_the_front_and_learning_curve_figures(e2e_study: E2EStudy, exported, server):
    url, _ = exported
    base, study_id = server
    graphs = {g["id"]: json.loads(g["graph_object"]) for g in get_json(f"{base}/api/studies/{study_id}", timeout=30)["plotly_graph_objects"]}
    assert set(graphs) == {FIGURE_IDS[name] for name in ("front_params", "front_time", "learning_curves", "all_curves")}
    study = e2e_study.load(url)
    by_number = {t.number: t for t in study.trials}
    front = next(t for t in graphs[FIGURE_IDS["front_params"]]["data"] if t["name"].startswith("Pareto front"))
    numbers = [int(text.split("<br>")[0].split()[1]) for text in front["text"]]
    assert sorted(numbers) == sorted(collect(study, importances=False).pair_fronts["param_count"].front_trial_numbers)
    assert _array(front["y"]) == pytest.approx([by_number[n].values[0] for n in numbers])
    assert _array(front["x"]) == pytest.approx([by_number[n].user_attrs["param_count"] for n in numbers])
    # The multi-objective study has no intermediate values: its per-epoch history reaches the
    # dashboard as figures, drawn from the trials' `history` attribute.
    assert not any(t.intermediate_values for t in study.trials)
    curves = graphs[FIGURE_IDS["all_curves"]]["data"]
    assert len(curves) == len(study.trials)
    for trace in curves:
        number = int(trace["hovertext"].split()[1])
        assert _array(trace["y"]) == pytest.approx([e["val_accuracy"] for e in by_number[number].user_attrs["history"]])


def _array(values) -> list[float]:
    """A Plotly JSON array: a list, or plotly 6's typed array (``{"dtype": "f8", "bdata": base64}``)."""
    if isinstance(values, dict):
        return np.frombuffer(base64.b64decode(values["bdata"]), dtype=values["dtype"]).tolist()
    return list(values)


def test_the_dashboards_importances_are_the_decks_ped_anova(e2e_study: E2EStudy, exported, server):
    url, _ = exported
    base, study_id = server
    served = get_json(f"{base}/api/studies/{study_id}/param_importances", timeout=30)["param_importances"]
    report = collect(e2e_study.load(url))
    assert report.ped_anova_importances, report.importance_notes
    for name, importances in zip(report.metric_names, served):
        assert {i["name"]: i["importance"] for i in importances} == pytest.approx(report.ped_anova_importances[name])
    assert report.importances != report.ped_anova_importances  # fANOVA is another evaluator


def _count_colour(image: np.ndarray, rgb: tuple[int, int, int], tolerance: int = 10) -> int:
    return int(np.all(np.abs(image[..., :3].astype(int) - np.array(rgb)) <= tolerance, axis=-1).sum())


@pytest.mark.browser
def test_chromium_shows_the_note_and_draws_the_figures(e2e_study: E2EStudy, exported, server, chromium, tmp_path):
    url, _ = exported
    base, study_id = server
    knee = _knee(e2e_study, url)
    note = visible_text(dump_dom(chromium, f"{base}/dashboard/studies/{study_id}/note", tmp_path / "p1",
                                 virtual_time_ms=10000))
    assert "hpo analysis" in note and f"Knee: trial {knee}" in note and "Strategy" in note, note[:2000]
    shot = tmp_path / "study.png"
    proc = subprocess.run([chromium, *[f for f in CHROMIUM_FLAGS if not f.startswith("--window-size")],
                           "--window-size=1600,3600", "--hide-scrollbars", f"--user-data-dir={tmp_path / 'p2'}",
                           "--virtual-time-budget=15000", f"--screenshot={shot}", f"{base}/dashboard/studies/{study_id}"],
                          capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0 and shot.exists(), proc.stderr[-3000:]
    pixels = np.asarray(Image.open(shot).convert("RGB"))
    # hpo's figures are drawn there by plotly.js: the front's blue and the knee's orange (the
    # dashboard's own charts use neither).
    assert _count_colour(pixels, FRONT_RGB) > 500
    assert _count_colour(pixels, KNEE_RGB) > 200


@contextlib.contextmanager
def _read_only(path: Path):
    """``path`` (a file) made read-only by a bind mount (chmod does not stop root); unmounted after."""
    import os

    if os.geteuid() != 0:
        pytest.skip("a read-only bind mount needs root")
    subprocess.run(["mount", "--bind", str(path), str(path)], check=True, capture_output=True)
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(path)], check=True, capture_output=True)
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False, capture_output=True)


def test_export_on_a_read_only_database_writes_the_file_and_warns_once(e2e_study: E2EStudy, tmp_path):
    # The database file is read-only, its folder is not (SQLite keeps its -wal and -shm files there):
    # the study reads, and only the note cannot be written.
    db = tmp_path / "study.db"
    shutil.copy(e2e_study.db_path, db)
    out = tmp_path / "front.md"
    with _read_only(db):
        result = CliRunner().invoke(app, ["export", "--study", e2e_study.name, "--storage", f"sqlite:///{db}",
                                          "--format", "md", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert out.is_file() and "Traceback" not in result.output
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("warning: the dashboard note and figures were not written") and "readonly" in line, line
