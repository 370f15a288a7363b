#!/usr/bin/env python
"""Write a synthetic sign-spotting dataset in the ChaLearn 2022 MSSL layout.

Run with --help for the options; the command lives in signspot/cli/make_synthetic.py.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from signspot.cli.make_synthetic import run  # noqa: E402

if __name__ == "__main__":
    run()
