"""Build the LMDB frame store of one or more folders of videos: signer crops, one JPEG per frame.

Example:
    python scripts/track1_lmdb_creator.py --dest_dir data/lmdb/train \\
        --dataset_dir data/MSSL/TRAIN/MSSL_TRAIN_SET_VIDEOS --bbox_dir data/MSSL/train_bboxes.json

Several folders go into one store (e.g. training + validation videos for the
new_split folds) with one box file per folder, paired in order:
    python scripts/track1_lmdb_creator.py --dest_dir data/lmdb/train_val \\
        --dataset_dir TRAIN/MSSL_TRAIN_SET_VIDEOS VALIDATION/MSSL_VAL_SET_VIDEOS \\
        --bbox_dir train_bboxes.json val_bboxes.json

By default the store holds what the original creator stored, byte for byte (the released
checkpoints were trained and scored on such frames): the crop at its native size, JPEG
quality 75, the header's frame count. A store for faster training loads is an explicit
choice, e.g. 256x256 frames at quality 90:
    python scripts/track1_lmdb_creator.py --dest_dir data/lmdb/train_fast ... --size 256 --quality 90

The store is built in <dest_dir>.partial and renamed when complete; rerun the same
command after an interruption to continue where it stopped.
"""

import argparse

from signspot.datasets.store_writer import create_frame_store

from ..formats.safe_io import refuse_outputs_over_inputs
from ._exit import CommandError, run_main


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dest_dir", required=True,
                        help="LMDB store to create (a folder; must not exist yet; missing parents are created)")
    parser.add_argument("--dataset_dir", required=True, nargs="+",
                        help="folder(s) of the videos (*.mp4); a video name may appear in only one of them")
    parser.add_argument("--bbox_dir", required=True, nargs="+",
                        help="signer boxes, JSON {video: [x1, y1, x2, y2]}: one file per --dataset_dir folder, "
                             "in the same order")
    parser.add_argument("--workers", type=int, default=None,
                        help="encoding processes (default: CPUs - 1, at most 8; 0 encodes in this process)")
    parser.add_argument("--compat", choices=("original", "none"), default=None,
                        help="original (the default unless --size/--quality is given): the original creator's "
                             "frames: native-size crops, JPEG quality 75, the header's frame count, undecodable "
                             "frames black; none: the --size/--quality store")
    parser.add_argument("--size", type=int, default=None,
                        help="store frames resized to SIZE x SIZE (implies --compat none; default then 256, the "
                             "network's pre-crop size); 0 keeps the crop's own size")
    parser.add_argument("--quality", type=int, default=None,
                        help="JPEG quality 1-100 (implies --compat none; default then 90)")
    parser.add_argument("--skip-bad", dest="skip_bad", action="store_true",
                        help="store the good videos even if some are bad; list the bad ones and exit with status 1")
    parser.add_argument("--full-frame-if-missing", dest="full_frame_if_missing", action="store_true",
                        help="store the whole frame of a video that has no signer box instead of failing")
    return parser.parse_args(argv)


def main(dest_dir, dataset_dir, bbox_dir, workers=None, compat=None, size=None, quality=None, skip_bad=False,
         full_frame_if_missing=False) -> dict:
    refuse_outputs_over_inputs({"--dest_dir": dest_dir}, {"--dataset_dir": dataset_dir, "--bbox_dir": bbox_dir})
    report = create_frame_store(dest_dir, dataset_dir, bbox_dir, compat=compat, size=size, quality=quality,
                                workers=workers, skip_bad=skip_bad, full_frame_if_missing=full_frame_if_missing)
    print(f"{report['path']}: {len(report['stored'])} videos stored, {len(report['resumed'])} already done")
    if report["bad"]:
        listing = "\n".join(f"  {video}: {reason}" for video, reason in report["bad"].items())
        raise CommandError(f"{len(report['bad'])} bad videos were skipped:\n{listing}")
    return report


def run(argv=None):
    return run_main(main, parse_args(argv),
                    on_interrupt="the finished videos are kept; run the same command again to store the rest")
