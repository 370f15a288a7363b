"""Score every frame of every video in a frame store with one checkpoint.

Writes {save_dir}/{split}/{run}_{checkpoint stem}/frame_scores.pkl: per-frame
class + background probabilities of every video, with its fps and frame count,
the checkpoint path, head weights, window and stride; the input of
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


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lmdb_dir", required=True, help="frame store folder (ours or the original LMDB layout)")
    parser.add_argument("--checkpoint", "--checkpoint_dir", dest="checkpoint_dir", required=True, nargs="+",
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
    parser.add_argument("--stride", type=int, default=1, help="frames between window starts (default 1, the original; at most the window)")
    parser.add_argument("--batch-size", type=int, default=8, help="windows per forward pass (default 8)")
    parser.add_argument("--window", type=int, default=None, help="window length, a multiple of 8 (default: the checkpoint's, else 32)")
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ...; default: CUDA if available")
    parser.add_argument("--amp", choices=["bf16", "fp16"], default=None, help="mixed precision autocast (default off; fp16 on CUDA only)")
    parser.add_argument("--workers", type=int, default=2, help="worker processes decoding frames, one video each at a time (default 2; 0: in this process)")
    parser.add_argument(
        "--videos", nargs="+", default=None, help="score only these videos (names, space- or comma-separated)"
    )
    parser.add_argument("--flip-tta", action="store_true", help="also score left-right mirrored windows and average")
    parser.add_argument("--compat", choices=["original", "none"], default=None,
                        help="original: run exactly the original's windows in fp32 (starts range(0, N - 32), batches "
                             "of 8, the last incomplete batch dropped), for the released predictions bit for bit; "
                             "default none: every frame scored, short videos padded, --stride/--amp allowed")
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="hide the progress bar")
    return parser.parse_args(argv)


def main(**options):
    from ..inference import infer_store

    refuse_outputs_over_inputs({"--save_dir": options.get("save_dir")},
                               {"--lmdb_dir": options.get("lmdb_dir"), "--checkpoint": options.get("checkpoint_dir")})
    return infer_store(**options)


def run(argv=None):
    return run_main(main, parse_args(argv))
