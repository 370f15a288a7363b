"""Window datasets, clip transforms and the class-balanced sampler."""

import csv
import json

import cv2
import numpy as np
import pytest
import torch

from signspot.datasets.frame_store import FrameStore
from signspot.datasets.samplers import ClassBalancedSampler
from signspot.datasets.store_writer import create_frame_store
from signspot.datasets.transforms import EvalClipTransform, TrainClipTransform, normalize_clip
from signspot.datasets.video_windows import StreamingWindowDataset
from signspot.datasets.windows import TrainWindowDataset, window_starts

C = 4  # classes
T = 32  # window


LEVELS, STEP = 30, 8  # grey level (i % 30) * 8 encodes frame i; codec error stays below STEP / 2


def make_video(path, n, size=(40, 32)):
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25.0, size)
    for i in range(n):
        writer.write(np.full((size[1], size[0], 3), (i % LEVELS) * STEP, np.uint8))
    writer.release()


LENGTHS = {"long": 80, "short": 20, "exact": 32}


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    root = tmp_path_factory.mktemp("win")
    (root / "v").mkdir()
    for name, n in LENGTHS.items():
        make_video(root / "v" / f"{name}.avi", n)
    (root / "b.json").write_text(json.dumps({name: [4, 4, 36, 28] for name in LENGTHS}))
    create_frame_store(root / "store", root / "v", root / "b.json", size=16, workers=0, progress=False)
    return FrameStore(root / "store")


def write_csv(path, rows):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["video", "label", "start_frame", "end_frame", "fcount"])
        w.writerows(rows)
    return path


