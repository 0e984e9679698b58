"""Every export format, read back: the front trials and key numbers are really in the files."""

from __future__ import annotations

import csv
import re

import pytest

from hpo.analysis import export as export_module
from hpo.analysis.export import BROWSER_MISSING, export, tex_escape
from hpo.analysis.report import StudyReport, collect, front_table
from hpo.errors import ConfigError, HpoError


def test_csv_parses_and_matches_the_front(report: StudyReport, tmp_path):
    (path,) = export(report, "csv", tmp_path / "front.csv")
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    table = front_table(report)
    assert [int(r["trial"]) for r in rows] == [row["trial"] for row in table]
    for parsed, row in zip(rows, table):
        assert float(parsed["val_accuracy"]) == pytest.approx(row["val_accuracy"])
        assert int(parsed["param_count"]) == row["param_count"]
        assert float(parsed["train_seconds"]) == pytest.approx(row["train_seconds"])
        assert (parsed["knee"] == "True") == row["knee"]
        assert int(parsed["width"]) == row["width"]


def test_markdown_has_one_row_per_front_trial(report: StudyReport, tmp_path):
    (path,) = export(report, "md", tmp_path / "front.md")
    text = path.read_text()
    rows = [line for line in text.splitlines() if re.match(r"\| \d+ \|", line)]
    assert [int(line.split("|")[1]) for line in rows] == [r["trial"] for r in front_table(report)]
    knee_row = next(line for line in rows if int(line.split("|")[1]) == report.knee_trial)
    assert "yes" in knee_row
    assert "synthetic" in text and f"{report.hypervolume:.4f}" in text


def test_latex_is_a_booktabs_tabular_with_escaped_names(report: StudyReport, tmp_path):
    (path,) = export(report, "tex", tmp_path / "front.tex")
    text = path.read_text()
    assert "\\begin{tabular}" in text and "\\toprule" in text and "\\bottomrule" in text
    assert "batch\\_size" in text and "batch_size" not in text.replace("batch\\_size", "")
    body = text.split("\\midrule")[1].split("\\bottomrule")[0]
    numbers = [int(line.split("&")[0]) for line in body.strip().splitlines()]
    assert numbers == [r["trial"] for r in front_table(report)]
    assert "\\%" in body  # accuracies as escaped percentages


def test_tex_escape():
    assert tex_escape("a_b & 50% #1 {x} ~ ^ \\") == (
        "a\\_b \\& 50\\% \\#1 \\{x\\} \\textasciitilde{} \\textasciicircum{} \\textbackslash{}"
    )


def test_html_is_self_contained_and_lists_the_front(report: StudyReport, tmp_path):
    (path,) = export(report, "html", tmp_path / "report.html")
    text = path.read_text()
    assert text.count('class="plotly-graph-div"') == 5
    assert not re.search(r"<script[^>]*\bsrc=", text)  # nothing fetched: plotly.js is inline
    assert len(text) > 1_000_000
    for number in report.front.front_trial_numbers:
        assert f'id="trial-{number}"' in text
    assert f'id="trial-{report.knee_trial}" class="knee"' in text
    assert f"Knee trial {report.knee_trial} in detail" in text
    assert "synthetic" in text and "minicifar" in text and "1x CPU (test)" in text
    assert f"{report.hypervolume:.4f}" in text


def test_a_folder_as_out_gets_the_study_name(report: StudyReport, tmp_path):
    (path,) = export(report, "md", tmp_path)
    assert path == tmp_path / "synthetic.md" and path.exists()


def test_unknown_format_is_refused(report: StudyReport, tmp_path):
    with pytest.raises(ConfigError, match="unknown export format 'docx'"):
        export(report, "docx", tmp_path / "x.docx")


def test_missing_browser_is_one_sentence(report: StudyReport, tmp_path, monkeypatch):
    from choreographer.cli._cli_utils import get_chrome_download_path

    local = get_chrome_download_path(mkdir=False)
    if local is not None and local.exists():
        pytest.skip("a choreographer-downloaded Chrome is found before BROWSER_PATH")
    monkeypatch.setenv("BROWSER_PATH", str(tmp_path / "no-such-chrome"))
    with pytest.raises(HpoError) as error:
        export(report, "png", tmp_path / "png")
    assert str(error.value) == BROWSER_MISSING
    assert not (tmp_path / "png").exists()


# --- browser: png, svg, pptx ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def one_browser():
    """One Chromium for all the browser tests of this module: each launch costs seconds."""
    try:
        export_module.find_browser()
    except HpoError:
        yield  # the `browser` fixture skips or fails each test
        return
    with export_module.browser_session():
        yield


FIGURES = ["front_params", "front_time", "learning_curves", "importance", "history"]


