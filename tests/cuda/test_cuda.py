"""The GPU path, on a GPU: precision, memory format, checkpoints, peak memory, workers sharing a device,
out-of-memory, the compile path and ``--per-device auto``.

Run with ``python -m pytest -m cuda tests/cuda`` on a machine with a CUDA device (``bench/gpu.py``
does, as its ``cuda-tests`` stage); everywhere else these tests are skipped. The data is the small
fake CIFAR the tests write (``fake_cifar``); the models are tiny, so each test takes seconds, the
real processes' start-up included.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import optuna
import pytest
import torch
from optuna.trial import TrialState

from hpo.checkpoints import TrainerState, load_checkpoint
from hpo.data import DatasetConfig, load_dataset
from hpo.models import create_model
from hpo.train import seed_everything, train
from hpo.train_config import TrainConfig
from hpo.trials import StopReason, TrialRecord

pytestmark = [pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")]

HPO = [sys.executable, "-m", "hpo"]
TIMING = ("epoch_seconds", "images_per_second", "elapsed_seconds")  # differ between runs by nature


@pytest.fixture(scope="module")
def data(fake_cifar):
    return load_dataset(DatasetConfig(kind="minicifar", n_classes=4, R=1, train_size=0.75), str(fake_cifar), split_seed=0)


def _model(name: str = "cnn", **knobs):
    seed_everything(0)
    return create_model(name, num_classes=4, **knobs)


def _config(**options) -> TrainConfig:
    return TrainConfig.from_dict({"epochs": 2, "batch_size": 32, "augment": "none", "lr": 0.05, **options})


def _without_timing(history) -> list[dict]:
    return [{k: v for k, v in m.to_dict().items() if k not in TIMING} for m in history]


def _first_conv(model: torch.nn.Module) -> torch.nn.Conv2d:
    return next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d))


# ---------------------------------------------------------------------------------------------
# One trial: precision, memory format, peak memory
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("precision, dtype", [("bf16", torch.bfloat16), ("fp32", torch.float32), ("auto", torch.bfloat16)])
def test_a_trial_trains_in_bf16_and_fp32(data, precision, dtype):
    model = _model()
    seen = []
    _first_conv(model).register_forward_hook(lambda module, inputs, output: seen.append(output.dtype))
    result = train(model, data, _config(precision=precision), device="cuda:0")
    assert set(seen) == {dtype}
    assert all(torch.isfinite(torch.tensor([m.train_loss, m.val_loss])).all() for m in result.history)
    assert result.device_name == torch.cuda.get_device_name(0)


@pytest.mark.parametrize("channels_last", [True, False])
def test_channels_last_on_and_off(data, channels_last):
    model = _model()
    layouts = []

    def record(module, inputs, output):
        layouts.append((inputs[0].is_contiguous(memory_format=torch.channels_last),
                        module.weight.is_contiguous(memory_format=torch.channels_last)))

    _first_conv(model).register_forward_hook(record)
    result = train(model, data, _config(channels_last=channels_last), device="cuda:0")
    assert set(layouts) == {(channels_last, channels_last)}
    assert len(result.history) == 2


def test_peak_memory_is_recorded_and_grows_with_the_batch(data):
    small = train(_model(), data, _config(batch_size=16, eval_batch_size=16), device="cuda:0")
    large = train(_model(), data, _config(batch_size=64, eval_batch_size=64), device="cuda:0")
    total = torch.cuda.get_device_properties(0).total_memory
    assert 0 < small.peak_memory_bytes < large.peak_memory_bytes < total


# ---------------------------------------------------------------------------------------------
# Checkpoints: written on CUDA, resumed on CUDA (identical) and on the CPU
# ---------------------------------------------------------------------------------------------


class _Stop(Exception):
    pass


def _stop_after(epoch: int):
    def on_epoch(metrics):
        if metrics.epoch == epoch:
            raise _Stop
    return on_epoch


def test_a_checkpoint_written_on_cuda_resumes_on_cuda_with_identical_history(data, tmp_path, deterministic):
    config = _config(epochs=3, augment="crop+flip")
    whole = train(_model(), data, config, device="cuda:0")
    path = tmp_path / "run.pt"
    with pytest.raises(_Stop):
        train(_model(), data, config, device="cuda:0", checkpoint_path=path, on_epoch=_stop_after(2))
    state = TrainerState.from_dict(load_checkpoint(path))
    assert state.epoch == 2 and state.rng["cuda"] is not None  # the CUDA generator travels with it
    resumed = train(_model(), data, config, device="cuda:0", resume_from=path)
    assert _without_timing(resumed.history) == _without_timing(whole.history)


def test_a_checkpoint_written_on_cuda_resumes_on_the_cpu(data, tmp_path):
    config = _config(epochs=3)
    path = tmp_path / "run.pt"
    with pytest.raises(_Stop):
        train(_model(), data, config, device="cuda:0", checkpoint_path=path, on_epoch=_stop_after(2))
    written = TrainerState.from_dict(load_checkpoint(path)).epochs
    resumed = train(_model(), data, config, device="cpu", resume_from=path)
    assert [m.epoch for m in resumed.history] == [1, 2, 3]
    assert _without_timing(resumed.history[:2]) == _without_timing(written)
    assert torch.isfinite(torch.tensor(resumed.history[-1].val_loss))


# ---------------------------------------------------------------------------------------------
# The compile path
# ---------------------------------------------------------------------------------------------


def test_the_compile_path_trains_and_reuses_one_compiled_module_per_architecture(data):
    from hpo.compiled import compiled_module

    extra = ("cuda:0", True, str(torch.bfloat16))
    first_module, first_forward = compiled_module(_model().cuda(), extra)
    second_module, second_forward = compiled_module(_model().cuda(), extra)
    assert first_forward is second_forward and first_module is second_module
    eager = train(_model(), data, _config(), device="cuda:0")
    compiled = train(_model(), data, _config(compile=True), device="cuda:0")
    assert len(compiled.history) == 2
    assert torch.isfinite(torch.tensor([m.val_loss for m in compiled.history])).all()
    # Same weights, data and recipe: compiled and eager learn alike (bf16 rounding differs, not the model).
    assert abs(compiled.history[-1].val_accuracy - eager.history[-1].val_accuracy) <= 0.25


# ---------------------------------------------------------------------------------------------
# Workers sharing one device
# ---------------------------------------------------------------------------------------------

SPACE = """\
params:
  model: cnn
  cnn.channels: [8, 16]
  lr: {type: float, low: 1.0e-3, high: 0.1, log: true}
  optimizer: sgd
  batch_size: 32
  augment: flip
