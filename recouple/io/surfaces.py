"""Surface inputs for spatial nulls: GIfTI spheres, parcellation labels
(FreeSurfer annot, GIfTI label, CSV/TSV/NPY of one label per vertex) and
parcel centroids on the sphere."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..exceptions import InputError, ShapeError

__all__ = ["load_sphere", "load_labels", "parcel_centroids", "MEDIAL_WALL_NAMES"]

MEDIAL_WALL_NAMES = frozenset({
    "unknown", "corpuscallosum", "Background+FreeSurfer_Defined_Medial_Wall", "???", "Unknown",
    "Medial_wall", "Medial wall", "medial_wall",
})


def _exists(path) -> Path:
    p = Path(path)
    if not p.is_file():
        raise InputError(f"file {str(p)!r} must exist; it was not found. Check the path.")
    return p


def load_sphere(path) -> np.ndarray:
    """Vertex coordinates ``(V, 3)`` of a GIfTI (``.gii``) or FreeSurfer sphere."""
    import nibabel as nib

    p = _exists(path)
    try:
        if p.suffix == ".gii":
            img = nib.load(str(p))
            coords = img.agg_data("pointset")
            if coords is None:
                coords = img.darrays[0].data
        else:
            coords, _ = nib.freesurfer.read_geometry(str(p))
    except Exception as exc:  # nibabel raises many kinds
        raise InputError(f"{p.name} must be a GIfTI or FreeSurfer surface; reading it failed ({exc}). "
                         "Pass e.g. lh.sphere or fsa5_sphere_lh.gii.") from exc
    coords = np.asarray(coords, dtype=np.float64)
    if coords.ndim != 2 or coords.shape[1] != 3:
        raise ShapeError(f"{p.name} must hold (V, 3) vertex coordinates; got shape {coords.shape}. Pass a surface.")
    return coords


def load_labels(path) -> tuple[np.ndarray, dict[int, str]]:
    """Per-vertex integer labels and a ``{label: name}`` table (empty for CSV/NPY).

    Supports FreeSurfer ``.annot``, GIfTI ``.label.gii`` and a column of
    integers (``.csv``/``.tsv``/``.txt``/``.npy``; 0 = medial wall).
    """
    import nibabel as nib

    p = _exists(path)
    name = p.name.lower()
    names: dict[int, str] = {}
    if name.endswith(".annot"):
        labels, ctab, nm = nib.freesurfer.read_annot(str(p))
        names = {i: (n.decode() if isinstance(n, bytes) else str(n)) for i, n in enumerate(nm)}
        labels = np.asarray(labels)
        # Vertices without a label are -1 in read_annot: treat as medial wall.
        labels = np.where(labels < 0, -1, labels)
    elif name.endswith(".gii"):
        img = nib.load(str(p))
        labels = np.asarray(img.agg_data())
        names = {int(k): v for k, v in img.labeltable.get_labels_as_dict().items()}
    elif name.endswith(".npy"):
        labels = np.load(p)
    else:
        delim = "\t" if name.endswith(".tsv") else ","
        labels = np.loadtxt(p, delimiter=delim, ndmin=1)
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise ShapeError(f"{p.name} must hold one label per vertex; got shape {labels.shape}. Pass a single column.")
    if np.issubdtype(labels.dtype, np.floating):
        if not np.all(np.isfinite(labels)) or np.any(labels != np.round(labels)):
            raise InputError(f"{p.name} must hold integer labels; found non-integer values. Pass parcel codes.")
    return labels.astype(np.int64), names


def medial_mask(labels, names=None, *, medial=(0,)) -> np.ndarray:
    """True for vertices in the medial wall: label in ``medial`` or named like one."""
    labels = np.asarray(labels)
    mask = np.isin(labels, list(medial)) | (labels < 0)
    if names:
        bad = [k for k, v in names.items() if v in MEDIAL_WALL_NAMES]
        mask |= np.isin(labels, bad)
    return mask


def parcel_centroids(coords, labels, *, hemi=None, method="surface", parcels=None, medial=(0,), names=None):
    """Parcel centroids on a sphere, one per parcel.

    Parameters
    ----------
    coords : (V, 3) array
        Sphere vertices (left then right when ``hemi`` is given).
    labels : (V,) int array
        Parcel code of each vertex; ``medial`` codes (and negative codes) are
        medial wall.
    hemi : (V,) array, optional
        0 left, 1 right per vertex: centroids snap to their own hemisphere.
    method : {"surface", "average"}
        ``surface`` (neuromaps default): mean of the parcel's vertices snapped
        to the nearest vertex of its hemisphere; ``average``: the mean itself
        (not on the sphere).
    parcels : sequence of int, optional
        Codes to return, in this order (default: sorted non-medial codes).
        A code with no vertex is an error.

    Returns
    -------
    centroids : (N, 3) array
    parcel_hemi : (N,) int array
    codes : (N,) int array
    """
    coords = np.asarray(coords, dtype=np.float64)
    labels = np.asarray(labels).astype(np.int64)
    if labels.shape != (coords.shape[0],):
        raise ShapeError(f"labels must hold one code per vertex ({coords.shape[0]}); got shape {labels.shape}. "
                         "Use the parcellation of this sphere (left then right).")
    if method not in ("surface", "average"):
        raise InputError(f"method must be 'surface' or 'average'; got {method!r}. Pick one of those.")
    hemi = np.zeros(len(labels), dtype=np.int64) if hemi is None else np.asarray(hemi).astype(np.int64)
    wall = medial_mask(labels, names, medial=medial)
    present = np.unique(labels[~wall])
    if parcels is None:
        codes = present
    else:
        codes = np.asarray(parcels).astype(np.int64)
        missing = np.setdiff1d(codes, present)
        if missing.size:
            raise InputError(
                f"parcels must all appear in the parcellation; {missing.size} do not (first: {missing[:5].tolist()}). "
                "Check that the map's labels match the parcellation's codes."
            )
    cent = np.empty((codes.size, 3))
    phemi = np.empty(codes.size, dtype=np.int64)
    for i, c in enumerate(codes):
        sel = (labels == c) & ~wall
        hs = np.unique(hemi[sel])
        if hs.size != 1:
            raise InputError(f"parcel {c} must lie in one hemisphere; it has vertices in both. "
                             "Give left and right parcels distinct codes.")
        h = int(hs[0])
        m = coords[sel].mean(axis=0)
        if method == "surface":
            pool = np.flatnonzero(hemi == h)
            d = np.sqrt(np.sum((coords[pool] - m) ** 2, axis=1))
            m = coords[pool[np.argmin(d)]]
        cent[i], phemi[i] = m, h
    return cent, phemi, codes
