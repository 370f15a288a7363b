"""ELAN files: what is written opens in ELAN and holds exactly the signs; every conversion is lossless.

Every .eaf a test writes is validated against ELAN's EAF 3.0 XML schema
(:mod:`tests.eaf_schema`: EAFv3.0.xsd from the pympi-ling 1.71 source distribution,
xmlschema), and :func:`elan_problems` adds what the schema cannot say: ID references
that resolve, time slots in order, a media link that points at the video.
"""

import json
import os
import re
import subprocess
import sys
from collections import Counter
from datetime import datetime
from pathlib import Path
from xml.etree import ElementTree

import pytest
from pympi import Elan

from signspot.cli.convert_annotations import main as convert_main
from signspot.cli.convert_annotations import run as run_convert
from signspot.formats.elan import EafError, read_eaf_annotations, score_tier_name, write_eaf
from signspot.formats.gt import MalformedIntervalsError, load_intervals, save_intervals_eaf, save_intervals_pkl
from signspot.formats.safe_io import safe_pickle_load
from signspot.formats.vocabulary import Vocabulary, VocabularyError
from tests.eaf_schema import schema_problems

ROOT = Path(__file__).resolve().parents[1]
XSI = "{http://www.w3.org/2001/XMLSchema-instance}"
# The top-level elements of ANNOTATION_DOCUMENT, in the order the schema's sequence gives them.
DOCUMENT_ORDER = ("LICENSE", "HEADER", "TIME_ORDER", "TIER", "LINGUISTIC_TYPE", "LOCALE", "LANGUAGE", "CONSTRAINT",
                  "CONTROLLED_VOCABULARY", "LEXICON_REF", "REF_LINK_SET", "EXTERNAL_REF")
STEREOTYPES = {"Time_Subdivision", "Symbolic_Subdivision", "Symbolic_Association", "Included_In"}

VOCAB = Vocabulary(["HELLO", "THANK-YOU", "HOUSE", "GOODBYE"], "vocab.txt")
# unsorted, overlapping, two identical signs, signs sharing a boundary
ROWS = [[2, 900, 1500], [0, 40, 400], [1, 200, 700], [3, 1500, 1540], [0, 40, 400]]


