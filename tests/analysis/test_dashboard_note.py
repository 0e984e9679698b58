"""The study note hpo writes for optuna-dashboard (hpo.analysis.dashboard), on a hand-built study."""

from __future__ import annotations

import optuna
from optuna_dashboard import get_note, save_note

from hpo.analysis.dashboard import FIGURE_IDS, NOTE_END, NOTE_START, merged_note, note_text, publish, publish_quietly
from hpo.analysis.report import front_table


def test_the_note_holds_strategy_front_and_knee(report):
    text = note_text(report)
    assert text.startswith(NOTE_START) and text.endswith(NOTE_END)
    assert "- Sampler: nsga2 (population_size=8)" in text
    table = front_table(report)
    rows = [line for line in text.splitlines() if line.startswith("| ") and not line.startswith("| Trial")]
    assert [int(row.split("|")[1].strip(" *")) for row in rows] == [r["trial"] for r in table]
    assert [row.split("|")[1].strip().startswith("**") for row in rows] == [r["knee"] for r in table]
    assert f"### Knee: trial {report.knee_trial}" in text


def test_merging_keeps_the_users_text_and_replaces_hpos_block():
    block = f"{NOTE_START}\n\nold analysis\n\n{NOTE_END}"
    first = merged_note("my own words", block)
    assert first == f"{block}\n\nmy own words"
    again = merged_note("above\n" + first, block.replace("old", "new"))
    assert again == "above\n" + block.replace("old", "new") + "\n\nmy own words"
    assert merged_note("", block) == block


def test_publish_writes_the_note_and_figures_and_a_second_publish_replaces_them(builders):
    study = builders.synthetic_study(n_complete=6)
    save_note(study, "my own words")
    assert publish(study) == [FIGURE_IDS[k] for k in ("front_params", "front_time", "learning_curves", "all_curves")]
    publish(study)
    note = get_note(study)
    assert note.count(NOTE_START) == 1 and note.endswith("my own words")


def test_a_storage_that_refuses_writes_is_one_warning(builders, monkeypatch):
    study = builders.synthetic_study(n_complete=6)

    def refuse(*args, **kwargs):
        raise optuna.exceptions.StorageInternalError("An exception is raised during the commit.") from OSError(
            "attempt to write a readonly database")

    monkeypatch.setattr(type(study._storage), "set_study_system_attr", refuse)
    lines: list[str] = []
    assert publish_quietly(study, lines.append) is False
    assert lines == ["the dashboard note and figures were not written (is the storage read-only?): "
                     "attempt to write a readonly database"]
