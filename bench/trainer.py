"""Trainer speed against the seed-style loop, in one process, on the same model and images.

Three runs, on the same device, the same architecture from the same initial weights, and exactly the
same MINICIFAR training images (``Dataset.indices['train']``):

1. the seed-style loop (``bench/common.py``): ImageFolder + PIL transforms + DataLoader(batch 32,
   2 workers), SGD lr 0.01 momentum 0.9, ``loss.item()`` per step;
2. ``hpo.train.train`` at batch 32;
3. ``hpo.train.train`` at its default batch size (``TrainConfig().batch_size``).

What is measured. Each run does ``--warmup-epochs`` (default 1) then ``--epochs`` (default 2). The
headline figure is training images per second over the measured epochs only, the warm-up excluded
(first-touch allocations, lazy kernel selection, page cache). For the seed-style loop an epoch is
timed from creating the DataLoader iterator to its last step, so it includes starting the two
workers, which a student's loop pays every epoch (``persistent_workers`` is off by default); the
figure without that start-up is printed too. For the trainer it is the training phase of each epoch
(``EpochMetrics.images_per_second``): the batched augmentation and the steps, not its per-epoch
validation. A second figure, *wall*, is every epoch's images over the whole run's wall clock: the
seed-style loop's ImageFolder scan and every epoch; the trainer's whole ``train()`` call, with its
one-time move of the data to the device and its validation after every epoch (which the seed-style
loop here does not do, so this figure is conservative for the trainer). The project's one-time decode
of the JPEGs into its on-disk cache is reported apart, as "data load".

The last line is ``speedup at default batch: X.XX``: run 3's images per second over run 1's.

Example::

    python bench/trainer.py --data-dir data/cifar10-jpeg --epochs 2 --out bench/out/trainer.json
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

try:
    from bench import common  # python -m bench.trainer, or imported by the tests
except ImportError:
    import common  # python bench/trainer.py

from hpo.device import synchronize
from hpo.errors import HpoError
from hpo.train import train
from hpo.train_config import TrainConfig

SEED_RUN = "seed-style loop"


@dataclass
class RunFigures:
    """One run's measurements (medians over repeats where there are several)."""

    name: str
    batch_size: int
    images_per_second: float  # training images/s over the measured epochs (warm-up excluded)
    wall_seconds: float  # the whole run, warm-up and one-time costs included
    wall_images_per_second: float  # every epoch's images over wall_seconds
    images_per_epoch: int
    epochs: int  # measured epochs
    warmup_epochs: int
    images_per_second_no_worker_start: float | None = None  # seed-style loop: without DataLoader start-up
    worker_start_seconds: float | None = None  # seed-style loop: mean time to the first batch of an epoch
    final_train_loss: float | None = None
    repeats: list[dict] = field(default_factory=list)  # the per-repeat figures behind the medians


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line (see the module docstring)."""
    parser = argparse.ArgumentParser(
        description="Trainer speed vs the seed-style loop (same model, same images, same process).",
    )
    common.add_common_arguments(parser)
    parser.add_argument("--epochs", type=int, default=2, help="measured epochs per run")
    parser.add_argument("--warmup-epochs", type=int, default=1, help="epochs run first and not measured")
    parser.add_argument("--repeats", type=int, default=1,
                        help="run the three in turn this many times and report medians (noisy machines)")
    parser.add_argument("--out", type=Path, default=None, help="write the figures to this JSON file")
    args = parser.parse_args(argv)
    for name in ("epochs", "repeats"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be >= 1 (got {getattr(args, name)})")
    if args.warmup_epochs < 0:
        parser.error(f"--warmup-epochs must be >= 0 (got {args.warmup_epochs})")
    return args


def _harmonic_mean(rates: list[float]) -> float:
    # Equal images per epoch: total images / total seconds is the harmonic mean of the per-epoch rates.
    return len(rates) / sum(1.0 / r for r in rates)


def measure_seed_style(args, data, root, model, device) -> dict:
    """One seed-style run; returns its per-repeat figures."""
    start = time.perf_counter()
    loader = common.seed_style_loader(
        common.seed_style_dataset(root, data.indices["train"], data.train.labels, augment=True), shuffle=True
    )
    records = common.seed_style_train(model, loader, args.warmup_epochs + args.epochs, device)
    synchronize(device)
    wall = time.perf_counter() - start
    measured = records[args.warmup_epochs:]
    images = sum(r.images for r in measured)
    return {
        "images_per_second": images / sum(r.train_seconds for r in measured),
        "images_per_second_no_worker_start": images / sum(r.train_seconds - r.first_batch_seconds for r in measured),
        "worker_start_seconds": statistics.fmean(r.first_batch_seconds for r in records),
        "wall_seconds": wall,
        "wall_images_per_second": sum(r.images for r in records) / wall,
        "images_per_epoch": records[0].images,
        "final_train_loss": records[-1].train_loss,
    }


def measure_trainer(args, data, model, device, config: TrainConfig) -> dict:
    """One ``hpo.train.train`` run; returns its per-repeat figures."""
    start = time.perf_counter()
    result = train(model, data, config, device=device)
    wall = time.perf_counter() - start
    measured = result.history[args.warmup_epochs:]
    images_per_epoch = (len(data.train) // config.batch_size) * config.batch_size or len(data.train)  # drop_last
    return {
        "images_per_second": _harmonic_mean([m.images_per_second for m in measured]),
        "wall_seconds": wall,
        "wall_images_per_second": images_per_epoch * result.epochs_run / wall,
        "images_per_epoch": images_per_epoch,
        "final_train_loss": result.train_loss,
    }


def _median_figures(name: str, batch_size: int, args, repeats: list[dict]) -> RunFigures:
    def median(key):
        values = [r[key] for r in repeats if r.get(key) is not None]
        return statistics.median(values) if values else None

    return RunFigures(
        name=name,
        batch_size=batch_size,
        images_per_second=median("images_per_second"),
        wall_seconds=median("wall_seconds"),
        wall_images_per_second=median("wall_images_per_second"),
        images_per_epoch=repeats[0]["images_per_epoch"],
        epochs=args.epochs,
        warmup_epochs=args.warmup_epochs,
        images_per_second_no_worker_start=median("images_per_second_no_worker_start"),
        worker_start_seconds=median("worker_start_seconds"),
        final_train_loss=median("final_train_loss"),
        repeats=repeats,
    )


def format_table(runs: list[RunFigures]) -> list[str]:
    """The results table and the ratios against the first run (the seed-style loop)."""
    base = runs[0]
    lines = [
        f"{'run':32s} {'batch':>5s} {'img/s':>9s} {'x seed':>7s} {'wall s':>8s} {'wall img/s':>10s} {'x seed':>7s}",
    ]
    for run in runs:
        lines.append(
            f"{run.name:32s} {run.batch_size:5d} {run.images_per_second:9.0f} "
            f"{run.images_per_second / base.images_per_second:7.2f} {run.wall_seconds:8.2f} "
            f"{run.wall_images_per_second:10.0f} {run.wall_images_per_second / base.wall_images_per_second:7.2f}"
        )
    if base.images_per_second_no_worker_start is not None:
        lines.append(
            f"seed-style loop without DataLoader worker start-up ({base.worker_start_seconds:.2f} s per epoch): "
            f"{base.images_per_second_no_worker_start:.0f} img/s"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, print the table; the last line is the speedup at the default batch.

    Args:
        argv: command-line arguments (default ``sys.argv[1:]``).

    Returns:
        The exit status: 0, or 2 after printing a user error.
    """
    args = parse_args(argv)
    try:
        setup = common.prepare(args)
        epochs = args.warmup_epochs + args.epochs
        default_config = TrainConfig.from_dict({**setup.options, "epochs": epochs})
        batch32_config = TrainConfig.from_dict({**setup.options, "epochs": epochs, "batch_size": common.SEED_BATCH_SIZE})
    except (HpoError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    device, root, data, load_seconds, initial = setup.device, setup.root, setup.data, setup.load_seconds, setup.initial

    info = common.machine_info(device)
    print(common.describe_machine(info))
    print(
        f"model {common.model_summary(initial, args.model)}; MINICIFAR {len(data.classes)} classes, R={args.R}: "
        f"{len(data.train)} train images; data load {load_seconds:.2f} s (one-time, not in the figures)"
    )
    print(f"{args.warmup_epochs} warm-up + {args.epochs} measured epochs per run, {args.repeats} repeat(s)")

    names = [
        (SEED_RUN, common.SEED_BATCH_SIZE),
        ("hpo trainer", batch32_config.batch_size),
        ("hpo trainer (default batch)", default_config.batch_size),
    ]
    per_run: list[list[dict]] = [[] for _ in names]
    for _ in range(args.repeats):
        # In turn, so that a change in the machine's load hits every run alike.
        per_run[0].append(measure_seed_style(args, data, root, copy.deepcopy(initial), device))
        per_run[1].append(measure_trainer(args, data, copy.deepcopy(initial), device, batch32_config))
        per_run[2].append(measure_trainer(args, data, copy.deepcopy(initial), device, default_config))
    runs = [_median_figures(name, batch, args, repeats) for (name, batch), repeats in zip(names, per_run)]

    for line in format_table(runs):
        print(line)
    speedup = runs[2].images_per_second / runs[0].images_per_second
    speedup_32 = runs[1].images_per_second / runs[0].images_per_second
    info["load_average_after"] = common.machine_info(device)["load_average"]
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        report = {
            "benchmark": "trainer",
            "command": " ".join(sys.argv) if argv is None else " ".join(["bench/trainer.py", *argv]),
            "machine": info,
            "model": args.model,
            "param_count": sum(p.numel() for p in initial.parameters()),
            "train_images": len(data.train),
            "data_load_seconds": load_seconds,
            "runs": [asdict(run) for run in runs],
            "speedup_at_batch_32": speedup_32,
            "speedup_at_default_batch": speedup,
        }
        args.out.write_text(json.dumps(report, indent=2) + "\n")
        print(f"figures written to {args.out}")
    print(f"speedup at default batch: {speedup:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
