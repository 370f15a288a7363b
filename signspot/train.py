"""Training of HS-I3D on one fold: the original recipe plus what a user expects today.

:func:`train` runs what a resolved config (:mod:`signspot.config`) says, in four steps:

* :func:`build` opens the store, builds the loader (:mod:`signspot.train_data`),
  the validation set (:mod:`signspot.validate`), the model and its optimisation, and
  resumes from ``latest_checkpoint.pt`` (``train.resume``) to the same state an
  uninterrupted run reaches: every random stream (sampler, dataset, DataLoader
  workers, mixup, dropout) is re-derived from ``(seed, epoch, rank)`` per epoch;
* :func:`train_one_epoch`: training windows sampled per fold-CSV row (``neg_prob``
  random negatives), class-balanced, augmented per clip; targets max-pooled to each
  head's steps with "maxfix" and scored with cross-entropy against probability
  targets (:mod:`signspot.losses`); mixup of clips and losses; AdamW with a cosine
  schedule to ``min_lr_factor * lr`` stepped every iteration;
* every ``eval.every_epochs`` epochs, the official F1 of the validation videos;
* :func:`save_epoch` writes ``history.jsonl`` (one row per epoch),
  ``ckpts/latest_checkpoint.pt`` and the ``eval.keep_best`` best checkpoints
  (:class:`signspot.run_dir.RunDir` owns every name).

Under ``torchrun`` it runs DistributedDataParallel (NCCL on CUDA, gloo on CPU): the
sampler gives each process its own slice of the balanced draw, losses are averaged
over processes, and only rank 0 writes. bf16 autocast on CUDA where supported (else
fp16 with a gradient scaler), fp32 on CPU (:mod:`signspot.runtime`).
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch

from .checkpoint import load_training_checkpoint, restore_rng_state, save_checkpoint
from .config import Config, ConfigError, config_to_dict, config_to_json
from .formats.errors import SignspotError
from .formats.safe_io import atomic_write
from .formats.timebase import HEAD_NAMES
from .losses import head_losses, weighted_total
from .run_dir import RunDir, RunDirError
from .runtime import Runtime, all_reduce_sum, barrier, setup_runtime
from .train_data import build_train_loader, open_store
from .validate import build_validation, validate

__all__ = ["TrainingDivergedError", "build", "cosine_factor", "epoch_seed", "run_training", "save_epoch", "train",
           "train_one_epoch"]

# Independent random streams derived per (seed, epoch, rank).
_STREAM_TORCH, _STREAM_LOADER, _STREAM_MIXUP = 0, 1, 2


class TrainingDivergedError(SignspotError, RuntimeError):
    """The loss stopped being finite."""


def epoch_seed(seed: int, epoch: int, rank: int, stream: int) -> int:
    """A 63-bit seed for one random stream of one epoch on one process."""
    return int(np.random.SeedSequence([seed, epoch, rank, stream]).generate_state(2, dtype=np.uint64)[0] >> 1)


def cosine_factor(iteration: int, total_iterations: int, min_factor: float) -> float:
    """Learning-rate multiplier: cosine from 1 at iteration 0 to ``min_factor`` at the last one."""
    progress = min(iteration / max(total_iterations, 1), 1.0)
    return min_factor + (1.0 - min_factor) * 0.5 * (1.0 + math.cos(math.pi * progress))


@dataclass
class Session:
    """Everything one training invocation works with, built once by :func:`build`."""

    cfg: Config
    rt: Runtime
    run: RunDir
    log: Callable[[str], None]
    store: object
    loader: torch.utils.data.DataLoader
    loader_generator: torch.Generator
    train_transform: object
    val: object  # signspot.validate.ValidationSet or None
    model: torch.nn.Module  # what the step calls (DDP / compiled wrappers included)
    bare_model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler
    start_epoch: int = 0
    iteration: int = 0
    history: list = field(default_factory=list)
    writer: object = None  # TensorBoard SummaryWriter (io.tensorboard)


# ------------------------------------------------------------------ build
def _build_model(cfg: Config) -> torch.nn.Module:
    from signspot.models import build_model

    torch.manual_seed(cfg.train.seed)  # identical initial weights on every process
    try:
        return build_model(
            cfg.model.name, num_classes=cfg.data.num_classes, width=cfg.model.width, dropout=cfg.model.dropout
        )
    except ValueError as exc:
        raise ConfigError(f"model.name / model.width / model.dropout: {exc}") from None


def _initialise_weights(model: torch.nn.Module, cfg: Config, log) -> None:
    from .checkpoint import load_bsl1k_backbone, load_checkpoint, load_model_weights

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


def _claim_run_dir(run: RunDir, cfg: Config, move_aside: bool, rank_is_main: bool, log) -> None:
    """A fresh run (``train.resume`` off) never mixes with, or replaces, a run already in the folder."""
    if cfg.train.resume or not run.holds_run():
        return
    if not move_aside:
        raise RunDirError(
            f"{run.path}: holds a training run ({run.latest.name} / {run.history_path.name}) and train.resume is off; "
            "nothing was changed. Resume it (drop --no-resume), start elsewhere (--set io.run_dir=...), "
            "or move the old run aside (--move-aside)"
        )
    barrier()  # every process saw the old run before rank 0 moves it
    if rank_is_main:
        log(f"moved the old run aside to {run.move_aside()}")
    barrier()


def _maybe_sync_batchnorm(model: torch.nn.Module, cfg: Config, rt: Runtime, log) -> torch.nn.Module:
    """With ``train.sync_batchnorm`` under torchrun, BatchNorm statistics over the whole step's batch."""
    if not (cfg.train.sync_batchnorm and rt.dist.enabled):
        return model
    if rt.device.type != "cuda":
        raise ConfigError("train.sync_batchnorm: synchronised BatchNorm runs on CUDA devices only")
    log("BatchNorm statistics are synchronised over the processes (train.sync_batchnorm)")
    return torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)


