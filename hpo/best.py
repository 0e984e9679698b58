"""``hpo best``: the chosen model of a study, written to a folder a student can hand in.

Which model (:func:`choose`):

- ``--trial N``: that configuration; its own weights, or, when the retention policy removed them and
  it has refits, the refit run whose validation accuracy is closest to its refit mean;
- otherwise, when the study has refits (``hpo refit``, :mod:`hpo.refit`): the configuration with the
  best mean validation accuracy over its seeds, with the weights of its refit run closest to that
  mean (the most typical of its seeds, rather than the luckiest);
- otherwise the knee of the front (:mod:`hpo.analysis.report`) for a multi-objective study, and the
  most accurate complete trial for a single-objective one (whose front is accuracy alone; equal
  accuracies go to fewer parameters, then fewer seconds, the trial the checkpoint policy keeps).

What the folder holds (:func:`export_best`): ``model.pt`` (a plain ``state_dict``, loadable with
``torch.load(weights_only=True)``), ``config.json`` (everything :func:`hpo.load_model` needs to
rebuild the model and prepare its inputs), ``metrics.json`` (accuracies with their 95% intervals,
size, cost, refit statistics) and ``load.py``, which classifies an image or re-validates the model
with hpo's public API only. The export itself re-measures the validation accuracy on the CPU, so a
model trained on a GPU in bf16 says at once how far the CPU's figure is from the stored one.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

import hpo
from hpo import compat
from hpo import study as studies
from hpo.analysis.intervals import CONFIDENCE, accuracy_interval, lower_key, upper_key
from hpo.analysis.refits import RefitRun, RefitStats, collect_refits, refit_study_name
from hpo.errors import ConfigError, HpoError
from hpo.exported_model import CONFIG_FILE, FORMAT_VERSION, LOADER_FILE, METRICS_FILE, WEIGHTS_FILE
from hpo.trials import (
    CHECKPOINT_REMOVED_PREFIX,
    MACS,
    N_TEST_IMAGES,
    N_VAL_IMAGES,
    PARAM_COUNT,
    TEST_ACCURACY,
    TRAIN_SECONDS,
    VAL_ACCURACY,
    TrialRecord,
)

EXPORTED_FILES = (WEIGHTS_FILE, CONFIG_FILE, METRICS_FILE, LOADER_FILE)

# How a configuration was chosen (``chosen_by`` in both JSON files).
BY_TRIAL = "trial"  # --trial N
BY_REFIT_MEAN = "refit_mean"  # the best mean validation accuracy over refit seeds
BY_KNEE = "knee"  # the knee of a multi-objective study's front
BY_BEST = "best"  # the most accurate trial of a single-objective study


@dataclass(frozen=True)
class Choice:
    """The configuration ``hpo best`` exports, and whose weights.

    Attributes:
        trial: The search trial whose configuration it is.
        rule: How it was chosen: ``trial``, ``refit_mean``, ``knee`` or ``best``.
        refits: Its refits, or None when it has none.
        run: The refit run whose weights are exported, or None for the search trial's own weights.
    """

    trial: int
    rule: str
    refits: RefitStats | None = None
    run: RefitRun | None = None
    own_removed: bool = False  # the search trial's own weights were removed by the checkpoint policy

    def describe(self) -> str:
        """One sentence: why this configuration."""
        if self.rule == BY_TRIAL:
            return f"trial {self.trial}, as asked (--trial)"
        if self.rule == BY_REFIT_MEAN:
            return (f"trial {self.trial}: the best mean validation accuracy over its refit seeds "
                    f"({self.refits.mean():.4f} ± {self.refits.std():.4f}, {self.refits.n} seeds)")
        if self.rule == BY_KNEE:
            return f"trial {self.trial}: the knee of the front (no refits)"
        return f"trial {self.trial}: the most accurate complete trial (single objective, no refits)"

    def describe_weights(self, study_name: str) -> str:
        """One sentence: whose weights."""
        if self.run is None:
            return f"the weights of search trial {self.trial} of study {study_name!r}"
        why = " (the search trial's own were removed by the checkpoint policy)" if self.own_removed else ""
        return (f"the weights of refit run {self.run.number} (seed {self.run.seed}) of study "
                f"{refit_study_name(study_name)!r}{why}: of the {self.refits.n} seeds, its validation accuracy "
                f"({self.run.val_accuracy:.4f}) is the closest to their mean ({self.refits.mean():.4f})")


def closest_to_mean(stats: RefitStats) -> RefitRun | None:
    """The complete refit run whose validation accuracy is closest to the mean (the lower seed on a tie)."""
    mean = stats.mean()
    runs = [r for r in stats.runs if r.state == TrialState.COMPLETE.name and r.val_accuracy is not None
            and math.isfinite(r.val_accuracy)]
    if mean is None or not runs:
        return None
    # Rounded: with two seeds both are equally far from the mean, and the lower seed wins, not float noise.
    return min(runs, key=lambda r: (round(abs(r.val_accuracy - mean), 9), r.seed))


def choose(study: optuna.Study, trial: int | None = None,
           refits: dict[int, RefitStats] | None = None) -> Choice:
    """The configuration ``hpo best`` exports (see the module docstring for the rules).

    Args:
        study: The search study.
        trial: ``--trial N``, or None to choose.
        refits: The study's refits (:func:`hpo.analysis.refits.collect_refits`); None reads them.

    Returns:
        The choice.

    Raises:
        HpoError: an unknown or unfinished trial, or a study with no complete trial yet.
    """
    refits = collect_refits(study) if refits is None else refits
    if trial is not None:
        frozen = studies.get_trial(study, trial)
        if frozen.state != TrialState.COMPLETE:
            raise ConfigError(f"--trial {trial}: trial {trial} of study {study.study_name!r} is "
                              f"{frozen.state.name.lower()}, so it has no final weights; choose a complete trial "
                              f"(`hpo pareto --study {study.study_name}` lists the front)")
        stats = refits.get(trial)
        return Choice(trial, BY_TRIAL, stats if stats is not None and stats.n else None)
    measured = {number: stats for number, stats in refits.items() if stats.n}
    if measured:
        number = max(measured, key=lambda n: (measured[n].mean(), -n))
        return Choice(number, BY_REFIT_MEAN, measured[number], closest_to_mean(measured[number]))
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not complete:
        raise ConfigError(f"study {study.study_name!r} has no complete trial yet, so there is no model to export; "
                          f"run it first (`hpo run --study {study.study_name}`)")
    if len(study.directions) == 1:
        # Equal accuracies go to the cheaper model: it is on the front the checkpoint policy keeps.
        return Choice(min(complete, key=_best_first).number, BY_BEST)
    from hpo.analysis.report import collect

    return Choice(int(collect(study).knee_trial), BY_KNEE)


def _best_first(trial: optuna.trial.FrozenTrial) -> tuple:
    record = TrialRecord.of(trial)
    return (-_finite(record.val_accuracy, -math.inf), _finite(record.param_count, math.inf),
            _finite(record.train_seconds, math.inf), trial.number)


def _finite(value: float | None, missing: float) -> float:
    return value if value is not None and math.isfinite(value) else missing


@dataclass(frozen=True)
class BestExport:
    """What :func:`export_best` wrote.

    Attributes:
        folder: The folder.
        choice: Which configuration, and whose weights.
        config: ``config.json``.
        metrics: ``metrics.json``.
    """

    folder: Path
    choice: Choice
    config: dict[str, Any]
    metrics: dict[str, Any]

    @property
    def cpu_difference_images(self) -> int:
        """Validation images on which the CPU re-measurement and the stored accuracy disagree."""
        stored, now = self.metrics[VAL_ACCURACY], self.metrics[f"{VAL_ACCURACY}_at_export"]
        n = self.metrics.get(N_VAL_IMAGES) or 0
        return round(abs(stored - now) * n) if stored is not None else 0


def check_out_folder(out: Path, force: bool) -> None:
    """Refuse ``--out`` when it is a file, or a folder with files in it (unless ``force``)."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file; give a folder (it is created when missing)")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise ConfigError(f"--out {out} is a folder with files in it; choose an empty or new folder, or pass --force "
                          f"to replace {', '.join(EXPORTED_FILES)} there")


