"""``recouple nulls``: generate spatial nulls for a parcellation, sphere or map
and save them as ``(n_perm, N)`` ``.npy`` with a provenance JSON beside it."""

from __future__ import annotations

SPIN = ("alexander_bloch", "vasa", "hungarian", "baum", "cornblath")
METHODS = SPIN + ("variogram", "burt2018", "moran", "permutation")


def add_parser(sub):
    p = sub.add_parser(
        "nulls",
        help="generate spatial nulls (spins, variogram surrogates, Moran) and save them to .npy",
        description="Generate nulls oriented (n_perm, N), one null per row. Spins need sphere surfaces and a "
        "parcellation (parcel centroids are computed on the sphere) or --coords; variogram and Moran nulls "
        "need --map and distances (--distance or --coords).",
    )
    p.add_argument("--method", choices=METHODS, default="vasa", help="null model (default vasa)")
    p.add_argument("--n-perm", type=int, default=1000, help="number of nulls (default 1000)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--sphere", nargs="+", metavar="GII", help="sphere surface(s): left [right]")
    p.add_argument("--parcellation", nargs="+", metavar="FILE",
                   help="vertex labels: one CSV/NPY for both hemispheres (left then right) or annot/label.gii "
                   "per hemisphere; 0 = medial wall")
    p.add_argument("--coords", metavar="FILE", help="region coordinates (N, 3) as .npy or .csv")
    p.add_argument("--hemi", metavar="FILE", help="hemisphere of each region (0/L, 1/R) as .npy or .csv")
    p.add_argument("--map", metavar="FILE", help="the map (N,) for variogram, Moran or cornblath nulls")
    p.add_argument("--distance", metavar="FILE", help="(N, N) distance matrix .npy/.csv for variogram/Moran")
    p.add_argument("--memory-limit", default=None, metavar="SIZE",
                   help="memory budget, e.g. 8GB (default half of the available memory); nulls that do not fit "
                   "are refused before any is drawn")
    p.add_argument("--out", required=True, metavar="NPY", help="output .npy file")
    return p


def _load_array(path, name):
    import numpy as np

    from . import open_input

    p, arr, delim = open_input(path, name)
    if arr is not None:
        return arr
    try:
        return np.loadtxt(p, delimiter=delim, ndmin=1)
    except ValueError:
        return np.loadtxt(p, delimiter=delim, ndmin=1, skiprows=1)


