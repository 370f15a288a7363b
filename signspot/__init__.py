"""signspot: the task logic of the HS-I3D sign-spotting pipeline.

Beside it, ``models`` holds the networks and ``datasets`` the data (synthetic
generator, frame store, folds, training/inference windows). This package holds
what ties them together: safe file I/O, ground truth, the official metric,
decoding, per-frame score files, configuration, training and inference.
"""

__version__ = "0.1.0"
