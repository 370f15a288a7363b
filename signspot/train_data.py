"""Training data: fold CSVs checked against the frame store, and the training loader.

The loader yields whole batches (:meth:`datasets.windows.TrainWindowDataset.get_batch`)
from persistent workers; every sample's randomness is a function of the seed, the
epoch and its index, and the epoch travels with every index, so resumed and
uninterrupted runs draw the same samples.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from .config import Config, ConfigError
from .formats.errors import SignspotError
from .formats.timebase import frame_to_ms
from .runtime import Runtime, all_gather_objects

__all__ = [
    "DataError",
    "augmentation_backend",
    "build_train_loader",
    "intervals_from_rows",
    "loader_workers",
    "open_store",
    "per_process_batch",
    "read_fold_csv",
]


class DataError(SignspotError, ValueError):
    """Training data that cannot be used (missing file, unknown video, bad label, empty fold)."""


def read_fold_csv(path: str | os.PathLike, store, num_classes: int, *, role: str) -> list:
    """Rows of a fold CSV, checked against the frame store and ``num_classes``; errors name the file."""
    from signspot.datasets.windows import read_fold_csv as read_rows

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such {role} CSV (check data.folds_dir / data.fold / data.{role}_csv)")
    try:
        rows = read_rows(path)
    except ValueError as exc:
        raise DataError(str(exc)) from None
    if not rows:
        what = "no validation videos" if role == "val" else "no training samples"
        raise DataError(f"{path}: the {role} CSV has no rows: this fold has {what}")
    absent = sorted({row["video"] for row in rows} - set(store.videos))
    if absent:
        shown = ", ".join(absent[:5]) + (" ..." if len(absent) > 5 else "")
        raise DataError(f"{path}: {len(absent)} video(s) are not in the frame store {store.path}: {shown}")
    for line, row in enumerate(rows, start=2):
        if not 0 <= row["label"] < num_classes:
            raise DataError(
                f"{path}: line {line} has label {row['label']}, outside [0, {num_classes}) "
                f"(data.num_classes = {num_classes})"
            )
        frames = store.num_frames(row["video"])
        # A sign may end on the frame just past the last one (its end time rounded up), not later.
        if row["end_frame"] > frames:
            raise DataError(
                f"{path}: line {line}: end_frame {row['end_frame']} lies past the end of video "
                f"{row['video']!r}, which has {frames} frames in {store.path}; the CSV does not describe "
                "this frame store (remake the folds with scripts/make_folds.py, or use the store they were made for)"
            )
    return rows


def intervals_from_rows(rows: list, store) -> dict:
    """Ground truth ``{video: [[cls, start_ms, end_ms]]}`` from fold-CSV frames, converted as the decoder does."""
    gt: dict = {}
    for row in rows:
        fps = store.fps(row["video"])
        start_ms, end_ms = frame_to_ms(row["start_frame"], fps), frame_to_ms(row["end_frame"], fps)
        gt.setdefault(row["video"], []).append([int(row["label"]), start_ms, end_ms])
    return gt


def open_store(cfg: Config):
    from signspot.datasets.frame_store import FrameStore

    if not cfg.data.frame_store:
        raise ConfigError("data.frame_store: not set (path of the LMDB frame store)")
    path = Path(cfg.data.frame_store)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such frame store (data.frame_store); make one with scripts/track1_lmdb_creator.py")
    return FrameStore(path)


class _EpochIndexedSampler(torch.utils.data.Sampler):
    """Yields ``(epoch, index)``: the epoch travels with every index, so persistent workers need no
    per-epoch restart to know it (the dataset's randomness is a function of seed, epoch and index)."""

    def __init__(self, sampler):
        self.sampler = sampler
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)
        self.sampler.set_epoch(epoch)

    def __iter__(self):
        epoch = self.epoch
        return ((epoch, int(index)) for index in self.sampler)

    def __len__(self) -> int:
        return len(self.sampler)


class _EpochIndexedDataset(torch.utils.data.Dataset):
    def __init__(self, dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key):
        epoch, index = key
        self.dataset.set_epoch(epoch)
        return self.dataset[index]

    def __getitems__(self, keys):
        """A whole batch at once (DataLoader calls this when present): the dataset writes each
        clip straight into the batch tensor (see ``TrainWindowDataset.get_batch``)."""
        epochs = {epoch for epoch, _ in keys}
        if len(epochs) != 1:
            raise RuntimeError(f"one batch drew indices of several epochs: {sorted(epochs)}")
        self.dataset.set_epoch(epochs.pop())
        return self.dataset.get_batch([index for _, index in keys])


