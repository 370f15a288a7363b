#!/usr/bin/env python
"""HS-I3D on a CPU: eager fp32 against the other engines that install here, side by side.

    python bench/bench_cpu_engine.py [--quick] [--engines eager,channels_last,compile,onnxruntime,openvino]

For the full model (60 classes, 32 x 224 x 224) and the tiny one (the demo's, 32 x 56 x 56), at
batch 1 and 8, each engine runs the same windows: windows per second (median of the timed runs
after a warm-up), the process's peak resident memory growth during the engine's runs, and its
agreement with eager fp32 on the per-frame scores (softmax of head "x"): the largest absolute
difference and the share of frames whose argmax is the same. ONNX Runtime runs the model exported
to ONNX (opset 17); OpenVINO runs it as ``--engine openvino`` does (``signspot.openvino_engine``, converted
from PyTorch directly, f32). The inputs are frames of the
synthetic set through a model whose BatchNorm statistics were measured on them
(``models.recalibrate_batchnorm``, as ``tests/test_precision.py`` does), so the scores depend on
the frames. An engine whose package is not installed is listed as skipped (``pip install
onnxruntime`` / ``openvino`` to add it). ``--quick``: the tiny model only, batch 1 and 2, one run,
no ``torch.compile`` unless named in ``--engines``.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

ENGINES = ("eager", "channels_last", "compile", "onnxruntime", "openvino")


class _Logits:
    """The model's head "x" only: the scores inference averages, one output for exporters."""

    def __new__(cls, model):
        import torch

        class Head(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.model = model

            def forward(self, x):
                return self.model(x)["x"]

        return Head().eval()


def _clips(batch: int, window: int, size: int, seed: int = 0) -> np.ndarray:
    """Windows of the synthetic set's frames (drawn with the generator's renderer), as the network takes them."""
    from signspot.datasets.synthetic import plan_dataset, render_video
    from signspot.datasets.synthetic.config import SynthConfig

    cfg = SynthConfig(classes=10, videos_per_split=(1, 1, 1), seconds=8.0, size=(160, 120), seed=seed,
                      signers=1, test_only_signers=0)
    plan = plan_dataset(cfg)
    video = plan.videos[0]
    frames = list(render_video(video, plan.repertoire))
    x1, y1, x2, y2 = video.bbox
    import cv2

    crops = np.stack([cv2.resize(f[y1:y2, x1:x2], (size, size), interpolation=cv2.INTER_AREA) for f in frames])
    starts = np.linspace(0, len(crops) - window, batch).astype(int)
    clips = np.stack([crops[s:s + window] for s in starts])  # (B, T, H, W, 3) uint8
    return (clips.astype(np.float32) / 255.0 - 0.5).transpose(0, 1, 4, 2, 3).copy()  # (B, T, 3, H, W)


def _model(name: str, classes: int, clips: np.ndarray):
    import torch

    from signspot.models import build_model, recalibrate_batchnorm

    torch.manual_seed(0)
    model = build_model(name, num_classes=classes)
    recalibrate_batchnorm(model, torch.from_numpy(clips))
    return model.eval()


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _engine(kind: str, model, example: np.ndarray, workdir: Path):
    """A callable numpy (B, T, 3, H, W) -> numpy logits (B, T, K), or None when the engine is not installed."""
    import torch

    head = _Logits(model)
    if kind == "eager":
        return lambda x: head(torch.from_numpy(x)).numpy()
    if kind == "channels_last":
        fast = _Logits(model.to(memory_format=torch.channels_last_3d))
        return lambda x: fast(torch.from_numpy(x)).numpy()
    if kind == "compile":
        compiled = torch.compile(head)
        return lambda x: compiled(torch.from_numpy(x)).numpy()
    if kind == "openvino":  # its PyTorch front end: torch's own pooling semantics, no ONNX in between
        from signspot.openvino_engine import OpenVinoNetwork, openvino_missing  # --engine openvino's, f32

        if openvino_missing():
            return None

        network = OpenVinoNetwork(model, window=example.shape[1], crop=example.shape[-1])
        return lambda x: network(torch.from_numpy(x))["x"].numpy()
    if kind != "onnxruntime":
        raise ValueError(kind)
    try:
        import onnxruntime as ort
    except ImportError:
        return None
    onnx_path = workdir / f"hs_i3d_{example.shape[0]}_{example.shape[-1]}.onnx"
    if not onnx_path.exists():
        try:
            torch.onnx.export(head, (torch.from_numpy(example),), str(onnx_path), input_names=["clips"],
                              output_names=["logits"], opset_version=17, dynamo=False)
        except Exception as exc:  # an exporter that cannot take the model is a result, not a crash
            raise RuntimeError(f"ONNX export failed: {type(exc).__name__}: {str(exc)[:200]}") from None
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    return lambda x: session.run(None, {"clips": x})[0]


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(-1, keepdims=True)


def run(quick: bool = False, engines=None) -> list[dict]:
    import torch

    if engines is None:  # torch.compile's first call takes minutes on this CPU: full runs only
        engines = tuple(e for e in ENGINES if not (quick and e == "compile"))

    cases = [("hs_i3d_tiny", 10, 56, (1, 2))] if quick else [("hs_i3d_tiny", 10, 56, (1, 8)),
                                                               ("hs_i3d", 60, 224, (1, 8))]
    repeats = 1 if quick else 3
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, classes, size, batches in cases:
            for batch in batches:
                clips = _clips(batch, 32, size)
                model = _model(name, classes, clips)
                with torch.inference_mode():
                    reference = _softmax(_Logits(model)(torch.from_numpy(clips)).numpy())
                for kind in engines:
                    row = {"bench": "cpu_engine", "model": name, "batch": batch, "engine": kind,
                           "torch_threads": torch.get_num_threads()}
                    try:
                        before = _peak_mb()
                        with torch.inference_mode():
                            call = _engine(kind, _model(name, classes, clips), clips, Path(tmp))
                            if call is None:
                                rows.append({**row, "name": f"{name} b{batch} {kind}", "value": 0.0,
                                             "unit": "windows/s", "note": "skipped: not installed"})
                                continue
                            started = time.perf_counter()
                            out = call(clips)  # warm-up (and compilation)
                            first_s = time.perf_counter() - started
                            times = []
                            for _ in range(repeats):
                                started = time.perf_counter()
                                out = call(clips)
                                times.append(time.perf_counter() - started)
                    except Exception as exc:  # an engine that fails is a result
                        rows.append({**row, "name": f"{name} b{batch} {kind}", "value": 0.0, "unit": "windows/s",
                                     "note": f"failed: {type(exc).__name__}: {str(exc)[:160]}"})
                        continue
                    scores = _softmax(np.asarray(out, dtype=np.float32))
                    agree = float((scores.argmax(-1) == reference.argmax(-1)).mean())
                    rows.append({**row, "name": f"{name} b{batch} {kind}",
                                 "value": round(batch / statistics.median(times), 3), "unit": "windows/s",
                                 "first_call_s": round(first_s, 2), "peak_rss_growth_mb": round(_peak_mb() - before),
                                 "max_abs_score_diff": float(np.abs(scores - reference).max()),
                                 "argmax_agreement": round(agree, 4),
                                 "note": f"argmax agree {agree:.4f}, max |diff| {np.abs(scores - reference).max():.2e}"})
                    print(json.dumps(rows[-1]), flush=True)
    return rows


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="the tiny model only, batch 1 and 2, one timed run")
    p.add_argument("--engines", default=None, help=f"comma-separated, from {','.join(ENGINES)} (default: all)")
    p.add_argument("--json", metavar="FILE", help="also write the rows to this JSON file")
    args = p.parse_args(argv)
    rows = run(args.quick, tuple(e for e in args.engines.split(",") if e) if args.engines else None)
    print("| model | batch | engine | windows/s | vs eager | argmax agreement | max abs diff | first call s |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        eager = next((e["value"] for e in rows if e["model"] == r["model"] and e["batch"] == r["batch"]
                      and e["engine"] == "eager"), 0)
        ratio = f"{r['value'] / eager:.2f}x" if eager and r["value"] else "-"
        print(f"| {r['model']} | {r['batch']} | {r['engine']} | {r['value']:.3g} | {ratio} | "
              f"{r.get('argmax_agreement', '-')} | {r.get('max_abs_score_diff', '-')} | {r.get('first_call_s', '-')} |"
              + (f" {r['note']}" if r["note"].startswith(("skipped", "failed")) else ""))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return rows


if __name__ == "__main__":
    main()
