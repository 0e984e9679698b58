"""The trainer on CPU: learning, determinism, resume, schedules, stops, checkpoints, transfer."""

from __future__ import annotations

import math
import os

import pytest
import torch
from torch import nn

from hpo.checkpoints import CheckpointError, load_checkpoint
from hpo.data import IMAGENET_MEAN, IMAGENET_STD, Dataset, Split
from hpo.faults import FaultPlan
from hpo.models import TransferNet, create_model
from hpo.train import (
    Diverged,
    TooSlow,
    TrainingStopped,
    TrainResult,
    eval_normalization,
    evaluate,
    seed_everything,
    train,
)
from hpo.train_config import TrainConfig
from hpo.trials import EpochMetrics

# Timing fields differ between identical runs; everything else must not.
TIMING = {"epoch_seconds", "images_per_second", "elapsed_seconds"}


@pytest.fixture(autouse=True)
def _one_thread():
    # CI machines have 2 cores shared with other jobs; oversubscribed intra-op threads spin-wait.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _split(n: int, seed: int) -> Split:
    """A learnable task: class c < 3 brightens channel c; class 3 brightens all channels a little."""
    gen = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 4
    images = torch.randint(0, 120, (n, 3, 32, 32), generator=gen)
    for c in range(3):
        images[labels == c, c] += 120
    images[labels == 3] += 60
    return Split(images.to(torch.uint8), labels)


@pytest.fixture(scope="module")
def data() -> Dataset:
    return Dataset(
        kind="synthetic",
        classes=["red", "green", "blue", "grey"],
        train=_split(64, 0),
        val=_split(32, 1),
        test=_split(32, 2),
        mean=(0.4, 0.4, 0.4),
        std=(0.25, 0.25, 0.25),
        fingerprint="synthetic-v1",
        indices={"train": list(range(64)), "val": list(range(32)), "test": list(range(32))},
    )


def _model(seed: int = 0, **knobs) -> nn.Module:
    seed_everything(seed)
    return create_model("cnn", num_classes=4, width=8, depth=2, batch_norm=True, **knobs)


def _config(**overrides) -> TrainConfig:
    values = dict(epochs=3, batch_size=16, lr=0.02, augment="crop+flip", seed=0)
    values.update(overrides)
    return TrainConfig(**values)


def _values(history: list[EpochMetrics]) -> list[dict]:
    return [{k: v for k, v in m.to_dict().items() if k not in TIMING} for m in history]


def test_learns_a_learnable_task(data):
    result = train(_model(), data, _config(optimizer="adam", lr=3e-3, epochs=3), device="cpu")
    assert isinstance(result, TrainResult)
    assert [m.epoch for m in result.history] == [1, 2, 3]
    assert result.val_accuracy > 0.5  # chance is 0.25
    assert result.history[-1].train_loss < result.history[0].train_loss
    assert result.best_val_accuracy == max(m.val_accuracy for m in result.history)
    assert result.train_seconds == pytest.approx(sum(m.epoch_seconds for m in result.history))
    assert result.epochs_run == 3 and result.param_count == sum(p.numel() for p in _model().parameters())
    assert result.peak_memory_bytes > 0 and result.device_name
    elapsed = [m.elapsed_seconds for m in result.history]
    assert elapsed == sorted(elapsed) and all(m.images_per_second > 0 for m in result.history)


def test_same_config_and_seed_give_identical_histories(data):
    config = _config(augment="crop+flip+cutout")
    first = train(_model(), data, config, device="cpu")
    second = train(_model(), data, config, device="cpu")
    assert _values(first.history) == _values(second.history)
    other_seed = train(_model(), data, _config(augment="crop+flip+cutout", seed=1), device="cpu")
    assert _values(other_seed.history) != _values(first.history)


class _Interrupt(Exception):
    pass


@pytest.mark.parametrize("schedule", ["cosine", "plateau", "onecycle"])
def test_resume_gives_the_uninterrupted_history(data, tmp_path, schedule):
    config = _config(schedule=schedule, warmup_epochs=0.5, augment="crop+flip+cutout", plateau_patience=0)
    straight = train(_model(dropout=0.2), data, config, device="cpu")

    def stop_after_first(metrics: EpochMetrics) -> None:
        if metrics.epoch == 1:
            raise _Interrupt()

    checkpoint = tmp_path / "trial.pt"
    with pytest.raises(_Interrupt):
        train(_model(dropout=0.2), data, config, device="cpu", checkpoint_path=checkpoint, on_epoch=stop_after_first)
    # A fresh model with other weights and a disturbed global RNG: everything must come from the checkpoint.
    torch.manual_seed(1234)
    resumed = train(_model(seed=99, dropout=0.2), data, config, device="cpu", resume_from=checkpoint)
    assert _values(resumed.history) == _values(straight.history)
    assert resumed.history[1].elapsed_seconds >= resumed.history[0].elapsed_seconds


