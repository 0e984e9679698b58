"""Service overhead: seconds per trial spent outside training, by storage and study size.

What is timed is the worker's own code for one trial, with training replaced:
``hpo.workers.plan_next`` (the loop's study-wide checks: lost workers, failure streak, budget)
and ``hpo.workers.run_one`` (``ask``, the budget rank, ``hpo.workers.TrialRun``: suggestions, the
size attributes and constraint, the resume lookup, per epoch the ``history`` attribute, a tiny
checkpoint upload and the pruner, then the result attributes, ``tell``, the read-back and the
checkpoint policy). The worker's heartbeat writes three times per trial, as it would during a
nominal 30 s trial (one beat per 10 s).

Training is the only thing replaced, through the worker's own hooks (``hpo.workers.TrialContext``):
its ``model_builder`` returns a linear layer and its ``trainer`` (``FakeTrainer``, with
``hpo.train.train``'s signature) reports made-up accuracies, so the timings are the service's, not
the model's. The checkpoint written each epoch is a few bytes, so its upload costs
the storage writes and not the copy of a real model.

Study sizes: the study is filled with finished trials (``Study.add_trials``: copies of real trial
records with re-drawn parameters, states and accuracies) up to each size, then ``--measure`` trials
are timed at that size. The fill is not timed, and for speed it runs with the database's disk
syncs off (SQLite ``synchronous=OFF``, PostgreSQL ``synchronous_commit=off``, on the fill's own
connection only). Storages: SQLite file, journal file and PostgreSQL (``--postgres URL``, skipped
with a note when unreachable; its benchmark studies are deleted afterwards).

The target (issue 6): the median overhead per trial at 1 000 trials below 2 % of a 30-second trial
(0.6 s) on every storage.

Example (the documented command, about 20 minutes: the fills to 10 000 trials dominate)::

    python bench/overhead.py
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import gc
import json
import math
import random
import shutil
import statistics
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

try:
    from bench import _study_utils as utils  # python -m bench.overhead, or the tests
except ImportError:
    import _study_utils as utils  # python bench/overhead.py

NOMINAL_TRIAL_SECONDS = 30.0  # the trial length the 2 % target refers to
TARGET_FRACTION = 0.02
DEFAULT_POSTGRES = "postgresql://postgres@127.0.0.1:5432/test"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line (defaults are the documented benchmark)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out-dir", type=Path, default=utils.DEFAULT_OUT_DIR, help="JSON, HTML and PNG go here")
    parser.add_argument("--sizes", default="10,1000,10000", help="study sizes (trials already in the study)")
    parser.add_argument("--measure", type=int, default=10, help="trials timed at each size")
    parser.add_argument("--storages", default="sqlite,journal,postgresql", help="storages to measure")
    parser.add_argument("--postgres", default=DEFAULT_POSTGRES, help="PostgreSQL URL for the postgresql storage")
    parser.add_argument("--epochs", type=int, default=4, help="epochs per trial (history writes and pruner calls)")
    parser.add_argument("--base", default=utils.BASE_STUDY, help="shipped study whose space, sampler and pruner are used")
    parser.add_argument("--seed", type=int, default=0, help="seed of the sampler and the made-up accuracies")
    parser.add_argument("--name", default="overhead", help="output file stem (NAME.json, NAME.html, NAME.png)")
    return parser.parse_args(argv)


@dataclass
class Worker:
    """What ``hpo.workers.run_worker`` holds while it runs trials, for one benchmark study."""

    study: Any
    storage: Any
    config: Any
    sampler: Any
    ctx: Any  # hpo.workers.TrialContext (its trainer is set per trial: see service_trial)
    heartbeat: Any  # hpo.workers.Heartbeat (not started: FakeTrainer beats it)


def linear_model(trial_config, num_classes: int):
    """The benchmark's ``model_builder``: a linear layer, whatever the configuration."""
    import torch

    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 32 * 32, num_classes))


class _Shape(SimpleNamespace):
    """A split reduced to what the trial run reads of it: its tensors' shapes and its length."""

    def __len__(self) -> int:
        return len(getattr(self, "labels", ()))


