"""The vocabulary: the gloss each class id stands for.

A vocabulary file is UTF-8 text (a byte-order mark at its start is allowed and
dropped) with one gloss per line::

    # greetings
    HELLO
    GOODBYE

    THANK-YOU

Line k of the glosses (counting from 0, over the lines that hold a gloss) is class
k, so HELLO is class 0 and THANK-YOU class 2. Blank lines and lines whose first
non-space character is ``#`` are skipped, so comments and spacing never shift the
ids; a ``#`` later in a line is part of the gloss. Spaces around a gloss are
dropped. A gloss may appear only once: a duplicate is an error naming the file
and the line numbers. Lines end at ``\n`` (``\r\n`` too) and nowhere else: a gloss
holding another line or paragraph separator (U+2028, U+0085, ...) or any control
character is an error naming the line, never two glosses that shift every later id.

Without a vocabulary a class is shown by its id: class 7 is the gloss ``"7"``, and
reading annotations takes each value as a class id.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from pathlib import Path
from typing import Dict, Mapping, Optional, Sequence

from .errors import SignspotError

__all__ = [
    "Vocabulary",
    "VocabularyError",
    "UnknownGlossError",
    "load_vocabulary",
    "as_vocabulary",
    "gloss_of",
    "class_ids",
    "check_name",
]


class VocabularyError(SignspotError, ValueError):
    """A vocabulary file that breaks the rules, or a class id it has no gloss for."""


class UnknownGlossError(VocabularyError):
    """Annotation values that are not glosses of the vocabulary (or not class ids, without one)."""


class Vocabulary:
    """Glosses in class order: ``glosses[k]`` is class ``k``; ``source`` names the file in messages."""

    def __init__(self, glosses: Sequence[str], source: str = "the vocabulary"):
        self.glosses = tuple(check_name(g, f"{source}: gloss {k}") for k, g in enumerate(glosses))
        self.source = source
        self._ids = {gloss: k for k, gloss in enumerate(self.glosses)}
        if len(self._ids) != len(self.glosses):
            repeated = sorted(g for g, n in Counter(self.glosses).items() if n > 1)
            raise VocabularyError(f"{source}: glosses given more than once: {', '.join(map(repr, repeated))}")

    def __len__(self) -> int:
        return len(self.glosses)

    def __repr__(self) -> str:
        return f"Vocabulary({len(self)} glosses from {self.source})"

    def gloss(self, class_id: int) -> str:
        """The gloss of ``class_id``; :class:`VocabularyError` when the vocabulary has none."""
        if not 0 <= class_id < len(self.glosses):
            raise VocabularyError(
                f"{self.source}: class {class_id} has no gloss (the vocabulary has {len(self)}: classes 0-{len(self) - 1})"
            )
        return self.glosses[class_id]

    def class_id(self, gloss: str) -> Optional[int]:
        """The class of ``gloss`` (spaces around it ignored), or None when it is not in the vocabulary."""
        return self._ids.get(gloss.strip())

    def names(self) -> Dict[int, str]:
        """``{class_id: gloss}``, the form plots and reports take."""
        return dict(enumerate(self.glosses))


_COMMENT = re.compile(r"^\s*(#|$)")
# C0 and C1 controls, line and paragraph separators, XML's forbidden code points
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff\ufffe\uffff]")


def check_name(text: str, what: str) -> str:
    """``text`` if it can name a gloss or an ELAN tier: not empty, no control character; else VocabularyError."""
    if not isinstance(text, str) or not text.strip():
        raise VocabularyError(f"{what} is empty")
    bad = _CONTROL.search(text)
    if bad:
        raise VocabularyError(f"{what} {text!r} holds the control character U+{ord(bad.group()):04X}, which "
                              "no ELAN file can hold and line-based tools split on; remove it")
    return text


def load_vocabulary(path: str | os.PathLike) -> Vocabulary:
    """Read a vocabulary file (see the module docstring); errors name the file and the lines."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: vocabulary file not found")
    try:
        text = path.read_text(encoding="utf-8-sig")  # -sig: a byte-order mark is not part of line 1
    except UnicodeDecodeError:
        raise VocabularyError(f"{path}: not a UTF-8 text file (a vocabulary is one gloss per line)") from None
    lines: Dict[str, list] = {}
    for lineno, line in enumerate(text.split("\n"), 1):
        line = line.removesuffix("\r")
        if not _COMMENT.match(line):
            check_name(line.strip(), f"{path}: line {lineno}: the gloss")
            lines.setdefault(line.strip(), []).append(lineno)
    repeated = [f"{gloss!r} on lines {', '.join(map(str, numbers))}" for gloss, numbers in lines.items()
                if len(numbers) > 1]
    if repeated:
        raise VocabularyError(f"{path}: each gloss may appear once: {'; '.join(repeated)}")
    if not lines:
        raise VocabularyError(f"{path}: holds no glosses (one gloss per line; blank and '#' lines are skipped)")
    return Vocabulary(list(lines), str(path))


