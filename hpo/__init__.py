"""hpo: hyperparameter optimisation of CIFAR-sized image classifiers on Optuna studies."""

import os

# Before torch loads OpenMP: idle OpenMP threads that spin (the default) steal the core another
# worker or process is using; on a shared 2-core machine a step took 364 ms spinning against
# 11.5 ms passive (bench/trainer.py, BENCHMARKS.md). Set OMP_WAIT_POLICY yourself to override.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.2.0"
