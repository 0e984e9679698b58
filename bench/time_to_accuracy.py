"""Wall time to a stated validation accuracy: the trainer's default recipe vs the seed-style loop.

Same model (same initial weights), same MINICIFAR training and validation images, same device, in one
process. Both evaluate validation accuracy after every epoch, up to ``--max-epochs``:

- the trainer: ``TrainConfig()`` defaults (SGD lr 0.05 Nesterov, batch 256, cosine schedule, batched
  crop+flip on the device) with ``epochs = --max-epochs``, so the cosine schedule spans the budget,
  as it does in a study; ``--set KEY=VALUE`` changes a trainer option or a model knob;
- the seed-style loop (``bench/common.py``): ImageFolder + PIL transforms + DataLoader(batch 32,
  2 workers), SGD lr 0.01 momentum 0.9, and the tutorial's evaluation loop over a validation
  DataLoader (batch 32, 2 workers, no augmentation).

The clock starts before each side builds anything (the seed-style loop's ImageFolder scan, the
trainer's move of the data to the device) and includes every epoch's training and validation. The
project's one-time decode of the JPEGs into its on-disk cache is reported apart. Time to accuracy
is the clock at the end of the first epoch whose validation accuracy reaches ``--target``.

Each run stops at the end of the first epoch that reaches the target (``--full-curves`` runs every
epoch, for the whole curve in the plot; the trainer's cosine schedule spans ``--max-epochs`` either way).

The last line is ``time-to-accuracy speedup: X.XX`` (the seed-style loop's time over the trainer's),
or says which run did not reach the target. A plot of validation accuracy against wall time goes to
``--out-dir`` as HTML, and as PNG when Chrome/Chromium is available (e.g. BROWSER_PATH=/usr/bin/chromium).

Example::

    python bench/time_to_accuracy.py --data-dir data/cifar10-jpeg --target 0.60 --max-epochs 10
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from pathlib import Path
from typing import Sequence

try:
    from bench import common  # python -m bench.time_to_accuracy, or imported by the tests
except ImportError:
    import common  # python bench/time_to_accuracy.py

from hpo.errors import HpoError
from hpo.train import train
from hpo.train_config import TrainConfig

TRAINER_RUN = "hpo trainer (default recipe)"
SEED_RUN = "seed-style loop"
FIGURE_STEM = "time_to_accuracy"

Curve = list[tuple[float, float]]  # (wall seconds since the run started, val_accuracy) after each epoch


class _ReachedTarget(Exception):
    """Raised from an epoch callback to stop a run once it has reached the target."""


def time_to_target(curve: Sequence[tuple[float, float]], target: float) -> tuple[float, int] | None:
    """When a run first reached the target validation accuracy.

    Args:
        curve: ``(seconds, val_accuracy)`` after each epoch, in epoch order.
        target: the validation accuracy to reach (a fraction).

    Returns:
        ``(seconds, epoch)`` of the first epoch (1-based) with ``val_accuracy >= target``, or None.
    """
    for epoch, (seconds, val_accuracy) in enumerate(curve, start=1):
        if val_accuracy >= target:
            return seconds, epoch
    return None


def speedup_line(reached: dict[str, tuple[float, int] | None], target: float, max_epochs: int) -> str:
    """The script's last line: the seed-style loop's time over the trainer's, or who missed the target.

    Args:
        reached: ``{TRAINER_RUN: ..., SEED_RUN: ...}`` as returned by ``time_to_target``.
        target: the target validation accuracy.
        max_epochs: the epoch budget of both runs.

    Returns:
        ``time-to-accuracy speedup: X.XX``, or ``time-to-accuracy speedup: n/a (...)``.
    """
    missed = [name for name in (TRAINER_RUN, SEED_RUN) if reached.get(name) is None]
    if missed:
        who = " and ".join(missed)
        return (
            f"time-to-accuracy speedup: n/a ({who} did not reach val_accuracy {target:.2f} "
            f"in {max_epochs} epochs)"
        )
    return f"time-to-accuracy speedup: {reached[SEED_RUN][0] / reached[TRAINER_RUN][0]:.2f}"


def accuracy_figure(curves: dict[str, Curve], target: float, title: str):
    """Validation accuracy against wall time, one line per run, the target as a dashed line.

    Args:
        curves: run name -> its curve.
        target: the target validation accuracy.
        title: the figure's title.

    Returns:
        A ``plotly.graph_objects.Figure``.
    """
    import plotly.graph_objects as go

    figure = go.Figure()
    for name, curve in curves.items():
        figure.add_trace(go.Scatter(
            x=[s for s, _ in curve],
            y=[a for _, a in curve],
            mode="lines+markers",
            name=name,
            text=[f"epoch {i}" for i in range(1, len(curve) + 1)],
            hovertemplate="%{text}: %{y:.3f} at %{x:.1f} s<extra>%{fullData.name}</extra>",
        ))
    figure.add_hline(y=target, line_dash="dash", annotation_text=f"target {target:.2f}")
    figure.update_layout(
        title=title,
        xaxis_title="wall time (s)",
        yaxis_title="val_accuracy",
        template="plotly_white",
        width=1200,
        height=675,
        legend={"x": 0.99, "xanchor": "right", "y": 0.01, "yanchor": "bottom"},
    )
    return figure


def write_figure(figure, out_dir: Path) -> list[str]:
    """Write the figure as HTML, and as PNG when a browser for Kaleido is found.

    Args:
        figure: the plotly figure.
        out_dir: the folder to write into (created when missing).

    Returns:
        Lines to print: the files written, or why the PNG was skipped.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    html_path = out_dir / f"{FIGURE_STEM}.html"
    figure.write_html(html_path, include_plotlyjs=True)  # self-contained: these machines are offline
    lines = [f"plot written to {html_path}"]
    try:
        from hpo.analysis.export import render_images

        (png_path,) = render_images({FIGURE_STEM: figure}, "png", out_dir, scale=1)
        lines.append(f"plot written to {png_path}")
    except HpoError as exc:  # no Chrome/Chromium: the HTML is enough
        lines.append(f"no PNG: {exc}")
    return lines


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line (see the module docstring)."""
    parser = argparse.ArgumentParser(
        description="Wall time to a validation accuracy: trainer defaults vs the seed-style loop.",
    )
    common.add_common_arguments(parser)
    parser.add_argument("--target", type=float, default=0.60, help="validation accuracy to reach (fraction)")
    parser.add_argument("--max-epochs", type=int, default=10, help="epoch budget of each run")
    parser.add_argument("--full-curves", action="store_true",
                        help="run every epoch instead of stopping each run when it reaches the target")
    parser.add_argument("--out-dir", type=Path, default=Path("bench/out"),
                        help="folder for the plot and time_to_accuracy.json")
    args = parser.parse_args(argv)
    if not 0.0 < args.target <= 1.0:
        parser.error(f"--target must be a fraction in (0, 1] (got {args.target})")
    if args.max_epochs < 1:
        parser.error(f"--max-epochs must be >= 1 (got {args.max_epochs})")
    return args


def run_seed_style(args, data, root, model, device, stop_at: float | None) -> Curve:
    """The seed-style loop's validation accuracy after each epoch, against wall time (until ``stop_at``)."""
    start = time.perf_counter()
    train_loader = common.seed_style_loader(
        common.seed_style_dataset(root, data.indices["train"], data.train.labels, augment=True), shuffle=True
    )
    val_loader = common.seed_style_loader(
        common.seed_style_dataset(root, data.indices["val"], data.val.labels, augment=False), shuffle=False
    )
    curve: Curve = []

    def on_epoch(record: common.SeedEpoch) -> None:
        curve.append((time.perf_counter() - start, record.val_accuracy))
        if stop_at is not None and record.val_accuracy >= stop_at:
            raise _ReachedTarget

    try:
        common.seed_style_train(model, train_loader, args.max_epochs, device, val_loader=val_loader, on_epoch=on_epoch)
    except _ReachedTarget:
        pass
    return curve


