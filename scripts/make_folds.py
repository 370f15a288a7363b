#!/usr/bin/env python
"""Split the ground truth into cross-validation folds by video (fold CSVs for training).

Run with --help for the options; the command lives in signspot/cli/make_folds.py.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from signspot.cli.make_folds import run  # noqa: E402

if __name__ == "__main__":
    run()
