"""Training of HS-I3D on one fold: the original recipe plus what a user expects today.

``main(config, overrides, resume)`` resolves the config (:mod:`signspot.config`) and calls
:func:`train`, which

* samples training windows per fold-CSV row (``neg_prob`` random negatives), class-balanced,
  augmented per clip; targets are max-pooled to each head's steps with "maxfix" and scored with
  cross-entropy against probability targets (:mod:`signspot.losses`); mixup mixes clips and
  losses; AdamW with a cosine schedule to ``min_lr_factor * lr`` stepped every iteration;
* validates every ``eval.every_epochs`` epochs on non-overlapping windows of the fold's
  validation videos: per-frame softmax of head ``"x"``, argmax decoding
  (:func:`signspot.decode.decode_frame_scores`) and the official F1
  (:func:`signspot.metric.official_score`) against the validation CSV's signs;
* writes ``<run_dir>/config.json``, ``history.jsonl`` (one row per epoch), ``ckpts/latest_checkpoint.pt``
  every epoch and the ``eval.keep_best`` best ``ckpts/best_checkpoint_{epoch}_{f1:.4f}.pt``;
* resumes from ``latest_checkpoint.pt`` (``train.resume``) to the same weights an uninterrupted run
  reaches: every random stream (sampler, dataset, DataLoader workers, mixup, dropout) is re-derived
  from ``(seed, epoch, rank)`` at the start of each epoch;
* runs under ``torchrun`` with DistributedDataParallel (NCCL on CUDA, gloo on CPU): the sampler gives
  each process its own slice of the balanced draw, validation splits the videos between processes
  and gathers their predictions, losses are averaged over processes, and only rank 0 writes;
* uses bf16 autocast on CUDA where supported (else fp16 with a gradient scaler) and fp32 on CPU.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from .checkpoint_io import (
    LATEST_NAME,
    list_best_checkpoints,
    load_training_checkpoint,
    restore_rng_state,
    save_checkpoint,
    save_if_best,
)
from .config import Config, ConfigError, config_to_dict, config_to_json, load_config
from .distributed import DistInfo, all_gather_objects, all_reduce_sum, barrier, init_distributed, shutdown_distributed
from .io import atomic_write
from .losses import head_losses, weighted_total

__all__ = [
    "DataError",
    "TrainingDivergedError",
    "main",
    "train",
    "read_fold_csv",
    "intervals_from_rows",
    "cosine_factor",
    "epoch_seed",
]

# Independent random streams derived per (seed, epoch, rank).
_STREAM_TORCH, _STREAM_LOADER, _STREAM_MIXUP = 0, 1, 2


class DataError(ValueError):
    """Training data that cannot be used (missing file, unknown video, bad label, empty fold)."""


class TrainingDivergedError(RuntimeError):
    """The loss stopped being finite."""


# ------------------------------------------------------------------ small pure helpers
def epoch_seed(seed: int, epoch: int, rank: int, stream: int) -> int:
    """A 63-bit seed for one random stream of one epoch on one process."""
    return int(np.random.SeedSequence([seed, epoch, rank, stream]).generate_state(2, dtype=np.uint64)[0] >> 1)


def cosine_factor(iteration: int, total_iterations: int, min_factor: float) -> float:
    """Learning-rate multiplier: cosine from 1 at iteration 0 to ``min_factor`` at the last one."""
    progress = min(iteration / max(total_iterations, 1), 1.0)
    return min_factor + (1.0 - min_factor) * 0.5 * (1.0 + math.cos(math.pi * progress))


def read_fold_csv(path: str | os.PathLike, store, num_classes: int, *, role: str) -> list:
    """Rows of a fold CSV, checked against the frame store and ``num_classes``; errors name the file."""
    from datasets.windows import read_fold_csv as read_rows

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
    return rows


def intervals_from_rows(rows: list, store) -> dict:
    """Ground truth ``{video: [[cls, start_ms, end_ms]]}`` from fold-CSV frames, converted as the decoder does."""
    gt: dict = {}
    for row in rows:
        fps = store.fps(row["video"])
        start_ms, end_ms = int(row["start_frame"] / fps * 1000), int(row["end_frame"] / fps * 1000)
        gt.setdefault(row["video"], []).append([int(row["label"]), start_ms, end_ms])
    return gt


# ------------------------------------------------------------------ runtime set-up
@dataclass
class Runtime:
    device: torch.device
    dist: DistInfo
    amp_dtype: Optional[torch.dtype]  # None: full precision
    use_scaler: bool

    def autocast(self):
        if self.amp_dtype is None:
            return nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.amp_dtype)


def _setup_runtime(cfg: Config) -> Runtime:
    wanted = cfg.train.device
    use_cuda = wanted.startswith("cuda") or (wanted == "auto" and torch.cuda.is_available())
    if use_cuda and not torch.cuda.is_available():
        raise ConfigError(f"train.device: {wanted!r} asked for, but CUDA is not available here")
    dist_info = init_distributed(use_cuda)
    if use_cuda:
        index = dist_info.local_rank if (dist_info.enabled or wanted in ("auto", "cuda")) else int(wanted.split(":")[1])
        device = torch.device("cuda", index)
        torch.cuda.set_device(device)
    else:
        device = torch.device("cpu")
    amp = cfg.train.amp
    if device.type != "cuda":
        if amp in ("bf16", "fp16"):
            print(f"train.amp={amp} is for CUDA; training in float32 on {device}", file=sys.stderr)
        return Runtime(device, dist_info, None, False)
    if amp == "auto":
        amp = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    if amp == "off":
        return Runtime(device, dist_info, None, False)
    dtype = torch.bfloat16 if amp == "bf16" else torch.float16
    return Runtime(device, dist_info, dtype, dtype == torch.float16)


# ------------------------------------------------------------------ data
@dataclass
class ValidationSet:
    videos: list  # every validation video
    gt: dict  # {video: [[cls, start_ms, end_ms]]}
    dataset: object  # ValWindowDataset over this process's share of the videos, or None
    loader: Optional[DataLoader]  # built once; its workers persist between validations


def _open_store(cfg: Config):
    from datasets.frame_store import FrameStore

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


def _loader_workers(num_workers: int, rt: Runtime) -> dict:
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
    the loader rotates, crops and flips, the colour steps (torchvision's float reference)
    run on the training device; ``"auto"``: ``"device"`` on a GPU (the colour steps are
    the costliest part on a CPU core), ``"loader"`` on a CPU (where torchvision's float
    colour steps are several times slower than OpenCV's).
    """
    if augment_on == "auto":
        augment_on = "device" if device.type == "cuda" else "loader"
    if augment_on == "loader":
        return "fast"
    if augment_on == "device":
        return "device"
    raise ConfigError(f"data.augment_on must be 'auto', 'loader' or 'device', got {augment_on!r}")


