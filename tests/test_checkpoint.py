"""Checkpoints: the released layout, prefixes, unsafe and unreadable files, mismatch advice, BSL-1K init."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from signspot.checkpoint import (
    CheckpointError,
    infer_model_config,
    load_bsl1k_backbone,
    load_checkpoint,
    load_model_weights,
)
from signspot.models import InceptionI3d, build_model
from tests.hs_i3d_weights import manifest_entries
from tests.hs_i3d_weights import tiny_model as _tiny

# -- checkpoints ------------------------------------------------------------------------


@dataclasses.dataclass
class _TrainerState:
    epoch: int


def _released_layout(model: torch.nn.Module) -> dict:
    """Checkpoint dict shaped like the original trainer's."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-4, weight_decay=0.0)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=1000, eta_min=3e-5)
    out = model(torch.randn(2, 8, 3, 32, 32))
    sum(o.sum() for o in out.values()).backward()
    optimizer.step()
    scheduler.step()
    return {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "trainer": {"epoch": 155, "iteration": 48825, "best_f1": np.float64(0.5873), "fold": "3"},
        "scheduler": scheduler.state_dict(),
    }


def test_released_layout_checkpoint_loads_strictly(tmp_path):
    source = _tiny(seed=1)
    path = tmp_path / "best_checkpoint_155_0.5873.pt"
    torch.save(_released_layout(source), path)

    checkpoint = load_checkpoint(path)
    assert set(checkpoint) == {"model", "optimizer", "trainer", "scheduler"}
    assert checkpoint["trainer"]["epoch"] == 155
    target = _tiny(seed=2)
    assert load_model_weights(target, checkpoint, source=str(path)) == len(source.state_dict())
    for key, value in source.state_dict().items():
        assert torch.equal(target.state_dict()[key], value), key
    assert infer_model_config(checkpoint["model"]) == {"num_classes": 60, "width": 0.25}


@pytest.mark.parametrize("prefix", ["module.", "_orig_mod.", "_orig_mod.module."])
def test_wrapper_prefixes_are_stripped(prefix):
    source, target = _tiny(seed=1), _tiny(seed=2)
    state = {prefix + k: v for k, v in source.state_dict().items()}
    load_model_weights(target, {"model": state})
    key = "head_all.time_lin.weight"
    assert torch.equal(target.state_dict()[key], source.state_dict()[key])


def test_unsafe_objects_are_refused(tmp_path):
    path = tmp_path / "pickled_object.pt"
    torch.save({"model": {}, "trainer": _TrainerState(epoch=3), "best": np.float64(0.5)}, path)
    with pytest.raises(CheckpointError, match=r"types \['[\w.]*_TrainerState'\]"):
        load_checkpoint(path)


def test_unreadable_checkpoint_is_named(tmp_path):
    path = tmp_path / "broken.pt"
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="broken.pt"):
        load_checkpoint(path)
    with pytest.raises(FileNotFoundError, match="absent.pt"):
        load_checkpoint(tmp_path / "absent.pt")


def test_error_for_other_num_classes_names_keys_and_setting():
    checkpoint = {"model": _tiny(num_classes=10).state_dict()}
    with pytest.raises(CheckpointError) as info:
        load_model_weights(_tiny(num_classes=60), checkpoint, source="ten.pt")
    message = str(info.value)
    assert "ten.pt" in message
    assert "num_classes=10" in message
    assert "head_4.time_lin.weight: checkpoint (11, 256) vs model (61, 256)" in message
    assert "width" not in message.split("\n")[1]


def test_error_for_other_width_says_which_variant(fixture_weights):
    with pytest.raises(CheckpointError) as info:
        load_model_weights(_tiny(), {"model": fixture_weights}, source="released.pt")
    message = str(info.value)
    assert "width 1.0" in message and "'hs_i3d'" in message
    assert "Conv3d_1a_7x7.conv3d.weight" in message
    half = build_model("hs_i3d", width=0.5).state_dict()
    with pytest.raises(CheckpointError, match=r"width=0\.5"):
        load_model_weights(_tiny(), half)


