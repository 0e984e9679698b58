"""`hpo export` on a real study, each output opened by the program a reader would use.

The deck is read back with python-pptx and rendered by LibreOffice; the HTML report is loaded in
headless Chromium, which runs its inline plotly.js; the PNG figures are decoded with Pillow.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
from e2ekit import E2EStudy, dump_dom, visible_text
from PIL import Image
from pptx import Presentation
from pptx.enum.chart import XL_CHART_TYPE
from pptx.enum.shapes import MSO_SHAPE_TYPE
from pptx.oxml.ns import qn
from pptx.util import Emu, Inches
from typer.testing import CliRunner

from hpo.analysis import export as export_module
from hpo.analysis import plots
from hpo.analysis.export import charts
from hpo.analysis.intervals import tie, wilson_interval
from hpo.cli import app

pytestmark = pytest.mark.slow

runner = CliRunner()

FRONT_RGB = (0x00, 0x72, 0xB2)  # plots.FRONT
KNEE_RGB = (0xD5, 0x5E, 0x00)  # plots.KNEE


def hpo(*args: str) -> str:
    """Run one `hpo` command in-process and return its output (exit code 0 asserted)."""
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def front_by_accuracy(study: E2EStudy) -> list[int]:
    """Optuna's own front (``best_trials``), best validation accuracy first, ties by number."""
    return [t.number for t in sorted(study.load().best_trials, key=lambda t: (-t.values[0], t.number))]


@pytest.fixture(scope="module")
def knee(e2e_study: E2EStudy) -> int:
    """The knee trial, as `hpo pareto` reports it (checked against Optuna in test_after_search.py)."""
    printed = hpo("pareto", "--study", e2e_study.name, "--storage", e2e_study.url, "--format", "json")
    return json.loads(printed)["knee_trial"]


@pytest.fixture(scope="module")
def kaleido_browser(chromium):
    """One Kaleido browser for every figure render in this module: each launch costs seconds."""
    with export_module.browser_session():
        yield


@pytest.fixture(scope="module")
def deck(e2e_study: E2EStudy, tmp_path_factory) -> Path:  # native charts: no browser
    out = tmp_path_factory.mktemp("deck") / "report.pptx"
    printed = hpo("export", "--study", e2e_study.name, "--storage", e2e_study.url, "--format", "pptx", "--out", str(out))
    assert printed.strip().splitlines()[-1] == str(out)
    return out


def _texts(slide) -> str:
    return "\n".join(shape.text_frame.text for shape in slide.shapes if shape.has_text_frame)


def _tables(slide) -> list[list[list[str]]]:
    return [[[cell.text for cell in row.cells] for row in shape.table.rows] for shape in slide.shapes if shape.has_table]


def _pictures(slide) -> list:
    return [shape for shape in slide.shapes if shape.shape_type == MSO_SHAPE_TYPE.PICTURE]


def _flat(points) -> list[float]:
    return [value for point in points for value in point]


def _charts(slide) -> list:
    return [shape.chart for shape in slide.shapes if shape.has_chart]