def _build_train_loader(cfg: Config, store, rt: Runtime):
    from datasets.samplers import ClassBalancedSampler
    from datasets.transforms import TrainClipTransform
    from datasets.windows import TrainWindowDataset, collate_windows

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
    if cfg.data.balanced_sampling:
        sampler = ClassBalancedSampler(dataset.labels, seed=cfg.train.seed, rank=rank, world_size=world)
    else:
        sampler = torch.utils.data.DistributedSampler(
            dataset, num_replicas=world, rank=rank, shuffle=True, seed=cfg.train.seed
        )
    generator = torch.Generator()
    loader = DataLoader(
        _EpochIndexedDataset(dataset),
        batch_size=cfg.train.batch_size,
        sampler=_EpochIndexedSampler(sampler),
        collate_fn=collate_windows,
        generator=generator,
        drop_last=cfg.train.drop_last,
        **_loader_workers(cfg.data.num_workers, rt),
    )
    if len(loader) == 0:
        raise DataError(
            f"{cfg.data.train_csv}: {len(dataset)} samples give no batch of {cfg.train.batch_size} per process "
            f"({world} process(es)) with train.drop_last=True"
        )
    counts = all_gather_objects(len(loader))
    if len(set(counts)) != 1:
        raise RuntimeError(f"processes would run different numbers of batches per epoch: {counts}")
    return loader, generator, dataset.transform


