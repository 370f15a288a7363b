#!/usr/bin/env python
"""Spot signs in your own videos: videos and checkpoints in; predictions, ELAN files and a CSV out.

Run with --help for the options; the command lives in signspot/cli/spot.py.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from signspot.cli.spot import run  # noqa: E402

if __name__ == "__main__":
    run()
