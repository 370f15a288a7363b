"""HS-I3D: state-dict compatibility, numerical fixture, shapes, gradients."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from signspot.checkpoint import load_model_weights
from signspot.models import HEAD_NAMES, build_model, list_models, recalibrate_batchnorm
from tests.hs_i3d_weights import FIXTURE_DIR, manifest_entries
from tests.hs_i3d_weights import tiny_model as _tiny

TOLERANCE = 2e-5  # max abs diff to the original code's logits (float32, CPU)


@pytest.fixture(scope="module")
def fixture_model(fixture_weights):
    model = build_model("hs_i3d", num_classes=60)
    load_model_weights(model, {"model": fixture_weights}, source="fixture")
    return model.eval()


@pytest.fixture(scope="module")
def expected():
    with np.load(FIXTURE_DIR / "expected.npz") as data:
        return {k: data[k] for k in data.files}


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


def test_recalibrate_batchnorm_measures_the_clips_statistics():
    model = _tiny()
    clips = torch.randn(2, 16, 3, 32, 32)
    first = model.backbone_model.Conv3d_1a_7x7.bn
    seen = []
    handle = first.register_forward_pre_hook(lambda module, args: seen.append(args[0].detach().clone()))
    try:
        assert recalibrate_batchnorm(model, clips) is model
    finally:
        handle.remove()
    assert not model.training and first.momentum == 0.01 and int(first.num_batches_tracked) == 1
    batch = seen[0].transpose(0, 1).flatten(1)  # (C, everything else)
    torch.testing.assert_close(first.running_mean, batch.mean(1))
    torch.testing.assert_close(first.running_var, batch.var(1))  # unbiased, as BatchNorm keeps it
