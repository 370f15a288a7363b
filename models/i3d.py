"""Inception-v1 I3D backbone with TensorFlow-style "same" padding.

Reference: J. Carreira and A. Zisserman, "Quo Vadis, Action Recognition? A New
Model and the Kinetics Dataset", CVPR 2017. The layer names, the padding rule and
the parameter layout follow the BSL-1K variant of the network (the one whose
``model_bsl1k_wlasl.pth.tar`` checkpoint initialises HS-I3D), with SiLU ("swish")
activations as used by HS-I3D.

Every convolution and max pool pads its input like TensorFlow's ``"SAME"``: the
total padding of a dimension of size ``n`` for kernel ``k`` and stride ``s`` is
``max(k - s, 0)`` if ``n % s == 0`` else ``max(k - n % s, 0)``; the front gets
``pad // 2`` and the back the rest. Padding values are zeros, for pools too.

Shapes for an input (B, 3, T, H, W) and width multiplier 1.0 (sizes rounded up):

================  ========  ======  =========
endpoint          channels  time    space
================  ========  ======  =========
Conv3d_1a_7x7     64        T/2     H/2
MaxPool3d_2a_3x3  64        T/2     H/4
Conv3d_2c_3x3     192       T/2     H/4
MaxPool3d_3a_3x3  192       T/2     H/8
Mixed_3c          480       T/2     H/8
MaxPool3d_4a_3x3  480       T/4     H/16
Mixed_4f          832       T/4     H/16
MaxPool3d_5a_2x2  832       T/8     H/32
Mixed_5c          1024      T/8     H/32
================  ========  ======  =========
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "ENDPOINTS",
    "InceptionI3d",
    "InceptionModule",
    "MaxPool3dSamePadding",
    "Unit3D",
    "same_padding",
    "scale_channels",
]

# Inception module branch widths (b0, b1a, b1b, b2a, b2b, b3b) at width 1.0.
_MIXED_CHANNELS: dict[str, tuple[int, int, int, int, int, int]] = {
    "Mixed_3b": (64, 96, 128, 16, 32, 32),
    "Mixed_3c": (128, 128, 192, 32, 96, 64),
    "Mixed_4b": (192, 96, 208, 16, 48, 64),
    "Mixed_4c": (160, 112, 224, 24, 64, 64),
    "Mixed_4d": (128, 128, 256, 24, 64, 64),
    "Mixed_4e": (112, 144, 288, 32, 64, 64),
    "Mixed_4f": (256, 160, 320, 32, 128, 128),
    "Mixed_5b": (256, 160, 320, 32, 128, 128),
    "Mixed_5c": (384, 192, 384, 48, 128, 128),
}

ENDPOINTS: tuple[str, ...] = (
    "Conv3d_1a_7x7",
    "MaxPool3d_2a_3x3",
    "Conv3d_2b_1x1",
    "Conv3d_2c_3x3",
    "MaxPool3d_3a_3x3",
    "Mixed_3b",
    "Mixed_3c",
    "MaxPool3d_4a_3x3",
    "Mixed_4b",
    "Mixed_4c",
    "Mixed_4d",
    "Mixed_4e",
    "Mixed_4f",
    "MaxPool3d_5a_2x2",
    "Mixed_5b",
    "Mixed_5c",
)


def scale_channels(channels: int, width: float) -> int:
    """Channel count ``channels`` scaled by the width multiplier (at least 1)."""
    return max(1, int(round(channels * width)))


def same_padding(
    size: Sequence[int], kernel: Sequence[int], stride: Sequence[int]
) -> tuple[int, ...]:
    """``F.pad`` argument (last dimension first) for TF "same" padding.

    ``size``, ``kernel`` and ``stride`` are given in (T, H, W) order.
    """
    pads: list[int] = []
    for n, k, s in zip(reversed(size), reversed(kernel), reversed(stride)):
        total = max(k - s, 0) if n % s == 0 else max(k - n % s, 0)
        pads += [total // 2, total - total // 2]
    return tuple(pads)


def _triple(value: int | Sequence[int]) -> tuple[int, int, int]:
    if isinstance(value, int):
        return (value, value, value)
    t, h, w = value
    return (int(t), int(h), int(w))


class Unit3D(nn.Module):
    """Conv3d (same padding) -> optional BatchNorm3d -> optional SiLU.

    Input and output are (B, C, T, H, W). The convolution has no bias when a batch
    norm follows (``eps=1e-3``, ``momentum=0.01``, as in the TensorFlow original).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | Sequence[int] = 1,
        stride: int | Sequence[int] = 1,
        *,
        use_batch_norm: bool = True,
        use_bias: bool = False,
        activation: bool = True,
    ) -> None:
        super().__init__()
        self.kernel_size = _triple(kernel_size)
        self.stride = _triple(stride)
        self.conv3d = nn.Conv3d(
            in_channels, out_channels, self.kernel_size, self.stride, padding=0, bias=use_bias
        )
        self.bn = nn.BatchNorm3d(out_channels, eps=1e-3, momentum=0.01) if use_batch_norm else None
        self.activation = activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (B, C_in, T, H, W) -> (B, C_out, ceil(T/s_t), ceil(H/s_h), ceil(W/s_w))
        pads = same_padding(x.shape[2:], self.kernel_size, self.stride)
        front, back = pads[0::2], pads[1::2]
        if front == back:
            # Symmetric padding: let the convolution pad (no padded copy of x).
            x = F.conv3d(
                x, self.conv3d.weight, self.conv3d.bias, self.stride, padding=front[::-1]
            )
        else:
            x = self.conv3d(F.pad(x, pads))
        if self.bn is not None:
            x = self.bn(x)
        if self.activation:
            x = F.silu(x)
        return x


