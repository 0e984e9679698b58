"""Refits in every report: the pareto table, CSV/JSON/markdown, and the deck's robustness slide
rendered by LibreOffice. The refits are written into a copy of the shared e2e study's database
(the search trials are real; the refit trials carry hand-picked accuracies, so that the knee and
the ranking change in a known way), and read back the way `hpo refit` stores them."""

from __future__ import annotations

import json
import shutil
import subprocess

import numpy as np
import optuna
import pytest
from optuna.trial import TrialState
from PIL import Image
from pptx import Presentation
from typer.testing import CliRunner

from hpo.analysis.refits import refit_study_name, stats_from_trials, within_spread_pairs
from hpo.cli import app
from hpo.refit import open_refit_study
from hpo.storage import open_storage

runner = CliRunner()


def _add_refit(refit: optuna.Study, source: optuna.trial.FrozenTrial, seed: int, val: float, test: float,
               state: TrialState = TrialState.COMPLETE) -> None:
    attrs = {"val_accuracy": val, "test_accuracy": test, "n_val_images": 400, "n_test_images": 400,
             "train_seconds": 1.0, "history": [{"epoch": 1, "val_accuracy": val}]}
    refit.add_trial(optuna.trial.create_trial(
        state=state, params=source.params, distributions=source.distributions,
        values=list(source.values) if state == TrialState.COMPLETE else None,
        user_attrs=attrs if state == TrialState.COMPLETE else {},
        system_attrs={"hpo:refit_of": source.number, "hpo:refit_seed": seed},
    ))


def _flip_pair(complete: list[optuna.trial.FrozenTrial]) -> tuple[optuna.trial.FrozenTrial, optuna.trial.FrozenTrial]:
    """Two search trials whose ranking the refits can flip: ``first`` more accurate in the search,
    ``second`` no larger, so that with the better refits ``second`` dominates ``first`` on accuracy
    and size. ``first`` is the most accurate trial that has such a partner (the study's most accurate
    trial can also be its smallest: which trial is which depends on how the workers interleaved),
    ``second`` its smallest partner."""
    size = lambda t: (t.user_attrs["param_count"], t.number)  # noqa: E731
    ranked = sorted(complete, key=lambda t: (-t.values[0], t.number))
    for i, first in enumerate(ranked):
        partners = [t for t in ranked[i + 1:] if t.user_attrs["param_count"] <= first.user_attrs["param_count"]]
        if partners:
            return first, min(partners, key=size)
    pytest.fail(f"no two trials of the e2e study where the less accurate is no larger: {[(t.number, t.values) for t in ranked]}")


@pytest.fixture(scope="module")
def refitted(e2e_study, tmp_path_factory):
    """The e2e study's database copied, with refits of its two most accurate trials: the second
    one's refits beat the first's (the ranking flips), and a lost run retried for one seed."""
    folder = tmp_path_factory.mktemp("refit-reports")
    db = folder / "study.db"
    shutil.copy(e2e_study.db_path, db)
    url = f"sqlite:///{db}"
    study = optuna.load_study(study_name=e2e_study.name, storage=open_storage(url))
    first, second = _flip_pair(study.get_trials(states=(TrialState.COMPLETE,)))
    refit = open_refit_study(study)
    for seed, val in zip((1, 2, 3), (0.50, 0.52, 0.51)):
        _add_refit(refit, first, seed, val, val - 0.01)
    _add_refit(refit, second, 1, 0.0, 0.0, state=TrialState.FAIL)  # lost, then retried with the same seed
    for seed, val in zip((1, 2, 3), (0.60, 0.62, 0.64)):
        _add_refit(refit, second, seed, val, val + 0.01)
    return url, e2e_study.name, first.number, second.number