def elan_problems(path: Path, *, media: bool) -> list:
    """What stops ELAN from opening an EAF 3.0 file: the schema's complaints and more (empty: none)."""
    problems = schema_problems(path)
    root = ElementTree.parse(path).getroot()
    if root.tag != "ANNOTATION_DOCUMENT":
        return [f"root element {root.tag}"]
    if root.get("VERSION") != "3.0" or root.get("FORMAT") != "3.0":
        problems.append(f"VERSION {root.get('VERSION')} / FORMAT {root.get('FORMAT')}, not 3.0")
    if not root.get("AUTHOR"):
        problems.append("no AUTHOR")
    try:
        datetime.fromisoformat(root.get("DATE", ""))
    except ValueError:
        problems.append(f"DATE {root.get('DATE')!r} is not an xsd:dateTime")
    if not root.get(f"{XSI}noNamespaceSchemaLocation", "").endswith("EAFv3.0.xsd"):
        problems.append("the schema location is not EAFv3.0.xsd")
    tags = [child.tag for child in root]
    if any(tag not in DOCUMENT_ORDER for tag in tags):
        problems.append(f"unknown elements {set(tags) - set(DOCUMENT_ORDER)}")
    elif [DOCUMENT_ORDER.index(t) for t in tags] != sorted(DOCUMENT_ORDER.index(t) for t in tags):
        problems.append(f"elements out of the schema's order: {tags}")
    if tags.count("HEADER") != 1 or tags.count("TIME_ORDER") != 1:
        return problems + ["not exactly one HEADER and one TIME_ORDER"]

    header = root.find("HEADER")
    if header.get("TIME_UNITS") != "milliseconds":
        problems.append(f"TIME_UNITS {header.get('TIME_UNITS')!r}")
    descriptors = header.findall("MEDIA_DESCRIPTOR")
    if media and len(descriptors) != 1:
        problems.append(f"{len(descriptors)} MEDIA_DESCRIPTORs")
    for descriptor in descriptors:
        if not descriptor.get("MEDIA_URL") or not descriptor.get("MIME_TYPE"):
            problems.append("a MEDIA_DESCRIPTOR without MEDIA_URL or MIME_TYPE")

    # xsd:ID values are unique over the whole document
    ids = Counter(e.get(a) for e in root.iter() for a in ("TIME_SLOT_ID", "ANNOTATION_ID") if e.get(a) is not None)
    ids.update(c.get("STEREOTYPE") for c in root.findall("CONSTRAINT"))
    problems += [f"ID {i!r} used {n} times" for i, n in ids.items() if n > 1]

    slots = {}
    previous = -1
    for slot in root.find("TIME_ORDER"):
        value = slot.get("TIME_VALUE")
        if slot.tag != "TIME_SLOT" or value is None or not re.fullmatch(r"\d+", value):
            problems.append(f"time slot {slot.get('TIME_SLOT_ID')}: value {value!r} is not an int >= 0")
            continue
        if int(value) < previous:
            problems.append(f"time slot {slot.get('TIME_SLOT_ID')} ({value}) comes before an earlier time")
        previous = slots[slot.get("TIME_SLOT_ID")] = int(value)

    constraints = {c.get("STEREOTYPE") for c in root.findall("CONSTRAINT")}
    problems += [f"unknown constraint {c}" for c in constraints - STEREOTYPES]
    types = {}
    for lt in root.findall("LINGUISTIC_TYPE"):
        types[lt.get("LINGUISTIC_TYPE_ID")] = lt
        if lt.get("CONSTRAINTS") is not None and lt.get("CONSTRAINTS") not in constraints:
            problems.append(f"linguistic type {lt.get('LINGUISTIC_TYPE_ID')}: no CONSTRAINT {lt.get('CONSTRAINTS')}")
        if lt.get("TIME_ALIGNABLE") not in (None, "true", "false"):
            problems.append(f"linguistic type {lt.get('LINGUISTIC_TYPE_ID')}: TIME_ALIGNABLE not a boolean")
    if not types:
        problems.append("no LINGUISTIC_TYPE")

    tiers = {tier.get("TIER_ID"): tier for tier in root.findall("TIER")}
    annotation_tier = {a.get("ANNOTATION_ID"): tid for tid, t in tiers.items() for a in t.iter()
                       if a.tag in ("ALIGNABLE_ANNOTATION", "REF_ANNOTATION")}
    for tid, tier in tiers.items():
        lt = types.get(tier.get("LINGUISTIC_TYPE_REF"))
        if lt is None:
            problems.append(f"tier {tid}: LINGUISTIC_TYPE_REF {tier.get('LINGUISTIC_TYPE_REF')!r} does not exist")
            continue
        parent = tier.get("PARENT_REF")
        if parent is not None and parent not in tiers:
            problems.append(f"tier {tid}: PARENT_REF {parent!r} does not exist")
        if (lt.get("CONSTRAINTS") is None) != (parent is None):
            problems.append(f"tier {tid}: a dependent tier needs a constrained type and a parent, and only it")
        referenced = Counter()
        for annotation in tier.findall("ANNOTATION"):
            for a in annotation:
                if a.find("ANNOTATION_VALUE") is None:
                    problems.append(f"annotation {a.get('ANNOTATION_ID')}: no ANNOTATION_VALUE")
                if a.tag == "ALIGNABLE_ANNOTATION":
                    ts1, ts2 = a.get("TIME_SLOT_REF1"), a.get("TIME_SLOT_REF2")
                    if ts1 not in slots or ts2 not in slots:
                        problems.append(f"annotation {a.get('ANNOTATION_ID')}: time slot {ts1} or {ts2} missing")
                    elif slots[ts1] > slots[ts2]:
                        problems.append(f"annotation {a.get('ANNOTATION_ID')}: TS1 after TS2")
                    if lt.get("TIME_ALIGNABLE") == "false":
                        problems.append(f"tier {tid}: time-aligned annotation on a type that is not")
                elif a.tag == "REF_ANNOTATION":
                    ref = a.get("ANNOTATION_REF")
                    referenced[ref] += 1
                    if annotation_tier.get(ref) != parent:
                        problems.append(f"annotation {a.get('ANNOTATION_ID')}: refers to {ref}, not on tier {parent}")
        if lt.get("CONSTRAINTS") == "Symbolic_Association":
            problems += [f"tier {tid}: {n} annotations refer to {ref}" for ref, n in referenced.items() if n > 1]
    last_used = [p.text for p in header.findall("PROPERTY") if p.get("NAME") == "lastUsedAnnotation"]
    numbers = [int(re.sub(r"\D", "", a)) for a in annotation_tier]
    if numbers and (len(last_used) != 1 or int(last_used[0]) < max(numbers)):
        problems.append(f"lastUsedAnnotation {last_used} is below the annotation ids (ELAN would reuse them)")
    return problems


