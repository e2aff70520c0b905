"""``recouple associate``: correlate a map with many maps under spatial nulls
and write a table of r, p, FDR and FWER sorted by effect size."""

from __future__ import annotations

from .nulls import add_geometry_arguments, geometry_from_args
from .options import add_precision_argument, precision_note

NULL_METHODS = ("vasa", "spin", "hungarian", "alexander_bloch", "permutation")


def add_parser(sub):
    p = sub.add_parser(
        "associate",
        help="map vs many maps under spatial nulls: table of r, p, FDR, FWER",
        description="Correlate one map (--x) with many maps (--y) and test against nulls of --x (--nulls: an "
        "(n_perm, N) .npy from `recouple nulls`, whose <file>.labels.txt aligns it to --x by region label, or a "
        "null method drawn here from --sphere/--parcellation or --coords). Tables (.csv/.tsv) hold regions in "
        "rows; a 'label' column, when both have one, aligns regions by label. .npy maps are (N,) for --x and "
        "(G, N) for --y, in the nulls' region order.",
    )
    p.add_argument("--x", required=True, metavar="FILE", help="the map: .npy (N,) or .csv/.tsv column")
    p.add_argument("--x-column", metavar="NAME", help="column of --x to use (default: the first numeric one)")
    p.add_argument("--y", required=True, metavar="FILE", help="target maps: .npy (G, N) or .csv/.tsv (regions x maps)")
    p.add_argument("--nulls", required=True, metavar="NPY|METHOD",
                   help="(n_perm, N) index nulls or surrogate maps of --x (.npy with its .labels.txt, or .npz), or a "
                   f"method to draw them: {', '.join(NULL_METHODS)} (spins need --sphere/--parcellation or --coords)")
    p.add_argument("--n-perm", type=int, default=1000, help="nulls drawn by method (default 1000)")
    p.add_argument("--seed", type=int, default=0, help="seed of nulls drawn by method (default 0)")
    add_geometry_arguments(p)
    p.add_argument("--method", choices=("spearman", "pearson"), default="spearman",
                   help="correlation (default spearman, as `recouple genes`)")
    p.add_argument("--alternative", choices=("two-sided", "greater", "less"), default="two-sided")
    p.add_argument("--tail-approximation", action="store_true",
                   help="generalised-Pareto tail p-values for small p (p columns; the plain permutation p goes to "
                   "p_permutation)")
    add_precision_argument(p, needs="Needs maps and nulls without missing values.")
    p.add_argument("--batch-size", type=int, default=None, help="nulls per block (default: planned)")
    p.add_argument("--out", required=True, metavar="CSV", help="output table (.csv or .tsv)")
    return p


def _read_table(path, what):
    import pandas as pd

    from ..exceptions import InputError
    from . import open_input

    p, arr, sep = open_input(path, what)
    if arr is not None:
        return None, arr, None
    df = pd.read_csv(p, sep=sep)
    labels = None
    for col in ("label", "Label", "region", "Region", "name"):
        if col in df.columns and not pd.api.types.is_numeric_dtype(df[col]):
            labels = df[col].astype(str).to_numpy()
            break
    num = df.select_dtypes(include="number")
    num = num.drop(columns=[c for c in num.columns if str(c).lower() in ("label", "id", "index")], errors="ignore")
    if num.shape[1] == 0:
        raise InputError(f"--{what} table {p.name} must have numeric columns (maps); found none.")
    return labels, num, list(map(str, num.columns))


