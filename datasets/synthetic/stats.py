"""Statistics of a planned dataset (written to ``stats.json``) and the printed summary table."""

from __future__ import annotations

from dataclasses import asdict
from typing import Dict

import numpy as np

from .config import FPS, SPLITS
from .plan import DatasetPlan


def _statistics(plan: DatasetPlan) -> Dict[str, object]:
    cfg = plan.config
    splits = {}
    for folder, _prefix, _bbox in SPLITS:
        videos = plan.split_videos(folder)
        lengths = [e - s for v in videos for _, s, e, q in v.signs if q >= 0]
        dlengths = [e - s for v in videos for _, s, e, q in v.signs if q < 0]
        counts = np.bincount([q for v in videos for _, _, _, q in v.signs if q >= 0], minlength=cfg.classes)
        frames = sum(v.num_frames for v in videos)
        nonzero = counts[counts > 0]
        splits[folder] = {
            "videos": len(videos),
            "frames": frames,
            "query_signs": int(counts.sum()),
            "distractor_signs": len(dlengths),
            "coverage": round(sum(lengths) / max(frames, 1), 4),
            "mean_sign_frames": round(float(np.mean(lengths)), 2) if lengths else 0.0,
            "min_sign_frames": int(min(lengths)) if lengths else 0,
            "max_sign_frames": int(max(lengths)) if lengths else 0,
            "mean_distractor_frames": round(float(np.mean(dlengths)), 2) if dlengths else 0.0,
            "signs_per_class": [int(c) for c in counts],
            "classes_present": int((counts > 0).sum()),
            "imbalance_ratio": round(float(nonzero.max() / nonzero.min()), 2) if len(nonzero) else 0.0,
            "signers": sorted({v.signer.index for v in videos}),
            "test_only_signers": sorted({v.signer.index for v in videos if v.signer.test_only}),
        }
    # hand size in a 64x64 crop of the signer box enlarged by 10 % per side (the frame store's crop)
    crop_px = [64.0 / (1.2 * max(v.bbox[2] - v.bbox[0], v.bbox[3] - v.bbox[1]) / v.unit) for v in plan.videos]
    fist = 2 * 0.28 * min(s.hand_scale for s in plan.signers)
    return {
        "config": {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(cfg).items()},
        "fps": FPS,
        "classes": [
            {"id": i, "place": d.place, "path": d.path, "shape": d.shape, "hands": d.mode, "description": d.describe()}
            for i, d in enumerate(plan.repertoire[: cfg.classes])
        ],
        "distractor_signs_in_repertoire": len(plan.repertoire) - cfg.classes,
        "class_probabilities": [round(x, 5) for x in plan.class_probabilities],
        "splits": splits,
        "smallest_hand_px_at_64": round(fist * min(crop_px), 1),
        "signers": [
            {"id": s.index, "dominant": s.dominant, "test_only": s.test_only, "speed": round(s.speed, 3)}
            for s in plan.signers
        ],
        "videos": {
            v.name: {"split": v.split, "signer": v.signer.index, "dominant": v.signer.dominant,
                     "frames": v.num_frames, "test_only_signer": v.signer.test_only}
            for v in plan.videos
        },
    }


def _summary_table(stats: Dict[str, object]) -> str:
    cfg = stats["config"]
    lines = [f"classes={cfg['classes']} size={cfg['size'][0]}x{cfg['size'][1]} seconds={cfg['seconds']:g} "
             f"seed={cfg['seed']}  smallest hand in a 64x64 crop: {stats['smallest_hand_px_at_64']} px",
             f"{'split':<11}{'videos':>7}{'frames':>8}{'queries':>9}{'distract':>9}{'cover':>7}"
             f"{'mean len':>9}{'min-max':>9}{'classes':>8}{'imbal':>7}  signers (test-only)"]
    for name, s in stats["splits"].items():
        lines.append(
            f"{name:<11}{s['videos']:>7}{s['frames']:>8}{s['query_signs']:>9}{s['distractor_signs']:>9}"
            f"{s['coverage']:>7.3f}{s['mean_sign_frames']:>9.1f}{str(s['min_sign_frames']) + '-' + str(s['max_sign_frames']):>9}"
            f"{s['classes_present']:>8}{s['imbalance_ratio']:>7.1f}  {len(s['signers'])} ({len(s['test_only_signers'])})"
        )
    lines.append("signs per class (TRAIN): " + " ".join(str(c) for c in stats["splits"]["TRAIN"]["signs_per_class"]))
    return "\n".join(lines)