def _build_validation(cfg: Config, store, rt: Runtime) -> Optional[ValidationSet]:
    if cfg.eval.every_epochs == 0:
        return None
    if cfg.data.val_csv is None:
        raise ConfigError("data.folds_dir or data.val_csv: one must be set to validate (or set eval.every_epochs=0)")
    rows = read_fold_csv(cfg.data.val_csv, store, cfg.data.num_classes, role="val")
    videos = sorted({row["video"] for row in rows})
    # Split by video: each process decodes whole videos, only the (small) predictions travel.
    my_videos = videos[rt.dist.rank :: rt.dist.world_size]
    dataset = loader = None
    if my_videos:
        from datasets.transforms import EvalClipTransform
        from datasets.windows import ValWindowDataset

        transform = EvalClipTransform(resize=cfg.data.resize, crop=cfg.data.crop)
        dataset = ValWindowDataset(store, my_videos, window=cfg.data.window, transform=transform)
        loader = DataLoader(
            dataset, batch_size=cfg.eval.batch_size, shuffle=False, **_loader_workers(cfg.eval.num_workers, rt)
        )
    return ValidationSet(videos, intervals_from_rows(rows, store), dataset, loader)


@torch.no_grad()
def validate(model: torch.nn.Module, val: ValidationSet, store, cfg: Config, rt: Runtime) -> dict:
    """Official F1 of head "x" on the validation videos (all processes get the same result)."""
    from signspot.decode import decode_frame_scores
    from signspot.metric import official_score

    model.eval()
    background = cfg.data.num_classes
    window = cfg.data.window
    predictions = {}
    if val.loader is not None:
        dataset = val.dataset
        frame_scores = {}
        for video in dataset.videos:
            scores = np.zeros((store.num_frames(video), background + 1), dtype=np.float32)
            scores[:, background] = 1.0  # frames no window covers count as background
            frame_scores[video] = scores
        for batch in val.loader:
            clip = dataset.transform.device_stage(batch["clip"], rt.device)
            with rt.autocast():
                logits = model(clip)["x"]
            probs = torch.softmax(logits.float(), dim=-1)  # (B, T_x, C+1)
            if probs.shape[1] != window:
                probs = F.interpolate(probs.transpose(1, 2), size=window, mode="nearest").transpose(1, 2)
            probs = probs.cpu().numpy()
            for row, (video_index, start) in enumerate(zip(batch["video_index"].tolist(), batch["start"].tolist())):
                scores = frame_scores[dataset.videos[video_index]]
                count = min(window, len(scores) - start)
                scores[start : start + count] = probs[row, :count]
        for video, scores in frame_scores.items():
            predictions[video] = decode_frame_scores(scores, store.fps(video))
    merged = {}
    for part in all_gather_objects(predictions):
        merged.update(part)
    return official_score(val.gt, merged)


# ------------------------------------------------------------------ model and optimisation
def _build_model(cfg: Config) -> torch.nn.Module:
    from models import build_model

    torch.manual_seed(cfg.train.seed)  # identical initial weights on every process
    try:
        return build_model(
            cfg.model.name, num_classes=cfg.data.num_classes, width=cfg.model.width, dropout=cfg.model.dropout
        )
    except ValueError as exc:
        raise ConfigError(f"model.name / model.width / model.dropout: {exc}") from None


def _initialise_weights(model: torch.nn.Module, cfg: Config, log) -> None:
    from models import load_bsl1k_backbone, load_checkpoint, load_model_weights

    if cfg.model.bsl1k_weights:
        path = Path(cfg.model.bsl1k_weights)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such BSL-1K checkpoint (model.bsl1k_weights)")
        loaded = load_bsl1k_backbone(model, path)
        log(f"initialised the backbone from {path} ({loaded} tensors)")
    elif cfg.model.init_checkpoint:
        path = Path(cfg.model.init_checkpoint)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such checkpoint (model.init_checkpoint)")
        load_model_weights(model, load_checkpoint(path), source=str(path))
        log(f"initialised the model from {path}")


