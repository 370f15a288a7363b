"""signspot: sign spotting with HS-I3D, in four layers.

Every module is imported under this one name. In the repository the layers are
folders side by side, so that listing the tree shows them:

    formats/    1  signspot.formats   file formats, safe I/O, typed errors (numpy, stdlib)
    datasets/   2  signspot.datasets  frame stores, videos, windows, folds, synthetic data
    models/     2  signspot.models    the HS-I3D networks
    signspot/   3  signspot           the engine: training, inference, ensembling, decoding, metric
    signspot/cli/, main.py, scripts/   4  the command line

An installed wheel holds them as sub-packages of ``signspot`` (pyproject.toml maps the
folders), so it never installs top-level ``datasets`` or ``models`` packages that would
replace others of those names. Run from a clone, this package's search path also takes the
repository root, where the three lower folders are.
"""

import os as _os

__version__ = "0.1.0"

_here = _os.path.dirname(_os.path.abspath(__file__))
if not _os.path.isdir(_os.path.join(_here, "datasets")):  # a clone: the lower layers sit beside this folder
    __path__.append(_os.path.dirname(_here))  # noqa: F821 - a package's __path__
