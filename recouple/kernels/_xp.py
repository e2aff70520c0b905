"""Small array-API helpers shared by the kernels (namespace lookup, scans, takes)."""

from __future__ import annotations

import array_api_compat
import numpy as np


def namespace(*arrays):
    """The array-API namespace of ``arrays`` (array-api-compat wrapped for NumPy/CuPy)."""
    return array_api_compat.array_namespace(*[a for a in arrays if a is not None])


def is_numpy_namespace(xp) -> bool:
    return array_api_compat.is_numpy_namespace(xp)


def float_dtype(xp, x):
    """Floating dtype for computing on ``x``: keep float32/float64, promote the rest to float64."""
    if x.dtype in (xp.float32, xp.float64):
        return x.dtype
    return xp.float64


def as_float(xp, x):
    return xp.astype(x, float_dtype(xp, x), copy=False)


def _shift(xp, x, s, fill, axis):
    """Shift ``x`` by ``s`` along ``axis`` (towards higher indices), padding with ``fill``."""
    n = x.shape[axis]
    pad_shape = list(x.shape)
    pad_shape[axis] = s
    pad = xp.full(tuple(pad_shape), fill, dtype=x.dtype)
    idx = [slice(None)] * x.ndim
    idx[axis] = slice(0, n - s)
    return xp.concat([pad, x[tuple(idx)]], axis=axis)


def cumulative_min(xp, x, *, axis=-1):
    """Running minimum along ``axis`` by a log-depth (Hillis-Steele) scan.

    The array API has no ``cummin``; this uses only slicing, concatenation and
    ``minimum``, so it runs and jits on every backend.
    """
    axis = axis % x.ndim
    n = x.shape[axis]
    s = 1
    while s < n:
        x = xp.minimum(x, _shift(xp, x, s, float("inf"), axis))
        s *= 2
    return x


def take_along(xp, x, indices, *, axis=-1):
    """``take_along_axis`` for every namespace (array API 2024.12 or a NumPy-style fallback)."""
    fn = getattr(xp, "take_along_axis", None)
    if fn is not None:
        return fn(x, indices, axis=axis)

    return np.take_along_axis(x, indices, axis=axis)
