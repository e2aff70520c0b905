"""``recouple permute``: GLM permutation inference on a data file, writing
statistic and p maps with PALM-like names, ``<out>.provenance.json`` and a
summary. Heavy imports stay inside the functions so ``--help`` is fast."""

from __future__ import annotations

from ..kernels.pvalues import ALTERNATIVES
from .options import add_precision_argument, precision_note


def add_parser(sub):
    p = sub.add_parser(
        "permute",
        help="permutation inference (sign-flip / Freedman-Lane GLM, max-stat FWER, FDR, TFCE, NBS)",
        description="Permutation inference on DATA (scans x elements). Writes <out>_tstat_c1, <out>_uncp_c1, "
        "<out>_fwep_c1, <out>_fdrp_c1 (and _tfce_*, _nbs_* when asked): NIfTI for voxel data, CSV otherwise; "
        "p-values are written as p (not -log10 p).",
    )
    p.add_argument("data", help="scans x elements .npy/.csv, (scans, N, N) .npy for --nbs, a 4-D NIfTI with --mask, "
                   "or a cohort store (.h5) whose stored result --result is tested")
    p.add_argument("--design", required=True,
                   help="FSL design.mat, a .tsv/.csv scans table used with --formula, or 'store' for the "
                   "store's own scans table")
    p.add_argument("--chunk-size", "--chunk-elements", dest="chunk_size", type=int, default=None,
                   help="with a store: elements per Dask chunk (default: about two chunks per worker); "
                   "--chunk-elements is the old spelling")
    p.add_argument("--scheduler", default=None,
                   help="with a store: Dask scheduler ('threads', 'processes', 'sync' or tcp://host:8786)")
    p.add_argument("--result", default=None,
                   help="with a store: the result group to test (default: the only/first coupling result)")
    p.add_argument("--formula", default=None, help="formula-like spec over the table, e.g. '~ group + age + sex'")
    p.add_argument("--contrast", required=True,
                   help="FSL design.con, a column name of the formula design (e.g. 'group[T.patient]'), "
                   "or weights '1 0 0' (rows separated by ';')")
    p.add_argument("--test", choices=("t", "F"), default="t", help="t contrasts (one per row) or one F test")
    p.add_argument("--n-perm", type=int, default=5000, help="number of permutations (default 5000)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--correction", choices=("fwe", "fdr"), default="fwe",
                   help="correction used for the summary of significant elements")
    p.add_argument("--alpha", type=float, default=0.05)
    p.add_argument("--alternative", choices=ALTERNATIVES, default="two-sided")
    p.add_argument("--resampling", choices=("auto", "permute", "signflip"), default="auto")
    p.add_argument("--blocks", default=None,
                   help="column of the table (or a text file) with exchangeability blocks. Without it, a table "
                   "whose 'subject' column repeats (several scans per subject) gets subject blocks: whole-subject "
                   "permutation for a between-subject effect (e.g. group), permutation within subject for a "
                   "within-subject effect (e.g. session); refused when neither is valid")
    p.add_argument("--whole-blocks", action="store_true", help="permute whole blocks instead of within blocks")
    spatial = p.add_mutually_exclusive_group()
    spatial.add_argument("--tfce", action="store_true", help="TFCE (voxel data: needs --mask)")
    spatial.add_argument("--nbs", type=float, metavar="THRESH", default=None,
                         help="network-based statistic with primary threshold THRESH (edge data)")
    p.add_argument("--nbs-measure", choices=("extent", "intensity"), default="extent")
    p.add_argument("--n-nodes", type=int, default=None, help="number of nodes for (scans, edges) NBS input")
    p.add_argument("--mask", default=None, help="3-D NIfTI mask for 4-D NIfTI data")
    p.add_argument("--connectivity", type=int, choices=(6, 18, 26), default=6)
    add_precision_argument(p, needs="Not with --tfce or --nbs.")
    p.add_argument("--memory-limit", default=None, help="memory budget, e.g. 4GB (default half of the available memory)")
    p.add_argument("-o", "--out", required=True, help="output prefix, e.g. results/ect")
    return p


def _load_table(path):
    import pandas as pd

    sep = "\t" if str(path).endswith((".tsv", ".txt")) else ","
    return pd.read_csv(path, sep=sep)


