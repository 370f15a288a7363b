"""Spot signs in your own videos: no frame store, no signer boxes needed.

    python scripts/spot.py --videos my_videos/ --checkpoints runs/ --out spotted/
    python scripts/spot.py --videos "clips/*.mp4" --checkpoints best.pt --boxes spotted/boxes.json \\
        --vocabulary vocabulary.txt --out spotted/

Each video is decoded once, its signer crop cut on the fly and every checkpoint run on
each batch of windows; the checkpoints are averaged and decoded exactly as
solution_test_creator_v2.py does. OUT gets predictions.pkl (the challenge's format),
<video>.eaf (ELAN 3.0: tier "signspot" of glosses, "signspot-score" below it),
spotted.csv (video,class,gloss,start_ms,end_ms,score) and boxes.json (the box each
video got; correct it and rerun with --boxes). A rerun skips the videos already done.
"""

import argparse

from ..formats.safe_io import refuse_outputs_over_inputs
from ..spot import DEFAULT_STRIDE
from ._exit import run_main
from ._flags import annotation_flags, model_flags


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                parents=[model_flags(workers=1, workers_help="a process decoding frames ahead of the network",
                                                     stride=DEFAULT_STRIDE,
                                                     stride_help="test F1 within 0.01 of the original's stride 1 "
                                                                 "(bench/bench_stride.py)"),
                                         annotation_flags()])
    p.add_argument("--videos", nargs="+", required=True, metavar="PATH",
                   help="video files (any container OpenCV reads), folders of videos, or glob patterns")
    p.add_argument("--checkpoints", nargs="+", required=True, metavar="PATH",
                   help="checkpoint files (ours or the released ones) or folders of them (a folder gives the "
                        "best_checkpoint_*.pt files under it, else every *.pt)")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (created; earlier results are reused)")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--boxes", metavar="JSON", help="signer boxes, the challenge's {video: [x1, y1, x2, y2]}")
    where.add_argument("--box", choices=["auto", "full"], default="auto",
                       help="without --boxes: auto (default) estimates the signer from where the video moves; "
                            "full takes the whole frame")
    p.add_argument("--decode-config", metavar="JSON", help="decode settings saved by solution_test_creator_v2.py --tune-on")
    p.add_argument("--save-scores", action="store_true", help="also write the per-frame scores, OUT/scores/<video>/")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="hide the progress bars")
    return p.parse_args(argv)


def main(**options) -> dict:
    from ..spot import spot_videos

    refuse_outputs_over_inputs({"--out": options.get("out")}, {
        flag: options.get(key) for flag, key in (("--videos", "videos"), ("--checkpoints", "checkpoints"),
                                                 ("--boxes", "boxes"), ("--vocabulary", "vocabulary"),
                                                 ("--decode-config", "decode_config"))})
    summary = spot_videos(**options)
    print(f"ELAN files ({len(summary['eaf'])}): {summary['out']}/*.eaf")
    return summary


def run(argv=None):
    return run_main(main, parse_args(argv),
                    on_interrupt="the finished videos are kept; run the same command again to spot the rest")