def _expected_factor(schedule: str, step: int, total: int, warmup: int, milestones: list[int]) -> float:
    if step < warmup:
        return 0.1 + 0.9 * step / warmup
    if schedule == "cosine":
        return 0.5 * (1 + math.cos(math.pi * (step - warmup) / (total - warmup)))
    if schedule == "step":
        return 0.1 ** sum(step >= m for m in milestones)
    return 1.0


@pytest.mark.parametrize("optimizer", ["sgd", "adam", "adamw"])
@pytest.mark.parametrize("schedule", ["constant", "step", "plateau", "cosine", "onecycle"])
def test_every_optimizer_and_schedule_runs_and_lr_follows_the_schedule(data, optimizer, schedule):
    lr = 0.01
    config = _config(optimizer=optimizer, schedule=schedule, lr=lr, epochs=4, warmup_epochs=1.0,
                     milestones=(0.5, 0.75), plateau_patience=0, augment="none")
    result = train(_model(), data, config, device="cpu")
    steps = 64 // 16
    total = 4 * steps
    last_steps = [e * steps - 1 for e in range(1, 5)]  # the lr reported is the epoch's last step's
    lrs = [m.lr for m in result.history]
    if schedule == "onecycle":
        probe = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=lr)
        reference = torch.optim.lr_scheduler.OneCycleLR(probe, max_lr=lr, total_steps=total, pct_start=0.25,
                                                        cycle_momentum=False)
        expected = []
        for step in range(total):
            if step in last_steps:
                expected.append(probe.param_groups[0]["lr"])
            probe.step()
            reference.step()
    elif schedule == "plateau":
        # torch's ReduceLROnPlateau fed the same validation accuracies is the reference.
        probe = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0)
        reference = torch.optim.lr_scheduler.ReduceLROnPlateau(probe, mode="max", factor=0.1, patience=0)
        expected = []
        for m, step in zip(result.history, last_steps):
            scale = probe.param_groups[0]["lr"]
            expected.append(lr * scale * _expected_factor("constant", step, total, steps, []))
            reference.step(m.val_accuracy)
    else:
        expected = [lr * _expected_factor(schedule, s, total, steps, [8, 12]) for s in last_steps]
    assert lrs == pytest.approx(expected, rel=1e-9)
    assert all(math.isfinite(m.train_loss) for m in result.history)


def test_finetune_transfer_uses_a_smaller_backbone_lr(data, tmp_path):
    seed_everything(0)
    model = TransferNet("mobilenet_v3_small", num_classes=4, mode="finetune", input_size=32, pretrained=False)
    config = _config(epochs=1, schedule="constant", lr=0.01, backbone_lr_mult=0.1, augment="none")
    train(model, data, config, device="cpu", checkpoint_path=tmp_path / "ft.pt")
    groups = load_checkpoint(tmp_path / "ft.pt")["optimizer"]["param_groups"]
    assert [g["lr"] for g in groups] == pytest.approx([0.01, 0.001])
    head_params = len(list(model.head.parameters()))
    assert len(groups[0]["params"]) == head_params
    assert len(groups[1]["params"]) == len(list(model.backbone.parameters()))


def test_frozen_transfer_trains_the_head_on_cached_features(data, tmp_path):
    cache = tmp_path / "features"

    def frozen() -> TransferNet:
        seed_everything(0)
        return TransferNet("resnet18", num_classes=4, mode="frozen", input_size=32, pretrained=False)

    model = frozen()
    backbone_before = {k: v.clone() for k, v in model.backbone.state_dict().items()}
    head_before = model.head.weight.detach().clone()
    config = _config(epochs=2, optimizer="adam", lr=1e-2)
    first = train(model, data, config, device="cpu", feature_cache_dir=cache)
    files = list(cache.iterdir())
    assert len(files) == 1 and files[0].suffix == ".pt"
    assert all(torch.equal(v, backbone_before[k]) for k, v in model.backbone.state_dict().items())
    assert not torch.equal(model.head.weight, head_before)
    # The full forward pass (as `hpo evaluate` runs it) agrees with the cached-feature validation.
    mean, std = eval_normalization(model, data)
    assert (tuple(mean), tuple(std)) == (IMAGENET_MEAN, IMAGENET_STD)
    loss, accuracy = evaluate(model, data.val, device="cpu", mean=mean, std=std)
    assert accuracy == pytest.approx(first.val_accuracy) and loss == pytest.approx(first.val_loss, rel=1e-4)
    stamp = files[0].stat().st_mtime_ns
    second = train(frozen(), data, config, device="cpu", feature_cache_dir=cache)
    assert files[0].stat().st_mtime_ns == stamp  # reused, not rewritten
    assert _values(second.history) == _values(first.history)
    # Features of unaugmented images: the head's result does not depend on the augment level.
    no_augment = train(frozen(), data, _config(epochs=2, optimizer="adam", lr=1e-2, augment="none"), device="cpu")
    assert _values(no_augment.history) == _values(first.history)


