"""Analysis of finished or running studies: Pareto fronts, figures, reports.

Data flows one way: `report.collect(study)` reads Optuna once into a `StudyReport`; `pareto`
computes fronts, hypervolume and knee on plain arrays; `plots` draws; `export` writes files;
`terminal` formats the front for `hpo pareto`.
"""

from hpo.analysis.pareto import (
    AXES,
    AXIS_ALIASES,
    FrontInfo,
    front_info,
    hypervolume,
    knee_point,
    normalise,
    pareto_mask,
    resolve_axes,
)
from hpo.analysis.report import StudyReport, collect, front_table

__all__ = [
    "AXES",
    "AXIS_ALIASES",
    "FrontInfo",
    "StudyReport",
    "collect",
    "front_info",
    "front_table",
    "hypervolume",
    "knee_point",
    "normalise",
    "pareto_mask",
    "resolve_axes",
]