def test_written_eaf_opens_in_elan_and_holds_exactly_the_signs(tmp_path):
    video = tmp_path / "clip.mp4"
    video.write_bytes(b"")
    scores = [0.91234, 0.5, 0.25, 1.0, 0.0]
    path = write_eaf(tmp_path / "clip.eaf", ROWS, media=video, vocabulary=VOCAB, scores=scores, tier="glosses")
    assert elan_problems(path, media=True) == []

    expected = [(VOCAB.glosses[c], s, e) for c, s, e in ROWS]
    assert read_eaf_annotations(path, tier="glosses") == expected  # the rows, in their order
    eaf = Elan.Eaf(str(path))  # pympi's own reader agrees
    assert sorted(eaf.get_annotation_data_for_tier("glosses")) == sorted((s, e, g) for g, s, e in expected)
    assert set(eaf.get_tier_names()) == {"glosses", "glosses-score"}
    assert eaf.get_parameters_for_tier(score_tier_name("glosses"))["PARENT_REF"] == "glosses"
    assert sorted(eaf.get_ref_annotation_data_for_tier("glosses-score")) == sorted(
        (s, e, f"{score:.4f}", g) for (g, s, e), score in zip(expected, scores))
    (descriptor,) = eaf.get_linked_files()
    assert descriptor["MEDIA_URL"] == video.resolve().as_uri()
    assert descriptor["RELATIVE_MEDIA_URL"] == "./clip.mp4" and descriptor["MIME_TYPE"] == "video/mp4"
    assert not list(tmp_path.glob(".*.tmp")) and sorted(p.name for p in tmp_path.iterdir()) == ["clip.eaf", "clip.mp4"]


def test_without_vocabulary_media_or_scores_the_values_are_class_ids(tmp_path):
    path = write_eaf(tmp_path / "v.eaf", ROWS)
    assert elan_problems(path, media=False) == []
    assert read_eaf_annotations(path) == [(str(c), s, e) for c, s, e in ROWS]
    root = ElementTree.parse(path).getroot()
    assert [t.get("TIER_ID") for t in root.findall("TIER")] == ["signspot"]
    assert root.find("HEADER").find("MEDIA_DESCRIPTOR") is None
    # a video elsewhere is linked by a relative path that climbs out of the eaf's folder
    (tmp_path / "videos").mkdir()
    (tmp_path / "videos" / "v.avi").write_bytes(b"")
    other = write_eaf(tmp_path / "eaf" / "v.eaf", ROWS, media=tmp_path / "videos" / "v.avi")
    descriptor = ElementTree.parse(other).getroot().find("HEADER/MEDIA_DESCRIPTOR")
    assert descriptor.get("RELATIVE_MEDIA_URL") == "../videos/v.avi" and descriptor.get("MIME_TYPE") == "video/*"
    assert elan_problems(other, media=True) == []


def test_the_checker_sees_what_elan_would_refuse(tmp_path):
    good = write_eaf(tmp_path / "v.eaf", ROWS, vocabulary=VOCAB, scores=[0.5] * len(ROWS)).read_text()
    broken = {
        "slots out of order": good.replace('TIME_SLOT_ID="ts1" TIME_VALUE="40"', 'TIME_SLOT_ID="ts1" TIME_VALUE="9000"'),
        "unknown type": good.replace('LINGUISTIC_TYPE_REF="signspot-gloss"', 'LINGUISTIC_TYPE_REF="nothing"'),
        "missing slot": good.replace('TIME_SLOT_REF1="ts1"', 'TIME_SLOT_REF1="ts99"', 1),
        "version 2.8": good.replace('VERSION="3.0"', 'VERSION="2.8"'),
        "frames": good.replace('TIME_UNITS="milliseconds"', 'TIME_UNITS="PAL-frames"'),
        "dangling reference": good.replace('ANNOTATION_REF="a2"', 'ANNOTATION_REF="a77"'),
    }
    for name, text in broken.items():
        assert text != good, name
        (tmp_path / "bad.eaf").write_text(text)
        assert elan_problems(tmp_path / "bad.eaf", media=False), name


