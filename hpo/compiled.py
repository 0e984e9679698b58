"""torch.compile, once per architecture and process.

Compiling a model costs seconds to minutes; the trials of a study often share an architecture
and differ only in trainer options. So compiled modules are cached by an architecture key (classes,
knobs, tensor shapes, device, memory format and autocast dtype), and a trial of a cached
architecture loads its fresh weights into the cached module instead of compiling anew.
"""

from __future__ import annotations

import copy
import hashlib
import os
from collections import OrderedDict
from typing import Callable

import torch
from torch import nn

_COMPILED: "OrderedDict[str, tuple[nn.Module, Callable]]" = OrderedDict()
_COMPILE_CACHE_SIZE = 4  # architectures kept compiled per process (each holds one model copy)
# torch.compile backend; HPO_COMPILE_BACKEND=aot_eager (or eager) isolates a compiler bug from a model bug.
COMPILE_BACKEND_ENV = "HPO_COMPILE_BACKEND"


def _architecture_key(model: nn.Module, extra: tuple) -> str:
    """Equal for models whose compiled code is interchangeable: same classes, knobs and tensor shapes."""
    parts = [repr(model), repr(extra), repr(getattr(model, "mode", None))]
    for name, module in model.named_modules():
        knobs = sorted(
            (k, v) for k, v in vars(module).items()
            if not k.startswith("_") and k != "training" and isinstance(v, (int, float, str, bool, tuple))
        )
        parts.append(f"{name}:{type(module).__module__}.{type(module).__qualname__}:{knobs!r}")
    for name, tensor in model.state_dict().items():
        parts.append(f"{name}:{tuple(tensor.shape)}:{tensor.dtype}")
    parts.extend(f"{name}:{p.requires_grad}" for name, p in model.named_parameters())
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def compiled_module(model: nn.Module, extra: tuple) -> tuple[nn.Module, Callable]:
    """A module to train, holding ``model``'s weights, and its compiled forward, reused across trials.

    Args:
        model: the caller's model; its weights are copied in, and it is never compiled itself.
        extra: what else the compiled code depends on (device, memory format, autocast dtype).

    Returns:
        ``(module, forward)``: train ``module``'s parameters by calling ``forward``; copy its
        weights back to ``model`` afterwards.
    """
    backend = os.environ.get(COMPILE_BACKEND_ENV, "").strip() or "inductor"
    key = _architecture_key(model, (*extra, backend))
    if key in _COMPILED:
        module, forward = _COMPILED[key]
        _COMPILED.move_to_end(key)
    else:
        # A private copy: the caller keeps its model object, and a later trial's weights loaded
        # into the cached copy never overwrite an earlier trial's model.
        module = copy.deepcopy(model)
        forward = torch.compile(module, backend=backend)
        _COMPILED[key] = (module, forward)
        while len(_COMPILED) > _COMPILE_CACHE_SIZE:
            _COMPILED.popitem(last=False)
    module.load_state_dict(model.state_dict())
    return module, forward
