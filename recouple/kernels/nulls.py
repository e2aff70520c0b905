"""Kernels for spatial null models and map-versus-maps association.

Association under K nulls is one matrix product of standardised rows,
reduced on the fly to exceedance counts and per-null maxima. Spin
reassignment is a batched product of coordinates plus an argmax; variogram
surrogates smooth permuted maps with gathered neighbours and fit all
variograms by closed-form least squares. Everything here is batched over
nulls and written against the array API (jittable; configuration static).
"""

from __future__ import annotations

from ._xp import float_dtype, namespace
from .stats import _standardize_rows, correlate_pairwise, rankdata

__all__ = [
    "gather_nulls",
    "standardize_rows",
    "association_block",
    "exceedance_counts",
]

_TIE_RTOL = 1e-12


def gather_nulls(x, idx):
    """Null maps ``x[..., idx]`` with dropped entries (index -1) set to NaN.

    Parameters
    ----------
    x : (M, N) array
        Maps.
    idx : (K, N) int array
        Row k, entry i names the original entry placed at i; -1 drops it.

    Returns
    -------
    (M, K, N) array
    """
    xp = namespace(x, idx)
    dt = float_dtype(xp, x)
    safe = xp.where(idx < 0, 0, idx)
    flat = xp.reshape(safe, (-1,))
    vals = xp.take(xp.astype(x, dt), flat, axis=-1)
    vals = xp.reshape(vals, (x.shape[0],) + tuple(idx.shape))
    return xp.where(idx[None, ...] < 0, xp.asarray(float("nan"), dtype=dt), vals)


def standardize_rows(y, *, method="pearson"):
    """Rows of ``y (G, N)`` ranked (Spearman) and scaled to zero mean, unit norm.

    A dot product of two such rows is their correlation. Constant rows give NaN.
    """
    xp = namespace(y)
    y = xp.astype(y, float_dtype(xp, y))
    if method == "spearman":
        y = rankdata(y, axis=-1)
    return _standardize_rows(xp, y)


def _statistic(xp, r, alternative):
    # The one-sided form of each alternative: larger is more extreme.
    if alternative == "two-sided":
        return xp.abs(r)
    if alternative == "greater":
        return r
    return -r


def _count_true(xp, hit, axis, dt):
    fn = getattr(xp, "count_nonzero", None)
    if fn is not None:
        return xp.astype(fn(hit, axis=axis), dt)
    return xp.sum(xp.astype(hit, dt), axis=axis)


def exceedance_counts(observed, null, *, alternative="two-sided", axis=0):
    """Counts of null draws as or more extreme than ``observed``, and of finite draws.

    The reduction behind :func:`recouple.kernels.stats.permutation_pvalue`
    for streamed nulls: summing the counts over blocks of draws and applying
    ``p = (count + 1) / (n_valid + 1)`` gives the same p-value as one call on
    the whole null. Ties are counted with a relative tolerance of 1e-12 (as
    ``scipy.stats.permutation_test`` does), so a null equal to the observed
    statistic up to round-off counts as extreme whatever the blocking.

    Returns
    -------
    count, n_valid : arrays of the shape of ``observed``
    """
    xp = namespace(observed, null)
    dt = float_dtype(xp, null)
    obs = xp.expand_dims(xp.astype(observed, dt), axis=axis)
    s_obs = _statistic(xp, obs, alternative)
    hit = _statistic(xp, null, alternative) >= s_obs - _TIE_RTOL * xp.abs(obs)
    valid = ~xp.isnan(null)
    count = xp.sum(xp.astype(hit & valid, dt), axis=axis)
    n_valid = xp.sum(xp.astype(valid, dt), axis=axis)
    return count, n_valid


def association_block(
    xnull,
    target,
    r_obs,
    *,
    method="pearson",
    mode="gemm",
    standardized=False,
    alternative="two-sided",
    store=False,
    min_count=3,
):
    """Correlations of a block of null maps with a block of target maps, reduced.

    Parameters
    ----------
    xnull : (M, K, N) array
        Null maps of M source maps (K nulls each).
    target : (G, N) array
        ``mode="gemm"``: target rows already passed through
        :func:`standardize_rows` (ranked for Spearman). ``mode="pairwise"``:
        raw target maps, possibly with NaN.
    r_obs : (M, G) array
        Observed correlations.
    method : {"pearson", "spearman"}
    mode : {"gemm", "pairwise"}
        ``gemm``: no NaN anywhere; one matrix product. ``pairwise``: entries
        NaN in either map of a pair are dropped for that pair.
    standardized : bool
        ``gemm`` only: the null rows are already standardised (exact
        permutations of a standardised map), so they are used as they are.
    alternative : {"two-sided", "greater", "less"}
    store : bool
        Also return the ``(M, K, G)`` null correlations.

    Returns
    -------
    dict with ``count`` and ``n_valid`` (M, G) exceedance counts,
    ``null_max`` (M, K) the most extreme statistic over the G maps
    (``-inf`` where none is defined), and ``null`` (M, K, G) when ``store``.
    """
    xp = namespace(xnull, target)
    m, k, n = xnull.shape
    dt = float_dtype(xp, xnull)
    flat = xp.reshape(xnull, (m * k, n))
    if mode == "gemm":
        # Lean path (no NaN): NaN can only come from a constant null row, so
        # validity is per null, and the (K, G) block is touched twice.
        if not standardized:
            flat = standardize_rows(flat, method=method)
        r = xp.reshape(flat @ xp.matrix_transpose(target), (m, k, target.shape[0]))
        s = _statistic(xp, r, alternative)
        thr = _statistic(xp, r_obs, alternative) - _TIE_RTOL * xp.abs(r_obs)
        count = _count_true(xp, s >= thr[:, None, :], 1, dt)
        row_ok = xp.reshape(~xp.isnan(flat[:, 0]), (m, k))
        n_valid = xp.sum(xp.astype(row_ok, dt), axis=1)[:, None] + xp.zeros_like(count)
        smax = xp.max(s, axis=-1)
        null_max = xp.where(xp.isnan(smax), xp.asarray(-float("inf"), dtype=dt), smax)
    else:
        r = correlate_pairwise(flat, target, method=method, min_count=min_count)
        r = xp.reshape(r, (m, k, target.shape[0]))
        count, n_valid = exceedance_counts(r_obs, xp.permute_dims(r, (1, 0, 2)), alternative=alternative, axis=0)
        s = _statistic(xp, r, alternative)
        s = xp.where(xp.isnan(s), xp.asarray(-float("inf"), dtype=dt), s)
        null_max = xp.max(s, axis=-1)
    out = {"count": count, "n_valid": n_valid, "null_max": null_max}
    if store:
        out["null"] = xp.clip(r, -1.0, 1.0)
    return out