def export_best(study: optuna.Study, out: str | os.PathLike, *, trial: int | None = None,
                data_dir: str | os.PathLike | None = None, artifacts: str | os.PathLike | None = None,
                force: bool = False) -> BestExport:
    """Write the chosen model of a study to ``out``: weights, configuration, metrics and ``load.py``.

    Args:
        study: The search study.
        out: The folder (created; one with files in it needs ``force``).
        trial: ``--trial N``, or None to choose (:func:`choose`).
        data_dir: The study's data (for the class names, the normalisation and the CPU re-check).
        artifacts: The artifact store folder the workers wrote checkpoints to.
        force: Replace the exported files in a folder that has files already.

    Returns:
        What was written.

    Raises:
        HpoError: bad input (one sentence, exit code 2), a checkpoint removed by the retention policy
            or not in the artifact store, other data than the study's.
    """
    from hpo.evaluation import existing_artifact_store, study_dataset

    out = Path(out)
    check_out_folder(out, force)
    config = studies.definition_of(study)
    choice = choose(study, trial)
    store = existing_artifact_store(artifacts, "there are no weights to export")
    dataset = study_dataset(study, config, data_dir)
    with tempfile.TemporaryDirectory(prefix="hpo-best-") as tmp:
        choice, state = _weights(study, choice, store, Path(tmp) / "checkpoint.pt")
    trial_config = config.trial_config(studies.get_trial(study, choice.trial).params)
    if choice.run is not None:  # a refit trains the same configuration with its own seed
        trial_config = dataclasses.replace(trial_config, train=dataclasses.replace(trial_config.train, seed=choice.run.seed))
    model = trial_config.build_model(len(dataset.classes))
    model.load_state_dict(state)
    config_json = _config_json(study, choice, trial_config, dataset, model)
    metrics_json = _metrics_json(study, choice, model, dataset, config_json)
    _write_folder(out, state, config_json, metrics_json)
    return BestExport(folder=out, choice=choice, config=config_json, metrics=metrics_json)


