"""Spatial null models and map-versus-maps association.

Null arrays are always oriented ``(n_perm, N)``: one null per row.
"""

from __future__ import annotations

import numpy as np

from .exceptions import InputError, ShapeError

__all__ = ["null_maps"]


def null_maps(x, nulls) -> np.ndarray:
    """Null versions of map ``x`` as a ``(n_perm, N)`` float array.

    Parameters
    ----------
    x : (N,) array_like
        The map to resample.
    nulls : (n_perm, N) array_like
        Either integer resampling indices (row k, entry i names the original
        entry placed at i; -1 marks a dropped entry, which becomes NaN) or
        float surrogate maps, returned as they are.
    """
    x = np.asarray(x, dtype=np.float64)
    arr = np.asarray(nulls)
    if arr.ndim != 2 or arr.shape[1] != x.shape[-1]:
        raise ShapeError(
            f"nulls must be (n_perm, N) with N = {x.shape[-1]} to match the map; got shape {arr.shape}. "
            "Orient nulls with one null per row (transpose (N, n_perm) arrays from neuromaps)."
        )
    if np.issubdtype(arr.dtype, np.integer):
        if (arr >= x.shape[-1]).any() or (arr < -1).any():
            raise InputError(
                f"nulls index arrays must hold indices in [-1, {x.shape[-1] - 1}]; got values from {arr.min()} "
                f"to {arr.max()}. Use -1 for dropped entries."
            )
        out = x[np.where(arr < 0, 0, arr)]
        return np.where(arr < 0, np.nan, out)
    return arr.astype(np.float64, copy=False)
