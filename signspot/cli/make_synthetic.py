"""Write a synthetic sign-spotting dataset in the ChaLearn 2022 MSSL layout.

A drawn signer signs continuously; each query class is a hand motion (place,
path, hand shape, one or two hands) and non-query signs of the same repertoire
fill the time between.  See datasets/synthetic/ (repertoire.py, plan.py, render.py)
for what is drawn and the statistics.  Examples:

  # the CPU demo: 10 classes, 16/6/6 videos of 48 s at 160x120, < 1 minute
  python scripts/make_synthetic_dataset.py --out data/synthetic_demo --preset demo

  # full-size defaults: 60 classes, 24/8/8 videos of 60 s at 256x192
  python scripts/make_synthetic_dataset.py --out data/synthetic

  # a picture of what was drawn
  python scripts/make_synthetic_dataset.py --out /tmp/s --preset demo --contact-sheet sheet.png

  # the one-shot track (OSLWL) of the same settings: query videos, 4-s clips, ground truth
  python scripts/make_synthetic_dataset.py --task oslwl --out data/synthetic_oslwl --preset demo
"""

import argparse

from signspot.datasets.synthetic import (
    PRESETS,
    SynthConfig,
    SyntheticConfigError,
    generate_dataset,
    generate_oslwl,
    make_contact_sheet,
    parse_size,
    parse_videos_per_split,
    resolve_config,
)

from ._exit import run_main


def parse_args(argv=None):
    d = SynthConfig()
    demo = PRESETS["demo"]
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, help="output folder (must not exist or be empty, unless --overwrite)")
    p.add_argument("--task", choices=("mssl", "oslwl"), default="mssl",
                   help="mssl (default): continuous videos of the query classes; oslwl: the one-shot track of the "
                        "same settings (query videos of signs no MSSL model has seen, clips holding them once)")
    p.add_argument("--oslwl-signs", type=int, default=10,
                   help="oslwl: one-shot signs per split, validation and test (default 10; the challenge had 20)")
    p.add_argument("--clips-per-sign", type=int, default=4,
                   help="oslwl: clips holding each sign (default 4; the challenge had 15 on average)")
    p.add_argument("--preset", choices=sorted(PRESETS),
                   help=f"named settings; 'demo' = {demo['classes']} classes, videos {demo['videos_per_split']}, "
                        f"{demo['seconds']:g} s, {demo['size'][0]}x{demo['size'][1]}, {demo['signers']} signers + "
                        f"{demo['test_only_signers']} test-only, mean sign {demo['mean_sign_frames']:g} frames, "
                        f"coverage {demo['coverage']}, imbalance {demo['imbalance']:g}; flags given explicitly win")
    p.add_argument("--classes", type=int, help=f"number of query classes, >= 2 (default {d.classes})")
    p.add_argument("--videos-per-split", type=str,
                   help=f"videos in TRAIN,VALIDATION,TEST: one number for all or three (default "
                        f"{','.join(map(str, d.videos_per_split))})")
    p.add_argument("--seconds", type=float, help=f"length of each video in seconds, >= 4 (default {d.seconds:g})")
    p.add_argument("--size", type=str, help=f"frame size WIDTHxHEIGHT, even, >= 64 (default {d.size[0]}x{d.size[1]})")
    p.add_argument("--seed", type=int, help=f"random seed; same seed, same dataset (default {d.seed})")
    p.add_argument("--workers", type=int, help="processes drawing videos in parallel (default: CPU count, max 8)")
    p.add_argument("--signers", type=int, help=f"signers in TRAIN/VALIDATION (default {d.signers})")
    p.add_argument("--test-only-signers", type=int, help=f"signers seen only in TEST (default {d.test_only_signers})")
    p.add_argument("--mean-sign-frames", type=float, help=f"mean sign length in frames (default {d.mean_sign_frames:g})")
    p.add_argument("--coverage", type=float, help=f"share of time inside query signs (default {d.coverage})")
    p.add_argument("--imbalance", type=float,
                   help=f"most frequent class / rarest class, expected (default {d.imbalance:g})")
    p.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    p.add_argument("--contact-sheet", type=str, metavar="PNG",
                   help="also write a PNG grid of frames (rows = classes, columns = signers)")
    p.add_argument("--quiet", action="store_true", help="no progress bar or summary table")
    return p.parse_args(argv)


def main(out, preset=None, classes=None, videos_per_split=None, seconds=None, size=None, seed=None, workers=None,
         signers=None, test_only_signers=None, mean_sign_frames=None, coverage=None, imbalance=None,
         overwrite=False, contact_sheet=None, quiet=False, task="mssl", oslwl_signs=10, clips_per_sign=4):
    values = resolve_config(
        preset,
        classes=classes,
        videos_per_split=parse_videos_per_split(videos_per_split) if videos_per_split is not None else None,
        seconds=seconds,
        size=parse_size(size) if size is not None else None,
        seed=seed,
        signers=signers,
        test_only_signers=test_only_signers,
        mean_sign_frames=mean_sign_frames,
        coverage=coverage,
        imbalance=imbalance,
    )
    if task == "oslwl":
        if contact_sheet:
            raise SyntheticConfigError("--contact-sheet draws the MSSL classes: it goes with --task mssl")
        generate_oslwl(out, signs=oslwl_signs, clips_per_sign=clips_per_sign, workers=workers or 1,
                       overwrite=overwrite, progress=not quiet, **values)
        return
    generate_dataset(out, workers=workers, overwrite=overwrite, progress=not quiet, **values)
    if contact_sheet:
        path = make_contact_sheet(out, contact_sheet)
        if not quiet:
            print(f"wrote {path}")


def run(argv=None):
    return run_main(main, parse_args(argv), prefix="make_synthetic_dataset: error")
