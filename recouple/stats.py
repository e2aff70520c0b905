"""Core statistics on any backend: ranks, correlations, permutation p-values, FDR.

These wrap the kernels in :mod:`recouple.kernels.stats`: they validate host
inputs, run on the selected backend (``backend=`` or the active default) and
return NumPy arrays.
"""

from __future__ import annotations

import numpy as np

from .engine.dispatch import call_kernel
from .exceptions import InputError, ShapeError
from .kernels import stats as _k
from .kernels.pvalues import ALTERNATIVES
from .validation import as_array, check_choice, check_finite, check_positive_int

__all__ = [
    "rankdata",
    "zscore",
    "pearson_rows",
    "spearman_rows",
    "correlate",
    "permutation_pvalue",
    "fdr_bh",
]



def rankdata(x, *, axis=-1, mask=None, backend=None) -> np.ndarray:
    """Average ranks along ``axis``; NaN and masked-out entries give NaN. See
    :func:`recouple.kernels.stats.rankdata`."""
    x = as_array("x", x)
    check_finite("x", x, allow_nan=True)
    m = None if mask is None else np.asarray(mask, dtype=bool)
    return call_kernel(_k.rankdata, x, mask=m, backend=backend, static={"axis": axis})


def zscore(x, *, axis=-1, ddof=1, backend=None) -> np.ndarray:
    """Standardise along ``axis`` (NaN for constant slices)."""
    x = as_array("x", x)
    return call_kernel(_k.zscore, x, backend=backend, static={"axis": axis, "ddof": ddof})


def _rows(fn, a, b, mask, min_count, backend):
    a = as_array("a", a)
    b = as_array("b", b)
    check_finite("a", a, allow_nan=True)
    check_finite("b", b, allow_nan=True)
    try:
        np.broadcast_shapes(a.shape, b.shape)
    except ValueError:
        raise ShapeError(
            f"a and b must have broadcastable shapes (..., M); got {a.shape} and {b.shape}. "
            "Align their last axes."
        ) from None
    m = None if mask is None else np.asarray(mask, dtype=bool)
    min_count = check_positive_int("min_count", min_count, minimum=2)
    return call_kernel(fn, a, b, mask=m, backend=backend, static={"min_count": min_count})


def pearson_rows(a, b, *, mask=None, min_count=3, backend=None) -> np.ndarray:
    """Row-wise Pearson r of ``(..., M)`` inputs over the last axis, pairwise-complete."""
    return _rows(_k.pearson_rows, a, b, mask, min_count, backend)


def spearman_rows(a, b, *, mask=None, min_count=3, backend=None) -> np.ndarray:
    """Row-wise Spearman rho of ``(..., M)`` inputs over the last axis, pairwise-complete."""
    return _rows(_k.spearman_rows, a, b, mask, min_count, backend)


def correlate(x, Y, *, method="pearson", min_count=3, backend=None, batch_size=None) -> np.ndarray:
    """Correlate one map ``(N,)`` or many ``(K, N)`` with many maps ``(G, N)``.

    Returns ``(K, G)`` (1-D input axes dropped). Without NaN this is one
    matrix product of standardised rows. With NaN, each pair uses the entries
    valid in both maps (Pearson via masked sums as matrix products; Spearman
    re-ranks within each pair's common entries, batched over ``x`` rows).
    """
    check_choice("method", method, ("pearson", "spearman"))
    x = as_array("x", x)
    Y = as_array("Y", Y)
    check_finite("x", x, allow_nan=True)
    check_finite("Y", Y, allow_nan=True)
    if x.ndim not in (1, 2) or Y.ndim not in (1, 2) or x.shape[-1] != Y.shape[-1]:
        raise ShapeError(
            f"x must be (N,) or (K, N) and Y (N,) or (G, N) with the same N; got {x.shape} and {Y.shape}. "
            "Put maps in rows, regions in columns."
        )
    if not (np.isnan(x).any() or np.isnan(Y).any()):
        return call_kernel(_k.correlate, x, Y, backend=backend, static={"method": method})
    static = {"method": method, "min_count": check_positive_int("min_count", min_count, minimum=2)}
    if method == "pearson" or x.ndim == 1:
        return call_kernel(_k.correlate_pairwise, x, Y, backend=backend, static=static)
    # Spearman with NaN builds a (K, G, N) block: batch the rows of x.
    g, n = (1, Y.shape[0]) if Y.ndim == 1 else Y.shape
    step = batch_size or max(1, int(2e8 // max(g * n * 8 * 6, 1)))
    parts = [
        call_kernel(_k.correlate_pairwise, x[i : i + step], Y, backend=backend, static=static)
        for i in range(0, max(x.shape[0], 1), step)  # one (empty) batch when x has no rows
    ]
    return np.concatenate(parts, axis=0)


def permutation_pvalue(observed, null, *, alternative="two-sided", axis=0, plus_one=True, backend=None):
    """Permutation p-value with the +1 convention (floor ``1/(n_perm+1)``).

    ``null`` holds the permutation draws along ``axis`` (``(n_perm, ...)``
    by default). See :func:`recouple.kernels.stats.permutation_pvalue`.
    """
    check_choice("alternative", alternative, ALTERNATIVES)
    obs = as_array("observed", observed)
    nul = as_array("null", null)
    return call_kernel(
        _k.permutation_pvalue, obs, nul, backend=backend,
        static={"alternative": alternative, "axis": axis, "plus_one": bool(plus_one)},
    )


def fdr_bh(p, *, axis=-1, backend=None) -> np.ndarray:
    """Benjamini-Hochberg q-values along ``axis`` (NaN kept, not counted)."""
    p = as_array("p", p)
    finite = p[~np.isnan(p)]
    if ((finite < 0) | (finite > 1)).any():
        raise InputError(f"p must hold probabilities in [0, 1]; got values from {finite.min():.3g} to "
                         f"{finite.max():.3g}. Pass p-values, not statistics.")
    return call_kernel(_k.fdr_bh, p, backend=backend, static={"axis": axis})