def frame_ids(frames):
    """Frame indices (mod LEVELS) from the grey level of uint8 frames."""
    grey = frames[:, frames.shape[1] // 2, frames.shape[2] // 2].astype(float).mean(-1)
    return np.rint(grey / STEP).astype(int) % LEVELS


def assert_frames(frames, indices):
    np.testing.assert_array_equal(frame_ids(frames), np.asarray(indices) % LEVELS)


def raw(frames, generator=None):
    return torch.from_numpy(frames.copy())


ROWS = [
    ["long", 0, 20, 30, 80],  # sign in the middle
    ["long", 2, 26, 40, 80],  # overlaps the first
    ["long", 1, 0, 5, 80],  # at the start
    ["long", 3, 74, 79, 80],  # at the end
    ["short", 1, 3, 9, 20],  # video shorter than a window
]


@pytest.fixture()
def train_csv(tmp_path):
    return write_csv(tmp_path / "train.csv", ROWS)


def expected_target(video, start, n):
    """The original's rule: a sign sharing at least 2 frames with the window is set on those frames."""
    target = np.zeros((T, C + 1), np.float32)
    for v, label, s, e, _ in ROWS:
        if v != video:
            continue
        shared = [t for t in range(T) if start + t < n and s <= start + t <= e]
        if len(shared) >= 2:
            target[shared, label] = 1
    target[:, C] = target[:, :C].sum(1) == 0
    return target


def test_train_windows_overlap_sign_with_context_and_targets(store, train_csv):
    ds = TrainWindowDataset(train_csv, store, C, window=T, context=16, transform=raw, seed=3)
    assert len(ds) == len(ROWS) and ds.labels.tolist() == [r[1] for r in ROWS]
    for epoch in range(6):
        ds.set_epoch(epoch)
        for i, (video, label, s, e, n) in enumerate(ROWS):
            item = ds[i]
            start = item["start"]
            frames = item["clip"].numpy()
            assert frames.shape[0] == T
            idx = np.minimum(np.arange(start, start + T), n - 1)
            assert_frames(frames, idx)
            if n > T:
                lo, hi = max(s - 16, 0), min(e + 16, n) - T
                assert 0 <= start <= n - T
                assert (lo <= start < hi) if hi > lo else start == min(max(hi, 0), n - T)  # ends with the context
                assert start <= e and start + T > s  # the window overlaps its sign
            else:
                assert start == 0
            assert item["label"] == label
            np.testing.assert_array_equal(item["target"].numpy(), expected_target(video, start, n))


def test_short_video_padded_with_last_frame_and_background(store, train_csv):
    ds = TrainWindowDataset(train_csv, store, C, window=T, transform=raw)
    item = ds[4]
    assert_frames(item["clip"].numpy(), list(range(20)) + [19] * 12)
    target = item["target"].numpy()
    assert target[3:10, 1].all() and target[:3, 1].sum() == 0 and target[10:, 1].sum() == 0
    assert target[20:, C].all()  # padded positions are background
    assert (target.sum(1) >= 1).all()


def test_negative_windows_are_uniform_over_the_video(store, train_csv):
    ds = TrainWindowDataset(train_csv, store, C, window=T, neg_prob=1.0, transform=raw)
    starts = []
    for epoch in range(300):
        ds.set_epoch(epoch)
        starts.append(ds.window_start(0, np.random.default_rng([0, epoch, 0])))
    starts = np.array(starts)
    assert starts.min() >= 0 and starts.max() <= 80 - T - 2  # the original's randint(0, n - T - 1)
    assert starts.min() <= 3 and starts.max() >= 80 - T - 5  # reaches both ends
    assert starts.std() > 10  # spread across the video, not tied to the sign at 20..30


def test_a_sign_is_a_target_only_with_two_shared_frames(store, tmp_path):
    # long: 80 frames. Window [10, 41]: a sign ending on frame 10 shares one frame, one on 10..11 two;
    # a one-frame sign inside the window is never a target (the original's overlap rule).
    csv_path = write_csv(tmp_path / "t.csv", [("long", 0, 2, 10, 80), ("long", 1, 40, 50, 80), ("long", 2, 20, 20, 80),
                                              ("long", 3, 41, 60, 80)])
    ds = TrainWindowDataset(csv_path, store, C, window=T, transform=raw)
    target = ds.target(0, 10)
    assert target[:, 0].sum() == 0  # frame 10 only
    assert target[:, 1].tolist() == [0.0] * 30 + [1.0, 1.0]  # frames 40, 41
    assert target[:, 2].sum() == 0  # a one-frame sign
    assert target[:, 3].sum() == 0  # frame 41 only
    assert (target[:30, C] == 1).all() and (target[30:, C] == 0).all()
    csv_path = write_csv(tmp_path / "u.csv", [("long", 0, 2, 11, 80)])
    assert TrainWindowDataset(csv_path, store, C, window=T, transform=raw).target(0, 10)[:2, 0].tolist() == [1.0, 1.0]


def test_a_window_too_short_for_sign_and_context_ends_where_the_context_ends(store, tmp_path):
    # sign 40..41, context 10: the context spans [30, 51), shorter than a window: the window is the
    # one ending where the context ends, start 51 - 32 = 19 (the original's choice), not 30
    ds = TrainWindowDataset(write_csv(tmp_path / "t.csv", [("long", 1, 40, 41, 80)]), store, C, window=T, transform=raw,
                            context=10)
    assert ds.window_start(0, np.random.default_rng(0)) == 19
    ds = TrainWindowDataset(write_csv(tmp_path / "u.csv", [("long", 1, 2, 6, 80)]), store, C, window=T, transform=raw)
    assert ds.window_start(0, np.random.default_rng(0)) == 0  # 22 - 32 < 0: kept inside the video


def test_train_randomness_comes_from_seed_epoch_index(store, train_csv):
    make = lambda seed: TrainWindowDataset(  # noqa: E731
        train_csv, store, C, window=T, neg_prob=0.5, transform=TrainClipTransform(resize=16, crop=12), seed=seed
    )
    a, b = make(7), make(7)
    b.set_epoch(0)
    torch.manual_seed(123)
    np.random.seed(123)
    first = [a[i] for i in range(len(a))]
    torch.manual_seed(999)  # the global RNGs play no part
    np.random.seed(999)
    second = [b[i] for i in reversed(range(len(b)))][::-1]
    for x, y in zip(first, second):
        assert x["start"] == y["start"]
        assert torch.equal(x["clip"], y["clip"]) and torch.equal(x["target"], y["target"])
    assert first[0]["clip"].shape == (T, 12, 12, 3) and first[0]["clip"].dtype == torch.uint8
    # Another epoch or another seed draws other windows/augmentations.
    b.set_epoch(1)
    c = make(8)
    differs_epoch = any(not torch.equal(b[i]["clip"], first[i]["clip"]) for i in range(len(b)))
    differs_seed = any(not torch.equal(c[i]["clip"], first[i]["clip"]) for i in range(len(c)))
    assert differs_epoch and differs_seed
    # Same samples through a DataLoader with worker processes.
    loader = torch.utils.data.DataLoader(a, batch_size=None, num_workers=2, shuffle=False)
    for x, y in zip(loader, first):
        assert x["start"] == y["start"] and torch.equal(x["clip"], y["clip"])


def test_train_csv_errors(store, tmp_path):
    bad_video = write_csv(tmp_path / "a.csv", [["nope", 0, 1, 2, 10]])
    with pytest.raises(KeyError, match="nope"):
        TrainWindowDataset(bad_video, store, C)
    bad_label = write_csv(tmp_path / "b.csv", [["long", C, 1, 2, 80]])
    with pytest.raises(ValueError, match="label"):
        TrainWindowDataset(bad_label, store, C)
    reversed_sign = write_csv(tmp_path / "c.csv", [["long", 0, 9, 2, 80]])
    with pytest.raises(ValueError, match="line 2"):
        TrainWindowDataset(reversed_sign, store, C)


def test_fold_csvs_as_the_download_has_them(store, tmp_path):
    from signspot.datasets.windows import read_fold_csv

    # written by pandas with its index: an unnamed first column, and the columns in another order
    (tmp_path / "train_0.csv").write_text(",video,start_frame,end_frame,label,fcount\n0,long,20,30,1,80\n")
    assert read_fold_csv(tmp_path / "train_0.csv") == [
        {"video": "long", "label": 1, "start_frame": 20, "end_frame": 30, "fcount": 80}]
    (tmp_path / "valid_0.csv").write_text("video,class,start,end,frames\nlong,1,20,30,80\n")
    with pytest.raises(ValueError, match=r"valid_0.csv: missing column\(s\) \['label', 'start_frame', 'end_frame', "
                                         r"'fcount'\]; expected video,label,start_frame,end_frame,fcount"):
        read_fold_csv(tmp_path / "valid_0.csv")


def test_window_starts_cover_the_tail():
    assert window_starts(80, 32, 32).tolist() == [0, 32, 48]
    assert window_starts(64, 32, 32).tolist() == [0, 32]
    assert window_starts(20, 32, 32).tolist() == [0]
    assert window_starts(32, 32, 1).tolist() == [0]
    assert window_starts(40, 32, 3).tolist() == [0, 3, 6, 8]


def _streamed_windows(store, videos, stride, transform, batch_size=2):
    """(video, start, clip) of every window StreamingWindowDataset yields, in order."""
    dataset = StreamingWindowDataset(store, videos, window=T, stride=stride, batch_size=batch_size, transform=transform)
    for batch in dataset:
        for offset, start in zip(batch["offsets"].tolist(), batch["starts"].tolist()):
            yield videos[batch["video_index"]], start, batch["frames"][offset : offset + T]


def test_val_windows_cover_every_frame(store):
    videos = ["long", "short", "exact"]
    windows = list(_streamed_windows(store, videos, T, raw))  # validation: stride = window
    starts = {v: [start for video, start, _ in windows if video == v] for v in videos}
    assert [starts[v] for v in videos] == [[0, 32, 48], [0], [0]]
    assert len(windows) == 5
    covered = {v: np.zeros(store.num_frames(v), bool) for v in videos}
    for video, start, clip in windows:
        n = store.num_frames(video)
        assert_frames(clip.numpy(), np.minimum(np.arange(start, start + T), n - 1))
        covered[video][start : start + min(T, n - start)] = True
    assert all(c.all() for c in covered.values())


def test_inference_windows_stride(store):
    windows = list(_streamed_windows(store, ["long", "short"], 5, raw, batch_size=4))
    assert [start for video, start, _ in windows if video == "long"] == list(range(0, 49, 5)) + [48]
    assert [start for video, start, _ in windows if video == "short"] == [0]
    assert len(windows) == 12 and windows[-1][:2] == ("short", 0)
    assert windows[10][:2] == ("long", 48)
    _, _, clip = next(_streamed_windows(store, ["exact"], 1, EvalClipTransform()))
    assert clip.shape == (T, 224, 224, 3) and clip.dtype == torch.uint8


def test_eval_transform_matches_cv2_resize_and_centre_crop():
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (3, 40, 50, 3), dtype=np.uint8)
    out = EvalClipTransform(resize=32, crop=24)(frames)
    assert out.shape == (3, 24, 24, 3) and out.dtype == torch.uint8 and out.is_contiguous()
    ref = np.stack([cv2.resize(f, (32, 32), interpolation=cv2.INTER_LINEAR) for f in frames])[:, 4:28, 4:28]
    np.testing.assert_array_equal(out.numpy(), ref)
    same = rng.integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)  # already resize x resize: crop only
    np.testing.assert_array_equal(EvalClipTransform(32, 24)(same).numpy(), same[:, 4:28, 4:28])
    # The network's input: x / 255 - 0.5, channels first, computed where the clip is.
    x = normalize_clip(out)
    assert x.shape == (3, 3, 24, 24) and x.dtype == torch.float32 and x.is_contiguous()
    np.testing.assert_allclose(x.permute(0, 2, 3, 1).numpy(), ref / 255.0 - 0.5, atol=1e-7)
    batch = normalize_clip(torch.stack([out, out]))  # (B, T, H, W, 3) -> (B, T, 3, H, W)
    assert batch.shape == (2, 3, 3, 24, 24) and torch.equal(batch[1], x)
    with pytest.raises(ValueError, match="uint8"):
        normalize_clip(x)


