"""NIfTI, GIfTI and CIFTI reading and writing (nibabel), and parcel time series from an atlas.

Every reader names the file in its error messages. Voxels inside a mask are
ordered as ``np.nonzero(mask)`` (C order), the same order the store uses for
``voxel/bold`` and voxel maps.
"""

from __future__ import annotations

from pathlib import Path

import nibabel
import numpy as np

from ..exceptions import InputError, ShapeError

__all__ = [
    "load_image",
    "load_bold",
    "load_volumes",
    "load_mask",
    "check_same_grid",
    "masked_timeseries",
    "parcel_timeseries",
    "fc_from_timeseries",
    "load_map",
    "voxel_map_image",
    "save_voxel_map",
    "save_surface_map",
]


def _exists(path, what):
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{what} file {str(path)!r} does not exist. Check the path (relative paths are resolved "
                         "against the participants table's folder).")
    return p


def load_image(path, *, what="image"):
    """Load a NIfTI image with nibabel, with a clear error for missing or unreadable files."""
    p = _exists(path, what)
    try:
        return nibabel.load(str(p))
    except Exception as exc:
        raise InputError(f"{what} file {str(p)!r} could not be read as an image ({exc}).") from None


def load_mask(path):
    """Brain mask: ``(mask (X, Y, Z) bool, affine (4, 4))``."""
    img = load_image(path, what="mask")
    data = np.asarray(img.dataobj)
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        raise ShapeError(f"mask file {str(path)!r} must be a 3-D volume; got shape {data.shape}.")
    mask = data != 0
    if not mask.any():
        raise InputError(f"mask file {str(path)!r} holds no non-zero voxel. Pass a brain mask.")
    return mask, np.asarray(img.affine, dtype=np.float64)


def check_same_grid(path_a, shape_a, affine_a, path_b, shape_b, affine_b, *, atol=1e-3):
    """Raise unless two images share the voxel grid (spatial shape and affine)."""
    if tuple(shape_a[:3]) != tuple(shape_b[:3]):
        raise ShapeError(
            f"{str(path_b)!r} has spatial shape {tuple(shape_b[:3])} but {str(path_a)!r} has {tuple(shape_a[:3])}; "
            "both must be on the same voxel grid. Resample one onto the other first."
        )
    if not np.allclose(affine_a, affine_b, atol=atol):
        worst = float(np.abs(np.asarray(affine_a) - np.asarray(affine_b)).max())
        raise InputError(
            f"{str(path_b)!r} and {str(path_a)!r} have different affines (max difference {worst:.3g}); the mask "
            "and the images must share one voxel grid. Resample them into the same space first."
        )


def load_bold(path, mask, mask_affine, *, mask_path="mask"):
    """Voxel time series ``(V, T)`` of a 4-D NIfTI inside ``mask`` (checked against its grid)."""
    img = load_image(path, what="BOLD")
    if len(img.shape) != 4:
        raise ShapeError(f"BOLD file {str(path)!r} must be a 4-D image (X, Y, Z, T); got shape {img.shape}.")
    check_same_grid(mask_path, mask.shape, mask_affine, path, img.shape, img.affine)
    data = np.asarray(img.dataobj, dtype=np.float64)
    ts = data[mask]
    if not np.isfinite(ts).all():
        bad = int((~np.isfinite(ts)).any(axis=1).sum())
        raise InputError(f"BOLD file {str(path)!r} has NaN or inf in {bad} voxel(s) inside the mask. Fix the "
                         "preprocessing or shrink the mask to exclude them.")
    return ts


def load_volumes(path, mask, mask_affine, *, what="data", mask_path="mask"):
    """The volumes of a 4-D NIfTI (one per scan) inside ``mask``: ``(n_volumes, V)`` float64.

    Voxels are in ``np.nonzero(mask)`` order; the image must share the mask's
    grid (shape and affine, :func:`check_same_grid`). Values are not checked
    for NaN (the analysis that uses them decides).
    """
    img = load_image(path, what=what)
    if len(img.shape) != 4:
        raise ShapeError(f"{what} file {str(path)!r} must be a 4-D image (X, Y, Z, scans); got shape {img.shape}. "
                         "Stack the scans along the fourth axis (e.g. fslmerge -t).")
    check_same_grid(mask_path, mask.shape, mask_affine, path, img.shape, img.affine)
    data = np.asarray(img.dataobj, dtype=np.float64)
    return np.moveaxis(data[np.asarray(mask, dtype=bool)], -1, 0)


