"""HS-I3D models: the Inception-I3D backbone, the hierarchical sign spotter,
named variants and checkpoint loading.

Typical use::

    from models import build_model, load_checkpoint, load_model_weights
    model = build_model("hs_i3d", num_classes=60)
    load_model_weights(model, load_checkpoint(path), source=str(path))
    logits = model(clips)  # clips (B, T, 3, H, W) -> {head: (B, T_head, 61)}
"""

from .checkpoint import (
    CheckpointError,
    infer_model_config,
    load_bsl1k_backbone,
    load_checkpoint,
    load_model_weights,
    strip_prefixes,
    unwrap_model,
)
from .hs_i3d import HEAD_NAMES, HSI3D, HierarchicalI3d, TimeHead
from .i3d import InceptionI3d, Unit3D
from .registry import MODEL_VARIANTS, build_model, list_models

__all__ = [
    "HEAD_NAMES",
    "HSI3D",
    "MODEL_VARIANTS",
    "CheckpointError",
    "HierarchicalI3d",
    "InceptionI3d",
    "TimeHead",
    "Unit3D",
    "build_model",
    "infer_model_config",
    "list_models",
    "load_bsl1k_backbone",
    "load_checkpoint",
    "load_model_weights",
    "strip_prefixes",
    "unwrap_model",
]
