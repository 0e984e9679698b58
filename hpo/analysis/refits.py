"""Refits over seeds, summarised: mean, standard deviation and spread per configuration.

``hpo refit`` retrains chosen configurations of a study with new seeds, as trials of a separate
study, ``<study>.refit``, in the same storage (:mod:`hpo.refit`). Each refit trial names the
search trial it retrains (``hpo:refit_of``) and its seed (``hpo:refit_seed``). This module reads
them (:func:`collect_refits`, the only function here that touches Optuna) and turns them into
plain data: :class:`RefitStats` per configuration, the rows on which the knee and the best are
chosen on refit means (:func:`refit_rows`, whose front :mod:`hpo.analysis.report` computes over
the refitted configurations only), and which neighbours in the ranking are within the seed spread
(:func:`within_spread_pairs`).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from hpo.trials import (
    QUEUE_ONLY_KEY,
    REFIT_SOURCE_KEY,
    SYS_REFIT_OF,
    SYS_REFIT_SEED,
    TEST_ACCURACY,
    TRAIN_SECONDS,
    VAL_ACCURACY,
    TrialRecord,
)

REFIT_SUFFIX = ".refit"


def refit_study_name(study_name: str) -> str:
    """The name of the study that holds ``study_name``'s refits."""
    return f"{study_name}{REFIT_SUFFIX}"


def is_refit_study(user_attrs: Mapping[str, Any]) -> bool:
    """Whether a study (by its user attributes) holds refits rather than a search."""
    return bool(user_attrs.get(REFIT_SOURCE_KEY)) and bool(user_attrs.get(QUEUE_ONLY_KEY))


@dataclass(frozen=True)
class RefitRun:
    """One finished refit: a configuration trained once more with ``seed``."""

    number: int  # the refit trial's number in the refit study
    seed: int
    state: str  # COMPLETE or PRUNED (diverged, too slow)
    val_accuracy: float | None
    test_accuracy: float | None
    n_val_images: int | None
    n_test_images: int | None
    train_seconds: float | None
    checkpoint: str | None  # artifact id of its last checkpoint


def _mean(values: Sequence[float]) -> float | None:
    return float(statistics.fmean(values)) if values else None


def _std(values: Sequence[float]) -> float | None:
    # The sample standard deviation (n - 1): what a student reports as "± std over seeds".
    if not values:
        return None
    return float(statistics.stdev(values)) if len(values) > 1 else 0.0


@dataclass(frozen=True)
class RefitStats:
    """One configuration's refits.

    Attributes:
        trial: The search trial whose configuration was retrained.
        runs: Its finished refits, by seed.
        pending: Refits queued or running, not finished yet.
    """

    trial: int
    runs: tuple[RefitRun, ...]
    pending: int = 0

    @property
    def seeds(self) -> list[int]:
        return [run.seed for run in self.runs]

    def values(self, name: str = VAL_ACCURACY) -> list[float]:
        """The finite values of ``name`` (``val_accuracy``, ``test_accuracy``, ``train_seconds``) over complete runs."""
        out = []
        for run in self.runs:
            value = getattr(run, name)
            if run.state == "COMPLETE" and value is not None and math.isfinite(value):
                out.append(float(value))
        return out

    def mean(self, name: str = VAL_ACCURACY) -> float | None:
        return _mean(self.values(name))

    def std(self, name: str = VAL_ACCURACY) -> float | None:
        return _std(self.values(name))

    def spread(self, name: str = VAL_ACCURACY) -> tuple[float, float] | None:
        """``(min, max)`` over the seeds, or None without a complete run."""
        values = self.values(name)
        return (min(values), max(values)) if values else None

    @property
    def n(self) -> int:
        """Complete runs (the n of the mean)."""
        return len(self.values(VAL_ACCURACY))