# ------------------------------------------------------------------ history
def _read_history(path: Path) -> list:
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text().splitlines():
        if line.strip():
            rows.append(json.loads(line))
    return rows


def _write_history(path: Path, rows: list) -> None:
    with atomic_write(path, "w") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")


def _config_differences(saved: dict, current: dict) -> list:
    ignored = {("train", "resume"), ("train", "stop_after_epoch"), ("train", "log_every"), ("train", "device"),
               ("data", "num_workers"), ("eval", "num_workers"), ("eval", "batch_size")}
    diffs = []
    for section, values in current.items():
        for key, value in values.items():
            if section == "io" or (section, key) in ignored:
                continue
            old = saved.get(section, {}).get(key, "<absent>")
            if isinstance(old, list):
                old = tuple(old)
            if old != value:
                diffs.append(f"{section}.{key}: {old!r} -> {value!r}")
    return diffs


# ------------------------------------------------------------------ the loop
def train(cfg: Config) -> dict:
    """Train one run as ``cfg`` says; returns a summary (last epoch, best F1, paths)."""
    rt = _setup_runtime(cfg)
    try:
        return _train(cfg, rt)
    finally:
        shutdown_distributed()


def _train(cfg: Config, rt: Runtime) -> dict:
    is_main = rt.dist.is_main

    def log(message: str) -> None:
        if is_main:
            print(message, flush=True)

    run_dir, ckpt_dir = Path(cfg.io.run_dir), Path(cfg.io.ckpt_dir)
    history_path = Path(cfg.io.history_path)
    config_dict = config_to_dict(cfg)
    if is_main:
        log("resolved config:\n" + config_to_json(cfg))
        run_dir.mkdir(parents=True, exist_ok=True)
        with atomic_write(cfg.io.config_path, "w") as f:
            f.write(config_to_json(cfg) + "\n")
    precision = "float32" if rt.amp_dtype is None else str(rt.amp_dtype).replace("torch.", "")
    log(f"device {rt.device}, {precision}, {rt.dist.world_size} process(es)")

    store = _open_store(cfg)
    loader, loader_generator, train_transform = _build_train_loader(cfg, store, rt)
    where = ("rotation/crop/flip in the loader, colour steps on the device" if train_transform.backend == "device"
             else "all in the loader")
    log(f"data: {cfg.data.num_workers} loader worker(s) per process; augmentation: {where} "
        f"(data.augment_on={cfg.data.augment_on})")
    val = _build_validation(cfg, store, rt)

    model = _build_model(cfg)
    latest_path = ckpt_dir / LATEST_NAME
    resume_ckpt = None
    if cfg.train.resume and latest_path.is_file():
        resume_ckpt = load_training_checkpoint(latest_path)
        for diff in _config_differences(resume_ckpt.get("config", {}), config_dict):
            log(f"warning: resuming with a changed setting {diff}")
    if resume_ckpt is None:
        _initialise_weights(model, cfg, log)
    else:
        from models import load_model_weights

        load_model_weights(model, resume_ckpt["model"], source=str(latest_path))
    model.to(rt.device)
    bare_model = model
    if rt.dist.enabled:
        # static_graph: the backbone's unused "logits" layer (kept for state-dict compatibility)
        # never gets a gradient; a static graph lets DDP skip it without a per-step search.
        model = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[rt.device.index] if rt.device.type == "cuda" else None, static_graph=True
        )
    if cfg.train.compile:
        model = torch.compile(model)

    optimizer = torch.optim.AdamW(
        bare_model.parameters(), lr=cfg.optim.lr, betas=cfg.optim.betas, weight_decay=cfg.optim.weight_decay
    )
    iters_per_epoch = len(loader)
    total_iterations = iters_per_epoch * cfg.train.epochs
    min_factor = cfg.optim.min_lr_factor
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda it: cosine_factor(it, total_iterations, min_factor)
    )
    scaler = torch.amp.GradScaler(rt.device.type, enabled=rt.use_scaler)

    start_epoch, iteration = 0, 0
    if resume_ckpt is not None:
        optimizer.load_state_dict(resume_ckpt["optimizer"])
        scheduler.load_state_dict(resume_ckpt["scheduler"])
        if resume_ckpt.get("scaler") is not None and rt.use_scaler:
            scaler.load_state_dict(resume_ckpt["scaler"])
        start_epoch, iteration = int(resume_ckpt["epoch"]), int(resume_ckpt["iteration"])
        if rt.dist.world_size == 1:  # per-process streams are re-derived per epoch anyway
            restore_rng_state(resume_ckpt["rng"])
        log(f"resumed from {latest_path}: {start_epoch} epoch(s), {iteration} iteration(s) done")
        del resume_ckpt

    history = [row for row in _read_history(history_path) if row.get("epoch", 0) <= start_epoch] if is_main else []
    writer = None
    if is_main and cfg.io.tensorboard:
        from torch.utils.tensorboard import SummaryWriter  # optional dependency, imported only when enabled

        writer = SummaryWriter(log_dir=str(run_dir / "tensorboard"), purge_step=iteration)

    head_names = None
    last_metrics: dict = {}
    stop_epoch = cfg.train.epochs if cfg.train.stop_after_epoch is None else min(cfg.train.epochs, cfg.train.stop_after_epoch)
    if start_epoch >= cfg.train.epochs:
        log(f"{latest_path} already holds all {cfg.train.epochs} epochs; nothing to train")
    for epoch in range(start_epoch, stop_epoch):
        epoch_number = epoch + 1
        rank = rt.dist.rank
        torch.manual_seed(epoch_seed(cfg.train.seed, epoch, rank, _STREAM_TORCH))
        loader_generator.manual_seed(epoch_seed(cfg.train.seed, epoch, rank, _STREAM_LOADER))
        mixup_rng = np.random.default_rng(epoch_seed(cfg.train.seed, epoch, rank, _STREAM_MIXUP))
        loader.sampler.set_epoch(epoch)  # also tells the dataset, through the indices it yields
        model.train()

        sums = None  # running (per-head losses..., total) on the device, since the last sync
        epoch_sums = None
        clips = 0
        start_time = time.perf_counter()
        progress = _progress(is_main, iters_per_epoch, f"epoch {epoch_number}/{cfg.train.epochs}")
        for step, batch in enumerate(loader, 1):
            clip = train_transform.device_stage(batch["clip"], rt.device)  # uint8 -> float (augmented) on the device
            if "lease" in batch:  # the worker may now write a later batch into that memory
                batch["lease"].release()
            target = batch["target"].to(rt.device, non_blocking=True)
            lam, perm = 1.0, None
            if cfg.train.mixup_alpha > 0 and clip.shape[0] > 1:
                lam = float(mixup_rng.beta(cfg.train.mixup_alpha, cfg.train.mixup_alpha))
                perm = torch.from_numpy(mixup_rng.permutation(clip.shape[0])).to(rt.device)
                clip = lam * clip + (1.0 - lam) * clip[perm]
            with rt.autocast():
                outputs = model(clip)
            if head_names is None:
                from models import HEAD_NAMES

                # train.head_weights follow HEAD_NAMES' order; heads outside it come after
                head_names = tuple(n for n in HEAD_NAMES if n in outputs) + tuple(
                    n for n in outputs if n not in HEAD_NAMES
                )
                if len(head_names) != len(cfg.train.head_weights):
                    raise ConfigError(
                        f"train.head_weights: {len(cfg.train.head_weights)} weights for {len(head_names)} heads {head_names}"
                    )
            losses = head_losses(outputs, target, maxfix=cfg.train.maxfix)
            if perm is not None:
                other = head_losses(outputs, target[perm], maxfix=cfg.train.maxfix)
                losses = {name: lam * losses[name] + (1.0 - lam) * other[name] for name in losses}
            loss = weighted_total(losses, head_names, cfg.train.head_weights)

            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            if cfg.optim.grad_clip is not None:
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(bare_model.parameters(), cfg.optim.grad_clip)
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            iteration += 1
            clips += clip.shape[0]

            values = torch.stack([losses[n].detach() for n in head_names] + [loss.detach(), loss.new_ones(())])
            sums = values if sums is None else sums + values
            if step % cfg.train.log_every == 0 or step == iters_per_epoch:
                synced = all_reduce_sum(sums.clone()).tolist()  # one device sync per log interval
                epoch_sums = synced if epoch_sums is None else [a + b for a, b in zip(epoch_sums, synced)]
                sums = None
                mean_loss = synced[-2] / synced[-1]
                if not math.isfinite(mean_loss):
                    raise TrainingDivergedError(
                        f"the training loss became {mean_loss} at epoch {epoch_number}, iteration {iteration}; "
                        f"stopped without saving. The last good checkpoint is "
                        f"{latest_path if latest_path.is_file() else '(none yet)'}; lower optim.lr or set optim.grad_clip"
                    )
                elapsed = time.perf_counter() - start_time
                if progress is not None:
                    progress.set_postfix(loss=f"{mean_loss:.4f}", clips_s=f"{clips * rt.dist.world_size / elapsed:.1f}")
                if writer is not None:
                    writer.add_scalar("train/loss", mean_loss, iteration)
                    writer.add_scalar("train/lr", scheduler.get_last_lr()[0], iteration)
            if progress is not None:
                progress.update(1)
        if progress is not None:
            progress.close()
        epoch_time = time.perf_counter() - start_time
        count = epoch_sums[-1]
        row = {
            "epoch": epoch_number,
            "iteration": iteration,
            "lr": scheduler.get_last_lr()[0],
            "loss": epoch_sums[-2] / count,
            **{f"loss_{name}": epoch_sums[i] / count for i, name in enumerate(head_names)},
            "clips_per_s": clips * rt.dist.world_size / epoch_time,
            "epoch_time_s": epoch_time,
        }

        validate_now = val is not None and (
            epoch_number % cfg.eval.every_epochs == 0 or epoch_number == cfg.train.epochs
        )
        metrics = {}
        if validate_now:
            val_start = time.perf_counter()
            score = validate(bare_model, val, store, cfg, rt)
            metrics = {f"val_{key}": value for key, value in score.items()}
            metrics["val_time_s"] = time.perf_counter() - val_start
            row.update(metrics)
            last_metrics = metrics
            log(
                f"epoch {epoch_number}: val F1 {score['f1']:.4f} (precision {score['precision']:.4f}, "
                f"recall {score['recall']:.4f})"
            )
        if is_main:
            history.append(row)
            _write_history(history_path, history)
            ckpt_args = dict(
                model=bare_model, optimizer=optimizer, scheduler=scheduler, scaler=scaler, epoch=epoch_number,
                iteration=iteration, config=config_dict, metrics=row,
            )
            save_checkpoint(latest_path, **ckpt_args)
            if validate_now:
                best = save_if_best(
                    ckpt_dir, epoch_number, metrics["val_f1"], cfg.eval.keep_best,
                    lambda path: save_checkpoint(path, **ckpt_args),
                )
                if best is not None:
                    log(f"saved {best}")
            if writer is not None:
                for key, value in row.items():
                    if key not in ("epoch", "iteration"):
                        writer.add_scalar(f"epoch/{key}", value, epoch_number)
                writer.flush()
            log(
                f"epoch {epoch_number}: loss {row['loss']:.4f}, lr {row['lr']:.3g}, "
                f"{row['clips_per_s']:.1f} clips/s"
            )
        barrier()

    if writer is not None:
        writer.close()
    best = list_best_checkpoints(ckpt_dir) if is_main else []
    return {
        "run_dir": str(run_dir),
        "epochs_done": max(stop_epoch, start_epoch),
        "iteration": iteration,
        "latest_checkpoint": str(latest_path),
        "best_checkpoints": [str(p) for _, _, p in best],
        "best_f1": best[0][0] if best else None,
        "last_metrics": last_metrics,
    }