"""


def _study(folder: Path, name: str, n_trials: int, extra: str = "") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}-space.yaml").write_text(SPACE)
    path = folder / f"{name}.yaml"
    path.write_text(textwrap.dedent(f"""\
        name: {name}
        dataset: {{kind: minicifar, n_classes: 4, R: 1, train_size: 0.75}}
        space: {name}-space.yaml
        sampler: random
        pruner: none
        epochs: 2
        n_trials: {n_trials}
        seed: 0
        """) + extra)
    return path


def _trials(url: str, name: str) -> list[optuna.trial.FrozenTrial]:
    from hpo.storage import open_storage

    return optuna.load_study(study_name=name, storage=open_storage(url)).get_trials(deepcopy=False)


@pytest.mark.parametrize("per_device", [2, 4])
def test_workers_on_one_device_end_at_exactly_n(tmp_path, gpu_env, per_device):
    url = f"sqlite:///{tmp_path}/shared.db"
    done = subprocess.run(HPO + ["run", "--study", str(_study(tmp_path, "shared", 8)), "--storage", url,
                                 "--devices", "cuda:0", "--per-device", str(per_device), "--log-dir", str(tmp_path / "logs")],
                          env=gpu_env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    trials = _trials(url, "shared")
    assert sum(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials) == 8
    assert all(t.state != TrialState.RUNNING for t in trials)
    records = [TrialRecord.of(t) for t in trials if t.state == TrialState.COMPLETE]
    assert all(r.peak_memory_bytes and r.peak_memory_bytes > 0 for r in records)  # peak memory recorded per trial
    assert {r.device_name for r in records} == {torch.cuda.get_device_name(0)}


OOM_WORKER = """
import sys
import torch
from hpo.train import train
from hpo.workers import options_from_environment, run_worker

