"""Shared pieces of the benchmarks: the seed-style baseline loop, data, model, machine description.

The *seed-style loop* is the training loop a student writes from the PyTorch CIFAR tutorial, and the
baseline every ``bench/`` script measures the trainer against, in the same process:
``torchvision.datasets.ImageFolder`` over the JPEG files (a ``Subset`` over exactly the images the
trainer trains on), PIL transforms ``RandomCrop(32, padding=4)``, ``RandomHorizontalFlip``,
``ToTensor``, ``Normalize(CIFAR-10 statistics)``, ``DataLoader(batch_size=32, shuffle=True,
num_workers=2)``, ``SGD(lr=0.01, momentum=0.9)`` and ``loss.item()`` after every step.

Both sides get the same architecture with the same initial weights (``fresh_model`` rebuilds it from
the same seed) and the same MINICIFAR training indices (``Dataset.indices['train']``, checked
against the image folder's labels before anything is timed).
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import torch
from torch import nn

from hpo.data import CIFAR10_MEAN, CIFAR10_STD, Dataset, DatasetConfig, load_dataset, resolve_data_dir
from hpo.device import available_cpu_count, device_name, resolve_device, synchronize
from hpo.errors import ConfigError, DataNotFoundError
from hpo.models import count_params, create_model
from hpo.train import seed_everything
from hpo.trial_config import split_model_overrides

# The seed-style recipe, as the practice's notebook writes it.
SEED_BATCH_SIZE = 32  # images per step
SEED_LR = 0.01  # plain SGD learning rate, not scaled
SEED_MOMENTUM = 0.9
SEED_NUM_WORKERS = 2  # DataLoader worker processes decoding JPEGs and running the PIL transforms
SEED_CROP_PADDING = 4  # pixels of zero padding around the 32x32 image before the random crop

DEFAULT_MODEL = "cnn_stride"  # the practice's two-layer CNN: two 16@5x5 stride-2 convs, one linear layer
MODEL_SEED = 0  # initialises the model; every run in a benchmark starts from these weights


# ----------------------------------------------------------------------------------------------
# Command line


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options every benchmark takes: data, dataset size, model, trainer options, device.

    Args:
        parser: the script's parser.
    """
    parser.add_argument("--data-dir", default=None,
                        help="folder holding train/<class>/*.jpg and test/<class>/*.jpg "
                             "(default $HPO_DATA_DIR or ./data)")
    parser.add_argument("--n-classes", type=int, default=4, help="MINICIFAR: keep the first N classes")
    parser.add_argument("--R", type=int, default=5, help="MINICIFAR: keep 1/R of each class's images")
    parser.add_argument("--train-size", type=float, default=0.8,
                        help="fraction of the kept training images used for training; the rest validate")
    parser.add_argument("--split-seed", type=int, default=0, help="seed of the train/validation shuffle")
    parser.add_argument("--model", default=DEFAULT_MODEL, help="model family or variant (see `hpo models`)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="a model knob or a trainer option for the trainer's runs (repeatable)")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda[:N]; both loops run there")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch intra-op threads of this process (default: torch's own choice)")


def image_folder_root(data_dir: str | os.PathLike | None) -> Path:
    """The data folder, which must hold an image folder: the seed-style loop reads the JPEG files.

    Args:
        data_dir: ``--data-dir`` as given, or None for ``$HPO_DATA_DIR`` / ``./data``.

    Returns:
        The folder holding ``train/`` and ``test/``.

    Raises:
        DataNotFoundError: no ``train/`` class folders there.
    """
    root = resolve_data_dir(data_dir)
    if not (root / "train").is_dir() or not (root / "test").is_dir():
        raise DataNotFoundError(
            f"no image folder in {root.resolve()}: the benchmarks need train/<class>/ and test/<class>/ images "
            "(e.g. unpack ../shared/data/cifar10-jpeg.tar.gz into data/cifar10-jpeg and pass --data-dir "
            "data/cifar10-jpeg)"
        )
    return root


def split_overrides(model: str, pairs: Sequence[str]) -> tuple[dict, dict]:
    """Split and type ``--set KEY=VALUE`` pairs into model knobs and trainer options.

    Args:
        model: a model family or variant name.
        pairs: the ``--set`` strings.

    Returns:
        ``(knobs, trainer_options)``, typed by the family's config and by ``TrainConfig``.

    Raises:
        ConfigError: unknown model, a key that is neither a knob nor a trainer option, or a bad value.
    """
    _, knobs, options = split_model_overrides(model, pairs)
    return knobs, options