def build(cfg: Config, rt: Runtime, *, move_aside: bool = False) -> Session:
    """Data, model, optimisation and (with ``train.resume``) the state of the latest checkpoint.

    Every input is checked before anything is written: a failed call leaves the run folder
    as it was. ``move_aside``: a fresh run in a folder that holds one renames the old run first.
    """
    is_main = rt.dist.is_main

    def log(message: str) -> None:
        if is_main:
            print(message, flush=True)

    run = RunDir(cfg.io.run_dir)
    _claim_run_dir(run, cfg, move_aside, is_main, log)
    log("resolved config:\n" + config_to_json(cfg))
    log(f"device {rt.device}, {rt.precision}, {rt.dist.world_size} process(es)")

    store = open_store(cfg)
    loader, loader_generator, train_transform = build_train_loader(cfg, store, rt)
    where = ("rotation/resize/crop/flip in the loader, colour steps on the device" if train_transform.backend == "device"
             else "all in the loader")
    log(f"data: {cfg.data.num_workers} loader worker(s) per process; augmentation: {where} "
        f"(data.augment_on={cfg.data.augment_on})")
    val = build_validation(cfg, store, rt)

    model = _build_model(cfg)
    resume_ckpt = None
    if cfg.train.resume and run.latest.is_file():
        resume_ckpt = load_training_checkpoint(run.latest)
        for diff in _config_differences(resume_ckpt.get("config", {}), config_to_dict(cfg)):
            log(f"warning: resuming with a changed setting {diff}")
    if resume_ckpt is None:
        _initialise_weights(model, cfg, log)
    else:
        from .checkpoint import load_model_weights

        load_model_weights(model, resume_ckpt["model"], source=str(run.latest))
    model = _maybe_sync_batchnorm(model, cfg, rt, log)
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
    total_iterations = len(loader) * cfg.train.epochs
    min_factor = cfg.optim.min_lr_factor
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda it: cosine_factor(it, total_iterations, min_factor)
    )
    scaler = torch.amp.GradScaler(rt.device.type, enabled=rt.use_scaler)
    session = Session(cfg, rt, run, log, store, loader, loader_generator, train_transform, val, model, bare_model,
                      optimizer, scheduler, scaler)
    if resume_ckpt is not None:
        optimizer.load_state_dict(resume_ckpt["optimizer"])
        scheduler.load_state_dict(resume_ckpt["scheduler"])
        if resume_ckpt.get("scaler") is not None and rt.use_scaler:
            scaler.load_state_dict(resume_ckpt["scaler"])
        session.start_epoch, session.iteration = int(resume_ckpt["epoch"]), int(resume_ckpt["iteration"])
        if rt.dist.world_size == 1:  # per-process streams are re-derived per epoch anyway
            restore_rng_state(resume_ckpt["rng"])
        log(f"resumed from {run.latest}: {session.start_epoch} epoch(s), {session.iteration} iteration(s) done")
    if is_main:
        # the run's own files are inputs too: a damaged history.jsonl is refused before anything is written
        session.history = [row for row in run.read_history() if row.get("epoch", 0) <= session.start_epoch]
        # everything checked: now the run folder is written
        for leftover in run.remove_leftovers():
            log(f"removed {leftover} (an unfinished write of a killed run)")
        run.path.mkdir(parents=True, exist_ok=True)
        with atomic_write(run.config_path, "w") as f:
            f.write(config_to_json(cfg) + "\n")
        if cfg.io.tensorboard:
            from torch.utils.tensorboard import SummaryWriter  # optional dependency, imported only when enabled

            session.writer = SummaryWriter(log_dir=str(run.tensorboard_dir), purge_step=session.iteration)
    return session