def test_train_transform_same_parameters_for_every_frame():
    rng = np.random.default_rng(1)
    frame = rng.integers(0, 256, (24, 24, 3), dtype=np.uint8)
    clip = np.repeat(frame[None], 6, axis=0)
    transform = TrainClipTransform(resize=24, crop=16)
    outputs = []
    for seed in range(40):
        out = transform(clip, torch.Generator().manual_seed(seed))
        assert out.shape == (6, 16, 16, 3) and out.dtype == torch.uint8
        assert all(torch.equal(out[0], out[t]) for t in range(6))  # identical frames stay identical
        again = transform(clip, torch.Generator().manual_seed(seed))
        assert torch.equal(out, again)
        outputs.append(out[0])
    assert len({o.sum().item() for o in outputs}) > 30  # the parameters do vary between clips
    # Some clips are flipped, some grey (all three channels equal), as the probabilities say.
    grey = sum(bool(torch.equal(o[..., 0], o[..., 1]) and torch.equal(o[..., 1], o[..., 2])) for o in outputs)
    assert 1 <= grey <= 20


def test_sampler_balances_classes():
    labels = np.array([0] * 200 + [1] * 20 + [2] * 5 + [3] * 75)
    sampler = ClassBalancedSampler(labels, num_samples=20000, seed=5)
    draws = np.array(list(sampler))
    assert len(draws) == 20000
    freq = np.bincount(labels[draws], minlength=4) / len(draws)
    np.testing.assert_allclose(freq, 0.25, atol=0.02)
    assert list(sampler) == draws.tolist()  # same (seed, epoch): same draw
    sampler.set_epoch(1)
    assert list(sampler) != draws.tolist()
    assert len(ClassBalancedSampler(labels)) == len(labels)


