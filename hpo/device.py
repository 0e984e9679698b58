"""Device selection: which accelerator a trial runs on, its name, and what it supports.

``resolve_device`` turns a user's ``--devices`` entry (``auto``, ``cpu``, ``cuda:1``, ``mps``) into a
``torch.device`` and refuses devices this machine does not have, with the list of those it has.
"""

from __future__ import annotations

import os
import platform
import re
from functools import lru_cache

import torch

from hpo.errors import DeviceError

# /proc/cpuinfo flags that mean the CPU computes bf16 natively. Without them PyTorch emulates
# bf16 matmuls and convolutions, which is 8-30x slower than fp32 on the AVX2 machines we measured.
_NATIVE_BF16_CPU_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})


def _cuda_devices_phrase() -> str:
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if count == 0:
        return "this machine has no CUDA device"
    names = ", ".join(f"cuda:{i}" for i in range(count))
    plural = "device" if count == 1 else "devices"
    return f"this machine has {count} CUDA {plural} ({names})"


def resolve_device(spec: str | torch.device = "auto", flag: str = "--devices") -> torch.device:
    """The ``torch.device`` for a device spec, checked to exist on this machine.

    Args:
        spec: ``auto`` (first CUDA device, else Apple ``mps``, else ``cpu``), ``cpu``, ``mps``,
            ``cuda`` (= ``cuda:0``) or ``cuda:N``; a ``torch.device`` is checked the same way.
        flag: The option the spec came from, named in the fix (``--device`` for ``hpo train``).

    Returns:
        The device, with an explicit index for CUDA.

    Raises:
        DeviceError: the device is unknown or not present, naming the devices that are.
    """
    text = str(spec).strip().lower()
    if text == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", 0)
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if text == "cpu":
        return torch.device("cpu")
    if text == "mps":
        if not torch.backends.mps.is_available():
            raise DeviceError(
                "device mps is not available: this machine has no Apple GPU (Metal); "
                f"pass {flag} cpu or auto"
            )
        return torch.device("mps")
    match = re.fullmatch(r"cuda(?::(\d+))?", text)
    if match is None:
        raise DeviceError(f"{flag}: unknown device {str(spec)!r}; use auto, cpu, mps, cuda or cuda:N")
    index = int(match.group(1) or 0)
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if index >= count:
        hint = f"pass {flag} with one of them" if count else f"pass {flag} cpu"
        raise DeviceError(f"device cuda:{index} is not available: {_cuda_devices_phrase()}; {hint}")
    return torch.device("cuda", index)


@lru_cache(maxsize=1)
def _cpuinfo() -> dict[str, str]:
    """The first processor's fields of /proc/cpuinfo (empty where there is none, e.g. macOS)."""
    fields: dict[str, str] = {}
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as handle:
            for line in handle:
                if not line.strip():
                    if fields:
                        break
                    continue
                key, _, value = line.partition(":")
                fields.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    return fields


def device_name(device: str | torch.device) -> str:
    """A human-readable name for the device, stored with each trial's results.

    Args:
        device: a device or a spec accepted by ``resolve_device``.

    Returns:
        The GPU's name (e.g. ``NVIDIA H100 80GB HBM3``), or the CPU's model name and its usable core
        count (e.g. ``AMD EPYC (2 cores)``), or ``Apple MPS``.
    """
    device = resolve_device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    if device.type == "mps":
        return "Apple MPS"
    model = _cpuinfo().get("model name") or platform.processor() or platform.machine() or "CPU"
    return f"{model} ({available_cpu_count()} cores)"


def supports_bf16(device: str | torch.device) -> bool:
    """Whether bf16 autocast is fast on this device, not merely possible.

    Args:
        device: a device or a spec accepted by ``resolve_device``.

    Returns:
        True for CUDA devices with native bf16 (Ampere and later) and for CPUs advertising
        ``avx512_bf16`` or ``amx_bf16``; False otherwise, including MPS.
    """
    device = resolve_device(device)
    if device.type == "cuda":
        with torch.cuda.device(device):
            return bool(torch.cuda.is_bf16_supported())
    if device.type == "cpu":
        flags = set(_cpuinfo().get("flags", "").split())
        return bool(flags & _NATIVE_BF16_CPU_FLAGS)
    return False


def available_cpu_count() -> int:
    """CPU cores this process may run on (its affinity mask, which containers and taskset narrow)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not on Linux
        return max(1, os.cpu_count() or 1)


def set_cpu_threads(n: int | None = None) -> int:
    """Set PyTorch's intra-op thread count.

    Workers sharing a machine divide its cores among themselves, so the caller passes each worker's
    share; more threads than cores makes CPU training slower, not faster.

    Args:
        n: threads to use; None uses every core available to this process.

    Returns:
        The thread count now in effect.

    Raises:
        ValueError: ``n`` is below 1.
    """
    if n is not None and n < 1:
        raise ValueError(f"CPU thread count must be >= 1 (got {n})")
    threads = available_cpu_count() if n is None else int(n)
    torch.set_num_threads(threads)
    return torch.get_num_threads()


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work, so a clock read after it measures finished work."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()
