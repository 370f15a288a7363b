"""Mixed precision: bf16 and fp16 autocast keep float32's per-frame argmax (fixture model, real scoring path).

The full-size HS-I3D with the compatibility fixture's weights (tests/hs_i3d_weights.py) scores
small synthetic videos through :func:`signspot.scoring.score_videos`, once in float32 and once
under autocast, and the per-frame scores are compared. The fixture's weights are random draws,
BatchNorm running statistics included: as they are, the activations collapse to nearly the same
feature for every input (a head's logits vary by 0.003 .. 0.05 between clips against 0.13 .. 0.19
between classes; one or two argmax classes over all frames), so the argmax would agree
trivially. The BatchNorm statistics are therefore measured on the test's own clips
(:func:`models.recalibrate_batchnorm`); then the scores depend on the frames (34 distinct argmax
classes over the 144 frames).

The scores stay close to uniform (median top-2 margin 0.0017), so a frame flips wherever the
autocast error exceeds its small margin; a trained network's confident frames have far larger
margins, so the agreement measured here is expected to be a lower bound of its agreement. fp16
runs on the CPU too: torch's CPU autocast supports it, but without fp16 instructions the
convolutions fall back to slow reference kernels (about 10x the float32 time here), which is
why ``setup_runtime`` refuses ``amp=fp16`` on a CPU; the test builds that runtime itself. The
CUDA cases run only where CUDA is available.
"""

from __future__ import annotations

import copy
import dataclasses
import json

import cv2
import numpy as np
import pytest
import torch

from signspot.checkpoint import load_model_weights
from signspot.datasets.frame_store import FrameStore
from signspot.datasets.store_writer import create_frame_store
from signspot.datasets.transforms import EvalClipTransform, normalize_clip
from signspot.models import build_model, recalibrate_batchnorm
from signspot.runtime import setup_runtime
from signspot.scoring import score_videos

WINDOW, RESIZE, CROP = 16, 40, 32
NUM_VIDEOS, NUM_FRAMES = 3, 48
STRIDE = WINDOW  # validation's stride: every frame is scored by one window, nothing averages errors out

# (device, amp) -> (least argmax agreement, largest max |score difference|), over the 144 frames.
# Measured on a shared 2-core AVX-512 CPU (with avx512_bf16), torch 2.14, these videos (seed 0):
#   bf16: agreement 0.875 (18 frames flip, each with an fp32 top-2 margin below 0.0022),
#         max |diff| 0.0081, where the scores themselves lie in 0.004 .. 0.07;
#   fp16: agreement 0.979 (3 frames), max |diff| 0.0021.
# With the videos drawn from seeds 1, 2, 3: bf16 agreement 0.861 .. 0.889, max |diff| 0.011 .. 0.016;
# fp16 agreement 0.986, max |diff| 0.0017.
# bf16 keeps 8 significant bits, fp16 11: fp16's errors are several times smaller, as measured.
# The bounds allow about twice the worst measured disagreement and max |diff|, for kernels
# that round differently (other CPUs, cuDNN).
BOUNDS = {
    ("cpu", "bf16"): (0.75, 0.03),
    ("cpu", "fp16"): (0.95, 0.005),
    ("cuda", "bf16"): (0.75, 0.03),
    ("cuda", "fp16"): (0.95, 0.005),
}
CASES = [pytest.param(d, a, id=f"{d}-{a}", marks=[pytest.mark.slow] if (d, a) == ("cpu", "fp16") else [])
         for d, a in BOUNDS]  # CPU fp16: emulated convolutions, ~20 s