@pytest.mark.browser
def test_png_writes_one_image_per_figure(report: StudyReport, tmp_path, browser, one_browser):
    paths = export(report, "png", tmp_path / "figures")
    assert [p.name for p in paths] == [f"{name}.png" for name in FIGURES]
    for path in paths:
        data = path.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n"
        width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
        assert (width, height) == (2400, 1350)  # 1200 x 675 at scale 2
        assert len(data) > 20_000


@pytest.mark.browser
def test_svg_writes_one_drawing_per_figure(report: StudyReport, tmp_path, browser, one_browser):
    paths = export(report, "svg", tmp_path / "figures")
    assert [p.name for p in paths] == [f"{name}.svg" for name in FIGURES]
    for path in paths:
        text = path.read_text()
        assert re.search(r"<svg[^>]*xmlns=\"http://www.w3.org/2000/svg\"", text)
        assert len(text) > 5_000
    assert f"trial {report.knee_trial}" in (tmp_path / "figures" / "front_params.svg").read_text()


def test_pptx_reads_back_with_every_slide(report: StudyReport, tmp_path, monkeypatch):
    import sys

    from pptx import Presentation
    from pptx.enum.shapes import MSO_SHAPE_TYPE
    from pptx.util import Inches

    # The deck's figures are native charts: it is written with Kaleido and its browser driver unimportable.
    for module in ("kaleido", "choreographer"):
        monkeypatch.setitem(sys.modules, module, None)
    monkeypatch.setenv("BROWSER_PATH", str(tmp_path / "no-such-chrome"))
    (path,) = export(report, "pptx", tmp_path / "deck.pptx")
    deck = Presentation(str(path))
    assert (deck.slide_width, deck.slide_height) == (Inches(13.333), Inches(7.5))
    slides = list(deck.slides)
    titles = [slide.shapes.title.text for slide in slides]
    assert titles == [
        "HPO study: synthetic",
        "Search space & strategy",
        "Accuracy vs parameters",
        "Accuracy vs training time",
        "Pareto front trials",
        "Learning curves of the front",
        "Hyperparameter importance",
        f"Knee trial {report.knee_trial} in detail",
    ]

    def text_of(slide) -> str:
        parts = []
        for shape in slide.shapes:
            if shape.has_text_frame:
                parts.append(shape.text_frame.text)
            if shape.has_table:
                parts += [cell.text for row in shape.table.rows for cell in row.cells]
        return "\n".join(parts)

    title_text = text_of(slides[0])
    assert "minicifar" in title_text and "1x CPU (test)" in title_text and "20 trials" in title_text
    strategy = text_of(slides[1])
    assert "nsga2" in strategy and "14 complete, 4 pruned, 2 failed" in strategy and "lr" in strategy
    for index in (2, 3, 5, 6):
        assert any(s.has_chart for s in slides[index].shapes), titles[index]
        assert not any(s.shape_type == MSO_SHAPE_TYPE.PICTURE for s in slides[index].shapes), titles[index]
    table = next(s for s in slides[4].shapes if s.has_table).table
    numbers = [int(row.cells[0].text) for row in list(table.rows)[1:]]
    assert numbers == [r["trial"] for r in front_table(report)][: export_module.MAX_SLIDE_ROWS]
    assert report.knee_trial in numbers
    knee = text_of(slides[7])
    assert "width" in knee and "val_accuracy" in knee
    # Nothing placed outside the slide.
    for slide in slides:
        for shape in slide.shapes:
            assert shape.left + shape.width <= deck.slide_width, (slide.shapes.title.text, shape.name)
            assert shape.top + shape.height <= deck.slide_height, (slide.shapes.title.text, shape.name)



@pytest.mark.parametrize("params, seconds, on_chart", [(2_000, 1.1, False), (200_000, 20.0, True)])
def test_the_knee_label_sits_beside_its_point_only_where_it_fits(builders, tmp_path, params, seconds, on_chart):
    # Left of the knee's point is the empty quarter of a front chart, but at the left edge of the
    # plot there is no room: the label then goes into the note under the chart.
    import optuna
    from optuna.trial import TrialState
    from pptx import Presentation

    study = optuna.create_study(storage=optuna.storages.InMemoryStorage(), study_name="edge",
                                directions=["maximize", "minimize", "minimize"])
    study.set_metric_names(["val_accuracy", "param_count", "train_seconds"])
    study.set_user_attr("definition", {**builders.definition, "name": "edge"})
    for accuracy, count, time in ((0.70, params, seconds), (0.72, 900_000, 30.0)):
        builders.add(study, {"width": 8, "lr": 0.01, "batch_size": 64}, TrialState.COMPLETE, [accuracy, count, time],
                     **builders.attrs(accuracy, count, time))
    report = collect(study, importances=False)
    assert report.knee_trial == 0  # as accurate, and far cheaper
    (path,) = export(report, "pptx", tmp_path / "edge.pptx")
    label = f"knee: trial 0, 70.0%, {'2k' if params == 2_000 else '200k'} params"
    for slide in list(Presentation(str(path)).slides)[2:4]:  # accuracy vs parameters, vs training time
        (chart,) = [shape.chart for shape in slide.shapes if shape.has_chart]
        (knee,) = [series for series in chart.plots[0].series if series.name == "knee (trial 0)"]
        point = knee.points[0].data_label
        drawn = point.has_text_frame and point.text_frame.text
        note = " ".join(shape.text_frame.text for shape in slide.shapes if shape.has_text_frame and shape != slide.shapes.title)
        assert (drawn == label) == on_chart and (f"The orange diamond is the {label}." in note) == (not on_chart), (drawn, note)


