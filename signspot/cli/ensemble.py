"""Ensemble per-frame score files, decode them into signs and write predictions.pkl.

Averages every frame_scores.pkl (and every original dict_results.pkl) under a results
folder, decodes each video with its own fps and writes the challenge's predictions file.

    # validation: pick decoding settings by official F1, save them, print the score
    python solution_test_creator_v2.py --results-dir chalearn_results/valid --tune-on MSSL_VAL_SET_GT.pkl \\
        --save-decode-config decode_config.json --out val_predictions.pkl
    # test: reuse them
    python solution_test_creator_v2.py --results-dir chalearn_results/test --decode-config decode_config.json
"""

import argparse
import json
import warnings
from pathlib import Path
from typing import Optional, Sequence

from ..decode import DecodeSettings, decode_all
from ..ensemble import ensemble_frame_scores, find_score_files
from ..formats.elan import DEFAULT_TIER
from ..formats.gt import load_intervals, save_intervals_pkl
from ..formats.safe_io import atomic_write, refuse_outputs_over_inputs
from ..formats.scores import SCORES_FILENAME, save_frame_scores
from ..formats.vocabulary import load_vocabulary
from ..metric import format_score, official_score, warn_if_no_signs
from ..original_results import ORIGINAL_RESULTS_FILENAME
from ..tuning import format_tuning_table, settings_of, tune_decode_settings
from ._exit import CommandError, run_main
from ._flags import annotation_flags


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                parents=[annotation_flags()])
    p.add_argument("--results-dir", "--results_dir", dest="results_dir", default="chalearn_results/test",
                   help="folder searched recursively for score files (default: %(default)s)")
    p.add_argument("--out", default="predictions.pkl", help="predictions file to write (default: %(default)s)")
    p.add_argument("--exclude", nargs="*", default=[], metavar="PATTERN",
                   help="skip score files whose path (relative to --results-dir) contains PATTERN, or matches it "
                        "as a glob if it has * ? [ (the original excluded _fold3_)")
    p.add_argument("--decode-config", metavar="JSON", help="decode settings saved by --tune-on / --save-decode-config")
    p.add_argument("--smoothing", type=int, help="moving average of the scores over N frames (0: off)")
    p.add_argument("--min-length", type=int, help="drop signs shorter than N frames (0: off)")
    p.add_argument("--merge-gap", type=int, help="merge same-class signs separated by <= N background frames (0: off)")
    p.add_argument("--background-margin", type=float,
                   help="a sign must beat the background score by this much to win a frame (0: off)")
    p.add_argument("--tune-on", metavar="GT", help="grid-search decode settings on these scores against this ground truth")
    p.add_argument("--save-decode-config", metavar="JSON",
                   help="where to save the decode settings (default with --tune-on: decode_config.json beside --out)")
    p.add_argument("--evaluate", metavar="GT", help="print the official score of the written predictions")
    p.add_argument("--save-scores", metavar="FILE", help="also save the ensembled per-frame scores (for plots)")
    p.add_argument("--quiet", action="store_true", help="no progress bars or messages")
    return p.parse_args(argv)