def open_study(base_config, url: str, name: str, seed: int, work_dir: Path) -> Worker:
    """Create the benchmark study and load it as a worker does (sampler, pruner, retrying storage)."""
    import torch

    from hpo.storage import open_artifact_store, open_retrying_storage
    from hpo.study import create_or_load
    from hpo.workers import Heartbeat, TrialContext, WorkerInfo, load_worker_study

    storage = open_retrying_storage(url)
    config = utils.study_definition(name, sampler={"name": base_config.sampler.name, "args": dict(base_config.sampler.args)},
                                    pruner={"name": base_config.pruner.name, "args": dict(base_config.pruner.args)},
                                    epochs=base_config.epochs, R=base_config.dataset.R, seed=seed, n_trials=1_000_000)
    create_or_load(config, storage, n_trials=config.n_trials, dataset_fingerprint="benchmark")
    worker_id = "bench-overhead"
    study, sampler, pruner = load_worker_study(storage, name, config, worker_id)
    classes = [f"class{i}" for i in range(config.dataset.n_classes)]
    # No images are trained on: the dataset is its shape (what the trial run measures MACs and intervals with).
    dataset = SimpleNamespace(classes=classes, train=_Shape(images=torch.zeros(0, 3, 32, 32, dtype=torch.uint8)),
                              val=_Shape(labels=torch.zeros(800, dtype=torch.long)))
    ctx = TrialContext(study=study, config=config, dataset=dataset, device=torch.device("cpu"),
                       artifact_store=open_artifact_store(work_dir / f"{name}-artifacts"),
                       feature_cache_dir=work_dir / "features", pruner=pruner, worker_id=worker_id,
                       scratch_dir=work_dir / f"{name}-scratch", model_builder=linear_model)
    ctx.scratch_dir.mkdir(parents=True, exist_ok=True)
    info = dataclasses.asdict(WorkerInfo(host="bench", pid=0, device="cpu", device_name="cpu"))
    gc.freeze()  # as hpo.workers.run_worker does once its study and data are loaded
    return Worker(study, storage, config, sampler, ctx, Heartbeat.for_study(study, worker_id, info))


class FakeTrainer:
    """A trainer with ``hpo.train.train``'s signature: made-up accuracies, tiny checkpoints, nominal heartbeats.

    ``own_seconds`` receives the seconds each call spent on its own (outside ``on_epoch``, which
    is the service's), to subtract from the timed trial.

    Args:
        heartbeat: The worker's heartbeat, beaten as often as during a nominal 30 s trial.
        rng: Draws the made-up accuracies.
    """

    def __init__(self, heartbeat: Any, rng: random.Random) -> None:
        self.heartbeat, self.rng = heartbeat, rng
        self.own_seconds: list[float] = []

    def __call__(self, model, dataset, config, *, device, on_epoch=None, checkpoint_path=None, resume_from=None, **_):
        from hpo.train import TrainResult
        from hpo.trials import EpochMetrics
        from hpo.workers import heartbeat_seconds

        began = time.perf_counter()
        in_service = 0.0
        quality = self.rng.random()  # how good this made-up configuration is
        epoch_seconds = NOMINAL_TRIAL_SECONDS / config.epochs
        beats_per_epoch = epoch_seconds / heartbeat_seconds()
        beats_due, history = 0.0, []
        try:
            for epoch in range(1, config.epochs + 1):
                accuracy = 0.25 + 0.6 * quality * (1 - math.exp(-epoch)) + self.rng.gauss(0, 0.01)
                metrics = EpochMetrics(epoch=epoch, train_loss=1.0 - accuracy, train_accuracy=accuracy,
                                       val_loss=1.0 - accuracy, val_accuracy=accuracy, epoch_seconds=epoch_seconds,
                                       images_per_second=1000.0, lr=0.1, elapsed_seconds=epoch * epoch_seconds)
                history.append(metrics)
                if checkpoint_path is not None:
                    Path(checkpoint_path).write_bytes(b"checkpoint %d" % epoch)
                service = time.perf_counter()
                beats_due += beats_per_epoch
                while beats_due >= 1:
                    self.heartbeat.beat()
                    beats_due -= 1
                if on_epoch is not None:
                    on_epoch(metrics)
                in_service += time.perf_counter() - service
        finally:
            self.own_seconds.append(time.perf_counter() - began - in_service)
        return TrainResult(history=history, train_seconds=NOMINAL_TRIAL_SECONDS, epochs_run=len(history),
                           images_per_second=1000.0, device_name="cpu", peak_memory_bytes=0,
                           param_count=sum(p.numel() for p in model.parameters()))


def service_trial(worker: Worker, rng: random.Random) -> float:
    """One trial through the worker's own code, with :class:`FakeTrainer` as its trainer.

    Returns:
        Seconds spent in the service (sampling, storage, pruning, reporting), training excluded.
    """
    from hpo import workers

    trainer = FakeTrainer(worker.heartbeat, rng)
    ctx = dataclasses.replace(worker.ctx, trainer=trainer)
    start = time.perf_counter()
    action, n_trials = workers.plan_next(worker.study, worker.sampler)
    if action != "ask":
        raise RuntimeError(f"the benchmark study cannot run another trial ({action})")
    workers.run_one(worker.study, ctx, n_trials, worker.heartbeat)
    return time.perf_counter() - start - sum(trainer.own_seconds)