def _invoke(*args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def test_pareto_json_and_csv_carry_the_refit_means_and_the_knee_moves_to_the_refit_best(refitted):
    url, name, first, second = refitted
    data = json.loads(_invoke("pareto", "--study", name, "--storage", url, "--format", "json", "--objectives", "acc,params"))
    rows = {row["trial"]: row for row in data["front"]}
    # On the refit means the smaller model is better too: it dominates, so it is the knee.
    assert data["knee_trial"] == second
    assert rows[second]["refit_val_accuracy"] == pytest.approx(0.62)
    assert rows[second]["refit_val_accuracy_std"] == pytest.approx(0.02)
    assert (rows[second]["refit_val_accuracy_min"], rows[second]["refit_val_accuracy_max"]) == pytest.approx((0.60, 0.64))
    assert rows[second]["refit_seeds"] == 3  # the lost run is not a fourth seed
    assert rows[first]["refit_val_accuracy"] == pytest.approx(0.51)
    assert rows[first]["refit_test_accuracy"] == pytest.approx(0.50)
    csv_text = _invoke("pareto", "--study", name, "--storage", url, "--format", "csv")
    assert "refit_val_accuracy,refit_val_accuracy_std" in csv_text.splitlines()[0]
    table = _invoke("pareto", "--study", name, "--storage", url, "--objectives", "acc,params")
    assert f"knee chosen on the refit means: trial {second}" in " ".join(table.split())
    assert "62.00% ± 2.00" in table


def test_status_and_markdown_show_mean_std_spread_and_the_search_run(refitted, tmp_path):
    url, name, first, second = refitted
    status = _invoke("status", name, "--storage", url)
    line = next(line for line in status.splitlines() if line.split()[:1] == [str(second)] and "±" in line)
    assert "62.00% ± 2.00 (3 seeds: 60.0–64.0)" in line and "2 -> 1" in line
    out = tmp_path / "report.md"
    _invoke("export", "--study", name, "--storage", url, "--format", "md", "--out", str(out), "--objectives", "acc,params")
    text = out.read_text()
    assert f"knee chosen on the refit means: trial {second}" in text
    assert "Refit val (mean ± std)" in text and "62.00% ± 2.00 (60.0–64.0)" in text


def test_the_deck_gains_a_robustness_slide_that_libreoffice_renders(refitted, libreoffice, pdftoppm, tmp_path):
    url, name, first, second = refitted
    deck = tmp_path / "refits.pptx"
    _invoke("export", "--study", name, "--storage", url, "--format", "pptx", "--out", str(deck))
    slides = list(Presentation(str(deck)).slides)
    titles = [slide.shapes.title.text for slide in slides]
    # The front table keeps both refitted configurations, and its text fits unbroken at its size
    # (the refit columns take the room of parameter columns; 10 pt at the least).
    from hpo.analysis.export.slides import FRONT_TABLE_WIDTH, table_fits

    front = next(s for s in slides if s.shapes.title.text.startswith("Pareto front trials"))
    grid = next(shape.table for shape in front.shapes if shape.has_table)
    texts = [[cell.text for cell in row.cells] for row in grid.rows]
    assert {str(first), str(second)} <= {row[0] for row in texts[1:]}
    assert "Refit val (mean ± std)" in texts[0]
    size = grid.cell(0, 0).text_frame.paragraphs[0].runs[0].font.size.pt
    bold = [r - 1 for r, row in enumerate(grid.rows) if r and row.cells[0].text_frame.paragraphs[0].runs[0].font.bold]
    assert size >= 10 and table_fits(texts, FRONT_TABLE_WIDTH, int(size), bold)
    index = titles.index("Robustness: refits over seeds")
    slide = slides[index]
    table = next(shape.table for shape in slide.shapes if shape.has_table)
    cells = [[cell.text for cell in row.cells] for row in table.rows]
    assert cells[0] == ["Trial", "Search run", "Refit mean ± std", "Seeds", "Rank"]
    assert cells[1][0] == str(second) and cells[1][2] == "62.00% ± 2.00" and cells[1][4] == "2 → 1"
    assert cells[2][0] == str(first) and cells[2][4] == "1 → 2"
    # The figure is a native chart: the refit means with ± std error bars (c:errBars, read back).
    from hpo.analysis.export.charts import chart_series, error_bar_values

    (chart,) = [shape.chart for shape in slide.shapes if shape.has_chart]
    series = {s.name: s for s in chart.plots[0].series}
    means = sorted(zip((p[1] for p in chart_series(chart)["refit mean ± std"]), error_bar_values(series["refit mean ± std"])["plus"]))
    assert [value for pair in means for value in pair] == pytest.approx([0.51, 0.01, 0.62, 0.02])
    assert error_bar_values(series["refit mean ± std"])["minus"] == error_bar_values(series["refit mean ± std"])["plus"]
    assert sorted(p[1] for p in chart_series(chart)["one refit seed"]) == pytest.approx([0.50, 0.51, 0.52, 0.60, 0.62, 0.64])
    assert f"knee (trial {second})" in series

    profile = tmp_path / "lo-profile"
    proc = subprocess.run([libreoffice, f"-env:UserInstallation=file://{profile}", "--headless", "--convert-to", "pdf",
                           "--outdir", str(tmp_path), str(deck)], capture_output=True, text=True, timeout=300)
    pdf = tmp_path / "refits.pdf"
    assert proc.returncode == 0 and pdf.exists(), proc.stdout + proc.stderr
    subprocess.run([pdftoppm, "-png", "-r", "50", "-f", str(index + 1), "-l", str(index + 1), str(pdf), str(tmp_path / "p")],
                   check=True, timeout=120)
    page = np.asarray(Image.open(next(tmp_path.glob("p-*.png"))).convert("RGB")).astype(int)
    # The refit means are drawn in the front's blue, the refit knee's star in orange.
    blue = (np.abs(page - (0x00, 0x72, 0xB2)).max(axis=-1) < 40).sum()
    orange = (np.abs(page - (0xD5, 0x5E, 0x00)).max(axis=-1) < 40).sum()
    assert blue > 10 and orange > 10, (blue, orange)


def test_stats_count_one_run_per_seed_and_flag_neighbours_within_the_spread(refitted):
    url, name, first, second = refitted
    storage = open_storage(url)
    trials = optuna.load_study(study_name=refit_study_name(name), storage=storage).get_trials()
    stats = stats_from_trials(trials)
    assert stats[second].seeds == [1, 2, 3] and stats[second].n == 3
    assert stats[first].std() == pytest.approx(0.01)
    assert within_spread_pairs(stats) == []  # 0.62 ± 0.02 against 0.51 ± 0.01: settled
    # Two configurations 0.005 apart with spreads of 0.01 and 0.02: their order is not settled.
    from hpo.analysis.refits import RefitRun, RefitStats

    runs = lambda values: tuple(RefitRun(i, i + 1, "COMPLETE", v, None, 400, None, 1.0, None) for i, v in enumerate(values))  # noqa: E731
    close = {1: RefitStats(1, runs([0.50, 0.51, 0.52])), 2: RefitStats(2, runs([0.475, 0.505, 0.535]))}
    assert within_spread_pairs(close) == [(1, 2)]
