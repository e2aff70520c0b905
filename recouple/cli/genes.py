"""``recouple genes``: relate brain maps to regional gene expression.

Writes, per map, a ranked gene table and a ``.rnk`` list (gene-wise
association with nulls), optionally PLS outputs (weights, bootstrap Z,
regional scores, variance explained with p-values) and a gene-category
enrichment table, plus ``provenance.json``.
"""

from __future__ import annotations

from .nulls import add_geometry_arguments, geometry_from_args
from .options import add_precision_argument


def add_parser(sub):
    p = sub.add_parser(
        "genes", help="gene-wise association, PLS and category enrichment of brain maps with expression",
        description="MAP is a CSV/TSV table with a region-label column and one column per map (or a .npy/.txt "
        "vector in the expression table's region order). Expression is aligned to the map's regions by label.")
    p.add_argument("map", help="map table (label column + map columns) or .npy/.txt vector")
    p.add_argument("--expression", required=True, help="region x gene table (abagen CSV, or .h5)")
    p.add_argument("--info", default=None, help="atlas info CSV (id/label, hemisphere, structure) for the expression")
    p.add_argument("--duplicate-genes", choices=("error", "drop", "first", "mean"), default="error",
                   help="genes named twice in the expression table (the AHBA table as shipped has Excel-mangled "
                   "Mar-01, Mar-02 twice): error (default), drop every copy, keep the first, or average them")
    p.add_argument("--hemisphere", default=None, help="keep only these expression regions, e.g. L")
    p.add_argument("--structure", default=None, help="keep only this structure, e.g. cortex (needs --info)")
    p.add_argument("--missing", choices=("error", "drop"), default="error",
                   help="map regions without expression: error (default) or drop")
    p.add_argument("--nulls", default="none",
                   help="FILE.npy from `recouple nulls` (n_perm x N indices or surrogates; its .labels.txt aligns it "
                   "to the map by label) | spin | vasa | hungarian | alexander_bloch | permutation | none (default "
                   "none); spins drawn here need --sphere LH RH --parcellation LH RH, or --coords/--hemi")
    add_geometry_arguments(p)
    p.add_argument("--n-perm", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--method", choices=("spearman", "pearson"), default="spearman",
                   help="correlation (default spearman, as `recouple associate`)")
    p.add_argument("--tail-approximation", action="store_true",
                   help="generalised-Pareto tail p-values for small gene p-values (column pvalue; the plain "
                   "permutation p goes to pvalue_permutation)")
    p.add_argument("--alternative", choices=("two-sided", "greater", "less"), default="two-sided")
    add_precision_argument(p, needs="Gene correlations only; needs maps, expression and nulls without missing values.")
    p.add_argument("--pls", type=int, default=0, metavar="N", help="fit PLS with N components (0 = no PLS)")
    p.add_argument("--n-boot", type=int, default=1000, help="PLS bootstrap resamples (default 1000)")
    p.add_argument("--gene-sets", default=None, metavar="GMT", help="gene sets for category enrichment")
    p.add_argument("--null-type", choices=("spatial", "random-genes"), default="spatial")
    p.add_argument("--min-size", type=int, default=10)
    p.add_argument("--max-size", type=_max_size, default=200, metavar="N|none",
                   help="largest gene set kept, counting genes in the expression table (default 200, GO practice); "
                   "cell-type sets (LAKE, Pooled) hold 50-1100 genes: pass --max-size none to keep them")
    p.add_argument("--out", default="genes_out", help="output folder (default genes_out)")
    p.add_argument("--no-progress", action="store_true")
    return p


def _max_size(text):
    import argparse

    if str(text).lower() in ("none", "0", "inf"):
        return None
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number or 'none'; got {text!r}") from None


def _read_vector(path, name):
    import numpy as np

    from ..exceptions import InputError

    try:
        return np.load(path) if str(path).endswith(".npy") else np.loadtxt(path, delimiter=None, dtype=str)
    except OSError as exc:
        raise InputError(f"{name} must be a readable .npy or text file; got {path!r} ({exc}). Check the path.") from exc


