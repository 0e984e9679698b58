"""bench/gpu.py's plumbing on CPU: stages, --only, --dry-run, the JSON and markdown summary, skips without CUDA."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH_DIR = Path(__file__).resolve().parents[1] / "bench"
sys.path.insert(0, str(BENCH_DIR))

import gpu  # noqa: E402
import scaling  # noqa: E402


def test_dry_run_records_every_stage_and_the_commands_it_would_run(tmp_path):
    assert gpu.main([str(tmp_path), "--dry-run"]) == 0
    summary = json.loads((tmp_path / "gpu.json").read_text())
    assert list(summary["stages"]) == list(gpu.STAGES)
    assert {s["status"] for s in summary["stages"].values()} == {"dry-run"}
    commands = {name: " ".join(c["command"] for c in s["commands"]) for name, s in summary["stages"].items()}
    assert "-m cuda tests/cuda" in commands["cuda-tests"]
    assert "bench/trainer.py" in commands["trainer"] and "--model resnet18 --set width=64" in commands["trainer"]
    assert "--study densenet-mini --per-device 1,2,4,8,auto" in commands["scaling"]
    assert "hpo run --study densenet-mini --n-trials 30" in commands["study"]
    assert "--no-deps" in commands["setup"]
    markdown = (tmp_path / "gpu.md").read_text()
    assert all(f"## {stage}: dry-run" in markdown for stage in gpu.STAGES)


def test_only_reruns_the_named_stages_and_keeps_the_others(tmp_path):
    gpu.main([str(tmp_path), "--dry-run"])
    assert gpu.main([str(tmp_path), "--only", "env,cuda-tests"]) == 0  # real this time, on a machine without CUDA
    stages = json.loads((tmp_path / "gpu.json").read_text())["stages"]
    assert stages["env"]["status"] == "ok" and "torch" in stages["env"]
    expected = "skipped: no CUDA device" if not stages["env"]["cuda_available"] else "ok"
    assert stages["cuda-tests"]["status"] == expected
    assert stages["scaling"]["status"] == "dry-run"  # not rerun, kept
    assert "## env: ok" in (tmp_path / "gpu.md").read_text()


def test_unknown_stage_is_refused_with_the_list(tmp_path):
    done = subprocess.run([sys.executable, str(BENCH_DIR / "gpu.py"), str(tmp_path), "--only", "warp"],
                          capture_output=True, text=True)
    assert done.returncode == 2 and "unknown stage warp; stages are setup, env" in done.stderr


def test_best_packing_and_the_projection_to_100_trials():
    runs = [{"setting": "--per-device 1", "trials_per_hour": 100.0}, {"setting": "--per-device auto", "trials_per_hour": 450.0},
            {"setting": "--per-device 8", "trials_per_hour": 300.0}]
    assert gpu.best_packing(runs) == "auto"
    assert gpu.best_packing([{"setting": "--per-device 2", "trials_per_hour": 0.0}]) == "1"
    # 30 trials in 70 s after a 10 s start-up: 2 s a trial, so 100 take 10 + 200 s.
    assert gpu.projection(30, 30, 70.0, 10.0) == pytest.approx(210.0)
    assert gpu.projection(30, 0, 70.0, 10.0) is None


def test_scaling_takes_auto_per_device_only():
    gpu_args = scaling.parse_args(["--device", "cuda:0", "--per-device", "1,8,auto", "--study", "densenet-mini"])
    assert scaling.settings_of(gpu_args) == [("--per-device", 1), ("--per-device", 8), ("--per-device", "auto")]
    with pytest.raises(SystemExit, match="at least 1"):
        scaling.settings_of(scaling.parse_args(["--workers", "auto"]))
