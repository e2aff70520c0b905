"""Core statistics kernels: ranks, z-scores, masked row-wise correlation,
one-vs-many correlation as a matrix product, permutation p-values and FDR.

All functions are batched over leading axes and work in any array-API
namespace. A NumPy fast path for ranking sits behind an explicit
``is_numpy_namespace`` branch; every other namespace uses the portable code,
which on JAX and CuPy orders by sorts of packed integer keys (see the notes
above :func:`_can_bitcast`).
"""

from __future__ import annotations

import array_api_compat
import numpy as np

from ._xp import as_float, cumulative_min, float_dtype, is_numpy_namespace, namespace, take_along
from .pvalues import TIE_RTOL, permutation_pvalue  # noqa: F401  (the one p-value rule lives in pvalues)

__all__ = [
    "rankdata",
    "zscore",
    "pearson_rows",
    "spearman_rows",
    "correlate",
    "correlate_pairwise",
    "permutation_pvalue",
    "fdr_bh",
]


def _valid_mask(xp, x, mask):
    valid = ~xp.isnan(x)
    if mask is not None:
        valid = valid & xp.astype(mask, xp.bool, copy=False)
    return valid


def _inverse_permutation(xp, order, axis):
    # argsort of a permutation is its inverse (array-API portable; no scatter needed)
    return xp.argsort(order, axis=axis, stable=True)


# --- ranks in array-API namespaces -------------------------------------------------------
#
# One ordering of each slice, tie groups from the sorted values (group start and end by a
# running max / min of group boundaries, average rank = (start + end) / 2 + 1), and one
# move back to the original positions. Where the namespace can reinterpret float bits as
# integers (JAX, CuPy), the ordering sorts int64 keys alone -- the float bits mapped to
# integers of the same order with the position packed into the low bits -- because a
# one-operand integer sort is several times faster than an argsort (a key-value sort with
# a float comparator) on XLA's CPU backend. A float64 key and a position do not fit in 64
# bits together, so float64 takes two such sorts (least significant digit first: the low
# bits of the key, then the high bits); float32 takes one.


def _can_bitcast(xp, x):
    # float bits readable as integers, and 64-bit integers (JAX has them only with x64 enabled);
    # NumPy arrays reach this only from tests (rankdata takes its NumPy fast path first)
    return ((array_api_compat.is_jax_namespace(xp) or array_api_compat.is_cupy_namespace(xp)
             or is_numpy_namespace(xp)) and x.dtype in (xp.float32, xp.float64)
            and xp.result_type(xp.int64) == xp.int64)


def _sortable_bits(xp, x):
    """Integers ordered as the floats ``x`` (no NaN): the IEEE bits with the
    magnitude bits of negative numbers reversed; -0.0 maps to +0.0's integer
    (they compare equal as floats, so they must tie)."""
    itype = xp.int64 if x.dtype == xp.float64 else xp.int32
    width = 64 if itype == xp.int64 else 32
    bits = x.view(itype)  # a bit-level reinterpretation (no array-API spelling exists)
    mono = xp.where(bits < 0, bits ^ (2 ** (width - 1) - 1), bits)
    neg_zero = xp.asarray(-(2 ** (width - 1)), dtype=itype)
    return xp.where(bits == neg_zero, xp.zeros_like(bits), mono)


