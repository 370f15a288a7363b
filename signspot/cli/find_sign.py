"""Find a sign from one example: where do the queries' signs occur in these videos?

    # the challenge's OSLWL track: each clip is known to hold its query's sign (the sNN in its name)
    python scripts/find_sign.py --queries OSLWL_QUERY_TEST_SET/ --videos OSLWL_TEST_SET_VIDEOS/ \\
        --checkpoints runs/ --out found/ --weak-labels
    # open search: every query in every video; tune the threshold on labelled videos, then reuse it
    python scripts/find_sign.py --queries val_queries/ --videos val_clips/ --checkpoints runs/ --out tuned/ \\
        --tune-on OSLWL_VAL_SET_GT.pkl
    python scripts/find_sign.py --queries dictionary/HELLO.mp4 --videos corpus/ --checkpoints runs/ \\
        --out found/ --match-config tuned/match_config.json --vocabulary vocabulary.txt

No model is trained on the signs looked for: a trained HS-I3D (the MSSL checkpoints) embeds every
frame and a temporal similarity (subsequence DTW of the query against the video; --matcher baseline:
the OSLWL third place's 8-frame I3D windows) decides. OUT gets predictions.pkl (the challenge's
format, the query's sign id), spotted.csv, one ELAN .eaf per video and plots/<video>.png (each
query's similarity over time, the intervals found shaded). A query's sign id is the sNN in its name
(p00_s20.mp4 -> 20), else its gloss's line in --vocabulary (HELLO.mp4), else its place in name order.
"""

import argparse

from ..oneshot import MATCHERS
from ._exit import run_main
from ._flags import annotation_flags


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                parents=[annotation_flags()])
    p.add_argument("--queries", nargs="+", required=True, metavar="PATH",
                   help="query videos, one isolated sign each: files, folders or glob patterns")
    p.add_argument("--videos", nargs="+", required=True, metavar="PATH",
                   help="videos to search: files, folders or glob patterns")
    p.add_argument("--checkpoints", nargs="+", required=True, metavar="PATH",
                   help="HS-I3D checkpoints (ours or the released ones) or folders of them; several are averaged")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (must not exist, or be empty)")
    p.add_argument("--weak-labels", action="store_true",
                   help="each video holds its query's sign (the sNN in its name, the challenge's rule): find where")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--boxes", nargs="+", metavar="JSON",
                       help="signer boxes of the queries and videos, {name: [x1, y1, x2, y2]}, in one file or several")
    where.add_argument("--box", choices=["auto", "full"], default="auto",
                       help="without --boxes: auto (default) estimates the signer from the motion; full: whole frame")
    p.add_argument("--matcher", choices=MATCHERS, default=None,
                   help="dtw (default): per-frame embeddings and subsequence DTW; baseline: the OSLWL third place's "
                        "recipe (8-frame I3D windows, cosine similarity)")
    p.add_argument("--tune-on", metavar="GT", help="open search: tune the threshold on these videos' ground truth "
                                                   "(pkl, TXT or ELAN folder) by official F1; saves OUT/match_config.json")
    p.add_argument("--match-config", metavar="JSON", help="open search: a threshold saved by --tune-on")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ...; default: CUDA if available")
    p.add_argument("--stride", type=int, default=None,
                   help="frames between the embedding windows (default: a quarter of the checkpoint's window)")
    p.add_argument("--batch-size", type=int, default=8, help="windows per forward pass (default 8)")
    p.add_argument("--no-plots", dest="plots", action="store_false", help="skip the similarity plots")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="hide the progress bars")
    return p.parse_args(argv)


def main(**options) -> dict:
    from ..find_sign import find_signs

    return find_signs(**options)


def run(argv=None):
    return run_main(main, parse_args(argv))