def run(args) -> int:
    import sys
    from pathlib import Path

    import numpy as np

    from .. import nulls
    from ..engine.planner import parse_memory
    from ..engine.provenance import build_provenance, file_checksums, write_provenance_file
    from ..exceptions import InputError
    from ..io import surfaces

    if args.n_perm < 1:
        raise InputError(f"--n-perm must be >= 1; got {args.n_perm}. Pass e.g. --n-perm 1000.")
    limit = args.memory_limit
    parse_memory(limit)  # a malformed --memory-limit fails before any input is read
    out = Path(args.out)
    if out.suffix != ".npy":
        raise InputError(f"--out must end in .npy; got {str(out)!r}. Pass e.g. --out nulls.npy.")
    x = None if args.map is None else np.asarray(_load_array(args.map, "map"), dtype=float).ravel()
    extra = {}
    inputs = {"map": args.map, "distance": args.distance, "coords": args.coords, "hemi": args.hemi}
    if args.method in SPIN:
        if args.sphere:
            coords_v, hemi_v = _spheres(args.sphere)
            for i, s in enumerate(args.sphere):
                inputs[f"sphere{i}"] = s
            labels = _labels(args.parcellation, len(coords_v)) if args.parcellation else None
            for i, s in enumerate(args.parcellation or []):
                inputs[f"parcellation{i}"] = s
            if args.method in ("baum", "cornblath"):
                if labels is None:
                    raise InputError(f"--method {args.method} needs --parcellation; got none. Pass the vertex labels.")
                res = nulls.spin_permutations(coords_v, hemi=hemi_v, n_perm=args.n_perm, seed=args.seed,
                                              method=args.method, parcellation=labels, data=x, memory_limit=limit)
                extra["parcels"] = np.unique(labels[labels > 0]).tolist()
            elif labels is not None:
                cen, ph, codes = surfaces.parcel_centroids(coords_v, labels, hemi=hemi_v)
                res = nulls.spin_permutations(cen, hemi=ph, n_perm=args.n_perm, seed=args.seed, method=args.method,
                                              memory_limit=limit)
                extra["parcels"] = codes.tolist()
            else:
                res = nulls.spin_permutations(coords_v, hemi=hemi_v, n_perm=args.n_perm, seed=args.seed,
                                              method=args.method, memory_limit=limit)
        elif args.coords:
            coords = _load_array(args.coords, "coords")
            hemi = None if args.hemi is None else _load_array(args.hemi, "hemi").ravel()
            res = nulls.spin_permutations(coords, hemi=hemi, n_perm=args.n_perm, seed=args.seed, method=args.method,
                                          data=x, memory_limit=limit)
        else:
            raise InputError("spin nulls need --sphere (with --parcellation) or --coords; got neither. "
                             "Pass e.g. --sphere lh.sphere.gii rh.sphere.gii --parcellation labels.csv.")
        if x is not None and args.method != "cornblath" and x.size != res.shape[1]:
            raise InputError(f"--map has {x.size} values but the nulls have {res.shape[1]} regions; "
                             "the map's regions must match the parcellation's parcels.")
    elif args.method == "permutation":
        from ..engine.random import permutation_indices

        n = x.size if x is not None else None
        if n is None:
            raise InputError("--method permutation needs --map (to know N); got none.")
        res = permutation_indices(args.seed, args.n_perm, n, memory_limit=limit)
    else:
        if x is None:
            raise InputError(f"--method {args.method} needs --map; got none. Pass the map to randomise.")
        if args.distance:
            D = _load_array(args.distance, "distance")
        elif args.coords:
            D = nulls.distance(_load_array(args.coords, "coords"))
        else:
            raise InputError(f"--method {args.method} needs --distance or --coords; got neither.")
        if args.method == "variogram":
            res = nulls.variogram_surrogates(x, D, n_perm=args.n_perm, seed=args.seed, memory_limit=limit)
        elif args.method == "burt2018":
            res = nulls.burt2018_surrogates(x, D, n_perm=args.n_perm, seed=args.seed, memory_limit=limit)
        else:
            res = nulls.moran(x, nulls.moran_weights(D), n_perm=args.n_perm, seed=args.seed, memory_limit=limit)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".part.npy")
    np.save(tmp, res)
    tmp.replace(out)
    params = {"method": args.method, "n_perm": args.n_perm, "seed": args.seed, "orientation": "(n_perm, N)"}
    extra.update({"shape": list(res.shape), "dtype": str(res.dtype)})
    prov = write_provenance_file(out, build_provenance(analysis="nulls", params=params, seed=args.seed,
                                                       inputs=file_checksums(inputs), extra=extra))
    print(f"recouple nulls: {args.method} x {res.shape[0]} for {res.shape[1]} regions -> {out} "
          f"(provenance {prov.name})", file=sys.stdout)
    return 0


def _spheres(paths):
    import numpy as np

    from ..exceptions import InputError
    from ..io import surfaces

    if len(paths) > 2:
        raise InputError(f"--sphere takes one or two surfaces (left right); got {len(paths)}.")
    coords = [surfaces.load_sphere(p) for p in paths]
    hemi = np.concatenate([np.full(len(c), h) for h, c in enumerate(coords)])
    return np.vstack(coords), hemi


def _labels(paths, n_vertices):
    import numpy as np

    from ..exceptions import InputError
    from ..io import surfaces

    parts = []
    offset = 0
    for p in paths:
        lab, names = surfaces.load_labels(p)
        wall = surfaces.medial_mask(lab, names)
        lab = np.where(wall, 0, lab)
        if len(paths) == 2 and str(p).endswith((".annot", ".gii")):
            # Per-hemisphere label files reuse codes: make right codes distinct.
            lab = np.where(lab > 0, lab + offset, 0)
            offset = int(lab.max()) + 1 if lab.size else offset
        parts.append(lab)
    labels = np.concatenate(parts)
    if labels.size != n_vertices:
        raise InputError(f"--parcellation must label every sphere vertex ({n_vertices}); got {labels.size} labels. "
                         "Give one label per vertex, left then right.")
    return labels