def test_sampler_ranks_take_disjoint_slices_of_one_draw():
    labels = np.array([0, 0, 0, 1, 2, 2, 1])
    ranks = [ClassBalancedSampler(labels, num_samples=10, seed=2, rank=r, world_size=3) for r in range(3)]
    for s in ranks:
        s.set_epoch(4)
    parts = [list(s) for s in ranks]
    assert [len(p) for p in parts] == [4, 4, 4] and all(len(s) == 4 for s in ranks)
    merged = [None] * 12
    for r, part in enumerate(parts):
        merged[r::3] = part
    assert merged == ranks[0].global_draw().tolist()
    with pytest.raises(ValueError):
        ClassBalancedSampler(labels, rank=3, world_size=3)


@pytest.mark.parametrize("case", ["plain", "rotate", "jitter", "grey", "resize"])
def test_fast_train_transform_matches_torchvision_reference(case):
    rng = np.random.default_rng(2)
    # Smooth content (like video), so bilinear rounding differences stay small.
    base = cv2.resize(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8), (40, 40), interpolation=cv2.INTER_CUBIC)
    frames = np.stack([np.roll(base, i, axis=1) for i in range(4)])
    size = 48 if case == "resize" else 40
    transform = TrainClipTransform(resize=size, crop=32)
    params = {"angle": 0.0, "top": 3, "left": 5, "flip": True, "jitter": None, "jitter_order": [0, 1, 2, 3],
              "grey": False}
    if case in ("rotate", "resize"):
        params["angle"] = -4.0
    if case == "jitter":
        params.update(jitter=(1.15, 0.85, 1.2, 0.12), jitter_order=[3, 1, 0, 2])
    if case == "grey":
        params.update(jitter=(0.9, 1.1, 0.8, -0.1), grey=True)
    fast_uint8 = transform.apply(frames, params)
    assert fast_uint8.shape == (4, 32, 32, 3) and fast_uint8.dtype == torch.uint8
    fast = normalize_clip(fast_uint8)
    ref = transform.apply_torchvision(frames, params)
    assert fast.shape == ref.shape == (4, 3, 32, 32) and fast.dtype == ref.dtype == torch.float32
    diff = (fast - ref).abs()  # both reflect the borders: the whole clip is compared
    if case == "plain":
        assert diff.max() < 1e-6
    elif case == "rotate":  # OpenCV's fixed-point bilinear (1/32 pixel) against float: about one grey level
        assert diff.max() < 1.5 / 255
    elif case == "resize":
        assert diff.mean() < 1.5e-3 and diff.max() < 3 / 255
    else:  # truncating lookup tables and 8-bit HSV (2-degree hue steps) against float
        assert diff.mean() < 2 / 255 and torch.quantile(diff.flatten(), 0.99) < 2.5e-2, (diff.mean(), diff.max())


