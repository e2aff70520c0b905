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

The effect and nuisance rows are stacked (:func:`stacked_basis`) so a batch
is one GEMM ``(K (r + q), n) @ (n, V)``. Two reductions of it: the
array-API :func:`streamed_batch` (fixed shapes with a validity mask, for
the device-resident loop) and the NumPy :func:`reduce_block_numpy`, which
never forms the ``(K, V)`` temporaries: it multiplies cache-sized tiles and
reduces each where it lies, with the same IEEE operations in the same order.
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


def stacked_basis(basis_x, basis_z):
    """``[basis_x; basis_z]`` ``(r + q, n)``: the rows every resample projects on."""
    if basis_z is None or basis_z.shape[0] == 0:
        return basis_x
    xp = namespace(basis_x, basis_z)
    return xp.concat([basis_x, basis_z], axis=0)


def monotone_from_products(prod, rank):
    """``g`` from the projections ``prod = rows @ data`` ``(K, r + q, V)``.

    Rows ``0..r-1`` are the effect (``u``), the rest the nuisance (``w`` is
    their sum of squares, summed in row order).
    """
    xp = namespace(prod)
    u = prod[:, :rank, :]
    if prod.shape[1] > rank:
        wz = prod[:, rank:, :]
        w = xp.sum(wz * wz, axis=1)
        # Rounding can push 1 - w a hair below the sum of squares it bounds.
        denom = xp.maximum(1.0 - w, xp.asarray(1e-300, dtype=prod.dtype))
    else:
        denom = None
    if rank == 1:
        g = u[:, 0, :]
        return g if denom is None else g / xp.sqrt(denom)
    g = xp.sum(u * u, axis=1)
    return g if denom is None else g / denom


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

    Notes
    -----
    One matrix product ``(K (r + q), n) @ (n, V)`` for the effect and the
    nuisance rows together (:func:`stacked_basis`).
    """
    xp = namespace(data, basis_x, resample)
    if data.dtype not in (xp.float32, xp.float64):
        data = as_float(xp, data)
    rows = resampled_rows(stacked_basis(basis_x, basis_z), resample, mode=mode)
    return monotone_from_products(_project(xp, rows, data), basis_x.shape[0])


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
    _pvalues.tail_score_inplace(g, alternative if rank == 1 else "greater")
    return {
        "max_score": g.max(axis=1),
        "counts": np.count_nonzero(g >= observed_score[None, :], axis=0).astype(g.dtype),
    }


# --------------------------------------------------------------------------- device-resident loop
def null_batch(data, basis, resample, *, rank, mode="permute"):
    """``g`` of every resample of a batch, ``(B, V)``, from the stacked basis
    (:func:`stacked_basis`; ``rank`` effect rows first)."""
    xp = namespace(data, basis, resample)
    rows = resampled_rows(basis, resample, mode=mode)
    return monotone_from_products(_project(xp, rows, data), rank)


def batch_rows(basis, resample, *, mode="permute"):
    """Rows of the stacked basis under every resample of a batch, resample
    major: ``(B (r + q), n)`` (rows ``i (r + q) .. (i + 1)(r + q) - 1`` are
    resample ``i``'s)."""
    xp = namespace(basis, resample)
    rows = resampled_rows(basis, resample, mode=mode)
    k, r, n = rows.shape
    return xp.reshape(rows, (k * r, n))


def reduce_tile(rows, data, valid, observed_score, counts, *, rank, alternative="two-sided"):
    """One batch of resamples on the elements of ``data``, reduced.

    Parameters
    ----------
    rows : (B (r + q), n) array
        :func:`batch_rows` of the batch.
    data : (n, T) array
        The scaled residuals of ``T`` elements (all of them, or one tile).
    valid : (B,) bool array
        Which resamples are real; padding never counts and its maxima are ``-inf``.
    observed_score : (T,) array
        Tie threshold of the observed score of those elements.
    counts : (T,) array
        Running exceedance counts of those elements.
    rank : int
    alternative : {"two-sided", "greater", "less"}

    Returns
    -------
    counts : (T,) updated counts
    max_score : (B,) largest score per resample over these elements
    """
    xp = namespace(rows, data)
    b = valid.shape[0]
    prod = xp.reshape(xp.matmul(rows, data), (b, rows.shape[0] // b, data.shape[1]))
    g = monotone_from_products(prod, rank)
    score = tail_score(g, alternative=alternative, rank=rank)
    hit = (score >= observed_score[None, :]) & valid[:, None]
    counts = counts + xp.sum(xp.astype(hit, counts.dtype), axis=0)
    low = xp.asarray(-float("inf"), dtype=g.dtype)
    return counts, xp.where(valid, xp.max(score, axis=1), low)


def streamed_batch(data, basis, resample, valid, observed_score, counts, *, rank, mode="permute",
                   alternative="two-sided"):
    """One batch of the device-resident resample loop (fixed shapes, padded).

    Parameters
    ----------
    data : (n, V) array
        As in :func:`monotone_statistic`.
    basis : (r + q, n) array
        :func:`stacked_basis` of the effect and nuisance bases.
    resample : (B, n) array
        Inverse permutations or signs; rows past the last real resample are
        padding (any valid resample).
    valid : (B,) bool array
        Which rows are real resamples; padding never counts and its maxima
        are ``-inf``.
    observed_score : (V,) array
        Tie threshold of the observed score (as in :func:`permutation_batch`).
    counts : (V,) array
        Running exceedance counts; returned with this batch added.
    rank : int
        ``r``, the number of effect rows of ``basis``.
    mode, alternative
        As in :func:`permutation_batch`.

    Returns
    -------
    counts : (V,) updated counts
    max_score : (B,) largest score per resample (``-inf`` for padding)

    Notes
    -----
    :func:`batch_rows` then :func:`reduce_tile` on all elements at once; a
    loop that tiles the elements calls the two itself.
    """
    return reduce_tile(batch_rows(basis, resample, mode=mode), data, valid, observed_score, counts, rank=rank,
                       alternative=alternative)


# --------------------------------------------------------------------------- fused NumPy path
#: Target bytes of one element tile of the data (``n x tile`` floats) and of
#: one product tile (``sub_batch (r + q) x tile`` floats): both stay in a
#: core's L2 cache while the tail transform, maximum and counts run on them.
TILE_DATA_BYTES = 2**18
TILE_PRODUCT_BYTES = 2**19


def tile_plan(n, rows_per_resample, v, *, itemsize=8):
    """``(tile, sub_batch)``: elements per tile and resamples per product for
    :func:`reduce_block_numpy` (multiples of 8 for the GEMM micro-kernels)."""
    tile = int(TILE_DATA_BYTES // (itemsize * max(n, 1)))
    tile = max(64, min(4096, tile // 32 * 32))
    tile = min(tile, max(1, v))
    sub = int(TILE_PRODUCT_BYTES // (itemsize * max(rows_per_resample, 1) * tile))
    return tile, max(8, sub // 8 * 8)


def reduce_block_numpy(data, basis, resample, observed_score, *, rank, mode="permute", alternative="two-sided",
                       tile=None, sub_batch=None, workers=1, run=None):
    """:func:`permutation_batch` on NumPy without the ``(K, V)`` temporaries.

    The product is formed tile by tile (``sub_batch`` resamples x ``tile``
    elements, :func:`tile_plan`) into buffers that stay in cache, and every
    tile is reduced where it lies: nuisance sum of squares, ``g``, tail
    score, maximum per resample and exceedance counts per element, all in
    place. Each step is the same IEEE operation as in
    :func:`monotone_from_products`; only the products come from GEMMs of
    other shapes (equal to the last bits).

    Parameters
    ----------
    data : (n, V) float array
    basis : (r + q, n) array
        :func:`stacked_basis`.
    resample : (K, n) array
        Inverse permutations or signs.
    observed_score : (V,) array
        Tie threshold of the observed score (``+inf``: never counted).
    rank : int
    mode, alternative
        As in :func:`permutation_batch`.
    tile, sub_batch : int, optional
        Default :func:`tile_plan`.
    workers : int
        Number of tile groups handed to ``run``.
    run : callable ``(fn, items) -> list``, optional
        Maps ``fn`` over the tile groups (e.g. on threads; the groups write
        disjoint elements). Default: in order, here.

    Returns
    -------
    dict with ``max_score`` (K,) and ``counts`` (V,) as :func:`permutation_batch`.
    """
    n, v = data.shape
    per = basis.shape[0]
    k = resample.shape[0]
    rows = np.ascontiguousarray(resampled_rows(basis, resample, mode=mode).reshape(k * per, n), dtype=data.dtype)
    if tile is None or sub_batch is None:
        t_plan, s_plan = tile_plan(n, per, v, itemsize=data.dtype.itemsize)
        tile = tile or t_plan
        sub_batch = sub_batch or s_plan
    sub = max(1, min(int(sub_batch), k))
    tiles = [(s, min(s + tile, v)) for s in range(0, v, tile)]
    workers = max(1, min(int(workers), len(tiles)))
    counts = np.empty(v, dtype=np.float64)  # whole numbers: exact at any precision of the data
    count_dtype = np.uint16 if sub < 2**16 else np.int64

    def group(members):
        prod = np.empty(sub * per * tile, dtype=data.dtype)
        work = np.empty(sub * tile, dtype=data.dtype)
        hits = np.empty(sub * tile, dtype=bool)
        best = np.full(k, -np.inf, dtype=data.dtype)
        for s, e in members:
            c = np.zeros(e - s, dtype=np.int64)
            for b0 in range(0, k, sub):
                b1 = min(b0 + sub, k)
                score = _tile_score(rows[b0 * per : b1 * per], data[:, s:e], rank, per, alternative, prod, work)
                np.maximum(best[b0:b1], score.max(axis=1), out=best[b0:b1])
                h = hits[: score.size].reshape(score.shape)
                np.greater_equal(score, observed_score[s:e], out=h)
                c += h.sum(axis=0, dtype=count_dtype)
            counts[s:e] = c
        return best

    members = [tiles[i::workers] for i in range(workers)]
    parts = run(group, members) if run is not None and workers > 1 else [group(m) for m in members]
    best = parts[0]
    for other in parts[1:]:
        np.maximum(best, other, out=best)
    return {"max_score": best, "counts": counts}


def _tile_score(rows, data, rank, per, alternative, prod, work):
    """Tail score of one product tile, formed in ``prod``/``work`` (see
    :func:`reduce_block_numpy`); a view into one of them."""
    m, vt = rows.shape[0], data.shape[1]
    b = m // per
    p = prod[: m * vt].reshape(m, vt)
    np.matmul(rows, data, out=p)
    p3 = p.reshape(b, per, vt)
    if per > rank:  # w = sum of squares of the nuisance rows, in row order
        w = work[: b * vt].reshape(b, vt)
        x = p3[:, rank, :]
        np.multiply(x, x, out=w)
        for j in range(rank + 1, per):
            x = p3[:, j, :]
            np.multiply(x, x, out=x)
            np.add(w, x, out=w)
        np.subtract(1.0, w, out=w)
        np.maximum(w, 1e-300, out=w)
    else:
        w = None
    if rank == 1:
        if w is None:
            g = p3[:, 0, :]
        else:
            np.sqrt(w, out=w)
            np.divide(p3[:, 0, :], w, out=w)
            g = w
        return _pvalues.tail_score_inplace(g, alternative)
    g = p3[:, 0, :]
    np.multiply(g, g, out=g)
    for j in range(1, rank):
        x = p3[:, j, :]
        np.multiply(x, x, out=x)
        np.add(g, x, out=g)
    if w is not None:
        np.divide(g, w, out=g)
    return g
