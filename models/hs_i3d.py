"""HS-I3D: hierarchical I3D for sign spotting.

Reference: R. Wong, N. C. Camgoz and R. Bowden, "Hierarchical I3D for Sign
Spotting", ECCV 2022 workshops (winner of the ChaLearn LAP 2022 sign spotting
challenge, MSSL track). The backbone is the Inception-v1 I3D of Carreira and
Zisserman (:mod:`models.i3d`). Parameter names and shapes match the released
checkpoints, so ``torch.load(p)["model"]`` loads with ``strict=True``.

Feature hierarchy for an input (B, T, 3, H, W), width 1.0 (channels in brackets):

- f3 = Mixed_3c (480, T/2), f4 = Mixed_4f (832, T/4), f5 = Mixed_5c (1024, T/8).
- u5 = ConvTranspose3d(1024 -> 512, time x2)(spatial mean of f5): (512, T/4).
- f4' = BasicBlock2d(832 -> 416, stride 2) on every frame, spatial mean: (416, T/4).
- m8 = DoubleConv(928 -> 832)(cat[u5, f4']); x8 = conv_8(m8): (832, T/4).
- u8 = ConvTranspose3d(832 -> 416, time x2)(m8): (416, T/2).
- f3' = BasicBlock2d(480 -> 240, stride 4) on every frame, spatial mean: (240, T/2).
- m16 = DoubleConv(656 -> 480)(cat[u8, f3']); x16 = conv_16(m16): (480, T/2).
- x32 = conv_32(ConvTranspose3d(480 -> 240, time x2)(m16)): (240, T).
- Heads (spatial mean, dropout, Linear) give logits over ``num_classes + 1`` classes
  (the last is background) at T/8, T/4, T/2 and T steps; the fused head ``x``
  classifies the four heads' pooled features, nearest-upsampled to T steps and
  concatenated (2576 channels).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from signspot.formats.timebase import HEAD_NAMES

from .i3d import InceptionI3d

__all__ = ["HEAD_NAMES", "BasicBlock2d", "DoubleConv", "HSI3D", "HierarchicalI3d", "TimeHead"]


class BasicBlock2d(nn.Module):
    """ResNet basic block applied to 2-D frames, with SiLU and an average-pool shortcut.

    Input (N, C_in, H, W) -> (N, C_out, ceil(H/stride), ceil(W/stride)).
    Shortcut: AvgPool2d(2, stride, ceil_mode, count_include_pad=False) -> 1x1 conv -> BN.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.downsample = nn.Sequential(
            nn.AvgPool2d(2, stride, ceil_mode=True, count_include_pad=False),
            nn.Conv2d(in_channels, out_channels, 1, bias=False),
            nn.BatchNorm2d(out_channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.silu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.silu(out + self.downsample(x))


class DoubleConv(nn.Sequential):
    """(1x1x1 conv without bias -> BatchNorm3d -> SiLU) twice; (B, C_in, T, H, W) -> (B, C_out, ...)."""

    def __init__(self, in_channels: int, out_channels: int, mid_channels: int | None = None) -> None:
        mid = out_channels if mid_channels is None else mid_channels
        super().__init__()
        self.double_conv = nn.Sequential(
            nn.Conv3d(in_channels, mid, 1, bias=False),
            nn.BatchNorm3d(mid),
            nn.SiLU(),
            nn.Conv3d(mid, out_channels, 1, bias=False),
            nn.BatchNorm3d(out_channels),
            nn.SiLU(),
        )


def _per_frame_pooled(block: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Apply a 2-D block to each frame, then average over space.

    x: (B, C, T, H, W) -> (B, C_out, T, 1, 1).
    """
    b, c, t, h, w = x.shape
    frames = x.transpose(1, 2).reshape(b * t, c, h, w)  # (B*T, C, H, W)
    pooled = block(frames).mean(dim=(2, 3))  # (B*T, C_out)
    return pooled.reshape(b, t, -1).transpose(1, 2)[..., None, None]


class HierarchicalI3d(InceptionI3d):
    """I3D backbone plus the hierarchical upsampling path of HS-I3D.

    Input (B, C, T, H, W); :meth:`forward` returns the four head inputs
    ``(f5, x8, x16, x32)`` of shapes (B, C5, T/8, H/32, W/32), (B, C4, T/4, 1, 1),
    (B, C3, T/2, 1, 1) and (B, C3/2, T, 1, 1), with (C3, C4, C5) = (480, 832, 1024)
    at width 1.0.
    """

    def __init__(self, num_classes: int = 60, *, width: float = 1.0, in_channels: int = 3) -> None:
        super().__init__(num_classes, width=width, in_channels=in_channels)
        c3 = self.endpoint_channels["Mixed_3c"]
        c4 = self.endpoint_channels["Mixed_4f"]
        c5 = self.endpoint_channels["Mixed_5c"]
        self.feature_channels: tuple[int, int, int, int] = (c5, c4, c3, c3 // 2)
        self.spatial_downscaling_Mixed_4f = BasicBlock2d(c4, c4 // 2, stride=2)
        self.spatial_downscaling_Mixed_3c = BasicBlock2d(c3, c3 // 2, stride=4)
        self.up_Mixed_5c = nn.ConvTranspose3d(c5, c5 // 2, (2, 1, 1), (2, 1, 1))
        self.merge_5c4f = DoubleConv(c5 // 2 + c4 // 2, c4)
        self.conv_8 = nn.Conv3d(c4, c4, 1)
        self.up_5c4f = nn.ConvTranspose3d(c4, c4 // 2, (2, 1, 1), (2, 1, 1))
        self.merge_5c4f3c = DoubleConv(c4 // 2 + c3 // 2, c3)
        self.conv_16 = nn.Conv3d(c3, c3, 1)
        self.up_5c4f3c = nn.ConvTranspose3d(c3, c3 // 2, (2, 1, 1), (2, 1, 1))
        self.conv_32 = nn.Conv3d(c3 // 2, c3 // 2, 1)

    def forward(  # type: ignore[override]
        self, x: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        feats = self.extract_features(x, ("Mixed_3c", "Mixed_4f", "Mixed_5c"))
        f3, f4, f5 = feats["Mixed_3c"], feats["Mixed_4f"], feats["Mixed_5c"]
        # f3: (B, C3, T/2, H/8, W/8); f4: (B, C4, T/4, H/16, W/16); f5: (B, C5, T/8, H/32, W/32)
        u5 = self.up_Mixed_5c(f5.mean(dim=(3, 4), keepdim=True))  # (B, C5/2, T/4, 1, 1)
        f4_pooled = _per_frame_pooled(self.spatial_downscaling_Mixed_4f, f4)  # (B, C4/2, T/4, 1, 1)
        m8 = self.merge_5c4f(torch.cat([u5, f4_pooled], dim=1))  # (B, C4, T/4, 1, 1)
        x8 = self.conv_8(m8)
        u8 = self.up_5c4f(m8)  # (B, C4/2, T/2, 1, 1)
        f3_pooled = _per_frame_pooled(self.spatial_downscaling_Mixed_3c, f3)  # (B, C3/2, T/2, 1, 1)
        m16 = self.merge_5c4f3c(torch.cat([u8, f3_pooled], dim=1))  # (B, C3, T/2, 1, 1)
        x16 = self.conv_16(m16)
        x32 = self.conv_32(self.up_5c4f3c(m16))  # (B, C3/2, T, 1, 1)
        return f5, x8, x16, x32


class TimeHead(nn.Module):
    """Per-step classifier: spatial mean -> dropout -> Linear.

    Input (B, C, T, H, W); returns logits (B, T, num_outputs) and the pooled features
    before dropout (B, T, C).
    """

    def __init__(self, in_channels: int, num_outputs: int, dropout: float = 0.5) -> None:
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.time_lin = nn.Linear(in_channels, num_outputs)

    def pool(self, x: torch.Tensor) -> torch.Tensor:
        # (B, C, T, H, W) -> (B, T, C)
        return x.mean(dim=(3, 4)).transpose(1, 2)

    def classify(self, pooled: torch.Tensor) -> torch.Tensor:
        # (B, T, C) -> (B, T, num_outputs)
        return self.time_lin(self.dropout(pooled))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pooled = self.pool(x)
        return self.classify(pooled), pooled


class HSI3D(nn.Module):
    """Hierarchical I3D sign spotter.

    Input: clips (B, T, C, H, W) with T divisible by 8 and H, W >= 1 (the
    original used T = 32, 224 x 224 RGB scaled to x / 255 - 0.5).
    Output: ``{"x4": (B, T/8, K), "x8": (B, T/4, K), "x16": (B, T/2, K),
    "x32": (B, T, K), "x": (B, T, K)}`` logits, K = num_classes + 1 (background last).

    Args:
        num_classes: number of sign classes (background is added).
        width: channel multiplier for every layer; 1.0 is the released model.
        dropout: dropout probability before each head's linear layer.
    """

    TEMPORAL_STRIDE = 8  # clip lengths are multiples of this (the coarsest head has T/8 steps)

    def __init__(self, *, num_classes: int = 60, width: float = 1.0, dropout: float = 0.5) -> None:
        super().__init__()
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        if not width > 0:
            raise ValueError(f"width must be > 0, got {width}")
        self.num_classes = num_classes
        self.width = width
        self.backbone_model = HierarchicalI3d(num_classes, width=width)
        outputs = num_classes + 1
        c5, c4, c3, c32 = self.backbone_model.feature_channels
        self.head_4 = TimeHead(c5, outputs, dropout)
        self.head_8 = TimeHead(c4, outputs, dropout)
        self.head_16 = TimeHead(c3, outputs, dropout)
        self.head_32 = TimeHead(c32, outputs, dropout)
        self.head_all = TimeHead(c5 + c4 + c3 + c32, outputs, dropout)

    def to(self, *args, **kwargs):  # type: ignore[override]
        """``nn.Module.to``, where ``memory_format=torch.channels_last_3d`` (or
        ``channels_last``) puts the 3-D convolutions in channels_last_3d and the 2-D
        ones of the per-frame blocks in channels_last, instead of failing on them."""
        memory_format = kwargs.get("memory_format")
        if memory_format not in (torch.channels_last, torch.channels_last_3d):
            return super().to(*args, **kwargs)
        del kwargs["memory_format"]
        if args or kwargs:
            super().to(*args, **kwargs)

        def convert(tensor: torch.Tensor) -> torch.Tensor:
            if tensor.dim() == 5:
                return tensor.contiguous(memory_format=torch.channels_last_3d)
            if tensor.dim() == 4:
                return tensor.contiguous(memory_format=torch.channels_last)
            return tensor

        return self._apply(convert)

    EMBEDDINGS = ("all", "backbone")  # per-frame features embed() gives (see there)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        out, pooled = self._heads(x)
        out["x"] = self.head_all.classify(torch.cat(pooled, dim=2))  # (B, T, K)
        return out

    def embed(self, x: torch.Tensor, layer: str = "all") -> torch.Tensor:
        """Per-frame features (B, T, D) of clips (B, T, C, H, W): no classifier, for matching signs no head knows.

        ``"all"``: what the final head "x" classifies, every scale's pooled features side by side
        (D = 2576 at width 1); ``"backbone"``: the I3D backbone's Mixed_5c pooled over space, one
        vector per 8 frames repeated over them (D = 1024 at width 1).
        """
        if layer not in self.EMBEDDINGS:
            raise ValueError(f"unknown embedding layer {layer!r}; choose from {', '.join(self.EMBEDDINGS)}")
        _, pooled = self._heads(x, logits=False)
        return torch.cat(pooled, dim=2) if layer == "all" else pooled[0]

    def _heads(self, x: torch.Tensor, logits: bool = True) -> tuple[dict[str, torch.Tensor], list[torch.Tensor]]:
        """Logits of the four scale heads and their pooled features, each upsampled to T steps."""
        if x.dim() != 5:
            raise ValueError(f"expected clips (B, T, C, H, W), got shape {tuple(x.shape)}")
        steps = x.shape[1]
        if steps % self.TEMPORAL_STRIDE != 0:
            raise ValueError(f"the clip length T must be divisible by {self.TEMPORAL_STRIDE}, got T={steps}")
        f5, x8, x16, x32 = self.backbone_model(x.transpose(1, 2))  # (B, C, T, H, W) in
        out: dict[str, torch.Tensor] = {}
        pooled: list[torch.Tensor] = []
        for name, head, feature in (
            ("x4", self.head_4, f5),
            ("x8", self.head_8, x8),
            ("x16", self.head_16, x16),
            ("x32", self.head_32, x32),
        ):
            features = head.pool(feature)  # (B, T_head, C)
            if logits:
                out[name] = head.classify(features)  # (B, T_head, K)
            # Nearest upsampling in time by an integer factor repeats each step.
            pooled.append(features.repeat_interleave(steps // features.shape[1], dim=1))
        return out, pooled