@pytest.fixture(scope="module")
def textured_store(tmp_path_factory):
    """Frames with texture and colour (the grey-coded store above is flat: no augmentation shows on it)."""
    root = tmp_path_factory.mktemp("textured")
    (root / "v").mkdir()
    rng = np.random.default_rng(4)
    base = cv2.resize(rng.integers(0, 256, (6, 8, 3), dtype=np.uint8), (48, 40), interpolation=cv2.INTER_CUBIC)
    writer = cv2.VideoWriter(str(root / "v" / "tex.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 25.0, (48, 40))
    for i in range(60):
        writer.write(np.roll(base, i, axis=1))
    writer.release()
    (root / "b.json").write_text(json.dumps({"tex": [6, 4, 42, 36]}))
    create_frame_store(root / "store", root / "v", root / "b.json", size=40, workers=0, progress=False)
    return FrameStore(root / "store")


def test_device_backend_defers_the_same_augmentation_to_the_device(textured_store, tmp_path):
    from signspot.datasets.transforms import unpack_params

    rows = [["tex", k % C, 5 + 9 * k, 9 + 9 * k, 60] for k in range(5)]
    csv_path = write_csv(tmp_path / "tex.csv", rows)
    make = lambda backend: TrainWindowDataset(  # noqa: E731
        csv_path, textured_store, C, window=8, neg_prob=0.3, seed=11,
        transform=TrainClipTransform(resize=40, crop=32, backend=backend, p_rotate=0.5, p_jitter=0.5, p_gray=0.3),
    )
    loader_side, device_side = make("loader"), make("device")
    seen = {"rotated": 0, "jittered": 0, "grey": 0}
    for epoch in range(4):
        loader_side.set_epoch(epoch)
        device_side.set_epoch(epoch)
        fast_items = [loader_side[i] for i in range(len(rows))]
        items = [device_side[i] for i in range(len(rows))]
        batch = torch.utils.data.default_collate(items)
        assert batch["clip"]["frames"].shape == (len(rows), 8, 32, 32, 3) and batch["clip"]["frames"].dtype == torch.uint8
        x = device_side.transform.device_stage(batch["clip"], torch.device("cpu"))
        assert x.shape == (len(rows), 8, 3, 32, 32) and x.dtype == torch.float32
        for i, (fast_item, item) in enumerate(zip(fast_items, items)):
            # Same window, same targets, same parameters as the loader backend drew.
            assert item["start"] == fast_item["start"] and torch.equal(item["target"], fast_item["target"])
            params = unpack_params(batch["clip"]["params"][i])
            frames = textured_store.read_frames("tex", np.minimum(np.arange(item["start"], item["start"] + 8), 59))
            transform = device_side.transform
            # The loader did the geometric steps exactly as the loader backend does them ...
            geometry = transform.apply(frames, params, colour=False)
            assert torch.equal(batch["clip"]["frames"][i], geometry)
            # ... and the device the colour steps with the loader's 8-bit arithmetic: the loader
            # backend's clip (tests/test_augment_reference.py: the same bytes on x86-64 AVX2; one
            # grey level at most elsewhere).
            diff = (x[i] - normalize_clip(fast_item["clip"])).abs()
            assert diff.max() < 1.5 / 255 and (diff > 1e-6).float().mean() < 0.01, (params, diff.max())
            # The whole against the float reference augmentation, up to the 8-bit rounding.
            diff = (x[i] - transform.apply_torchvision(frames, params)).abs()
            assert diff.mean() < 2 / 255 and torch.quantile(diff.flatten(), 0.99) < 2.5e-2, (params, diff.mean())
            seen["rotated"] += params["angle"] != 0.0
            seen["jittered"] += params["jitter"] is not None
            seen["grey"] += params["grey"]
    assert all(seen.values()), seen  # the comparison covered those steps
    # Evaluation transform: the device stage is the normalisation.
    clip = EvalClipTransform(40, 32)(textured_store.read_frames("tex", range(8)))
    assert torch.equal(EvalClipTransform(40, 32).device_stage(clip[None]), normalize_clip(clip[None]))


def test_params_pack_round_trip():
    from signspot.datasets.transforms import pack_params, unpack_params

    transform = TrainClipTransform(p_jitter=1.0)
    for seed in range(20):
        params = transform.sample_params(torch.Generator().manual_seed(seed))
        assert unpack_params(pack_params(params)) == params
    with pytest.raises(ValueError, match="backend"):
        TrainClipTransform(backend="gpu")


class _Batched(torch.utils.data.Dataset):
    """Fetches whole batches, as training's loader does."""

    def __init__(self, dataset):
        self.dataset = dataset

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, index):
        return self.dataset[index]

    def __getitems__(self, indices):
        return self.dataset.get_batch(indices)


@pytest.mark.parametrize("backend", ["loader", "device", "torchvision", "custom"])
def test_get_batch_equals_collated_samples(textured_store, tmp_path, backend):
    from signspot.datasets.windows import collate_windows

    rows = [["tex", k % C, 4 + 7 * k, 8 + 7 * k, 60] for k in range(7)]
    csv_path = write_csv(tmp_path / "tex.csv", rows)
    transform = raw if backend == "custom" else TrainClipTransform(resize=40, crop=32, backend=backend, p_jitter=0.5)
    dataset = TrainWindowDataset(csv_path, textured_store, C, window=8, neg_prob=0.3, seed=2, transform=transform)
    dataset.set_epoch(3)
    indices = [5, 0, 3, 3, 6]
    want = torch.utils.data.default_collate([dataset[i] for i in indices])
    got = dataset.get_batch(indices)

    def assert_same(a, b):
        if isinstance(a, dict):
            assert a.keys() == b.keys()
            for key in a:
                assert_same(a[key], b[key])
        else:
            assert a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b)

    assert_same(got, want)
    # Through a worker process: the batch arrives (from shared memory) unchanged.
    loader = torch.utils.data.DataLoader(
        _Batched(dataset), batch_size=len(indices), sampler=indices, collate_fn=collate_windows,
        num_workers=1, multiprocessing_context="spawn",
    )
    from_worker = next(iter(loader))
    lease = from_worker.pop("lease", None)
    assert (lease is None) == (backend == "custom")  # batches written in place come from reusable memory
    assert_same(from_worker, want)


