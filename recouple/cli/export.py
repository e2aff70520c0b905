"""``recouple export``: write a stored result as CSV (wide, and with ``--long`` a
tidy table too), NIfTI or GIfTI, with its provenance file."""

from __future__ import annotations

from pathlib import Path


def add_parser(sub):
    p = sub.add_parser("export", help="export a stored result (CSV / NIfTI / GIfTI) with a provenance file")
    p.add_argument("store", help="cohort store (.h5)")
    p.add_argument("result", nargs="?", help="result name under results/ (omit to list them)")
    p.add_argument("-o", "--out", default=".", help="output folder (default: current folder)")
    p.add_argument("--format", dest="fmt", choices=("auto", "csv", "nifti", "gifti"), default="auto",
                   help="auto: CSV for region results, NIfTI for voxel results")
    p.add_argument("--dataset", default="coupling", help="dataset inside the result (default coupling)")
    p.add_argument("--long", action="store_true",
                   help="also write <result>_long.csv, one row per scan and region: scan_id, subject, session, "
                        "group, the other scan columns (covariates), region, value (CSV only)")
    return p


def _inside(out: Path, name: str, what: str) -> Path:
    """``out / name`` for a ``name`` derived from data, which must obey the safe-name rule.

    The resolved target is checked to lie in ``out`` as well, so nothing a
    store holds can make export write elsewhere."""
    from ..exceptions import InputError
    from ..validation import safe_name

    target = out / safe_name(name, what)
    if target.resolve().parent != out.resolve():  # e.g. a symbolic link in ``out`` that leads elsewhere
        raise InputError(f"{what} {name!r}: {str(target)!r} leads outside the output folder {str(out)!r}; "
                         "remove that link or choose another -o.")
    return target


def _long_table(frame, scans, per_scan):
    """Tidy form of a wide result table: scan columns (when one row per scan), region, value."""
    import pandas as pd

    regions = [c for c in frame.columns if c != "scan_id"]
    values = frame[regions].to_numpy()
    n_rows, n_cols = values.shape
    out = {}
    if per_scan:
        for col in scans.columns:
            out[col] = scans[col].to_numpy().repeat(n_cols)
    elif n_rows > 1:
        out["row"] = pd.RangeIndex(n_rows).to_numpy().repeat(n_cols)
    out["region"] = list(regions) * n_rows
    out["value"] = values.reshape(-1)
    return pd.DataFrame(out)


def export_result(store, analysis, out, *, fmt="auto", dataset="coupling", long=False):
    """Write ``results/<analysis>/<dataset>`` to ``out``; return the written paths (provenance file last).

    Every file name built from the store's contents (the result and dataset
    names, scan ids) must obey :func:`recouple.validation.safe_name`, so a
    store made elsewhere or edited by hand cannot make export write outside
    ``out``; such a store raises :class:`~recouple.exceptions.InputError`
    before anything is written.
    """
    import numpy as np

    from ..engine.provenance import write_provenance_file
    from ..exceptions import InputError, StoreError
    from ..io import imaging
    from ..io.store import open as open_store
    from ..validation import safe_name

    safe_name(analysis, "result name")
    safe_name(dataset, "--dataset")
    if long and fmt not in ("auto", "csv"):
        raise InputError(f"--long writes a CSV table; got --format {fmt}. Drop --long or use --format csv.")
    out = Path(out)
    written = []
    with open_store(store) as st:
        if analysis not in st.results():
            raise StoreError(f"store {store!r} has no result {analysis!r}; available: {st.results() or 'none'}.")
        attrs = st.result_attrs(analysis)
        if not attrs.get("complete", True):
            raise StoreError(f"results/{analysis} is not complete; re-run the analysis to finish it before export.")
        values = st.read_result(analysis, dataset)
        scan_ids = st.scan_ids
        voxel = attrs.get("provenance", {}).get("parameters", {}).get("level") == "voxel"
        if fmt == "auto":
            fmt = "nifti" if voxel else "csv"
        if long and fmt != "csv":
            raise InputError(f"--long writes a CSV table; this result exports as {fmt}. Add --format csv.")
        stem = f"{analysis}_{dataset}" if dataset != "coupling" else analysis
        rows = np.atleast_2d(values)
        if fmt in ("nifti", "gifti"):
            # one file per scan, named by its scan id: check every name before writing any
            suffix = ".nii.gz" if fmt == "nifti" else ".shape.gii"
            where = f"scan_id in store {str(store)!r}"
            for sid in scan_ids[: rows.shape[0]].tolist():
                safe_name(sid, where)
            targets = [_inside(out, f"{sid}_{stem}{suffix}", where) for sid in scan_ids[: rows.shape[0]].tolist()]
        out.mkdir(parents=True, exist_ok=True)
        if fmt == "csv":
            import pandas as pd

            cols = st.labels if (not voxel and values.ndim == 2 and values.shape[1] == st.n_regions) else \
                [f"v{i}" for i in range(values.shape[-1])]
            frame = pd.DataFrame(rows, columns=cols)
            per_scan = frame.shape[0] == len(scan_ids)
            if per_scan:
                frame.insert(0, "scan_id", scan_ids)
            target = _inside(out, f"{stem}.csv", "result name")
            frame.to_csv(target, index=False)
            written.append(target)
            if long:
                target = _inside(out, f"{stem}_long.csv", "result name")
                _long_table(frame, st.scans, per_scan).to_csv(target, index=False)
                written.append(target)
        elif fmt == "nifti":
            if "voxel/mask" not in st:
                raise InputError("--format nifti needs a voxel-level result and voxel/mask in the store.")
            mask, affine = st.voxel_mask, st.voxel_affine
            for target, row in zip(targets, rows):
                imaging.save_voxel_map(target, row, mask, affine)
                written.append(target)
        else:
            for target, row in zip(targets, rows):
                imaging.save_surface_map(target, row)
                written.append(target)
    written.append(write_provenance_file(_inside(out, stem, "result name"), attrs.get("provenance", {})))
    return written


def run(args) -> int:
    from ..io.store import open as open_store

    if not args.result:
        with open_store(args.store) as st:
            names = st.results()
        print("\n".join(names) if names else "no results in this store")
        return 0
    for path in export_result(args.store, args.result, args.out, fmt=args.fmt, dataset=args.dataset,
                              long=args.long):
        print(f"wrote {path}")
    return 0