def test_title_budget_names_the_time_budget(builders):
    # A study with only a time budget (N open) says so on the title slide and in the HTML report.
    from hpo.analysis.export.summary import budget_text
    from hpo.trials import BUDGET_KEY

    study = builders.synthetic_study(n_complete=6)
    study.set_user_attr("definition", {"epochs": 4})
    study.set_user_attr(BUDGET_KEY, {"seconds": 240.0})
    assert budget_text(collect(study)) == "4m00s of worker time, up to 4 epochs each"
    study.set_user_attr("n_trials", 20)
    assert budget_text(collect(study)) == "20 trials, 4m00s of worker time, up to 4 epochs each"


def test_the_front_slide_always_shows_the_knee_row():
    # A cheap knee is often not among the most accurate front trials; the slide says "knee in bold",
    # so its row takes the last place rather than being left out (a 22-trial Quickstart front did).
    from hpo.analysis.export.slides import slide_rows

    table = [{"trial": n, "knee": n == 13} for n in range(15)]
    assert [row["trial"] for row in slide_rows(table, limit=12)] == [*range(11), 13]
    assert [row["trial"] for row in slide_rows(table, limit=14)] == list(range(14))
    inside = [{"trial": n, "knee": n == 3} for n in range(15)]
    assert [row["trial"] for row in slide_rows(inside, limit=12)] == list(range(12))
    assert [row["trial"] for row in slide_rows([{"trial": 0, "knee": False}] * 3, limit=2)] == [0, 0]


def test_table_columns_keep_header_words_and_values_whole():
    from hpo.analysis.export.slides import BOLD_WIDTH, CELL_PADDING_INCHES, column_widths, table_fits, text_em

    assert text_em("1.13M") < text_em("0.0009") < text_em("weight")  # capitals and m wider, dots narrower
    headers = ["Trial", "Val acc", "Params", "Ties knee", "weight_decay"]
    body = [["174", "73.50% [70.3, 76.4]", "22.3k", "yes", "0.0009141"],
            ["91", "66.25% [62.9, 69.4]", "3.16k", "", "6.912e-05"]]
    size, widths = column_widths([headers, *body], 8.0, 14, bold_rows=[1])
    assert sum(widths) == pytest.approx(8.0)
    # Each header's longest word, in bold, fits its column; so does the longest (bold) value.
    for header, width in zip(headers, widths):
        longest = max(text_em(word) for word in header.split())
        assert width >= BOLD_WIDTH * longest * size / 72 + CELL_PADDING_INCHES - 1e-9
    assert widths[1] >= BOLD_WIDTH * text_em("66.25% [62.9, 69.4]") * size / 72 + CELL_PADDING_INCHES - 1e-9
    assert size == 14 and table_fits([headers, *body], 8.0, 14, [1])  # they fit at the size asked for
    # Twice the columns on 12 inches cannot fit at 14 pt: the size steps down, never below the floor.
    wide = [headers * 2 + ["x"], *[row * 2 + ["y"] for row in body]]
    smaller, _ = column_widths(wide, 12.0, 14, bold_rows=[1])
    assert 10 <= smaller < 14 and not table_fits(wide, 12.0, 14, [1]) and table_fits(wide, 12.0, smaller, [1])
    assert column_widths(wide, 5.0, 14)[0] == 10


def test_the_front_slide_keeps_refitted_rows():
    # Refitted configurations always get a row: their refit columns are the point of the slide
    # (the deck's fit on a real refitted study: tests/e2e/test_refit_reports.py).
    from hpo.analysis.export.slides import slide_rows

    table = [{"trial": n, "knee": n == 0, "refit_seeds": 3 if n in (0, 14) else None} for n in range(15)]
    assert [row["trial"] for row in slide_rows(table, limit=12)] == [*range(11), 14]