@pytest.mark.parametrize("release", [True, False])
def test_worker_batches_reuse_memory_only_once_released(textured_store, tmp_path, release):
    """A worker writes a later batch into a batch's memory only after the consumer released it:
    released batches cycle through a few buffers; batches kept (never released) stay intact."""
    from signspot.datasets.windows import BatchLease, collate_windows

    rows = [["tex", k % C, 3 + 5 * k, 6 + 5 * k, 60] for k in range(10)]
    dataset = TrainWindowDataset(write_csv(tmp_path / "tex.csv", rows), textured_store, C, window=8, seed=4,
                                 transform=TrainClipTransform(resize=40, crop=32))
    order = [i % len(rows) for i in range(60)]
    want = [dataset.get_batch(order[b : b + 3]) for b in range(0, len(order), 3)]
    loader = torch.utils.data.DataLoader(
        _Batched(dataset), batch_size=3, sampler=order, collate_fn=collate_windows,
        num_workers=1, multiprocessing_context="spawn", prefetch_factor=2,
    )
    kept, slots = [], []
    for got in loader:
        lease = got.pop("lease", None)
        slots.append(None if lease is None else lease.slot)
        if release:
            assert isinstance(lease, BatchLease)
            assert torch.equal(got["clip"], want[len(kept)]["clip"])  # intact until released
            lease.release()
        kept.append(got)
    assert len(kept) == len(want) == 20
    if release:
        assert len(set(slots)) <= 4  # a few buffers, reused
    else:
        # every pooled buffer used once, then fresh memory for every batch
        assert slots[:8] == list(range(8)) and slots[8:] == [None] * 12
        for got, expected in zip(kept, want):  # nothing was overwritten
            assert torch.equal(got["clip"], expected["clip"]) and torch.equal(got["target"], expected["target"])
