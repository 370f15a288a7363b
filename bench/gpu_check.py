#!/usr/bin/env python
"""The GPU fast path in one command: precision, speed, memory and DDP, printed as one table.

    python bench/gpu_check.py [--out FILE]               # on a CUDA machine: time-boxed to stay under 6 minutes
    python bench/gpu_check.py --cpu-smoke [--out FILE]   # the same code at tiny sizes on the CPU: about a minute

Not yet run on a GPU: ``--cpu-smoke`` runs every row's code, but the CUDA-only parts (NCCL,
inductor, cuDNN, peak memory) have not been run. The GPU time budget: rows start only within
330 s (``--budget-s``), the torch.compile row (run last, shown with the other inference rows)
only if 120 s remain, every timed loop stops after 50 passes or 10 s; an inductor compilation
far beyond two minutes would still overrun.

Everything runs through the project's own functions (``setup_runtime``, ``score_videos``,
``build_train_loader`` inside ``signspot.train.build``, ``train_one_epoch``, ``build_model``)
on a small synthetic frame store made on the fly in a temporary folder (noise frames with
grey blocks as signs, ``bench/bench_train.py``'s data); nothing is downloaded. Rows:

* ``agreement bf16`` / ``agreement fp16``: the full model (``hs_i3d``, seeded weights whose
  BatchNorm statistics are measured on the store's clips, so that its scores depend on the
  frames) scores the store's first videos with :func:`signspot.scoring.score_videos` in float32
  (cuDNN's TF32 switched off, so the reference is float32) and under bf16 / fp16 autocast.
  Value: the fraction of frames whose argmax over the C + 1 columns is float32's; the note
  gives the largest absolute difference of the per-frame scores. The untrained model's scores
  are close to uniform (small top-2 margins), so this is expected to be a lower bound of a
  trained model's agreement (tests/test_precision.py measures the same on the CPU).
* ``inference fp32`` / ``bf16`` / ``bf16 + channels_last_3d`` / ``bf16 + torch.compile``:
  forward passes of the full model on random clips of B x 32 x 3 x 224 x 224 under
  ``torch.inference_mode``: windows per second, after warm-up passes (for torch.compile the
  warm-up includes compiling; its time is in the note), timed for a fixed number of passes or
  a few seconds, whichever comes first. fp32 runs with torch's default TF32 settings.
* ``train, N loader workers``: clips per second of :func:`signspot.train.train_one_epoch`
  (the real loader, augmentation, mixup, losses, AdamW) on the synthetic store, the second
  of two epochs (the first starts the workers and picks the kernels), ``train.amp=auto``
  (bf16 on a GPU that has it).
* ``DDP step``: a one-process group (NCCL on CUDA, gloo with ``--cpu-smoke``) on a free
  local port, the model wrapped in DistributedDataParallel as training wraps it, one
  forward / backward / optimizer step and an all-reduce; value: the step's seconds.

``peak MiB``: ``torch.cuda.max_memory_allocated`` during the row (reset before it); ``-`` on
the CPU. A row that fails prints its error in its note, and the other rows still run; a row
is skipped when the time budget (``--budget-s``) is spent. Exit status 0 when every row ran,
1 otherwise. ``--cpu-smoke``: ``hs_i3d_tiny`` on 16 x 32 x 32 clips, batch 2, 0 and 2 loader
workers, torch.compile with the ``eager`` backend (inductor's CPU compilation alone takes
minutes here), CPU fp16 autocast (which ``setup_runtime`` refuses on a CPU, being emulated).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import dataclasses
import gc
import io
import json
import socket
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from bench_train import make_data  # noqa: E402
from run_all import machine_description  # noqa: E402


@dataclasses.dataclass(frozen=True)
class Sizes:
    device: str
    model: str
    num_classes: int
    window: int
    resize: int
    crop: int
    batch: int
    videos: int  # synthetic store: videos x frames of video_size pixels, stored at `resize`
    frames: int
    video_size: int
    score_videos: int  # agreement rows: the first videos of the store, windows every score_stride frames
    score_stride: int
    train_workers: tuple
    train_batches: int  # iterations per training epoch
    warmup: int  # forward passes before timing
    max_iters: int  # timed forward passes at most ...
    time_box_s: float  # ... or this many seconds
    compile_backend: str
    ddp_backend: str
    budget_s: float


GPU = Sizes(device="cuda", model="hs_i3d", num_classes=60, window=32, resize=256, crop=224, batch=8, videos=6,
            frames=320, video_size=320, score_videos=2, score_stride=8, train_workers=(4, 8), train_batches=40,
            warmup=3, max_iters=50, time_box_s=10.0, compile_backend="inductor", ddp_backend="nccl", budget_s=330.0)
CPU_SMOKE = Sizes(device="cpu", model="hs_i3d_tiny", num_classes=10, window=16, resize=40, crop=32, batch=2, videos=2,
                  frames=64, video_size=48, score_videos=1, score_stride=16, train_workers=(0, 2), train_batches=3,
                  warmup=1, max_iters=3, time_box_s=1.0, compile_backend="eager", ddp_backend="gloo", budget_s=55.0)

COLUMNS = ("check", "setting", "value", "unit", "peak MiB", "note")


# ------------------------------------------------------------------ rows
class Table:
    """Rows run one by one; each keeps its error instead of ending the check."""

    def __init__(self, sz: Sizes):
        self.sz = sz
        self.start = time.perf_counter()
        self.rows: list[dict] = []

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def run(self, check: str, setting: str, measure: Callable[[], dict], reserve_s: float = 0.0) -> dict:
        """``measure()`` returns ``{"value", "unit", "note", ...}``; a row needing ``reserve_s`` more seconds
        than the budget has left is skipped."""
        row = {"check": check, "setting": setting, "value": None, "unit": "", "peak_mib": None, "note": "",
               "status": "ok", "seconds": 0.0}
        if self.elapsed() + reserve_s > self.sz.budget_s:
            row.update(status="skipped", note=f"skipped: the time budget of {self.sz.budget_s:.0f} s is spent")
        else:
            cuda = self.sz.device == "cuda"
            start = time.perf_counter()
            try:
                if cuda:
                    torch.cuda.synchronize()
                    torch.cuda.reset_peak_memory_stats()
                row.update(measure())
                if cuda:
                    torch.cuda.synchronize()
            except Exception as exc:  # the table goes on; the row says what went wrong
                message = " ".join(f"{type(exc).__name__}: {exc}".split())
                row.update(status="error", value=None, note=message[:300])
                print(traceback.format_exc(), file=sys.stderr, flush=True)
            finally:
                gc.collect()
                if cuda:
                    with contextlib.suppress(Exception):  # also after an out-of-memory error
                        row["peak_mib"] = torch.cuda.max_memory_allocated() / 2**20
                        torch.cuda.empty_cache()
            row["seconds"] = time.perf_counter() - start
        self.rows.append(row)
        print(f"[{self.elapsed():5.0f} s] {check} ({setting}): {_value_text(row)} {row['unit']} {row['note']}",
              file=sys.stderr, flush=True)
        return row

    def format(self) -> str:
        cells = [[r["check"], r["setting"], _value_text(r), r["unit"],
                  "-" if r["peak_mib"] is None else f"{r['peak_mib']:,.0f}", r["note"].replace("|", "/")]
                 for r in self.rows]
        widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(COLUMNS)]
        lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(COLUMNS, widths)) + " |",
                 "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
        lines += ["| " + " | ".join(v.ljust(w) for v, w in zip(row, widths)) + " |" for row in cells]
        return "\n".join(lines)


def _value_text(row: dict) -> str:
    if row["status"] == "error":
        return "ERROR"
    if row["status"] == "skipped":
        return "skipped"
    return f"{row['value']:.4g}"


def _passes(n: int) -> str:
    return f"{n} warm-up pass{'' if n == 1 else 'es'}"


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@contextlib.contextmanager
def _no_tf32():
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def _runtime(sz: Sizes, amp: str | None):
    """The engine's runtime for ``amp``; on a CPU, fp16 (refused by setup_runtime there) is built from bf16's."""
    from signspot.runtime import setup_runtime

    if sz.device == "cpu" and amp == "fp16":
        return dataclasses.replace(setup_runtime("cpu", "bf16", cpu_autocast=True), amp_dtype=torch.float16)
    return setup_runtime(sz.device, amp, cpu_autocast=True)


# ------------------------------------------------------------------ data
def make_store(root: Path, sz: Sizes) -> Path:
    """Synthetic videos -> frame store + fold CSVs; the training CSV repeated to ``train_batches`` batches."""
    make_data(root, videos=sz.videos, frames=sz.frames, size=sz.video_size, store_size=sz.resize,
              num_classes=sz.num_classes)
    csv = root / "folds" / "train_0.csv"
    header, *rows = csv.read_text().splitlines()
    wanted = sz.train_batches * sz.batch
    csv.write_text("\n".join([header] + [rows[i % len(rows)] for i in range(wanted)]) + "\n")
    return root


# ------------------------------------------------------------------ agreement
class Agreement:
    """float32 reference scores, computed once, against which each autocast precision is compared."""

    def __init__(self, sz: Sizes, root: Path):
        self.sz, self.root = sz, root
        self._model = self._reference = None

    def _setup(self):
        from signspot.datasets.frame_store import FrameStore
        from signspot.datasets.transforms import EvalClipTransform, normalize_clip
        from signspot.models import build_model, recalibrate_batchnorm

        sz = self.sz
        self.store = FrameStore(self.root / "store")
        self.videos = sorted(self.store.videos)[: sz.score_videos]
        self.transform = EvalClipTransform(sz.resize, sz.crop)
        starts = np.linspace(0, sz.frames - sz.window, sz.batch).astype(int)
        clips = torch.stack([
            normalize_clip(self.transform(self.store.read_frames(self.videos[i % len(self.videos)],
                                                                 list(range(s, s + sz.window)))))
            for i, s in enumerate(starts)
        ])
        torch.manual_seed(0)
        model = build_model(sz.model, num_classes=sz.num_classes).to(sz.device)
        self._model = recalibrate_batchnorm(model, clips.to(sz.device))
        with _no_tf32():
            self._reference = self._scores(_runtime(sz, None))

    def _scores(self, runtime) -> np.ndarray:
        from signspot.scoring import score_videos

        scores = score_videos(self._model, self.store, self.videos, window=self.sz.window, stride=self.sz.score_stride,
                              transform=self.transform, runtime=runtime, batch_size=self.sz.batch, progress=False)
        return np.concatenate([scores[v]["scores"] for v in self.videos])

    def measure(self, amp: str) -> dict:
        if self._reference is None:
            self._setup()
        runtime = _runtime(self.sz, amp)
        low = self._scores(runtime)
        reference = self._reference
        agreement = float((low.argmax(1) == reference.argmax(1)).mean())
        diff = float(np.abs(low - reference).max())
        return {"value": agreement, "unit": "argmax agreement", "max_abs_diff": diff, "frames": len(reference),
                "note": f"max abs diff {diff:.2g}; {len(reference)} frames, stride {self.sz.score_stride}, "
                        f"{len(np.unique(reference.argmax(1)))} argmax classes in fp32"}

    def close(self):
        self._model = self._reference = None


# ------------------------------------------------------------------ inference
def forward_rate(model, clip: torch.Tensor, runtime, sz: Sizes) -> tuple[float, float]:
    """(windows/s, warm-up seconds): ``sz.warmup`` passes, then at most ``sz.max_iters`` or ``sz.time_box_s``."""
    device = clip.device
    with torch.inference_mode():
        start = time.perf_counter()
        for _ in range(sz.warmup):
            with runtime.autocast():
                model(clip)
        _sync(device)
        warmup_s = time.perf_counter() - start
        passes, start = 0, time.perf_counter()
        while passes < sz.max_iters and (passes == 0 or time.perf_counter() - start < sz.time_box_s):
            with runtime.autocast():
                model(clip)
            passes += 1
        _sync(device)
        seconds = time.perf_counter() - start
    return passes * clip.shape[0] / seconds, warmup_s


def inference_rows(table: Table) -> Callable[[], dict]:
    """Runs the fp32, bf16 and channels_last_3d rows; returns the one that runs the torch.compile row."""
    from signspot.models import build_model

    sz = table.sz
    setting = f"{sz.model} {sz.batch}x{sz.window}x3x{sz.crop}x{sz.crop}"
    state = {}

    def model_and_clip():
        if not state:
            torch.manual_seed(0)
            state["model"] = build_model(sz.model, num_classes=sz.num_classes).to(sz.device).eval()
            state["clip"] = torch.rand(sz.batch, sz.window, 3, sz.crop, sz.crop, device=sz.device) - 0.5
        return state["model"], state["clip"]

    def plain(amp):
        def measure():
            model, clip = model_and_clip()
            rate, _ = forward_rate(model, clip, _runtime(sz, amp), sz)
            return {"value": rate, "unit": "windows/s", "note": _passes(sz.warmup)
                    + ("; TF32 as torch's default" if sz.device == "cuda" and amp is None else "")}
        return measure

    def channels_last():
        model, clip = model_and_clip()
        model = copy.deepcopy(model).to(memory_format=torch.channels_last_3d)
        clip = clip.transpose(1, 2).contiguous(memory_format=torch.channels_last_3d).transpose(1, 2)
        rate, _ = forward_rate(model, clip, _runtime(sz, "bf16"), sz)
        return {"value": rate, "unit": "windows/s", "note": _passes(sz.warmup)}

    def compiled():
        model, clip = model_and_clip()
        try:
            rate, warmup_s = forward_rate(torch.compile(model, backend=sz.compile_backend), clip, _runtime(sz, "bf16"), sz)
        finally:
            torch._dynamo.reset()
        return {"value": rate, "unit": "windows/s",
                "note": f"backend {sz.compile_backend}; {_passes(sz.warmup)} with compilation: {warmup_s:.0f} s"}

    table.run("inference fp32", setting, plain(None))
    table.run("inference bf16", setting, plain("bf16"))
    table.run("inference bf16 + channels_last_3d", setting, channels_last)
    return lambda: table.run("inference bf16 + torch.compile", setting, compiled, reserve_s=120.0 if sz.device == "cuda" else 0.0)


# ------------------------------------------------------------------ training
def train_rate(sz: Sizes, root: Path, workers: int) -> dict:
    from signspot.config import load_config
    from signspot.runtime import setup_runtime
    from signspot.train import build, train_one_epoch

    run_dir = root / f"run_{workers}"
    cfg = load_config(None, [
        f"data.frame_store={root / 'store'}", f"data.folds_dir={root / 'folds'}", "data.fold=0",
        f"data.num_classes={sz.num_classes}", f"data.window={sz.window}", f"data.resize={sz.resize}",
        f"data.crop={sz.crop}", f"data.num_workers={workers}", f"model.name={sz.model}", f"train.device={sz.device}",
        "train.amp=auto", f"train.batch_size={sz.batch}", "train.epochs=2", "eval.every_epochs=0",
        "train.resume=False", f"train.log_every={sz.train_batches}", f"io.run_dir={run_dir}",
    ])
    rt = setup_runtime(cfg.train.device, cfg.train.amp, cpu_autocast=False, flags=("train.device", "train.amp"))
    session = None
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # build() prints the resolved config
            session = build(cfg, rt)
        train_one_epoch(session, 0)  # warm-up: workers start, kernels are chosen
        row = train_one_epoch(session, 1)
    finally:
        del session  # persistent loader workers end with the loader
        gc.collect()
        rt.shutdown()
    return {"value": row["clips_per_s"], "unit": "clips/s",
            "note": f"epoch 2 of 2: {sz.train_batches} steps of {sz.batch}, {rt.precision}, loss {row['loss']:.3g}"}


# ------------------------------------------------------------------ DDP
def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ddp_step(sz: Sizes) -> dict:
    import datetime

    import torch.distributed as dist

    from signspot.config import Config
    from signspot.formats.timebase import HEAD_NAMES
    from signspot.losses import head_losses, weighted_total
    from signspot.models import build_model

    device = torch.device(sz.device, 0) if sz.device == "cuda" else torch.device("cpu")
    runtime = _runtime(sz, "bf16" if sz.device == "cuda" else None)
    port = _free_port()
    start = time.perf_counter()
    kwargs = {"device_id": device} if device.type == "cuda" else {}
    dist.init_process_group(sz.ddp_backend, init_method=f"tcp://127.0.0.1:{port}", rank=0, world_size=1,
                            timeout=datetime.timedelta(seconds=120), **kwargs)
    try:
        init_s = time.perf_counter() - start
        torch.manual_seed(0)
        model = build_model(sz.model, num_classes=sz.num_classes).to(device)
        # As signspot.train.build wraps it (the backbone's unused "logits" layer: static graph).
        ddp = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None, static_graph=True)
        optimizer = torch.optim.AdamW(model.parameters(), lr=3e-4)
        clip = torch.rand(sz.batch, sz.window, 3, sz.crop, sz.crop, device=device) - 0.5
        target = torch.zeros(sz.batch, sz.window, sz.num_classes + 1, device=device)
        target[..., -1] = 1
        before = model.head_all.time_lin.weight.detach().clone()
        start = time.perf_counter()
        with runtime.autocast():
            outputs = ddp(clip)
        loss = weighted_total(head_losses(outputs, target), HEAD_NAMES, Config().train.head_weights)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        total = torch.ones(1, device=device)
        dist.all_reduce(total)
        _sync(device)
        step_s = time.perf_counter() - start
        if not torch.isfinite(loss) or total.item() != 1.0 or torch.equal(before, model.head_all.time_lin.weight):
            raise RuntimeError(f"DDP step went wrong: loss {loss.item()}, all-reduce of 1 gave {total.item()}, "
                               "or the weights did not change")
    finally:
        dist.destroy_process_group()
    return {"value": step_s, "unit": "s", "note": f"ok: {sz.ddp_backend}, world size 1, port {port}, "
                                                  f"group joined in {init_s:.1f} s, loss {loss.item():.3g}"}


# ------------------------------------------------------------------ main
def check(sz: Sizes) -> Table:
    table = Table(sz)
    with tempfile.TemporaryDirectory(prefix="gpu_check_") as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        make_store(root, sz)
        print(f"synthetic frame store: {sz.videos} videos x {sz.frames} frames in {time.perf_counter() - t0:.1f} s",
              file=sys.stderr, flush=True)
        agreement = Agreement(sz, root)
        score_setting = f"{sz.model} {sz.window}x{sz.crop}x{sz.crop}, fp32 vs"
        table.run("agreement bf16", f"{score_setting} bf16", lambda: agreement.measure("bf16"))
        table.run("agreement fp16", f"{score_setting} fp16", lambda: agreement.measure("fp16"))
        agreement.close()
        compile_row = inference_rows(table)
        train_setting = f"{sz.model} {sz.batch}x{sz.window}x3x{sz.crop}x{sz.crop}"
        for workers in sz.train_workers:
            table.run(f"train, {workers} loader workers", train_setting,
                      lambda w=workers: train_rate(sz, root, w), reserve_s=30.0 if sz.device == "cuda" else 0.0)
        table.run("DDP step", f"{sz.model} {sz.batch}x{sz.window}x3x{sz.crop}x{sz.crop}", lambda: ddp_step(sz))
        compile_row()  # last: its compilation time is the least predictable
    order = [r["check"] for r in table.rows]
    first = [c for c in order if c.startswith(("agreement", "inference"))]
    table.rows.sort(key=lambda r: (0, first.index(r["check"])) if r["check"] in first else (1, order.index(r["check"])))
    return table


def main(cpu_smoke: bool = False, out: str | None = None, budget_s: float | None = None) -> int:
    sz = CPU_SMOKE if cpu_smoke else GPU
    if not cpu_smoke and not torch.cuda.is_available():
        print("error: no CUDA device here; run with --cpu-smoke for the CPU version", file=sys.stderr)
        return 2
    if budget_s is not None:
        sz = dataclasses.replace(sz, budget_s=float(budget_s))
    if cpu_smoke:
        torch.set_num_threads(1)  # on a shared CPU, more OpenMP threads stall each other
    table = check(sz)
    machine = machine_description()
    print(f"gpu_check ({'cpu-smoke' if cpu_smoke else 'gpu'}), {machine}, {table.elapsed():.0f} s")
    print(table.format(), flush=True)
    if out:
        from signspot.formats.safe_io import atomic_write

        report = {"mode": "cpu-smoke" if cpu_smoke else "gpu", "machine": machine, "seconds": table.elapsed(),
                  "sizes": dataclasses.asdict(sz), "rows": table.rows}
        with atomic_write(out, "w") as f:
            f.write(json.dumps(report, indent=2) + "\n")
        print(f"written: {out}")
    return 0 if all(r["status"] == "ok" for r in table.rows) else 1


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cpu-smoke", action="store_true", help="tiny sizes on the CPU (gloo, eager compile backend)")
    parser.add_argument("--out", default=None, help="also write the table as JSON to this file (atomically)")
    parser.add_argument("--budget-s", type=float, default=None,
                        help=f"rows start only within this many seconds (default {GPU.budget_s:.0f}; "
                             f"--cpu-smoke {CPU_SMOKE.budget_s:.0f})")
    return parser.parse_args(argv)


if __name__ == "__main__":
    sys.exit(main(**vars(parse_args())))