def _packed_sort_order(xp, x, valid, b):
    """Ascending order of ``x`` along the last axis (entries not ``valid``
    last, ties by position) and, for each sorted entry after the first,
    whether it equals the one before it. ``b`` bits hold a position."""
    n = x.shape[-1]
    mask = (1 << b) - 1
    idx = xp.arange(n, dtype=xp.int64)
    mono = xp.astype(_sortable_bits(xp, x), xp.int64)
    if x.dtype == xp.float32:
        # a 32-bit key and the position fit in one int64; invalid entries get a key above every float
        s = xp.sort((xp.where(valid, mono, xp.asarray(2 ** 31, dtype=xp.int64)) << b) | idx, axis=-1)
        key = s >> b
        return s & mask, key[..., 1:] == key[..., :-1]
    # float64: sort by the low b key bits (ties by position), then by the high bits with
    # each entry's place in the first sort as the tie-break: the order of (key, position)
    lo = mono & mask
    hi_max = (2 ** 63 - 1) >> b  # above the high bits of every float, +inf included
    hi = xp.where(valid, mono >> b, xp.asarray(hi_max, dtype=xp.int64))
    narrow = xp.int32 if 2 * b <= 31 else xp.int64  # a narrower sort is faster
    first = xp.sort((xp.astype(lo, narrow) << b) | xp.astype(idx, narrow), axis=-1)
    hi1 = take_along(xp, hi, xp.astype(first & mask, xp.int64), axis=-1)
    second = xp.sort((hi1 << b) | idx, axis=-1)
    back = take_along(xp, first, second & mask, axis=-1)  # (low bits, position) in final order
    hi2 = second >> b
    lo2 = back >> b
    same = (hi2[..., 1:] == hi2[..., :-1]) & (lo2[..., 1:] == lo2[..., :-1])
    return xp.astype(back & mask, xp.int64), same


def _running(xp, x, op, fill):
    """Running ``op`` (``xp.maximum`` or ``xp.minimum``) along the last axis:
    the ufunc's ``accumulate`` on NumPy and JAX, else a log-depth
    (Hillis-Steele) scan of slices and ``op``."""
    if is_numpy_namespace(xp) or array_api_compat.is_jax_namespace(xp):
        return op.accumulate(x, axis=-1)
    n = x.shape[-1]
    s = 1
    while s < n:
        pad = xp.full(x.shape[:-1] + (s,), fill, dtype=x.dtype)
        x = op(x, xp.concat([pad, x[..., :n - s]], axis=-1))
        s *= 2
    return x


def _unpermute(xp, values, order, b):
    """``out[..., order[..., j]] = values[..., j]`` for a permutation ``order``
    of the last axis: one scatter on JAX, else a gather through the inverse
    permutation (a sort of packed integers where ``b`` is given, else an
    argsort)."""
    n = values.shape[-1]
    if array_api_compat.is_jax_namespace(xp):
        rows = values.size // n
        offset = xp.reshape(xp.arange(rows, dtype=order.dtype) * n, values.shape[:-1] + (1,))
        flat = xp.reshape(order + offset, (-1,))
        out = xp.zeros((values.size,), dtype=values.dtype)
        # .at is JAX's functional scatter (no array-API spelling); order is a permutation
        out = out.at[flat].set(xp.reshape(values, (-1,)), unique_indices=True, mode="promise_in_bounds")
        return xp.reshape(out, values.shape)
    if b is None:
        inverse = xp.argsort(order, axis=-1, stable=True)
    else:
        idx = xp.arange(n, dtype=order.dtype)
        inverse = xp.sort((order << b) | idx, axis=-1) & ((1 << b) - 1)
    return take_along(xp, values, inverse, axis=-1)


def _ranks_last_axis(xp, x, valid, *, packed=None):
    """Average ranks along the last axis (NaN where not ``valid``) in any
    namespace: one ordering (:func:`_packed_sort_order` where float bits can
    be read as integers, else a stable argsort), tie groups from the sorted
    values, one move back. ``packed`` forces (True) or forbids (False) the
    integer-key ordering."""
    n = x.shape[-1]
    nan = xp.asarray(float("nan"), dtype=x.dtype)
    if x.size == 0:
        return xp.where(valid, x, nan)
    b = max(1, (n - 1).bit_length())
    if packed is None:
        packed = _can_bitcast(xp, x)
    if packed:
        order, same = _packed_sort_order(xp, x, valid, b)
    else:
        # excluded entries as NaN: sorted after every number, +inf included
        key = xp.where(valid, x, nan)
        order = xp.argsort(key, axis=-1, stable=True)
        s = take_along(xp, key, order, axis=-1)
        same = s[..., 1:] == s[..., :-1]
    # tie groups in sorted order: start = last group start so far, end = next group end
    itype = xp.int32 if n < 2 ** 31 else xp.int64
    pos = xp.broadcast_to(xp.arange(n, dtype=itype), order.shape)
    first = xp.ones(order.shape[:-1] + (1,), dtype=xp.bool)
    new = xp.concat([first, ~same], axis=-1)
    last = xp.concat([~same, first], axis=-1)
    start = _running(xp, xp.where(new, pos, 0), xp.maximum, 0)
    end = xp.flip(_running(xp, xp.flip(xp.where(last, pos, n - 1), axis=-1), xp.minimum, n - 1), axis=-1)
    r_sorted = xp.astype(start + end, x.dtype) / 2 + 1
    ranks = _unpermute(xp, r_sorted, order, b if packed else None)
    return xp.where(valid, ranks, nan)