def _progress(enabled: bool, total: int, desc: str):
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, dynamic_ncols=True, leave=False, file=sys.stderr)


def main(config: Optional[str] = None, overrides: Optional[Sequence[str]] = None, resume: Optional[bool] = None) -> dict:
    """Resolve the config file + overrides (+ the --resume/--no-resume switch) and train."""
    cfg = load_config(config, overrides or ())
    if resume is not None:
        cfg.train.resume = resume
    return train(cfg)


# ------------------------------------------------------------------ the original grid
SPLIT_FOLDS = {"original_split": 5, "new_split": 7}  # folds per split when the folds folder is not there yet
GRID_NEG_PROBS = (0.0, 0.1, 0.5)


def neg_tag(neg_prob: float) -> str:
    """The released run names' spelling of neg_prob: 0 -> neg0, 0.1 -> neg01, 0.5 -> neg05."""
    return "neg" + f"{neg_prob:g}".replace(".", "")


def count_folds(split_dir: Path, default: int) -> int:
    """Folds in a split folder (``train_{k}.csv`` files), or ``default`` if it has none."""
    found = sorted(int(p.stem.split("_")[1]) for p in split_dir.glob("train_*.csv") if p.stem.split("_")[1].isdigit())
    return len(found) if found else default


def grid_runs(
    folds_root: str | os.PathLike,
    out: str | os.PathLike,
    *,
    splits: Sequence[str] = tuple(SPLIT_FOLDS),
    neg_probs: Sequence[float] = GRID_NEG_PROBS,
    exclude_folds: Sequence[int] = (),
) -> list[dict]:
    """One entry per run of the grid: ``{"run_dir", "overrides"}``, named like the released runs
    (``<out>/5fold_neg01/maxfix_neg01_fold4``)."""
    runs = []
    for split in splits:
        if split not in SPLIT_FOLDS:
            raise ConfigError(f"unknown split {split!r}; choose from {', '.join(SPLIT_FOLDS)}")
        split_dir = Path(folds_root) / split
        num_folds = count_folds(split_dir, SPLIT_FOLDS[split])
        for neg_prob in neg_probs:
            tag = neg_tag(neg_prob)
            for fold in range(num_folds):
                if fold in exclude_folds:
                    continue
                run_dir = Path(out) / f"{num_folds}fold_{tag}" / f"maxfix_{tag}_fold{fold}"
                runs.append({
                    "run_dir": str(run_dir),
                    "overrides": [
                        f"data.folds_dir={split_dir}",
                        f"data.fold={fold}",
                        f"data.neg_prob={neg_prob}",
                        f"io.run_dir={run_dir}",
                    ],
                })
    return runs


