"""``recouple export``: write a stored result as CSV, NIfTI or GIfTI, with its provenance file."""

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
    return p


def export_result(store, analysis, out, *, fmt="auto", dataset="coupling"):
    """Write ``results/<analysis>/<dataset>`` to ``out``; return the written paths (provenance file last)."""
    import numpy as np

    from ..engine.provenance import write_provenance_file
    from ..exceptions import InputError, StoreError
    from ..io import imaging
    from ..io.store import open as open_store

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
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
        stem = f"{analysis}_{dataset}" if dataset != "coupling" else analysis
        if fmt == "csv":
            import pandas as pd

            cols = st.labels if (not voxel and values.ndim == 2 and values.shape[1] == st.n_regions) else \
                [f"v{i}" for i in range(values.shape[-1])]
            frame = pd.DataFrame(np.atleast_2d(values), columns=cols)
            if frame.shape[0] == len(scan_ids):
                frame.insert(0, "scan_id", scan_ids)
            target = out / f"{stem}.csv"
            frame.to_csv(target, index=False)
            written.append(target)
        elif fmt == "nifti":
            if "voxel/mask" not in st:
                raise InputError("--format nifti needs a voxel-level result and voxel/mask in the store.")
            mask, affine = st.voxel_mask, st.voxel_affine
            for sid, row in zip(scan_ids, np.atleast_2d(values)):
                target = out / f"{sid}_{stem}.nii.gz"
                imaging.save_voxel_map(target, row, mask, affine)
                written.append(target)
        else:
            for sid, row in zip(scan_ids, np.atleast_2d(values)):
                target = out / f"{sid}_{stem}.shape.gii"
                imaging.save_surface_map(target, row)
                written.append(target)
    written.append(write_provenance_file(out / f"{stem}", attrs.get("provenance", {})))
    return written


def run(args) -> int:
    from ..io.store import open as open_store

    if not args.result:
        with open_store(args.store) as st:
            names = st.results()
        print("\n".join(names) if names else "no results in this store")
        return 0
    for path in export_result(args.store, args.result, args.out, fmt=args.fmt, dataset=args.dataset):
        print(f"wrote {path}")
    return 0