def test_rows_elan_cannot_hold_are_refused_and_nothing_is_written(tmp_path):
    for rows, match in (([[0, 400, 400]], "start_ms < end_ms"), ([[0, 500, 400]], "start_ms < end_ms"),
                        ([[0, 0.5, 400]], "three ints"), ([[-1, 0, 400]], "class -1 is negative")):
        with pytest.raises(EafError, match=match):
            write_eaf(tmp_path / "v.eaf", rows)
    with pytest.raises(EafError, match="2 scores for 1 signs"):
        write_eaf(tmp_path / "v.eaf", [[0, 0, 40]], scores=[0.1, 0.2])
    with pytest.raises(VocabularyError, match="class 4 has no gloss"):
        write_eaf(tmp_path / "v.eaf", [[4, 0, 40]], vocabulary=VOCAB)
    with pytest.raises(VocabularyError, match="video 'b', row 0: class 7 has no gloss in vocab.txt"):
        save_intervals_eaf({"a": [[0, 0, 40]], "b": [[7, 0, 40]]}, tmp_path / "out", vocabulary=VOCAB)
    with pytest.raises(MalformedIntervalsError, match="start_ms 40 is not before end_ms 40"):
        save_intervals_eaf({"a": [[0, 40, 40]]}, tmp_path / "out")
    assert list(tmp_path.iterdir()) == []


GT = {"p01_n000": ROWS, "p01_n001": [[3, 0, 80]], "empty_video": []}


@pytest.mark.parametrize("vocabulary", [None, "vocab"])
def test_pkl_eaf_txt_conversions_are_lossless(tmp_path, vocabulary):
    (tmp_path / "vocab.txt").write_text("# glosses\n" + "\n".join(VOCAB.glosses) + "\n")
    vocab = str(tmp_path / "vocab.txt") if vocabulary else None
    save_intervals_pkl(GT, tmp_path / "gt.pkl")
    convert_main(str(tmp_path / "gt.pkl"), str(tmp_path / "eaf"), to="eaf", vocabulary=vocab, tier="signs")
    convert_main(str(tmp_path / "eaf"), str(tmp_path / "back.pkl"), vocabulary=vocab, tier="signs")
    assert safe_pickle_load(tmp_path / "back.pkl") == GT  # rows in their order, the empty video kept
    convert_main(str(tmp_path / "eaf"), str(tmp_path / "txt"), to="txt", vocabulary=vocab, tier="signs")
    assert load_intervals(tmp_path / "txt") == GT
    convert_main(str(tmp_path / "txt"), str(tmp_path / "eaf2"), to="eaf", vocabulary=vocab, tier="signs")
    assert load_intervals(tmp_path / "eaf2", tier="signs", vocabulary=vocab) == GT
    for eaf in (tmp_path / "eaf").iterdir():
        assert elan_problems(eaf, media=False) == []
        values = {v for v, _, _ in read_eaf_annotations(eaf, tier="signs")}
        assert values <= (set(VOCAB.glosses) if vocabulary else {"0", "1", "2", "3"})


def test_media_dir_links_each_video_whatever_its_container(tmp_path, capsys):
    (tmp_path / "videos").mkdir()
    for name in ("p01_n000.mp4", "p01_n001.mkv", "notes.md"):
        (tmp_path / "videos" / name).write_bytes(b"")
    save_intervals_pkl(GT, tmp_path / "gt.pkl")
    summary = convert_main(str(tmp_path / "gt.pkl"), str(tmp_path / "videos"), to="eaf",
                           media_dir=str(tmp_path / "videos"))
    assert summary["unlinked"] == ["empty_video"] and "1 video(s) have no video file" in capsys.readouterr().out
    for video, container in (("p01_n000", "mp4"), ("p01_n001", "mkv")):
        eaf = tmp_path / "videos" / f"{video}.eaf"
        assert elan_problems(eaf, media=True) == []
        (descriptor,) = Elan.Eaf(str(eaf)).get_linked_files()
        assert descriptor["RELATIVE_MEDIA_URL"] == f"./{video}.{container}"
        assert descriptor["MEDIA_URL"] == (tmp_path / "videos" / f"{video}.{container}").resolve().as_uri()
    assert elan_problems(tmp_path / "videos" / "empty_video.eaf", media=False) == []