def loader_workers(num_workers: int, rt: Runtime) -> dict:
    """DataLoader worker settings: started once and kept (persistent), from a fork server so they do
    not inherit the parent's open LMDB handles or CUDA state."""
    import multiprocessing

    if num_workers == 0:
        return {"num_workers": 0, "pin_memory": rt.device.type == "cuda"}
    method = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
    return {
        "num_workers": num_workers,
        "pin_memory": rt.device.type == "cuda",
        "persistent_workers": True,
        "prefetch_factor": 4,
        "multiprocessing_context": method,
    }


def augmentation_backend(augment_on: str, device: torch.device) -> str:
    """``data.augment_on`` -> a :class:`datasets.transforms.TrainClipTransform` backend.

    ``"loader"``: the whole augmentation with OpenCV in the loader workers; ``"device"``:
    the loader rotates, resizes, crops and flips, the colour steps run on the training
    device in torch with the same 8-bit arithmetic (the same bytes); ``"auto"``:
    ``"device"`` on a GPU (the colour steps are a large part of a clip's cost on a CPU
    core), ``"loader"`` on a CPU (where OpenCV's are faster than torch's).
    """
    if augment_on == "auto":
        augment_on = "device" if device.type == "cuda" else "loader"
    if augment_on == "loader":
        return "loader"
    if augment_on == "device":
        return "device"
    raise ConfigError(f"data.augment_on must be 'auto', 'loader' or 'device', got {augment_on!r}")


def per_process_batch(batch_size: int, world_size: int) -> int:
    """Each process's share of ``train.batch_size``, the batch of one optimizer step over all processes.

    Every process draws its share of the same global sample stream (see
    :class:`datasets.samplers.ClassBalancedSampler`), so step k on N processes sees the
    samples of step k on one: a torchrun run is the one-GPU run, with BatchNorm
    statistics and mixup pairs taken per process (``train.sync_batchnorm`` for the former).
    """
    if batch_size % world_size:
        raise ConfigError(
            f"train.batch_size: {batch_size} clips per step cannot be split evenly between {world_size} "
            f"processes; use a multiple of {world_size}"
        )
    return batch_size // world_size


def build_train_loader(cfg: Config, store, rt: Runtime):
    from signspot.datasets.samplers import ClassBalancedSampler
    from signspot.datasets.transforms import TrainClipTransform
    from signspot.datasets.windows import TrainWindowDataset, collate_windows

    if cfg.data.train_csv is None:
        raise ConfigError("data.folds_dir or data.train_csv: one must be set to find the training CSV")
    read_fold_csv(cfg.data.train_csv, store, cfg.data.num_classes, role="train")
    dataset = TrainWindowDataset(
        cfg.data.train_csv,
        store,
        cfg.data.num_classes,
        window=cfg.data.window,
        context=cfg.data.context,
        neg_prob=cfg.data.neg_prob,
        transform=TrainClipTransform(
            resize=cfg.data.resize, crop=cfg.data.crop, backend=augmentation_backend(cfg.data.augment_on, rt.device)
        ),
        seed=cfg.train.seed,
    )
    rank, world = rt.dist.rank, rt.dist.world_size
    per_process = per_process_batch(cfg.train.batch_size, world)
    if cfg.data.balanced_sampling:
        sampler = ClassBalancedSampler(dataset.labels, seed=cfg.train.seed, rank=rank, world_size=world)
    else:
        sampler = torch.utils.data.DistributedSampler(
            dataset, num_replicas=world, rank=rank, shuffle=True, seed=cfg.train.seed
        )
    generator = torch.Generator()
    loader = DataLoader(
        _EpochIndexedDataset(dataset),
        batch_size=per_process,
        sampler=_EpochIndexedSampler(sampler),
        collate_fn=collate_windows,
        generator=generator,
        drop_last=cfg.train.drop_last,
        **loader_workers(cfg.data.num_workers, rt),
    )
    if len(loader) == 0:
        raise DataError(
            f"{cfg.data.train_csv}: {len(dataset)} samples give no whole batch of {cfg.train.batch_size} "
            f"with train.drop_last=True (set it to false for so few samples)"
        )
    counts = all_gather_objects(len(loader))
    if len(set(counts)) != 1:
        raise RuntimeError(f"processes would run different numbers of batches per epoch: {counts}")
    return loader, generator, dataset.transform
