"""Safe file I/O shared by every stage.

Two rules of the project live here:

* Nothing is written in place. :func:`atomic_write` writes to a temporary file
  beside the destination and renames it, so an interrupted run never leaves a
  half-written file that looks complete, and a file the user already has is
  only replaced by a complete new one.
* Nothing untrusted is unpickled with plain ``pickle.load``.
  :func:`safe_pickle_load` uses an unpickler that only admits the types a
  format needs (plain containers and scalars by default, numpy arrays on
  request); anything else raises :class:`UnsafePickleError` naming the type.
"""

from __future__ import annotations

import contextlib
import io
import os
import pickle
import re
import shutil
import tempfile
from pathlib import Path
from typing import IO, Iterator, Mapping, Sequence

import numpy as np

from .errors import SignspotError

__all__ = [
    "UnsafePickleError",
    "NotAPickleError",
    "OutputIsInputError",
    "refuse_outputs_over_inputs",
    "RestrictedUnpickler",
    "allowed_globals",
    "atomic_write",
    "staged_folder",
    "atomic_dump_pickle",
    "atomic_write_csv",
    "safe_pickle_load",
    "safe_pickle_loads",
    "safe_file_stems",
    "current_umask",
    "NUMPY_GLOBALS",
    "NUMPY_DTYPE_CLASSES",
    "BUILTIN_GLOBALS",
]

# Globals a pickle of numpy arrays needs (numpy 1.x and 2.x module paths).
NUMPY_GLOBALS = frozenset(
    {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.numeric", "_frombuffer"),
        ("numpy._core.numeric", "_frombuffer"),
    }
)
# numpy >= 1.25 pickles a dtype through its class, e.g. numpy.dtypes.Float64DType.
NUMPY_DTYPE_CLASSES = frozenset(
    (type(np.dtype(code)).__module__, type(np.dtype(code)).__qualname__) for code in "?bhilqBHILQefdgFDG"
)

BUILTIN_GLOBALS = frozenset({("builtins", "set"), ("builtins", "frozenset"), ("builtins", "complex")})


class UnsafePickleError(SignspotError, pickle.UnpicklingError):
    """Raised when a pickle asks for a type its format does not allow."""


class NotAPickleError(SignspotError, ValueError):
    """A file that should be a pickle is truncated or something else."""


class RestrictedUnpickler(pickle.Unpickler):
    """The project's one unpickler for untrusted files.

    Resolves only the ``(module, name)`` pairs in ``allowed``; ``replaced`` maps further
    pairs to checked stand-ins (e.g. a tensor rebuild that refuses hooks). Anything
    else raises :class:`UnsafePickleError` naming the type, ``source`` and ``what``
    the file may hold.
    """

    def __init__(self, file: IO[bytes], allowed: frozenset, source: str, *, replaced: Mapping | None = None,
                 what: str | None = None):
        super().__init__(file)
        self._allowed = allowed
        self._replaced = dict(replaced or {})
        self._source = source
        self._what = what or ("plain lists/dicts/numbers/strings"
                              + (" and numpy arrays" if NUMPY_GLOBALS <= allowed else ""))

    def find_class(self, module: str, name: str):
        if (module, name) in self._replaced:
            return self._replaced[(module, name)]
        if (module, name) in self._allowed:
            return super().find_class(module, name)
        raise UnsafePickleError(
            f"{self._source}: refusing to unpickle {module}.{name}; this file may only hold {self._what} "
            "(unpickling other types can run code). Convert it to those types with the program that wrote it."
        )


def allowed_globals(*, allow_numpy: bool = False, extra_globals=()) -> frozenset:
    """The ``(module, name)`` pairs a restricted load admits: builtins' containers, numpy if asked, extras."""
    allowed = set(BUILTIN_GLOBALS) | set(extra_globals)
    if allow_numpy:
        allowed |= NUMPY_GLOBALS
    return frozenset(allowed)


def safe_pickle_loads(data: bytes, *, allow_numpy: bool = False, extra_globals=(), source: str = "<bytes>"):
    """Unpickle ``data`` admitting only plain containers/scalars (and numpy if asked)."""
    allowed = allowed_globals(allow_numpy=allow_numpy, extra_globals=extra_globals)
    return RestrictedUnpickler(io.BytesIO(data), allowed, source).load()


