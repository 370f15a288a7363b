"""Run the whole pipeline on the embedded synthetic dataset (the README's `make demo`).

    python scripts/demo.py --out demo_out

Generates the synthetic data set, builds the frame stores, makes folds, trains the tiny
demo model on two folds, scores validation and test with each checkpoint, tunes the
decoding on validation, ensembles, scores the test split with the official metric and
writes plots. Each command is printed as it runs; rerunning continues where it stopped.
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from signspot.demo import DemoError, run_demo  # noqa: E402


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="demo_out", help="output folder (default: demo_out)")
    parser.add_argument("--folds", type=int, default=2, help="folds to train (default: 2)")
    parser.add_argument("--epochs", type=int, default=None, help="override the demo config's epochs")
    parser.add_argument("--stride", type=int, default=2, help="inference window stride (default: 2)")
    parser.add_argument("--workers", type=int, default=2, help="processes for data generation and stores")
    parser.add_argument("--seed", type=int, default=0, help="seed of data and training (default: 0)")
    parser.add_argument("--tiny", action="store_true", help="a minute-long smoke run (tests use it)")
    return parser.parse_args()


if __name__ == "__main__":
    try:
        run_demo(**vars(parse_args()))
    except DemoError as exc:
        raise SystemExit(f"demo: {exc}")
