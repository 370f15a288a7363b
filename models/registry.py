"""Named model variants and :func:`build_model`.

``hs_i3d`` is the released HS-I3D (width 1.0, 24.3M parameters); ``hs_i3d_tiny``
is the same architecture with a quarter of the channels (1.5M parameters), sized
for CPU demos and tests.
"""

from __future__ import annotations

from .hs_i3d import HSI3D

__all__ = ["MODEL_VARIANTS", "build_model", "list_models"]

# name -> base channel multiplier
MODEL_VARIANTS: dict[str, float] = {
    "hs_i3d": 1.0,
    "hs_i3d_tiny": 0.25,
}


def list_models() -> list[str]:
    """Names accepted by :func:`build_model`."""
    return sorted(MODEL_VARIANTS)


def build_model(
    name: str = "hs_i3d",
    *,
    num_classes: int = 60,
    width: float = 1.0,
    dropout: float = 0.5,
) -> HSI3D:
    """Build a registered HS-I3D variant.

    Args:
        name: a variant from :func:`list_models`.
        num_classes: sign classes; the heads output ``num_classes + 1`` (background last).
        width: extra channel multiplier on top of the variant's own (``hs_i3d``: 1.0,
            ``hs_i3d_tiny``: 0.25); the model's ``width`` attribute is the product.
        dropout: dropout probability before each head's classifier.

    The returned model carries ``model.config``: the arguments that rebuild it.
    """
    if name not in MODEL_VARIANTS:
        raise ValueError(f"unknown model {name!r}; choose from {list_models()}")
    if not width > 0:
        raise ValueError(f"width must be > 0, got {width}")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {dropout}")
    model = HSI3D(num_classes=num_classes, width=MODEL_VARIANTS[name] * width, dropout=dropout)
    model.config = {"name": name, "num_classes": num_classes, "width": width, "dropout": dropout}
    return model