def run_trainer(data, model, device, config: TrainConfig, stop_at: float | None) -> Curve:
    """The trainer's validation accuracy after each epoch, against wall time (until ``stop_at``)."""
    curve: Curve = []
    start = time.perf_counter()

    def on_epoch(metrics) -> None:
        curve.append((time.perf_counter() - start, metrics.val_accuracy))
        if stop_at is not None and metrics.val_accuracy >= stop_at:
            raise _ReachedTarget  # train() lets what on_epoch raises propagate unchanged

    try:
        train(model, data, config, device=device, on_epoch=on_epoch)
    except _ReachedTarget:
        pass
    return curve


def main(argv: list[str] | None = None) -> int:
    """Run both, print the times and the ratio (last line), write the plot.

    Args:
        argv: command-line arguments (default ``sys.argv[1:]``).

    Returns:
        The exit status: 0, or 2 after printing a user error.
    """
    args = parse_args(argv)
    try:
        setup = common.prepare(args)
        config = TrainConfig.from_dict({**setup.options, "epochs": args.max_epochs})
    except (HpoError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    device, root, data, load_seconds, initial = setup.device, setup.root, setup.data, setup.load_seconds, setup.initial

    info = common.machine_info(device)
    print(common.describe_machine(info))
    print(
        f"model {common.model_summary(initial, args.model)}; MINICIFAR {len(data.classes)} classes, R={args.R}: "
        f"{len(data.train)} train / {len(data.val)} val images; data load {load_seconds:.2f} s (one-time, not timed)"
    )
    stopping = "every epoch run" if args.full_curves else "each stops when it reaches the target"
    print(f"target val_accuracy {args.target:.2f}, at most {args.max_epochs} epochs each ({stopping})")

    stop_at = None if args.full_curves else args.target
    curves = {
        TRAINER_RUN: run_trainer(data, copy.deepcopy(initial), device, config, stop_at),
        SEED_RUN: run_seed_style(args, data, root, copy.deepcopy(initial), device, stop_at),
    }
    reached = {name: time_to_target(curve, args.target) for name, curve in curves.items()}

    print(f"{'run':32s} {'epochs':>6s} {'total s':>8s} {'best val':>8s} {'to target':>14s}")
    for name, curve in curves.items():
        hit = reached[name]
        to_target = f"{hit[0]:.1f} s (ep {hit[1]})" if hit else "not reached"
        print(f"{name:32s} {len(curve):6d} {curve[-1][0]:8.1f} {max(a for _, a in curve):8.3f} {to_target:>14s}")

    info["load_average_after"] = common.machine_info(device)["load_average"]
    figure = accuracy_figure(
        curves, args.target,
        f"{args.model} on MINICIFAR ({len(data.classes)} classes, R={args.R}), {info['device']}",
    )
    for line in write_figure(figure, args.out_dir):
        print(line)
    json_path = args.out_dir / f"{FIGURE_STEM}.json"
    json_path.write_text(json.dumps({
        "benchmark": "time_to_accuracy",
        "command": " ".join(sys.argv) if argv is None else " ".join(["bench/time_to_accuracy.py", *argv]),
        "machine": info,
        "model": args.model,
        "train_images": len(data.train),
        "val_images": len(data.val),
        "target": args.target,
        "max_epochs": args.max_epochs,
        "full_curves": args.full_curves,
        "trainer_config": config.to_dict(),
        "data_load_seconds": load_seconds,
        "curves": {name: [{"seconds": s, "val_accuracy": a} for s, a in curve] for name, curve in curves.items()},
        "time_to_target": {name: (None if hit is None else {"seconds": hit[0], "epoch": hit[1]})
                           for name, hit in reached.items()},
    }, indent=2) + "\n")
    print(f"figures written to {json_path}")
    print(speedup_line(reached, args.target, args.max_epochs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
