"""``recouple coupling``: SC-FC coupling of every scan of a store (region or voxel level)."""

from __future__ import annotations

import numpy as np

from .export import export_result


def add_parser(sub):
    p = sub.add_parser("coupling", help="compute SC-FC coupling for every scan of a cohort store",
                       description="Chunked, resumable coupling over a cohort store; finished chunks are kept "
                       "if the run stops and a re-run completes the rest.")
    p.add_argument("store", help="cohort store (.h5)")
    p.add_argument("--method", choices=("spearman", "pearson"), default="spearman")
    p.add_argument("--edges", default="sc_nonzero",
                   help="region: sc_nonzero | offdiag | both_nonzero; voxel: both_nonzero | sc_nonzero; "
                   "profiles: sc_nonzero | all (default sc_nonzero)")
    p.add_argument("--level", choices=("region", "voxel"), default="region")
    p.add_argument("--voxel-kind", choices=("auto", "voxel_to_voxel", "profile"), default="auto")
    p.add_argument("--fc-mode", choices=("auto", "dense", "sampled"), default="auto",
                   help="voxel-to-voxel: FC as whole rows by one matrix product (dense) or only at the structural "
                   "non-zeros (sampled); auto picks the cheaper for each chunk's density")
    p.add_argument("--min-edges", type=int, default=3)
    p.add_argument("--symmetrize", action="store_true", help="average asymmetric SC with its transpose")
    p.add_argument("--allow-negative", action="store_true", help="accept negative SC weights")
    p.add_argument("--chunk-size", type=int, default=None, help="scans (region) or voxels (voxel) per chunk")
    p.add_argument("--memory-limit", default=None, help="memory budget, e.g. 8GB or 0.5 (default half of the available memory)")
    p.add_argument("--scheduler", default=None,
                   help="threads (default), sync, processes, or a Dask scheduler address tcp://host:8786")
    p.add_argument("--name", default=None, help="result name (default coupling_<method>_<edges>)")
    p.add_argument("--overwrite", action="store_true", help="recompute a stored result from scratch")
    p.add_argument("--out", default=None, help="also export the result here (CSV at region level, NIfTI maps "
                   "per scan at voxel level)")
    p.add_argument("--no-progress", action="store_true")
    return p


def run(args) -> int:
    # the analysis stack loads only when the verb runs, so `recouple --help` stays fast
    from ..workflows.coupling import cohort_coupling

    res = cohort_coupling(
        args.store, method=args.method, edges=args.edges, level=args.level, chunk_size=args.chunk_size,
        memory_limit=args.memory_limit, scheduler=args.scheduler, overwrite=args.overwrite,
        backend=args.backend, progress=False if args.no_progress else None, min_edges=args.min_edges,
        symmetrize=args.symmetrize, allow_negative=args.allow_negative, voxel_kind=args.voxel_kind, name=args.name,
        fc_mode=args.fc_mode,
    )
    s, n = res.coupling.shape
    print(f"results/{res.analysis}: {s} scans x {n} {'regions' if res.level == 'region' else 'voxels'}; "
          f"{res.n_computed} chunk(s) computed, {res.n_skipped} already done")
    print(f"mean coupling {np.nanmean(res.coupling):.4f}; undefined {int(res.undefined.sum())} of {res.coupling.size}; "
          f"backend {res.provenance.get('backend')}")
    if args.out:
        for path in export_result(args.store, res.analysis, args.out, fmt="auto"):
            print(f"wrote {path}")
    return 0
