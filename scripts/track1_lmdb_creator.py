#!/usr/bin/env python
"""Build the LMDB frame store of one or more folders of videos: signer crops, one JPEG per frame.

Run with --help for the options; the command lives in signspot/cli/create_store.py.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from signspot.cli.create_store import run  # noqa: E402

if __name__ == "__main__":
    run()
