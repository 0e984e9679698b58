"""hpo: hyperparameter optimisation of CIFAR-sized image classifiers on Optuna studies."""

__version__ = "0.1.0"