def _weights(study: optuna.Study, choice: Choice, store: Any, path: Path) -> tuple[Choice, dict]:
    """The ``state_dict`` the choice exports, downloaded from the artifact store; a search trial whose
    checkpoint the retention policy removed falls back to its refit run closest to the mean."""
    if choice.run is None:
        record = TrialRecord.of(studies.get_trial(study, choice.trial))
        if record.checkpoint and not _removed(study, choice.trial):
            return choice, _download(store, record.checkpoint, path, f"trial {choice.trial}")
        run = closest_to_mean(choice.refits) if choice.refits is not None else None
        if run is None or not run.checkpoint:
            raise HpoError(_removed_message(study, choice.trial))
        choice = dataclasses.replace(choice, run=run, own_removed=True)
    refit = optuna.load_study(study_name=refit_study_name(study.study_name), storage=compat.storage_of(study))
    if not choice.run.checkpoint or _removed(refit, choice.run.number):
        raise HpoError(f"refit run {choice.run.number} of study {refit.study_name!r} (trial {choice.trial}, seed "
                       f"{choice.run.seed}) has no checkpoint left; run `hpo refit` again for trial {choice.trial}, "
                       "or choose another trial with --trial")
    return choice, _download(store, choice.run.checkpoint, path, f"refit run {choice.run.number} of {refit.study_name!r}")


def _removed(study: optuna.Study, number: int) -> bool:
    storage = compat.storage_of(study)
    return bool(storage.get_study_system_attrs(compat.study_id(study)).get(f"{CHECKPOINT_REMOVED_PREFIX}{number}"))


def _removed_message(study: optuna.Study, number: int) -> str:
    policy = studies.definition_of(study).checkpoints
    budget = f", disk_budget_mb: {policy.disk_budget_mb:g}" if policy.disk_budget_mb else ""
    return (f"trial {number}'s weights were removed by the study's checkpoint policy (checkpoints: {{keep: "
            f"{policy.keep}{budget}}}); "
            f"retrain it with `hpo refit --study {study.study_name} --trials {number} --seeds 1` (refits keep their "
            f"weights), then run `hpo best --trial {number}` again; or set `checkpoints: {{keep: all}}` in the study "
            "file of the next study")


