"""Train HS-I3D on one fold from a Python config file.

Run with --help for the options; the command lives in signspot/cli/train.py.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[0]))

from signspot.cli.train import run  # noqa: E402

if __name__ == "__main__":
    run()
