"""Run the whole pipeline on the embedded synthetic dataset (the README's `make demo`).

Run with --help for the options; the command lives in signspot/cli/demo.py.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from signspot.cli.demo import run  # noqa: E402

if __name__ == "__main__":
    run()