def fill_storage(url: str):
    """A storage on ``url`` for the untimed fill: its own connections skip the disk syncs."""
    import sqlalchemy

    from hpo.storage import open_storage, storage_kind

    storage = open_storage(url)
    kind = storage_kind(url)
    if kind in ("sqlite", "postgresql"):
        statement = "PRAGMA synchronous=OFF" if kind == "sqlite" else "SET synchronous_commit TO OFF"

        def no_sync(dbapi_connection, _record):
            cursor = dbapi_connection.cursor()
            cursor.execute(statement)
            cursor.close()

        sqlalchemy.event.listen(storage.engine, "connect", no_sync)
        storage.engine.dispose()  # connections opened before the listener would keep syncing
    return storage


def fill(url: str, study_name: str, templates: list, count: int, rng: random.Random) -> float:
    """Add ``count`` finished trials, copies of ``templates`` with re-drawn parameters and results.

    Returns:
        Seconds the insert took.
    """
    import optuna
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
    from optuna.trial import TrialState

    trials = []
    for _ in range(count):
        template = rng.choice(templates)
        params = {}
        for name, distribution in template.distributions.items():
            if isinstance(distribution, CategoricalDistribution):
                params[name] = rng.choice(distribution.choices)
            elif isinstance(distribution, FloatDistribution):
                low, high = distribution.low, distribution.high
                params[name] = math.exp(rng.uniform(math.log(low), math.log(high))) if distribution.log else rng.uniform(low, high)
            elif isinstance(distribution, IntDistribution):
                params[name] = rng.randint(distribution.low, distribution.high)
            else:
                params[name] = template.params[name]
        pruned = rng.random() < 0.6
        accuracy = 0.25 + 0.6 * rng.random()
        history = copy.deepcopy(template.user_attrs.get("history", []))[: 1 if pruned else None]
        for entry in history:
            entry["val_accuracy"] = accuracy * entry["epoch"] / max(1, len(history))
        user_attrs = {**template.user_attrs, "history": history, "val_accuracy": accuracy}
        if "checkpoint" in user_attrs:
            # As in a long study under `keep: front`: every trial had a checkpoint, most were removed.
            user_attrs["checkpoint"] = f"bench-removed-{uuid.uuid4().hex}"
        trials.append(optuna.trial.create_trial(
            state=TrialState.PRUNED if pruned else TrialState.COMPLETE,
            value=None if pruned else accuracy,
            params=params,
            distributions=template.distributions,
            user_attrs=user_attrs,
            system_attrs={k: v for k, v in template.system_attrs.items() if k.startswith("hpo:")},
            intermediate_values={e["epoch"]: e["val_accuracy"] for e in history},
        ))
    start = time.perf_counter()
    from hpo.compat import study_id
    from hpo.trials import CHECKPOINT_REMOVED_PREFIX

    storage = fill_storage(url)
    study = optuna.load_study(study_name=study_name, storage=storage)
    first = len(study.get_trials(deepcopy=False))
    study.add_trials(trials)
    for number, trial in enumerate(trials, start=first):
        if "checkpoint" in trial.user_attrs:
            storage.set_study_system_attr(study_id(study), f"{CHECKPOINT_REMOVED_PREFIX}{number}", True)
    if hasattr(storage, "engine"):
        storage.engine.dispose()
    return time.perf_counter() - start


