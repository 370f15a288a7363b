"""Score every frame of every video in a frame store with one checkpoint.

Run with --help for the options; the command lives in signspot/cli/infer.py.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[0]))

from signspot.cli.infer import run  # noqa: E402

if __name__ == "__main__":
    run()