def _assert_front_chart(chart, study, axis: str, knee: int) -> None:
    """The front chart shows every complete trial once, the 2-D front, the knee, and each accuracy's
    95% Wilson interval as an error bar (a c:errBars element written by hpo), read back from the XML."""
    from hpo.analysis.report import collect

    assert chart.chart_type == XL_CHART_TYPE.XY_SCATTER
    by_number = {t.number: t for t in study.trials}
    series = {s.name: s for s in chart.plots[0].series}
    points = charts.chart_series(chart)
    (front_name,) = [name for name in series if name.startswith("Pareto front (")]
    front = collect(study, importances=False).pair_fronts[axis].front_trial_numbers
    expected = sorted((by_number[n].user_attrs[axis], by_number[n].values[0]) for n in front)
    assert _flat(sorted(points[front_name])) == pytest.approx(_flat(expected))
    assert _flat(points[f"knee (trial {knee})"]) == pytest.approx([by_number[knee].user_attrs[axis], by_number[knee].values[0]])
    # The trials off this pair's front; their series is left out when there are none.
    complete = next((name for name in series if name.startswith("complete (")), None)
    assert len(points.get(complete, [])) + len(points[front_name]) == len(study.trials)
    for name in filter(None, (front_name, complete)):
        bars = charts.error_bar_values(series[name])
        for (x, y), up, down in zip(points[name], bars["plus"], bars["minus"]):
            (trial,) = [t for t in study.trials if t.values[0] == y and t.user_attrs[axis] == x][:1] or [None]
            low, high = wilson_interval(y, trial.user_attrs["n_val_images"])
            assert (y - down, y + up) == pytest.approx((low, high))
    log = chart.category_axis._element.find(".//" + qn("c:logBase"))
    # Parameters always on a log axis; training time where it spans 30x or more.
    values = [t.user_attrs[axis] for t in study.trials if t.state.name in ("COMPLETE", "PRUNED") and axis in t.user_attrs]
    wide = min(values) > 0 and max(values) / min(values) >= 30
    assert (log is not None and log.get("val") == "10") == (axis == "param_count" or wide)


def test_pptx_reads_back_slide_by_slide(e2e_study: E2EStudy, deck: Path, knee: int):
    study = e2e_study.load()
    front = front_by_accuracy(e2e_study)
    assert knee in front

    presentation = Presentation(str(deck))
    slides = list(presentation.slides)
    titles = [slide.shapes.title.text for slide in slides]
    assert titles == [
        f"HPO study: {e2e_study.name}",
        "Search space & strategy",
        "Accuracy vs parameters",
        "Accuracy vs training time",
        "Pareto front trials",
        "Learning curves of the front",
        "Hyperparameter importance",
        f"Knee trial {knee} in detail",
    ]
    title, strategy, front_params, front_time, table, curves, importance, knee_slide = slides

    assert "minicifar, 4 classes" in _texts(title) and "6 trials" in _texts(title)
    # The train fraction in words, and the count the trials validated on: 4 x 30 fake training
    # images, a quarter of them (not the 5,000 of the real CIFAR-10 the definition alone would give).
    assert "75% of the training images for training, 25% for validation (30 validation images)" in _texts(title)
    assert "0.75 training images" not in _texts(title)

    (space,) = _tables(strategy)
    assert {row[0] for row in space[1:]} >= {"lr", "cnn.channels", "model"}
    assert "Sampler: random" in _texts(strategy) and f"{len(study.trials)} complete" in _texts(strategy)

    # Figure slides carry native, editable charts, no picture: the fronts and curves XY charts, the
    # importances two bar charts (hpo's fANOVA, the dashboard's PED-ANOVA).
    for slide in (front_params, front_time, curves, importance):
        assert not _pictures(slide) and _charts(slide), slide.shapes.title.text
    for slide, axis in ((front_params, "param_count"), (front_time, "train_seconds")):
        (chart,) = _charts(slide)
        _assert_front_chart(chart, study, axis, knee)
    (chart,) = _charts(curves)
    points = charts.chart_series(chart)
    for number in front[:6]:
        label = f"trial {number} (knee)" if number == knee else f"trial {number}"
        history = study.trials[number].user_attrs["history"]
        assert _flat(points[f"{label} val"]) == pytest.approx(_flat((e["epoch"], e["val_accuracy"]) for e in history))
        assert _flat(points[f"{label} train"]) == pytest.approx(_flat((e["epoch"], e["train_accuracy"]) for e in history))
    assert sorted(c.chart_title.text_frame.text for c in _charts(importance)) == [
        "PED-ANOVA (optuna-dashboard's panel)", "fANOVA (hpo's reports)"]

    (rows,) = _tables(table)
    assert rows[0][0] == "Trial" and "Knee" in rows[0]
    assert [int(row[0]) for row in rows[1:]] == front
    knee_column = rows[0].index("Knee")
    assert [int(row[0]) for row in rows[1:] if row[knee_column] == "yes"] == [knee]
    by_number = {t.number: t for t in study.trials}

    def shown(number: int) -> str:
        """An accuracy with its 95% interval on the 30 validation images, as the slides show it."""
        accuracy = by_number[number].values[0]
        low, high = wilson_interval(accuracy, by_number[number].user_attrs["n_val_images"])
        return f"{100 * accuracy:.2f}% [{100 * low:.1f}, {100 * high:.1f}]"

    for row in rows[1:]:
        assert row[1] == shown(int(row[0]))
    if len(rows) > 2:  # a front of one has nothing to tie with
        ties = rows[0].index("Ties knee")
        knee_interval = wilson_interval(by_number[knee].values[0], by_number[knee].user_attrs["n_val_images"])
        for row in rows[1:]:
            number = int(row[0])
            interval = wilson_interval(by_number[number].values[0], by_number[number].user_attrs["n_val_images"])
            assert (row[ties] == "yes") == (number != knee and tie(interval, knee_interval))
    assert "95% Wilson interval" in _texts(table)

    params, metrics = _tables(knee_slide)
    assert {row[0] for row in params[1:]} == set(by_number[knee].params)
    assert ["val_accuracy", shown(knee)] in metrics

    # Names stay on one line: each table column is wide enough for the longest word of its header
    # and of its first cell. 0.12 in per character is bold 13-14 pt text in LibreOffice's default
    # sans font; 0.2 in is the two cell margins.
    for slide in slides:
        for shape in slide.shapes:
            if not shape.has_table:
                continue
            for c, column in enumerate(shape.table.columns):
                words = shape.table.cell(0, c).text.split() + shape.table.cell(1, c).text.split()
                needed = Inches(0.12 * max(len(w) for w in words) + 0.2)
                assert column.width >= needed, (slide.shapes.title.text, words, column.width / 914400)

    # Nothing hangs off the slide.
    for slide in slides:
        for shape in slide.shapes:
            assert shape.left >= 0 and shape.top >= 0, (slide.shapes.title.text, shape.name)
            assert shape.left + shape.width <= presentation.slide_width, (slide.shapes.title.text, shape.name)
            assert shape.top + shape.height <= presentation.slide_height + Emu(1), (slide.shapes.title.text, shape.name)


