"""Score every frame of every video in a frame store with one or more checkpoints, in one pass.

Each frame is decoded once and every batch of windows goes through every checkpoint.
Writes, per checkpoint, {save_dir}/{split}/{run}_{checkpoint stem}/frame_scores.pkl:
per-frame class + background probabilities of every video, with its fps and frame
count, the checkpoint path, head weights, window and stride; the input of
solution_test_creator_v2.py. {run} is the training run's folder (the one above
ckpts/). The model is rebuilt from the config stored in the checkpoint; a
released checkpoint (no config) gets the original HS-I3D.

    python main_results_creator_v2.py --lmdb_dir data/test_lmdb --checkpoint_dir runs/fold1/ckpts/latest_checkpoint.pt
    python main_results_creator_v2.py --lmdb_dir data/test_lmdb --checkpoint_dir runs/   # every run's best, one pass
    torchrun --nproc_per_node 4 main_results_creator_v2.py --lmdb_dir ... --checkpoint_dir ...
"""

import argparse

from ..formats.safe_io import refuse_outputs_over_inputs
from ._exit import run_main
from ._flags import model_flags


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                     parents=[model_flags(workers=2, workers_help="worker processes decoding frames, "
                                                                                  "one video each at a time")])
    parser.add_argument("--lmdb_dir", required=True, help="frame store folder (ours or the original LMDB layout)")
    parser.add_argument("--checkpoint", "--checkpoint_dir", dest="checkpoints", required=True, nargs="+",
                        metavar="PATH",
                        help="checkpoint files (.pt), ours or released ones, or folders of them (a folder gives the "
                             "best_checkpoint_*.pt files under it, else every *.pt); several are scored in one pass, "
                             "each frame decoded once, one frame_scores.pkl each (--checkpoint_dir: the original's name)")
    parser.add_argument("--save_dir", default="chalearn_results", help="results root folder (default: chalearn_results)")
    parser.add_argument(
        "--split",
        default=None,
        help="results sub-folder; default: test/valid/train if the store folder's name contains it, "
        "else the store folder's name",
    )
    parser.add_argument(
        "--videos", nargs="+", default=None, help="score only these videos (names, space- or comma-separated)"
    )
    parser.add_argument("--compat", choices=["original", "none"], default=None,
                        help="original: run exactly the original's windows in fp32 (starts range(0, N - 32), batches "
                             "of 8, the last incomplete batch dropped), for the released predictions bit for bit; "
                             "default none: every frame scored, short videos padded, --stride/--amp allowed")
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="hide the progress bar")
    return parser.parse_args(argv)


def main(**options):
    from ..inference import infer_store

    refuse_outputs_over_inputs({"--save_dir": options.get("save_dir")},
                               {"--lmdb_dir": options.get("lmdb_dir"), "--checkpoint": options.get("checkpoints")})
    return infer_store(**options)


def run(argv=None):
    return run_main(main, parse_args(argv))
