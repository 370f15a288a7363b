#!/usr/bin/env python
"""Plot results: per-video timelines (ground truth, predictions, score heatmap), per-class F1
bars and precision/recall over IoU thresholds.

    python scripts/visualize.py --scores chalearn_results/valid --gt MSSL_VAL_SET_GT.pkl \\
        --pred val_predictions.pkl --out plots/ [--videos p01_n000 p01_n001] [--class-names names.csv]
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from signspot.plots import visualize_main  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scores", help="a per-frame score file (or original dict_results.pkl), or a folder to ensemble")
    p.add_argument("--gt", help="ground truth (.pkl or folder of <video>.txt)")
    p.add_argument("--pred", help="predictions (.pkl or folder); default: decode --scores with the original rule")
    p.add_argument("--out", default="plots", help="output folder for the PNGs (default: %(default)s)")
    p.add_argument("--videos", nargs="*", help="videos to draw timelines for (default: the first --max-videos)")
    p.add_argument("--max-videos", type=int, default=10, help="timelines drawn when --videos is not given")
    p.add_argument("--class-names", help="JSON list / {id: name} or CSV 'id,name' of class names")
    p.add_argument("--exclude", nargs="*", default=[], help="patterns excluded when --scores is a folder")
    return p.parse_args(argv)


if __name__ == "__main__":
    visualize_main(**vars(parse_args()))
