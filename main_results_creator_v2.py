"""Score every frame of every video in a frame store with one checkpoint.

Writes ``{save_dir}/{split}/{run}_{checkpoint stem}/frame_scores.pkl`` (per-frame
class + background probabilities, fps, frame counts, checkpoint path), the
input of ``solution_test_creator_v2.py``. Multi-GPU:

    torchrun --nproc_per_node 4 main_results_creator_v2.py --lmdb_dir ... --checkpoint_dir ...
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[0]))


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--lmdb_dir", required=True, help="frame store folder (ours or the original LMDB layout)")
    parser.add_argument("--checkpoint_dir", required=True, help="one checkpoint file (.pt), ours or a released one")
    parser.add_argument("--save_dir", default="chalearn_results", help="results root folder")
    parser.add_argument(
        "--split",
        default=None,
        help="results sub-folder; default: test/valid/train if the store folder's name contains it, "
        "else the store folder's name",
    )
    parser.add_argument("--stride", type=int, default=1, help="frames between window starts (1 = original)")
    parser.add_argument("--batch-size", type=int, default=8, help="windows per forward pass")
    parser.add_argument("--window", type=int, default=None, help="window length; default: the checkpoint's (32)")
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ...; default: CUDA if available")
    parser.add_argument("--amp", choices=["bf16", "fp16"], default=None, help="autocast dtype (fp16 CUDA only)")
    parser.add_argument("--workers", type=int, default=2, help="DataLoader worker processes decoding frames")
    parser.add_argument(
        "--videos", nargs="+", default=None, help="score only these videos (names, space- or comma-separated)"
    )
    parser.add_argument("--flip-tta", action="store_true", help="also score left-right mirrored windows and average")
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    return parser.parse_args(argv)


if __name__ == "__main__":
    from signspot.inference import InferenceError, main

    try:
        main(**vars(parse_args()))
    except InferenceError as exc:
        raise SystemExit(f"error: {exc}") from None
