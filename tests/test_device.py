"""Device selection and capabilities."""

from __future__ import annotations

import pytest
import torch

from hpo.device import available_cpu_count, device_name, resolve_device, set_cpu_threads, supports_bf16
from hpo.errors import DeviceError


def test_auto_picks_the_best_available():
    device = resolve_device("auto")
    if torch.cuda.is_available():
        assert device == torch.device("cuda", 0)
    elif torch.backends.mps.is_available():
        assert device.type == "mps"
    else:
        assert device == torch.device("cpu")


def test_cpu_and_torch_device_specs():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")


def test_missing_cuda_device_lists_the_present_ones():
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    with pytest.raises(DeviceError, match=rf"cuda:{count + 3} is not available: this machine has") as info:
        resolve_device(f"cuda:{count + 3}")
    if count:
        assert "cuda:0" in str(info.value)


def test_unknown_device_spec():
    with pytest.raises(DeviceError, match="unknown device 'tpu'"):
        resolve_device("tpu")


def test_cpu_name_and_bf16_flag_follow_cpuinfo():
    assert device_name("cpu").endswith(f"({available_cpu_count()} cores)")
    try:
        flags = set()
        for line in open("/proc/cpuinfo"):
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                break
    except OSError:
        pytest.skip("no /proc/cpuinfo")
    assert supports_bf16("cpu") == bool(flags & {"avx512_bf16", "amx_bf16"})


def test_set_cpu_threads():
    before = torch.get_num_threads()
    try:
        assert set_cpu_threads(1) == 1
        assert set_cpu_threads(None) == available_cpu_count()
        with pytest.raises(ValueError, match=">= 1"):
            set_cpu_threads(0)
    finally:
        torch.set_num_threads(before)
