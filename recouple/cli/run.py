"""``recouple run STUDY.toml``: a whole study from one declarative file."""

from __future__ import annotations


def add_parser(sub):
    p = sub.add_parser("run", help="run a whole study described by a TOML file (resumable) and write its report")
    p.add_argument("study", help="the study file (see `recouple demo` for an example)")
    p.add_argument("--out", default=None, help="output folder (overrides [study] output)")
    p.add_argument("--overwrite", action="store_true", help="recompute every step instead of resuming")
    p.add_argument("--scheduler", default=None, help="Dask scheduler address (tcp://host:8786) for the coupling step")
    p.add_argument("--memory-limit", default=None, help="memory budget, e.g. 4GB (default: half of the available memory)")
    p.add_argument("--progress", action="store_true", help="show progress bars")
    return p


def run(args) -> int:
    from ..study import load_config
    from ..engine.pipeline import execute

    cfg = load_config(args.study)
    if args.out:
        cfg["study"]["output"] = args.out
    if args.backend:
        cfg["compute"]["backend"] = args.backend
    if args.scheduler:
        cfg["compute"]["scheduler"] = args.scheduler
    if args.memory_limit:
        cfg["compute"]["memory_limit"] = args.memory_limit
    res = execute(cfg, progress=args.progress, overwrite=args.overwrite)
    print(f"report: {res.report}")
    print(f"tables: {res.output / 'tables'}; provenance: {res.provenance}")
    if res.skipped:
        print(f"resumed: {len(res.skipped)} finished step(s) reused ({', '.join(res.skipped)})")
    return 0