def _rankdata_portable(xp, x, valid, axis):
    last = axis in (-1, x.ndim - 1)
    if not last:
        x = xp.moveaxis(x, axis, -1)
        valid = xp.moveaxis(valid, axis, -1)
    ranks = _ranks_last_axis(xp, x, valid)
    return ranks if last else xp.moveaxis(ranks, -1, axis)


def _ranks_last_axis_numpy(x, valid, *, fill_invalid=True, invalid_is_inf=False):
    """Average ranks along the last axis (NaN where not valid, unless
    ``fill_invalid`` is False) and whether any valid entries tie. One argsort;
    tie groups from running max/min of group boundaries, skipped when nothing
    ties. Gathers and scatters use flat indices (1-D fancy indexing is several
    times faster than take/put_along_axis). ``invalid_is_inf``: the entries
    that are not valid already hold +inf."""
    n = x.shape[-1]
    if x.size == 0:  # no entries (an empty axis, or no rows)
        return np.full(x.shape, np.nan, dtype=x.dtype), False
    key = x if invalid_is_inf else np.where(valid, x, np.inf)
    order = np.argsort(key, axis=-1)
    flat = order + (np.arange(key.size // max(n, 1), dtype=order.dtype) * n).reshape(key.shape[:-1] + (1,))
    flat = flat.reshape(-1)
    s = key.reshape(-1)[flat].reshape(key.shape)
    same = s[..., 1:] == s[..., :-1]
    ties = bool(np.any(same & np.isfinite(s[..., 1:])))
    if ties:
        pos = np.broadcast_to(np.arange(n), s.shape)
        new = np.ones(s.shape, dtype=bool)
        new[..., 1:] = ~same
        start = np.maximum.accumulate(np.where(new, pos, 0), axis=-1)
        last = np.ones(s.shape, dtype=bool)
        last[..., :-1] = new[..., 1:]
        end = np.flip(np.minimum.accumulate(np.flip(np.where(last, pos, n), -1), axis=-1), -1)
        r_sorted = ((start + end).astype(x.dtype) / 2 + 1).reshape(-1)
    else:
        r_sorted = np.tile(np.arange(1, n + 1, dtype=x.dtype), key.size // max(n, 1))
    ranks = np.empty(key.size, dtype=x.dtype)
    ranks[flat] = r_sorted
    ranks = ranks.reshape(key.shape)
    return (np.where(valid, ranks, np.nan) if fill_invalid else ranks), ties


def _rankdata_numpy(x, valid, axis):
    x = np.moveaxis(np.asarray(x), axis, -1)
    valid = np.moveaxis(np.asarray(valid), axis, -1)
    ranks, _ = _ranks_last_axis_numpy(x, valid)
    return np.moveaxis(ranks, -1, axis)


def rankdata(x, *, axis=-1, mask=None):
    """Average ranks (ties share the mean of the ranks they span), 1-based.

    Parameters
    ----------
    x : (..., M) array
        Values to rank along ``axis``. NaN entries are treated as missing.
    axis : int
        Axis along which to rank.
    mask : (..., M) bool array, optional
        Entries to rank; others are excluded and returned as NaN.

    Returns
    -------
    ranks : (..., M) float array
        Ranks among the valid entries of each slice; NaN where excluded.

    Notes
    -----
    Equals ``scipy.stats.rankdata(x, method="average", nan_policy="omit")``
    applied to the valid entries of each slice.
    """
    xp = namespace(x)
    x = as_float(xp, x)
    valid = _valid_mask(xp, x, mask)
    if is_numpy_namespace(xp):
        return _rankdata_numpy(x, valid, axis)
    return _rankdata_portable(xp, x, valid, axis)


def zscore(x, *, axis=-1, ddof=1):
    """Standardise along ``axis``: ``(x - mean) / std`` with ``ddof`` (NaN where the std is 0)."""
    xp = namespace(x)
    x = as_float(xp, x)
    n = x.shape[axis]
    mu = xp.mean(x, axis=axis, keepdims=True)
    d = x - mu
    ss = xp.sum(d * d, axis=axis, keepdims=True)
    ok = ss > _constant_threshold(xp, x, n, axis)
    sd = xp.sqrt(xp.where(ok, ss, 1.0) / (n - ddof))
    return xp.where(ok, d / sd, xp.asarray(float("nan"), dtype=x.dtype))


def _constant_threshold(xp, x, n, axis, valid=None, *, absmax=None):
    # Sum of squared deviations below this is round-off, not variation.
    # ``absmax``: the largest |x| over the valid entries, when already known.
    eps = xp.finfo(x.dtype).eps
    if absmax is None:
        absx = xp.abs(x) if valid is None else xp.where(valid, xp.abs(x), 0.0)
        absmax = xp.max(absx, axis=axis, keepdims=True)
    return n * (8 * eps * absmax) ** 2


def _pow2_scale(xp, absmax):
    """A power of two ``2**-e`` that brings ``absmax`` into [1, 2).

    Correlations are scale-free; multiplying a slice by this before any sum
    keeps the sums of squares and products (and their product under the
    square root) away from overflow near 1e150+ and underflow near 1e-150-.
    A power of two scales every later rounding exactly, so results for
    ordinary data keep their bytes. ``e`` is clipped so the factor stays a
    normal number (some backends flush subnormals to zero); a zero or
    non-finite ``absmax`` gives 1 (the slice is constant or already NaN/inf).
    """
    dt = absmax.dtype
    lim = float(-np.log2(xp.finfo(dt).smallest_normal))  # 1022 (float64), 126 (float32)
    ok = xp.isfinite(absmax) & (absmax > 0)
    e = xp.clip(xp.floor(xp.log2(xp.where(ok, absmax, 1.0))), -lim, lim)
    return xp.pow(xp.asarray(2.0, dtype=dt), -e)


def _nan_result(xp, shape, dt):
    return xp.full(shape, float("nan"), dtype=dt)


def pearson_rows(a, b, *, mask=None, min_count=3, axis=-1):
    """Pearson correlation between matching slices of ``a`` and ``b``.

    Parameters
    ----------
    a, b : (..., M) arrays
        Broadcastable inputs; correlation is taken along ``axis``.
    mask : (..., M) bool array, optional
        Entries to use. Entries where ``a`` or ``b`` is NaN are always dropped
        (pairwise-complete).
    min_count : int
        Fewest usable entries for a defined correlation; fewer gives NaN.

    Returns
    -------
    r : (...) float array
        Correlation in [-1, 1]; NaN where undefined (too few entries or a
        constant slice).
    """
    xp = namespace(a, b)
    dt = xp.result_type(float_dtype(xp, a), float_dtype(xp, b))
    a = xp.astype(a, dt, copy=False)
    b = xp.astype(b, dt, copy=False)
    a, b = xp.broadcast_arrays(a, b)
    if mask is not None:
        mask, _ = xp.broadcast_arrays(xp.astype(mask, xp.bool, copy=False), a)
    if a.shape[axis] == 0:  # no entries: too few for a correlation
        return _nan_result(xp, tuple(s for i, s in enumerate(a.shape) if i != axis % a.ndim), dt)
    valid = ~(xp.isnan(a) | xp.isnan(b))
    if mask is not None:
        valid = valid & mask
    zero = xp.asarray(0.0, dtype=dt)
    w = xp.astype(valid, dt)
    n = xp.sum(w, axis=axis, keepdims=True)
    safe_n = xp.where(n > 0, n, 1.0)
    a0 = xp.where(valid, a, zero)
    b0 = xp.where(valid, b, zero)
    # scale each slice by a power of two before any sum (see _pow2_scale)
    ma = xp.max(xp.abs(a0), axis=axis, keepdims=True)
    mb = xp.max(xp.abs(b0), axis=axis, keepdims=True)
    sa = _pow2_scale(xp, ma)
    sb = _pow2_scale(xp, mb)
    a0 = a0 * sa
    b0 = b0 * sb
    da = xp.where(valid, a0 - xp.sum(a0, axis=axis, keepdims=True) / safe_n, zero)
    db = xp.where(valid, b0 - xp.sum(b0, axis=axis, keepdims=True) / safe_n, zero)
    saa = xp.sum(da * da, axis=axis, keepdims=True)
    sbb = xp.sum(db * db, axis=axis, keepdims=True)
    sab = xp.sum(da * db, axis=axis, keepdims=True)
    defined = (
        (n >= min_count)
        & (saa > _constant_threshold(xp, a0, n, axis, absmax=ma * sa))
        & (sbb > _constant_threshold(xp, b0, n, axis, absmax=mb * sb))
    )
    den = xp.sqrt(xp.where(defined, saa * sbb, 1.0))
    r = xp.clip(sab / den, -1.0, 1.0)
    r = xp.where(defined, r, xp.asarray(float("nan"), dtype=dt))
    return xp.squeeze(r, axis=axis)


def spearman_rows(a, b, *, mask=None, min_count=3, axis=-1):
    """Spearman correlation between matching slices: Pearson on average ranks
    computed within the entries that are valid in both ``a`` and ``b``.

    Shapes and NaN handling as :func:`pearson_rows`.
    """
    xp = namespace(a, b)
    dt = xp.result_type(float_dtype(xp, a), float_dtype(xp, b))
    a = xp.astype(a, dt, copy=False)
    b = xp.astype(b, dt, copy=False)
    a, b = xp.broadcast_arrays(a, b)
    if mask is not None:
        mask, _ = xp.broadcast_arrays(xp.astype(mask, xp.bool, copy=False), a)
    if a.shape[axis] == 0:  # no entries: too few for a correlation
        return _nan_result(xp, tuple(s for i, s in enumerate(a.shape) if i != axis % a.ndim), dt)
    if is_numpy_namespace(xp) and a.ndim > 1:
        base = np.broadcast_to(True if mask is None else np.asarray(mask, dtype=bool), a.shape)
        a, b, base = (np.moveaxis(np.asarray(v), axis, -1) for v in (a, b, base))
        return spearman_packed_numpy(a, b, np.flatnonzero(base), min_count)[0]
    valid = ~(xp.isnan(a) | xp.isnan(b))
    if mask is not None:
        valid = valid & xp.astype(mask, xp.bool, copy=False)
    if is_numpy_namespace(xp):  # one slice
        ra = rankdata(a, axis=axis, mask=valid)
        rb = rankdata(b, axis=axis, mask=valid)
        return pearson_rows(ra, rb, mask=valid, min_count=min_count, axis=axis)
    if axis not in (-1, a.ndim - 1):
        a, b, valid = (xp.moveaxis(v, axis, -1) for v in (a, b, valid))
    ra = _ranks_last_axis(xp, a, valid)
    rb = _ranks_last_axis(xp, b, valid)
    return _pearson_of_ranks(xp, ra, rb, valid, min_count)


def _pearson_of_ranks(xp, ra, rb, valid, min_count):
    """Pearson r along the last axis of average ranks taken over the same
    ``valid`` entries of each slice. Their mean is (k + 1) / 2 for k valid
    entries, and every deviation, square and sum is a multiple of 1/4 held
    exactly (slices shorter than 2**17), so a slice is constant exactly when
    its sum of squares is 0 and r is rounded only in the last three steps."""
    k = xp.sum(xp.astype(valid, ra.dtype), axis=-1, keepdims=True)
    mean = (k + 1) / 2
    zero = xp.asarray(0.0, dtype=ra.dtype)
    da = xp.where(valid, ra - mean, zero)
    db = xp.where(valid, rb - mean, zero)
    saa = xp.sum(da * da, axis=-1)
    sbb = xp.sum(db * db, axis=-1)
    sab = xp.sum(da * db, axis=-1)
    defined = (k[..., 0] >= min_count) & (saa > 0) & (sbb > 0)
    r = xp.clip(sab / xp.sqrt(xp.where(defined, saa * sbb, 1.0)), -1.0, 1.0)
    return xp.where(defined, r, xp.asarray(float("nan"), dtype=ra.dtype))


def _spearman_from_permutation_ranks(ra, rb, valid, min_count):
    # Without ties the valid ranks of each slice are a permutation of 1..k, so
    # rho = 1 - 6 sum(d^2) / (k (k^2 - 1)) exactly (no centring or norms).
    k = valid.sum(axis=-1)
    d = np.where(valid, ra - rb, 0.0)
    kf = k.astype(ra.dtype)
    den = np.where(k >= 2, kf * (kf * kf - 1.0), 1.0)
    rho = 1.0 - 6.0 * np.einsum("...i,...i->...", d, d) / den
    return np.where(k >= max(min_count, 2), np.clip(rho, -1.0, 1.0), np.nan)


def spearman_packed_numpy(a, b, src, min_count):
    """Spearman per row (last axis) of ``a``, ``b`` over the entries at flat
    indices ``src`` (ascending); NumPy only.

    Each row's entries are packed to the front of a narrow block
    (:func:`compact_rows_numpy`), pairs with a NaN dropped (checked on the
    packed values only), each input ranked with one argsort, and rho taken in
    closed form when nothing ties (Pearson of the average ranks otherwise).
    Returns rho (NaN below ``min_count``) and the number of ``src`` entries
    per row.
    """
    (ac, bc), valid, counts = compact_rows_numpy((a, b), src)
    if np.isnan(np.sum(ac)) or np.isnan(np.sum(bc)):
        keep = ~(np.isnan(a.reshape(-1)[src]) | np.isnan(b.reshape(-1)[src]))
        (ac, bc), valid, _ = compact_rows_numpy((a, b), src[keep])
    # entries that are not valid hold +inf: they sort last, and both paths mask them
    ra, ties_a = _ranks_last_axis_numpy(ac, valid, fill_invalid=False, invalid_is_inf=True)
    rb, ties_b = _ranks_last_axis_numpy(bc, valid, fill_invalid=False, invalid_is_inf=True)
    if ties_a or ties_b:
        return pearson_rows(ra, rb, mask=valid, min_count=min_count, axis=-1), counts
    return _spearman_from_permutation_ranks(ra, rb, valid, min_count), counts


def compact_rows_numpy(arrays, src, *, dense=None, max_fill=0.75):
    """Gather the entries at flat indices ``src`` (ascending) of same-shaped
    ``arrays`` (..., M) into rows padded with +inf to the longest row.

    Linear time: each entry moves to its row's start in the padded output
    plus the number of earlier entries in that row. Returns the padded
    arrays (..., W), their validity mask and the count per row. When the
    longest row holds more than ``max_fill`` of M, the arrays keep their
    width (entries not in ``src`` set to +inf); ``dense`` is then the mask of
    ``src`` if the caller has it.
    """
    shape = arrays[0].shape
    m = shape[-1]
    n_rows = arrays[0].size // max(m, 1)
    counts = np.diff(np.searchsorted(src, np.arange(n_rows + 1, dtype=np.int64) * m)).reshape(shape[:-1])
    width = int(counts.max()) if counts.size else 0
    if width >= max_fill * m:
        if dense is None:
            dense = np.zeros(arrays[0].size, dtype=bool)
            dense[src] = True
            dense = dense.reshape(shape)
        return tuple(np.where(dense, x, np.inf) for x in arrays), dense, counts
    width = max(width, 1)
    flat_counts = counts.reshape(-1)
    before = np.cumsum(flat_counts) - flat_counts  # entries in earlier rows
    shift = np.arange(n_rows, dtype=np.int64) * width - before
    dest = np.arange(src.size, dtype=np.int64) + np.repeat(shift, flat_counts)
    out = []
    for x in arrays:
        c = np.full(n_rows * width, np.inf, dtype=x.dtype)
        c[dest] = x.reshape(-1)[src]
        out.append(c.reshape(shape[:-1] + (width,)))
    valid = np.arange(width) < counts[..., None]
    return tuple(out), valid, counts


def _standardize_rows(xp, x):
    """Rows centred and scaled to unit norm (so a dot product is Pearson's r).

    Each row is first scaled by a power of two (:func:`_pow2_scale`) so the
    sum of squares neither overflows nor underflows at extreme magnitudes."""
    m = xp.max(xp.abs(x), axis=-1, keepdims=True)
    s = _pow2_scale(xp, m)
    x = x * s
    d = x - xp.mean(x, axis=-1, keepdims=True)
    ss = xp.sum(d * d, axis=-1, keepdims=True)
    ok = ss > _constant_threshold(xp, x, x.shape[-1], -1, absmax=m * s)
    return xp.where(ok, d / xp.sqrt(xp.where(ok, ss, 1.0)), xp.asarray(float("nan"), dtype=x.dtype))


def _as_map_rows(x, Y):
    # (N,) or (K, N) and (N,) or (G, N) -> 2-D rows in a common float dtype.
    xp = namespace(x, Y)
    dt = xp.result_type(float_dtype(xp, x), float_dtype(xp, Y))
    x2 = xp.astype(x, dt, copy=False)
    Y2 = xp.astype(Y, dt, copy=False)
    x_1d, y_1d = x2.ndim == 1, Y2.ndim == 1
    return xp, (x2[None, :] if x_1d else x2), (Y2[None, :] if y_1d else Y2), x_1d, y_1d


def _drop_map_axes(r, x_1d, y_1d):
    if y_1d:
        r = r[:, 0]
    return r[0, ...] if x_1d else r


def correlate(x, Y, *, method="pearson"):
    """Correlate each row of ``x`` with each row of ``Y`` by one matrix product.

    Parameters
    ----------
    x : (K, N) or (N,) array
        Maps without NaN.
    Y : (G, N) or (N,) array
        Maps without NaN.
    method : {"pearson", "spearman"}

    Returns
    -------
    r : (K, G) array, with the axes of 1-D inputs dropped
        NaN for a constant map.

    Notes
    -----
    Rows are standardised once; ``r = Zx @ Zy.T``. Spearman ranks each row
    first. Inputs with NaN go through :func:`correlate_pairwise`.
    """
    xp, x2, Y2, x_1d, y_1d = _as_map_rows(x, Y)
    if x2.shape[-1] == 0:  # no entries: too few for a correlation
        return _drop_map_axes(_nan_result(xp, (x2.shape[0], Y2.shape[0]), x2.dtype), x_1d, y_1d)
    if method == "spearman":
        x2 = rankdata(x2, axis=-1)
        Y2 = rankdata(Y2, axis=-1)
    zx = _standardize_rows(xp, x2)
    zy = _standardize_rows(xp, Y2)
    r = xp.clip(zx @ xp.matrix_transpose(zy), -1.0, 1.0)
    return _drop_map_axes(r, x_1d, y_1d)


def correlate_pairwise(x, Y, *, method="pearson", min_count=3):
    """Pairwise-complete correlation of each row of ``x`` with each row of ``Y``.

    Entries that are NaN in either map of a pair are dropped for that pair.
    Pearson uses masked sums computed as five matrix products (no (K, G, N)
    intermediate); Spearman re-ranks within each pair's common entries, which
    needs a (K, G, N) intermediate: batch ``x`` to bound memory.

    Shapes as :func:`correlate`.
    """
    xp, x2, Y2, x_1d, y_1d = _as_map_rows(x, Y)
    if x2.shape[-1] == 0:  # no entries: too few for a correlation
        return _drop_map_axes(_nan_result(xp, (x2.shape[0], Y2.shape[0]), x2.dtype), x_1d, y_1d)
    if method == "spearman":
        r = spearman_rows(x2[:, None, :], Y2[None, :, :], min_count=min_count)
    else:
        r = _pearson_masked_gemm(xp, x2, Y2, min_count)
    return _drop_map_axes(r, x_1d, y_1d)


def _nan_center(xp, x, valid):
    n = xp.sum(xp.astype(valid, x.dtype), axis=-1, keepdims=True)
    s = xp.sum(xp.where(valid, x, 0.0), axis=-1, keepdims=True)
    return xp.where(valid, x - s / xp.where(n > 0, n, 1.0), 0.0)


def _pearson_masked_gemm(xp, x, Y, min_count):
    # Centre each map on its own valid mean first (r is shift-invariant); this
    # keeps the sums-of-products formula free of catastrophic cancellation.
    vx = ~xp.isnan(x)
    vy = ~xp.isnan(Y)
    # each map scaled by a power of two first (see _pow2_scale): r is scale-free per map
    x = x * _pow2_scale(xp, xp.max(xp.where(vx, xp.abs(x), 0.0), axis=-1, keepdims=True))
    Y = Y * _pow2_scale(xp, xp.max(xp.where(vy, xp.abs(Y), 0.0), axis=-1, keepdims=True))
    xc = _nan_center(xp, x, vx)
    yc = _nan_center(xp, Y, vy)
    wx = xp.astype(vx, x.dtype)
    wy = xp.astype(vy, x.dtype)
    yt = xp.matrix_transpose(yc)
    wyt = xp.matrix_transpose(wy)
    n = wx @ wyt
    sx = xc @ wyt
    sy = wx @ yt
    sxy = xc @ yt
    sxx = (xc * xc) @ wyt
    syy = wx @ (yt * yt)
    safe_n = xp.where(n > 0, n, 1.0)
    cxy = sxy - sx * sy / safe_n
    cxx = sxx - sx * sx / safe_n
    cyy = syy - sy * sy / safe_n
    eps = xp.finfo(x.dtype).eps
    tiny_x = n * (8 * eps * xp.max(xp.abs(xc), axis=-1, keepdims=True)) ** 2
    tiny_y = n * (8 * eps * xp.matrix_transpose(xp.max(xp.abs(yc), axis=-1, keepdims=True))) ** 2
    defined = (n >= min_count) & (cxx > tiny_x) & (cyy > tiny_y)
    den = xp.sqrt(xp.where(defined, cxx * cyy, 1.0))
    r = xp.clip(cxy / den, -1.0, 1.0)
    return xp.where(defined, r, xp.asarray(float("nan"), dtype=x.dtype))


def fdr_bh(p, *, axis=-1):
    """Benjamini-Hochberg adjusted p-values (q-values) along ``axis``.

    NaN entries stay NaN and are not counted in the number of tests.
    Equals ``scipy.stats.false_discovery_control(p, method="bh")`` on the
    finite entries.
    """
    xp = namespace(p)
    p = as_float(xp, p)
    if axis != -1 and axis != p.ndim - 1:
        p = xp.moveaxis(p, axis, -1)
    valid = ~xp.isnan(p)
    m = xp.sum(xp.astype(valid, p.dtype), axis=-1, keepdims=True)
    key = xp.where(valid, p, xp.asarray(float("inf"), dtype=p.dtype))
    order = xp.argsort(key, axis=-1, stable=True)
    ps = take_along(xp, key, order, axis=-1)
    rank = xp.arange(1, p.shape[-1] + 1, dtype=p.dtype)
    finite = xp.isfinite(ps)
    inf = xp.asarray(float("inf"), dtype=p.dtype)
    q = xp.where(finite, xp.where(finite, ps, 0.0) * m / rank, inf)
    q = xp.flip(cumulative_min(xp, xp.flip(q, axis=-1), axis=-1), axis=-1)
    q = xp.minimum(q, 1.0)
    q = take_along(xp, q, _inverse_permutation(xp, order, -1), axis=-1)
    q = xp.where(valid, q, xp.asarray(float("nan"), dtype=p.dtype))
    if axis != -1 and axis != p.ndim - 1:
        q = xp.moveaxis(q, -1, axis)
    return q