def fresh_model(model: str, num_classes: int, knobs: dict) -> nn.Module:
    """The benchmark's model, initialised from ``MODEL_SEED``: equal weights on every call.

    Args:
        model: family or variant name.
        num_classes: outputs.
        knobs: model knobs (from ``split_overrides``).

    Returns:
        The model, on the CPU.
    """
    seed_everything(MODEL_SEED)
    return create_model(model, num_classes=num_classes, **knobs)


# ----------------------------------------------------------------------------------------------
# Data


def load_minicifar(args: argparse.Namespace) -> tuple[Dataset, float]:
    """The benchmark's MINICIFAR, through the project's loader (decoded once, cached on disk).

    Args:
        args: parsed options (``data_dir``, ``n_classes``, ``R``, ``train_size``, ``split_seed``).

    Returns:
        ``(dataset, load_seconds)``; the seconds are a one-time cost (the decode cache build on
        the first run, a memory-mapped read after).
    """
    root = image_folder_root(args.data_dir)
    start = time.perf_counter()
    data = load_dataset(
        DatasetConfig(kind="minicifar", n_classes=args.n_classes, R=args.R, train_size=args.train_size),
        root,
        split_seed=args.split_seed,
    )
    return data, time.perf_counter() - start


def seed_style_dataset(root: Path, indices: Sequence[int], labels: torch.Tensor, augment: bool):
    """The tutorial's dataset: ``ImageFolder`` + PIL transforms, restricted to ``indices``.

    Args:
        root: the image folder (holding ``train/``).
        indices: indices into the training images in dataset order (``Dataset.indices``).
        labels: the labels the project's loader gives those images, to prove both see the same data.
        augment: random crop and flip (training) or not (validation).

    Returns:
        A ``torch.utils.data.Subset`` of ``ImageFolder(root / "train")``.

    Raises:
        DataNotFoundError: the folder's images or labels differ from the project's dataset order.
    """
    from torch.utils.data import Subset
    from torchvision import datasets, transforms

    steps = [transforms.RandomCrop(32, padding=SEED_CROP_PADDING), transforms.RandomHorizontalFlip()] if augment else []
    transform = transforms.Compose([*steps, transforms.ToTensor(), transforms.Normalize(CIFAR10_MEAN, CIFAR10_STD)])
    folder = datasets.ImageFolder(str(root / "train"), transform=transform)
    targets = torch.tensor(folder.targets, dtype=torch.long)
    index = torch.as_tensor(list(indices), dtype=torch.long)
    if len(index) and (int(index.max()) >= len(targets) or not torch.equal(targets[index], labels.cpu())):
        raise DataNotFoundError(
            f"ImageFolder({root / 'train'}) orders its {len(targets)} images differently from hpo's loader "
            "(labels differ at the benchmark's indices); remove stray files from the class folders"
        )
    return Subset(folder, index.tolist())


def seed_style_loader(dataset, shuffle: bool, batch_size: int = SEED_BATCH_SIZE):
    """``DataLoader(dataset, batch_size=32, shuffle=..., num_workers=2)``, as the tutorial writes it."""
    from torch.utils.data import DataLoader

    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, num_workers=SEED_NUM_WORKERS)


# ----------------------------------------------------------------------------------------------
# The seed-style loop


@dataclass
class SeedEpoch:
    """One epoch of the seed-style loop."""

    epoch: int  # 1-based
    images: int  # training images seen (the last batch is kept, as DataLoader does by default)
    train_seconds: float  # iterator creation (worker start) to the last step, device-synchronised
    first_batch_seconds: float  # iterator creation to the first batch: DataLoader worker start-up
    train_loss: float  # mean of the per-step loss.item() values
    val_accuracy: float | None = None  # when a validation loader is given
    eval_seconds: float = 0.0
    elapsed_seconds: float = 0.0  # wall clock since seed_style_train was called

    @property
    def images_per_second(self) -> float:
        """Training images per second of the epoch, worker start-up included."""
        return self.images / max(self.train_seconds, 1e-9)


def seed_style_evaluate(model: nn.Module, loader, device: torch.device) -> float:
    """Validation accuracy the tutorial's way: ``torch.no_grad()``, ``.item()`` per batch.

    Args:
        model: the model (switched to eval mode).
        loader: yields (images, labels) batches.
        device: where the model is.

    Returns:
        The fraction of images classified correctly.
    """
    model.eval()
    correct = total = 0
    with torch.no_grad():
        for images, labels in loader:
            images, labels = images.to(device), labels.to(device)
            outputs = model(images)
            correct += (outputs.argmax(1) == labels).sum().item()
            total += labels.size(0)
    return correct / max(total, 1)


