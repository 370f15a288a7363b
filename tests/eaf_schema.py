"""Validation of .eaf files against ELAN's EAF 3.0 XML schema (EAFv3.0.xsd).

``make test`` fetches the schema once from the pympi-ling 1.71 source distribution
(the package registry; never at test time) and names it in ``SIGNSPOT_EAF_SCHEMA``.
Run without it, the copy ``make`` keeps in ``.venv/eaf-schema/`` is used; a missing
schema fails the test that needs it, saying how to fetch it. ``VALIDATED`` counts the
files checked, which the end of the test run reports.
"""

import os
from functools import lru_cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SCHEMA = ROOT / ".venv" / "eaf-schema" / "EAFv3.0.xsd"
VALIDATED: list = []


@lru_cache(maxsize=1)
def _schema():
    import xmlschema

    path = Path(os.environ.get("SIGNSPOT_EAF_SCHEMA") or DEFAULT_SCHEMA)
    if not path.is_file():
        pytest.fail(f"{path}: no EAF 3.0 schema; `make test` fetches it (make .venv/eaf-schema/EAFv3.0.xsd)")
    return xmlschema.XMLSchema(str(path))


def schema_problems(path: Path) -> list:
    """The schema's complaints about the file at ``path`` (empty: valid)."""
    problems = [f"{error.path}: {error.reason}" for error in _schema().iter_errors(str(path))]
    VALIDATED.append(str(path))
    return problems
