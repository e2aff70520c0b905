"""Kernels for spatial null models and map-versus-maps association.

Association under K nulls is one matrix product of standardised rows,
reduced on the fly to exceedance counts and per-null maxima. Spin
reassignment is a batched product of coordinates plus an argmax; variogram
surrogates smooth permuted maps with gathered neighbours and fit all
variograms by closed-form least squares. Everything here is batched over
nulls and written against the array API (jittable; configuration static).
"""

from __future__ import annotations

import numpy as np

from ._xp import float_dtype, is_numpy_namespace, namespace
from .pvalues import (
    TIE_RTOL,
    _count_true,
    exceedance_counts,
    tail_score,
    tail_score_inplace,
    threshold_in,
    tie_threshold,
)
from .stats import _standardize_rows, correlate_pairwise, rankdata

__all__ = [
    "gather_nulls",
    "standardize_rows",
    "association_block",
    "association_observed",
    "association_step",
    "exceedance_counts",
]


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
    if is_numpy_namespace(xp) and y.ndim == 2:
        return _standardize_rows_numpy(np.asarray(y))
    return _standardize_rows(xp, y)


def _standardize_rows_numpy(y):
    # Same result as stats._standardize_rows with fewer passes over memory.
    d = y - y.mean(axis=-1, keepdims=True)
    ss = np.einsum("ij,ij->i", d, d)[:, None]
    scale = np.maximum(np.abs(d.max(axis=-1)), np.abs(d.min(axis=-1)))[:, None]
    ok = ss > y.shape[-1] * (8 * np.finfo(y.dtype).eps * scale) ** 2
    d /= np.sqrt(np.where(ok, ss, 1.0))
    d[~ok[:, 0]] = np.nan
    return d


def _gemm_reduce_numpy(flat, target, thr, m, k, alternative):
    # NumPy fast path: the product lands in a buffer we own, so the statistic
    # is formed in place and the block is read twice (count, max).
    r = tail_score_inplace(flat @ target.T, alternative)
    r = r.reshape(m, k, -1)
    count = np.add.reduce(r >= thr[:, None, :], axis=1, dtype=np.int64).astype(r.dtype)
    return count, r.max(axis=-1)


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
    rtol=TIE_RTOL,
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
    min_count : int
        Fewest regions a pairwise-complete correlation needs.
    rtol : float
        Tie tolerance (:func:`recouple.kernels.pvalues.tie_rtol`; wider for
        float32 nulls, ``gemm`` mode).

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
        row_ok = xp.reshape(~xp.isnan(flat[:, 0]), (m, k))
        n_valid = xp.sum(xp.astype(row_ok, dt), axis=1)[:, None] + xp.zeros((m, target.shape[0]), dtype=dt)
        thr = threshold_in(tie_threshold(tail_score(r_obs, alternative, xp=xp), xp=xp, rtol=rtol), flat.dtype, xp=xp)
        if is_numpy_namespace(xp) and not store:
            count, smax = _gemm_reduce_numpy(np.asarray(flat), np.asarray(target), np.asarray(thr), m, k, alternative)
        else:
            r = xp.reshape(flat @ xp.matrix_transpose(target), (m, k, target.shape[0]))
            s = tail_score(r, alternative, xp=xp)
            count = _count_true(xp, s >= thr[:, None, :], 1, dt)
            smax = xp.max(s, axis=-1)
        null_max = xp.where(xp.isnan(smax), xp.asarray(-float("inf"), dtype=dt), smax)
    else:
        r = correlate_pairwise(flat, target, method=method, min_count=min_count)
        r = xp.reshape(r, (m, k, target.shape[0]))
        count, n_valid = exceedance_counts(r_obs, xp.permute_dims(r, (1, 0, 2)), alternative=alternative, axis=0)
        s = tail_score(r, alternative, xp=xp)
        s = xp.where(xp.isnan(s), xp.asarray(-float("inf"), dtype=dt), s)
        null_max = xp.max(s, axis=-1)
    out = {"count": count, "n_valid": n_valid, "null_max": null_max}
    if store:
        out["null"] = xp.clip(r, -1.0, 1.0)
    return out


