"""Train the original grid of HS-I3D runs: both splits x every fold x neg_prob {0, 0.1, 0.5}.

Run with --help for the options; the command lives in signspot/cli/train_grid.py.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from signspot.cli.train_grid import run  # noqa: E402

if __name__ == "__main__":
    run()