def train_grid(
    folds_root: str,
    out: str,
    config: str,
    *,
    splits: Sequence[str] = tuple(SPLIT_FOLDS),
    neg_probs: Sequence[float] = GRID_NEG_PROBS,
    exclude_folds: Sequence[int] = (),
    overrides: Sequence[str] = (),
    nproc_per_node: int = 1,
    dry_run: bool = False,
    keep_going: bool = False,
) -> list[dict]:
    """Train every run of the grid one after the other, each in its own process.

    Runs resume from their latest checkpoint, so rerunning the grid after an interruption
    continues where it stopped. Returns ``[{"run_dir", "command", "returncode"}]``
    (``returncode`` None for a dry run).
    """
    import shlex
    import subprocess

    main_py = Path(__file__).resolve().parents[1] / "main.py"
    if nproc_per_node > 1:
        launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc_per_node}"]
    else:
        launcher = [sys.executable]
    results = []
    runs = grid_runs(folds_root, out, splits=splits, neg_probs=neg_probs, exclude_folds=exclude_folds)
    for number, run in enumerate(runs, 1):
        command = launcher + [str(main_py), "--config", str(config)]
        for item in list(run["overrides"]) + list(overrides):
            command += ["--set", item]
        print(f"[{number}/{len(runs)}] {shlex.join(command)}", flush=True)
        returncode = None
        if not dry_run:
            returncode = subprocess.run(command).returncode
            if returncode != 0:
                message = f"run {run['run_dir']} failed with exit status {returncode}"
                if not keep_going:
                    raise RuntimeError(message + " (use --keep-going to continue with the other runs)")
                print(message, file=sys.stderr)
        results.append({"run_dir": run["run_dir"], "command": command, "returncode": returncode})
    return results