def _count_colour(image: np.ndarray, rgb: tuple[int, int, int], tolerance: int = 12) -> int:
    return int(np.all(np.abs(image[..., :3].astype(int) - np.array(rgb)) <= tolerance, axis=-1).sum())


def test_libreoffice_renders_the_deck_to_pdf_and_png_pages(deck: Path, libreoffice, pdftoppm, tmp_path):
    # The documented preview: libreoffice --headless --convert-to pdf, then pdftoppm -png -r 50.
    profile = tmp_path / "lo-profile"  # its own profile, so a running LibreOffice does not swallow the call
    proc = subprocess.run(
        [libreoffice, f"-env:UserInstallation=file://{profile}", "--headless", "--convert-to", "pdf",
         "--outdir", str(tmp_path), str(deck)],
        capture_output=True, text=True, timeout=300,
    )
    pdf = tmp_path / "report.pdf"
    assert proc.returncode == 0 and pdf.exists(), proc.stdout + proc.stderr
    proc = subprocess.run([pdftoppm, "-png", "-r", "50", str(pdf), str(tmp_path / "slide")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    pages = sorted(tmp_path.glob("slide-*.png"))
    assert len(pages) == len(Presentation(str(deck)).slides)
    for page in pages:
        image = np.asarray(Image.open(page).convert("RGB"))
        assert image.shape[:2] == (375, 667)  # 13.333 x 7.5 in at 50 dpi
        assert (image.min(axis=-1) < 100).sum() > 500, f"{page.name} looks blank"
    # The accuracy-vs-parameters page shows the front's blue line and the knee's orange star.
    front_page = np.asarray(Image.open(pages[2]).convert("RGB"))
    assert _count_colour(front_page, FRONT_RGB, tolerance=40) > 10
    assert _count_colour(front_page, KNEE_RGB, tolerance=40) > 10


@pytest.mark.browser
def test_png_export_writes_every_figure_and_the_front_shows(e2e_study: E2EStudy, kaleido_browser, tmp_path):
    out = tmp_path / "figures"
    printed = hpo("export", "--study", e2e_study.name, "--storage", e2e_study.url, "--format", "png", "--out", str(out))
    written = sorted(out.iterdir())
    assert [Path(line) for line in sorted(printed.split())] == written
    assert {p.name for p in written} == {"front_params.png", "front_time.png", "learning_curves.png",
                                         "importance.png", "history.png"}
    with Image.open(out / "front_params.png") as image:
        assert image.format == "PNG"
        assert image.size == (plots.WIDTH * export_module.IMAGE_SCALE, plots.HEIGHT * export_module.IMAGE_SCALE)
        pixels = np.asarray(image.convert("RGB"))
    # The front is drawn: its line and markers in the front colour, the knee as a star in its own.
    assert _count_colour(pixels, FRONT_RGB) > 500
    assert _count_colour(pixels, KNEE_RGB) > 200


@pytest.mark.browser
def test_html_report_renders_in_chromium(e2e_study: E2EStudy, chromium, knee: int, tmp_path):
    out = tmp_path / "report.html"
    hpo("export", "--study", e2e_study.name, "--storage", e2e_study.url, "--format", "html", "--out", str(out))
    source = out.read_text()
    n_figures = source.count('class="plotly-graph-div"')
    assert n_figures >= 5
    # Only plotly.js, running in the page, makes these elements (the file has just their CSS names).
    assert 'class="main-svg"' not in source and 'class="plot-container plotly"' not in source

    dom = dump_dom(chromium, out.as_uri(), tmp_path / "profile", virtual_time_ms=5000)
    assert dom.count('class="plot-container plotly"') == n_figures
    assert dom.count('class="main-svg"') >= 2 * n_figures
    text = visible_text(dom)
    front = front_by_accuracy(e2e_study)
    for number in front:
        assert f'id="trial-{number}"' in dom
    assert f'id="trial-{knee}" class="knee"' in dom
    # Legends and annotations drawn by plotly.js name the knee and the front's trials.
    assert f"knee (trial {knee})" in text and f"knee: trial {knee}" in text
    for number in front[:6]:
        label = f"trial {number} (knee)" if number == knee else f"trial {number}"
        assert f"{label} val" in text and f"{label} train" in text
    assert f"Knee trial {knee} in detail" in text


def test_front_figures_of_the_real_study_carry_error_bars(e2e_study: E2EStudy):
    # The deck's front PNGs are these figures; the bars are asserted on the figure data, the PNG
    # rendering itself by test_libreoffice_renders_the_deck_to_pdf_and_png_pages.
    from hpo.analysis.report import collect

    study = e2e_study.load()
    report = collect(study)
    by_number = {t.number: t for t in study.trials}
    for axis in ("param_count", "train_seconds"):
        figure = plots.plot_front(report, axis)
        front = next(trace for trace in figure.data if trace.name.startswith("Pareto front"))
        assert front.error_y.symmetric is False
        numbers = [int(text.split("<br>")[0].split()[1]) for text in front.text]
        for number, y, up, down in zip(numbers, front.y, front.error_y.array, front.error_y.arrayminus):
            low, high = wilson_interval(y, by_number[number].user_attrs["n_val_images"])
            assert (y - down, y + up) == pytest.approx((low, high))
