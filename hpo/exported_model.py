"""A model ``hpo best`` exported, loaded back: ``hpo.load_model(DIR)``.

``hpo best --out DIR`` writes ``model.pt`` (a plain ``state_dict``), ``config.json`` (the family and
its knobs, the trainer options, the dataset with the normalisation and image size the model was
trained with, the class names in label order) and ``metrics.json`` (:mod:`hpo.best`). This module
reads them back with nothing but the folder: no storage, no artifact store, no study file.

    exported = hpo.load_model("handin/")
    exported.predict("cat.png")            # Prediction(label='cat', index=3, probability=0.91)
    exported.model(exported.transform("cat.png")[None])   # logits, (1, num_classes)
    exported.validate("data/cifar10-jpeg")  # the validation accuracy again, on the same split

An image goes through the same steps as the study's training images: decoded to RGB, squashed to
the square the dataset was decoded at (bilinear, as an image folder is read), scaled to [0, 1] and
normalised per channel with the stored mean and std. A transfer model then resizes it to its
``input_size`` inside ``forward``, as it did in training.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hpo.errors import HpoError

if TYPE_CHECKING:
    import torch
    from torch import nn

FORMAT_VERSION = 1  # of the exported folder; load_model refuses a folder written by a later format
WEIGHTS_FILE = "model.pt"
CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.json"
LOADER_FILE = "load.py"

# Knobs that fetch weights when a model is built; the exported weights replace them, so never fetch.
_FETCHING_KNOBS = {"pretrained": False}


@dataclass(frozen=True)
class Prediction:
    """The most probable class of one image."""

    label: str  # the class name
    index: int  # its label (the output index)
    probability: float  # softmax probability of that class
    probabilities: tuple[float, ...] = ()  # of every class, in label order


@dataclass(frozen=True)
class Validation:
    """The validation accuracy recomputed from the exported weights, beside the stored one."""

    accuracy: float
    n_images: int
    stored_accuracy: float | None
    stored_n_images: int | None

    @property
    def difference_images(self) -> int | None:
        """How many validation images the two accuracies differ by (None without a stored accuracy)."""
        if self.stored_accuracy is None:
            return None
        return round(abs(self.accuracy - self.stored_accuracy) * self.n_images)


@dataclass
class ExportedModel:
    """An exported model, loaded: the network in eval mode and what its inputs need.

    Attributes:
        model: The network with the exported weights, in eval mode, on :attr:`device`.
        classes: Class names in label order (output ``i`` is ``classes[i]``).
        config: ``config.json`` as a dict.
        metrics: ``metrics.json`` as a dict.
        folder: The exported folder.
        device: Where :attr:`model` lives.
    """

    model: nn.Module
    classes: list[str]
    config: dict[str, Any]
    metrics: dict[str, Any]
    folder: Path
    device: torch.device
    _shift_scale: tuple[Any, Any] | None = field(default=None, repr=False)

    @property
    def image_size(self) -> int:
        """Side in pixels of the square images the model was trained on."""
        return int(self.config["image_size"])

    @property
    def mean(self) -> list[float]:
        """Per-channel normalisation mean, on the [0, 1] pixel scale."""
        return list(self.config["normalization"]["mean"])

    @property
    def std(self) -> list[float]:
        """Per-channel normalisation standard deviation, on the [0, 1] pixel scale."""
        return list(self.config["normalization"]["std"])

    def pixels(self, image: Any) -> torch.Tensor:
        """An image as the dataset holds it: uint8 ``(3, image_size, image_size)``.

        Args:
            image: A path to an image file, or a ``PIL.Image``.

        Raises:
            HpoError: the file does not exist or is not an image.
        """
        import numpy as np
        import torch

        size = self.image_size
        if isinstance(image, (str, os.PathLike)):
            from hpo.data.folder import decode_images

            path = Path(image)
            if not path.is_file():
                raise HpoError(f"{path}: no such image file; give the path of a PNG or JPEG image")
            return torch.from_numpy(decode_images([str(path)], size, workers=1)[0])
        try:
            from PIL import Image

            rgb = image.convert("RGB")
        except AttributeError:
            raise HpoError(f"cannot read {type(image).__name__} as an image; give a file path or a PIL image") from None
        if rgb.size != (size, size):
            rgb = rgb.resize((size, size), Image.Resampling.BILINEAR)  # squashed, as the folder reader does
        return torch.from_numpy(np.ascontiguousarray(np.asarray(rgb).transpose(2, 0, 1)))

    def transform(self, image: Any) -> torch.Tensor:
        """An image as the model's input: float ``(3, H, W)``, normalised; add a batch axis with ``[None]``.

        Args:
            image: A path to an image file, or a ``PIL.Image``.
        """
        import torch

        if self._shift_scale is None:
            # The trainer's own arithmetic (hpo.data.loader): (x/255 - m)/s computed as (x - 255m) * 1/(255s).
            shift = (torch.tensor(self.mean, dtype=torch.float32) * 255).view(-1, 1, 1)
            scale = (1.0 / (torch.tensor(self.std, dtype=torch.float32) * 255)).view(-1, 1, 1)
            self._shift_scale = (shift, scale)
        shift, scale = self._shift_scale
        return (self.pixels(image).to(torch.float32) - shift) * scale

    def predict(self, image: Any) -> Prediction:
        """The most probable class of one image (a file path or a ``PIL.Image``)."""
        import torch

        with torch.no_grad():
            logits = self.model(self.transform(image)[None].to(self.device))
            probabilities = torch.softmax(logits.float(), dim=1)[0].cpu()
        index = int(probabilities.argmax())
        return Prediction(label=self.classes[index], index=index, probability=float(probabilities[index]),
                          probabilities=tuple(float(p) for p in probabilities))

    def validate(self, data_dir: str | os.PathLike | None) -> Validation:
        """Recompute the validation accuracy on the split the model was validated on.

        Args:
            data_dir: The data folder the study used (``--data-dir``): the same images give the
                same split, which the stored dataset fingerprint checks.

        Raises:
            HpoError: the data is missing, or differs from the study's (another fingerprint).
        """
        from hpo.data import DatasetConfig, load_dataset
        from hpo.train import evaluate
        from hpo.trials import N_VAL_IMAGES, VAL_ACCURACY

        dataset = load_dataset(DatasetConfig.from_dict(self.config["dataset"]), data_dir,
                               split_seed=int(self.config["split_seed"]), download=False)
        stored = self.config.get("dataset_fingerprint")
        if stored and dataset.fingerprint != stored:
            raise HpoError(f"the data in {data_dir} gives another split than the one this model was validated on "
                           f"(fingerprint {dataset.fingerprint[:12]}, exported {stored[:12]}); point it at the data "
                           f"study {self.config.get('study')!r} was run on")
        _loss, accuracy = evaluate(self.model, dataset.val, device=self.device, mean=self.mean, std=self.std,
                                   batch_size=int(self.config["train"].get("eval_batch_size") or 1024), precision="fp32")
        self.model.eval()
        return Validation(accuracy=float(accuracy), n_images=len(dataset.val),
                          stored_accuracy=self.metrics.get(VAL_ACCURACY), stored_n_images=self.metrics.get(N_VAL_IMAGES))


def build_exported_model(config: dict[str, Any]) -> nn.Module:
    """The network ``config.json`` describes, freshly built (its weights come from ``model.pt``).

    Raises:
        HpoError: an unknown family or knob (a folder written by another hpo).
    """
    from hpo.models.registry import families, make_config

    family = config["family"]
    knobs = dict(config["model"])
    knobs.update({k: v for k, v in _FETCHING_KNOBS.items() if k in knobs})
    try:
        model_config = make_config(family, **knobs)
    except ValueError as exc:
        raise HpoError(f"{CONFIG_FILE}: {exc}; this folder was exported by hpo {config.get('hpo_version')}, "
                       "load it with that version") from None
    return families()[family].build(model_config, len(config["classes"]))


def read_json(folder: Path, name: str) -> dict[str, Any]:
    path = folder / name
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise HpoError(f"{folder} has no {name}; give a folder written by `hpo best --out DIR`") from None
    except (OSError, ValueError) as exc:
        raise HpoError(f"{path} cannot be read ({exc}); export the model again with `hpo best`") from None


def load_model(folder: str | os.PathLike, device: str = "cpu") -> ExportedModel:
    """Load a model that ``hpo best --out DIR`` exported.

    Args:
        folder: The exported folder (``model.pt``, ``config.json``, ``metrics.json``).
        device: Where to put the model (``cpu``, ``cuda:0``, ``auto``...).

    Returns:
        The model in eval mode, with its classes and what its inputs need (:class:`ExportedModel`).

    Raises:
        HpoError: a file is missing or unreadable, or the weights do not fit the configuration.
    """
    import torch

    from hpo.device import resolve_device

    folder = Path(folder)
    config = read_json(folder, CONFIG_FILE)
    if int(config.get("format", 0)) > FORMAT_VERSION:
        raise HpoError(f"{folder / CONFIG_FILE} has format {config.get('format')}, newer than this hpo reads "
                       f"({FORMAT_VERSION}); install hpo {config.get('hpo_version')} or later")
    metrics = read_json(folder, METRICS_FILE) if (folder / METRICS_FILE).exists() else {}
    weights = folder / WEIGHTS_FILE
    if not weights.is_file():
        raise HpoError(f"{folder} has no {WEIGHTS_FILE}; export the model again with `hpo best`")
    model = build_exported_model(config)
    try:
        model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    except (RuntimeError, OSError, EOFError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise HpoError(f"{weights} does not fit the model in {CONFIG_FILE} ({first}); export it again with `hpo best`") from None
    dev = resolve_device(device, flag="device")
    model.to(dev).eval()
    return ExportedModel(model=model, classes=list(config["classes"]), config=config, metrics=metrics,
                         folder=folder.resolve(), device=dev)


__all__ = ["ExportedModel", "Prediction", "Validation", "build_exported_model", "load_model"]
