"""The training augmentation against the original recipe's library, and its parameter distribution.

``tests/data/train_augment_reference.npz`` holds small uint8 RGB clips of native sizes
(22x30 and 45x38, resized up and down; 32x32, already the resize size; 64x64, OpenCV's
exact 2x path), fixed parameters in :func:`datasets.transforms.pack_params` order, and
the outputs of albumentations 0.5.2's functional operations with those parameters
(``rotate`` bilinear with ``BORDER_REFLECT_101``, ``resize``, ``random_crop``,
``hflip_cv2``, ``adjust_{brightness,contrast,saturation,hue}_torchvision`` in the given
order, ``to_gray``; frame by frame, the same parameters for every frame), computed with
albumentations 0.5.2, opencv-python-headless 4.11.0 and numpy 1.26.4 (Python 3.10; the
file's ``meta`` says so). The same run checked that the recipe's transform classes
(``Rotate``, ``Resize``, ``RandomCrop``, ``HorizontalFlip``, ``ColorJitter``, ``ToGray``
in a ``Compose`` with several image targets) give what the functional composition gives
for the parameters they drew. Resize and crop are scaled down (32 -> 28 instead of
256 -> 224) to keep the file small; three cases at the real sizes (a 300x260 crop, 256,
224) are stored as SHA-256 digests of each output frame (their input is made from
``big_seed`` by :func:`big_input`, integer numpy only).

Given the same parameters, the loader (OpenCV) implementation and the device backend's
colour steps give the same bytes. That holds where OpenCV's 8-bit HSV -> RGB conversion
runs as on x86-64 with AVX2 (it rounds differently on other machines: there the tests
allow one grey level on a few pixels). The float reference (backend "torchvision") is
the same operations without the 8-bit rounding: within a few grey levels.
"""

import hashlib
import json
import platform
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from signspot.datasets.transforms import (
    TrainClipTransform,
    hue_lut,
    normalize_clip,
    pack_params,
    rotation_maps,
    unpack_params,
)

FIXTURE = Path(__file__).parent / "data" / "train_augment_reference.npz"
REF = dict(np.load(FIXTURE))
CLIPS = ["up", "down", "same", "half"]
CASES = [str(n) for n in REF["case_names"]]
# OpenCV's uint8 HSV -> RGB truncates in its AVX2 blocks and rounds elsewhere: the reference
# bytes are those of an x86-64 AVX2 machine (11: cv::CPU_AVX2, a constant the Python module no longer names).
EXACT = platform.machine().lower() in ("x86_64", "amd64") and cv2.checkHardwareSupport(11)


def big_input(seed_array, h=300, w=260):
    """Realistic-size frames from the small stored array (the rule the fixture was made with)."""
    t = seed_array.shape[0]
    up = np.repeat(np.repeat(seed_array, 24, axis=1), 20, axis=2)[:, :h, :w].astype(np.int32)
    yy, xx = np.mgrid[0:h, 0:w]
    ramp = ((yy * 7 + xx * 3) % 97)[None, :, :, None]
    return ((up + ramp + np.arange(t)[:, None, None, None] * 11) % 256).astype(np.uint8)


def case(name):
    i = CASES.index(name)
    clip = REF[f"clip_{CLIPS[REF['case_clip'][i]]}"]
    resize, crop = (int(v) for v in REF["case_size"][i])
    return clip, resize, crop, unpack_params(torch.from_numpy(REF["case_params"][i])), REF[f"out_{i:03d}"]


