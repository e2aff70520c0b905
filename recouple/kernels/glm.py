"""Permutation GLM kernels: every permutation or sign flip of a batch as one
matrix product (Freedman-Lane in the batched form of METHODS 3.4), reduced on
the fly to the per-permutation maximum and per-element exceedance counts.

Notation. ``data`` holds the reduced-model residuals ``E = R_z Y`` with every
column scaled to unit sum of squares, ``(n, V)``. ``basis_x`` ``(r, n)`` is an
orthonormal basis of the tested effect after removing the nuisance space,
``basis_z`` ``(q, n)`` an orthonormal basis of the nuisance space. For a
resample ``P_k`` (permutation or sign flip) with ``e_k = P_k E``::

    u_k = basis_x @ e_k,   w_k = ||basis_z @ e_k||^2
    g_k = u_k / sqrt(1 - w_k)            (r = 1; t = g sqrt(df / (1 - g^2)))
    g_k = ||u_k||^2 / (1 - w_k)          (r > 1; F = g / (1 - g) * df / r)

``g`` is a monotone function of the full-model t (or F), so maxima and
exceedance counts are taken on ``g`` and only the ``K`` maxima are converted.
"""

from __future__ import annotations

import numpy as np

from . import pvalues as _pvalues
from ._xp import as_float, is_numpy_namespace, namespace


def resampled_rows(basis, resample, *, mode="permute"):
    """Rows of ``basis`` under every resample: ``(K, r, n)``.

    Parameters
    ----------
    basis : (r, n) array
        Row basis (e.g. ``basis_x``).
    resample : (K, n) array
        ``mode="permute"``: integer *inverse* permutations ``inv`` so that
        ``basis @ P_k E = basis[:, inv_k] @ E``. ``mode="signflip"``: signs +-1.
    mode : {"permute", "signflip"}
    """
    xp = namespace(basis, resample)
    r, n = basis.shape
    k = resample.shape[0]
    if mode == "signflip":
        return xp.astype(resample, basis.dtype)[:, None, :] * basis[None, :, :]
    flat = xp.reshape(xp.astype(resample, xp.int64), (k * n,))
    taken = xp.take(basis, flat, axis=1)  # (r, K*n)
    return xp.permute_dims(xp.reshape(taken, (r, k, n)), (1, 0, 2))


def _project(xp, rows, data):
    k, r, n = rows.shape
    out = xp.matmul(xp.reshape(rows, (k * r, n)), data)
    return xp.reshape(out, (k, r, data.shape[1]))


def monotone_statistic(data, basis_x, basis_z, resample, *, mode="permute"):
    """``g`` (monotone in the full-model t or F) for every resample: ``(K, V)``.

    Parameters
    ----------
    data : (n, V) array
        Reduced-model residuals, columns scaled to unit sum of squares
        (all-zero columns stay zero and give ``g = 0``).
    basis_x : (r, n) array
        Orthonormal basis of the tested effect, orthogonal to ``basis_z``.
    basis_z : (q, n) array or None
        Orthonormal basis of the nuisance space (``None`` or ``q = 0``: none).
    resample : (K, n) array
        Inverse permutation indices or signs (see :func:`resampled_rows`).
    mode : {"permute", "signflip"}
    """
    xp = namespace(data, basis_x, resample)
    if data.dtype not in (xp.float32, xp.float64):
        data = as_float(xp, data)
    u = _project(xp, resampled_rows(basis_x, resample, mode=mode), data)  # (K, r, V)
    if basis_z is not None and basis_z.shape[0] > 0:
        wz = _project(xp, resampled_rows(basis_z, resample, mode=mode), data)
        w = xp.sum(wz * wz, axis=1)
        # Rounding can push 1 - w a hair below the sum of squares it bounds.
        denom = xp.maximum(1.0 - w, xp.asarray(1e-300, dtype=data.dtype))
    else:
        denom = None
    if basis_x.shape[0] == 1:
        g = u[:, 0, :]
        return g if denom is None else g / xp.sqrt(denom)
    g = xp.sum(u * u, axis=1)
    return g if denom is None else g / denom


def tail_score(g, *, alternative="two-sided", rank=1):
    """Score on which "more extreme" means "larger": ``|g|``, ``g`` or ``-g``.

    F statistics (``rank > 1``) are one-sided: the score is ``g``. The
    mapping is :func:`recouple.kernels.pvalues.tail_score`.
    """
    return _pvalues.tail_score(g, "greater" if rank > 1 else alternative, xp=namespace(g))


def statistic_from_monotone(g, *, df, rank=1):
    """Convert ``g`` to t (``rank = 1``) or F (``rank > 1``) with ``df`` residual degrees of freedom."""
    xp = namespace(g)
    g = as_float(xp, g)
    if rank == 1:
        return g * xp.sqrt(df / xp.maximum(1.0 - g * g, xp.asarray(1e-300, dtype=g.dtype)))
    return g / xp.maximum(1.0 - g, xp.asarray(1e-300, dtype=g.dtype)) * (df / rank)


def permutation_batch(data, basis_x, basis_z, resample, observed_score, *, mode="permute",
                      alternative="two-sided", keep_null=False):
    """One batch of resamples reduced to what inference needs.

    Parameters
    ----------
    data, basis_x, basis_z, resample, mode
        As in :func:`monotone_statistic`.
    observed_score : (V,) array
        :func:`tail_score` of the observed ``g``.
    alternative : {"two-sided", "greater", "less"}
    keep_null : bool
        Also return the full ``(K, V)`` matrix of ``g``.

    Returns
    -------
    dict with ``max_score`` (K,) the largest score per resample, ``counts``
    (V,) how many resamples scored at least the observed score, and ``g``
    (K, V) when ``keep_null``.
    """
    xp = namespace(data, observed_score)
    rank = basis_x.shape[0]
    g = monotone_statistic(data, basis_x, basis_z, resample, mode=mode)
    if is_numpy_namespace(xp) and not keep_null:
        return _reduce_numpy(g, observed_score, alternative, rank)
    score = tail_score(g, alternative=alternative, rank=rank)
    out = {
        "max_score": xp.max(score, axis=1),
        "counts": xp.sum(xp.astype(score >= observed_score[None, :], g.dtype), axis=0),
    }
    if keep_null:
        out["g"] = g
    return out


def _reduce_numpy(g, observed_score, alternative, rank):
    """NumPy fast path of the reduction: ``g`` is a fresh temporary, so the
    tail transform is done in place and exceedances are counted without a
    float copy (this pass is memory bound and rivals the GEMM in cost)."""
    if rank == 1 and alternative == "two-sided":
        np.abs(g, out=g)
    elif rank == 1 and alternative == "less":
        np.negative(g, out=g)
    return {
        "max_score": g.max(axis=1),
        "counts": np.count_nonzero(g >= observed_score[None, :], axis=0).astype(g.dtype),
    }