def _files(folder: Path) -> dict:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_existing_outputs_are_never_replaced(tmp_path):
    save_intervals_pkl(GT, tmp_path / "gt.pkl")
    convert_main(str(tmp_path / "gt.pkl"), str(tmp_path / "eaf"), to="eaf")
    (tmp_path / "eaf" / "p01_n001.eaf").unlink()
    before = _files(tmp_path)
    with pytest.raises(SystemExit, match="2 of the 3 files to write exist already"):
        run_convert(["--in", str(tmp_path / "gt.pkl"), "--out", str(tmp_path / "eaf"), "--to", "eaf"])
    with pytest.raises(SystemExit, match="gt.pkl: exists already; nothing was written"):
        run_convert(["--in", str(tmp_path / "eaf"), "--out", str(tmp_path / "gt.pkl")])
    with pytest.raises(SystemExit, match="give --to txt or --to eaf"):
        run_convert(["--in", str(tmp_path / "gt.pkl"), "--out", str(tmp_path / "new")])
    assert _files(tmp_path) == before
    # an existing folder of .eaf files gets more of them, without --to
    convert_main(str(tmp_path / "eaf"), str(tmp_path / "more.pkl"))
    save_intervals_pkl({"p01_n001": [[1, 0, 40]]}, tmp_path / "one.pkl")
    assert convert_main(str(tmp_path / "one.pkl"), str(tmp_path / "eaf"))["kind"] == "eaf"
    assert load_intervals(tmp_path / "eaf")["p01_n001"] == [[1, 0, 40]]


