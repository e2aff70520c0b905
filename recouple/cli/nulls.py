"""``recouple nulls``: generate spatial nulls for a parcellation, sphere or map
and save them as ``(n_perm, N)`` ``.npy`` with the region labels of the
columns in ``<out>.labels.txt`` and a provenance JSON beside it."""

from __future__ import annotations

SPIN = ("alexander_bloch", "vasa", "hungarian", "baum", "cornblath")
METHODS = SPIN + ("variogram", "burt2018", "moran", "permutation")


def add_parser(sub):
    p = sub.add_parser(
        "nulls",
        help="generate spatial nulls (spins, variogram surrogates, Moran) and save them to .npy",
        description="Generate nulls oriented (n_perm, N), one null per row, saved to --out (.npy) with the region "
        "label of each column in <out>.labels.txt (one label per line; `recouple associate` and `recouple genes` "
        "align nulls to the maps by these labels). Spins need sphere surfaces and a parcellation (region centroids "
        "are computed on the sphere; parcels are matched to region names, and parcellation entries that are not "
        "regions - medial wall, 'unknown', 'corpuscallosum' - are left out and listed) or --coords; variogram and "
        "Moran nulls need --map and distances (--distance or --coords).",
    )
    p.add_argument("--method", choices=METHODS, default="vasa", help="null model (default vasa)")
    p.add_argument("--n-perm", type=int, default=1000, help="number of nulls (default 1000)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--sphere", nargs="+", metavar="GII", help="sphere surface(s): LH RH")
    p.add_argument("--parcellation", nargs="+", metavar="FILE",
                   help="surface parcellation, LH RH (.annot, .label.gii, per-vertex CSV of codes or names), or one "
                   "CSV/NPY for both hemispheres (left then right); same semantics as `recouple ingest`")
    p.add_argument("--parcellation-names", metavar="FILE",
                   help="'code,name' per line: names of the integer codes of a CSV/NPY parcellation (without names "
                   "every non-zero code counts as a region, labelled by its code)")
    p.add_argument("--labels", metavar="FILE",
                   help="region labels of the nulls' columns, in this order (one per line or one comma-separated "
                   "row, e.g. the maps' labels); default: the --map table's labels, else every named parcel of "
                   "the parcellation (L_/R_ prefixed), in parcellation order")
    p.add_argument("--coords", metavar="FILE", help="region coordinates (N, 3) as .npy or .csv")
    p.add_argument("--hemi", metavar="FILE", help="hemisphere of each region (0/L, 1/R) as .npy or .csv")
    p.add_argument("--map", metavar="FILE", help="the map (N,) for variogram, Moran or cornblath nulls: .npy, a "
                   "column of numbers, or a table with a label column")
    p.add_argument("--distance", metavar="FILE", help="(N, N) distance matrix .npy/.csv for variogram/Moran")
    p.add_argument("--write-centroids", metavar="CSV",
                   help="also write the region centroids computed on the sphere: columns label,x,y,z,hemisphere "
                   "(the table `recouple ingest --centroids` reads)")
    p.add_argument("--memory-limit", default=None, metavar="SIZE",
                   help="memory budget, e.g. 8GB (default half of the available memory); nulls that do not fit "
                   "are refused before any is drawn")
    p.add_argument("--out", required=True, metavar="NPY",
                   help="output .npy; region labels go to <out>.labels.txt, provenance to <out>.provenance.json")
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


def _load_map(path):
    """``(values, labels)`` of --map: a .npy or a column of numbers (labels None), or a table with a label column."""
    import numpy as np
    import pandas as pd

    from ..exceptions import InputError
    from . import open_input

    p, arr, delim = open_input(path, "map")
    if arr is not None:
        return np.asarray(arr, dtype=float).ravel(), None
    try:
        return np.loadtxt(p, delimiter=delim, ndmin=1).ravel(), None
    except ValueError:
        pass
    df = pd.read_csv(p, sep=delim)
    labels = None
    for col in df.columns:
        if not pd.api.types.is_numeric_dtype(df[col]):
            labels = df[col].astype(str).str.strip().to_numpy()
            break
    num = df.select_dtypes(include="number")
    if num.shape[1] == 0:
        raise InputError(f"--map table {p.name} must have a numeric column (the map); found none.")
    return num.iloc[:, 0].to_numpy(dtype=float), labels


