#!/usr/bin/env python
"""Score predictions with the official MSSL metric (the organisers' script, quirks included).

Run with --help for the options; the command lives in signspot/cli/evaluate.py.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from signspot.cli.evaluate import run  # noqa: E402

if __name__ == "__main__":
    run()