def safe_pickle_load(path: str | os.PathLike, *, allow_numpy: bool = False, extra_globals=()):
    """Load a pickle file with the restricted unpickler; errors name the file."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no such file") from None
    try:
        return safe_pickle_loads(data, allow_numpy=allow_numpy, extra_globals=extra_globals, source=str(path))
    except UnsafePickleError:
        raise
    except Exception as exc:  # truncated or not a pickle at all
        raise NotAPickleError(f"{path}: not a readable pickle file ({type(exc).__name__}: {exc})") from exc


_UNSAFE_CHARS = re.compile(r"[^A-Za-z0-9._-]+")


def safe_file_stems(names, taken=()) -> dict:
    """``{name: stem}``: a file-name stem for each name taken from data (a video name, ...).

    Anything but letters, digits, ``.``, ``_`` and ``-`` becomes ``_`` and leading dots
    go, so no stem can leave its folder (``/../../x``) or hide; stems are at most 120
    characters. Names that sanitise alike get ``-2``, ``-3``, ... in the order given;
    ``taken``: stems already in use (by an earlier run into the same folder), never given.
    """
    stems: dict = {}
    taken = {stem.lower() for stem in taken}
    for name in names:
        base = _UNSAFE_CHARS.sub("_", str(name)).lstrip(".")[:120] or "_"
        stem, n = base, 1
        while stem.lower() in taken:  # case-insensitive file systems too
            n += 1
            stem = f"{base}-{n}"
        taken.add(stem.lower())
        stems[name] = stem
    return stems


class OutputIsInputError(SignspotError, ValueError):
    """An output path that names one of the command's own inputs."""


def _same_path(a: Path, b: Path) -> bool:
    if os.path.realpath(a) == os.path.realpath(b):
        return True
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def refuse_outputs_over_inputs(outputs: Mapping, inputs: Mapping) -> None:
    """Refuse a command whose output path is one of its input paths, before anything is read.

    ``outputs`` and ``inputs`` map a flag (``"--out"``) to a path, a list of paths or None.
    Writing predictions over the ground truth they are then scored against, or a score
    JSON over the predictions just read, would destroy the input and give a wrong result
    with exit status 0; links and relative spellings of one file are caught too.
    """
    def pairs(flags: Mapping):
        for flag, value in flags.items():
            values = value if isinstance(value, (list, tuple)) else [value]
            yield from ((flag, Path(v)) for v in values if v is not None and str(v) != "")

    for out_flag, out_path in pairs(outputs):
        for in_flag, in_path in pairs(inputs):
            if _same_path(out_path, in_path):
                raise OutputIsInputError(
                    f"{out_path}: {out_flag} is also {in_flag}; writing it would destroy that input "
                    f"(choose another {out_flag})"
                )


def current_umask() -> int:
    """The process's umask (read without changing it)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb") -> Iterator[IO]:
    """Open a temporary file beside ``path``; on success fsync it and rename it over ``path``.

    On any exception the temporary file is removed and ``path`` is untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        # mkstemp creates 0600 files; give the result the permissions a plain open() would.
        os.chmod(tmp, 0o666 & ~current_umask())
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(exc, OSError) and exc.filename is None and exc.errno is not None:
            # a full disk or a failing device: say which file was being written
            raise OSError(exc.errno, f"{exc.strerror} while writing", str(path)) from exc
        raise


@contextlib.contextmanager
def staged_folder(dest: str | os.PathLike) -> Iterator[Path]:
    """A temporary folder beside ``dest`` for a set of files; on success they all land in ``dest`` at once.

    A new ``dest`` is the temporary folder renamed; into an existing one each file is
    linked under its name (never replacing a file there; a clash is
    :class:`FileExistsError` before any file moves). On any exception, a full disk
    included, the temporary folder goes and ``dest`` is as it was: no folder that
    looks like a complete output of fewer files.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.partial-", dir=dest.parent))
    try:
        yield tmp
        if not dest.exists():
            os.chmod(tmp, 0o777 & ~current_umask())
            os.rename(tmp, dest)
            return
        names = sorted(p.name for p in tmp.iterdir())
        clash = [name for name in names if (dest / name).exists()]
        if clash:
            raise FileExistsError(f"{dest / clash[0]}: exists already ({len(clash)} of the {len(names)} files "
                                  "to write do); nothing was written")
        for name in names:
            os.link(tmp / name, dest / name)  # fails rather than replace a file made meanwhile
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def atomic_write_csv(path: str | os.PathLike, header: Sequence, rows) -> None:
    """A CSV file (``\n`` line ends) of ``header`` and ``rows``, atomically."""
    import csv

    with atomic_write(path, "w") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)


def atomic_dump_pickle(obj, path: str | os.PathLike) -> None:
    """Pickle ``obj`` to ``path`` atomically (protocol 4, readable by Python >= 3.4)."""
    with atomic_write(path, "wb") as f:
        pickle.dump(obj, f, protocol=4)
