"""Transfer learning: modes, resizing, loading ImageNet weights from torch.hub's cache, the frozen feature cache.

The tests write the checkpoint file themselves (a randomly initialised torchvision model saved
where torch.hub looks for it), so they never reach the network."""

from __future__ import annotations

import contextlib
import socket
from types import SimpleNamespace

import pytest
import torch
import torchvision
from torch import nn

from hpo.data import IMAGENET_MEAN, IMAGENET_STD, Split
from hpo.errors import WeightsNotFoundError
from hpo.models import TransferNet, create_model
from hpo.models.transfer import _server_reachable, weights_path
from hpo.models.transfer_features import frozen_features, head_forward, is_transfer


def _write_checkpoint(torch_home, filename: str, model: nn.Module) -> dict:
    checkpoints = torch_home / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True, exist_ok=True)
    state = model.state_dict()
    torch.save(state, checkpoints / filename)
    return state


def test_weights_path_follows_torch_home(torch_home):
    assert weights_path("resnet18") == torch_home / "hub" / "checkpoints" / "resnet18-f37072fd.pth"


def test_pretrained_weights_load_from_torch_home(torch_home):
    torch.manual_seed(1)
    saved = _write_checkpoint(torch_home, "resnet18-f37072fd.pth", torchvision.models.resnet18(weights=None))
    model = create_model("resnet18_pretrained", input_size=32)
    loaded = model.backbone.state_dict()
    assert set(loaded) == {k for k in saved if not k.startswith("fc.")}
    assert all(torch.equal(loaded[k], saved[k]) for k in loaded)
    assert model.feature_dim == 512 and model.head.in_features == 512


def test_missing_weights_name_the_expected_file(torch_home):
    expected = torch_home / "hub" / "checkpoints" / "resnet18-f37072fd.pth"
    with pytest.raises(WeightsNotFoundError) as info:
        create_model("resnet18_frozen", input_size=32)
    message = str(info.value)
    assert str(expected) in message
    assert "TORCH_HOME" in message and "HPO_OFFLINE" in message
    assert not expected.exists()


def test_scratch_mode_never_needs_weights(torch_home):
    # torch_home is empty and offline: any attempt to load weights would raise.
    assert isinstance(create_model("resnet18_scratch", input_size=32), TransferNet)
    model = create_model("transfer", mode="scratch", pretrained=True, input_size=32)  # pretrained is ignored
    assert all(p.requires_grad for p in model.parameters())


def test_corrupt_checkpoint_is_reported(torch_home):
    checkpoints = torch_home / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True)
    (checkpoints / "resnet18-f37072fd.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsNotFoundError, match="is not a readable resnet18 checkpoint"):
        create_model("resnet18_pretrained", input_size=32)


def test_checkpoint_of_another_architecture_is_reported(torch_home):
    _write_checkpoint(torch_home, "resnet18-f37072fd.pth", torchvision.models.resnet34(weights=None))
    with pytest.raises(WeightsNotFoundError, match="does not hold resnet18 weights"):
        create_model("resnet18_pretrained", input_size=32)


def test_frozen_mode_trains_only_the_head(torch_home):
    model = create_model("transfer", mode="frozen", pretrained=False, input_size=32, dropout=0.2)
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    assert trainable == {"head.weight", "head.bias"}
    model.train()
    assert model.training and model.head.training
    assert not any(m.training for m in model.backbone.modules())
    running_mean = model.backbone.bn1.running_mean.clone()
    loss = model(torch.randn(4, 3, 32, 32)).sum()
    loss.backward()
    assert torch.equal(model.backbone.bn1.running_mean, running_mean)  # ImageNet statistics kept
    assert model.head.weight.grad is not None
    assert all(p.grad is None for p in model.backbone.parameters())
    model.eval()
    assert not model.training and not model.head.training


def test_finetune_mode_trains_everything(torch_home):
    model = create_model("transfer", mode="finetune", pretrained=False, input_size=32)
    assert all(p.requires_grad for p in model.parameters())
    model.train()
    assert model.backbone.training


def test_features_resize_to_input_size(torch_home):
    model = create_model("transfer", pretrained=False, input_size=64)
    seen = []
    model.backbone.conv1.register_forward_hook(lambda module, inputs, output: seen.append(inputs[0].shape))
    features = model.features(torch.randn(2, 3, 32, 32))
    assert features.shape == (2, model.feature_dim)
    assert seen == [torch.Size([2, 3, 64, 64])]
    assert TransferNet.normalization == "imagenet" and model.normalization == "imagenet"
    assert (model.backbone_name, model.mode, model.input_size) == ("resnet18", "finetune", 64)


def test_mobilenet_backbone_keeps_its_hidden_layer(torch_home):
    model = create_model("transfer", backbone="mobilenet_v3_small", pretrained=False, input_size=32, num_classes=5)
    assert model.feature_dim == 1024
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 5)


def test_server_reachability_check_uses_a_real_socket(monkeypatch):
    for proxy in ("http_proxy", "HTTP_PROXY"):  # a proxy would make the direct check moot
        monkeypatch.delenv(proxy, raising=False)
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        port = server.getsockname()[1]
        assert _server_reachable(f"http://127.0.0.1:{port}/weights.pth")
    # The port is closed now: connection refused, reported at once.
    assert not _server_reachable(f"http://127.0.0.1:{port}/weights.pth")


def test_frozen_features_are_the_backbone_output_and_cached_per_key(torch_home, tmp_path):
    torch.manual_seed(0)
    model = create_model("transfer", mode="frozen", pretrained=False, input_size=32, dropout=0.0)
    assert is_transfer(model, "frozen") and not is_transfer(model, "finetune") and not is_transfer(nn.Linear(2, 2), "frozen")
    images = torch.randint(0, 256, (6, 3, 32, 32), dtype=torch.uint8)
    split = Split(images, torch.zeros(6, dtype=torch.long))
    data = SimpleNamespace(train=split, val=split, fingerprint="fp-1")
    cache = tmp_path / "features"
    features = frozen_features(model, data, torch.device("cpu"), 4, contextlib.nullcontext, "None", cache)
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    with torch.no_grad():
        expected = model.features((images.float() / 255 - mean) / std)
    assert features["train"].shape == (6, model.feature_dim)
    assert torch.allclose(features["train"], expected, atol=1e-5)
    assert torch.allclose(head_forward(model)(features["val"]), model.head(expected), atol=1e-5)
    (cached,) = cache.iterdir()
    stamp = cached.stat().st_mtime_ns
    again = frozen_features(model, data, torch.device("cpu"), 4, contextlib.nullcontext, "None", cache)
    assert cached.stat().st_mtime_ns == stamp and torch.equal(again["train"], features["train"])  # read, not recomputed
    cached.write_bytes(b"torn")  # a damaged cache file is recomputed and rewritten
    assert torch.equal(frozen_features(model, data, torch.device("cpu"), 4, contextlib.nullcontext, "None", cache)["val"],
                       features["val"])
    data.fingerprint = "fp-2"  # other data: another cache file
    frozen_features(model, data, torch.device("cpu"), 4, contextlib.nullcontext, "None", cache)
    assert len(list(cache.iterdir())) == 2
