"""HS-I3D: state-dict compatibility, numerical fixture, checkpoint loading, shapes, gradients."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from models import HEAD_NAMES, InceptionI3d, build_model, list_models
from signspot.checkpoint import (
    CheckpointError,
    infer_model_config,
    load_bsl1k_backbone,
    load_checkpoint,
    load_model_weights,
)
from tests.hs_i3d_weights import FIXTURE_DIR, fixture_state_dict, manifest_entries

TOLERANCE = 2e-5  # max abs diff to the original code's logits (float32, CPU)


@pytest.fixture(scope="module")
def fixture_weights() -> dict[str, torch.Tensor]:
    return fixture_state_dict()


@pytest.fixture(scope="module")
def fixture_model(fixture_weights):
    model = build_model("hs_i3d", num_classes=60)
    load_model_weights(model, {"model": fixture_weights}, source="fixture")
    return model.eval()


@pytest.fixture(scope="module")
def expected():
    with np.load(FIXTURE_DIR / "expected.npz") as data:
        return {k: data[k] for k in data.files}


def _tiny(num_classes: int = 60, seed: int = 0, **kwargs):
    torch.manual_seed(seed)
    return build_model("hs_i3d_tiny", num_classes=num_classes, **kwargs)


# -- compatibility with the original ------------------------------------------------


def test_state_dict_keys_and_shapes_match_original():
    entries = manifest_entries()
    state = build_model("hs_i3d").state_dict()
    assert list(state) == [e["key"] for e in entries]
    for entry in entries:
        tensor = state[entry["key"]]
        assert list(tensor.shape) == entry["shape"], entry["key"]
        assert str(tensor.dtype) == f"torch.{entry['dtype']}", entry["key"]


@pytest.mark.parametrize("case", ["a", "b"])
def test_outputs_match_original_code(fixture_model, expected, case):
    clips = torch.from_numpy(expected[f"in_{case}"])
    with torch.no_grad():
        out = fixture_model(clips)
    assert set(out) == set(HEAD_NAMES)
    for head in HEAD_NAMES:
        reference = expected[f"out_{case}_{head}"]
        assert tuple(out[head].shape) == reference.shape, head
        diff = np.abs(out[head].numpy() - reference).max()
        assert diff <= TOLERANCE, f"case {case} head {head}: max abs diff {diff:.3g}"


def test_fixture_detects_a_wrong_batchnorm_eps(fixture_model, expected):
    # The tolerance must be tight enough to catch a subtle deviation.
    changed = [
        m for m in fixture_model.modules() if isinstance(m, torch.nn.BatchNorm3d) and m.eps == 1e-3
    ]
    assert len(changed) == 57  # every backbone Unit3D but the classifier
    try:
        for module in changed:
            module.eps = 1e-5
        with torch.no_grad():
            out = fixture_model(torch.from_numpy(expected["in_a"]))
    finally:
        for module in changed:
            module.eps = 1e-3
    assert np.abs(out["x"].numpy() - expected["out_a_x"]).max() > 5 * TOLERANCE


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


# -- shapes, variants, gradients, execution modes -----------------------------------


def test_registry():
    assert {"hs_i3d", "hs_i3d_tiny"} <= set(list_models())
    assert build_model("hs_i3d_tiny").width == 0.25
    assert build_model("hs_i3d_tiny", width=0.5).width == 0.125
    with pytest.raises(ValueError, match="unknown model 'resnet'"):
        build_model("resnet")


@pytest.mark.parametrize(
    ("name", "width", "num_classes", "shape"),
    [
        ("hs_i3d_tiny", 1.0, 60, (2, 8, 3, 32, 32)),
        ("hs_i3d_tiny", 1.0, 60, (1, 16, 3, 64, 48)),
        ("hs_i3d_tiny", 1.0, 5, (2, 24, 3, 40, 72)),
        ("hs_i3d_tiny", 0.5, 60, (1, 32, 3, 33, 57)),
        ("hs_i3d", 1.0, 60, (1, 8, 3, 32, 32)),
    ],
)
def test_output_shapes(name, width, num_classes, shape):
    torch.manual_seed(0)
    model = build_model(name, num_classes=num_classes, width=width).eval()
    batch, steps = shape[:2]
    with torch.no_grad():
        out = model(torch.randn(shape))
    expected_steps = {"x4": steps // 8, "x8": steps // 4, "x16": steps // 2, "x32": steps, "x": steps}
    assert list(out) == list(HEAD_NAMES)
    for head, tensor in out.items():
        assert tuple(tensor.shape) == (batch, expected_steps[head], num_classes + 1), head
        assert torch.isfinite(tensor).all(), head


def test_different_lengths_in_one_process():
    model = _tiny().eval()
    torch.manual_seed(3)
    clip = torch.randn(1, 16, 3, 32, 32)
    with torch.no_grad():
        before = model(clip)["x"]
        longer = model(torch.randn(1, 40, 3, 32, 32))["x"]
        after = model(clip)["x"]
    assert longer.shape == (1, 40, 61)
    torch.testing.assert_close(after, before, rtol=0, atol=0)


def test_bad_input_shapes_are_rejected():
    model = _tiny()
    with pytest.raises(ValueError, match="divisible by 8"):
        model(torch.randn(1, 12, 3, 32, 32))
    with pytest.raises(ValueError, match=r"\(B, T, C, H, W\)"):
        model(torch.randn(12, 3, 32, 32))


def test_gradients_reach_every_parameter():
    model = _tiny().train()
    out = model(torch.randn(2, 16, 3, 32, 32))
    loss = sum(torch.nn.functional.cross_entropy(o.flatten(0, 1), torch.randint(0, 61, (o.shape[0] * o.shape[1],))) for o in out.values())
    loss.backward()
    without = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    # The classifier kept for checkpoint compatibility is the one unused part.
    assert without == ["backbone_model.logits.conv3d.weight", "backbone_model.logits.conv3d.bias"]


def test_bf16_autocast_matches_float32():
    model = _tiny().eval()
    clip = torch.randn(2, 16, 3, 48, 48)
    with torch.no_grad():
        reference = model(clip)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = model(clip)
    for head in HEAD_NAMES:
        assert low[head].dtype == torch.bfloat16
        scale = reference[head].abs().max()
        assert (low[head].float() - reference[head]).abs().max() < 0.05 * scale + 0.02, head


def test_channels_last_3d_matches_default_layout():
    model = _tiny().eval()
    clip = torch.randn(2, 16, 3, 40, 40)
    with torch.no_grad():
        reference = model(clip)
        model = model.to(memory_format=torch.channels_last_3d)
        weight = model.backbone_model.Mixed_3b.b1b.conv3d.weight
        assert weight.is_contiguous(memory_format=torch.channels_last_3d) and not weight.is_contiguous()
        frame_weight = model.backbone_model.spatial_downscaling_Mixed_3c.conv1.weight
        assert frame_weight.is_contiguous(memory_format=torch.channels_last)
        permuted = clip.transpose(1, 2).contiguous(memory_format=torch.channels_last_3d).transpose(1, 2)
        out = model(permuted)
    for head in HEAD_NAMES:
        torch.testing.assert_close(out[head], reference[head], rtol=1e-4, atol=1e-5)


def test_torch_compile_captures_the_whole_model():
    # fullgraph=True fails on any graph break; the "eager" backend checks the capture
    # without paying for inductor's C++ code generation on a small CPU.
    model = _tiny().eval()
    compiled = torch.compile(model, backend="eager", fullgraph=True, dynamic=False)
    clip = torch.randn(1, 8, 3, 32, 32)
    with torch.no_grad():
        out, reference = compiled(clip), model(clip)
    for head in HEAD_NAMES:
        torch.testing.assert_close(out[head], reference[head], rtol=1e-5, atol=1e-6)
    # Checkpoints of a compiled model carry "_orig_mod." and still load.
    target = _tiny(seed=4)
    load_model_weights(target, {"model": compiled.state_dict()})
    load_model_weights(compiled, {"model": target.state_dict()})
    assert torch.equal(model.head_4.time_lin.weight, target.head_4.time_lin.weight)
