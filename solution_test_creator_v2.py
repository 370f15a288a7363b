#!/usr/bin/env python
"""Ensemble per-frame score files, decode them into signs and write predictions.pkl.

Averages every frame_scores.pkl (and every original dict_results.pkl) under a results
folder, decodes each video with its own fps and writes the challenge's predictions file.

    # validation: pick decoding settings by official F1, save them, print the score
    python solution_test_creator_v2.py --results-dir chalearn_results/valid --tune-on MSSL_VAL_SET_GT.pkl \\
        --save-decode-config decode_config.json --out val_predictions.pkl
    # test: reuse them
    python solution_test_creator_v2.py --results-dir chalearn_results/test --decode-config decode_config.json
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[0]))

from signspot.ensemble import ensemble_main  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--results-dir", "--results_dir", dest="results_dir", default="chalearn_results/test",
                   help="folder searched recursively for score files (default: %(default)s)")
    p.add_argument("--out", default="predictions.pkl", help="predictions file to write (default: %(default)s)")
    p.add_argument("--exclude", nargs="*", default=[], metavar="PATTERN",
                   help="skip score files whose path (relative to --results-dir) contains PATTERN, or matches it "
                        "as a glob if it has * ? [ (the original excluded _fold3_)")
    p.add_argument("--decode-config", metavar="JSON", help="decode settings saved by --tune-on / --save-decode-config")
    p.add_argument("--smoothing", type=int, help="moving average of the scores over N frames (0: off)")
    p.add_argument("--min-length", type=int, help="drop signs shorter than N frames (0: off)")
    p.add_argument("--merge-gap", type=int, help="merge same-class signs separated by <= N background frames (0: off)")
    p.add_argument("--background-margin", type=float,
                   help="a sign must beat the background score by this much to win a frame (0: off)")
    p.add_argument("--tune-on", metavar="GT", help="grid-search decode settings on these scores against this ground truth")
    p.add_argument("--save-decode-config", metavar="JSON",
                   help="where to save the decode settings (default with --tune-on: decode_config.json beside --out)")
    p.add_argument("--evaluate", metavar="GT", help="print the official score of the written predictions")
    p.add_argument("--save-scores", metavar="FILE", help="also save the ensembled per-frame scores (for plots)")
    p.add_argument("--quiet", action="store_true", help="no progress bars or messages")
    return p.parse_args(argv)


if __name__ == "__main__":
    ensemble_main(**vars(parse_args()))
