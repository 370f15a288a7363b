"""The common base of the errors the project raises on bad input or a failed run.

Library code raises a subclass of :class:`SignspotError` (each also derives from the
built-in exception it refines, e.g. ``ValueError``) and never exits the process;
the command line (:mod:`signspot.cli`) turns one into a one-line ``error: ...`` on
stderr and exit status 1.
"""

from __future__ import annotations

__all__ = ["SignspotError"]


class SignspotError(Exception):
    """Something the user can fix: the message names the file and the problem."""
