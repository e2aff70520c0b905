"""Build a cohort store from a participants table and per-scan files.

Inputs: a ``participants.tsv``-style table (one row per scan) and, per scan,
connectivity matrices (CSV/TSV/TXT/NPY; FSL ``probtrackx`` network matrices
and MRtrix ``tck2connectome`` outputs are plain text matrices), NIfTI 4-D
BOLD with a brain mask (and optionally an atlas to derive parcel time series
and FC), voxel SC rows (``scipy.sparse`` ``.npz``) and brain maps (NIfTI,
GIfTI, CIFTI, CSV, NPY). Each check fails with a message naming the file and
the problem. Inputs are only read; the store is assembled in a temporary file
and moved into place at the end, and an existing store is replaced only with
``overwrite=True``.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np

from ..exceptions import InputError, ShapeError, StoreError
from . import imaging
from .store import CohortStore, normalise_scans
from .store import create as create_store
from .store import open as open_store
from .store import validate as validate_store
from .surfaces import RegionGeometry, centroid_table, region_geometry

__all__ = ["ingest", "read_matrix", "read_labels", "read_table", "set_region_geometry"]

FILE_COLUMNS = ("sc", "fc", "ts", "bold", "voxel_sc")


def read_table(path):
    """A participants table (TSV, CSV) as a pandas DataFrame of strings and numbers."""
    import pandas as pd

    p = Path(path)
    if not p.is_file():
        raise InputError(f"participants table {str(path)!r} does not exist. Check the path.")
    sep = "," if p.suffix.lower() == ".csv" else "\t"
    try:
        df = pd.read_csv(p, sep=sep)
    except Exception as exc:
        raise InputError(f"participants table {str(p)!r} could not be parsed ({exc}).") from None
    df.columns = [str(c).strip() for c in df.columns]
    return df


def read_labels(path) -> np.ndarray:
    """Region labels from a file: one per line, or one comma/tab-separated row."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"label file {str(path)!r} does not exist. Check the path.")
    text = p.read_text().strip()
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    if len(lines) == 1:
        sep = "," if "," in lines[0] else "\t" if "\t" in lines[0] else None
        labels = [t.strip() for t in lines[0].split(sep)]
    else:
        labels = [ln.split(",")[-1].split("\t")[-1].strip() for ln in lines]
    return np.array([lab for lab in labels if lab], dtype=str)


def _is_number(token: str) -> bool:
    try:
        float(token)
        return True
    except ValueError:
        return token.strip().lower() in ("nan", "inf", "-inf")