# ------------------------------------------------------------------ one epoch
def _head_names(outputs: dict, cfg: Config) -> tuple:
    """train.head_weights follow HEAD_NAMES' order; heads outside it come after."""
    names = tuple(n for n in HEAD_NAMES if n in outputs) + tuple(n for n in outputs if n not in HEAD_NAMES)
    if len(names) != len(cfg.train.head_weights):
        raise ConfigError(f"train.head_weights: {len(cfg.train.head_weights)} weights for {len(names)} heads {names}")
    return names


def train_one_epoch(s: Session, epoch: int) -> dict:
    """One pass over the training loader; returns the epoch's history row (losses, rate)."""
    cfg, rt = s.cfg, s.rt
    rank = rt.dist.rank
    epoch_number = epoch + 1
    torch.manual_seed(epoch_seed(cfg.train.seed, epoch, rank, _STREAM_TORCH))
    s.loader_generator.manual_seed(epoch_seed(cfg.train.seed, epoch, rank, _STREAM_LOADER))
    mixup_rng = np.random.default_rng(epoch_seed(cfg.train.seed, epoch, rank, _STREAM_MIXUP))
    s.loader.sampler.set_epoch(epoch)  # also tells the dataset, through the indices it yields
    s.model.train()

    steps = len(s.loader)
    head_names = None
    sums = None  # running (per-head losses..., total, count) on the device, since the last sync
    epoch_sums = None
    clips = 0
    start_time = time.perf_counter()
    progress = _progress(rt.dist.is_main, steps, f"epoch {epoch_number}/{cfg.train.epochs}")
    for step, batch in enumerate(s.loader, 1):
        clip = s.train_transform.device_stage(batch["clip"], rt.device)  # uint8 -> float (augmented) on the device
        if "lease" in batch:  # the worker may now write a later batch into that memory
            batch["lease"].release()
        target = batch["target"].to(rt.device, non_blocking=True)
        lam, perm = 1.0, None
        if cfg.train.mixup_alpha > 0 and clip.shape[0] > 1:
            lam = float(mixup_rng.beta(cfg.train.mixup_alpha, cfg.train.mixup_alpha))
            perm = torch.from_numpy(mixup_rng.permutation(clip.shape[0])).to(rt.device)
            clip = lam * clip + (1.0 - lam) * clip[perm]
        with rt.autocast():
            outputs = s.model(clip)
        head_names = head_names or _head_names(outputs, cfg)
        losses = head_losses(outputs, target, maxfix=cfg.train.maxfix)
        if perm is not None:
            other = head_losses(outputs, target[perm], maxfix=cfg.train.maxfix)
            losses = {name: lam * losses[name] + (1.0 - lam) * other[name] for name in losses}
        loss = weighted_total(losses, head_names, cfg.train.head_weights)

        s.optimizer.zero_grad(set_to_none=True)
        s.scaler.scale(loss).backward()
        if cfg.optim.grad_clip is not None:
            s.scaler.unscale_(s.optimizer)
            torch.nn.utils.clip_grad_norm_(s.bare_model.parameters(), cfg.optim.grad_clip)
        s.scaler.step(s.optimizer)
        s.scaler.update()
        s.scheduler.step()
        s.iteration += 1
        clips += clip.shape[0]

        values = torch.stack([losses[n].detach() for n in head_names] + [loss.detach(), loss.new_ones(())])
        sums = values if sums is None else sums + values
        if step % cfg.train.log_every == 0 or step == steps:
            synced = all_reduce_sum(sums.clone()).tolist()  # one device sync per log interval
            epoch_sums = synced if epoch_sums is None else [a + b for a, b in zip(epoch_sums, synced)]
            sums = None
            mean_loss = synced[-2] / synced[-1]
            if not math.isfinite(mean_loss):
                raise TrainingDivergedError(
                    f"the training loss became {mean_loss} at epoch {epoch_number}, iteration {s.iteration}; "
                    f"stopped without saving. The last good checkpoint is "
                    f"{s.run.latest if s.run.latest.is_file() else '(none yet)'}; lower optim.lr or set optim.grad_clip"
                )
            elapsed = time.perf_counter() - start_time
            if progress is not None:
                progress.set_postfix(loss=f"{mean_loss:.4f}", clips_s=f"{clips * rt.dist.world_size / elapsed:.1f}")
            if s.writer is not None:
                s.writer.add_scalar("train/loss", mean_loss, s.iteration)
                s.writer.add_scalar("train/lr", s.scheduler.get_last_lr()[0], s.iteration)
        if progress is not None:
            progress.update(1)
    if progress is not None:
        progress.close()
    epoch_time = time.perf_counter() - start_time
    count = epoch_sums[-1]
    return {
        "epoch": epoch_number,
        "iteration": s.iteration,
        "lr": s.scheduler.get_last_lr()[0],
        "loss": epoch_sums[-2] / count,
        **{f"loss_{name}": epoch_sums[i] / count for i, name in enumerate(head_names)},
        "clips_per_s": clips * rt.dist.world_size / epoch_time,
        "epoch_time_s": epoch_time,
    }


