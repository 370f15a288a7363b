"""HS-I3D run by OpenVINO on a CPU: ``--engine openvino`` of inference and ``spot.py``.

OpenVINO converts the network from PyTorch directly (its PyTorch front end keeps torch's pooling
semantics, which the ONNX export does not) and runs the 3-D convolutions through oneDNN. Measured
on this project's 2-core CPU (``bench/bench_cpu_engine.py``, the README's engine table): 2.6-2.8x
the windows per second of eager PyTorch for the full model (1.65-1.8x channels_last_3d, the CPU
default), every frame's argmax unchanged.

It runs in f32 (``INFERENCE_PRECISION_HINT``): on a CPU with AMX or AVX-512 bf16 its default is
bf16, which changed the argmax of 12-31% of the tiny model's frames. The network is converted with
the window and crop fixed and the batch free, once per checkpoint and run; OpenVINO uses as many
threads as torch does (``torch.get_num_threads()``).
"""

from __future__ import annotations

import importlib.util
import warnings

import numpy as np
import torch

from .formats.errors import SignspotError
from .formats.timebase import HEAD_NAMES

__all__ = ["OPENVINO_PIN", "EngineError", "OpenVinoNetwork", "openvino_missing"]

OPENVINO_PIN = "openvino==2026.4.1"  # the version requirements.txt pins and the figures were measured with


class EngineError(SignspotError, ValueError):
    """An engine that cannot run here (not installed, another device, another precision)."""


def openvino_missing() -> bool:
    return importlib.util.find_spec("openvino") is None


class _Heads(torch.nn.Module):
    """The network's heads as a tuple in HEAD_NAMES' order: one output per head for the converter."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, clips):
        outputs = self.model(clips)
        return tuple(outputs[h] for h in HEAD_NAMES)


class OpenVinoNetwork(torch.nn.Module):
    """``model`` compiled by OpenVINO for clips ``(B, window, 3, crop, crop)``; called like the model.

    Returns ``{head: (B, T_head, C + 1) logits}``, float32 tensors on the CPU, as the model does.
    """

    def __init__(self, model: torch.nn.Module, *, window: int, crop: int):
        super().__init__()
        if openvino_missing():
            raise EngineError(f"--engine openvino needs the openvino package: pip install {OPENVINO_PIN}")
        import openvino as ov

        self.window, self.crop = int(window), int(crop)
        heads = _Heads(model.float().eval())
        example = torch.zeros(1, self.window, 3, self.crop, self.crop)
        # The converter traces the network: the padding the tracer warns about is computed from the
        # clip's frames and size, fixed here; only the batch is left free.
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            converted = ov.convert_model(heads, example_input=example,
                                         input=ov.PartialShape([-1, self.window, 3, self.crop, self.crop]))
        config = {"INFERENCE_PRECISION_HINT": "f32", "INFERENCE_NUM_THREADS": torch.get_num_threads()}
        self._compiled = ov.Core().compile_model(converted, "CPU", config)

    def forward(self, clips: torch.Tensor) -> dict:
        shape = tuple(clips.shape[1:])
        if shape != (self.window, 3, self.crop, self.crop):
            raise EngineError(f"OpenVINO network compiled for clips of {self.window} x 3 x {self.crop} x "
                              f"{self.crop}, given {' x '.join(map(str, shape))}")
        outputs = self._compiled(np.ascontiguousarray(clips.detach().float().cpu().numpy()))
        # the arrays are the request's buffers, reused by the next call: copied out
        return {h: torch.from_numpy(np.array(outputs[i])) for i, h in enumerate(HEAD_NAMES)}
