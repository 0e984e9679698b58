"""hpo: hyperparameter optimisation of CIFAR-sized image classifiers on Optuna studies."""

import os

# Before torch loads OpenMP: idle OpenMP threads that spin (the default) steal the core another
# worker or process is using; on a shared 2-core machine a step took 364 ms spinning against
# 11.5 ms passive (bench/trainer.py, BENCHMARKS.md). Set OMP_WAIT_POLICY yourself to override.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.2.0"

from hpo.exported_model import ExportedModel, load_model  # noqa: E402  (what `hpo best` wrote; torch loads lazily)
from hpo.callbacks import register_callback  # noqa: E402  (Optuna-style callbacks (study, frozen_trial) after each trial)

# The notebook API (hpo.api), imported on first use so that `import hpo` stays cheap for workers and
# the CLI; `hpo.load_model` above loads what `hpo best` writes.
_API = ("open_study", "Study")

__all__ = ["ExportedModel", "__version__", "load_model", "register_callback", *_API]


def __getattr__(name: str):
    if name in _API:
        from hpo import api

        return getattr(api, name)
    raise AttributeError(f"module 'hpo' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_API))
