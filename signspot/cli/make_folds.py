"""Split the ground truth into cross-validation folds by video (fold CSVs for training).

Example:
    python scripts/make_folds.py --train-gt data/MSSL/TRAIN/MSSL_TRAIN_SET_GT.pkl \\
        --val-gt data/MSSL/VALIDATION/MSSL_VAL_SET_GT.pkl \\
        --store data/lmdb/train data/lmdb/val --out data/folds

writes data/folds/original_split/{train,valid}_{0..4}.csv (training videos) and
data/folds/new_split/{train,valid}_{0..6}.csv (training + validation videos).

Ground truth in ELAN files: a folder of <video>.eaf, the signs on tier --tier, their glosses listed in
--vocabulary (one per line, line k = class k; the number of glosses is then the default --num-classes):
    python scripts/make_folds.py --train-gt my_eaf --tier signs --vocabulary vocabulary.txt \\
        --store data/lmdb/mine --out data/folds_mine
"""

import argparse
from pathlib import Path

from signspot.datasets.folds import make_folds

from ..formats.elan import DEFAULT_TIER
from ..formats.safe_io import refuse_outputs_over_inputs
from ..formats.vocabulary import load_vocabulary
from ._exit import run_main
from ._flags import annotation_flags


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                parents=[annotation_flags()])
    parser.add_argument("--train-gt", dest="train_gt", required=True,
                        help="training ground truth (.pkl, or a folder of <video>.txt or <video>.eaf)")
    parser.add_argument("--val-gt", dest="val_gt", default=None,
                        help="validation ground truth; without it only original_split is written")
    parser.add_argument("--store", nargs="+", required=True,
                        help="frame store(s) holding the videos (frame counts and fps come from them)")
    parser.add_argument("--out", dest="out_dir", required=True, help="output folder")
    parser.add_argument("--folds", type=int, default=5, help="folds of original_split (default 5)")
    parser.add_argument("--new-folds", dest="new_folds", type=int, default=7, help="folds of new_split (default 7)")
    parser.add_argument("--seed", type=int, default=0, help="breaks ties in the assignment (default 0)")
    parser.add_argument("--num-classes", dest="num_classes", type=int, default=None,
                        help="classes (default: the glosses of --vocabulary, else 60)")
    return parser.parse_args(argv)


def main(train_gt, store, out_dir, val_gt=None, folds=5, new_folds=7, seed=0, num_classes=None,
         tier=DEFAULT_TIER, vocabulary=None) -> dict:
    refuse_outputs_over_inputs({"--out": out_dir}, {"--train-gt": train_gt, "--val-gt": val_gt, "--store": store,
                                                   "--vocabulary": vocabulary})
    glosses = load_vocabulary(vocabulary) if vocabulary else None
    if num_classes is None:
        num_classes = len(glosses) if glosses else 60
    result = make_folds(train_gt, store, out_dir, val_gt=val_gt, folds=folds, new_folds=new_folds,
                        seed=seed, num_classes=num_classes, tier=tier, vocabulary=glosses)
    for split, assignment in result.items():
        print(f"{Path(out_dir) / split}: {len(assignment)} videos in {len(set(assignment.values()))} folds")
    return result


def run(argv=None):
    return run_main(main, parse_args(argv))
