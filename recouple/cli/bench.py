"""``recouple bench``: one table of timings per operation and backend, with
speed-ups over the NumPy baseline and over the peers, GEMM fractions and the
voxel FC paths; ``--markdown``/``--readme`` write it as the README's speed section."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

from ..exceptions import InputError


def add_parser(sub):
    p = sub.add_parser("bench", help="time representative operations on every backend and against the peers")
    p.add_argument("--quick", action="store_true", help="small sizes (about a minute or two on 2 cores)")
    p.add_argument("--json", metavar="FILE", default=None, help="also write the results as JSON")
    p.add_argument("--only", nargs="+", default=None, metavar="OP", help="run only these operations")
    p.add_argument("--repeats", type=int, default=None, help="timing repeats (default 1 quick, 3 full)")
    p.add_argument("--markdown", metavar="FILE", default=None,
                   help="also write the run as the README's speed section (markdown: a header naming the "
                        "machine, date and command, then the tables)")
    p.add_argument("--readme", metavar="FILE", default=None,
                   help="replace the speed section of FILE (between the lines "
                        "'<!-- recouple bench --markdown: start -->' and '... end -->') with this run's")
    return p


def _command(args) -> str:
    """The command line of this run, spelled canonically."""
    parts = ["recouple"]
    if args.backend:
        parts += ["--backend", args.backend]
    parts.append("bench")
    if args.quick:
        parts.append("--quick")
    if args.repeats is not None:
        parts += ["--repeats", str(args.repeats)]
    if args.only:
        parts += ["--only", *args.only]
    for flag in ("json", "markdown", "readme"):
        if getattr(args, flag):
            parts += [f"--{flag}", getattr(args, flag)]
    return " ".join(shlex.quote(p) for p in parts)


def run(args) -> int:
    # the analysis stack loads only when the verb runs, so `recouple --help` stays fast
    from ..workflows.bench import OPERATIONS, run_benchmarks
    from ..workflows.benchreport import (README_END, README_START, format_markdown, format_table,
                                         replace_readme_block)

    names = [op.name for op in OPERATIONS]
    if args.only:
        bad = [o for o in args.only if o not in names]
        if bad:
            raise InputError(f"--only must name operations from {', '.join(names)}; got {', '.join(bad)}.")
    if args.repeats is not None and args.repeats < 1:
        raise InputError(f"--repeats must be a positive integer; got {args.repeats}. Pass --repeats 1 or more.")
    if args.readme:
        try:
            text = Path(args.readme).read_text()
        except OSError as exc:
            raise InputError(f"--readme must name a readable file; reading {args.readme!r} failed: {exc}.") from exc
        if README_START not in text or README_END not in text:
            raise InputError(f"--readme {args.readme!r} must hold the lines {README_START!r} and {README_END!r} "
                             "around the speed section; add them where it goes.")
    backends = [args.backend] if args.backend and args.backend != "auto" else None
    result = run_benchmarks(quick=args.quick, backends=backends, operations=args.only, repeats=args.repeats,
                            log=lambda line: print(line, file=sys.stderr), command=_command(args))
    print(format_table(result))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(result, fh, indent=2, default=float)
        print(f"JSON: {args.json}")
    if args.markdown or args.readme:
        md = format_markdown(result)
        if args.markdown:
            with open(args.markdown, "w") as fh:
                fh.write(md)
            print(f"Markdown: {args.markdown}")
        if args.readme:
            replace_readme_block(args.readme, md)
            print(f"README speed section: {args.readme}")
    return 0
