#!/usr/bin/env python
"""Convert ground truth or predictions between the challenge pickle, TXT files and ELAN files.

Run with --help for the options; the command lives in signspot/cli/convert_annotations.py.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from signspot.cli.convert_annotations import run  # noqa: E402

if __name__ == "__main__":
    run()