def run(args) -> int:
    import sys
    from pathlib import Path

    import numpy as np

    from .. import nulls
    from ..nulls import spec
    from ..engine.provenance import build_provenance, file_checksums, write_provenance_file
    from ..exceptions import InputError

    out = Path(args.out)
    if out.suffix not in (".csv", ".tsv"):
        raise InputError(f"--out must end in .csv or .tsv; got {str(out)!r}.")
    xl, xv, xcols = _read_table(args.x, "x")
    if xcols is not None:
        col = args.x_column or xcols[0]
        if col not in xcols:
            raise InputError(f"--x-column must name a numeric column of --x ({', '.join(xcols[:8])}); got {col!r}.")
        x = xv[col].to_numpy(dtype=float)
    else:
        x = np.asarray(xv, dtype=float)
    yl, yv, ycols = _read_table(args.y, "y")
    if ycols is not None:
        Y = yv.to_numpy(dtype=float).T
        names = ycols
    else:
        Y = np.atleast_2d(np.asarray(yv, dtype=float))
        names = [f"map{g}" for g in range(Y.shape[0])]
    if xl is not None and yl is not None:
        missing = sorted(set(xl) - set(yl))
        if missing:
            raise InputError(f"region labels of --x must all appear in --y; {len(missing)} do not "
                             f"(first: {missing[:5]}). Use the same parcellation and label names.")
        pos = {lab: i for i, lab in enumerate(yl)}
        Y = Y[:, [pos[lab] for lab in xl]]
    labels = xl if xl is not None else yl
    coords, hemi = geometry_from_args(args, labels, verb="associate")
    if args.nulls.lower() in NULL_METHODS:
        nul = {"method": args.nulls.lower(), "n_perm": args.n_perm, "seed": args.seed}
        if args.nulls.lower() != "permutation":
            if coords is None:
                raise InputError(f"--nulls {args.nulls} draws spins, which need the regions' positions; got none. Pass "
                                 "--sphere LH RH --parcellation LH RH (or --coords, e.g. from `recouple nulls "
                                 "--write-centroids`).")
            nul.update(coords=coords, hemi=hemi)
    elif Path(args.nulls).is_file():
        nul = spec.load_nulls(args.nulls)
    else:
        raise InputError(f"--nulls must be an existing .npy/.npz file or one of {', '.join(NULL_METHODS)}; got "
                         f"{args.nulls!r}. Make nulls with `recouple nulls`.")
    res = nulls.compare_maps(x, Y, nulls=nul, method=args.method, alternative=args.alternative, labels=labels,
                             tail_approximation=args.tail_approximation, batch_size=args.batch_size, progress=True,
                             precision=args.precision)
    import pandas as pd

    table = pd.DataFrame({"map": names, "r": res.r, "p": res.pvalue, "p_fdr": res.pvalue_fdr,
                          "p_fwer": res.pvalue_fwer})
    if res.pvalue_permutation is not None:
        table["p_permutation"] = res.pvalue_permutation
    table = table.iloc[np.argsort(-np.nan_to_num(np.abs(res.r), nan=-1.0), kind="stable")]
    out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(out, sep="\t" if out.suffix == ".tsv" else ",", index=False, float_format="%.10g")
    params = {"method": args.method, "alternative": args.alternative, "n_perm": res.n_perm,
              "nulls": args.nulls, "seed": args.seed, "tail_approximation": args.tail_approximation,
              "precision": args.precision,
              "pvalue": "(1 + #{|r_null| >= |r|}) / (1 + n_perm)"}
    files = {"x": args.x, "y": args.y}
    if Path(args.nulls).is_file():
        files["nulls"] = args.nulls
    write_provenance_file(out, build_provenance(analysis="associate", params=params, seed=args.seed, dtype=args.precision,
                                                inputs=file_checksums(files), extra={"n_maps": len(names)}))
    top = table.head(5)
    print(f"recouple associate: {len(names)} map{'s' if len(names) != 1 else ''} x {res.n_perm} nulls, "
          f"{args.method} correlation"
          f"{', GPD tail p-values' if args.tail_approximation else ''} -> {out}")
    print(f"  significant at FDR 0.05: {int(np.sum(res.pvalue_fdr < 0.05))}; at FWER 0.05: "
          f"{int(np.sum(res.pvalue_fwer < 0.05))}")
    note = res.resolution_note()
    if note:
        print(f"  note: {note}")
    if args.precision != "float64":
        print("  " + precision_note(args.precision, Y.shape[1]))
    for _, row in top.iterrows():
        print(f"  {row['map']:<24s} r={row['r']:+.3f}  p={row['p']:.4g}  fdr={row['p_fdr']:.4g}  "
              f"fwer={row['p_fwer']:.4g}", file=sys.stdout)
    return 0