def test_error_for_checkpoint_without_model_entry():
    with pytest.raises(CheckpointError) as info:
        load_model_weights(_tiny(), {"state_dict": {}, "epoch": 3, "arch": "i3d"}, source="x.pth.tar")
    message = str(info.value)
    assert "no 'model' entry" in message
    assert "['arch', 'epoch', 'state_dict']" in message
    assert "load_bsl1k_backbone" in message


# -- BSL-1K backbone initialisation --------------------------------------------------


def _bsl1k_file(tmp_path, drop: str | None = None, reshape: str | None = None):
    """A checkpoint in the BSL-1K layout: {"state_dict": {"module." + key: tensor}}."""
    torch.manual_seed(5)
    i3d = InceptionI3d(num_classes=2000)  # the WLASL classifier is skipped on load
    for tensor in i3d.state_dict().values():
        if tensor.is_floating_point():
            tensor.uniform_(-1, 1)
    state = {f"module.{k}": v for k, v in i3d.state_dict().items() if k != drop}
    if reshape is not None:
        state[f"module.{reshape}"] = torch.zeros(3, 3)
    path = tmp_path / "model_bsl1k_wlasl.pth.tar"
    torch.save({"state_dict": state, "epoch": 80, "best_acc": 0.4}, path)
    return path, i3d.state_dict()


def test_bsl1k_backbone_init_loads_every_backbone_tensor(tmp_path, fixture_weights):
    path, source = _bsl1k_file(tmp_path)
    model = build_model("hs_i3d")
    model.load_state_dict(fixture_weights)
    count = load_bsl1k_backbone(model, path)
    backbone_keys = [
        e["key"] for e in manifest_entries()
        if e["key"].startswith(("backbone_model.Conv3d_", "backbone_model.Mixed_"))
    ]
    assert count == len(backbone_keys) > 300
    state = model.state_dict()
    for key in backbone_keys:
        assert torch.equal(state[key], source[key.removeprefix("backbone_model.")]), key
    for key in ("backbone_model.logits.conv3d.weight", "backbone_model.conv_8.weight", "head_all.time_lin.bias"):
        assert torch.equal(state[key], fixture_weights[key]), key


@pytest.mark.parametrize(
    ("drop", "reshape", "pattern"),
    [
        ("Mixed_4e.b2b.bn.running_var", None, r"1 backbone tensors missing:\s+Mixed_4e\.b2b\.bn\.running_var"),
        (None, "Conv3d_2c_3x3.conv3d.weight", r"Conv3d_2c_3x3\.conv3d\.weight: checkpoint \(3, 3\)"),
    ],
)
def test_bsl1k_backbone_init_fails_loudly(tmp_path, drop, reshape, pattern):
    path, _ = _bsl1k_file(tmp_path, drop=drop, reshape=reshape)
    model = build_model("hs_i3d")
    before = model.state_dict()["backbone_model.Mixed_5c.b0.conv3d.weight"].clone()
    with pytest.raises(CheckpointError, match=pattern):
        load_bsl1k_backbone(model, path)
    assert torch.equal(model.state_dict()["backbone_model.Mixed_5c.b0.conv3d.weight"], before)


def test_bsl1k_backbone_init_refuses_other_width(tmp_path):
    path, _ = _bsl1k_file(tmp_path)
    with pytest.raises(CheckpointError, match="need width 1.0"):
        load_bsl1k_backbone(_tiny(), path)


def test_bsl1k_without_state_dict_entry(tmp_path):
    path = tmp_path / "other.pth.tar"
    torch.save({"model": {}}, path)
    with pytest.raises(CheckpointError, match=r"no 'state_dict' entry.*\['model'\]"):
        load_bsl1k_backbone(_tiny(), path)