def stats_from_trials(trials: Sequence[Any]) -> dict[int, RefitStats]:
    """Group a refit study's trials (frozen trials) into :class:`RefitStats` by search trial.

    A retried refit (its worker was lost, or interrupted) shares its seed with the trial it retries:
    only finished trials count, one per seed (the first to finish), so no seed counts twice.
    """
    runs: dict[int, dict[int, RefitRun]] = {}
    pending: dict[int, set[int]] = {}
    for trial in sorted(trials, key=lambda t: t.number):
        attrs = trial.system_attrs
        if SYS_REFIT_OF not in attrs or SYS_REFIT_SEED not in attrs:
            continue
        of, seed = int(attrs[SYS_REFIT_OF]), int(attrs[SYS_REFIT_SEED])
        runs.setdefault(of, {})
        state = trial.state.name
        if state in ("WAITING", "RUNNING"):
            pending.setdefault(of, set()).add(seed)
            continue
        if state not in ("COMPLETE", "PRUNED") or seed in runs[of]:
            continue
        record = TrialRecord.of(trial)
        runs[of][seed] = RefitRun(
            number=trial.number, seed=seed, state=state, val_accuracy=record.val_accuracy,
            test_accuracy=record.test_accuracy, n_val_images=record.n_val_images, n_test_images=record.n_test_images,
            train_seconds=record.train_seconds, checkpoint=record.checkpoint,
        )
    return {
        of: RefitStats(trial=of, runs=tuple(sorted(by_seed.values(), key=lambda r: r.seed)),
                       pending=len(pending.get(of, set()) - set(by_seed)))
        for of, by_seed in sorted(runs.items())
    }


def collect_refits(study: Any) -> dict[int, RefitStats]:
    """The refits of a loaded search study (``{}`` when it has none), read from the same storage."""
    import optuna

    from hpo import compat

    try:
        refit = optuna.load_study(study_name=refit_study_name(study.study_name), storage=compat.storage_of(study))
    except KeyError:
        return {}
    return stats_from_trials(refit.get_trials(deepcopy=False))


def refit_rows(rows: Sequence[Mapping[str, Any]], refits: Mapping[int, RefitStats]) -> list[dict[str, Any]]:
    """Trial rows of the refitted configurations with the refit means in place of the single run's
    values, and the seed spread (mean ± std) as the accuracy's interval; rows without a complete
    refit are left out. What the knee and the best are chosen on, where refits exist."""
    from hpo.analysis.intervals import lower_key, upper_key

    out = []
    for row in rows:
        stats = refits.get(row["number"])
        if stats is None or not stats.n:
            continue
        mean, std = stats.mean(), stats.std()
        entry = dict(row)
        entry[VAL_ACCURACY] = mean
        entry[lower_key(VAL_ACCURACY)], entry[upper_key(VAL_ACCURACY)] = mean - std, mean + std
        if stats.mean(TRAIN_SECONDS) is not None:
            entry[TRAIN_SECONDS] = stats.mean(TRAIN_SECONDS)
        if stats.mean(TEST_ACCURACY) is not None:
            entry[TEST_ACCURACY] = stats.mean(TEST_ACCURACY)
        out.append(entry)
    return out


def ranking(refits: Mapping[int, RefitStats], single: Mapping[int, float | None]) -> list[dict[str, Any]]:
    """The refitted configurations ranked before (single run) and after (refit mean) refitting.

    Returns:
        One dict per configuration, best refit mean first: ``trial``, ``rank_before``,
        ``rank_after``, ``single`` (the search's value), ``mean``, ``std``, ``n``.
    """
    numbers = [n for n, stats in refits.items() if stats.n]
    before = sorted(numbers, key=lambda n: (-(single.get(n) if single.get(n) is not None else -math.inf), n))
    after = sorted(numbers, key=lambda n: (-refits[n].mean(), n))
    return [{"trial": n, "rank_before": before.index(n) + 1, "rank_after": after.index(n) + 1,
             "single": single.get(n), "mean": refits[n].mean(), "std": refits[n].std(), "n": refits[n].n}
            for n in after]


def within_spread_pairs(refits: Mapping[int, RefitStats]) -> list[tuple[int, int]]:
    """Neighbours in the refit ranking whose means differ by less than the larger of their two
    standard deviations: their order is not settled by these seeds. ``(better, worse)`` pairs."""
    ranked = [row for row in ranking(refits, {}) if row["n"] > 1]
    pairs = []
    for better, worse in zip(ranked, ranked[1:]):
        if better["mean"] - worse["mean"] < max(better["std"], worse["std"]):
            pairs.append((better["trial"], worse["trial"]))
    return pairs


def format_refit(stats: RefitStats, name: str = VAL_ACCURACY) -> str:
    """``71.2% ± 1.1 (3 seeds: 70.0–72.4)``: the mean ± std in percent and the per-seed spread."""
    mean, std, spread = stats.mean(name), stats.std(name), stats.spread(name)
    if mean is None:
        return "-" if not stats.pending else f"({stats.pending} running)"
    seeds = f"{stats.n} seed{'s' if stats.n != 1 else ''}"
    text = f"{100 * mean:.2f}% ± {100 * std:.2f} ({seeds}: {100 * spread[0]:.1f}–{100 * spread[1]:.1f})"
    return text + (f", {stats.pending} running" if stats.pending else "")


