"""Split the ground truth into cross-validation folds by video (fold CSVs for training).

Example:
    python scripts/make_folds.py --train-gt data/MSSL/TRAIN/MSSL_TRAIN_SET_GT.pkl \\
        --val-gt data/MSSL/VALIDATION/MSSL_VAL_SET_GT.pkl \\
        --store data/lmdb/train data/lmdb/val --out data/folds

writes data/folds/original_split/{train,valid}_{0..4}.csv (training videos) and
data/folds/new_split/{train,valid}_{0..6}.csv (training + validation videos).
"""

import argparse
from pathlib import Path

from datasets.folds import make_folds

from ._exit import run_main


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train-gt", dest="train_gt", required=True,
                        help="training ground truth (.pkl or folder of <video>.txt)")
    parser.add_argument("--val-gt", dest="val_gt", default=None,
                        help="validation ground truth; without it only original_split is written")
    parser.add_argument("--store", nargs="+", required=True,
                        help="frame store(s) holding the videos (frame counts and fps come from them)")
    parser.add_argument("--out", dest="out_dir", required=True, help="output folder")
    parser.add_argument("--folds", type=int, default=5, help="folds of original_split (default 5)")
    parser.add_argument("--new-folds", dest="new_folds", type=int, default=7, help="folds of new_split (default 7)")
    parser.add_argument("--seed", type=int, default=0, help="breaks ties in the assignment (default 0)")
    parser.add_argument("--num-classes", dest="num_classes", type=int, default=60, help="classes (default 60)")
    return parser.parse_args(argv)


def main(train_gt, store, out_dir, val_gt=None, folds=5, new_folds=7, seed=0, num_classes=60) -> dict:
    result = make_folds(train_gt, store, out_dir, val_gt=val_gt, folds=folds, new_folds=new_folds,
                        seed=seed, num_classes=num_classes)
    for split, assignment in result.items():
        print(f"{Path(out_dir) / split}: {len(assignment)} videos in {len(set(assignment.values()))} folds")
    return result


def run(argv=None):
    return run_main(main, parse_args(argv))
