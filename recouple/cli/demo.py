"""``recouple demo``: simulate an ECT cohort and analyse it end to end."""

from __future__ import annotations

import time


def add_parser(sub):
    p = sub.add_parser(
        "demo",
        help="simulate an ECT-style cohort, write a STUDY.toml, run it and write the report",
    )
    p.add_argument("--out", default="recouple-demo", help="output folder (default: ./recouple-demo)")
    p.add_argument("--seed", type=int, default=0, help="seed of the simulated cohort (default 0)")
    p.add_argument("--regions", type=int, default=100, help="regions in the simulated parcellation (default 100)")
    p.add_argument("--patients", type=int, default=24, help="patients scanned pre and post (default 24)")
    p.add_argument("--controls", type=int, default=16, help="controls scanned twice (default 16)")
    p.add_argument("--n-perm", type=int, default=2000, help="permutations per contrast (default 2000)")
    p.add_argument("--n-nulls", type=int, default=1000, help="spatial nulls for the gene association (default 1000)")
    p.add_argument("--overwrite", action="store_true", help="recompute everything instead of resuming")
    p.add_argument("--progress", action="store_true", help="show progress bars")
    return p


def run(args) -> int:
    # the analysis stack loads only when the verb runs, so `recouple --help` stays fast
    from ..workflows.demo import run_demo

    t0 = time.perf_counter()
    summary = run_demo(
        out=args.out,
        seed=args.seed,
        n_regions=args.regions,
        n_patients=args.patients,
        n_controls=args.controls,
        backend=args.backend,
        n_perm=args.n_perm,
        n_nulls=args.n_nulls,
        progress=args.progress,
        overwrite=args.overwrite,
    )
    print(summary.text)
    print(f"finished in {time.perf_counter() - t0:.1f} s; results in {summary.out}")
    return 0
