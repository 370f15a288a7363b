"""ELAN annotation files (``.eaf``): the signs of one video on one tier.

Files are written in EAF 3.0 with pympi-ling (:func:`write_eaf`) and read with the
standard library's XML parser (:func:`read_eaf_annotations`, :func:`read_eafs`), so a
damaged file is reported with its line and column, and files of older ELAN versions
are read too. A file written here holds:

* ``HEADER``: ``TIME_UNITS="milliseconds"`` and, when the video is known, a
  ``MEDIA_DESCRIPTOR`` with ``MEDIA_URL`` (the video's absolute ``file://`` URL) and
  ``RELATIVE_MEDIA_URL`` (relative to the .eaf's folder: ``./<video>.mp4`` for a
  video beside it), which ELAN tries when the absolute one is gone, so the two
  files can move together;
* ``TIME_ORDER``: two time slots per sign, in milliseconds, in time order;
* the sign tier (:data:`DEFAULT_TIER`, ``signspot``, unless another name is
  given): one time-aligned annotation per sign, in the order of the rows, whose
  value is the sign's gloss (see :mod:`.vocabulary`; without a vocabulary, the
  class id);
* with scores, the score tier ``<tier>-score`` (:func:`score_tier_name`): a child
  of the sign tier of ELAN's "Symbolic Association" kind, so each sign has exactly
  one score annotation, spanning the sign's time by construction and moved or
  deleted with it in ELAN; its value is the score with four decimals.

Reading takes the annotations of one time-aligned tier; every other tier (the
score tier among them) is ignored.
"""

from __future__ import annotations

import math
import operator
import os
import urllib.parse
from datetime import datetime
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence, Tuple
from xml.etree import ElementTree

from pympi import Elan

from .errors import SignspotError
from .safe_io import atomic_write
from .vocabulary import Vocabulary, VocabularyError, check_name, class_ids, gloss_of

__all__ = [
    "DEFAULT_TIER",
    "EAF_VERSION",
    "EafError",
    "score_tier_name",
    "write_eaf",
    "read_eaf_annotations",
    "read_eafs",
]

DEFAULT_TIER = "signspot"
EAF_VERSION = "3.0"
EAF_SCHEMA_URL = "http://www.mpi.nl/tools/elan/EAFv3.0.xsd"
GLOSS_TYPE = "signspot-gloss"  # linguistic type of the sign tier: time-aligned
SCORE_TYPE = "signspot-score"  # linguistic type of the score tier: one annotation per parent annotation
# ELAN's MIME types for the containers it names; any other video is "video/*".
MIME_TYPES = {".mp4": "video/mp4", ".mov": "video/quicktime", ".mpg": "video/mpeg", ".mpeg": "video/mpeg"}


class EafError(SignspotError, ValueError):
    """An .eaf file that cannot be read (or rows that cannot be written): the message names the file."""


def score_tier_name(tier: str) -> str:
    """The name of the score tier that goes with the sign tier ``tier``."""
    return f"{tier}-score"


def _checked_rows(path: Path, rows: Sequence[Sequence[int]]) -> List[Tuple[int, int, int]]:
    checked = []
    for i, row in enumerate(rows):
        where = f"{path}: row {i} ({list(row)!r})"
        try:
            cls, start, end = (operator.index(v) for v in row)
        except (TypeError, ValueError):
            raise EafError(f"{where}: a row must be three ints [class, start_ms, end_ms]") from None
        if cls < 0:
            raise EafError(f"{where}: class {cls} is negative")
        if start < 0 or start >= end:
            raise EafError(f"{where}: an ELAN annotation needs 0 <= start_ms < end_ms")
        checked.append((cls, start, end))
    return checked


def _media_descriptor(eaf: Elan.Eaf, media: Path, eaf_path: Path) -> None:
    media = media.resolve()
    try:
        relative = os.path.relpath(media, eaf_path.resolve().parent)
    except ValueError:  # another drive (Windows): no relative path
        relative = None
    if relative is not None:
        relative = urllib.parse.quote(Path(relative).as_posix())
        relative = relative if relative.startswith("../") else f"./{relative}"
    eaf.add_linked_file(media.as_uri(), relpath=relative, mimetype=MIME_TYPES.get(media.suffix.lower(), "video/*"))


