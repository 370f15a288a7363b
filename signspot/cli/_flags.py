"""Flags that several commands share, declared once (argparse parents).

* :func:`model_flags`: how checkpoints are run (``--device``, ``--amp``, ``--stride``,
  ``--window``, ``--batch-size``, ``--workers``, ``--flip-tta``, ``--engine``); the values are checked
  once, by :class:`signspot.scoring.ScoringOptions`.
* :func:`annotation_flags`: ``--tier`` and ``--vocabulary``, how ELAN files and glosses
  are read and written; checked by :mod:`signspot.formats.vocabulary`.
"""

from __future__ import annotations

import argparse

from ..formats.elan import DEFAULT_TIER
from ..scoring import AMP_MODES, ENGINES, ScoringOptions

__all__ = ["annotation_flags", "model_flags"]

_DEFAULTS = ScoringOptions()


def model_flags(*, workers: int, workers_help: str, stride: int = _DEFAULTS.stride,
                stride_help: str = "the original") -> argparse.ArgumentParser:
    """The flags that run a model; ``workers`` and ``stride`` are the command's defaults (they differ between commands)."""
    p = argparse.ArgumentParser(add_help=False)
    group = p.add_argument_group("running the model")
    group.add_argument("--device", default=_DEFAULTS.device, help="cpu, cuda, cuda:1 ...; default: CUDA if available")
    group.add_argument("--amp", choices=AMP_MODES, default=_DEFAULTS.amp,
                       help="mixed precision autocast (default off: fp32; fp16 on CUDA only)")
    group.add_argument("--stride", type=int, default=stride,
                       help=f"frames between window starts (default {stride}, {stride_help}; at most the window)")
    group.add_argument("--window", type=int, default=_DEFAULTS.window,
                       help="frames per window, a multiple of 8 (default: each checkpoint's own, else 32)")
    group.add_argument("--batch-size", type=int, default=_DEFAULTS.batch_size,
                       help=f"windows per forward pass (default {_DEFAULTS.batch_size})")
    group.add_argument("--workers", type=int, default=workers, help=f"{workers_help} (default {workers}; 0: none)")
    group.add_argument("--flip-tta", action="store_true", help="also score left-right mirrored windows and average")
    group.add_argument("--engine", choices=ENGINES, default=_DEFAULTS.engine,
                       help="what runs the network: torch (default), or openvino on the CPU, f32 (1.65x the "
                            "windows per second of torch's CPU default here; the package is in requirements.txt)")
    return p


def annotation_flags() -> argparse.ArgumentParser:
    """``--tier`` and ``--vocabulary``: the ELAN tier of the signs and the glosses of the class ids."""
    p = argparse.ArgumentParser(add_help=False)
    group = p.add_argument_group("annotations")
    group.add_argument("--tier", default=DEFAULT_TIER,
                       help="the ELAN tier holding the signs, read or written (default: %(default)s)")
    group.add_argument("--vocabulary", metavar="FILE",
                       help="glosses, one per line (line k = class k): the values of ELAN files and the names of "
                            "classes in reports and plots; without it the values are class ids")
    return p