def masked_timeseries(data4d, mask):
    """``(V, T)`` rows of a 4-D array at the mask's non-zero voxels (C order)."""
    return np.asarray(data4d)[np.asarray(mask, dtype=bool)]


def parcel_timeseries(bold_vt, atlas_values, codes):
    """Mean time series of each parcel: ``(N, T)``.

    Parameters
    ----------
    bold_vt : (V, T) array
        Voxel series inside the mask.
    atlas_values : (V,) int array
        Parcel code of each mask voxel (0 = none).
    codes : (N,) int array
        Parcel codes, in region order.

    Returns
    -------
    ts : (N, T) array; a parcel with no voxel in the mask raises.
    """
    atlas_values = np.asarray(atlas_values)
    codes = np.asarray(codes)
    onehot = (atlas_values[None, :] == codes[:, None]).astype(np.float64)
    counts = onehot.sum(axis=1)
    if (counts == 0).any():
        empty = codes[counts == 0][:5].tolist()
        raise InputError(f"atlas parcels {empty} have no voxel inside the mask; use a mask that covers every parcel "
                         "or drop those labels.")
    return (onehot @ np.asarray(bold_vt, dtype=np.float64)) / counts[:, None]


def fc_from_timeseries(ts, *, fisher_z=True):
    """FC ``(N, N)`` from parcel series ``(N, T)``: Pearson r (Fisher-z by default), zero diagonal."""
    r = np.corrcoef(np.asarray(ts, dtype=np.float64))
    np.fill_diagonal(r, 0.0)
    if fisher_z:
        r = np.arctanh(np.clip(r, -0.999999, 0.999999))
    return r


def load_map(path, *, mask=None, mask_affine=None, mask_path="mask"):
    """A brain map as a 1-D array.

    NIfTI (``.nii``/``.nii.gz``): the values inside ``mask`` (V,) when a mask
    is given (grid checked), else the whole volume flattened. GIfTI
    (``.gii``): the first data array (vertices,). CIFTI (``.dscalar.nii``,
    ``.dtseries.nii``): the first row (grayordinates,). CSV/TSV/TXT/NPY: the
    values as a vector.
    """
    p = _exists(path, "map")
    name = p.name.lower()
    if name.endswith((".csv", ".tsv", ".txt")):
        arr = np.loadtxt(p, delimiter="," if name.endswith(".csv") else None, dtype=np.float64, ndmin=1)
        return arr.ravel()
    if name.endswith(".npy"):
        return np.load(p, allow_pickle=False).astype(np.float64).ravel()
    if name.endswith(".gii"):
        try:
            img = nibabel.load(str(p))
            return np.asarray(img.darrays[0].data, dtype=np.float64).ravel()
        except Exception as exc:
            raise InputError(f"map file {str(p)!r} could not be read as GIfTI ({exc}).") from None
    img = load_image(p, what="map")
    if isinstance(img, nibabel.Cifti2Image):
        return np.asarray(img.get_fdata(), dtype=np.float64)[0]
    data = np.asarray(img.dataobj, dtype=np.float64)
    if mask is not None:
        check_same_grid(mask_path, mask.shape, mask_affine, p, data.shape, img.affine)
        if data.ndim == 4:
            data = data[..., 0]
        return data[np.asarray(mask, dtype=bool)]
    return data.ravel()


def voxel_map_image(values, mask, affine, *, fill=np.nan):
    """A NIfTI image with ``values`` (V,) placed in the mask's voxels (``fill`` elsewhere)."""
    mask = np.asarray(mask, dtype=bool)
    values = np.asarray(values, dtype=np.float64)
    if values.shape != (int(mask.sum()),):
        raise ShapeError(f"values must have one entry per mask voxel ({int(mask.sum())},); got {values.shape}.")
    vol = np.full(mask.shape, fill, dtype=np.float32)
    vol[mask] = values
    return nibabel.Nifti1Image(vol, affine)


def save_voxel_map(path, values, mask, affine, *, fill=np.nan):
    """Write ``values`` (V,) inside ``mask`` as a NIfTI file (``fill`` outside) and return its path."""
    img = voxel_map_image(values, mask, affine, fill=fill)
    nibabel.save(img, str(path))
    return Path(path)


def save_surface_map(path, values):
    """Write a per-vertex map (V,) as a GIfTI shape file."""
    nib = nibabel
    arr = nib.gifti.GiftiDataArray(np.asarray(values, dtype=np.float32), intent="NIFTI_INTENT_SHAPE",
                                   datatype="NIFTI_TYPE_FLOAT32")
    nib.save(nib.gifti.GiftiImage(darrays=[arr]), str(path))
    return Path(path)
