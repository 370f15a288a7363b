"""Where and how the network runs: device, mixed precision, the torchrun process group.

Training and inference set up the same way. ``torchrun --nproc_per_node N ...`` sets
RANK, WORLD_SIZE and LOCAL_RANK; :func:`setup_runtime` reads them (once, through
:meth:`DistInfo.from_env`), picks the device (under torchrun each process takes the
GPU of its local rank), joins the process group when there is more than one process
(NCCL on CUDA, gloo on CPU) and resolves the autocast precision. Without torchrun
the collective helpers below are single-process no-ops, so callers use the same
code either way.
"""

from __future__ import annotations

import ctypes
import datetime
import os
import sys
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Optional

import torch
import torch.distributed as dist

from .formats.errors import SignspotError

__all__ = [
    "AMP_CHOICES",
    "DistInfo",
    "Runtime",
    "RuntimeSetupError",
    "all_gather_objects",
    "all_reduce_sum",
    "barrier",
    "fix_malloc_mmap_threshold",
    "loader_worker_init",
    "resolve_amp",
    "resolve_device",
    "setup_runtime",
    "shutdown_distributed",
]

AMP_CHOICES = ("auto", "bf16", "fp16", "off")


class RuntimeSetupError(SignspotError, ValueError):
    """A device or precision this machine cannot provide."""


@dataclass(frozen=True)
class DistInfo:
    """This process's place among torchrun's processes (rank 0 of 1 without torchrun)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @classmethod
    def from_env(cls) -> "DistInfo":
        world_size = int(os.environ.get("WORLD_SIZE", "1"))
        if world_size <= 1:
            return cls()
        return cls(int(os.environ["RANK"]), world_size, int(os.environ.get("LOCAL_RANK", "0")))

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


@dataclass(frozen=True)
class Runtime:
    device: torch.device
    dist: DistInfo
    amp_dtype: Optional[torch.dtype]  # None: full precision
    use_scaler: bool  # fp16 training needs a gradient scaler
    owns_group: bool = False  # setup_runtime joined the process group: shutdown() leaves it

    def autocast(self):
        if self.amp_dtype is None:
            return nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.amp_dtype)

    @property
    def precision(self) -> str:
        return "float32" if self.amp_dtype is None else str(self.amp_dtype).replace("torch.", "")

    def shutdown(self) -> None:
        if self.owns_group:
            shutdown_distributed()


def resolve_device(wanted: Optional[str], info: DistInfo, *, flag: str = "device") -> torch.device:
    """``auto`` / ``None`` (CUDA when available), ``cpu``, ``cuda`` or ``cuda:N``.

    Under torchrun every process takes the GPU of its local rank.
    """
    wanted = "auto" if wanted in (None, "") else str(wanted)
    if wanted == "auto":
        wanted = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(wanted)
    except RuntimeError:
        raise RuntimeSetupError(f"{flag}: {wanted!r} is not a device; use auto, cpu, cuda or cuda:N") from None
    if device.type != "cuda":
        return device
    if not torch.cuda.is_available():
        raise RuntimeSetupError(f"{flag}: {wanted!r} asked for, but CUDA is not available on this machine")
    index = info.local_rank if (info.enabled or device.index is None) else device.index
    return torch.device("cuda", index)


def resolve_amp(amp: Optional[str], device: torch.device, *, cpu_autocast: bool, flag: str = "amp") -> Optional[torch.dtype]:
    """The autocast dtype for ``amp`` (``auto``/``bf16``/``fp16``/``off``/None) on ``device``.

    ``auto``: bf16 where the GPU supports it, else fp16; full precision on a CPU.
    On a CPU, ``cpu_autocast=True`` (inference) runs bf16 autocast and refuses fp16;
    ``cpu_autocast=False`` (training) falls back to float32 with a note.
    """
    amp = "off" if amp in (None, "") else amp
    if amp not in AMP_CHOICES:
        raise RuntimeSetupError(f"{flag}: must be one of {', '.join(AMP_CHOICES)}, got {amp!r}")
    if device.type != "cuda":
        if amp in ("auto", "off"):
            return None
        if not cpu_autocast:
            print(f"{flag}={amp} is for CUDA; running in float32 on {device}", file=sys.stderr)
            return None
        if amp == "fp16":
            raise RuntimeSetupError(f"{flag} fp16 needs a CUDA device; use bf16 on the CPU")
        return torch.bfloat16
    if amp == "auto":
        amp = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return {"off": None, "bf16": torch.bfloat16, "fp16": torch.float16}[amp]


def setup_runtime(device: Optional[str], amp: Optional[str], *, cpu_autocast: bool, timeout_s: float = 1800.0,
                  flags: tuple[str, str] = ("device", "amp")) -> Runtime:
    """Device, precision and (under torchrun) the process group of this process."""
    info = DistInfo.from_env()
    resolved = resolve_device(device, info, flag=flags[0])
    dtype = resolve_amp(amp, resolved, cpu_autocast=cpu_autocast, flag=flags[1])
    owns_group = False
    if resolved.type == "cuda":
        torch.cuda.set_device(resolved)
    if info.enabled and not dist.is_initialized():
        kwargs = {"device_id": resolved} if resolved.type == "cuda" else {}
        dist.init_process_group(
            backend="nccl" if resolved.type == "cuda" else "gloo",
            timeout=datetime.timedelta(seconds=timeout_s),
            **kwargs,
        )
        owns_group = True
    return Runtime(resolved, info, dtype, dtype == torch.float16, owns_group)


def shutdown_distributed() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def _active() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """Sum ``tensor`` over processes in place (returns it); identity without a group."""
    if _active():
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def all_gather_objects(obj) -> list:
    """Every process's ``obj`` (picklable, small), in rank order, on every process."""
    if not _active():
        return [obj]
    gathered = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, obj)
    return gathered


def barrier() -> None:
    if _active():
        dist.barrier()


def fix_malloc_mmap_threshold(threshold: int = 1 << 20) -> bool:
    """Keep glibc from hoarding the large blocks every batch allocates and frees.

    glibc raises its mmap threshold each time a large block is freed; later blocks
    of that size then come from the heap, which is not given back, and a process
    that allocates a few tens of MB per batch grows by that much per batch. A fixed threshold keeps such blocks in mmap,
    returned on free. Returns False where the C library is not glibc.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
        return bool(libc.mallopt(-3, int(threshold)))  # -3: M_MMAP_THRESHOLD
    except (OSError, AttributeError):
        return False


def loader_worker_init(_worker_id: int) -> None:
    """DataLoader ``worker_init_fn`` of the scoring loaders: one OpenCV thread per worker
    (many decode at once), and the malloc fix above."""
    import cv2

    cv2.setNumThreads(1)
    fix_malloc_mmap_threshold()