def test_nan_seam_raises_diverged_with_the_good_epochs(data, monkeypatch):
    monkeypatch.setenv("HPO_FAULT_NAN_AT_EPOCH", "2")
    seen = []
    with pytest.raises(Diverged) as info:
        train(_model(), data, _config(), device="cpu", on_epoch=seen.append, faults=FaultPlan.from_env())
    assert info.value.reason == "diverged" and isinstance(info.value, TrainingStopped)
    assert [m.epoch for m in info.value.history] == [1] and info.value.epoch == 2
    assert "epoch 2" in info.value.message
    assert [m.epoch for m in seen] == [1]


def test_oom_seam_raises_out_of_memory(data, monkeypatch):
    monkeypatch.setenv("HPO_FAULT_OOM_AT_EPOCH", "2")
    seen = []
    with pytest.raises(torch.OutOfMemoryError, match="simulated"):
        train(_model(), data, _config(), device="cpu", on_epoch=seen.append, faults=FaultPlan.from_env())
    assert [m.epoch for m in seen] == [1]


def test_the_trainer_reads_no_fault_variables_itself(data, monkeypatch):
    # Faults are read once at the edge (a worker's start, `hpo train`); without a plan, none are injected.
    monkeypatch.setenv("HPO_FAULT_NAN_AT_EPOCH", "1")
    monkeypatch.setenv("HPO_FAULT_OOM_AT_EPOCH", "1")
    result = train(_model(), data, _config(epochs=1), device="cpu")
    assert [m.epoch for m in result.history] == [1] and math.isfinite(result.train_loss)


def test_fault_plan_reads_the_environment_once_and_names_a_bad_value(monkeypatch):
    monkeypatch.setenv("HPO_FAULT_OOM_AT_EPOCH", "3")
    monkeypatch.setenv("HPO_FAULT_SLEEP_PER_EPOCH", "0.5")
    monkeypatch.delenv("HPO_FAULT_NAN_AT_EPOCH", raising=False)
    assert FaultPlan.from_env() == FaultPlan(oom_at_epoch=3, nan_at_epoch=None, sleep_per_epoch=0.5)
    assert FaultPlan.from_env({}) == FaultPlan()
    with pytest.raises(ValueError, match=r"HPO_FAULT_NAN_AT_EPOCH must be an epoch number \(got 'two'\)"):
        FaultPlan.from_env({"HPO_FAULT_NAN_AT_EPOCH": "two"})


def test_too_slow_after_the_callback_and_checkpoint(data, tmp_path):
    seen = []
    checkpoint = tmp_path / "slow.pt"
    with pytest.raises(TooSlow) as info:
        train(_model(), data, _config(max_epoch_seconds=1e-9), device="cpu", on_epoch=seen.append,
              checkpoint_path=checkpoint)
    assert info.value.reason == "too_slow"
    assert [m.epoch for m in seen] == [1] and [m.epoch for m in info.value.history] == [1]
    assert load_checkpoint(checkpoint)["epoch"] == 1


def test_callback_gets_every_epoch_and_its_exception_propagates(data):
    seen = []
    train(_model(), data, _config(), device="cpu", on_epoch=seen.append)
    assert [m.epoch for m in seen] == [1, 2, 3] and all(isinstance(m, EpochMetrics) for m in seen)

    class Pruned(Exception):
        pass

    def prune(metrics: EpochMetrics) -> None:
        raise Pruned(metrics.epoch)

    with pytest.raises(Pruned) as info:
        train(_model(), data, _config(), device="cpu", on_epoch=prune)
    assert info.value.args == (1,)


def test_checkpoint_is_atomic_and_loads_with_weights_only(data, tmp_path):
    checkpoint = tmp_path / "ckpt" / "trial.pt"
    result = train(_model(), data, _config(), device="cpu", checkpoint_path=checkpoint)
    state = torch.load(checkpoint, weights_only=True)
    assert state["epoch"] == 3
    assert state["history"] == [m.to_dict() for m in result.history]
    assert state["config"]["schedule"] == "cosine"
    assert {"torch", "data"} <= state["rng"].keys() and isinstance(state["rng"]["data"], torch.Tensor)
    assert os.listdir(checkpoint.parent) == ["trial.pt"]  # no temporary file left behind
    model = _model(seed=5)
    model.load_state_dict(state["model"])
    mean, std = eval_normalization(model, data)
    assert (mean, std) == (data.mean, data.std)
    loss, accuracy = evaluate(model, data.val, device="cpu", mean=mean, std=std, batch_size=8)
    assert accuracy == pytest.approx(result.val_accuracy)
    assert loss == pytest.approx(result.val_loss, rel=1e-5)