def run(args) -> int:
    from pathlib import Path

    import numpy as np

    from .. import genes as G
    from ..nulls import spec
    from ..engine.progress import ProgressBar
    from ..engine.provenance import build_provenance, write_provenance_file
    from ..exceptions import InputError
    from ..io.tables import read_labelled_table, write_table

    out = Path(args.out)
    expr = G.load_expression(args.expression, info=args.info, duplicate_genes=args.duplicate_genes)
    if args.hemisphere or args.structure:
        expr = G.select_regions(expr, hemisphere=args.hemisphere, structure=args.structure)
    map_path = Path(args.map)
    if not map_path.is_file():
        raise InputError(f"MAP must be an existing file; got {args.map!r}. Check the path.")
    if map_path.suffix.lower() in (".npy", ".txt"):
        values = np.atleast_2d(np.asarray(_read_vector(map_path, "MAP"), dtype=np.float64))
        labels, names = None, np.asarray([map_path.stem])
    else:
        table = read_labelled_table(map_path)
        values, labels, names = table.values.T, table.labels, table.columns
    coords, hemi = geometry_from_args(args, labels, verb="genes")
    null_kw = {"n_perm": args.n_perm, "seed": args.seed, "coords": coords, "hemi": hemi}
    nulls = args.nulls
    if nulls.lower().endswith((".npy", ".npz")):
        if not Path(nulls).is_file():
            raise InputError(f"--nulls file must exist; got {nulls!r}. Check the path.")
        nulls = spec.load_nulls(nulls)
    elif Path(nulls).suffix:
        raise InputError(f"--nulls must be a .npy file or one of spin, vasa, hungarian, alexander_bloch, "
                         f"permutation, none; got {args.nulls!r}.")
    elif nulls.lower() in spec.SPIN_METHODS + ("spin",) and coords is None:
        raise InputError(f"--nulls {nulls} draws spins, which need the regions' positions (coords); got none. Pass "
                         "--sphere LH RH --parcellation LH RH (centroids matched to the map's labels by name), or "
                         "--coords/--hemi (e.g. the table of `recouple nulls --write-centroids`).")
    out.mkdir(parents=True, exist_ok=True)
    show = False if args.no_progress else None
    steps = len(names) * (1 + bool(args.gene_sets)) + (1 if args.pls else 0)
    bar = ProgressBar(steps, desc="genes", unit="step", show=show)
    written, summary = [], []
    try:
        common = {"labels": labels, "missing": args.missing, **null_kw}
        assoc = G.associate(values, expr, nulls=nulls, method=args.method, alternative=args.alternative,
                            map_names=names, tail_approximation=args.tail_approximation, precision=args.precision,
                            **common)
        summary.append(f"genes: {len(assoc.maps)} map(s) x {assoc.genes.size} genes over {assoc.regions.size} "
                       f"regions, {args.method} correlation, "
                       + (f"{assoc.n_perm} nulls ({Path(args.nulls).name})"
                          + (", GPD tail p-values" if args.tail_approximation else "")
                          + (", float32 null products" if args.precision != "float64" else "")
                          if assoc.pvalue is not None else "no nulls"))
        for i, name in enumerate(assoc.maps):
            written.append(write_table(out / f"genes_{name}.csv", assoc.ranked(i)))
            written.append(assoc.write_rnk(out / f"genes_{name}.rnk", i))
            top = assoc.ranked(i)
            summary.append(f"{name}: top gene {top['gene'][0]} r={top['r'][0]:.3f}"
                           + (f" p={top['pvalue'][0]:.4g}" if "pvalue" in top else ""))
            note = assoc.resolution_note(i)
            if note:
                summary.append(f"  note: {note}")
            bar.update()
        if args.pls:
            res = G.pls(values, expr, n_components=args.pls, n_boot=args.n_boot, nulls=nulls,
                        map_names=names, **common)
            comps = range(res.weights.shape[1])
            weights = {"gene": res.genes}
            for c in comps:
                weights[f"weight_{c + 1}"] = res.weights[:, c]
                if res.zscores is not None:
                    weights[f"se_{c + 1}"] = res.se[:, c]
                    weights[f"z_{c + 1}"] = res.zscores[:, c]
                written.append(write_table(out / f"pls_component{c + 1}_ranked.csv", res.ranked(c)))
                written.append(res.write_rnk(out / f"pls_component{c + 1}.rnk", c))
            written.append(write_table(out / "pls_weights.csv", weights))
            written.append(write_table(out / "pls_scores.csv", {"region": res.regions,
                                       **{f"score_{c + 1}": res.scores[:, c] for c in comps}}))
            cols = {"component": np.arange(1, len(comps) + 1), "var_explained": res.var_explained,
                    "cumulative_var_explained": np.cumsum(res.var_explained),
                    "var_explained_x": res.var_explained_x}
            if res.pvalue is not None:
                cols["pvalue_cumulative"] = res.pvalue
            written.append(write_table(out / "pls_variance.csv", cols))
            summary.append("PLS: var explained " + ", ".join(f"{v:.3f}" for v in res.var_explained)
                           + ("" if res.pvalue is None else "; p " + ", ".join(f"{p:.4g}" for p in res.pvalue)))
            bar.update()
        if args.gene_sets:
            for i, name in enumerate(names):
                enr = G.enrichment(values[i], expr, args.gene_sets, nulls=nulls, null_type=args.null_type,
                                   method=args.method, min_size=args.min_size, max_size=args.max_size, **common)
                written.append(write_table(out / f"enrichment_{name}.csv", enr.ranked()))
                top = enr.ranked()
                summary.append(f"{name}: {enr.categories.size} categories, top {top['category'][0]} "
                               f"p={top['pvalue'][0]:.4g}")
                if enr.dropped:
                    summary.append(f"  {enr.dropped_message}")
                bar.update()
    finally:
        bar.close()
    params = {k: v for k, v in vars(args).items() if not k.startswith("_")}
    prov = build_provenance(analysis="genes", params=params, backend=args.backend, seed=args.seed, dtype=args.precision,
                            extra={"outputs": [str(p) for p in written], "n_genes": int(expr.genes.size)})
    write_provenance_file(out, prov)
    for line in summary:
        print(line)
    print(f"wrote {len(written)} file(s) and provenance.json to {out}")
    return 0
