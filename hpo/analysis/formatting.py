"""How report values are shown to people: counts short, accuracies in percent with their interval,
refit means with their standard deviation and spread. CSV and JSON keep the raw numbers."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from hpo.analysis.intervals import format_accuracy, is_interval_key, lower_key, upper_key
from hpo.analysis.refits import display_refit, is_refit_detail_key
from hpo.trials import INTEGER_FIELDS, OBJECTIVES

KNEE = "knee"  # the front-table column that marks the knee trial
TIES_KNEE = "ties_knee"  # the column that marks front trials whose accuracy ties the knee's
MARK_COLUMNS = frozenset({KNEE, TIES_KNEE})  # marks read "yes" or stay blank; other yes/no values say "no"
WIDE_SPREAD = 30.0  # a cost axis whose values span this factor or more is drawn on a log scale


def log_scale(axis: str, values: Sequence[float | None]) -> bool:
    """Whether charts draw cost ``axis`` on a log scale: parameters and MACs always (a 10x change
    is their natural step), training time when its values span :data:`WIDE_SPREAD` or more. On a
    linear axis a few slow trials (0.2 s to 17 s on the CPU Quickstart) crush the front into its
    left edge, where the knee and its ties hide each other.

    Args:
        axis: A cost objective's name.
        values: The values drawn on it (None: no value; a value of 0 or less keeps it linear).
    """
    if OBJECTIVES[axis].log_scale:
        return True
    known = [v for v in values if v is not None]
    return bool(known) and min(known) > 0 and max(known) / min(known) >= WIDE_SPREAD


def format_count(value: float | None) -> str:
    """A count in short engineering form: 950, 12.3k, 1.25M, 3.4G.

    Args:
        value: The count, or None.

    Returns:
        The text ("-" for None).
    """
    if value is None:
        return "-"
    value = float(value)
    for bound, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= bound:
            return f"{value / bound:.3g}{suffix}"
    return f"{value:.0f}"


def format_bytes(value: float) -> str:
    """A size in binary units: 512 B, 3.2 KiB, 1.59 GiB."""
    for power, unit in ((3, "GiB"), (2, "MiB"), (1, "KiB")):
        if abs(value) >= 1024**power:
            return f"{value / 1024**power:.3g} {unit}"
    return f"{value:.0f} B"


def format_cell(column: str, value: Any) -> str:
    """How a front-table or trial value is shown to people (CSV keeps raw numbers).

    Args:
        column: The column or attribute name (accuracies as %, counts short, seconds to 0.1 s).
        value: The value.

    Returns:
        The text ("-" for None).
    """
    if value is None:
        return "-"
    if isinstance(value, bool):  # a mark ("knee") or a parameter ("cnn.batch_norm"), whose False must show
        return "yes" if value else ("" if column in MARK_COLUMNS else "no")
    if column.endswith("accuracy") and isinstance(value, (int, float)):
        return format_accuracy(value)
    if column.endswith("_bytes") and isinstance(value, (int, float)):  # peak memory: 1.59 GiB, not a count
        return format_bytes(value)
    if column in INTEGER_FIELDS and isinstance(value, (int, float)):
        return format_count(value)
    if column.endswith("seconds") and isinstance(value, (int, float)):
        return f"{value:.1f}"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def display_cell(row: Mapping[str, Any], column: str) -> str:
    """A table cell as people read it, an accuracy with its 95% interval: ``70.13% [66.9, 73.2]``.

    Args:
        row: A front-table row (or trial row) holding ``column`` and, for an accuracy, its
            ``<column>_lower`` and ``<column>_upper``.
        column: The column.

    Returns:
        :func:`format_cell`'s text, followed by the interval in percent where both ends are known.
    """
    refit = display_refit(row, column)
    if refit is not None:
        return refit
    text = format_cell(column, row.get(column))
    lower, upper = row.get(lower_key(column)), row.get(upper_key(column))
    if row.get(column) is None or lower is None or upper is None:
        return text
    return format_accuracy(row[column], (lower, upper))


def shown_columns(table: Sequence[Mapping[str, Any]]) -> list[str]:
    """The columns of a front table shown to people: all but the interval ends, which
    :func:`display_cell` writes beside their accuracy."""
    return [c for c in table[0] if not is_interval_key(c) and not is_refit_detail_key(c)] if table else []