def test_training_time_goes_on_a_log_axis_only_when_it_spans_a_wide_range():
    from hpo.analysis.formatting import WIDE_SPREAD, log_scale

    assert log_scale("param_count", [3_000, 3_100])  # parameters always
    assert not log_scale("train_seconds", [30.0, 60.0, 120.0])  # a GPU study's few minutes each
    assert log_scale("train_seconds", [0.2, None, 0.2 * WIDE_SPREAD])  # the CPU Quickstart: 0.2 s to 17 s
    assert not log_scale("train_seconds", [0.0, 17.0]) and not log_scale("train_seconds", [None])


@pytest.mark.parametrize("crowded", [False, True])
def test_the_knee_label_never_covers_a_trial_and_the_knee_is_drawn_on_top_in_both_programs(builders, tmp_path, crowded):
    # The knee is chosen on every axis at once, so on one axis' chart a trial may sit just left of
    # it at its height: the label then goes into the note. The knee's diamond is drawn twice, first
    # (on top in LibreOffice, which paints the first series last) and last (on top in PowerPoint).
    import optuna
    from optuna.trial import TrialState
    from pptx import Presentation
    from pptx.oxml.ns import qn

    from hpo.analysis.export.charts import TWIN_SUFFIX, chart_series

    study = optuna.create_study(storage=optuna.storages.InMemoryStorage(), study_name="edge",
                                directions=["maximize", "minimize", "minimize"])
    study.set_metric_names(["val_accuracy", "param_count", "train_seconds"])
    study.set_user_attr("definition", {**builders.definition, "name": "edge"})
    # The knee: 70%, 200k params, 20 s, and a costlier 72%; crowded: a pruned trial whose last epoch
    # reached the knee's height, left of the knee on the parameters chart.
    for accuracy, count, time in ((0.70, 200_000, 20.0), (0.72, 900_000, 30.0)):
        builders.add(study, {"width": 8, "lr": 0.01, "batch_size": 64}, TrialState.COMPLETE, [accuracy, count, time],
                     **builders.attrs(accuracy, count, time))
    if crowded:
        builders.add(study, {"width": 8, "lr": 0.01, "batch_size": 64}, TrialState.PRUNED, None,
                     **builders.attrs(0.70, 120_000, 10.0, epochs=2, stop_reason="pruned"))
    report = collect(study, importances=False)
    assert report.knee_trial == 0
    (path,) = export(report, "pptx", tmp_path / "edge.pptx")
    slide = list(Presentation(str(path)).slides)[2]  # accuracy vs parameters
    (chart,) = [shape.chart for shape in slide.shapes if shape.has_chart]
    names = [series.name for series in chart.plots[0].series]
    assert names[0] == "knee (trial 0)" + TWIN_SUFFIX and names[-1] == "knee (trial 0)"
    twin = chart_series(chart)[names[0]]
    assert set(twin) == {(200_000, 0.70)} and len(twin) == max(len(p) for p in chart_series(chart).values())
    hidden = [int(e.find(qn("c:idx")).get("val")) for e in chart._chartSpace.iter(qn("c:legendEntry"))]
    assert 0 in hidden  # the twin is left out of the legend
    (knee,) = [series for series in chart.plots[0].series if series.name == "knee (trial 0)"]
    label = knee.points[0].data_label
    drawn = label.has_text_frame and label.text_frame.text
    note = " ".join(shape.text_frame.text for shape in slide.shapes if shape.has_text_frame and shape != slide.shapes.title)
    assert bool(drawn) == (not crowded) and ("The orange diamond is the knee" in note) == crowded, (drawn, note)


def test_configurations_of_one_size_are_drawn_side_by_side_on_the_robustness_charts():
    # Two learning rates of one network share a parameter count: their refit seeds and error bars
    # would sit on one vertical line, one hiding the other.
    import math

    from hpo.analysis.plots import DODGE_DECADES, dodged

    rows = [{"number": 1, "param_count": 22_292}, {"number": 2, "param_count": 22_292}, {"number": 3, "param_count": 3_160}]
    spread = dodged(rows, "param_count", log=True)
    assert rows[0]["param_count"] == 22_292  # the report's rows are not touched
    left, right, alone = (row["param_count"] for row in spread)
    assert math.log10(right) - math.log10(left) == pytest.approx(DODGE_DECADES)
    assert math.sqrt(left * right) == pytest.approx(22_292) and alone == 3_160
    linear = dodged([{"t": 2.0}, {"t": 2.0}, {"t": 2.0}, {"t": 5.0}], "t", log=False)
    assert [row["t"] for row in linear][:3] == pytest.approx([2.0 - 0.15, 2.0, 2.0 + 0.15]) and linear[3]["t"] == 5.0