def _time_slots_in_time_order(eaf: Elan.Eaf) -> None:
    """Renumber the time slots ``ts1, ts2, ...`` in time order (pympi numbers them as annotations come)."""
    order = sorted(eaf.timeslots, key=lambda slot: (eaf.timeslots[slot], int(slot[2:])))
    renamed = {old: f"ts{k}" for k, old in enumerate(order, 1)}
    eaf.timeslots = {renamed[old]: eaf.timeslots[old] for old in order}
    for aligned, *_ in eaf.tiers.values():
        for annotation_id, (start_slot, end_slot, value, svg_ref) in aligned.items():
            aligned[annotation_id] = (renamed[start_slot], renamed[end_slot], value, svg_ref)


def write_eaf(
    path: str | os.PathLike,
    rows: Sequence[Sequence[int]],
    *,
    media: str | os.PathLike | None = None,
    vocabulary: Optional[Vocabulary] = None,
    scores: Optional[Sequence[float]] = None,
    tier: str = DEFAULT_TIER,
    links_from: str | os.PathLike | None = None,
) -> Path:
    """Write one video's signs ``[[class, start_ms, end_ms], ...]`` as an EAF 3.0 file, atomically.

    ``media``: the video file to link (see the module docstring); ``vocabulary``: the
    glosses written as values (without one, the class id); ``scores``: one score per
    row, written on the score tier; ``tier``: the sign tier's name; ``links_from``: the folder
    the file will live in, when it is written elsewhere first (the relative media link). Raises
    :class:`EafError` for a row that is not three ints with ``class >= 0`` and
    ``0 <= start < end`` (ELAN has no zero-length annotations), a score count that
    differs from the rows or a score that is not finite, and
    :class:`~.vocabulary.VocabularyError` for a class the vocabulary has no gloss
    for; nothing is written then.
    """
    path = Path(path)
    checked = _checked_rows(path, rows)
    values = [gloss_of(cls, vocabulary) for cls, _, _ in checked]
    if scores is not None:
        scores = [float(s) for s in scores]
        if len(scores) != len(checked):
            raise EafError(f"{path}: {len(scores)} scores for {len(checked)} signs")
        if not all(math.isfinite(s) for s in scores):
            raise EafError(f"{path}: a score is not a finite number")
    try:
        check_name(tier, "the tier name")  # glosses are checked by Vocabulary
    except VocabularyError as exc:
        raise EafError(f"{path}: {exc}") from None

    eaf = Elan.Eaf(author="signspot")
    eaf.remove_tier("default")
    eaf.remove_linguistic_type("default-lt")
    eaf.adocument.update({"DATE": datetime.now().astimezone().isoformat(timespec="seconds"), "VERSION": EAF_VERSION,
                          "FORMAT": EAF_VERSION, "xsi:noNamespaceSchemaLocation": EAF_SCHEMA_URL})
    eaf.header.update({"MEDIA_FILE": "", "TIME_UNITS": "milliseconds"})
    if media is not None:
        _media_descriptor(eaf, Path(media), Path(links_from) / path.name if links_from is not None else path)
    eaf.add_linguistic_type(GLOSS_TYPE)
    eaf.add_tier(tier, ling=GLOSS_TYPE)
    score_tier = score_tier_name(tier)
    if scores is not None:
        eaf.add_linguistic_type(SCORE_TYPE, constraints="Symbolic_Association", timealignable=False)
        eaf.add_tier(score_tier, ling=SCORE_TYPE, parent=tier)
    for k, ((_, start, end), value) in enumerate(zip(checked, values)):
        eaf.add_annotation(tier, start, end, value)
        if scores is not None:
            sign_id = next(reversed(eaf.tiers[tier][0]))  # the annotation just added
            score_id = eaf.generate_annotation_id()
            eaf.annotations[score_id] = score_tier
            eaf.tiers[score_tier][1][score_id] = (sign_id, f"{scores[k]:.4f}", None, None)
    _time_slots_in_time_order(eaf)
    eaf.properties = [("lastUsedAnnotation", eaf.maxaid)]  # ELAN numbers new annotations from here
    document = ElementTree.ElementTree(Elan.to_adocument(eaf, pretty=False))
    ElementTree.indent(document, space="\t")
    with atomic_write(path, "wb") as f:
        document.write(f, xml_declaration=True, encoding="UTF-8")
    return path


