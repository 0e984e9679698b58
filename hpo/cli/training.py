"""One model outside a search (``train``), and stored trials retrained or tested (``reproduce``, ``evaluate``)."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Annotated, Optional

import typer

from hpo.cli.common import (
    ArtifactsOpt, DataDirOpt, StorageFileOpt, StorageOpt, StudyOpt, app, stored_study, user_errors,
)
from hpo.errors import ConfigError, require_positive


@app.command()
@user_errors
def train(
    model: Annotated[str, typer.Option("--model", "-m", help="Model family or variant (see `hpo models`).")] = "cnn",
    depth: Annotated[Optional[str], typer.Option("--depth", help="Depth knob of the family (e.g. 18, 121, cifar).")] = None,
    width: Annotated[Optional[int], typer.Option("--width", help="Width knob (first stage channels; 64 is the reference).")] = None,
    set_: Annotated[Optional[list[str]], typer.Option("--set", help="KEY=VALUE for any model knob or trainer option (repeatable), e.g. --set lr=0.1 --set dropout=0.2.")] = None,
    dataset: Annotated[str, typer.Option("--dataset", help="minicifar, cifar10, cifar100 or folder.")] = "minicifar",
    n_classes: Annotated[int, typer.Option("--n-classes", help="MINICIFAR: first N classes.")] = 4,
    reduction: Annotated[int, typer.Option("--R", help="MINICIFAR: keep 1/R of the images of each class.")] = 5,
    train_size: Annotated[float, typer.Option("--train-size", help="Fraction of training images used for training; the rest validates.")] = 0.8,
    epochs: Annotated[int, typer.Option("--epochs", help="Epochs to train.")] = 10,
    seed: Annotated[int, typer.Option("--seed", help="Seeds initialisation, data order, augmentation and the split.")] = 0,
    device: Annotated[str, typer.Option("--device", help="auto, cpu, cuda:N or mps.")] = "auto",
    data_dir: DataDirOpt = None,
    checkpoint: Annotated[Optional[Path], typer.Option("--checkpoint", help="Write a checkpoint here after every epoch.")] = None,
    resume: Annotated[Optional[Path], typer.Option("--resume", help="Resume from this checkpoint.")] = None,
    tensorboard: Annotated[Optional[str], typer.Option("--tensorboard", help="Write learning curves to this TensorBoard folder.")] = None,
    test: Annotated[bool, typer.Option("--test/--no-test", help="Also report test-set accuracy at the end.")] = False,
    threads: Annotated[Optional[int], typer.Option("--threads", help="CPU threads (default: the cores available to this process).")] = None,
):
    """Train one model and print its per-epoch metrics (no study, no storage).

    Example: hpo train --model resnet --depth 18 --width 16 --dataset minicifar --data-dir data/cifar10-jpeg --epochs 2
    """
    from hpo.data import DatasetConfig, load_dataset
    from hpo.analysis.intervals import format_accuracy
    from hpo.device import resolve_device, set_cpu_threads
    from hpo.faults import FaultPlan
    from hpo.models import count_macs, count_params, create_model
    from hpo.train import TrainingStopped, evaluate, seed_everything
    from hpo.train import train as run_training
    from hpo.train_config import TrainConfig

    require_positive("--epochs", epochs), require_positive("--threads", threads)
    family, knobs, options = _model_and_trainer_options(model, depth, width, set_ or [])
    try:
        config = TrainConfig.from_dict({**options, "epochs": epochs, "seed": seed})
    except ValueError as exc:
        raise ConfigError(f"--set: {exc}") from None

    dev = resolve_device(device, flag="--device")  # before the data is read
    if checkpoint is not None:
        from hpo.faults_user import require_writable_file

        require_writable_file(checkpoint, "--checkpoint")
    data = load_dataset(DatasetConfig(kind=dataset, n_classes=n_classes, R=reduction, train_size=train_size),
                        data_dir, split_seed=seed)
    seed_everything(seed)
    try:
        net = create_model(model, num_classes=len(data.classes), **knobs)
    except ValueError as exc:
        raise ConfigError(f"--model {model}: {exc}") from None
    set_cpu_threads(threads)
    typer.echo(f"{model} ({family}): {count_params(net):,} parameters, {count_macs(net, (3, 32, 32)):,} MACs/image; "
               f"{data.kind}: {len(data.train.labels)} train / {len(data.val.labels)} val images, "
               f"{len(data.classes)} classes; device {dev}")
    with _curves_writer(tensorboard) as writer:
        try:
            result = run_training(net, data, config, device=dev, on_epoch=_epoch_printer(writer), checkpoint_path=checkpoint,
                                  resume_from=resume, feature_cache_dir=Path(data_dir or os.environ.get("HPO_DATA_DIR") or "data") / ".hpo-cache" / "features",
                                  faults=FaultPlan.from_env())
        except TrainingStopped as stop:
            typer.echo(f"stopped ({stop.reason}): {stop}", err=True)
            raise typer.Exit(1) from None
    typer.echo(f"trained {result.epochs_run} epochs in {result.train_seconds:.1f} s; "
               f"best val accuracy {format_accuracy(result.best_val_accuracy)}")
    if test:
        from hpo.train import eval_normalization

        mean, std = eval_normalization(net, data)
        loss, acc = evaluate(net, data.test, device=dev, mean=mean, std=std, batch_size=config.eval_batch_size)
        typer.echo(f"test loss {loss:.4f} accuracy {format_accuracy(acc)}")


@app.command()
@user_errors
def evaluate(
    study: StudyOpt,
    trial: Annotated[Optional[list[int]], typer.Option("--trial", help="Trial number (repeatable).")] = None,
    pareto_front: Annotated[bool, typer.Option("--pareto", help="Evaluate every trial on the Pareto front.")] = False,
    storage: StorageOpt = None,
    storage_file: StorageFileOpt = None,
    data_dir: DataDirOpt = None,
    artifacts: ArtifactsOpt = None,
    device: Annotated[str, typer.Option("--device", help="auto, cpu, cuda:N or mps.")] = "auto",
):
    """Test-set accuracy of trials from their saved checkpoints (no retraining); stored with the study.

    Example: hpo evaluate --study cpu-quick --pareto
    """
    from hpo.evaluation import evaluate_trials, pareto_trial_numbers

    optuna_study = stored_study(study, storage, storage_file)
    if not trial and not pareto_front:
        raise ConfigError("hpo evaluate needs --trial N (repeatable) or --pareto")
    numbers = list(trial or []) + (pareto_trial_numbers(optuna_study) if pareto_front else [])
    from hpo.analysis.intervals import accuracy_interval, format_accuracy

    for result in evaluate_trials(optuna_study, sorted(set(numbers)), data_dir=data_dir, device=device, artifacts=artifacts):
        val = format_accuracy(result.val_accuracy, accuracy_interval(result.val_accuracy, result.n_val_images))
        test = format_accuracy(result.test_accuracy, accuracy_interval(result.test_accuracy, result.n_test_images))
        typer.echo(f"trial {result.trial:4d}  val accuracy {val}  test accuracy {test}  test loss {result.test_loss:.4f}")


@app.command()
@user_errors
def reproduce(
    study: StudyOpt,
    trial: Annotated[int, typer.Option("--trial", help="Trial number.")],
    storage: StorageOpt = None,
    storage_file: StorageFileOpt = None,
    data_dir: DataDirOpt = None,
    device: Annotated[str, typer.Option("--device", help="auto, cpu, cuda:N or mps.")] = "auto",
):
    """Retrain one trial from its stored parameters and seed, and compare with the stored result.

    Example: hpo reproduce --study cpu-quick --trial 3
    """
    from hpo.evaluation import reproduce_trial

    def on_epoch(m):
        typer.echo(f"epoch {m.epoch:3d}  val accuracy {format_accuracy(m.val_accuracy)}  ({m.epoch_seconds:.1f} s)")

    from hpo.analysis.intervals import accuracy_interval, format_accuracy

    result = reproduce_trial(stored_study(study, storage, storage_file), trial, data_dir=data_dir, device=device, on_epoch=on_epoch)
    now = format_accuracy(result.val_accuracy, accuracy_interval(result.val_accuracy, result.n_val_images))
    stored = format_accuracy(result.stored_val_accuracy)
    diff = f"{100 * result.difference:+.2f} points" if result.difference is not None else "-"
    stored_seconds = f"{result.stored_train_seconds:.1f} s" if result.stored_train_seconds is not None else "-"
    # Both are train_seconds: the sum of the epochs' training + evaluation seconds.
    typer.echo(f"trial {trial}: val accuracy {now} now, {stored} stored (difference {diff}); "
               f"train_seconds {result.train_seconds:.1f} s now, {stored_seconds} stored")


def _model_and_trainer_options(model: str, depth: str | None, width: int | None, pairs: list[str]) -> tuple[str, dict, dict]:
    """``hpo train``'s ``--set`` pairs split into model knobs and trainer options, with the ``--depth``
    and ``--width`` shortcuts added to the knobs; ``(family, knobs, options)``."""
    import dataclasses

    from hpo.models import families
    from hpo.trial_config import split_model_overrides
    from hpo.typed import parse_overrides

    family, knobs, options = split_model_overrides(model, pairs)
    config_cls = families()[family].config_cls
    model_fields = {f.name for f in dataclasses.fields(config_cls)}
    if depth is not None:
        if "depth" not in model_fields:
            raise ConfigError(f"--depth: model family {family} has no depth knob; its knobs are {', '.join(sorted(model_fields))}")
        knobs["depth"] = parse_overrides([f"depth={depth}"], config_cls)["depth"]
    if width is not None:
        # DenseNet's width is its growth rate; families without a width knob refuse --width.
        width_knob = "growth_rate" if family == "densenet" else "width"
        if width_knob not in model_fields:
            raise ConfigError(f"--width: model family {family} has no width knob; its knobs are {', '.join(sorted(model_fields))}")
        knobs[width_knob] = width
    return family, knobs, options


@contextlib.contextmanager
def _curves_writer(folder: str | None):
    """A TensorBoard writer into ``folder`` (None without one), closed when training ends."""
    if not folder:
        yield None
        return
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(folder)
    try:
        yield writer
    finally:
        writer.close()


def _epoch_printer(writer):
    """``hpo train``'s per-epoch callback: one line of metrics, and the curves to TensorBoard."""
    from hpo.analysis.intervals import format_accuracy

    def on_epoch(m):
        typer.echo(f"epoch {m.epoch:3d}  train loss {m.train_loss:.4f} acc {format_accuracy(m.train_accuracy)}  "
                   f"val loss {m.val_loss:.4f} acc {format_accuracy(m.val_accuracy)}  lr {m.lr:.4g}  "
                   f"{m.epoch_seconds:.1f} s  {m.images_per_second:,.0f} img/s")
        if writer is not None:
            for key, value in m.to_dict().items():
                if key != "epoch":
                    writer.add_scalar(key, value, m.epoch)

    return on_epoch