def _write_video(path, rng) -> None:
    """Noise background; a square that moves, and changes colour and height every 8 frames."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 25.0, (64, 64))
    assert writer.isOpened()
    base = rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)
    for i in range(NUM_FRAMES):
        if i % 8 == 0:
            colour, top = rng.integers(0, 255, 3), int(rng.integers(0, 40))
        frame = base.copy()
        x = (4 * i) % 40
        frame[top : top + 24, x : x + 24] = colour
        writer.write(frame)
    writer.release()


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    root = tmp_path_factory.mktemp("precision")
    (root / "videos").mkdir()
    rng = np.random.default_rng(0)
    names = [f"video{k}" for k in range(NUM_VIDEOS)]
    for name in names:
        _write_video(root / "videos" / f"{name}.mp4", rng)
    (root / "boxes.json").write_text(json.dumps({name: [0, 0, 64, 64] for name in names}))
    create_frame_store(root / "store", root / "videos", root / "boxes.json", size=RESIZE, workers=0, progress=False)
    return FrameStore(root / "store")


@pytest.fixture(scope="module")
def model(fixture_weights, store):
    model = build_model("hs_i3d", num_classes=60)
    load_model_weights(model, {"model": fixture_weights}, source="fixture")
    transform = EvalClipTransform(RESIZE, CROP)
    clips = torch.stack([
        normalize_clip(transform(store.read_frames(video, list(range(start, start + WINDOW)))))
        for video in store.videos for start in range(0, NUM_FRAMES - WINDOW + 1, WINDOW)
    ])
    return recalibrate_batchnorm(model, clips)


def _frame_scores(model, store, runtime) -> np.ndarray:
    """Every frame's scores, videos one after the other: (frames, C + 1)."""
    videos = sorted(store.videos)
    scores = score_videos(model, store, videos, window=WINDOW, stride=STRIDE, transform=EvalClipTransform(RESIZE, CROP),
                          runtime=runtime, progress=False)
    return np.concatenate([scores[v]["scores"] for v in videos])


_REFERENCE: dict = {}


def _reference(model, store, device: str) -> np.ndarray:
    """float32 scores; on CUDA without TF32 (cuDNN's default for convolutions), so the reference is float32."""
    if device not in _REFERENCE:
        saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
        torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
        try:
            _REFERENCE[device] = _frame_scores(model, store, setup_runtime(device, None, cpu_autocast=True))
        finally:
            torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved
    return _REFERENCE[device]


@pytest.mark.parametrize(("device", "amp"), CASES)
def test_autocast_keeps_the_per_frame_argmax(model, store, device, amp):
    if device == "cuda" and not torch.cuda.is_available():
        pytest.skip("CUDA is not available")
    if device == "cuda":
        model = copy.deepcopy(model).to(device)
    reference = _reference(model, store, device)
    if device == "cpu" and amp == "fp16":
        # setup_runtime refuses fp16 on a CPU (emulated kernels, slow); torch's CPU autocast runs it.
        runtime = dataclasses.replace(setup_runtime("cpu", "bf16", cpu_autocast=True), amp_dtype=torch.float16)
    else:
        runtime = setup_runtime(device, amp, cpu_autocast=True)
    assert runtime.precision == {"bf16": "bfloat16", "fp16": "float16"}[amp]
    low = _frame_scores(model, store, runtime)

    assert reference.shape == low.shape == (NUM_VIDEOS * NUM_FRAMES, 61)
    # The check means something only if the argmax depends on the frames.
    assert len(np.unique(reference.argmax(1))) >= 10
    least_agreement, largest_diff = BOUNDS[(device, amp)]
    agreement = float((low.argmax(1) == reference.argmax(1)).mean())
    diff = float(np.abs(low - reference).max())
    assert agreement >= least_agreement, f"{amp} on {device}: argmax agreement {agreement:.3f}, max |diff| {diff:.2g}"
    assert diff <= largest_diff, f"{amp} on {device}: max |diff| {diff:.2g}, argmax agreement {agreement:.3f}"


def test_the_cpu_layout_keeps_every_frames_argmax():
    """scoring.on_device runs the CPU in channels_last_3d: the same argmax on every frame, scores within 1e-5."""
    from signspot.scoring import on_device

    torch.manual_seed(0)
    model = build_model("hs_i3d_tiny", num_classes=5)
    clips = torch.rand(4, 16, 3, 48, 48) - 0.5
    recalibrate_batchnorm(model, clips)
    model.eval()
    runtime = setup_runtime("cpu", None, cpu_autocast=False)
    with torch.inference_mode():
        reference = torch.softmax(model(clips)["x"], -1)
        fast = on_device(copy.deepcopy(model), runtime)
        assert next(w for w in fast.parameters() if w.dim() == 5).is_contiguous(memory_format=torch.channels_last_3d)
        scores = torch.softmax(fast(clips)["x"], -1)
        exact = on_device(copy.deepcopy(model), runtime, exact=True)
        assert next(w for w in exact.parameters() if w.dim() == 5).is_contiguous()
    assert torch.equal(scores.argmax(-1), reference.argmax(-1))
    assert (scores - reference).abs().max() < 1e-5
    runtime.shutdown()
