#!/usr/bin/env python
"""Plot results: per-video timelines (ground truth, predictions, score heatmap), per-class F1

Run with --help for the options; the command lives in signspot/cli/visualize.py.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from signspot.cli.visualize import run  # noqa: E402

if __name__ == "__main__":
    run()