class MaxPool3dSamePadding(nn.Module):
    """Max pool over (T, H, W) after zero "same" padding (no parameters)."""

    def __init__(self, kernel_size: int | Sequence[int], stride: int | Sequence[int]) -> None:
        super().__init__()
        self.kernel_size = _triple(kernel_size)
        self.stride = _triple(stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (B, C, T, H, W) -> (B, C, ceil(T/s_t), ceil(H/s_h), ceil(W/s_w))
        pads = same_padding(x.shape[2:], self.kernel_size, self.stride)
        if any(pads):
            x = F.pad(x, pads)
        return F.max_pool3d(x, self.kernel_size, self.stride)


class InceptionModule(nn.Module):
    """Four parallel branches concatenated on channels.

    b0: 1x1x1; b1: 1x1x1 -> 3x3x3; b2: 1x1x1 -> 3x3x3; b3: 3x3x3 max pool -> 1x1x1.
    Input (B, C_in, T, H, W) -> (B, b0 + b1b + b2b + b3b, T, H, W).
    """

    def __init__(self, in_channels: int, branch_channels: Sequence[int]) -> None:
        super().__init__()
        c0, c1a, c1b, c2a, c2b, c3b = branch_channels
        self.b0 = Unit3D(in_channels, c0, 1)
        self.b1a = Unit3D(in_channels, c1a, 1)
        self.b1b = Unit3D(c1a, c1b, 3)
        self.b2a = Unit3D(in_channels, c2a, 1)
        self.b2b = Unit3D(c2a, c2b, 3)
        self.b3a = MaxPool3dSamePadding(3, 1)
        self.b3b = Unit3D(in_channels, c3b, 1)
        self.out_channels = c0 + c1b + c2b + c3b

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat(
            [
                self.b0(x),
                self.b1b(self.b1a(x)),
                self.b2b(self.b2a(x)),
                self.b3b(self.b3a(x)),
            ],
            dim=1,
        )


class InceptionI3d(nn.Module):
    """Inception-v1 I3D feature extractor.

    Input: (B, 3, T, H, W). :meth:`extract_features` returns the activations of the
    requested endpoints (see the module docstring for their shapes). The classifier
    ``logits`` (1x1x1 conv with bias, no norm, no activation) is kept so that the
    parameter layout matches the BSL-1K checkpoints; HS-I3D does not use it.

    Args:
        num_classes: outputs of the (unused) ``logits`` classifier.
        width: channel multiplier; 1.0 is the original network.
        in_channels: input channels (3 for RGB).
    """

    def __init__(self, num_classes: int = 60, *, width: float = 1.0, in_channels: int = 3) -> None:
        super().__init__()
        self.width = width

        def ch(c: int) -> int:
            return scale_channels(c, width)

        self.endpoint_channels: dict[str, int] = {}
        # Registered first so that the state-dict order matches the original.
        self.logits = Unit3D(
            ch(1024), num_classes, 1, use_batch_norm=False, use_bias=True, activation=False
        )
        layers: dict[str, nn.Module] = {}
        layers["Conv3d_1a_7x7"] = Unit3D(in_channels, ch(64), 7, 2)
        layers["MaxPool3d_2a_3x3"] = MaxPool3dSamePadding((1, 3, 3), (1, 2, 2))
        layers["Conv3d_2b_1x1"] = Unit3D(ch(64), ch(64), 1)
        layers["Conv3d_2c_3x3"] = Unit3D(ch(64), ch(192), 3)
        layers["MaxPool3d_3a_3x3"] = MaxPool3dSamePadding((1, 3, 3), (1, 2, 2))
        channels = ch(192)
        for name in ENDPOINTS[5:]:
            if name == "MaxPool3d_4a_3x3":
                layers[name] = MaxPool3dSamePadding(3, 2)
            elif name == "MaxPool3d_5a_2x2":
                layers[name] = MaxPool3dSamePadding(2, 2)
            else:
                module = InceptionModule(channels, [ch(c) for c in _MIXED_CHANNELS[name]])
                channels = module.out_channels
                layers[name] = module
            self.endpoint_channels[name] = channels
        for name in ENDPOINTS:
            self.add_module(name, layers[name])

    def extract_features(
        self, x: torch.Tensor, endpoints: Sequence[str] = ("Mixed_5c",)
    ) -> dict[str, torch.Tensor]:
        """Run the network up to the last requested endpoint.

        x: (B, C, T, H, W). Returns ``{endpoint: (B, C_e, T_e, H_e, W_e)}``.
        """
        wanted = set(endpoints)
        unknown = wanted.difference(ENDPOINTS)
        if unknown:
            raise ValueError(f"unknown I3D endpoints {sorted(unknown)}; choose from {ENDPOINTS}")
        features: dict[str, torch.Tensor] = {}
        for name in ENDPOINTS:
            x = getattr(self, name)(x)
            if name in wanted:
                features[name] = x
                if len(features) == len(wanted):
                    break
        return features

    def backbone_state_keys(self) -> list[str]:
        """State-dict keys of the feature extractor (everything but ``logits``)."""
        keys = []
        for name in ENDPOINTS:
            keys += [f"{name}.{k}" for k in getattr(self, name).state_dict().keys()]
        return keys

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (B, C, T, H, W) -> clip logits (B, num_classes, T/8), averaged over space
        features = self.extract_features(x, ("Mixed_5c",))["Mixed_5c"]
        return self.logits(features.mean(dim=(3, 4), keepdim=True)).flatten(2)