def read_eaf_annotations(path: str | os.PathLike, *, tier: str = DEFAULT_TIER) -> List[Tuple[str, int, int]]:
    """``[(value, start_ms, end_ms), ...]`` of tier ``tier``, in the file's order.

    Raises :class:`EafError` naming the file for malformed XML, a file that is not an
    ELAN document, times that are not milliseconds, a missing tier (the message lists
    the tiers the file has), a tier whose annotations take their times from a parent
    tier, and an annotation whose time slots are missing, unaligned or reversed.
    """
    path = Path(path)
    try:
        root = ElementTree.parse(path).getroot()
    except ElementTree.ParseError as exc:
        raise EafError(f"{path}: not a readable ELAN file (malformed XML: {exc})") from None
    if root.tag != "ANNOTATION_DOCUMENT":
        raise EafError(f"{path}: not an ELAN file (its root element is <{root.tag}>, not <ANNOTATION_DOCUMENT>)")
    header = root.find("HEADER")
    units = "milliseconds" if header is None else header.get("TIME_UNITS", "milliseconds")
    if units != "milliseconds":
        raise EafError(f"{path}: TIME_UNITS is {units!r}; only milliseconds are read (save the file again in ELAN)")
    tiers = {}
    for element in root.iter("TIER"):
        if element.get("TIER_ID") in tiers:
            raise EafError(f"{path}: two tiers are named {element.get('TIER_ID')!r}; a tier's name is its identity "
                           "(rename one in ELAN)")
        tiers[element.get("TIER_ID")] = element
    if tier not in tiers:
        has = ", ".join(repr(t) for t in tiers) if tiers else "none"
        raise EafError(f"{path}: no tier {tier!r}; the tiers it has: {has} (choose one with --tier)")
    slots = {slot.get("TIME_SLOT_ID"): slot.get("TIME_VALUE") for slot in root.iter("TIME_SLOT")}

    def time_of(annotation_id: str, slot: Optional[str]) -> int:
        where = f"{path}: tier {tier!r}, annotation {annotation_id}"
        if slot not in slots:
            raise EafError(f"{where}: refers to time slot {slot!r}, which TIME_ORDER does not hold")
        value = slots[slot]
        if value is None:
            raise EafError(f"{where}: time slot {slot} has no time (an unaligned annotation); align it in ELAN")
        try:
            return int(value)
        except ValueError:
            raise EafError(f"{where}: time slot {slot} has the time {value!r}, not whole milliseconds") from None

    annotations = []
    for element in tiers[tier].iter("ANNOTATION"):
        for annotation in element:
            annotation_id = annotation.get("ANNOTATION_ID")
            if annotation.tag == "REF_ANNOTATION":
                parent = tiers[tier].get("PARENT_REF")
                raise EafError(f"{path}: tier {tier!r} takes its times from its parent tier {parent!r}; "
                               "choose a time-aligned tier with --tier")
            if annotation.tag != "ALIGNABLE_ANNOTATION":
                continue
            start = time_of(annotation_id, annotation.get("TIME_SLOT_REF1"))
            end = time_of(annotation_id, annotation.get("TIME_SLOT_REF2"))
            if start > end:
                raise EafError(f"{path}: tier {tier!r}, annotation {annotation_id}: starts at {start} ms, "
                               f"after its end at {end} ms")
            annotations.append((annotation.findtext("ANNOTATION_VALUE") or "", start, end))
    return annotations


def read_eafs(
    files: Mapping[str, str | os.PathLike],
    *,
    tier: str = DEFAULT_TIER,
    vocabulary: Optional[Vocabulary] = None,
    where: str = "ELAN files",
) -> Dict[str, List[List[int]]]:
    """``{video: .eaf file}`` -> ``{video: [[class, start_ms, end_ms], ...]}``, the signs of tier ``tier``.

    Values are looked up in ``vocabulary`` (without one they must be class ids). The
    values missing from it are reported together, over all the files, with their
    counts (:class:`~.vocabulary.UnknownGlossError`, prefixed with ``where``).
    """
    annotations = {video: read_eaf_annotations(path, tier=tier) for video, path in files.items()}
    values = {str(files[video]): [value for value, _, _ in found] for video, found in annotations.items()}
    ids = class_ids(values, vocabulary, f"{where}: tier {tier!r}")
    return {video: [[cls, start, end] for cls, (_, start, end) in zip(ids[str(files[video])], found)]
            for video, found in annotations.items()}