def main(
    results_dir: str = "chalearn_results/test",
    out: str = "predictions.pkl",
    exclude: Sequence[str] = (),
    decode_config: Optional[str] = None,
    smoothing: Optional[int] = None,
    min_length: Optional[int] = None,
    merge_gap: Optional[int] = None,
    background_margin: Optional[float] = None,
    tune_on: Optional[str] = None,
    save_decode_config: Optional[str] = None,
    evaluate: Optional[str] = None,
    save_scores: Optional[str] = None,
    quiet: bool = False,
    tier: str = DEFAULT_TIER,
    vocabulary: Optional[str] = None,
) -> dict:
    """Average score files, decode, write predictions; optionally tune/evaluate. Returns a summary."""
    say = (lambda *a: None) if quiet else print
    settings = DecodeSettings.load_json(decode_config) if decode_config else DecodeSettings()
    overrides = {k: v for k, v in dict(smoothing=smoothing, min_length=min_length, merge_gap=merge_gap,
                                       background_margin=background_margin).items() if v is not None}
    settings = DecodeSettings.from_dict({**settings.to_dict(), **overrides}, "command line")
    config_path = Path(save_decode_config or Path(out).with_name("decode_config.json")) if tune_on else save_decode_config
    outputs = {"--out": out, "--save-decode-config": config_path, "--save-scores": save_scores}
    inputs = {"--tune-on": tune_on, "--evaluate": evaluate, "--decode-config": decode_config, "--vocabulary": vocabulary}
    refuse_outputs_over_inputs(outputs, inputs)
    glosses = load_vocabulary(vocabulary) if vocabulary else None
    paths = find_score_files(results_dir, exclude)
    refuse_outputs_over_inputs(outputs, {"a score file under --results-dir": paths})
    if not paths:
        raise FileNotFoundError(
            f"{results_dir}: no {SCORES_FILENAME} or {ORIGINAL_RESULTS_FILENAME} files"
            + (f" left after --exclude {list(exclude)}" if exclude else "")
        )
    say(f"ensembling {len(paths)} score files under {results_dir}")
    videos = ensemble_frame_scores(paths, progress=not quiet)
    summary: dict = {"num_files": len(paths), "files": [str(p) for p in paths], "num_videos": len(videos)}

    if tune_on:
        gt = load_intervals(tune_on, tier=tier, vocabulary=glosses)
        missing = set(gt) - set(videos)
        no_signs = not any(len(rows) for rows in gt.values())
        if no_signs or missing == set(gt):
            raise CommandError(
                f"{tune_on}: " + ("holds no signs to tune on" if no_signs else
                                  f"none of its {len(gt)} videos has scores under {results_dir} "
                                  f"(e.g. {sorted(gt)[:3]})")
                + "; tune on the ground truth of the videos that were scored (the validation set)"
            )
        if missing:
            warnings.warn(f"{len(missing)} ground-truth videos have no scores (e.g. {sorted(missing)[:3]})", stacklevel=2)
        settings, rows = tune_decode_settings(videos, gt, progress=not quiet)
        original_row = next(r for r in rows if settings_of(r).is_original())
        best_row = next(r for r in rows if settings_of(r) == settings)
        say(format_tuning_table(rows))
        say(f"best decode settings {settings.to_dict()}: F1 {best_row['f1']:.4f} "
            f"(original decoding {original_row['f1']:.4f}, gain {best_row['f1'] - original_row['f1']:+.4f})")
        with atomic_write(config_path, "w") as f:
            json.dump({"settings": settings.to_dict(), "tuned_on": str(tune_on),
                       "f1": best_row["f1"], "original_f1": original_row["f1"]}, f, indent=2)
            f.write("\n")
        say(f"saved {config_path} (use --decode-config {config_path} for the test run)")
        summary.update(tuned=settings.to_dict(), tuned_f1=best_row["f1"], original_f1=original_row["f1"],
                       decode_config=str(config_path))
    elif save_decode_config:
        settings.save_json(save_decode_config)

    predictions = decode_all(videos, settings)
    save_intervals_pkl(predictions, out)
    n_signs = sum(len(v) for v in predictions.values())
    say(f"wrote {out}: {len(predictions)} videos, {n_signs} signs (decode {settings.to_dict()})")
    summary.update(settings=settings.to_dict(), out=str(out), num_signs=n_signs)

    if save_scores:
        save_frame_scores(
            save_scores,
            {n: {k: v[k] for k in ("scores", "fps", "num_frames")} for n, v in videos.items()},
            checkpoint=f"ensemble of {len(paths)} files",
            head_weights=None, window=0, stride=0,
            extra={"sources": [str(p) for p in paths]},
        )
        say(f"wrote ensembled scores to {save_scores}")
    if evaluate:
        gt = load_intervals(evaluate, tier=tier, vocabulary=glosses)
        warn_if_no_signs(gt, evaluate)
        score = official_score(gt, predictions)
        say(f"official score on {evaluate}: {format_score(score)}")
        summary["score"] = score
    return summary


def run(argv=None):
    return run_main(main, parse_args(argv))
