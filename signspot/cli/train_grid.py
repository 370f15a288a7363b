"""Train the original grid of HS-I3D runs: both splits x every fold x neg_prob {0, 0.1, 0.5}.

Run folders are named like the released ones, e.g.
runs/5fold_neg01/maxfix_neg01_fold4/ckpts/best_checkpoint_155_0.4848.pt
(original_split has 5 folds, new_split 7). Each run resumes from its latest checkpoint,
so rerunning the command continues an interrupted grid.

    python scripts/train_grid.py --folds-root data/folds --out runs --dry-run
    python scripts/train_grid.py --folds-root data/folds --out runs --nproc-per-node 4 \\
        --set data.frame_store=data/frame_store
"""

import argparse
from pathlib import Path

from ..grid import GRID_NEG_PROBS, SPLIT_FOLDS, train_grid
from ._exit import run_main


def _floats(text: str) -> list:
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


def _ints(text: str) -> list:
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--folds-root", required=True, help="folder holding original_split/ and new_split/ (make_folds.py output)")
    parser.add_argument("--out", default="runs", help="parent folder of the run folders (default: runs)")
    parser.add_argument("--config", default=str(Path(__file__).resolve().parents[2] / "config" / "example_config.py"),
                        help="config file every run starts from (default: config/example_config.py)")
    parser.add_argument("--splits", type=lambda t: [s for s in t.split(",") if s], default=list(SPLIT_FOLDS),
                        help=f"comma-separated splits (default: {','.join(SPLIT_FOLDS)})")
    parser.add_argument("--neg-probs", type=_floats, default=list(GRID_NEG_PROBS),
                        help="comma-separated neg_prob values (default: 0,0.1,0.5)")
    parser.add_argument("--exclude-folds", type=_ints, default=[],
                        help="comma-separated fold indices to skip (the released ensemble left out fold 3)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.FIELD=VALUE",
                        help="config override passed to every run (repeatable)")
    parser.add_argument("--nproc-per-node", type=int, default=1, help="processes (GPUs) per run, launched with torchrun")
    parser.add_argument("--dry-run", action="store_true", help="print the commands without running them")
    parser.add_argument("--keep-going", action="store_true", help="continue with the next run when one fails")
    return parser.parse_args(argv)


def main(folds_root, out, config, splits, neg_probs, exclude_folds, overrides, nproc_per_node, dry_run, keep_going):
    return train_grid(folds_root, out, config, splits=splits, neg_probs=neg_probs, exclude_folds=exclude_folds,
                      overrides=overrides, nproc_per_node=nproc_per_node, dry_run=dry_run, keep_going=keep_going)


def run(argv=None):
    return run_main(main, parse_args(argv),
                    on_interrupt="run the same command again: finished runs are skipped, the interrupted one resumes")
