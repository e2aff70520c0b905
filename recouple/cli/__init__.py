"""The ``recouple`` command: a thin layer over the engine.

Each verb lives in ``recouple/cli/<verb>.py`` with ``add_parser(subparsers)``
and ``run(args) -> int``; the analysis stack is imported inside ``run`` so ``--help``
stays fast. Bad usage exits with code 2 and a message that says what to do.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import sys
from pathlib import Path

import numpy as np

from .. import __version__
from ..engine.backend import use_backend
from ..exceptions import InputError, RecoupleError

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
    except RecoupleError as exc:
        print(f"recouple {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"recouple {args.command}: interrupted; finished results are kept", file=sys.stderr)
        return 130
    finally:
        restore_warnings()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
