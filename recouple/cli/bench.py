"""``recouple bench``: one table of timings per operation and backend, with
speed-ups over the NumPy baseline and over the peers."""

from __future__ import annotations

import json
import sys

from ..exceptions import InputError


def add_parser(sub):
    p = sub.add_parser("bench", help="time representative operations on every backend and against the peers")
    p.add_argument("--quick", action="store_true", help="small sizes (about a minute or two on 2 cores)")
    p.add_argument("--json", metavar="FILE", default=None, help="also write the results as JSON")
    p.add_argument("--only", nargs="+", default=None, metavar="OP", help="run only these operations")
    p.add_argument("--repeats", type=int, default=None, help="timing repeats (default 1 quick, 3 full)")
    return p


def run(args) -> int:
    # the analysis stack loads only when the verb runs, so `recouple --help` stays fast
    from ..workflows.bench import OPERATIONS, format_table, run_benchmarks

    names = [op.name for op in OPERATIONS]
    if args.only:
        bad = [o for o in args.only if o not in names]
        if bad:
            raise InputError(f"--only must name operations from {', '.join(names)}; got {', '.join(bad)}.")
    backends = [args.backend] if args.backend and args.backend != "auto" else None
    result = run_benchmarks(quick=args.quick, backends=backends, operations=args.only, repeats=args.repeats,
                            log=lambda line: print(line, file=sys.stderr))
    print(format_table(result))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(result, fh, indent=2, default=float)
        print(f"JSON: {args.json}")
    return 0