# Front-table columns of a refitted configuration: the refit mean of each accuracy, with its
# standard deviation, spread and seed count in detail columns that display_cell writes beside it.
REFIT_VAL = "refit_val_accuracy"
REFIT_TEST = "refit_test_accuracy"
REFIT_SEEDS = "refit_seeds"
_DETAIL_SUFFIXES = ("_std", "_min", "_max")


def is_refit_detail_key(name: str) -> bool:
    """Whether a column is a refit mean's detail (std, min, max), shown beside the mean."""
    return name.startswith("refit_") and name.endswith(_DETAIL_SUFFIXES)


def add_refit_columns(entry: dict[str, Any], stats: RefitStats | None) -> None:
    """Give a front-table row its refit columns (None where the configuration has no refit)."""
    for column, name in ((REFIT_VAL, VAL_ACCURACY), (REFIT_TEST, TEST_ACCURACY)):
        spread = stats.spread(name) if stats is not None else None
        entry[column] = stats.mean(name) if stats is not None else None
        entry[f"{column}_std"] = stats.std(name) if stats is not None else None
        entry[f"{column}_min"], entry[f"{column}_max"] = spread or (None, None)
    entry[REFIT_SEEDS] = stats.n if stats is not None else None


def display_refit(row: Mapping[str, Any], column: str) -> str | None:
    """A refit column as people read it, ``71.11% ± 11.71 (60.0–83.3)``; None for other columns."""
    if column not in (REFIT_VAL, REFIT_TEST):
        return None
    mean, std = row.get(column), row.get(f"{column}_std")
    if mean is None:
        return "-"
    low, high = row.get(f"{column}_min"), row.get(f"{column}_max")
    spread = f" ({100 * low:.1f}–{100 * high:.1f})" if low is not None and high is not None else ""
    return f"{100 * mean:.2f}% ± {100 * (std or 0.0):.2f}{spread}"


def within_spread_text(refits: Mapping[int, RefitStats]) -> str:
    """One sentence naming the ranked neighbours whose order is within the seed spread, or ``""``."""
    pairs = within_spread_pairs(refits)
    if not pairs:
        return ""
    named = "; ".join(f"trials {a} and {b}" for a, b in pairs)
    return f"Within the seed spread (order not settled by these seeds): {named}."


def summary_text(refits: Mapping[int, RefitStats], single: Mapping[int, float | None],
                 trials: Sequence[int] | None = None) -> str:
    """The refits as a text table: per configuration, the single search run beside the refits'
    validation mean ± std and per-seed spread, the test mean ± std, and the ranks before and after;
    then the neighbours whose order is within the seed spread."""
    shown = {n: s for n, s in refits.items() if trials is None or n in trials}
    if not shown:
        return "no refits yet; run `hpo refit --study NAME --top 2 --seeds 3`"
    ranks = {row["trial"]: row for row in ranking(shown, single)}
    lines = [f"{'trial':>5}  {'search run':>10}  {'refit val accuracy (mean ± std, seeds: min-max)':<48}  "
             f"{'refit test accuracy':<34}  rank before -> after"]
    order = [row["trial"] for row in ranking(shown, single)] + [n for n in shown if n not in ranks]
    for number in order:
        stats = shown[number]
        value = single.get(number)
        rank = ranks.get(number)
        moved = f"{rank['rank_before']} -> {rank['rank_after']}" if rank else "-"
        searched = "-" if value is None else f"{100 * value:.2f}%"
        lines.append(f"{number:>5}  {searched:>10}  {format_refit(stats):<48}  "
                     f"{format_refit(stats, TEST_ACCURACY):<34}  {moved}")
    if within_spread_text(shown):
        lines.append(within_spread_text(shown))
    return "\n".join(lines)


__all__ = [
    "REFIT_SEEDS",
    "REFIT_TEST",
    "REFIT_VAL",
    "add_refit_columns",
    "display_refit",
    "is_refit_detail_key",
    "within_spread_text",
    "REFIT_SUFFIX",
    "RefitRun",
    "RefitStats",
    "collect_refits",
    "format_refit",
    "is_refit_study",
    "ranking",
    "refit_rows",
    "refit_study_name",
    "stats_from_trials",
    "summary_text",
    "within_spread_pairs",
]