def measure_storage(kind: str, url: str, sizes: list[int], measure: int, base_config, seed: int, work_dir: Path) -> dict:
    """Per-trial overhead on one storage at each study size.

    Returns:
        ``{"sizes": {size: {"median_seconds", "p90_seconds", "samples", "fill_seconds"}}}``.
    """
    import optuna

    name = f"bench-overhead-{kind}-{uuid.uuid4().hex[:8]}"
    worker = open_study(base_config, url, name, seed, work_dir)
    study = worker.study
    rng = random.Random(seed)
    results: dict = {"url": url.split("@")[-1] if "@" in url else url, "sizes": {}}
    try:
        templates = []
        for size in sizes:
            present = len(study.get_trials(deepcopy=False))
            fill_seconds = 0.0
            if not templates:
                while present < min(size, 10):  # the first trials go through the service for real
                    service_trial(worker, rng)
                    present += 1
                templates = [t for t in study.get_trials(deepcopy=False) if t.state.is_finished()]
            if present < size:
                fill_seconds = fill(url, name, templates, size - present, rng)
            samples = [service_trial(worker, rng) for _ in range(measure)]
            samples.sort()
            results["sizes"][str(size)] = {
                "median_seconds": statistics.median(samples),
                "p90_seconds": samples[min(len(samples) - 1, int(0.9 * len(samples)))],
                "samples": samples,
                "fill_seconds": fill_seconds,
                "trials_in_study": size,
            }
            print(f"{kind:10s} {size:>6d} trials: {statistics.median(samples) * 1000:8.1f} ms per trial (median of "
                  f"{measure}; p90 {results['sizes'][str(size)]['p90_seconds'] * 1000:.1f} ms; "
                  f"{statistics.median(samples) / NOMINAL_TRIAL_SECONDS * 100:.2f} % of a 30 s trial)", flush=True)
    finally:
        if kind == "postgresql":
            try:
                optuna.delete_study(study_name=name, storage=worker.storage)
            except Exception as exc:
                print(f"note: could not delete study {name} from PostgreSQL ({exc})")
    return results


def figure(summary: dict):
    """Overhead per trial against study size, one line per storage, with the 2 % line."""
    import plotly.graph_objects as go

    fig = go.Figure()
    for kind, result in summary["storages"].items():
        if "sizes" not in result:
            continue
        sizes = [int(s) for s in result["sizes"]]
        fig.add_trace(go.Scatter(x=sizes, y=[result["sizes"][str(s)]["median_seconds"] for s in sizes],
                                 mode="lines+markers", name=kind))
    fig.add_hline(y=NOMINAL_TRIAL_SECONDS * TARGET_FRACTION, line_dash="dot", annotation_text="2 % of a 30 s trial")
    fig.update_layout(title="Service overhead per trial (median) by storage and study size",
                      xaxis_title="trials in the study", yaxis_title="seconds per trial outside training",
                      xaxis_type="log", yaxis_type="log", template="plotly_white")
    return fig


def main(argv: list[str] | None = None) -> dict:
    """Run the benchmark, print the overhead ratios, write JSON and plots.

    Returns:
        The summary written to ``overhead.json``.
    """
    import warnings

    import optuna

    from hpo.config import load_study

    warnings.filterwarnings("ignore", message=r".*experimental.*")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    args = parse_args(argv)
    machine = utils.machine_info()
    print(f"machine: {utils.describe_machine(machine)}")
    sizes = sorted(int(s) for s in args.sizes.split(","))
    base = load_study(args.base)
    base = utils.study_definition(base.name, sampler={"name": base.sampler.name, "args": dict(base.sampler.args)},
                                  pruner={"name": base.pruner.name, "args": dict(base.pruner.args)},
                                  epochs=args.epochs, R=base.dataset.R, base=args.base)
    work = args.out_dir / "overhead-runs"
    work.mkdir(parents=True, exist_ok=True)
    urls = {
        "sqlite": f"sqlite:///{(work / f'overhead-{uuid.uuid4().hex[:6]}.db').resolve()}",
        "journal": f"journal:///{(work / f'overhead-{uuid.uuid4().hex[:6]}.log').resolve()}",
        "postgresql": args.postgres,
    }
    summary: dict = {"machine": machine, "storages": {},
                     "command": "python bench/overhead.py " + " ".join(argv if argv is not None else sys.argv[1:]),
                     "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}}
    for kind in [s.strip() for s in args.storages.split(",") if s.strip()]:
        if kind not in urls:
            raise SystemExit(f"--storages: unknown storage {kind!r}; use sqlite, journal, postgresql")
        try:
            summary["storages"][kind] = measure_storage(kind, urls[kind], sizes, args.measure, base, args.seed, work)
        except Exception as exc:  # e.g. no PostgreSQL server here: the other storages still count
            message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            print(f"{kind}: skipped ({message})")
            summary["storages"][kind] = {"skipped": message}
    shutil.rmtree(work, ignore_errors=True)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / f"{args.name}.json").write_text(json.dumps(summary, indent=1))
    utils.write_figure(figure(summary), args.out_dir, args.name)
    target_size = "1000"
    for kind, result in summary["storages"].items():
        at = result.get("sizes", {}).get(target_size)
        if at is None:
            continue
        share = at["median_seconds"] / NOMINAL_TRIAL_SECONDS
        print(f"overhead at 1000 trials, {kind}: {share * 100:.2f} % of a 30 s trial "
              f"(target < 2 %: {'met' if share < TARGET_FRACTION else 'missed'})")
    return summary


if __name__ == "__main__":
    main()