def seed_style_train(
    model: nn.Module,
    train_loader,
    epochs: int,
    device: torch.device,
    *,
    val_loader=None,
    on_epoch: Callable[[SeedEpoch], None] | None = None,
) -> list[SeedEpoch]:
    """Train as a student writes it: SGD(lr=0.01, momentum=0.9), ``loss.item()`` after every step.

    Args:
        model: the model, trained in place (moved to ``device``).
        train_loader: the seed-style training ``DataLoader``.
        epochs: epochs to run.
        device: where the model trains; batches are moved there one at a time.
        val_loader: when given, validation accuracy is measured after every epoch (timed apart).
        on_epoch: called with each epoch's record; may raise to stop early.

    Returns:
        The per-epoch records.
    """
    start = time.perf_counter()
    model.to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=SEED_LR, momentum=SEED_MOMENTUM)
    criterion = nn.CrossEntropyLoss()
    records = []
    for epoch in range(1, epochs + 1):
        model.train()
        synchronize(device)
        epoch_start = time.perf_counter()
        first_batch_seconds = None
        running_loss, steps, images_seen = 0.0, 0, 0
        for images, labels in train_loader:
            if first_batch_seconds is None:
                first_batch_seconds = time.perf_counter() - epoch_start
            images, labels = images.to(device), labels.to(device)
            optimizer.zero_grad()
            outputs = model(images)
            loss = criterion(outputs, labels)
            loss.backward()
            optimizer.step()
            running_loss += loss.item()  # a host sync per step, as in the tutorial
            steps += 1
            images_seen += labels.size(0)
        synchronize(device)
        record = SeedEpoch(
            epoch=epoch,
            images=images_seen,
            train_seconds=time.perf_counter() - epoch_start,
            first_batch_seconds=first_batch_seconds or 0.0,
            train_loss=running_loss / max(steps, 1),
        )
        if val_loader is not None:
            eval_start = time.perf_counter()
            record.val_accuracy = seed_style_evaluate(model, val_loader, device)
            record.eval_seconds = time.perf_counter() - eval_start
        record.elapsed_seconds = time.perf_counter() - start
        records.append(record)
        if on_epoch is not None:
            on_epoch(record)
    return records


# ----------------------------------------------------------------------------------------------
# Reporting


def machine_info(device: torch.device) -> dict:
    """What the figures were measured on: CPU/GPU, cores, memory, versions, load, date.

    Args:
        device: the device the benchmark ran on.

    Returns:
        A JSON-ready dict.
    """
    import torchvision

    memory_gib = None
    try:
        with open("/proc/meminfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("MemTotal:"):
                    memory_gib = round(int(line.split()[1]) / 2**20, 1)
                    break
    except OSError:
        pass
    try:
        load = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        load = None
    return {
        "device": device_name(device),
        "cpu_cores": available_cpu_count(),
        "cpu": device_name("cpu"),
        "memory_gib": memory_gib,
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "load_average": load,
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
    }


def describe_machine(info: dict) -> str:
    """One line for the top of a benchmark's output."""
    load = "/".join(f"{x:.2f}" for x in info["load_average"]) if info.get("load_average") else "n/a"
    return (
        f"device {info['device']}; {info['cpu_cores']} cores; {info['memory_gib']} GiB RAM; "
        f"torch {info['torch']} ({info['torch_threads']} threads); load average {load}"
    )


@dataclass
class Setup:
    """What both trainer benchmarks start from (``prepare``)."""

    device: torch.device
    knobs: dict  # model knobs from --set
    options: dict  # trainer options from --set
    root: Path  # the image folder the seed-style loop reads
    data: Dataset  # the trainer's MINICIFAR
    load_seconds: float  # one-time decode/cache cost, not timed
    initial: nn.Module  # the initial weights both sides copy


def prepare(args: argparse.Namespace) -> Setup:
    """Device, ``--set`` overrides, data and initial model, in the order the scripts need them.

    Raises:
        HpoError, ValueError: a bad option or missing data (the scripts print it and exit 2).
    """
    device = setup_device(args)
    knobs, options = split_overrides(args.model, args.overrides)
    root = image_folder_root(args.data_dir)
    data, load_seconds = load_minicifar(args)
    initial = fresh_model(args.model, len(data.classes), knobs)
    return Setup(device, knobs, options, root, data, load_seconds, initial)


def setup_device(args: argparse.Namespace) -> torch.device:
    """Resolve ``--device`` and apply ``--threads``.

    Args:
        args: parsed options.

    Returns:
        The device both loops run on.
    """
    device = resolve_device(args.device)
    if args.threads is not None:
        if args.threads < 1:
            raise ConfigError(f"--threads must be >= 1 (got {args.threads})")
        torch.set_num_threads(args.threads)
    return device


def model_summary(model: nn.Module, name: str) -> str:
    """``name (N parameters)``."""
    return f"{name} ({count_params(model):,} parameters)"