def association_observed(x, target, *, method="pearson", mode="gemm", min_count=3):
    """Observed correlations ``(M, G)`` of source maps ``x (M, N)`` with ``target (G, N)``
    (prepared as for :func:`association_block`), by the same arithmetic as a block of one null."""
    xp = namespace(x, target)
    r0 = xp.zeros((x.shape[0], target.shape[0]), dtype=float_dtype(xp, x))
    res = association_block(x[:, None, :], target, r0, method=method, mode=mode, standardized=False,
                            alternative="two-sided", store=True, min_count=min_count)
    return res["null"][:, 0, :]


def association_step(nulls, source, target, r_obs, count, n_valid, *, gather=True, method="pearson", mode="gemm",
                     standardized=False, alternative="two-sided", store=False, min_count=3, rtol=TIE_RTOL):
    """One block of a device-resident association loop: :func:`association_block`
    of a block of nulls, its counts added to the running ``count``/``n_valid``.

    Parameters
    ----------
    nulls : (K, N) int array or (M, K, N) array
        ``gather=True``: index nulls of ``source`` (:func:`gather_nulls`; rows
        of -1 are padding and count nowhere); ``gather=False``: null maps
        (rows of NaN are padding).
    source : (M, N) array or None
        Maps the index nulls gather from (``gather=True``).
    target, r_obs : as :func:`association_block`
    count, n_valid : (M, G) arrays
        Running sums; the block's are added.

    Returns
    -------
    dict with the summed ``count``, ``n_valid``, the block's ``null_max``
    (M, K) (``-inf`` for padding) and ``null`` (M, K, G) when ``store``.
    """
    xnull = gather_nulls(source, nulls) if gather else nulls
    res = association_block(xnull, target, r_obs, method=method, mode=mode, standardized=standardized,
                            alternative=alternative, store=store, min_count=min_count, rtol=rtol)
    res["count"] = count + res["count"]
    res["n_valid"] = n_valid + res["n_valid"]
    return res


def rotate_points(coords, rotations):
    """Row-vector coordinates ``coords (n, 3)`` under rotations ``(K, 3, 3)``: ``(K, n, 3) = coords @ R``."""
    xp = namespace(coords, rotations)
    return xp.matmul(coords[None, :, :], rotations)


def nearest_on_sphere(points, rotations):
    """Spin reassignment by brute force: for each point i and rotation k, the
    index j minimising ``|p_i - p_j R_k|`` (a batched matrix product + argmin).

    Parameters
    ----------
    points : (n, 3) array
    rotations : (K, 3, 3) array

    Returns
    -------
    (K, n) int array
        Entry i names the original point whose rotated position is nearest to i
        (neuromaps / spin-test convention).

    Notes
    -----
    ``|p_i - q_j|^2 = |p_i|^2 + |q_j|^2 - 2 p_i.q_j`` and ``|q_j| = |p_j|``, so
    the argmin needs only ``|p_j|^2 - 2 p_i.(p_j R)``: one ``(n, 3) x (3, n)``
    product per rotation. Memory is ``K n^2``: batch rotations for large n.
    """
    xp = namespace(points, rotations)
    rotated = rotate_points(points, rotations)
    sq = xp.sum(points * points, axis=-1)
    cost = sq[None, None, :] - 2.0 * xp.matmul(points[None, :, :], xp.matrix_transpose(rotated))
    return xp.argmin(cost, axis=-1)