def _store_result(st, path, result):
    """The stored result to test: ``result``, or the first coupling result."""
    from ..exceptions import InputError

    names = list(st.results())
    if result is None:
        coupling = [r for r in names if "coupling" in r]
        if not coupling:
            raise InputError(f"--result must name a stored result; {path} has none with coupling "
                             f"(results: {', '.join(names) or 'none'}). Run `recouple coupling {path}` first.")
        result = coupling[0]
    if result not in names:
        raise InputError(f"--result must be one of {', '.join(names) or 'none'}; got {result!r}.")
    return result


def _load_store(path, result, *, values=True):
    """(values, labels, scans table, result name) of a cohort store. Values are
    a lazy dask array: the element-chunked path reads only its chunks, the
    other tests materialise them when they need the whole matrix."""
    from ..store import open as open_store

    with open_store(path) as st:
        result = _store_result(st, path, result)
        data = st.lazy(f"results/{result}/coupling") if values else None
        n = st.file[f"results/{result}/coupling"].shape[1]
        labels = [str(v) for v in st.labels] if n == st.n_regions else None
        table = st.scans
    return data, labels, table, result


def _load_data(path, mask_path, result=None):
    import numpy as np

    from ..exceptions import InputError

    text = str(path)
    if text.endswith((".h5", ".hdf5")):
        values, labels, _, _ = _load_store(text, result)
        return values, labels, None
    if text.endswith((".nii", ".nii.gz")):
        from ..io import imaging

        if mask_path is None:
            raise InputError("--mask is required with NIfTI data; got none. Pass a 3-D mask image of the brain.")
        mask, affine = imaging.load_mask(mask_path)
        values = imaging.load_volumes(text, mask, affine, what="DATA", mask_path=mask_path)
        return values, None, {"mask": mask, "affine": affine}
    if text.endswith(".npy"):
        return np.load(text), None, None
    if text.endswith((".csv", ".tsv", ".txt")):
        import pandas as pd

        table = pd.read_csv(text, sep="\t" if text.endswith((".tsv", ".txt")) else ",", header=None)
        first = table.iloc[0]
        try:
            first.astype(float)
            names = None
        except (TypeError, ValueError):
            names = [str(v) for v in first.tolist()]
            table = table.iloc[1:]
        try:
            values = table.to_numpy(dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise InputError(f"DATA must hold numbers (scans x elements, optional header row); got {exc}.") from exc
        return values, names, None
    raise InputError(f"DATA must be .npy, .csv, .tsv or .nii/.nii.gz; got {text!r}. Convert it to one of those.")


def _design(args, n):
    import numpy as np

    from ..exceptions import InputError
    from ..io import design as dio

    blocks = None
    table = None
    if args.design == "store" and args.formula is None:
        raise InputError("--formula is required with --design store; got none. Pass e.g. --formula '~ group + age'.")
    if args.formula is not None:
        if args.design == "store":
            if not str(args.data).endswith((".h5", ".hdf5")):
                raise InputError(f"--design store needs DATA to be a cohort store (.h5); got {args.data!r}.")
            table = _load_store(args.data, args.result, values=False)[2]
        else:
            table = _load_table(args.design)
        dm = dio.design_from_table(table, args.formula)
        if args.contrast.endswith(".con"):
            names, con = dio.read_fsl_contrasts(args.contrast)
        else:
            try:
                con = dio.read_contrast_text(args.contrast, len(dm.columns))
                names = [f"c{i + 1}" for i in range(con.shape[0])]
            except InputError:
                con = np.vstack([dm.contrast(part.strip()) for part in args.contrast.split(";")])
                names = [part.strip() for part in args.contrast.split(";")]
        if args.blocks is not None:
            blocks = table[args.blocks].to_numpy() if args.blocks in table.columns else np.loadtxt(args.blocks)
        matrix, columns = dm.matrix, list(dm.columns)
    else:
        if not str(args.design).endswith(".mat") and str(args.design).endswith((".tsv", ".csv")):
            raise InputError("--formula is required with a table design; got none. Pass e.g. --formula '~ group + age'.")
        matrix = dio.read_fsl_design(args.design)
        columns = [f"EV{i + 1}" for i in range(matrix.shape[1])]
        if args.contrast.endswith(".con"):
            names, con = dio.read_fsl_contrasts(args.contrast)
        else:
            con = dio.read_contrast_text(args.contrast, matrix.shape[1])
            names = [f"c{i + 1}" for i in range(con.shape[0])]
        if args.blocks is not None:
            blocks = np.loadtxt(args.blocks)
    if matrix.shape[0] != n:
        raise InputError(f"--design must have one row per scan of DATA ({n}); got {matrix.shape[0]} rows. "
                         "Use the same scans in the same order.")
    return matrix, columns, con, names, blocks, table


def _exchangeability(args, table, matrix, contrast, resampling):
    """The resampling of one contrast: the user's blocks, or subject blocks when
    the scans table repeats subjects (:func:`recouple.workflows.inference.subject_exchangeability`)."""
    from ..workflows.inference import subject_exchangeability

    if args.blocks is not None:
        return resampling, {"blocks": args.blocks, "whole_blocks": bool(args.whole_blocks), "rule": "given (--blocks)"}
    if table is None or "subject" not in table.columns:
        return resampling, {"blocks": None, "whole_blocks": False,
                            "rule": "none (no subject column: every scan is taken as exchangeable)"}
    eb = subject_exchangeability(table["subject"], matrix, contrast, resampling=resampling,
                                 where="--blocks COLUMN (and --whole-blocks)")
    if eb is None:
        return resampling, {"blocks": None, "whole_blocks": False, "rule": "none (one scan per subject)"}
    return resampling.replace(exchangeability_blocks=eb["blocks"], whole_blocks=eb["whole_blocks"]), eb["params"]


def _write_map(prefix, name, values, element_names, volume):
    import numpy as np

    if volume is not None:
        from ..io.imaging import save_voxel_map

        path = f"{prefix}_{name}.nii.gz"
        save_voxel_map(path, np.nan_to_num(np.asarray(values, dtype=np.float64)), volume["mask"], volume["affine"],
                       fill=0.0)
        return path
    import pandas as pd

    path = f"{prefix}_{name}.csv"
    names = element_names if element_names is not None else [str(i) for i in range(len(values))]
    pd.DataFrame({"element": names, "value": values}).to_csv(path, index=False)
    return path


def run(args) -> int:
    import os
    import time
    import warnings

    import numpy as np

    from .. import permutation as perm
    from ..engine.provenance import build_provenance, write_provenance_file
    from ..exceptions import InputError
    from ..workflows.inference import store_glm

    t0 = time.perf_counter()
    y, element_names, volume = _load_data(args.data, args.mask, args.result)
    n = y.shape[0]
    matrix, columns, con, con_names, blocks, table = _design(args, n)
    contrasts = [con] if args.test == "F" else [row for row in con]
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    written = []
    summary = []
    statname = "fstat" if args.test == "F" else "tstat"
    base_resampling = perm.Resampling(n_perm=args.n_perm, seed=args.seed, kind=args.resampling,
                                      exchangeability_blocks=blocks, whole_blocks=args.whole_blocks,
                                      memory_limit=args.memory_limit, backend=args.backend,
                                      precision=args.precision)
    # every contrast's exchangeability is settled (or refused) before any compute
    chosen_resampling = [_exchangeability(args, table, matrix, c, base_resampling) for c in contrasts]
    exchangeability = [eb for _, eb in chosen_resampling]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for i, c in enumerate(contrasts):
            tag = f"c{i + 1}"
            resampling_c = chosen_resampling[i][0]
            if args.nbs is not None:
                if y.ndim == 2 and args.n_nodes is None:
                    raise InputError("--n-nodes is required for (scans, edges) NBS data; got none.")
                res = perm.nbs(y, matrix, c, threshold=args.nbs, measure=args.nbs_measure, n_nodes=args.n_nodes,
                               alternative=args.alternative, resampling=resampling_c)
                import pandas as pd

                names = [f"{a}-{b}" for a, b in res.edges]
                written.append(_write_map(args.out, f"{statname}_{tag}", res.statistic, names, None))
                path = f"{args.out}_nbs_components_{tag}.csv"
                pd.DataFrame({"component": np.arange(1, res.component_size.size + 1), "size": res.component_size,
                              "n_nodes": res.component_nodes, "fwep": res.pvalue}).to_csv(path, index=False)
                written.append(path)
                path = f"{args.out}_nbs_edges_{tag}.csv"
                pd.DataFrame({"node_i": res.edges[:, 0], "node_j": res.edges[:, 1], "statistic": res.statistic,
                              "component": res.edge_component}).to_csv(path, index=False)
                written.append(path)
                sig = int((res.pvalue <= args.alpha).sum())
                summary.append(f"{tag} ({con_names[i] if i < len(con_names) else tag}): {res.component_size.size} "
                               f"component(s) above t > {args.nbs}; {sig} with FWE p <= {args.alpha}"
                               + (f"; largest {res.component_size[0]:g} edges, p = {res.pvalue[0]:.4g}"
                                  if res.component_size.size else ""))
                continue
            if y.ndim != 2:
                raise InputError(f"DATA must be (scans, elements) for a GLM; got shape {y.shape}. Use --nbs for "
                                 "(scans, N, N) matrices or flatten them.")
            if args.tfce and volume is None:
                raise InputError("--tfce needs voxel data (NIfTI DATA with --mask); got a table.")
            if str(args.data).endswith((".h5", ".hdf5")):
                # Stored results: the workflow picks the route (element chunks through Dask when it can).
                result_name = _load_store(args.data, args.result, values=False)[3]
                res = store_glm(args.data, result_name, matrix, c, test=args.test, alternative=args.alternative,
                                resampling=resampling_c, chunk_size=args.chunk_size, scheduler=args.scheduler,
                                progress=None, subject_blocks=False)
            else:
                res = perm.glm(y, matrix, c, test=args.test, alternative=args.alternative, resampling=resampling_c,
                               spatial=perm.Spatial(tfce=args.tfce, mask=None if volume is None else volume["mask"],
                                                    connectivity=args.connectivity))
            for name, values in ((statname, res.statistic), ("uncp", res.pvalue), ("fwep", res.pvalue_fwer),
                                 ("fdrp", res.pvalue_fdr)):
                written.append(_write_map(args.out, f"{name}_{tag}", values, element_names, volume))
            chosen = res.pvalue_fwer if args.correction == "fwe" else res.pvalue_fdr
            if res.tfce is not None:
                written.append(_write_map(args.out, f"tfce_{tag}", res.tfce.statistic, element_names, volume))
                written.append(_write_map(args.out, f"tfce_fwep_{tag}", res.tfce.pvalue_fwer, element_names, volume))
                written.append(_write_map(args.out, f"tfce_uncp_{tag}", res.tfce.pvalue, element_names, volume))
                if args.correction == "fwe":
                    chosen = res.tfce.pvalue_fwer
            sig = np.flatnonzero(chosen <= args.alpha)
            label = con_names[i] if i < len(con_names) else tag
            line = (f"{tag} ({label}): {sig.size} of {y.shape[1]} elements with {args.correction.upper()} p <= "
                    f"{args.alpha}{' (TFCE)' if res.tfce is not None and args.correction == 'fwe' else ''}")
            if sig.size:
                top = sig[np.argsort(chosen[sig])][:5]
                shown = [element_names[j] if element_names is not None else str(j) for j in top]
                line += "; strongest: " + ", ".join(f"{s} ({args.test} = {res.statistic[j]:.3g})" for s, j in
                                                    zip(shown, top))
            summary.append(line)
    elapsed = time.perf_counter() - t0
    params = {
        "command": "permute",
        "data": os.path.abspath(args.data),
        "design": os.path.abspath(args.design),
        "formula": args.formula,
        "contrasts": np.atleast_2d(con).tolist(),
        "test": args.test,
        "n_perm": int(args.n_perm),
        "seed": args.seed,
        "alternative": args.alternative,
        "resampling": args.resampling,
        "blocks": args.blocks,
        "whole_blocks": bool(args.whole_blocks),
        "exchangeability": exchangeability,
        "correction": args.correction,
        "alpha": args.alpha,
        "tfce": bool(args.tfce),
        "nbs": args.nbs,
        "connectivity": args.connectivity,
        "precision": args.precision,
    }
    prov = build_provenance(analysis="permute", params=params, backend=args.backend, seed=args.seed,
                            dtype=args.precision, extra={
        "design_columns": columns,
        "contrast_names": con_names,
        "n_perm": int(res.n_perm),
        "exhaustive": bool(getattr(res, "exhaustive", res.params.get("exhaustive", False))),
        "resampling": res.params.get("resampling"),
        "elapsed_s": round(elapsed, 3),
        "warnings": [str(w.message) for w in caught],
        "outputs": [os.path.abspath(w) for w in written],
    })
    prov_path = write_provenance_file(args.out, prov)
    for w in caught:
        print(f"warning: {w.message}")
    print(f"recouple permute: {y.shape[0]} scans, {int(np.prod(y.shape[1:]))} elements, {prov['n_perm']} "
          f"{prov['resampling']} resamples, {elapsed:.1f}s")
    if args.precision != "float64":
        print("  " + precision_note(args.precision, y.shape[0]))
    for i, eb in enumerate(exchangeability):
        if eb.get("blocks") == "subject":
            print(f"  c{i + 1} exchangeability: {eb['rule']}")
    for line in summary:
        print("  " + line)
    print(f"  wrote {len(written)} maps with prefix {args.out} and {prov_path}")
    return 0