def test_evaluate_scores_an_eaf_folder_exactly_as_the_pickle(tmp_path):
    (tmp_path / "vocab.txt").write_text("\n".join(VOCAB.glosses))
    gt = {"a": [[0, 0, 400], [1, 800, 1600], [2, 2000, 2400]], "b": [[3, 40, 1000], [0, 1200, 1800]]}
    pred = {"a": [[0, 40, 360], [2, 800, 1500], [2, 2000, 2480]], "b": [[3, 0, 960], [1, 1200, 1500]]}
    save_intervals_pkl(gt, tmp_path / "gt.pkl")
    save_intervals_pkl(pred, tmp_path / "pred.pkl")
    save_intervals_eaf(gt, tmp_path / "gt_eaf", tier="glosses", vocabulary=VOCAB)
    save_intervals_eaf(pred, tmp_path / "pred_eaf", tier="glosses", vocabulary=VOCAB)
    scores = {}
    for name, gt_path, pred_path in (("pkl", "gt.pkl", "pred.pkl"), ("eaf", "gt_eaf", "pred_eaf"),
                                     ("mixed", "gt_eaf", "pred.pkl")):
        result = subprocess.run(
            [sys.executable, str(ROOT / "scripts" / "evaluate.py"), "--gt", str(tmp_path / gt_path), "--pred",
             str(tmp_path / pred_path), "--tier", "glosses", "--vocabulary", str(tmp_path / "vocab.txt"),
             "--json", str(tmp_path / f"{name}.json"), "--report"],
            capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr
        scores[name] = json.loads((tmp_path / f"{name}.json").read_text())
        assert "THANK-YOU" in result.stdout  # the per-class table names the glosses
    assert 0 < scores["pkl"]["f1"] < 1
    assert scores["eaf"] == scores["pkl"] == scores["mixed"]


def test_tuning_and_evaluating_on_an_eaf_folder_equals_the_pickle(tmp_path):
    import numpy as np

    from signspot.cli.ensemble import main as ensemble_main
    from signspot.formats.scores import SCORES_FILENAME, save_frame_scores
    from tests.test_ensemble import synthetic_val

    gt, videos = synthetic_val(np.random.default_rng(3), n_videos=3)
    save_intervals_pkl(gt, tmp_path / "gt.pkl")
    save_intervals_eaf(gt, tmp_path / "gt_eaf", tier="signs")
    save_frame_scores(tmp_path / "val" / "r1" / SCORES_FILENAME, videos, checkpoint="c", head_weights=None,
                      window=32, stride=1)
    summaries = [ensemble_main(results_dir=str(tmp_path / "val"), out=str(tmp_path / f"p{i}.pkl"), tune_on=str(gt_path),
                               evaluate=str(gt_path), tier="signs", quiet=True)
                 for i, gt_path in enumerate((tmp_path / "gt.pkl", tmp_path / "gt_eaf"))]
    for key in ("tuned", "tuned_f1", "original_f1", "score"):
        assert summaries[0][key] == summaries[1][key]


def test_make_folds_reads_eaf_ground_truth_with_its_vocabulary(tmp_path):
    from signspot.datasets.store_writer import create_frame_store
    from tests.test_folds import make_video

    names = [f"v{i}" for i in range(4)]
    (tmp_path / "videos").mkdir()
    for name in names:
        make_video(tmp_path / "videos" / f"{name}.avi", 60, fps=25.0)
    (tmp_path / "boxes.json").write_text(json.dumps({n: [0, 0, 16, 16] for n in names}))
    create_frame_store(tmp_path / "store", tmp_path / "videos", tmp_path / "boxes.json", size=8, workers=0,
                       progress=False)
    gt = {n: [[i % 4, 80, 800], [(i + 1) % 4, 1000, 1800]] for i, n in enumerate(names)}
    save_intervals_pkl(gt, tmp_path / "gt.pkl")
    save_intervals_eaf(gt, tmp_path / "eaf", tier="glosses", vocabulary=VOCAB)
    (tmp_path / "vocab.txt").write_text("\n".join(VOCAB.glosses) + "\n")
    common = ["--store", str(tmp_path / "store"), "--folds", "2"]
    for gt_arg, out, extra in (("gt.pkl", "from_pkl", ["--num-classes", "4"]),
                               ("eaf", "from_eaf", ["--tier", "glosses", "--vocabulary", str(tmp_path / "vocab.txt")])):
        result = subprocess.run([sys.executable, str(ROOT / "scripts" / "make_folds.py"), "--train-gt",
                                 str(tmp_path / gt_arg), "--out", str(tmp_path / out), *common, *extra],
                                capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr
    # the class count comes from the vocabulary: the fold files are the same bytes
    assert _files(tmp_path / "from_eaf") == _files(tmp_path / "from_pkl")


# ------------------------------------------------------------------ bad input: one line, exit status 1
def _bad_inputs(root: Path) -> dict:
    """name -> (command line, texts the one-line error must hold)."""
    (root / "vocab.txt").write_text("\n".join(VOCAB.glosses) + "\n")
    save_intervals_pkl({"a": [[0, 0, 400]], "b": [[1, 0, 400]]}, root / "gt.pkl")
    unknown = root / "unknown"
    write_eaf(unknown / "a.eaf", [[0, 0, 40]], vocabulary=Vocabulary(["HELLO", "CAT", "DOG"]))
    write_eaf(unknown / "b.eaf", [[1, 0, 40], [1, 80, 120], [2, 200, 240], [0, 300, 340]],
              vocabulary=Vocabulary(["HELLO", "CAT", "DOG"]))
    write_eaf(root / "tierless" / "a.eaf", [[0, 0, 40]], tier="glosses", scores=[0.5])
    (root / "malformed").mkdir()
    (root / "malformed" / "a.eaf").write_text('<?xml version="1.0"?>\n<ANNOTATION_DOCUMENT>\n  <HEADER>\n')
    (root / "dup.txt").write_text("HELLO\n# x\nCAT\nHELLO\n")
    ev, conv = "scripts/evaluate.py", "scripts/convert_annotations.py"
    vocab = ["--vocabulary", root / "vocab.txt"]
    return {
        "gloss missing from the vocabulary": (
            [ev, "--gt", unknown, "--pred", root / "gt.pkl", *vocab],
            ["3 annotation value(s) are not in the vocabulary", "'CAT' x2 (b.eaf), 'DOG' x1 (b.eaf)",
             "Add each missing gloss to"]),
        "values that are not class ids": (
            [conv, "--in", unknown, "--out", root / "out.pkl"],
            ["5 annotation value(s) are not class ids", "'CAT' x2 (b.eaf), 'HELLO' x2 (a.eaf, b.eaf), 'DOG' x1",
             "--vocabulary FILE"]),
        "eaf without the tier": (
            [ev, "--gt", root / "tierless", "--pred", root / "gt.pkl"],
            ["a.eaf: no tier 'signspot'", "the tiers it has: 'glosses', 'glosses-score'", "--tier"]),
        "the score tier chosen": (
            [ev, "--gt", root / "tierless", "--pred", root / "gt.pkl", "--tier", "glosses-score"],
            ["takes its times from its parent tier 'glosses'"]),
        "malformed eaf": (
            [conv, "--in", root / "malformed", "--out", root / "out.pkl"],
            ["a.eaf: not a readable ELAN file (malformed XML: no element found: line 4"]),
        "duplicate gloss in the vocabulary": (
            [conv, "--in", root / "gt.pkl", "--out", root / "eaf", "--to", "eaf", "--vocabulary", root / "dup.txt"],
            ["dup.txt: each gloss may appear once: 'HELLO' on lines 1, 4"]),
    }


BAD_INPUTS = ["gloss missing from the vocabulary", "values that are not class ids", "eaf without the tier",
              "the score tier chosen", "malformed eaf", "duplicate gloss in the vocabulary"]


@pytest.mark.parametrize("case", BAD_INPUTS)
def test_bad_annotations_give_one_line_and_exit_status_1(tmp_path, case):
    command, expected = _bad_inputs(tmp_path)[case]
    before = _files(tmp_path)
    result = subprocess.run([sys.executable, str(ROOT / command[0]), *map(str, command[1:])], capture_output=True,
                            text=True, cwd=tmp_path, timeout=120, env={**os.environ, "SIGNSPOT_DEBUG": ""})
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 1, result.stderr
    assert len(lines) == 1 and lines[0].startswith("error:"), lines
    assert all(text in lines[0] for text in expected), lines[0]
    assert _files(tmp_path) == before  # nothing written


def test_reading_problems_are_typed_errors_naming_the_file(tmp_path):
    good = write_eaf(tmp_path / "v.eaf", [[0, 0, 40], [1, 80, 120]]).read_text()
    cases = {
        "unaligned": (good.replace('TIME_VALUE="80"', ""), "time slot ts3 has no time"),
        "reversed": (good.replace('TIME_VALUE="0"', 'TIME_VALUE="50"'), "starts at 50 ms, after its end at 40 ms"),
        "frames": (good.replace('TIME_UNITS="milliseconds"', 'TIME_UNITS="PAL-frames"'), "only milliseconds"),
        "not elan": ("<TextGrid/>", "its root element is <TextGrid>"),
    }
    for name, (text, match) in cases.items():
        (tmp_path / "bad.eaf").write_text(text)
        with pytest.raises(EafError, match=re.escape(match)) as info:
            read_eaf_annotations(tmp_path / "bad.eaf")
        assert "bad.eaf" in str(info.value), name
    (tmp_path / "bad.eaf").unlink()
    (tmp_path / "v.txt").write_text("0,0,40\n")
    with pytest.raises(MalformedIntervalsError, match=r"both <video>.txt \(1\) and <video>.eaf \(1\)"):
        load_intervals(tmp_path)


def test_the_schema_check_finds_what_the_schema_forbids(tmp_path):
    """The validation can fail: an element out of the schema's order, a missing attribute, a bad time."""
    write_eaf(tmp_path / "v.eaf", [[0, 40, 400]], vocabulary=VOCAB, scores=[0.5])
    assert schema_problems(tmp_path / "v.eaf") == []
    text = (tmp_path / "v.eaf").read_text()
    broken = {
        "tier before the time order": text.replace("<TIME_ORDER", "<TIER_X").replace("</TIME_ORDER>", "</TIER_X>"),
        "time slot without an id": re.sub(r'TIME_SLOT_ID="[^"]*"', "", text, count=1),
        "a time that is not a number": re.sub(r'TIME_VALUE="\d+"', 'TIME_VALUE="soon"', text, count=1),
    }
    for name, content in broken.items():
        (tmp_path / f"{name}.eaf").write_text(content)
        assert schema_problems(tmp_path / f"{name}.eaf"), name