def test_checkpoint_write_failure_raises_checkpoint_error(data, tmp_path):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the checkpoint folder should be")
    with pytest.raises(CheckpointError) as info:
        train(_model(), data, _config(epochs=1), device="cpu", checkpoint_path=blocker / "trial.pt")
    assert info.value.reason == "checkpoint" and [m.epoch for m in info.value.history] == [1]
    assert "cannot write checkpoint" in str(info.value)


@pytest.mark.parametrize("damage", ["garbage", "truncated", "missing", "foreign"])
def test_unreadable_checkpoint_raises_checkpoint_error(data, tmp_path, damage):
    path = tmp_path / "trial.pt"
    if damage == "garbage":
        path.write_bytes(b"\x00not a checkpoint" * 10)
    elif damage == "truncated":
        train(_model(), data, _config(epochs=1), device="cpu", checkpoint_path=path)
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif damage == "foreign":
        torch.save({"weights": torch.zeros(2)}, path)
    with pytest.raises(CheckpointError):
        load_checkpoint(path)
    with pytest.raises(CheckpointError):
        train(_model(), data, _config(), device="cpu", resume_from=path)


def test_checkpoint_from_other_options_is_refused(data, tmp_path):
    path = tmp_path / "trial.pt"
    train(_model(), data, _config(epochs=1), device="cpu", checkpoint_path=path)
    with pytest.raises(CheckpointError, match="epochs"):
        train(_model(), data, _config(epochs=2), device="cpu", resume_from=path)


def test_grad_clip_changes_training(data):
    plain = train(_model(), data, _config(epochs=1), device="cpu")
    clipped = train(_model(), data, _config(epochs=1, grad_clip=1e-3), device="cpu")
    assert _values(clipped.history) != _values(plain.history)


def test_bf16_on_a_cpu_without_native_bf16_is_refused(data):
    from hpo.device import supports_bf16

    if supports_bf16("cpu"):
        pytest.skip("this CPU computes bf16 natively")
    with pytest.raises(ValueError, match="precision bf16"):
        train(_model(), data, _config(precision="bf16"), device="cpu")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("optimizer", "rmsprop"),
        ("schedule", "linear"),
        ("augment", "mixup"),
        ("lr", 0),
        ("lr", -1.0),
        ("batch_size", 0),
        ("epochs", 0),
        ("eval_batch_size", 0),
        ("momentum", 1.0),
        ("weight_decay", -1e-4),
        ("label_smoothing", 1.0),
        ("milestones", (0.75, 0.5)),
        ("milestones", (0.5, 1.5)),
        ("warmup_epochs", -1.0),
        ("precision", "fp16"),
        ("channels_last", "maybe"),
        ("grad_clip", -1.0),
        ("max_epoch_seconds", -1.0),
        ("plateau_patience", -1),
    ],
)
def test_validate_names_the_bad_field(field, value):
    with pytest.raises(ValueError, match=rf"\b{field}\b"):
        TrainConfig(**{field: value}).validate()


def test_config_round_trip_and_unknown_keys():
    config = TrainConfig(channels_last="false", milestones=(0.3, 0.6)).validate()
    assert config.channels_last is False
    assert TrainConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ValueError, match="'learning_rate'"):
        TrainConfig.from_dict({"learning_rate": 0.1})


def test_compiled_models_are_reused_by_trials_of_the_same_architecture(data, monkeypatch):
    from hpo import compiled as compile_cache

    # The eager backend exercises the compile cache without minutes of C++ compilation on CPU.
    monkeypatch.setenv("HPO_COMPILE_BACKEND", "eager")
    monkeypatch.setattr(compile_cache, "_COMPILED", type(compile_cache._COMPILED)())
    eager = train(_model(), data, _config(epochs=2), device="cpu")
    models = [_model(), _model()]
    before = models[0].classifier.weight.detach().clone()
    results = [train(m, data, _config(epochs=2, compile=True), device="cpu") for m in models]
    assert len(compile_cache._COMPILED) == 1  # the second trial reused the first one's compiled model
    for result, model in zip(results, models):
        for compiled_epoch, eager_epoch in zip(_values(result.history), _values(eager.history), strict=True):
            assert compiled_epoch == pytest.approx(eager_epoch)
        assert not torch.equal(model.classifier.weight, before)  # trained weights came back to the caller
    train(_model(dropout=0.5), data, _config(epochs=1, compile=True), device="cpu")
    assert len(compile_cache._COMPILED) == 2  # another architecture compiles anew
