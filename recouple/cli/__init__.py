"""The ``recouple`` command: a thin layer over the engine.

Each verb lives in ``recouple/cli/<verb>.py`` with ``add_parser(subparsers)``
and ``run(args) -> int``; the analysis stack is imported inside ``run`` so ``--help``
stays fast.

Exit codes: 0 success; 2 bad usage or input (a message says what to fix);
1 the work could not be written or run here (disk full, file size limit,
read-only or non-folder output, output folder in use by another run) — one
message, no traceback, and finished results are kept so the same command
resumes; 130 interrupted.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import importlib
import os
import sys
from pathlib import Path

import numpy as np

from .. import __version__
from ..engine.backend import use_backend
from ..exceptions import InputError, OutputError, RecoupleError

COMMANDS = (
    "info",
    "demo",
    "run",
    "ingest",
    "coupling",
    "export",
    "nulls",
    "associate",
    "permute",
    "genes",
    "bench",
)


def add_common(parser: argparse.ArgumentParser) -> None:
    """Options every verb accepts."""
    parser.add_argument(
        "--backend",
        choices=("numpy", "jax", "cupy", "auto"),
        default=None,
        help="array backend (default: $RECOUPLE_BACKEND or numpy)",
    )


def open_input(path, flag):
    """An input file named by ``--flag``: ``(path, array, separator)`` where
    ``array`` is the loaded ``.npy`` (else None) and ``separator`` the
    delimiter of a text table (tab for .tsv/.txt, else comma)."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"--{flag} file {str(p)!r} must exist; it was not found. Check the path.")
    if p.suffix == ".npy":
        return p, np.load(p, allow_pickle=False), None
    return p, None, "\t" if p.suffix in (".tsv", ".txt") else ","


# errno -> (what happened, what to do)
_WRITE_FIXES = "Free space on that disk, or write to another one (--out for the results)"
_SIZE_FIXES = "Raise the file size limit (`ulimit -f`) or use a file system that allows larger files"
_PERMISSION_FIXES = "Write to a folder you may write (--out for the results) or fix its permissions"
_OS_ERRORS = {
    errno.ENOSPC: ("no space left on device", _WRITE_FIXES),
    errno.EDQUOT: ("disk quota exceeded", _WRITE_FIXES),
    errno.EFBIG: ("file too large", _SIZE_FIXES),
    errno.EROFS: ("read-only file system", _PERMISSION_FIXES),
    errno.EACCES: ("permission denied", _PERMISSION_FIXES),
    errno.EPERM: ("operation not permitted", _PERMISSION_FIXES),
    errno.ENOTDIR: ("part of the path is a file, not a folder", "Pass a folder path"),
    errno.EISDIR: ("the path is a folder, not a file", "Pass a file path"),
    errno.EEXIST: ("a file is in the way", "Pass another path or remove that file"),
    errno.EIO: ("input/output error (failing disk or network file system)", "Check the disk, then run again"),
}


def os_error_message(exc: OSError) -> str:
    """One line for an operating-system error: what happened, where, and what to do."""
    what, fix = _OS_ERRORS.get(exc.errno, (exc.strerror or str(exc), "Check the path and the disk"))
    name = errno.errorcode.get(exc.errno, "") if exc.errno is not None else ""
    where = f" at {os.fsdecode(exc.filename)!r}" if exc.filename is not None else ""
    detail = exc.strerror if exc.errno in _OS_ERRORS else None
    if name:
        what = f"{what} ({name})"
    if detail and detail != os.strerror(exc.errno) and "\n" not in detail and len(detail) < 200:
        what = f"{what}: {detail}"
    kept = "; finished results are kept and the same command resumes" if exc.errno in _OS_ERRORS else ""
    return f"{what}{where}. {fix}{kept}."


def _available_commands():
    mods = {}
    for name in COMMANDS:
        try:
            mods[name] = importlib.import_module(f".{name}", __name__)
        except ModuleNotFoundError as exc:
            if exc.name != f"{__name__}.{name}":
                raise
    return mods


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="recouple",
        description="Structure-function coupling, spatial nulls, permutation inference and imaging "
        "transcriptomics at cohort scale, on NumPy, JAX or CuPy.",
    )
    parser.add_argument("--version", action="version", version=f"recouple {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, mod in _available_commands().items():
        p = mod.add_parser(sub)
        add_common(p)
        p.set_defaults(_run=mod.run)
    return parser


def warning_line(command):
    """A ``warnings.formatwarning`` that writes each warning as one line,
    ``recouple <command>: warning: <message>``, without file name or source line."""

    def format_warning(message, category, filename, lineno, line=None):
        text = " ".join(str(message).split())
        kind = "" if category in (UserWarning, RuntimeWarning) else f" ({category.__name__})"
        return f"recouple {command}: warning: {text}{kind}\n"

    return format_warning


def _one_line_warnings(command):
    """Show warnings as :func:`warning_line` does; returns the function that restores the previous format."""
    import warnings

    previous = warnings.formatwarning
    warnings.formatwarning = warning_line(command)
    return lambda: setattr(warnings, "formatwarning", previous)


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    restore_warnings = _one_line_warnings(args.command)
    try:
        if args.backend:
            ctx = use_backend(args.backend)
        else:
            ctx = contextlib.nullcontext()
        with ctx:
            return int(args._run(args) or 0)
    except OutputError as exc:
        print(f"recouple {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except RecoupleError as exc:
        print(f"recouple {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"recouple {args.command}: error: {os_error_message(exc)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"recouple {args.command}: interrupted; finished results are kept", file=sys.stderr)
        return 130
    finally:
        restore_warnings()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