def trainer(model, data, config, **options):
    on_epoch = options["on_epoch"]
    def epoch_end(metrics):
        on_epoch(metrics)
        if config.lr == 0.0123:  # the marked trial asks for twice the device: a real CUDA out-of-memory
            torch.empty(2 * torch.cuda.get_device_properties(0).total_memory, dtype=torch.uint8, device="cuda:0")
    options["on_epoch"] = epoch_end
    return train(model, data, config, **options)

options, _ = options_from_environment()
print(run_worker(options, trainer=trainer))
"""


def test_one_trials_out_of_memory_fails_that_trial_only(tmp_path, gpu_env, fake_cifar):
    from hpo import workers
    from hpo.config import load_study
    from hpo.storage import open_storage
    from hpo.study import create_or_load

    config = load_study(_study(tmp_path, "oom", 6, extra="enqueue:\n  - {lr: 0.0123}\n"))
    url = f"sqlite:///{tmp_path}/oom.db"
    data = load_dataset(config.dataset, str(fake_cifar), split_seed=config.seed)
    create_or_load(config, open_storage(url), n_trials=None, dataset_fingerprint=data.fingerprint)
    script = tmp_path / "oom_worker.py"
    script.write_text(OOM_WORKER)
    procs = []
    for i in range(2):  # two neighbours on one device
        options = workers.WorkerOptions(study_name="oom", storage_url=url, device="cuda:0", data_dir=str(fake_cifar),
                                        artifacts=str(tmp_path / "artifacts"), worker_id=f"neighbour-{i}")
        env = {**gpu_env, **workers.worker_environment(options, tmp_path / f"worker-{i}.log")}
        procs.append(subprocess.Popen([sys.executable, str(script)], env=env, stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT, text=True))
    outputs = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    trials = _trials(url, "oom")
    # Two workers asking at once can create a trial past N: it ends FAIL `budget`, never trained (DECISIONS.md).
    failed = [t for t in trials if t.state == TrialState.FAIL and TrialRecord.of(t).stop_reason != StopReason.BUDGET]
    assert len(failed) == 1 and failed[0].params["lr"] == 0.0123
    assert TrialRecord.of(failed[0]).stop_reason == StopReason.OOM
    assert "out of memory on cuda:0" in TrialRecord.of(failed[0]).error
    assert sum(t.state == TrialState.COMPLETE for t in trials) == 6  # the neighbours' and the OOMed worker's next ones


# ---------------------------------------------------------------------------------------------
# --per-device auto on the real device memory
# ---------------------------------------------------------------------------------------------


def test_cuda_memory_seam_reads_the_device():
    from hpo.workers.packing import CudaMemory

    free, total = CudaMemory(torch.device("cuda", 0)).free_total()
    assert 0 < free <= total == torch.cuda.mem_get_info(0)[1]


def test_per_device_auto_packs_trials_on_one_gpu_and_ends_at_exactly_n(tmp_path, gpu_env):
    from hpo.workers.packing import Ledger, max_running

    url = f"sqlite:///{tmp_path}/auto.db"
    done = subprocess.run(HPO + ["run", "--study", str(_study(tmp_path, "auto", 10)), "--storage", url,
                                 "--devices", "cuda:0", "--per-device", "auto", "--workers", "4",
                                 "--log-dir", str(tmp_path / "logs")],
                          env=gpu_env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    trials = _trials(url, "auto")
    # Exactly N; a trial created past N by workers asking at once ends FAIL "budget", untrained.
    assert [t.state for t in trials if t.state != TrialState.FAIL] == [TrialState.COMPLETE] * 10
    assert all(TrialRecord.of(t).stop_reason is StopReason.BUDGET for t in trials if t.state == TrialState.FAIL)
    (folder,) = (tmp_path / "packing").iterdir()
    events = Ledger(folder).events()
    starts = [e for e in events if e["event"] == "start"]
    assert len(starts) == 10 and 1 <= max_running(events) <= 4
    assert all(0 < e["free"] <= e["total"] for e in starts)
    # The shape is fixed: once a trial has finished, the others start with its measured peak as their figure.
    assert any(e["expected"] for e in starts)
    print(json.dumps({"max_running": max_running(events), "starts": len(starts)}))
