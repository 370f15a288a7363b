#!/usr/bin/env python
"""Score predictions with the official MSSL metric (the organisers' script, quirks included).

    python scripts/evaluate.py --gt MSSL_VAL_SET_GT.pkl --pred predictions.pkl [--json score.json] [--report]
    python scripts/evaluate.py --input DIR --output OUT   # CodaLab: DIR/ref/ground_truth.pkl, DIR/res/predictions.pkl -> OUT/scores.txt
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from signspot.metric import evaluate_main  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--gt", help="ground truth: a .pkl file or a folder of <video>.txt (class,start_ms,end_ms lines)")
    p.add_argument("--pred", help="predictions: a .pkl file or a folder of <video>.txt")
    p.add_argument("--json", dest="json_path", metavar="FILE",
                   help="also write {f1, precision, recall, tp, fp, fn} to this JSON file")
    p.add_argument("--report", action="store_true", help="print per-IoU-threshold and per-class tables")
    p.add_argument("--strict", action="store_true",
                   help="one-to-one matching (greedy by IoU, no filtering) instead of the official quirky metric")
    p.add_argument("--input", metavar="DIR", help="CodaLab layout: DIR/ref/ground_truth.pkl and DIR/res/predictions.pkl")
    p.add_argument("--output", metavar="DIR", help="CodaLab layout: write DIR/scores.txt with 'avg_f1: X'")
    return p.parse_args(argv)


if __name__ == "__main__":
    evaluate_main(**vars(parse_args()))
