"""Score predictions with the official MSSL metric (the organisers' script, quirks included).

    python scripts/evaluate.py --gt MSSL_VAL_SET_GT.pkl --pred predictions.pkl [--json score.json] [--report]
    python scripts/evaluate.py --input DIR --output OUT   # CodaLab: DIR/ref/ground_truth.pkl, DIR/res/predictions.pkl -> OUT/scores.txt
    python scripts/evaluate.py --gt gt_eaf/ --pred predictions.pkl --tier signs --vocabulary vocabulary.txt  # ELAN files
"""

import argparse
import json
from pathlib import Path
from typing import Optional

from ..formats.elan import DEFAULT_TIER
from ..formats.gt import load_intervals
from ..formats.safe_io import atomic_write, refuse_outputs_over_inputs
from ..formats.vocabulary import load_vocabulary
from ..metric import format_report, format_score, official_score, score_report, strict_score, warn_if_no_signs
from ._exit import CommandError, run_main
from ._flags import annotation_flags


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                parents=[annotation_flags()])
    p.add_argument("--gt", help="ground truth: a .pkl file, or a folder of <video>.txt (class,start_ms,end_ms lines) "
                                "or of <video>.eaf (ELAN)")
    p.add_argument("--pred", help="predictions: a .pkl file, or a folder of <video>.txt or <video>.eaf")
    p.add_argument("--json", dest="json_path", metavar="FILE",
                   help="also write {f1, precision, recall, tp, fp, fn} to this JSON file")
    p.add_argument("--report", action="store_true", help="print per-IoU-threshold and per-class tables")
    p.add_argument("--strict", action="store_true",
                   help="one-to-one matching (greedy by IoU, no filtering) instead of the official quirky metric")
    p.add_argument("--input", metavar="DIR", help="CodaLab layout: DIR/ref/ground_truth.pkl and DIR/res/predictions.pkl")
    p.add_argument("--output", metavar="DIR", help="CodaLab layout: write DIR/scores.txt with 'avg_f1: X'")
    return p.parse_args(argv)


def _pick_pkl(folder: Path, preferred: str) -> Path:
    if (folder / preferred).exists():
        return folder / preferred
    candidates = sorted(folder.glob("*.pkl"))
    if len(candidates) == 1:
        return candidates[0]
    raise CommandError(f"{folder}: expected {preferred} (or exactly one .pkl file), found {[c.name for c in candidates]}")


def main(
    gt: Optional[str] = None,
    pred: Optional[str] = None,
    json_path: Optional[str] = None,
    report: bool = False,
    strict: bool = False,
    input: Optional[str] = None,  # noqa: A002 - CodaLab's flag name
    output: Optional[str] = None,
    tier: str = DEFAULT_TIER,
    vocabulary: Optional[str] = None,
) -> dict:
    """Score ``pred`` against ``gt`` (files), print the result; CodaLab layout with input/output."""
    if input is not None or output is not None:
        if input is None or output is None:
            raise CommandError("--input and --output go together (CodaLab layout)")
        gt = str(_pick_pkl(Path(input) / "ref", "ground_truth.pkl"))
        pred = str(_pick_pkl(Path(input) / "res", "predictions.pkl"))
    if gt is None or pred is None:
        raise CommandError("give --gt and --pred, or --input DIR --output DIR")
    refuse_outputs_over_inputs(
        {"--json": json_path, "--output": Path(output) / "scores.txt" if output is not None else None},
        {"--gt": gt, "--pred": pred, "--vocabulary": vocabulary},
    )
    glosses = load_vocabulary(vocabulary) if vocabulary else None
    gt_data = load_intervals(gt, tier=tier, vocabulary=glosses)
    pred_data = load_intervals(pred, tier=tier, vocabulary=glosses)
    warn_if_no_signs(gt_data, gt)
    if glosses is not None:
        for source, data in ((gt, gt_data), (pred, pred_data)):
            outside = sorted({cls for rows in data.values() for cls, _, _ in rows if cls >= len(glosses)})
            if outside:
                raise CommandError(f"{source}: class {outside[0]} has no gloss in {vocabulary}, which has "
                                   f"{len(glosses)} (classes 0-{len(glosses) - 1}); is it the vocabulary of this data?")

    scorer = strict_score if strict else official_score
    result = scorer(gt_data, pred_data)
    label = "strict one-to-one score (not the challenge metric)" if strict else "official score"
    missing = len(set(gt_data) - set(pred_data))
    extra = len(set(pred_data) - set(gt_data))
    print(f"{label}: {len(gt_data)} videos" + (f", {missing} without predictions" if missing else "")
          + (f", {extra} prediction videos not in the ground truth (ignored)" if extra else ""))
    if json_path:
        with atomic_write(json_path, "w") as f:
            json.dump(result, f, indent=2)
    if output is not None:
        with atomic_write(Path(output) / "scores.txt", "w") as f:
            f.write(f"avg_f1: {result['f1']}\n")
    print(format_score(result))
    if report:
        print(format_report(score_report(gt_data, pred_data, strict=strict), glosses.names() if glosses else None))
    return result


def run(argv=None):
    return run_main(main, parse_args(argv))
