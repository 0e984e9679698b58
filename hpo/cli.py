"""The ``hpo`` command line. Each command is a few lines that delegate to the library.

Errors the user can fix (``HpoError``) print one sentence and exit with code 2, no traceback.
"""

from __future__ import annotations

import contextlib
import functools
import os
import time
from pathlib import Path
from typing import Annotated, Optional

import typer
import warnings

from hpo.errors import ConfigError, HpoError, require_positive

# Optuna flags features such as metric names as experimental; that is noise for hpo's users.
warnings.filterwarnings("ignore", message=r".*is experimental.*")

app = typer.Typer(
    help="Hyperparameter optimisation of CIFAR-sized image classifiers on Optuna studies.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

# Options shared by several commands.
StudyOpt = Annotated[str, typer.Option("--study", "-s", help="Study name (studies/NAME.yaml) or path to a study YAML file.")]
StorageOpt = Annotated[
    Optional[str],
    typer.Option("--storage", help="Storage URL (sqlite:///hpo.db, postgresql://..., mysql://..., journal:///FILE, "
                 "redis://...). Prefer HPO_STORAGE or --storage-file: `ps` shows command lines."),
]
StorageFileOpt = Annotated[Optional[Path], typer.Option("--storage-file", help="File whose first line is the storage URL.")]
DataDirOpt = Annotated[
    Optional[str],
    typer.Option("--data-dir", envvar="HPO_DATA_DIR", help="Folder holding cifar-10-batches-py/ or train/ and test/ "
                 "class folders (default ./data)."),
]
ArtifactsOpt = Annotated[
    Optional[str],
    typer.Option("--artifacts", envvar="HPO_ARTIFACTS", help="Artifact store folder for checkpoints (default ./artifacts; "
                 "shared by all machines of a study)."),
]
DevicesOpt = Annotated[str, typer.Option("--devices", help="auto (every GPU, else CPU), cpu, or a list: cuda:0,cuda:1.")]
BudgetOpt = Annotated[Optional[str], typer.Option("--budget", help="Study-wide time budget, stored with the study: 90s, 5m, "
                      "2h (wall clock while any worker runs) or 3dh (device-hours, summed over worker slots).")]


def user_errors(command):
    """Print HpoError messages as one line and exit 2; Ctrl-C exits 130 without a traceback."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except HpoError as exc:
            # One line, whatever the message quotes (YAML parser messages, keys holding line breaks).
            message = " ".join(str(exc).splitlines())
            typer.echo(f"error: {message}", err=True)
            raise typer.Exit(2) from None
        except KeyboardInterrupt:
            from hpo.trials import StopReason

            typer.echo(str(StopReason.INTERRUPTED), err=True)
            raise typer.Exit(130) from None

    return wrapper


def _storage(storage: str | None, storage_file: Path | None, *, must_exist: bool = False):
    from hpo.storage import open_storage, resolve_storage_url

    url = resolve_storage_url(storage, storage_file)
    return url, open_storage(url, must_exist=must_exist)


def _load_stored_study(name: str, storage_obj):
    from hpo.study import load_stored

    return load_stored(name, storage_obj)


@app.command()
@user_errors
def run(
    study: StudyOpt,
    n_trials: Annotated[Optional[int], typer.Option("--n-trials", "-n", help="Study-wide budget of finished (complete + pruned) trials; stored with the study.")] = None,
    workers: Annotated[Optional[int], typer.Option("--workers", help="Total worker processes, spread round-robin over the devices.")] = None,
    devices: DevicesOpt = "auto",
    per_device: Annotated[int, typer.Option("--per-device", help="Worker processes per device (several small-model trials share a GPU).")] = 1,
    timeout: Annotated[Optional[float], typer.Option("--timeout", help="Wall-clock seconds for this run; running trials then stop at their next epoch end, and are resumed from their checkpoints by a later run.")] = None,
    budget: BudgetOpt = None,
    storage: StorageOpt = None,
    storage_file: StorageFileOpt = None,
    data_dir: DataDirOpt = None,
    artifacts: ArtifactsOpt = None,
    log_dir: Annotated[Path, typer.Option("--log-dir", help="Per-worker log files go to LOG_DIR/STUDY/.")] = Path("logs"),
    tensorboard: Annotated[Optional[str], typer.Option("--tensorboard", help="Write every trial's learning curves to this TensorBoard folder.")] = None,
    allow_changed_definition: Annotated[bool, typer.Option("--allow-changed-definition", help="Run a changed study file against the existing study's trials.")] = False,
):
    """Run a study: create it in storage (or resume it) and train trials on every device slot.

    Example: hpo run --study cpu-quick --budget 5m
    """
    from hpo import monitor, workers as worker_mod
    from hpo.config import load_study
    from hpo.data import load_dataset
    from hpo.device import resolve_device
    from hpo.storage import mask_url, safe_component, storage_kind
    from hpo.study import create_or_load, hardware_description

    config = load_study(study)
    time_budget = _limits(n_trials, budget, timeout)
    slots = worker_mod.plan_slots(devices, per_device, workers)
    url, storage_obj = _storage(storage, storage_file)
    if storage_kind(url) == "sqlite" and len(slots) > 8:
        typer.echo(f"note: {len(slots)} workers on one SQLite file may wait on its lock; for more than 8 workers use "
                   "PostgreSQL (postgresql://...) or the journal file (journal:///FILE)", err=True)
    dataset = load_dataset(config.dataset, data_dir, split_seed=config.seed)  # builds the cache once, before workers
    optuna_study = create_or_load(
        config, storage_obj, n_trials=n_trials, dataset_fingerprint=dataset.fingerprint,
        hardware=hardware_description(resolve_device(slots[0].device)), allow_changed_definition=allow_changed_definition,
        budget=time_budget,
    )
    start = monitor.progress(optuna_study)
    typer.echo(f"study {config.name} in {mask_url(url)}: {start.trials_text} finished; "
               f"{len(slots)} worker(s) on {', '.join(sorted({s.device for s in slots}))}", err=True)
    run_dir = log_dir / safe_component(config.name)
    started = time.time()
    tick = monitor.LiveDisplay(optuna_study, started, start.finished)
    with tick:
        options = worker_mod.WorkerOptions(study_name=config.name, storage_url=url, data_dir=data_dir,
                                           artifacts=artifacts, timeout=timeout, tensorboard_dir=tensorboard)
        code = worker_mod.launch(options, slots, log_dir=run_dir, on_tick=tick).exit_code
    final = monitor.progress(optuna_study, started, start.finished)
    typer.echo(monitor.summary_line(final))
    if code not in (0, 130):
        typer.echo(f"error: a worker exited with code {code}; its log is in {run_dir}\n{worker_mod.worker_log_tail(run_dir)}", err=True)
        raise typer.Exit(2 if code == 2 else 1)
    if code == 130:
        raise typer.Exit(130)


def _limits(n_trials: int | None, budget: str | None, timeout: float | None = None):
    """``--n-trials`` and ``--timeout`` checked, and ``--budget`` parsed (None when not given)."""
    from hpo.budget import parse_budget

    require_positive("--timeout", timeout, seconds=True)
    if n_trials is not None and n_trials < 1:
        raise ConfigError(f"--n-trials must be at least 1 (got {n_trials})")
    return parse_budget(budget) if budget is not None else None


@app.command()
@user_errors
def worker(
    study: Annotated[str, typer.Option("--study", "-s", help="Name of a study already in the storage.")],
    storage: StorageOpt = None,
    storage_file: StorageFileOpt = None,
    devices: DevicesOpt = "auto",
    per_device: Annotated[int, typer.Option("--per-device", help="Worker processes per device.")] = 1,
    workers: Annotated[Optional[int], typer.Option("--workers", help="Total worker processes.")] = None,
    n_trials: Annotated[Optional[int], typer.Option("--n-trials", "-n", help="Change the study-wide budget.")] = None,
    budget: BudgetOpt = None,
    timeout: Annotated[Optional[float], typer.Option("--timeout", help="Wall-clock seconds for this worker; its running trial then stops at its next epoch end.")] = None,
    data_dir: DataDirOpt = None,
    artifacts: ArtifactsOpt = None,
    log_dir: Annotated[Path, typer.Option("--log-dir", help="Per-worker logs go to LOG_DIR/STUDY/.")] = Path("logs"),
    tensorboard: Annotated[Optional[str], typer.Option("--tensorboard", help="TensorBoard folder for learning curves.")] = None,
    threads: Annotated[Optional[int], typer.Option("--threads", help="CPU threads for this worker.")] = None,
):
    """Join a running study from another terminal, GPU or machine (the definition comes from storage).

    Example: HPO_STORAGE=postgresql://hpo@db/hpo hpo worker --study densenet-mini --devices cuda:0
    """
    from hpo import monitor, workers as worker_mod
    from hpo.storage import resolve_storage_url, safe_component
    from hpo.study import set_limits

    url = resolve_storage_url(storage, storage_file)
    safe_component(study)
    require_positive("--threads", threads)
    time_budget = _limits(n_trials, budget, timeout)
    if n_trials is not None or time_budget is not None:
        set_limits(_load_stored_study(study, _storage(url, None)[1]), n_trials, time_budget)
    slots = worker_mod.plan_slots(devices, per_device, workers)
    options = worker_mod.WorkerOptions(study_name=study, storage_url=url, data_dir=data_dir,
                                       artifacts=artifacts, threads=threads, timeout=timeout, tensorboard_dir=tensorboard)
    if len(slots) == 1:
        worker_mod.configure_logging()
        outcome = worker_mod.launch(options, slots, in_process=True).outcome
        typer.echo(worker_mod.outcome_line(outcome), err=True)
        return
    optuna_study = _load_stored_study(study, _storage(url, None)[1])
    start = monitor.progress(optuna_study)
    started = time.time()
    tick = monitor.LiveDisplay(optuna_study, started, start.finished)
    with tick:
        code = worker_mod.launch(options, slots, log_dir=log_dir / study, on_tick=tick).exit_code
    typer.echo(monitor.summary_line(monitor.progress(optuna_study, started, start.finished)))
    if code:
        raise typer.Exit(code if code in (2, 130) else 1)


@app.command()
@user_errors
def status(
    study: Annotated[Optional[str], typer.Argument(help="A study name; all studies when omitted.")] = None,
    storage: StorageOpt = None,
    storage_file: StorageFileOpt = None,
):
    """List the studies in storage, or one study's trial counts, best trials and live workers.

    Example: hpo status cpu-quick
    """
    import optuna
    from rich.console import Console

    from hpo import monitor
    from hpo.storage import mask_url

    url, storage_obj = _storage(storage, storage_file, must_exist=True)
    console = Console()
    if study is None:
        summaries = optuna.get_all_study_summaries(storage_obj, include_best_trial=False)
        if not summaries:
            typer.echo(f"no studies in {mask_url(url)}; start one with `hpo run --study NAME`")
            return
        for summary in summaries:
            console.print(monitor.summary_line(monitor.progress(optuna.load_study(study_name=summary.study_name, storage=storage_obj))))
        return
    console.print(monitor.render(monitor.progress(_load_stored_study(study, storage_obj))))


@app.command()
@user_errors
def dashboard(
    storage: StorageOpt = None,
    storage_file: StorageFileOpt = None,
    host: Annotated[str, typer.Option("--host", help="Address to bind; 127.0.0.1 keeps the dashboard local.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port to serve on.")] = 8080,
    artifacts: ArtifactsOpt = None,
):
    """Serve optuna-dashboard on the study storage (live view of trials, curves, importances).

    Example: hpo dashboard --port 8080, then open http://127.0.0.1:8080
    """
    from optuna_dashboard import run_server

    from hpo.storage import mask_url, open_artifact_store

    url, storage_obj = _storage(storage, storage_file, must_exist=True)
    if host not in ("127.0.0.1", "localhost", "::1"):
        typer.echo(f"warning: binding {host}: anyone who reaches this address can read and change the studies; "
                   "use an SSH tunnel or a reverse proxy with authentication", err=True)
    typer.echo(f"optuna-dashboard for {mask_url(url)} on http://{host}:{port}", err=True)
    run_server(storage_obj, host=host, port=port, artifact_store=open_artifact_store(artifacts))


@app.command()
@user_errors
def validate(
    study: Annotated[str, typer.Argument(help="Study name or path to a study YAML file.")],
):
    """Check a study file and its search space without running anything.

    Example: hpo validate densenet-mini
    """
    from hpo.config import load_study

    config = load_study(study)
    params = ", ".join(p.name for p in config.space.params if p.kind != "fixed")
    typer.echo(
        f"{config.source}: ok: {config.dataset.kind} dataset, objectives {', '.join(config.objectives)}, "
        f"sampler {config.sampler.name}, pruner {config.pruner.name}, {config.epochs} epochs, "
        f"{config.n_trials or 'unlimited'} trials{f', budget {config.budget.describe()}' if config.budget else ''}; "
        f"searches {params or 'nothing (all fixed)'}"
    )


@app.command()
@user_errors
def studies():
    """List the ready-made studies (studies/*.yaml).

    Example: hpo studies
    """
    from hpo.study_files import list_studies

    for name, description in list_studies():
        typer.echo(f"{name:24s} {description}")


@app.command()
@user_errors
def models(
    classes: Annotated[int, typer.Option("--classes", help="Number of classes for the parameter counts.")] = 10,
):
    """List model families with their knobs, and reference variants with parameters and MACs.

    Example: hpo models --classes 10
    """
    from hpo.models import describe_families, reference_table

    typer.echo("families (knobs = default):")
    for family, description, knobs in describe_families():
        typer.echo(f"  {family}: {description}")
        typer.echo("    " + ", ".join(f"{name}={default!r}" for name, _type, default in knobs))
    typer.echo(f"\nreference variants ({classes} classes, 3x32x32 input):")
    typer.echo(f"  {'name':30s} {'params':>12s} {'MACs':>15s}")
    for name, params, macs in reference_table(num_classes=classes):
        typer.echo(f"  {name:30s} {params:12,d} {macs:15,d}")


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

    data = load_dataset(DatasetConfig(kind=dataset, n_classes=n_classes, R=reduction, train_size=train_size),
                        data_dir, split_seed=seed)
    seed_everything(seed)
    try:
        net = create_model(model, num_classes=len(data.classes), **knobs)
    except ValueError as exc:
        raise ConfigError(f"--model {model}: {exc}") from None
    dev = resolve_device(device)
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
               f"best val accuracy {result.best_val_accuracy:.4f}")
    if test:
        from hpo.train import eval_normalization

        mean, std = eval_normalization(net, data)
        loss, acc = evaluate(net, data.test, device=dev, mean=mean, std=std, batch_size=config.eval_batch_size)
        typer.echo(f"test loss {loss:.4f} accuracy {acc:.4f}")


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

    def on_epoch(m):
        typer.echo(f"epoch {m.epoch:3d}  train loss {m.train_loss:.4f} acc {m.train_accuracy:.4f}  "
                   f"val loss {m.val_loss:.4f} acc {m.val_accuracy:.4f}  lr {m.lr:.4g}  "
                   f"{m.epoch_seconds:.1f} s  {m.images_per_second:,.0f} img/s")
        if writer is not None:
            for key, value in m.to_dict().items():
                if key != "epoch":
                    writer.add_scalar(key, value, m.epoch)

    return on_epoch


def _stored_study(study: str, storage: str | None, storage_file: Path | None):
    from hpo.storage import safe_component

    _url, storage_obj = _storage(storage, storage_file, must_exist=True)
    return _load_stored_study(safe_component(Path(study).stem if study.endswith(".yaml") else study), storage_obj)


def _collect(study: str, objectives: str, storage: str | None, storage_file: Path | None):
    """The stored study collected for a report, on the ``--objectives`` axes (``acc,params,time``)."""
    from hpo.analysis.report import collect

    return collect(_stored_study(study, storage, storage_file), [a.strip() for a in objectives.split(",") if a.strip()])


@app.command()
@user_errors
def pareto(
    study: StudyOpt,
    objectives: Annotated[str, typer.Option("--objectives", help="Front axes: acc,params,time[,macs].")] = "acc,params,time",
    fmt: Annotated[str, typer.Option("--format", help="table, csv or json.")] = "table",
    storage: StorageOpt = None,
    storage_file: StorageFileOpt = None,
):
    """Print the Pareto front of complete trials (knee marked) with their key hyperparameters.

    Example: hpo pareto --study cpu-quick --objectives acc,params
    """
    from hpo.analysis import terminal

    if fmt not in terminal.FORMATS:
        raise ConfigError(f"--format {fmt!r} is not one of {', '.join(terminal.FORMATS)}")
    report = _collect(study, objectives, storage, storage_file)
    if fmt == "json":
        typer.echo(terminal.front_json(report))
        return
    if fmt == "csv":
        typer.echo(terminal.front_csv(report), nl=False)
        return
    from rich.console import Console

    table = terminal.front_rich_table(report)
    Console(width=max(120, 14 * len(table.columns))).print(table)
    if report.pruned_numbers:
        typer.echo(f"{len(report.pruned_numbers)} pruned trials are left out of the front (their budgets differ).")


@app.command()
@user_errors
def export(
    study: StudyOpt,
    fmt: Annotated[str, typer.Option("--format", help="pptx, html, png, svg, csv, md or tex.")] = "pptx",
    out: Annotated[Path, typer.Option("--out", help="Output file (pptx/html/csv/md/tex) or folder (png/svg: one file per figure).")] = Path("report.pptx"),
    objectives: Annotated[str, typer.Option("--objectives", help="Front axes: acc,params,time[,macs].")] = "acc,params,time",
    storage: StorageOpt = None,
    storage_file: StorageFileOpt = None,
):
    """Export the study's tradeoff analysis: a slide deck, an HTML report, figures or the front table.

    Example: hpo export --study cpu-quick --format pptx --out cpu-quick.pptx
    """
    from hpo.analysis.export import export as write_export

    for path in write_export(_collect(study, objectives, storage, storage_file), fmt, out):
        typer.echo(str(path))


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

    optuna_study = _stored_study(study, storage, storage_file)
    if not trial and not pareto_front:
        raise ConfigError("hpo evaluate needs --trial N (repeatable) or --pareto")
    numbers = list(trial or []) + (pareto_trial_numbers(optuna_study) if pareto_front else [])
    from hpo.analysis.intervals import accuracy_interval, format_interval

    for result in evaluate_trials(optuna_study, sorted(set(numbers)), data_dir=data_dir, device=device, artifacts=artifacts):
        val = "-" if result.val_accuracy is None else format_interval(
            result.val_accuracy, accuracy_interval(result.val_accuracy, result.n_val_images))
        test = format_interval(result.test_accuracy, accuracy_interval(result.test_accuracy, result.n_test_images))
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
        typer.echo(f"epoch {m.epoch:3d}  val accuracy {m.val_accuracy:.4f}  ({m.epoch_seconds:.1f} s)")

    from hpo.analysis.intervals import accuracy_interval, format_interval

    result = reproduce_trial(_stored_study(study, storage, storage_file), trial, data_dir=data_dir, device=device, on_epoch=on_epoch)
    now = format_interval(result.val_accuracy, accuracy_interval(result.val_accuracy, result.n_val_images))
    stored = f"{result.stored_val_accuracy:.4f}" if result.stored_val_accuracy is not None else "-"
    diff = f"{result.difference:+.4f}" if result.difference is not None else "-"
    stored_seconds = f"{result.stored_train_seconds:.1f} s" if result.stored_train_seconds is not None else "-"
    # Both are train_seconds: the sum of the epochs' training + evaluation seconds.
    typer.echo(f"trial {trial}: val accuracy {now} now, {stored} stored (difference {diff}); "
               f"train_seconds {result.train_seconds:.1f} s now, {stored_seconds} stored")


def main() -> None:  # pragma: no cover - console entry point
    app(prog_name="hpo")


if __name__ == "__main__":  # pragma: no cover
    main()
