"""Convert ground truth or predictions between the challenge pickle, a folder of TXT files and a folder of ELAN files.

    python scripts/convert_annotations.py --in MSSL_TRAIN_SET_GT.pkl --out train_eaf --to eaf \\
        --vocabulary vocabulary.txt --media-dir TRAIN/MSSL_TRAIN_SET_VIDEOS
    python scripts/convert_annotations.py --in train_eaf --out train_gt.pkl --vocabulary vocabulary.txt

The input's kind follows from the path: a file is the pickle {video: [[class, start_ms, end_ms], ...]};
a folder holds <video>.txt files (class,start_ms,end_ms lines) or <video>.eaf files (ELAN, the signs on
tier --tier). The output's kind is --to; without it, a path ending in .pkl is the pickle, and an existing
folder holding .txt or .eaf files gets more files of that kind. Times are milliseconds in all three, so a
conversion loses nothing. Files that exist already are never replaced: the command then writes nothing.

In ELAN files each sign is an annotation whose value is its gloss: line k of the --vocabulary file
(one gloss per line; blank and '#' lines skipped) is class k. Without a vocabulary the value is the
class id. --media-dir links each <video>.eaf to its video (<video>.mp4, .avi, .mov or .mkv) in that folder.
"""

import argparse
from pathlib import Path
from typing import Optional

from signspot.datasets.video_reader import find_videos

from ..formats.elan import DEFAULT_TIER
from ..formats.gt import load_intervals, save_intervals_eaf, save_intervals_pkl, save_intervals_txt
from ..formats.safe_io import refuse_outputs_over_inputs
from ._exit import CommandError, run_main
from ._flags import annotation_flags

KINDS = ("pkl", "txt", "eaf")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                parents=[annotation_flags()])
    p.add_argument("--in", dest="source", required=True,
                   help="a .pkl file, or a folder of <video>.txt or of <video>.eaf files")
    p.add_argument("--out", required=True, help="the .pkl file or the folder to write (existing files are refused)")
    p.add_argument("--to", choices=KINDS,
                   help="what to write: pkl, txt (folder) or eaf (folder); default: from --out (see above)")
    p.add_argument("--media-dir", dest="media_dir", metavar="DIR",
                   help="folder of the videos: each written .eaf links <video>.mp4 (or .avi, .mov, .mkv) there")
    return p.parse_args(argv)


def _output_kind(out: Path) -> str:
    if out.suffix.lower() == ".pkl":
        return "pkl"
    found = {p.suffix.lower()[1:] for p in out.iterdir()} & {"txt", "eaf"} if out.is_dir() else set()
    if len(found) == 1:
        return found.pop()
    raise CommandError(f"{out}: cannot tell what to write there; give --to txt or --to eaf (or an --out ending in .pkl)")


def main(
    source: str,
    out: str,
    to: Optional[str] = None,
    tier: str = DEFAULT_TIER,
    vocabulary: Optional[str] = None,
    media_dir: Optional[str] = None,
) -> dict:
    """Read ``source``, write it as ``to`` at ``out``; refuses to replace any file. Returns a summary."""
    refuse_outputs_over_inputs({"--out": out}, {"--in": source, "--vocabulary": vocabulary})
    out_path = Path(out)
    kind = to or _output_kind(out_path)
    if media_dir is not None and kind != "eaf":
        raise CommandError("--media-dir links videos in ELAN files: it goes with --to eaf")
    data = load_intervals(source, tier=tier, vocabulary=vocabulary)
    if kind == "pkl" and out_path.exists():
        raise CommandError(f"{out_path}: exists already; nothing was written (choose another --out)")
    if kind != "pkl" and out_path.exists() and not out_path.is_dir():
        raise CommandError(f"{out_path}: is a file, not a folder for <video>.{kind} files")
    other = sorted(p.name for p in out_path.iterdir() if p.suffix.lower()[1:] in {"txt", "eaf"} - {kind}) \
        if kind != "pkl" and out_path.is_dir() else []
    if other:
        raise CommandError(f"{out_path}: holds {len(other)} .{Path(other[0]).suffix[1:].lower()} file(s) already "
                           f"(e.g. {other[0]}); .{kind} files beside them would make a folder no command reads as "
                           "one ground truth (choose another --out)")
    existing = [video for video in data if kind != "pkl" and (out_path / f"{video}.{kind}").exists()]
    if existing:
        shown = ", ".join(f"{video}.{kind}" for video in existing[:3]) + (", ..." if len(existing) > 3 else "")
        raise CommandError(f"{out_path}: {len(existing)} of the {len(data)} files to write exist already ({shown}); "
                           "nothing was written (choose another --out)")
    media = find_videos(Path(media_dir)) if media_dir is not None else {}
    if kind == "pkl":
        save_intervals_pkl(data, out_path)
    elif kind == "txt":
        save_intervals_txt(data, out_path)
    else:
        save_intervals_eaf(data, out_path, tier=tier, vocabulary=vocabulary, media=media)
    signs = sum(len(rows) for rows in data.values())
    print(f"wrote {out_path}: {len(data)} videos, {signs} signs ({kind})")
    unlinked = sorted(set(data) - set(media)) if media_dir is not None else []
    if unlinked:
        print(f"note: {len(unlinked)} video(s) have no video file in {media_dir}; their .eaf links no media "
              f"(e.g. {', '.join(unlinked[:3])})")
    return {"kind": kind, "videos": len(data), "signs": signs, "unlinked": unlinked}


def run(argv=None):
    return run_main(main, parse_args(argv))