def device_output(transform, frames, params) -> np.ndarray:
    """The device backend end to end (on the CPU): loader geometry, device colour steps, back to uint8."""
    geometry = transform.apply(frames, params, colour=False)
    batch = {"frames": geometry[None], "params": pack_params(params)[None]}
    x = transform.device_stage(batch, torch.device("cpu"))[0]
    return ((x + 0.5) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()


def assert_same_bytes(got, want, what):
    diff = np.abs(got.astype(np.int16) - want.astype(np.int16))
    if EXACT:
        assert diff.max() == 0, f"{what}: {int((diff > 0).sum())} values differ, by up to {diff.max()}"
    else:
        assert diff.max() <= 1 and (diff > 0).mean() < 0.01, (what, diff.max(), (diff > 0).mean())


def test_fixture_provenance():
    meta = json.loads(str(REF["meta"]))
    assert meta["made_with"]["albumentations"] == "0.5.2"
    assert FIXTURE.stat().st_size < 300_000


@pytest.mark.parametrize("name", CASES)
def test_loader_reproduces_the_reference(name):
    clip, resize, crop, params, want = case(name)
    got = TrainClipTransform(resize, crop).apply(clip, params).numpy()
    assert got.shape == want.shape
    assert_same_bytes(got, want, name)


@pytest.mark.parametrize("name", CASES)
def test_device_backend_reproduces_the_reference(name):
    clip, resize, crop, params, want = case(name)
    assert_same_bytes(device_output(TrainClipTransform(resize, crop, backend="device"), clip, params), want, name)


@pytest.mark.parametrize("name", CASES)
def test_float_reference_is_within_the_8_bit_rounding(name):
    """The "torchvision" backend: the same operations in float. On this noisy content the
    fixed-point rotation (1/32 pixel, 15-bit weights: up to ~5 levels at sharp edges), the
    truncating lookup tables (up to one level each) and the 8-bit HSV (hue in 2-degree steps)
    keep it a few grey levels away."""
    clip, resize, crop, params, want = case(name)
    ref = ((TrainClipTransform(resize, crop).apply_torchvision(clip, params) + 0.5) * 255).permute(0, 2, 3, 1)
    diff = np.abs(ref.numpy() - want)
    hue = params["jitter"] is not None and params["jitter"][3] != 0
    max_diff, mean_diff = (10, 1.8) if hue else (6, 0.7)
    assert diff.max() < max_diff and diff.mean() < mean_diff, (name, diff.max(), diff.mean())


def test_realistic_sizes_reproduce_the_reference():
    """A 300x260 crop, rotated, resized to 256, cropped to 224 (offsets 31 and 0), jittered."""
    frames = big_input(REF["big_seed"])
    assert frames.shape == (2, 300, 260, 3)
    for k, row in enumerate(REF["big_params"]):
        params = unpack_params(torch.from_numpy(row))
        for backend in ("loader", "device"):
            transform = TrainClipTransform(backend=backend)
            got = transform.apply(frames, params).numpy() if backend == "loader" else device_output(transform, frames, params)
            assert got.shape == (2, 224, 224, 3)
            digests = [hashlib.sha256(f.tobytes()).hexdigest() for f in got]
            sums = got.reshape(2, -1, 3).sum(axis=1)
            if EXACT:
                assert digests == list(REF["big_sha256"][k]), (k, backend, (sums - REF["big_sums"][k]).tolist())
            else:
                assert np.abs(sums - REF["big_sums"][k]).max() < 0.01 * 224 * 224, (k, backend)


def test_one_remap_per_frame_equals_rotate_then_crop():
    """A frame already at the resize size: the rotation computes only the crop (mirrored for the
    flip), which gives exactly the pixels of the whole rotated frame cropped (and flipped)."""
    rng = np.random.default_rng(3)
    for trial in range(12):
        size, crop = [(40, 32), (48, 40), (37, 30)][trial % 3]
        frames = rng.integers(0, 256, (2, size, size, 3), dtype=np.uint8)
        transform = TrainClipTransform(size, crop)
        params = transform.sample_params(torch.Generator().manual_seed(trial))
        params.update(angle=float(rng.uniform(-5, 5)), jitter=None, grey=False, flip=bool(trial % 2))
        pixel, fraction = rotation_maps(size, size, params["angle"])
        want = []
        for frame in frames:
            rotated = cv2.remap(frame, pixel, fraction, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
            window = rotated[params["top"] : params["top"] + crop, params["left"] : params["left"] + crop]
            want.append(window[:, ::-1] if params["flip"] else window)
        assert np.array_equal(transform.apply(frames, params).numpy(), np.stack(want)), params


def test_parameter_distribution():
    """The recipe's distribution (albumentations 0.5.2: Rotate(5, p=0.4), RandomCrop offsets
    int((256 - 224) * U[0, 1)), HorizontalFlip(p=0.5), ColorJitter(0.2, 0.2, 0.2, 0.2, p=0.3)
    with a random order, ToGray(p=0.2)), drawn from a seeded torch.Generator; counts within 5
    standard deviations."""
    transform = TrainClipTransform()
    generator = torch.Generator().manual_seed(0)
    n = 20000
    draws = [transform.sample_params(generator) for _ in range(n)]

    def near(count, total, p):
        return abs(count - total * p) < 5 * (total * p * (1 - p)) ** 0.5

    for key, p, fired in [("rotate", 0.4, lambda d: d["angle"] != 0.0), ("flip", 0.5, lambda d: d["flip"]),
                          ("jitter", 0.3, lambda d: d["jitter"] is not None), ("grey", 0.2, lambda d: d["grey"])]:
        count = sum(map(fired, draws))
        assert near(count, n, p), (key, count / n)

    def uniform(values, low, high, bins=10):
        hist = np.histogram(values, bins=bins, range=(low, high))[0]
        assert values.min() >= low and values.max() < high
        assert all(near(c, len(values), 1 / bins) for c in hist), hist

    uniform(np.array([d["angle"] for d in draws if d["angle"] != 0.0]), -5.0, 5.0)
    jitter = np.array([d["jitter"] for d in draws if d["jitter"] is not None])
    for k in range(3):
        uniform(jitter[:, k], 0.8, 1.2)
    uniform(jitter[:, 3], -0.2, 0.2)
    for key in ("top", "left"):
        offsets = np.array([d[key] for d in draws])
        counts = np.bincount(offsets, minlength=33)
        assert counts[32] == 0 and offsets.min() == 0 and offsets.max() == 31  # 0..31 for 256 -> 224
        assert all(near(c, n, 1 / 32) for c in counts[:32]), counts
    orders = [tuple(d["jitter_order"]) for d in draws if d["jitter"] is not None]
    counts = {o: orders.count(o) for o in set(orders)}
    assert len(counts) == 24 and all(near(c, len(orders), 1 / 24) for c in counts.values())
    # a function of the seed alone
    again = TrainClipTransform().sample_params(torch.Generator().manual_seed(0))
    assert again == draws[0]
    # resize == crop: no crop offset
    assert TrainClipTransform(224, 224).sample_params(torch.Generator().manual_seed(1))["top"] == 0
    with pytest.raises(ValueError, match="jitter"):
        TrainClipTransform(jitter=0.6)


def test_hue_step_turns_the_180_step_circle():
    """The hue step shifts OpenCV's 8-bit hue (0..179, 2 degrees a step) by floor(180 * shift) steps."""
    rng = np.random.default_rng(5)
    for shift in list(rng.uniform(-0.5, 0.5, 200)) + [0.2, -0.2, 0.13]:
        lut = hue_lut(shift)
        assert lut.dtype == np.uint8 and lut[:180].max() <= 179
        np.testing.assert_array_equal(lut[:180], (np.arange(180) + int(np.floor(180 * shift))) % 180)


@pytest.fixture(scope="module")
def native_store(tmp_path_factory):
    """A store of native-size signer crops (``size=0``): two videos, crops of different sizes."""
    from signspot.datasets.frame_store import FrameStore
    from signspot.datasets.store_writer import create_frame_store

    root = tmp_path_factory.mktemp("native")
    (root / "v").mkdir()
    rng = np.random.default_rng(6)
    for name, (w, h) in {"wide": (64, 40), "tall": (40, 56)}.items():
        base = cv2.resize(rng.integers(0, 256, (5, 6, 3), dtype=np.uint8), (w + 16, h), interpolation=cv2.INTER_CUBIC)
        writer = cv2.VideoWriter(str(root / "v" / f"{name}.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 25.0, (w, h))
        for i in range(40):
            writer.write(np.ascontiguousarray(base[:, i % 16 : i % 16 + w]))
        writer.release()
    boxes = {"wide": [10, 6, 52, 34], "tall": [5, 8, 33, 44]}
    (root / "b.json").write_text(json.dumps(boxes))
    create_frame_store(root / "store", root / "v", root / "b.json", size=0, workers=0, progress=False)
    return FrameStore(root / "store")


def test_native_size_frames_through_the_loader(native_store, tmp_path):
    """Frames of each video's own size go through the loader (frame at a time) as through
    :meth:`TrainClipTransform.apply`; the device backend gives the loader backend's bytes."""
    from signspot.datasets.windows import TrainWindowDataset, window_indices

    sizes = {native_store.read_frames(v, [0]).shape[1:3] for v in ("wide", "tall")}
    assert len(sizes) == 2 and (32, 32) not in sizes
    csv_path = tmp_path / "n.csv"
    rows = [f"{v},{k % 3},{4 + 6 * k},{9 + 6 * k},40" for k in range(4) for v in ("wide", "tall")]
    csv_path.write_text("video,label,start_frame,end_frame,fcount\n" + "\n".join(rows) + "\n")
    make = lambda backend: TrainWindowDataset(  # noqa: E731
        csv_path, native_store, 3, window=8, neg_prob=0.3, seed=3,
        transform=TrainClipTransform(resize=32, crop=28, backend=backend, p_rotate=0.6, p_jitter=0.6, p_gray=0.3),
    )
    loader_side, device_side = make("loader"), make("device")
    seen = {"rotated": 0, "jittered": 0}
    for epoch in range(3):
        loader_side.set_epoch(epoch)
        device_side.set_epoch(epoch)
        indices = list(range(len(rows)))
        fast, deferred = loader_side.get_batch(indices), device_side.get_batch(indices)
        for batch in (fast, deferred):
            batch.pop("lease", None)
        x = device_side.transform.device_stage(deferred["clip"], torch.device("cpu"))
        for i in indices:
            params = unpack_params(deferred["clip"]["params"][i])
            video = device_side.videos[int(deferred["video_index"][i])]
            frames = native_store.read_frames(video, window_indices(int(deferred["start"][i]), 8, 40))
            want = device_side.transform.apply(frames, params)
            assert torch.equal(fast["clip"][i], want)
            assert_same_bytes(((x[i] + 0.5) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy(),
                              want.numpy(), params)
            assert torch.equal(normalize_clip(want), normalize_clip(fast["clip"][i]))
            seen["rotated"] += params["angle"] != 0.0
            seen["jittered"] += params["jitter"] is not None
    assert all(seen.values()), seen
