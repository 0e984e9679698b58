"""hpo's analysis in optuna-dashboard: the study's note and saved Plotly figures.

After ``hpo run``, and on ``hpo export`` where the storage can be written, :func:`publish` writes
through optuna-dashboard's own API (``save_note``, ``save_plotly_graph_object``):

- the study's **note** (Markdown, shown on the study's page): the summary, the strategy, the front
  table with the knee in bold, the knee's parameters and metrics, and which evaluator made which
  importances. hpo's part lies between :data:`NOTE_START` and :data:`NOTE_END` and is rewritten
  each time; whatever a user wrote outside it in the dashboard is kept.
- **figures** (the dashboard's user-defined plots, one id each in :data:`FIGURE_IDS`): the fronts
  of accuracy against parameters and time (MACs when it is an axis), the front trials' learning
  curves, and every trial's validation accuracy per epoch. Optuna refuses ``trial.report`` in
  multi-objective studies, so their per-epoch history lives in the trial attribute ``history``
  and the dashboard's own intermediate-values chart stays empty: these two figures are where the
  dashboard shows those curves.

Importances: optuna-dashboard's panel computes PED-ANOVA (Optuna 5's default evaluator, on the
objective values); hpo's reports fit fANOVA; the note says so, and the deck shows both.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from hpo.analysis.report import FANOVA, KNEE, PED_ANOVA, StudyReport, front_table, history_arrays
from hpo.trials import MACS, PARAM_COUNT, TRAIN_SECONDS, VAL_ACCURACY

if TYPE_CHECKING:
    import optuna
    import plotly.graph_objects as go

NOTE_START = "## hpo analysis"
NOTE_END = "*End of hpo's analysis: `hpo run` and `hpo export` rewrite the part above; what you write below stays.*"

# Stable ids, so that each publish overwrites the previous figures instead of adding copies.
FIGURE_IDS = {
    "front_params": "hpo-front-params",
    "front_time": "hpo-front-time",
    "front_macs": "hpo-front-macs",
    "learning_curves": "hpo-learning-curves",
    "all_curves": "hpo-all-learning-curves",
}

MAX_NOTE_ROWS = 30  # front trials in the note's table; the deck and `hpo pareto` list every one
MAX_NOTE_PARAMS = 6  # parameter columns in it
FIGURE_HEIGHT = 520  # px; the dashboard gives the figure its card's width (half the page)
FIGURE_FONT = 13  # px: the slide-sized 18 px crowds a half-page card


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ") or " "


def front_markdown(report: StudyReport) -> list[str]:
    """The front table as Markdown lines, the knee's row in bold (the columns of the deck's table)."""
    from hpo.analysis.export.summary import display_columns, header
    from hpo.analysis.report import display_cell

    table = front_table(report)
    if not table:
        return ["No complete trial yet."]
    shown = table[:MAX_NOTE_ROWS]
    columns = display_columns(report, shown, max_params=MAX_NOTE_PARAMS)
    lines = ["| " + " | ".join(header(c) for c in columns) + " |", "|" + "---|" * len(columns)]
    for row in shown:
        cells = [_cell(display_cell(row, c)) for c in columns]
        if row[KNEE]:
            cells = [f"**{c}**" if c.strip() else c for c in cells]
        lines.append("| " + " | ".join(cells) + " |")
    if len(table) > len(shown):
        lines.append(f"\n({len(shown)} of {len(table)} front trials, by accuracy: `hpo pareto` lists them all.)")
    return lines


def note_text(report: StudyReport) -> str:
    """hpo's part of the study note: summary, strategy, front table, knee, importances and figures.

    Args:
        report: The collected study.

    Returns:
        Markdown, from :data:`NOTE_START` to :data:`NOTE_END`.
    """
    from hpo.analysis.export.summary import INTERVAL_NOTE, knee_items, strategy_lines, summary_sentence

    lines = [NOTE_START, "", summary_sentence(report), "", "### Strategy", ""]
    lines += [f"- {line}" for line in strategy_lines(report)]
    lines += ["", f"### Pareto front on {', '.join(report.axes)} (knee in bold)", "", *front_markdown(report), "",
              INTERVAL_NOTE]
    knee = report.knee_trial
    if knee is not None:
        params, metrics = knee_items(report)
        lines += ["", f"### Knee: trial {knee}", ""]
        lines += [f"- `{name}`: {value}" for name, value in params + metrics]
    lines += [
        "", "### Importances and figures", "",
        f"- The *Hyperparameter Importance* panel here is optuna-dashboard's: {PED_ANOVA} (Optuna 5's default "
        f"evaluator) on the objective values. hpo's HTML report shows {FANOVA}; the deck "
        f"(`hpo export --format pptx`) shows both, side by side.",
        "- hpo's figures are on the study's first page, after the dashboard's own charts (ids `hpo-...`): the "
        "fronts, the front trials' learning curves, and every trial's validation accuracy per epoch. In a multi-objective study Optuna takes no intermediate values, "
        "so the dashboard's own learning-curve chart stays empty and these figures show the per-epoch history.",
        "", NOTE_END,
    ]
    return "\n".join(lines)


def merged_note(existing: str, block: str) -> str:
    """The study note with hpo's block replaced (or put first), and the user's own text kept.

    Args:
        existing: The note as stored (may be empty).
        block: hpo's part, from :func:`note_text`.

    Returns:
        The new note.
    """
    start = existing.find(NOTE_START)
    end = existing.find(NOTE_END, max(start, 0))
    if start >= 0 and end >= 0:
        return existing[:start] + block + existing[end + len(NOTE_END):]
    return block + ("\n\n" + existing if existing.strip() else "")


def plot_all_curves(report: StudyReport) -> go.Figure:
    """Every trial's validation accuracy per epoch: the front blue, the knee orange, pruned trials orange dashed.

    Args:
        report: A collected study.

    Returns:
        The figure (an annotation says so when no trial recorded a history).
    """
    import plotly.graph_objects as go

    from hpo.analysis import plots

    front = set(report.front.front_trial_numbers)
    shown: set[str] = set()
    fig = go.Figure()
    for row in report.trials:
        epochs, values = history_arrays(row, VAL_ACCURACY)
        if epochs.size == 0:
            continue
        number = row["number"]
        group, colour = (("knee", plots.KNEE) if number == report.knee_trial else ("front", plots.FRONT) if number in front
                         else ("pruned trials", plots.PRUNED) if row["state"] == "PRUNED" else ("other trials", plots.GREY))
        fig.add_trace(go.Scatter(x=epochs, y=values, mode="lines+markers", name=group, legendgroup=group,
                                 showlegend=group not in shown, hovertext=f"trial {number} ({row['state'].lower()})",
                                 hoverinfo="text+y", line={"color": colour, "width": 3 if group in ("knee", "front") else 1.5,
                                                           "dash": "dash" if colour == plots.PRUNED else "solid"}))
        shown.add(group)
    if not fig.data:
        fig.add_annotation(text="no per-epoch history recorded", showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper")
    fig.update_layout(title={"text": f"{report.name}: validation accuracy per epoch, every trial", "x": 0.02},
                      template="plotly_white", font={"size": plots.FONT_SIZE})
    fig.update_xaxes(title_text="Epoch")
    fig.update_yaxes(title_text="Validation accuracy", tickformat=".0%")
    return fig


def dashboard_figures(report: StudyReport) -> dict[str, go.Figure]:
    """The figures saved to the dashboard, by their ids in :data:`FIGURE_IDS`, sized to fit its cards.

    Args:
        report: A collected study.

    Returns:
        Figure id -> Plotly figure.
    """
    from hpo.analysis import plots

    figures = {"front_params": plots.plot_front(report, PARAM_COUNT), "front_time": plots.plot_front(report, TRAIN_SECONDS)}
    if MACS in report.axes:
        figures["front_macs"] = plots.plot_front(report, MACS)
    figures["learning_curves"] = plots.plot_learning_curves(report)
    figures["all_curves"] = plot_all_curves(report)
    for figure in figures.values():
        figure.update_layout(width=None, height=FIGURE_HEIGHT, autosize=True, font={"size": FIGURE_FONT},
                             margin={"l": 70, "r": 20, "t": 60, "b": 60})
    return {FIGURE_IDS[name]: figure for name, figure in figures.items()}


def publish(study: optuna.Study, axes: Sequence[str] | None = None) -> list[str]:
    """Write hpo's analysis into optuna-dashboard's view of ``study``: the note and the figures.

    Args:
        study: The study, in a storage this process may write.
        axes: The front's axes (default accuracy, parameters, training time).

    Returns:
        The ids of the saved figures.

    Raises:
        Whatever the storage raises when it cannot be written (see :func:`publish_quietly`).
    """
    from optuna_dashboard import get_note, save_note, save_plotly_graph_object

    from hpo.analysis.report import DEFAULT_AXES, collect

    axes = [a.strip() for a in axes or () if a.strip()] or DEFAULT_AXES
    report = collect(study, axes, importances=False)  # the dashboard computes its own importances
    save_note(study, merged_note(get_note(study), note_text(report)))
    saved = []
    for graph_id, figure in dashboard_figures(report).items():
        save_plotly_graph_object(study, figure, graph_object_id=graph_id)
        saved.append(graph_id)
    return saved


def _reason(error: BaseException) -> str:
    """One line of why: the database's own message where the storage wrapped it."""
    cause = error.__cause__ or error
    orig = getattr(cause, "orig", None)  # SQLAlchemy's DBAPI error: "attempt to write a readonly database"
    text = str(orig if orig is not None else cause).strip().splitlines()
    return text[0] if text else type(cause).__name__


def publish_quietly(study: optuna.Study, warn: Callable[[str], None], axes: Sequence[str] | None = None) -> bool:
    """:func:`publish`, never raising: a storage that cannot be written, or a missing optuna-dashboard, is one warning.

    A run or an export must not fail for the dashboard's sake (a read-only database, a server gone).

    Args:
        study: The study.
        warn: Called with one line when nothing (or not all) could be saved.
        axes: The front's axes.

    Returns:
        True when the note and every figure were saved.
    """
    try:
        publish(study, axes)
    except ImportError as error:
        warn(f"the dashboard note was not written: {error.name or 'optuna_dashboard'} is not installed")
        return False
    except Exception as error:  # noqa: BLE001  (any storage failure: the caller's work is already done)
        warn(f"the dashboard note and figures were not written (is the storage read-only?): {_reason(error)}")
        return False
    return True