def cube_cells(queries, *, grid):
    """Cell of each direction on a cube-map grid (6 faces of ``grid x grid``).

    The dominant axis picks the face, the other two coordinates divided by
    the dominant one give the position on it (no trigonometry).

    Parameters
    ----------
    queries : (..., 3) array
    grid : int
        Cells per face edge (static).

    Returns
    -------
    (...) int array in ``[0, 6 grid^2)``: ``((2 axis + (major < 0)) grid + iu) grid + iv``.
    """
    xp = namespace(queries)
    x, y, z = queries[..., 0], queries[..., 1], queries[..., 2]
    ax, ay, az = xp.abs(x), xp.abs(y), xp.abs(z)
    fx = (ax >= ay) & (ax >= az)
    fy = ~fx & (ay >= az)
    fz = ~fx & ~fy
    major = xp.where(fx, x, xp.where(fy, y, z))
    u = xp.where(fx, y, x)
    v = xp.where(fz, y, z)
    s = (grid / 2) / xp.abs(major)
    iu = xp.clip(xp.astype(u * s + grid / 2, xp.int64), 0, grid - 1)
    iv = xp.clip(xp.astype(v * s + grid / 2, xp.int64), 0, grid - 1)
    face = 2 * (xp.astype(fy, xp.int64) + 2 * xp.astype(fz, xp.int64)) + xp.astype(major < 0, xp.int64)
    return (face * grid + iu) * grid + iv


def nearest_by_candidates(queries, points, cell_candidates, *, grid):
    """Exact nearest point of each query among precomputed per-cell candidates.

    Parameters
    ----------
    queries : (K, n, 3) array
        Query coordinates (e.g. ``p_i R^T``: pushing ``p`` through ``R``).
    points : (V, 3) array
        Reference points.
    cell_candidates : (6 grid^2, C) int array
        For each cell of the cube-map grid (:func:`cube_cells`), every point
        that can be nearest to a query in that cell, ascending, padded by
        repeating the first entry.
    grid : int
        Cells per cube-face edge (static).

    Returns
    -------
    (K, n) int array of point indices; among equally near candidates the
    lowest index.
    """
    xp = namespace(queries, points, cell_candidates)
    cell = xp.reshape(cube_cells(queries, grid=grid), (-1,))
    if is_numpy_namespace(xp):
        return _nearest_by_candidates_numpy(np.asarray(queries), np.asarray(points), np.asarray(cell_candidates),
                                            np.asarray(cell))
    cand = xp.take(cell_candidates, cell, axis=0)  # (K*n, C)
    flat = xp.reshape(cand, (-1,))
    shape = cand.shape
    # Coordinates gathered one axis at a time: contiguous (K*n, C) blocks.
    d2 = None
    for ax in range(3):
        pa = xp.reshape(xp.take(points[:, ax], flat, axis=0), shape)
        diff = pa - xp.reshape(queries[..., ax], (-1, 1))
        d2 = diff * diff if d2 is None else d2 + diff * diff
    best = xp.argmin(d2, axis=-1)
    out = xp.take_along_axis(cand, best[:, None], axis=-1)[:, 0]
    return xp.reshape(out, queries.shape[:2])


def _nearest_by_candidates_numpy(queries, points, table, cell):
    # Most cells hold one candidate: answer those by a lookup and compare
    # distances only for queries in cells with several (same arithmetic as
    # the general path, so the same winner).
    out = np.take(table[:, 0], cell)
    amb = np.flatnonzero(np.take(table[:, 1], cell) != out) if table.shape[1] > 1 else np.empty(0, np.int64)
    if amb.size:
        cand = np.take(table, cell[amb], axis=0)
        flat = cand.reshape(-1)
        q = queries.reshape(-1, 3)[amb]
        d2 = None
        for ax in range(3):
            pa = np.take(points[:, ax], flat).reshape(cand.shape)
            pa -= q[:, ax : ax + 1]
            pa *= pa
            d2 = pa if d2 is None else d2.__iadd__(pa)
        out[amb] = np.take_along_axis(cand, d2.argmin(axis=-1)[:, None], axis=-1)[:, 0]
    return out.reshape(queries.shape[:2])


