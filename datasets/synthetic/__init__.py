"""A synthetic sign-spotting dataset in the exact layout of ChaLearn 2022 MSSL.

Every later stage of the pipeline runs on real LSE_UVIGO data; this package makes
a stand-in with the same files, so the whole pipeline can be built, tested and
demonstrated without the (licensed) original.  A drawn signer signs
continuously; each query class is a hand motion and non-query signs of the same
repertoire fill the time between.

Modules, each importing only the ones above it:

* ``repertoire``    sign attributes (place, path, hand shape, hand mode), the query classes
* ``config``        constants, split layout, ``SynthConfig``, presets, value parsers
* ``plan``          signers, video layout, timelines and ground truth
* ``pose``          per-frame hand tracks
* ``render``        drawing the frames, writing the mp4
* ``stats``         dataset statistics and the summary table
* ``generate``      ``generate_dataset``: the whole dataset on disk (the file layout)
* ``contact_sheet`` a PNG grid of frames of a written dataset
* ``oslwl``         ``generate_oslwl``: the one-shot track (query videos, 4-s clips) of the same settings
"""

from .config import (
    FPS,
    MS_PER_FRAME,
    PRESETS,
    SPLITS,
    SynthConfig,
    SyntheticConfigError,
    parse_size,
    parse_videos_per_split,
    resolve_config,
)
from .contact_sheet import make_contact_sheet
from .generate import generate_dataset
from .oslwl import generate_oslwl, oslwl_signs
from .plan import plan_dataset
from .render import render_video
from .repertoire import class_repertoire

__all__ = [
    "FPS",
    "MS_PER_FRAME",
    "SPLITS",
    "PRESETS",
    "SyntheticConfigError",
    "SynthConfig",
    "class_repertoire",
    "plan_dataset",
    "render_video",
    "generate_dataset",
    "generate_oslwl",
    "oslwl_signs",
    "make_contact_sheet",
    "parse_size",
    "parse_videos_per_split",
    "resolve_config",
]
