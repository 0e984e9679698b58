"""Model size and cost: parameter count and multiply-accumulates per image.

MACs come from PyTorch's own ``FlopCounterMode`` (FLOPs / 2), which counts matrix products and
convolutions; normalisation, activations and pooling are not counted, as in the usual tables.
"""

from __future__ import annotations

import copy
import dataclasses

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from hpo.models.registry import create_model, families, variants


def count_params(model: nn.Module) -> int:
    """All parameters, trainable or not (the way kuangliu/pytorch-cifar's tables count).

    Args:
        model: any module.

    Returns:
        The number of scalar parameters.
    """
    return sum(p.numel() for p in model.parameters())


def _macs(model: nn.Module, input_shape: tuple[int, ...], device: str) -> int:
    # Pre-filling deepcopy's memo with copies made directly on `device` means a model on a GPU is
    # never duplicated in GPU memory, only its module structure is copied.
    memo: dict[int, object] = {}
    for tensor in [*model.parameters(), *model.buffers()]:
        copied = tensor.detach().to(device, copy=True)
        memo[id(tensor)] = nn.Parameter(copied, tensor.requires_grad) if isinstance(tensor, nn.Parameter) else copied
    model = copy.deepcopy(model, memo).eval()
    x = torch.zeros((1, *input_shape), device=device)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(x)
    return counter.get_total_flops() // 2


def count_macs(model: nn.Module, input_shape: tuple[int, ...] = (3, 32, 32)) -> int:
    """Multiply-accumulates of one forward pass on one image.

    The model is deep-copied, so its mode, device and weights are untouched; the count runs on the
    meta device (shapes only, no arithmetic, no extra device memory) and falls back to the CPU for
    ops without meta support.

    Args:
        model: any module taking ``(N, *input_shape)``.
        input_shape: one image's shape, channels first.

    Returns:
        MACs per image (an int).
    """
    try:
        return _macs(model, tuple(input_shape), "meta")
    except NotImplementedError:  # an op without a meta kernel; shape errors propagate as they are
        return _macs(model, tuple(input_shape), "cpu")


def model_stats(
    name: str, num_classes: int = 10, input_shape: tuple[int, ...] = (3, 32, 32), **knobs
) -> tuple[int, int]:
    """Parameters and MACs per image of a family or variant, without allocating its weights.

    The model is built on the meta device, so even large models cost no memory and no
    initialisation time; pretrained weights are not loaded (they do not change either number).
    Useful for constraints such as ``max_params`` checked before a trial trains.

    Args:
        name: a family or variant name.
        num_classes: outputs of the head.
        input_shape: one image's shape, channels first.
        **knobs: family knobs (override a variant's).

    Returns:
        ``(param_count, macs)``.

    Raises:
        ValueError: unknown model name or knob.
    """
    family = variants()[name][0] if name in variants() else name
    if family in families():
        knob_names = {f.name for f in dataclasses.fields(families()[family].config_cls)}
        if "pretrained" in knob_names:
            knobs["pretrained"] = False
    with torch.device("meta"):
        model = create_model(name, num_classes, **knobs)
    return count_params(model), count_macs(model, input_shape)