def smoothed_variogram(maps, pair_i, pair_j, weights):
    """Smoothed variograms of a batch of maps.

    Parameters
    ----------
    maps : (B, N) array
    pair_i, pair_j : (P,) int arrays
        Region pairs entering the variogram.
    weights : (nh, P) array
        Gaussian distance weights, each row normalised to sum 1.

    Returns
    -------
    (B, nh) array: ``gamma(h) = sum_p w_hp (x_i - x_j)^2 / 2``.
    """
    xp = namespace(maps, weights)
    d = xp.take(maps, pair_i, axis=-1) - xp.take(maps, pair_j, axis=-1)
    return (0.5 * d * d) @ xp.matrix_transpose(weights)


def _fit(xp, gamma_perm, gamma_target):
    # Least squares gamma_target ~ alpha + beta * gamma_perm, for every (batch, delta).
    xm = xp.mean(gamma_perm, axis=-1, keepdims=True)
    ym = xp.mean(gamma_target)
    dx = gamma_perm - xm
    sxy = xp.sum(dx * (gamma_target - ym), axis=-1)
    sxx = xp.sum(dx * dx, axis=-1)
    beta = sxy / xp.where(sxx > 0, sxx, 1.0)
    alpha = ym - beta * xm[..., 0]
    res = gamma_target - (alpha[..., None] + beta[..., None] * gamma_perm)
    return alpha, beta, xp.sum(res * res, axis=-1)


def variogram_block(perm_maps, normals, smoothers, pair_i, pair_j, weights, gamma_target):
    """Burt et al. 2020 variogram-matched surrogates for a batch (brainsmash ``Base``).

    Parameters
    ----------
    perm_maps : (B, N) array
        Randomly permuted copies of the map.
    normals : (B, N) array
        Standard-normal draws for the residual term.
    smoothers : (D, N, N) array
        One row-normalised kNN kernel smoothing matrix per delta.
    pair_i, pair_j, weights : variogram pairs and weights (see :func:`smoothed_variogram`).
    gamma_target : (nh,) array
        Smoothed variogram of the map.

    Returns
    -------
    dict: ``maps`` (B, N) un-centred surrogates, ``delta_index`` (B,),
    ``alpha``, ``beta``, ``sse`` (B,) of the chosen delta.
    """
    xp = namespace(perm_maps, smoothers)
    b, n = perm_maps.shape
    nd = smoothers.shape[0]
    sm = xp.matmul(perm_maps[None, :, :], xp.matrix_transpose(smoothers))  # (D, B, N)
    g = smoothed_variogram(xp.reshape(sm, (nd * b, n)), pair_i, pair_j, weights)
    g = xp.reshape(g, (nd, b, -1))
    alpha, beta, sse = _fit(xp, g, gamma_target)  # (D, B)
    best = xp.argmin(sse, axis=0)  # (B,)
    pick = best[None, :, None]
    sm_best = xp.take_along_axis(sm, xp.broadcast_to(pick, (1, b, n)), axis=0)[0, ...]
    a = xp.take_along_axis(alpha, best[None, :], axis=0)[0, ...]
    be_ = xp.take_along_axis(beta, best[None, :], axis=0)[0, ...]
    s = xp.take_along_axis(sse, best[None, :], axis=0)[0, ...]
    surr = xp.sqrt(xp.abs(be_))[:, None] * sm_best + xp.sqrt(xp.abs(a))[:, None] * normals
    return {"maps": surr, "delta_index": best, "alpha": a, "beta": be_, "sse": s}


def moran_surrogates(coeffs, eigvecs, center, scale):
    """Moran spectral randomisation maps ``center + scale * coeffs @ U^T``.

    Parameters
    ----------
    coeffs : (K, C) array
        Randomised correlations ``r*`` of the map with the C eigenvectors.
    eigvecs : (N, C) array
        Moran eigenvectors (zero mean, unit norm).
    center, scale : () arrays
        ``mean(x)`` and ``sqrt(n - 1) * sd(x)``.

    Returns
    -------
    (K, N) array
    """
    xp = namespace(coeffs, eigvecs)
    return center + scale * (coeffs @ xp.matrix_transpose(eigvecs))
