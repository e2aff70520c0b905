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
    p.add_argument("--check", action="store_true",
                   help="check the study file and every input it names (store, expression, gene sets, maps, nulls, "
                   "region geometry), print what would run, and compute nothing; every run does these checks first")
    return p


def run(args) -> int:
    # the analysis stack loads only when the verb runs, so `recouple --help` stays fast
    from ..study import check_study, load_config
    from ..workflows.pipeline import execute

    cfg = load_config(args.study)
    if args.out:
        cfg["study"]["output"] = args.out
    if args.backend:
        cfg["compute"]["backend"] = args.backend
    if args.scheduler:
        cfg["compute"]["scheduler"] = args.scheduler
    if args.memory_limit:
        cfg["compute"]["memory_limit"] = args.memory_limit
    plan = check_study(cfg)
    if args.check:
        print(f"{args.study}: OK, nothing computed. A run would do:")
        for line in plan.lines:
            print(f"  {line}")
        return 0
    res = execute(cfg, progress=args.progress, overwrite=args.overwrite, plan=plan)
    print(f"report: {res.report}")
    print(f"tables: {res.output / 'tables'}; provenance: {res.provenance}")
    if res.skipped:
        print(f"resumed: {len(res.skipped)} finished step(s) reused ({', '.join(res.skipped)})")
    return 0