def _download(store: Any, artifact_id: str, path: Path, what: str) -> dict:
    from hpo.checkpoints import CheckpointError, TrainerState, load_checkpoint

    try:
        optuna.artifacts.download_artifact(artifact_store=store, file_path=str(path), artifact_id=artifact_id)
        return TrainerState.from_dict(load_checkpoint(path, map_location="cpu")).model
    except (OSError, CheckpointError, optuna.artifacts.exceptions.ArtifactNotFound) as exc:
        folder = compat.artifact_store_folder(store)
        raise HpoError(f"{what}: its checkpoint {artifact_id} cannot be read from the artifact store "
                       f"{folder if folder is not None else ''} ({exc}); pass --artifacts with the folder the workers "
                       "used") from None


def _config_json(study: optuna.Study, choice: Choice, trial_config: Any, dataset: Any, model: Any) -> dict[str, Any]:
    from hpo.train import eval_normalization

    mean, std = eval_normalization(model, dataset)
    size = int(dataset.val.images.shape[-1])
    definition = studies.definition_of(study)
    return {
        "format": FORMAT_VERSION,
        "hpo_version": hpo.__version__,
        "study": study.study_name,
        "trial": choice.trial,
        "chosen_by": choice.rule,
        "refit_run": None if choice.run is None else {
            "study": refit_study_name(study.study_name), "number": choice.run.number, "seed": choice.run.seed},
        "family": trial_config.family,
        "model": _plain(dataclasses.asdict(trial_config.model)),
        "params": _plain(trial_config.params),
        "train": _plain(trial_config.train.to_dict()),
        "dataset": _plain(dataclasses.asdict(definition.dataset)),
        "split_seed": definition.seed,
        "dataset_fingerprint": dataset.fingerprint,
        "classes": list(dataset.classes),
        "image_size": size,
        "normalization": {"mean": [float(m) for m in mean], "std": [float(s) for s in std],
                          "source": getattr(model, "normalization", None) or "dataset"},
        "input": f"RGB, squashed to {size}x{size} pixels (bilinear), scaled to [0, 1], then (x - mean) / std per channel",
    }


def _accuracy(prefix: str, value: float | None, n: int | None) -> dict[str, Any]:
    interval = accuracy_interval(value, n)
    count = N_VAL_IMAGES if prefix == VAL_ACCURACY else N_TEST_IMAGES
    return {prefix: value, lower_key(prefix): interval[0] if interval else None,
            upper_key(prefix): interval[1] if interval else None, count: n}


def _metrics_json(study: optuna.Study, choice: Choice, model: Any, dataset: Any, config_json: dict) -> dict[str, Any]:
    from hpo.analysis.report import collect
    from hpo.train import evaluate

    row = collect(study).trial(choice.trial)  # the search trial: its intervals, its test accuracy once evaluated
    mean, std = config_json["normalization"]["mean"], config_json["normalization"]["std"]
    _loss, at_export = evaluate(model, dataset.val, device="cpu", mean=mean, std=std,
                                batch_size=int(config_json["train"]["eval_batch_size"]), precision="fp32")
    run = choice.run
    single = {**_accuracy(VAL_ACCURACY, row.get(VAL_ACCURACY), row.get(N_VAL_IMAGES)),
              **_accuracy(TEST_ACCURACY, row.get(TEST_ACCURACY), row.get(N_TEST_IMAGES))}
    if run is None:
        exported = dict(single)
        seconds = row.get(TRAIN_SECONDS)
    else:
        exported = {**_accuracy(VAL_ACCURACY, run.val_accuracy, run.n_val_images or len(dataset.val)),
                    **_accuracy(TEST_ACCURACY, run.test_accuracy, run.n_test_images)}
        seconds = run.train_seconds
    from hpo.models import count_macs, count_params

    metrics = {
        "format": FORMAT_VERSION,
        "study": study.study_name,
        "trial": choice.trial,
        "chosen_by": choice.rule,
        "why": choice.describe(),
        "weights_from": choice.describe_weights(study.study_name),
        "confidence": CONFIDENCE,
        **exported,
        f"{VAL_ACCURACY}_at_export": float(at_export),  # re-measured from model.pt on the CPU (fp32) when exported
        PARAM_COUNT: row.get(PARAM_COUNT) or count_params(model),
        MACS: row.get(MACS) or count_macs(model, (3, config_json["image_size"], config_json["image_size"])),
        TRAIN_SECONDS: seconds,
        "epochs": config_json["train"]["epochs"],
    }
    if exported[TEST_ACCURACY] is None:
        metrics["test_note"] = (f"not measured yet: `hpo evaluate --study {study.study_name} --trial {choice.trial}` "
                                "measures it, then export again")
    if run is not None:
        metrics["search_trial"] = single  # the search's single run of this configuration
    if choice.refits is not None:
        metrics["refits"] = _refit_summary(study, choice.refits)
    return metrics