def as_vocabulary(vocabulary: Vocabulary | str | os.PathLike | None) -> Optional[Vocabulary]:
    """A :class:`Vocabulary` as it is, a path loaded with :func:`load_vocabulary`, None kept."""
    if vocabulary is None or isinstance(vocabulary, Vocabulary):
        return vocabulary
    return load_vocabulary(vocabulary)


def gloss_of(class_id: int, vocabulary: Optional[Vocabulary]) -> str:
    """The gloss that shows ``class_id``: the vocabulary's, or the id itself without one."""
    return str(class_id) if vocabulary is None else vocabulary.gloss(class_id)


_CLASS_ID = re.compile(r"^\s*[0-9]+\s*$")


def class_ids(values: Mapping[str, Sequence[str]], vocabulary: Optional[Vocabulary], where: str) -> Dict[str, list]:
    """``{source: [value, ...]}`` -> ``{source: [class_id, ...]}``, each value looked up in ``vocabulary``.

    Without a vocabulary a value must be a class id (digits). Every value that is
    neither is reported at once, with its count and the sources holding it, in one
    :class:`UnknownGlossError` that says how to fix it; nothing is dropped.
    """
    unknown: Counter = Counter()
    holders: Dict[str, list] = {}
    ids: Dict[str, list] = {}
    for source, source_values in values.items():
        out = []
        for value in source_values:
            if vocabulary is not None:
                class_id = vocabulary.class_id(value)
            else:
                class_id = int(value) if _CLASS_ID.match(value) else None
            if class_id is None:
                unknown[value.strip()] += 1
                if source not in holders.setdefault(value.strip(), []):
                    holders[value.strip()].append(source)
            out.append(class_id)
        ids[source] = out
    if unknown:
        listed = ", ".join(f"{gloss!r} x{count} ({_first(holders[gloss])})"
                           for gloss, count in sorted(unknown.items(), key=lambda item: (-item[1], item[0])))
        total = sum(unknown.values())
        if vocabulary is None:
            raise UnknownGlossError(
                f"{where}: {total} annotation value(s) are not class ids: {listed}. Without a vocabulary the values "
                "must be class ids 0, 1, ...; give a vocabulary file (--vocabulary FILE: one gloss per line, "
                "line k = class k)"
            )
        raise UnknownGlossError(
            f"{where}: {total} annotation value(s) are not in the vocabulary {vocabulary.source}: {listed}. "
            f"Add each missing gloss to {vocabulary.source} (one per line; new lines at the end keep the existing "
            "class ids) or correct the annotations"
        )
    return ids


def _first(sources: list) -> str:
    shown = ", ".join(Path(s).name for s in sources[:3])
    return shown + (f" and {len(sources) - 3} more" if len(sources) > 3 else "")