def _medial_name(name) -> bool:
    from ..io import surfaces

    bare = surfaces.region_key(name).split(":", 1)[-1]
    return bare in {surfaces.region_key(n) for n in surfaces.MEDIAL_WALL_NAMES}


def parcellation_region_names(paths, names_file, sizes):
    """Region labels of every named parcel of a parcellation (left then right,
    in code order, ``L_``/``R_`` prefixed unless the name has a hemisphere),
    leaving out medial-wall names; ``None`` when the codes carry no names."""
    import numpy as np

    from ..io import surfaces

    extra = surfaces.read_code_names(names_file) if names_file else {}
    if len(paths) == 1:
        codes, table = surfaces.load_labels(paths[0])
        blocks = [(codes[:sizes[0]], table), (codes[sizes[0]:], table)]
    else:
        blocks = [surfaces.load_labels(p) for p in paths]
    labels = []
    for (codes, table), hemi in zip(blocks, "LR"):
        table = {**table, **extra}
        if not table:
            return None
        for c in np.unique(codes).tolist():
            name = table.get(c)
            if c < 0 or name is None or _medial_name(name):
                continue
            labels.append(name if ":" in surfaces.region_key(name) else f"{hemi}_{name}")
    return labels


def run(args) -> int:
    import sys
    from pathlib import Path

    import numpy as np

    from .. import nulls
    from ..engine.planner import parse_memory
    from ..engine.provenance import build_provenance, file_checksums, write_provenance_file
    from ..exceptions import InputError
    from ..io import surfaces
    from ..io.ingest import read_labels
    from ..nulls import spec

    if args.n_perm < 1:
        raise InputError(f"--n-perm must be >= 1; got {args.n_perm}. Pass e.g. --n-perm 1000.")
    limit = args.memory_limit
    parse_memory(limit)  # a malformed --memory-limit fails before any input is read
    out = Path(args.out)
    if out.suffix != ".npy":
        raise InputError(f"--out must end in .npy; got {str(out)!r}. Pass e.g. --out nulls.npy.")
    if args.write_centroids and not (args.sphere and args.parcellation and args.method in SPIN):
        raise InputError("--write-centroids needs --sphere and --parcellation (centroids are computed on the sphere) "
                         "and a spin --method; got neither. Pass e.g. --sphere lh.gii rh.gii --parcellation lh.annot "
                         "rh.annot.")
    x, map_labels = (None, None) if args.map is None else _load_map(args.map)
    labels = None if args.labels is None else read_labels(args.labels)
    if x is not None and map_labels is not None:
        if labels is None:
            labels = map_labels
        else:  # the map in the order of --labels
            x = spec.align_nulls(spec.LabelledNulls(x[None], map_labels), labels)[0]
    extra = {}
    notes = []
    centroids = None
    inputs = {"map": args.map, "distance": args.distance, "coords": args.coords, "hemi": args.hemi,
              "labels": args.labels, "parcellation_names": args.parcellation_names}
    if args.method in SPIN:
        if args.sphere:
            for i, s in enumerate(args.sphere):
                inputs[f"sphere{i}"] = s
            for i, s in enumerate(args.parcellation or []):
                inputs[f"parcellation{i}"] = s
            geom = None
            if args.parcellation and len(args.sphere) == 2:
                if len(args.parcellation) > 2:
                    raise InputError(f"--parcellation takes LH RH or one file for both; got {len(args.parcellation)}.")
                if labels is None:
                    sizes = [len(surfaces.load_sphere(s)) for s in args.sphere]
                    labels = parcellation_region_names(args.parcellation, args.parcellation_names, sizes)
                if labels is not None:
                    geom = surfaces.region_geometry(labels, tuple(args.parcellation), tuple(args.sphere),
                                                    names=args.parcellation_names)
                    if geom.message:
                        notes.append(geom.message)
            if geom is not None:
                if args.method in ("baum", "cornblath"):
                    coords_v, hemi_v = geom.vertex_coords()
                    res = nulls.spin_permutations(coords_v, hemi=hemi_v, n_perm=args.n_perm, seed=args.seed,
                                                  method=args.method, parcellation=geom.vertex_labels(), data=x,
                                                  memory_limit=limit)
                else:
                    res = nulls.spin_permutations(geom.centroids, hemi=(geom.hemisphere == "R").astype(np.int64),
                                                  n_perm=args.n_perm, seed=args.seed, method=args.method,
                                                  memory_limit=limit)
                centroids = (geom.labels, geom.centroids, geom.hemisphere)
                extra["regions"] = geom.labels.tolist()
                extra["excluded"] = list(geom.excluded)
            else:
                coords_v, hemi_v = _spheres(args.sphere)
                codes_v = _labels(args.parcellation, len(coords_v)) if args.parcellation else None
                if codes_v is not None:
                    codes = np.unique(codes_v[codes_v > 0])
                    notes.append(f"note: the parcellation codes carry no names, so all {codes.size} non-zero codes "
                                 "count as regions, labelled by their code; if some are not regions (aparc: "
                                 "'unknown', 'corpuscallosum'), pass --parcellation-names FILE ('code,name' per line)")
                    if labels is not None and len(labels) != codes.size:
                        raise InputError(f"--labels names {len(labels)} regions but the unnamed parcellation has "
                                         f"{codes.size} codes; pass --parcellation-names to match parcels by name.")
                    labels = labels if labels is not None else [str(c) for c in codes.tolist()]
                if args.method in ("baum", "cornblath"):
                    if codes_v is None:
                        raise InputError(f"--method {args.method} needs --parcellation; got none. Pass the vertex "
                                         "labels.")
                    res = nulls.spin_permutations(coords_v, hemi=hemi_v, n_perm=args.n_perm, seed=args.seed,
                                                  method=args.method, parcellation=codes_v, data=x, memory_limit=limit)
                    extra["parcels"] = codes.tolist()
                elif codes_v is not None:
                    cen, ph, codes = surfaces.parcel_centroids(coords_v, codes_v, hemi=hemi_v)
                    res = nulls.spin_permutations(cen, hemi=ph, n_perm=args.n_perm, seed=args.seed,
                                                  method=args.method, memory_limit=limit)
                    extra["parcels"] = codes.tolist()
                    centroids = (np.asarray(labels), cen, np.array(["L", "R"])[ph])
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
                             "Pass e.g. --sphere lh.sphere.gii rh.sphere.gii --parcellation lh.annot rh.annot.")
        if x is not None and args.method != "cornblath" and x.size != res.shape[1]:
            raise InputError(f"--map has {x.size} values but the nulls have {res.shape[1]} regions; "
                             "the map's regions must match the parcellation's parcels (give the map as a table "
                             "with a label column to match them by name).")
    elif args.method == "permutation":
        from ..engine.random import permutation_indices

        n = x.size if x is not None else (len(labels) if labels is not None else None)
        if n is None:
            raise InputError("--method permutation needs --map or --labels (to know N); got neither.")
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
    res = np.asarray(res)
    if labels is not None and len(labels) != res.shape[1]:
        raise InputError(f"--labels names {len(labels)} regions but the nulls have {res.shape[1]}; give one label "
                         "per region, in the order of the coordinates / map.")
    spec.save_nulls(out, res, labels)
    if centroids is not None and args.write_centroids:
        import pandas as pd

        lab, cen, hem = centroids
        cpath = Path(args.write_centroids)
        cpath.parent.mkdir(parents=True, exist_ok=True)
        pd.DataFrame({"label": lab, "x": cen[:, 0], "y": cen[:, 1], "z": cen[:, 2], "hemisphere": hem}).to_csv(
            cpath, sep="\t" if cpath.suffix.lower() in (".tsv", ".txt") else ",", index=False, float_format="%.10g")
    params = {"method": args.method, "n_perm": args.n_perm, "seed": args.seed, "orientation": "(n_perm, N)"}
    extra.update({"shape": list(res.shape), "dtype": str(res.dtype),
                  "labels_file": spec.labels_path(out).name if labels is not None else None})
    prov = write_provenance_file(out, build_provenance(analysis="nulls", params=params, seed=args.seed,
                                                       inputs=file_checksums(inputs), extra=extra))
    for note in notes:
        print(f"  {note}", file=sys.stdout)
    where = (f"labels {spec.labels_path(out).name}" if labels is not None
             else "no region labels: matched to maps by position; pass --labels to record them")
    print(f"recouple nulls: {args.method} x {res.shape[0]} for {res.shape[1]} regions -> {out} "
          f"({where}; provenance {prov.name})", file=sys.stdout)
    if centroids is not None and args.write_centroids:
        print(f"  centroids -> {args.write_centroids}", file=sys.stdout)
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


