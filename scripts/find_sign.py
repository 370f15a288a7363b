#!/usr/bin/env python
"""Find a sign from one example (query-by-example spotting); see signspot/cli/find_sign.py or --help."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from signspot.cli.find_sign import run  # noqa: E402

if __name__ == "__main__":
    run()