def _validate_epoch(s: Session, epoch_number: int) -> dict:
    """``val_*`` metrics of this epoch, or {} when it is not a validation epoch."""
    cfg = s.cfg
    if s.val is None or not (epoch_number % cfg.eval.every_epochs == 0 or epoch_number == cfg.train.epochs):
        return {}
    start = time.perf_counter()
    official = validate(s.bare_model, s.val, s.store, cfg, s.rt)
    metrics = {f"val_{key}": value for key, value in official.items()}
    metrics["val_time_s"] = time.perf_counter() - start
    s.log(f"epoch {epoch_number}: val F1 {official['f1']:.4f} (precision {official['precision']:.4f}, "
          f"recall {official['recall']:.4f})")
    return metrics


# ------------------------------------------------------------------ save
def save_epoch(s: Session, row: dict) -> None:
    """Rank 0: the history row, on a validated epoch a best checkpoint, then ``latest_checkpoint.pt``.

    ``latest`` comes last: it is what marks the epoch done. A crash (or a full disk) before it
    leaves the previous ``latest``, so a resumed run redoes the whole epoch, best checkpoint
    included (the history is cut back to the epochs ``latest`` holds).
    """
    s.history.append(row)
    s.run.write_history(s.history)
    ckpt_args = dict(
        model=s.bare_model, optimizer=s.optimizer, scheduler=s.scheduler, scaler=s.scaler, epoch=row["epoch"],
        iteration=s.iteration, config=config_to_dict(s.cfg), metrics=row,
    )
    if "val_f1" in row:
        best = s.run.save_if_best(s.history, s.cfg.eval.keep_best, lambda path: save_checkpoint(path, **ckpt_args),
                                  newer_first=s.cfg.eval.compat == "original")
        if best is not None:
            s.log(f"saved {best}")
    save_checkpoint(s.run.latest, **ckpt_args)
    if s.writer is not None:
        for key, value in row.items():
            if key not in ("epoch", "iteration"):
                s.writer.add_scalar(f"epoch/{key}", value, row["epoch"])
        s.writer.flush()
    s.log(f"epoch {row['epoch']}: loss {row['loss']:.4f}, lr {row['lr']:.3g}, {row['clips_per_s']:.1f} clips/s")


# ------------------------------------------------------------------ the run
def train(cfg: Config, *, move_aside: bool = False) -> dict:
    """Train one run as ``cfg`` says; returns a summary (last epoch, best F1, paths)."""
    rt = setup_runtime(cfg.train.device, cfg.train.amp, cpu_autocast=False, flags=("train.device", "train.amp"))
    try:
        s = build(cfg, rt, move_aside=move_aside)
        stop_epoch = cfg.train.epochs if cfg.train.stop_after_epoch is None else min(cfg.train.epochs,
                                                                                   cfg.train.stop_after_epoch)
        if s.start_epoch >= cfg.train.epochs:
            s.log(f"{s.run.latest} already holds all {cfg.train.epochs} epochs; nothing to train")
        last_metrics: dict = {}
        for epoch in range(s.start_epoch, stop_epoch):
            row = train_one_epoch(s, epoch)
            metrics = _validate_epoch(s, epoch + 1)
            if metrics:
                row.update(metrics)
                last_metrics = metrics
            if rt.dist.is_main:
                save_epoch(s, row)
            barrier()
        if s.writer is not None:
            s.writer.close()
        best = s.run.best_checkpoints(s.history, newer_first=cfg.eval.compat == "original") if rt.dist.is_main else []
        return {
            "run_dir": str(s.run.path),
            "epochs_done": max(stop_epoch, s.start_epoch),
            "iteration": s.iteration,
            "latest_checkpoint": str(s.run.latest),
            "best_checkpoints": [str(p) for _, _, p in best],
            "best_f1": best[0][0] if best else None,
            "last_metrics": last_metrics,
        }
    finally:
        rt.shutdown()


def run_training(config: Optional[str] = None, overrides=(), resume: Optional[bool] = None,
                 move_aside: bool = False) -> dict:
    """Resolve a config file + ``--set`` overrides (+ the resume switch) and :func:`train`."""
    from .config import load_config

    cfg = load_config(config, overrides or ())
    if resume is not None:
        cfg.train.resume = resume
    return train(cfg, move_aside=move_aside)


def _progress(enabled: bool, total: int, desc: str):
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, dynamic_ncols=True, leave=False, file=sys.stderr)