def read_matrix(path, *, what="matrix"):
    """A square connectivity matrix from CSV/TSV/TXT (optionally with a header of labels) or NPY.

    Returns ``(matrix, labels or None)``. Whitespace-separated text
    (probtrackx ``fdt_network_matrix``, MRtrix connectomes) is accepted.
    """
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{what} file {str(path)!r} does not exist. Check the path or the template.")
    name = p.name.lower()
    if name.endswith(".npy"):
        try:
            arr = np.load(p, allow_pickle=False)
        except Exception as exc:
            raise InputError(f"{what} file {str(p)!r} could not be read as .npy ({exc}).") from None
        return np.asarray(arr, dtype=np.float64), None
    lines = [ln for ln in p.read_text().splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    if not lines:
        raise InputError(f"{what} file {str(p)!r} is empty.")
    sep = "," if "," in lines[0] else "\t" if "\t" in lines[0] else None
    rows = [[t.strip() for t in ln.split(sep)] for ln in lines]
    labels = None
    if not all(_is_number(t) for t in rows[0] if t):
        header = rows[0]
        rows = rows[1:]
        if rows and not _is_number(rows[0][0]):  # first column holds row labels
            header = header[1:] if len(header) == len(rows[0]) else header
            rows = [r[1:] for r in rows]
        labels = np.array([h for h in header if h != ""], dtype=str)
    try:
        arr = np.array([[float(t) for t in r] for r in rows], dtype=np.float64)
    except ValueError as exc:
        raise InputError(f"{what} file {str(p)!r} holds a value that is not a number ({exc}).") from None
    if len({len(r) for r in rows}) > 1:
        raise ShapeError(f"{what} file {str(p)!r} has rows of different lengths.")
    return arr, labels


def _resolve(template_or_value, row, base: Path):
    text = str(template_or_value)
    try:
        text = text.format(**{k: v for k, v in row.items()})
    except (KeyError, IndexError) as exc:
        raise InputError(f"file template {template_or_value!r} names {exc} which is not a column of the "
                         "participants table. Use {scan_id}, {subject}, {session} or another column.") from None
    p = Path(text)
    return p if p.is_absolute() else base / p


def _check_matrix(arr, path, what, n, labels_file, file_labels, ref_labels, symmetrize):
    if arr.ndim != 2 or arr.shape[0] != arr.shape[1]:
        raise ShapeError(f"{what} file {str(path)!r} must hold a square matrix; got shape {arr.shape}.")
    if arr.shape[0] != n:
        raise ShapeError(f"{what} file {str(path)!r} is {arr.shape[0]} x {arr.shape[1]} but there are {n} region "
                         f"labels ({labels_file}). Use the same parcellation for every scan and the label file.")
    if file_labels is not None and not np.array_equal(file_labels, ref_labels):
        k = int(np.argmax(file_labels != ref_labels)) if file_labels.shape == ref_labels.shape else 0
        got = file_labels[k] if k < file_labels.size else None
        raise InputError(f"{what} file {str(path)!r} has region labels that differ from {labels_file} "
                         f"(position {k}: {got!r} vs {ref_labels[k]!r}). Reorder the matrix to the common "
                         "label order.")
    if not np.isfinite(arr).all():
        where = tuple(int(i) for i in np.argwhere(~np.isfinite(arr))[0])
        raise InputError(f"{what} file {str(path)!r} holds {int((~np.isfinite(arr)).sum())} NaN/inf value(s), the "
                         f"first at {where}. Fix or zero those entries before ingest.")
    if what == "sc":
        lower, upper = np.tril(arr, -1), np.triu(arr, 1)
        if not np.allclose(arr, arr.T):
            if not lower.any() and upper.any():
                arr = upper + upper.T + np.diag(np.diag(arr))  # MRtrix upper-triangular output
            elif not upper.any() and lower.any():
                arr = lower + lower.T + np.diag(np.diag(arr))
            elif symmetrize:
                arr = (arr + arr.T) / 2  # probtrackx counts A->B and B->A separately
            else:
                dev = float(np.abs(arr - arr.T).max())
                raise InputError(f"sc file {str(path)!r} is not symmetric (max |sc - sc.T| = {dev:.3g}); pass "
                                 "symmetrize=True (--symmetrize) to average it with its transpose.")
    return arr


def ingest(table, out, *, sc=None, fc=None, ts=None, labels=None, bold=None, mask=None, atlas=None,
           atlas_labels=None, voxel_sc=None, maps=None, sessions=None, symmetrize=False, overwrite=False,
           progress=False, parcellation=None, sphere=None, parcellation_names=None, centroids=None):
    """Create the cohort store ``out`` from a participants table and per-scan files.

    Parameters
    ----------
    table : str, Path or pandas.DataFrame
        One row per scan: ``subject`` (or ``participant_id``), optional
        ``session``, ``group``, ``scan_id`` (default ``<subject>_<session>``)
        and any covariates or clinical scores. Columns ``sc``, ``fc``, ``ts``,
        ``bold``, ``voxel_sc`` may hold per-scan file paths.
    out : str or Path
        The store to create.
    sc, fc, ts, bold, voxel_sc : str, optional
        File templates filled from the row, e.g. ``"{subject}/{session}/sc.csv"``;
        relative paths are resolved against the table's folder.
    labels : str, optional
        Region label file (needed for matrices unless their CSV header names
        the regions). Without labels, matrices or an atlas, voxel data alone
        (``bold`` with ``mask``, ``voxel_sc``) make a voxel-only store
        (no region labels, ``N = 0``).
    mask : str, optional
        Brain mask NIfTI (required with ``bold``).
    atlas : str, optional
        Atlas NIfTI on the BOLD grid: parcel time series (``ts``) and FC
        (Fisher-z, zero diagonal, unless ``fc`` is given) are derived from it.
    atlas_labels : str, optional
        ``code,name`` per line (or names in order of the sorted non-zero codes).
    maps : dict of {name: path}, optional
        Brain maps stored under ``maps/<name>``.
    sessions : sequence of str, optional
        Allowed session values; any other raises.
    symmetrize : bool
        Average asymmetric SC (probtrackx) with its transpose.
    overwrite : bool
        Replace an existing store.
    parcellation, sphere, parcellation_names : optional
        Region geometry from a surface parcellation: ``parcellation=(lh, rh)``
        (``.annot``, ``.label.gii``, per-vertex CSV; one CSV for both
        hemispheres, left then right, works too), ``sphere=(lh, rh)`` and, for
        integer codes without names, ``parcellation_names`` (``code,name``
        per line). See :func:`set_region_geometry`.
    centroids : str, optional
        Region geometry from a table with columns ``label, x, y, z,
        hemisphere`` instead.

    Returns
    -------
    ValidationReport
        Its ``notes`` name the parcellation entries (or table rows) that are
        not regions of the matrices and were left out.
    """
    import pandas as pd

    out = Path(out)
    if out.exists() and not overwrite:
        raise StoreError(f"store {str(out)!r} already exists; pass overwrite=True (--overwrite) to replace it.")
    if isinstance(table, pd.DataFrame):
        df, base = table.copy(), Path.cwd()
    else:
        df, base = read_table(table), Path(table).resolve().parent
    if "subject" not in df.columns and "participant_id" in df.columns:
        df = df.rename(columns={"participant_id": "subject"})
    if "subject" not in df.columns:
        raise InputError(f"participants table must have a 'subject' (or 'participant_id') column; got columns "
                         f"{list(df.columns)}. Add it.")
    if "session" not in df.columns:
        df["session"] = "1"
    if "group" not in df.columns:
        df["group"] = "all"
    df["subject"] = df["subject"].astype(str)
    df["session"] = df["session"].astype(str)
    if "scan_id" not in df.columns:
        df["scan_id"] = [f"{s}_ses-{t}" if t != "1" else s for s, t in zip(df["subject"], df["session"])]
    if sessions is not None:
        allowed = [str(s) for s in sessions]
        unknown = sorted(set(df["session"]) - set(allowed))
        if unknown:
            rows = df.index[df["session"].isin(unknown)].tolist()[:5]
            raise InputError(f"session values {unknown} in the participants table (rows {rows}) are not among the "
                             f"allowed sessions {allowed}. Fix the table or pass the right sessions.")
    templates = {"sc": sc, "fc": fc, "ts": ts, "bold": bold, "voxel_sc": voxel_sc}
    files = {}
    for key in FILE_COLUMNS:
        if templates[key] is not None:
            files[key] = [_resolve(templates[key], row, base) for row in df.to_dict("records")]
        elif key in df.columns:
            files[key] = [_resolve(v, row, base) for v, row in zip(df[key], df.to_dict("records"))]
    meta = df.drop(columns=[c for c in FILE_COLUMNS if c in df.columns])
    order = ["scan_id", "subject", "session", "group"] + [c for c in meta.columns
                                                         if c not in ("scan_id", "subject", "session", "group")]
    scans = normalise_scans(meta[order])
    n_scans = len(scans["scan_id"])
    for key, paths in files.items():
        missing = [str(p) for p in paths if not Path(p).is_file()]
        if missing:
            raise InputError(f"{key} file {missing[0]!r} does not exist ({len(missing)} of {n_scans} {key} files "
                             "missing). Check the paths or the template.")
    if "bold" in files and mask is None:
        raise InputError("mask must be given with bold; got None. Pass the brain mask NIfTI (--mask).")

    # voxel grid, atlas
    mask_arr = mask_aff = None
    if mask is not None:
        mask_arr, mask_aff = imaging.load_mask(mask)
    atlas_codes = atlas_vals = None
    ref_labels = read_labels(labels) if labels is not None else None
    labels_src = str(labels) if labels is not None else None
    if atlas is not None:
        if mask_arr is None:
            raise InputError("mask must be given with atlas; got None. Pass the brain mask NIfTI (--mask).")
        aimg = imaging.load_image(atlas, what="atlas")
        imaging.check_same_grid(mask, mask_arr.shape, mask_aff, atlas, aimg.shape, aimg.affine)
        avol = np.asarray(aimg.dataobj).astype(np.int64)
        atlas_vals = avol[mask_arr]
        atlas_codes = np.unique(atlas_vals[atlas_vals != 0])
        names = None
        if atlas_labels is not None:
            names = _atlas_names(atlas_labels, atlas_codes)
        if ref_labels is None:
            ref_labels = names if names is not None else np.array([f"parcel_{c}" for c in atlas_codes])
            labels_src = str(atlas_labels or atlas)
        elif ref_labels.size != atlas_codes.size:
            raise ShapeError(f"label file {labels_src!r} lists {ref_labels.size} regions but atlas {str(atlas)!r} has "
                             f"{atlas_codes.size} parcels inside the mask.")

    # matrices
    stacks = {}
    for key in ("sc", "fc"):
        if key not in files:
            continue
        mats = []
        for p in files[key]:
            arr, file_labels = read_matrix(p, what=key)
            if ref_labels is None:
                if file_labels is None:
                    raise InputError(f"labels must be given (--labels) because {key} file {str(p)!r} has no header "
                                     "of region names.")
                ref_labels, labels_src = file_labels, str(p)
            mats.append(_check_matrix(arr, p, key, ref_labels.size, labels_src, file_labels, ref_labels, symmetrize))
        stacks[key] = np.stack(mats)
    if "ts" in files:
        series = []
        for p in files["ts"]:
            arr, _ = read_matrix(p, what="ts") if not str(p).endswith(".npy") else (np.load(p), None)
            arr = np.asarray(arr, dtype=np.float64)
            if ref_labels is not None and arr.shape[0] != ref_labels.size and arr.shape[1] == ref_labels.size:
                arr = arr.T  # time x regions on disk
            if not np.isfinite(arr).all():
                raise InputError(f"ts file {str(p)!r} holds NaN or inf values.")
            series.append(arr)
        if len({s.shape for s in series}) > 1:
            raise ShapeError(f"ts files must all have the same shape (regions x time); got {sorted({s.shape for s in series})}.")
        stacks["ts"] = np.stack(series)
    bold_stack = None
    if "bold" in files:
        vts = []
        for p in files["bold"]:
            x = imaging.load_bold(p, mask_arr, mask_aff, mask_path=mask)
            if vts and x.shape[1] != vts[0].shape[1]:
                raise ShapeError(f"BOLD file {str(p)!r} has {x.shape[1]} time points but {str(files['bold'][0])!r} "
                                 f"has {vts[0].shape[1]}; every scan needs the same length.")
            vts.append(x)
        bold_stack = np.stack(vts)
        if atlas_vals is not None:
            ts_list = [imaging.parcel_timeseries(x, atlas_vals, atlas_codes) for x in vts]
            stacks.setdefault("ts", np.stack(ts_list))
            if "fc" not in stacks:
                stacks["fc"] = np.stack([imaging.fc_from_timeseries(t) for t in ts_list])
    if ref_labels is None:
        if stacks or not (bold_stack is not None or "voxel_sc" in files):
            raise InputError("labels must be given (--labels, an atlas, or CSV headers): no region names found.")
        if parcellation is not None or sphere is not None or centroids is not None:
            raise InputError("parcellation/sphere/centroids describe regions, but this store has no region labels "
                             "(voxel data only). Pass --labels (or --atlas with --atlas-labels) to store regions, "
                             "or leave out the region geometry.")
        ref_labels = np.array([], dtype=str)  # a voxel-only store: no region matrices, N = 0
    for key, arr in stacks.items():
        if key != "ts" and arr.shape[1:] != (ref_labels.size, ref_labels.size):
            raise ShapeError(f"{key} matrices are {arr.shape[1:]} but there are {ref_labels.size} regions.")
    geometry = geometry_sources = None
    if parcellation is not None or sphere is not None or centroids is not None:
        geometry, geometry_sources = _geometry(ref_labels, parcellation, sphere, parcellation_names, centroids)

    tmp = out.with_name(out.name + ".ingesting")
    if tmp.exists():
        tmp.unlink()
    st = create_store(tmp, scans=scans, labels=ref_labels, overwrite=True)
    try:
        for key, arr in stacks.items():
            st.write_array(key, arr)
        if geometry is not None:
            st.write_region_geometry(geometry, sources=geometry_sources)
        if mask_arr is not None:
            st.write_voxel_mask(mask_arr, mask_aff)
        if bold_stack is not None:
            st.write_array("voxel/bold", bold_stack)
        if "voxel_sc" in files:
            _ingest_voxel_sc(st, files["voxel_sc"], int(mask_arr.sum()) if mask_arr is not None else None, symmetrize)
        for name, p in (maps or {}).items():
            values = imaging.load_map(p, mask=mask_arr if str(p).lower().endswith((".nii", ".nii.gz")) and
                                      not str(p).lower().endswith((".dscalar.nii", ".dtseries.nii")) else None,
                                      mask_affine=mask_aff, mask_path=mask)
            if not np.isfinite(values).all():
                raise InputError(f"map file {str(p)!r} holds NaN or inf values inside the mask/parcels.")
            space = ("voxel" if mask_arr is not None and values.size == int(mask_arr.sum())
                     else "region" if values.size == ref_labels.size else "vertex")
            st.write_array(f"maps/{name}", values, attrs={"space": space, "source": str(p)})
    except BaseException:
        st.close()
        tmp.unlink(missing_ok=True)
        raise
    st.close()
    if out.exists():
        out.unlink()
    os.replace(tmp, out)
    report = validate_store(out)
    if geometry is not None and geometry.message:
        report = dataclasses.replace(report, notes=tuple(report.notes) + (geometry.message,))
    return report


def _geometry(labels, parcellation, sphere, names, centroids) -> tuple[RegionGeometry, list]:
    """Region geometry of ``labels`` from a parcellation + sphere or a centroid table (inputs checked)."""
    if centroids is not None:
        if parcellation is not None or sphere is not None:
            raise InputError("centroids (--centroids) and parcellation/sphere (--parcellation/--sphere) must not "
                             "be given together; got both. Pass one source of region geometry.")
        return centroid_table(labels, centroids), [str(centroids)]
    if parcellation is None or sphere is None:
        given, need = ("parcellation", "sphere") if parcellation is not None else ("sphere", "parcellation")
        raise InputError(f"{given} (--{given}) needs {need} (--{need}) too; got only {given}. Pass "
                         "--parcellation LH RH --sphere LH RH (or --centroids table.csv).")
    if isinstance(parcellation, (str, Path)):
        parcellation = (parcellation,)
    geometry = region_geometry(labels, parcellation, sphere, names=names)
    sources = [str(p) for p in (*parcellation, *sphere) if isinstance(p, (str, Path))]
    if isinstance(names, (str, Path)):
        sources.append(str(names))
    return geometry, sources


def set_region_geometry(store, *, parcellation=None, sphere=None, names=None, centroids=None) -> RegionGeometry:
    """Compute and store the geometry of a store's regions.

    Parameters
    ----------
    store : str, Path or CohortStore
        A store (opened ``r+`` here when given as a path).
    parcellation : (lh, rh) pair or one file for both hemispheres
        FreeSurfer ``.annot``, GIfTI ``.label.gii`` or per-vertex CSV/NPY of
        codes or names (one CSV may hold left then right vertices).
    sphere : (lh, rh) pair
        FreeSurfer or GIfTI spheres of the parcellation's surface.
    names : str, Path or dict {code: name}, optional
        Names of integer codes a CSV parcellation does not name itself.
    centroids : str or Path, optional
        Instead of a parcellation: a table with columns ``label, x, y, z,
        hemisphere``.

    Returns
    -------
    RegionGeometry
        What was stored; ``message`` names the parcellation entries that are
        not regions of the matrices (medial wall, ``unknown``,
        ``corpuscallosum``, ...), which are left out, never counted.

    Regions are matched to the store's labels by name (see
    :func:`recouple.io.surfaces.region_geometry`); stores:
    ``/regions/hemisphere``, ``/regions/centroids`` (nearest sphere vertex to
    the mean of each region's vertices) and ``/regions/surface/{lh,rh}/
    {vertex_region, sphere}``.
    """
    own = not isinstance(store, CohortStore)
    st = open_store(store, "r+") if own else store
    try:
        geometry, sources = _geometry(st.labels, parcellation, sphere, names, centroids)
        st.write_region_geometry(geometry, sources=sources)
    finally:
        if own:
            st.close()
    return geometry


def _atlas_names(path, codes):
    p = Path(path)
    if not p.is_file():
        raise InputError(f"atlas label file {str(path)!r} does not exist.")
    lines = [ln.strip() for ln in p.read_text().splitlines() if ln.strip()]
    mapping = {}
    plain = []
    for ln in lines:
        parts = [t.strip() for t in ln.replace("\t", ",").split(",")]
        if len(parts) >= 2 and parts[0].lstrip("-").isdigit():
            mapping[int(parts[0])] = parts[1]
        else:
            plain.append(parts[-1])
    if mapping:
        missing = [int(c) for c in codes if int(c) not in mapping]
        if missing:
            raise InputError(f"atlas label file {str(p)!r} has no name for parcel codes {missing[:5]}.")
        return np.array([mapping[int(c)] for c in codes], dtype=str)
    if len(plain) != len(codes):
        raise ShapeError(f"atlas label file {str(p)!r} lists {len(plain)} names but the atlas has {len(codes)} "
                         "parcels inside the mask.")
    return np.array(plain, dtype=str)


def _ingest_voxel_sc(st, paths, n_voxels, symmetrize):
    import scipy.sparse as sp

    for k, p in enumerate(paths):
        try:
            m = sp.load_npz(p).tocsr()
        except Exception as exc:
            raise InputError(f"voxel_sc file {str(p)!r} could not be read as a scipy.sparse .npz ({exc}).") from None
        if m.shape[0] != m.shape[1] or (n_voxels is not None and m.shape[0] != n_voxels):
            raise ShapeError(f"voxel_sc file {str(p)!r} is {m.shape} but the mask has {n_voxels} voxels; rows and "
                             "columns must follow the mask's voxel order.")
        if symmetrize:
            m = ((m + m.T) / 2).tocsr()
        m.sort_indices()
        st.write_voxel_sc(k, m.data, m.indices, m.indptr)
