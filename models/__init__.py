"""HS-I3D models: the Inception-I3D backbone, the hierarchical sign spotter and
named variants. Loading checkpoints into them is :mod:`signspot.checkpoint`'s job.

Typical use::

    from signspot.models import build_model
    model = build_model("hs_i3d", num_classes=60)
    logits = model(clips)  # clips (B, T, 3, H, W) -> {head: (B, T_head, 61)}
"""

from .hs_i3d import HEAD_NAMES, HSI3D, HierarchicalI3d, TimeHead
from .i3d import InceptionI3d, Unit3D
from .registry import MODEL_VARIANTS, build_model, list_models
from .state import recalibrate_batchnorm, strip_prefixes, unwrap_model

__all__ = [
    "HEAD_NAMES",
    "HSI3D",
    "MODEL_VARIANTS",
    "HierarchicalI3d",
    "InceptionI3d",
    "TimeHead",
    "Unit3D",
    "build_model",
    "list_models",
    "recalibrate_batchnorm",
    "strip_prefixes",
    "unwrap_model",
]