def add_geometry_arguments(p):
    """--sphere/--parcellation/--parcellation-names/--coords/--hemi for verbs that draw spin nulls by name."""
    p.add_argument("--sphere", nargs=2, metavar=("LH", "RH"),
                   help="sphere surfaces, for spin nulls drawn by name: region centroids are computed on the sphere "
                   "(as `recouple ingest`); needs --parcellation")
    p.add_argument("--parcellation", nargs="+", metavar="FILE",
                   help="surface parcellation LH RH (.annot, .label.gii, per-vertex CSV) or one CSV for both; parcels "
                   "are matched to the map's region labels by name (same semantics as `recouple ingest`)")
    p.add_argument("--parcellation-names", metavar="FILE", help="'code,name' per line for a CSV parcellation of codes")
    p.add_argument("--coords", default=None, metavar="FILE",
                   help="(N, 3) sphere coordinates of the map's regions (.npy/.csv), e.g. from `recouple nulls "
                   "--write-centroids` (its label,x,y,z,hemisphere table works too, matched by label)")
    p.add_argument("--hemi", default=None, metavar="FILE", help="(N,) hemisphere of the map's regions (0/L, 1/R)")


def geometry_from_args(args, labels, *, verb):
    """``(coords, hemi)`` of the map's regions (in ``labels`` order) from
    --sphere/--parcellation or --coords/--hemi, or ``(None, None)``."""
    import sys

    import numpy as np

    from ..exceptions import InputError
    from ..io import surfaces

    if args.sphere or args.parcellation:
        if not (args.sphere and args.parcellation):
            raise InputError("--sphere and --parcellation go together (centroids of the parcels on the sphere); got "
                             f"only {'--sphere' if args.sphere else '--parcellation'}. Pass both, LH RH.")
        if labels is None:
            raise InputError(f"--sphere/--parcellation need the region labels of the map to match parcels by name; "
                             f"`recouple {verb}` got a map without labels. Give it as a table with a label column.")
        if len(args.parcellation) > 2:
            raise InputError(f"--parcellation takes LH RH or one file for both; got {len(args.parcellation)}.")
        geom = surfaces.region_geometry(labels, tuple(args.parcellation), tuple(args.sphere),
                                        names=args.parcellation_names)
        if geom.message:
            print(f"  {geom.message}", file=sys.stdout)
        return geom.centroids, (geom.hemisphere == "R").astype(np.int64)
    if args.coords is None:
        return None, None
    if str(args.coords).lower().endswith((".csv", ".tsv", ".txt")) and labels is not None:
        try:
            geom = surfaces.centroid_table(labels, args.coords)
        except InputError as exc:
            if "must have columns label" not in str(exc):
                raise
        else:
            return geom.centroids, (geom.hemisphere == "R").astype(np.int64)
    coords = np.asarray(_load_array(args.coords, "coords"), dtype=float)
    return coords, None if args.hemi is None else load_hemi(args.hemi)


def load_hemi(path):
    """Hemisphere per region from .npy or text: numbers (0 left, 1 right) or L/R."""
    import numpy as np

    from . import open_input

    p, arr, delim = open_input(path, "hemi")
    if arr is None:
        arr = np.loadtxt(p, dtype=str, delimiter=None if delim == "\t" else delim, ndmin=1)
    arr = np.asarray(arr).ravel()
    if arr.dtype.kind in "US":
        arr = np.char.strip(arr)
        try:
            return arr.astype(float).astype(np.int64)
        except ValueError:
            return arr
    return arr
