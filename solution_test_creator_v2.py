#!/usr/bin/env python
"""Ensemble per-frame score files, decode them into signs and write predictions.pkl.

Run with --help for the options; the command lives in signspot/cli/ensemble.py.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[0]))

from signspot.cli.ensemble import run  # noqa: E402

if __name__ == "__main__":
    run()