def _refit_summary(study: optuna.Study, stats: RefitStats) -> dict[str, Any]:
    return {
        "study": refit_study_name(study.study_name),
        "n": stats.n,
        f"{VAL_ACCURACY}_mean": stats.mean(), f"{VAL_ACCURACY}_std": stats.std(),
        f"{TEST_ACCURACY}_mean": stats.mean(TEST_ACCURACY), f"{TEST_ACCURACY}_std": stats.std(TEST_ACCURACY),
        "runs": [{"number": r.number, "seed": r.seed, "state": r.state, VAL_ACCURACY: r.val_accuracy,
                  N_VAL_IMAGES: r.n_val_images, TEST_ACCURACY: r.test_accuracy, N_TEST_IMAGES: r.n_test_images,
                  TRAIN_SECONDS: r.train_seconds} for r in stats.runs],
    }


def _plain(value: Any) -> Any:
    """``value`` as JSON takes it: tuples as lists, numpy scalars as Python numbers."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        return value.item()
    return value


def _write_folder(out: Path, state: dict, config_json: dict, metrics_json: dict) -> None:
    from hpo.checkpoints import atomic_save

    out.mkdir(parents=True, exist_ok=True)
    atomic_save({k: v.detach().cpu() for k, v in state.items()}, out / WEIGHTS_FILE)
    (out / CONFIG_FILE).write_text(json.dumps(config_json, indent=2) + "\n")
    (out / METRICS_FILE).write_text(json.dumps(metrics_json, indent=2) + "\n")
    (out / LOADER_FILE).write_text(LOAD_PY)


LOAD_PY = '''\
"""The model `hpo best` exported into this folder: classify images, or check its validation accuracy.

    python load.py IMAGE [IMAGE ...]     # the class and its probability, one line per image
    python load.py --validate DATA_DIR   # the validation accuracy recomputed on the same split

Runs from any folder; it needs only the hpo package (pip install hpo). In Python:

    import hpo
    exported = hpo.load_model("this/folder")        # .model (eval mode), .classes, .transform(image)
    print(exported.predict("cat.png"))               # Prediction(label=..., probability=...)
"""
import argparse
import sys
from pathlib import Path

import hpo
from hpo.errors import HpoError

HERE = Path(__file__).resolve().parent


def main(argv=None):
    parser = argparse.ArgumentParser(description="Classify images with the model exported in " + str(HERE) + ".")
    parser.add_argument("images", nargs="*", help="image files (PNG, JPEG, ...) to classify")
    parser.add_argument("--validate", metavar="DATA_DIR",
                        help="recompute the validation accuracy on the study's data folder and print it beside the stored one")
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda:0, mps or auto")
    args = parser.parse_args(argv)
    if not args.images and not args.validate:
        parser.error("give an image file to classify, or --validate DATA_DIR")
    try:
        exported = hpo.load_model(HERE, device=args.device)
        for image in args.images:
            prediction = exported.predict(image)
            print(f"{image}: {prediction.label} ({prediction.probability:.4f})")
        if args.validate:
            check = exported.validate(args.validate)
            stored = "-" if check.stored_accuracy is None else f"{check.stored_accuracy:.6f}"
            print(f"validation accuracy {check.accuracy:.6f} on {check.n_images} images, stored {stored} "
                  f"(difference: {check.difference_images} images)")
    except HpoError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
'''


__all__ = ["BestExport", "Choice", "check_out_folder", "choose", "closest_to_mean", "export_best"]
