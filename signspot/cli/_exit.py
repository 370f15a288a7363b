"""How every command ends: a result, or one line naming what is wrong and exit status 1."""

from __future__ import annotations

import argparse
import os
from typing import Callable

from ..formats.errors import SignspotError

__all__ = ["CommandError", "run_main"]

class CommandError(SignspotError):
    """Options that do not go together, or a command's own check that failed."""


# What a user can fix: the project's typed errors, and files that are missing, present
# where they must not be, or unreadable. Anything else is a bug and keeps its traceback.
USER_ERRORS = (SignspotError, OSError)


DEBUG_VARIABLE = "SIGNSPOT_DEBUG"  # set to 1: user errors keep their traceback (for developers)


def run_main(main: Callable, args: argparse.Namespace, prefix: str = "error"):
    """``main(**vars(args))``; a user error exits with status 1 and ``{prefix}: message`` on stderr.

    With ``SIGNSPOT_DEBUG=1`` in the environment the error is raised with its traceback.
    """
    try:
        return main(**vars(args))
    except USER_ERRORS as exc:
        if os.environ.get(DEBUG_VARIABLE, "") not in ("", "0"):
            raise
        raise SystemExit(f"{prefix}: {exc}") from None
