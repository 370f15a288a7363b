"""Plot results: per-video timelines (ground truth, predictions, score heatmap), per-class F1
bars and precision/recall over IoU thresholds.

    python scripts/visualize.py --scores chalearn_results/valid --gt MSSL_VAL_SET_GT.pkl \\
        --pred val_predictions.pkl --out plots/ [--videos p01_n000 p01_n001] [--vocabulary vocabulary.txt]

Signs are labelled with their glosses from --vocabulary (one gloss per line, line k = class k),
or with their class ids without one.
"""

import argparse
from pathlib import Path
from typing import Optional, Sequence

from ..decode import DecodeSettings, decode_all
from ..ensemble import ensemble_frame_scores, find_score_files
from ..formats.elan import DEFAULT_TIER
from ..formats.gt import load_intervals
from ..formats.safe_io import refuse_outputs_over_inputs, safe_file_stems
from ..formats.timebase import ORIGINAL_FPS
from ..formats.vocabulary import load_vocabulary
from ..metric import score_report
from ..original_results import load_any_scores
from ..plots import load_class_names, plot_class_f1, plot_threshold_curves, plot_video_timeline
from ._exit import CommandError, run_main
from ._flags import annotation_flags


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                parents=[annotation_flags()])
    p.add_argument("--scores", help="a per-frame score file (or original dict_results.pkl), or a folder to ensemble")
    p.add_argument("--gt", help="ground truth (.pkl, or a folder of <video>.txt or <video>.eaf)")
    p.add_argument("--pred", help="predictions (.pkl or folder); default: decode --scores with the original rule")
    p.add_argument("--out", default="plots", help="output folder for the PNGs (default: %(default)s)")
    p.add_argument("--videos", nargs="*", help="videos to draw timelines for (default: the first --max-videos)")
    p.add_argument("--max-videos", type=int, default=10,
                   help="timelines drawn when --videos is not given (default 10)")
    p.add_argument("--class-names", help="older label files: JSON list / {id: name} or CSV 'id,name' (prefer "
                                         "--vocabulary)")
    p.add_argument("--exclude", nargs="*", default=[], help="patterns excluded when --scores is a folder")
    return p.parse_args(argv)


def main(
    scores: Optional[str] = None,
    gt: Optional[str] = None,
    pred: Optional[str] = None,
    out: str = "plots",
    videos: Optional[Sequence[str]] = None,
    class_names: Optional[str] = None,
    max_videos: int = 10,
    exclude: Sequence[str] = (),
    tier: str = DEFAULT_TIER,
    vocabulary: Optional[str] = None,
) -> list:
    """Write the figures to ``out``; returns the written paths."""
    from tqdm import tqdm

    if vocabulary and class_names:
        raise CommandError("give --vocabulary or --class-names, not both")
    if max_videos < 1:
        raise CommandError(f"--max-videos {max_videos}: must be >= 1 (or name the videos with --videos)")
    refuse_outputs_over_inputs({"--out": out}, {"--scores": scores, "--gt": gt, "--pred": pred,
                                                "--class-names": class_names, "--vocabulary": vocabulary})
    glosses = load_vocabulary(vocabulary) if vocabulary else None
    names = glosses.names() if glosses else load_class_names(class_names)
    frame_scores = {}
    if scores:
        if Path(scores).is_dir():
            frame_scores = ensemble_frame_scores(find_score_files(scores, exclude), progress=False)
        else:
            frame_scores = load_any_scores(scores)["videos"]
    gt_data = load_intervals(gt, tier=tier, vocabulary=glosses) if gt else {}
    if pred:
        pred_data = load_intervals(pred, tier=tier, vocabulary=glosses)
    elif frame_scores:
        pred_data = decode_all(frame_scores, DecodeSettings())
    else:
        pred_data = {}
    if not (frame_scores or gt_data or pred_data):
        raise CommandError("nothing to plot: give --scores, --gt and/or --pred")

    out_dir = Path(out)
    written = []
    chosen = list(videos) if videos else sorted(set(frame_scores) | set(gt_data) | set(pred_data))[:max_videos]
    unknown = [v for v in chosen if v not in frame_scores and v not in gt_data and v not in pred_data]
    if unknown:
        raise CommandError(f"videos not found in the given files: {unknown}")
    stems = safe_file_stems(chosen)  # video names come from the input files: never a path
    for video in tqdm(chosen, desc="timelines", unit="video"):
        entry = frame_scores.get(video)
        written.append(plot_video_timeline(
            out_dir / f"timeline_{stems[video]}.png", video,
            scores=None if entry is None else entry["scores"], fps=ORIGINAL_FPS if entry is None else entry["fps"],
            gt=gt_data.get(video, []), pred=pred_data.get(video, []), class_names=names,
        ))
    if gt_data and pred_data:
        report = score_report(gt_data, pred_data)
        written.append(plot_class_f1(out_dir / "class_f1.png", report, names))
        written.append(plot_threshold_curves(out_dir / "iou_thresholds.png", report))
    for p in written:
        print(p)
    return written


def run(argv=None):
    return run_main(main, parse_args(argv))
