"""``recouple ingest``: build a cohort store from a participants table and per-scan files."""

from __future__ import annotations


def add_parser(sub):
    p = sub.add_parser(
        "ingest",
        help="create a cohort store (HDF5) from participants.tsv and per-scan files",
        description="Create a cohort store. File options are templates filled from each table row, "
        "e.g. --sc '{subject}/{session}/sc.csv'; columns sc/fc/ts/bold/voxel_sc in the table work too.",
    )
    p.add_argument("table", help="participants.tsv (one row per scan: subject, session, group, covariates)")
    p.add_argument("-o", "--out", required=True, help="store to create (.h5)")
    p.add_argument("--sc", help="SC matrix template (CSV/TSV/TXT/NPY; probtrackx and MRtrix text matrices)")
    p.add_argument("--fc", help="FC matrix template")
    p.add_argument("--ts", help="parcel time-series template (regions x time)")
    p.add_argument("--labels", help="region label file (one per line or one comma-separated row)")
    p.add_argument("--bold", help="4-D BOLD NIfTI template")
    p.add_argument("--mask", help="brain mask NIfTI (with --bold / --atlas)")
    p.add_argument("--atlas", help="atlas NIfTI: derive parcel time series and FC from the BOLD")
    p.add_argument("--atlas-labels", help="atlas label file: 'code,name' per line")
    p.add_argument("--voxel-sc", help="voxel SC template (scipy.sparse .npz, mask voxel order)")
    p.add_argument("--map", action="append", default=[], metavar="NAME=PATH",
                   help="brain map (NIfTI, GIfTI, CIFTI, CSV, NPY); repeatable")
    p.add_argument("--parcellation", nargs="+", metavar="FILE",
                   help="surface parcellation of the regions, LH RH (.annot, .label.gii, per-vertex CSV of codes or "
                   "names), or one CSV for both hemispheres (left then right); parcels are matched to the region "
                   "labels by name; needs --sphere")
    p.add_argument("--sphere", nargs=2, metavar=("LH", "RH"), help="sphere surfaces (FreeSurfer or GIfTI)")
    p.add_argument("--parcellation-names", metavar="FILE",
                   help="'code,name' per line: names of the integer codes of a CSV parcellation")
    p.add_argument("--centroids", metavar="FILE",
                   help="region centroids table (columns label, x, y, z, hemisphere) instead of a parcellation")
    p.add_argument("--sessions", help="comma-separated allowed session values, e.g. pre,post")
    p.add_argument("--symmetrize", action="store_true", help="average asymmetric SC with its transpose")
    p.add_argument("--overwrite", action="store_true", help="replace an existing store")
    return p


def run(args) -> int:
    from ..exceptions import InputError
    from ..io.ingest import ingest

    maps = {}
    for item in args.map:
        if "=" not in item:
            raise InputError(f"--map must be NAME=PATH; got {item!r}. For example --map myelin=myelin.nii.gz.")
        name, path = item.split("=", 1)
        maps[name.strip()] = path.strip()
    report = ingest(
        args.table, args.out, sc=args.sc, fc=args.fc, ts=args.ts, labels=args.labels, bold=args.bold,
        mask=args.mask, atlas=args.atlas, atlas_labels=args.atlas_labels, voxel_sc=args.voxel_sc, maps=maps,
        sessions=args.sessions.split(",") if args.sessions else None, symmetrize=args.symmetrize,
        overwrite=args.overwrite, parcellation=args.parcellation, sphere=args.sphere,
        parcellation_names=args.parcellation_names, centroids=args.centroids,
    )
    print(f"wrote {report}")
    return 0
