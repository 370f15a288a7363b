"""How every command ends: a result, or one line naming what is wrong and exit status 1."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Callable

from ..formats.errors import SignspotError

__all__ = ["CommandError", "run_main"]

class CommandError(SignspotError):
    """Options that do not go together, or a command's own check that failed."""


# What a user can fix: the project's typed errors, and files that are missing, present
# where they must not be, or unreadable. Anything else is a bug and keeps its traceback.
USER_ERRORS = (SignspotError, OSError)


DEBUG_VARIABLE = "SIGNSPOT_DEBUG"  # set to 1: user errors keep their traceback (for developers)


_WORKER_TRACEBACK = "Original Traceback (most recent call last):"


def user_message(exc: BaseException) -> str:
    """The message of a user error; one raised in a DataLoader worker arrives wrapped in its
    traceback, of which only the last line (``module.Error: message``) is the message."""
    message = str(exc)
    if _WORKER_TRACEBACK in message:
        last = [line for line in message.splitlines() if line.strip()][-1]
        message = last.partition(": ")[2] or last
    return message


def _user_error_from_worker(exc: BaseException) -> bool:
    """A worker's user error that PyTorch could not rebuild (its class takes other arguments) and re-raised
    as a RuntimeError holding the traceback: the traceback's last line names the class."""
    message = str(exc)
    if not isinstance(exc, RuntimeError) or _WORKER_TRACEBACK not in message:
        return False
    last = [line for line in message.splitlines() if line.strip()][-1]
    module, _, name = last.partition(": ")[0].rpartition(".")
    cls = getattr(sys.modules.get(module), name, None)
    return isinstance(cls, type) and issubclass(cls, USER_ERRORS)


def run_main(main: Callable, args: argparse.Namespace, prefix: str = "error",
             on_interrupt: str = "nothing unfinished was kept; run the same command again"):
    """``main(**vars(args))``, then None: a console script's ``sys.exit(run())`` ends with status 0.

    A user error exits with status 1 and ``{prefix}: message`` on stderr.

    Ctrl-C ends with one line, ``interrupted: {on_interrupt}`` (how to resume), and status 130.
    With ``SIGNSPOT_DEBUG=1`` in the environment the error is raised with its traceback.
    """
    debug = os.environ.get(DEBUG_VARIABLE, "") not in ("", "0")
    try:
        main(**vars(args))
        return None
    except Exception as exc:
        if debug or not (isinstance(exc, USER_ERRORS) or _user_error_from_worker(exc)):
            raise
        raise SystemExit(f"{prefix}: {user_message(exc)}") from None
    except KeyboardInterrupt:
        if debug:
            raise
        print(f"\ninterrupted: {on_interrupt}", file=sys.stderr)
        raise SystemExit(130) from None
