"""Nodal structure-function coupling kernels (batched over leading axes)."""

from __future__ import annotations

import itertools

import numpy as np

from . import graph
from ._xp import as_float, float_dtype, is_numpy_namespace, namespace
from .stats import pearson_rows, spearman_packed_numpy, spearman_rows

EDGE_SETS = ("sc_nonzero", "offdiag", "both_nonzero", "mask")
METHODS = ("spearman", "pearson")


def edge_mask(sc, fc, *, edges="sc_nonzero", mask=None):
    """Boolean ``(..., N, N)`` mask of the entries each node's correlation uses.

    ``"sc_nonzero"`` (Baum 2020): off-diagonal entries with SC != 0;
    ``"offdiag"`` (Gu 2021): every off-diagonal entry;
    ``"both_nonzero"`` (Fotiadis 2023): SC != 0 and FC != 0;
    ``"mask"``: only the given ``mask``. A ``mask`` given with another edge
    set is intersected with it. The diagonal is never used.
    """
    xp = namespace(sc, fc, mask)
    n = sc.shape[-1]
    off = ~xp.astype(xp.eye(n), xp.bool)
    shape = xp.broadcast_arrays(sc, fc)[0].shape
    if edges == "sc_nonzero":
        m = (sc != 0) & off
    elif edges == "offdiag":
        m = xp.broadcast_to(off, shape)
    elif edges == "both_nonzero":
        m = (sc != 0) & (fc != 0) & off
    elif edges == "mask":
        m = xp.broadcast_to(off, shape)
    else:
        raise ValueError(f"edges must be one of {EDGE_SETS}; got {edges!r}")
    if mask is not None:
        m = m & xp.astype(mask, xp.bool)
    return xp.broadcast_to(m, shape)


def nodal_coupling(sc, fc, *, method="spearman", edges="sc_nonzero", min_edges=3, mask=None):
    """Per-node correlation of SC and FC rows over an edge set.

    Parameters
    ----------
    sc, fc : (..., N, N) arrays
    method : {"spearman", "pearson"}
    edges : {"sc_nonzero", "offdiag", "both_nonzero", "mask"}
    min_edges : int
        Fewest edges for a defined coupling; fewer gives NaN.
    mask : (..., N, N) bool array, optional

    Returns
    -------
    coupling : (..., N) float array (NaN where undefined)
    n_edges : (..., N) int array
    """
    xp = namespace(sc, fc, mask)
    if method == "spearman" and is_numpy_namespace(xp) and sc.ndim > 1:
        return _nodal_spearman_numpy(sc, fc, edges=edges, min_edges=min_edges, mask=mask)
    m = edge_mask(sc, fc, edges=edges, mask=mask)
    if method == "spearman":
        r = spearman_rows(sc, fc, mask=m, min_count=min_edges)
    elif method == "pearson":
        r = pearson_rows(sc, fc, mask=m, min_count=min_edges)
    else:
        raise ValueError(f"method must be one of {METHODS}; got {method!r}")
    n_edges = xp.sum(xp.astype(m, xp.int32), axis=-1)
    return r, n_edges


def _nodal_spearman_numpy(sc, fc, *, edges, min_edges, mask):
    # The same result as the portable path, organised around the flat indices
    # of the edges used (for SC != 0 without building an (N, N) mask pass
    # per condition); the edge count per row falls out of the packing.
    xp = namespace(sc, fc)
    dt = xp.result_type(float_dtype(xp, sc), float_dtype(xp, fc))
    a, b = np.broadcast_arrays(np.asarray(sc, dtype=dt), np.asarray(fc, dtype=dt))
    n = a.shape[-1]
    if edges in ("sc_nonzero", "both_nonzero") and mask is None:
        keep = a != 0
        if edges == "both_nonzero":
            keep &= b != 0
        idx = np.arange(n)
        keep[..., idx, idx] = False  # a fresh array: O(N) writes instead of an (N, N) mask pass
        src = np.flatnonzero(keep)
    else:
        src = np.flatnonzero(edge_mask(a, b, edges=edges, mask=mask))
    r, n_edges = spearman_packed_numpy(a, b, src, min_edges)
    return r, n_edges.astype(np.int32)


# --- group-consistency thresholding (Baum et al. 2020) -----------------------------------


def consistency_mask(w, *, n_keep):
    """Boolean (N, N) mask of the ``n_keep`` edges (i < j pairs, mirrored) with
    the lowest coefficient of variation std/mean across the leading axis.

    Parameters
    ----------
    w : (S, N, N) array
        Weights of S subjects.
    n_keep : int
        Number of unordered pairs to keep.

    Notes
    -----
    CV uses the sample standard deviation (ddof=1, MATLAB ``std``). Pairs
    whose mean weight is 0 have CV = inf and come last; ties keep the lower
    flat upper-triangle index first.
    """
    xp = namespace(w)
    w = as_float(xp, w)
    s, n = w.shape[0], w.shape[-1]
    mean = xp.mean(w, axis=0)
    d = w - mean
    sd = xp.sqrt(xp.sum(d * d, axis=0) / max(s - 1, 1))
    inf = xp.asarray(float("inf"), dtype=w.dtype)
    cv = xp.where(mean != 0, sd / xp.where(mean != 0, mean, 1.0), inf)
    i = xp.reshape(xp.arange(n), (n, 1))
    j = xp.reshape(xp.arange(n), (1, n))
    upper = i < j
    key = xp.reshape(xp.where(upper, cv, inf), (n * n,))
    # lower triangle and diagonal are pushed behind every upper pair
    order = xp.argsort(key, stable=True)
    pos = xp.reshape(xp.astype(xp.where(upper, 0, 1), xp.int64), (n * n,))
    order = xp.argsort(xp.take(pos, order) * (n * n) + xp.arange(n * n), stable=True)
    order = xp.take(xp.argsort(key, stable=True), order)
    rank = xp.argsort(order, stable=True)
    keep = xp.reshape(rank < n_keep, (n, n)) & upper
    return keep | xp.matrix_transpose(keep)


# --- multilinear communication model (Vazquez-Rodriguez et al. 2019) ---------------------


PREDICTORS = ("distance", "path_length", "communicability", "search_information", "navigation", "diffusion")


def communication_predictors(sc, coords=None, *, names=("distance", "path_length", "communicability"), weighted=True,
                             loop=None, pivots=None):
    """Predictor matrices (..., P, N, N) for the local communication model.

    ``weighted=True`` (Liu et al. 2023; METHODS 1.3): path length on
    -log(W / (max W + 1)) lengths, communicability expm(D^-1/2 W D^-1/2),
    search information and navigation / diffusion efficiency, each
    symmetrised ((M + M^T) / 2; non-finite search information set to 0
    first). ``weighted=False`` (Vazquez-Rodriguez 2019): the same on the
    binary graph A = (W != 0), with hop counts and expm(A). ``loop`` and
    ``pivots``: the loop routes of :mod:`recouple.kernels.graph` (what
    :func:`recouple.graph.kernel_routes` gives for a backend).
    """
    xp = namespace(sc, coords)
    mats = predictor_list(sc, coords, names=names, weighted=weighted, loop=loop, pivots=pivots)
    shape = mats[0].shape if len(mats) == 1 else None
    for m in mats:
        shape = m.shape if shape is None or len(m.shape) > len(shape) else shape
    return xp.stack([xp.broadcast_to(m, shape) for m in mats], axis=-3)


def predictor_list(sc, coords=None, *, names=("distance", "path_length", "communicability"), weighted=True,
                   loop=None, pivots=None):
    """The predictors of :func:`communication_predictors` as a list of
    (..., N, N) arrays, not stacked (Euclidean distance stays (N, N) when the
    coordinates are shared)."""
    xp = namespace(sc, coords)
    w = as_float(xp, sc)
    if not weighted:
        w = xp.astype(w != 0, w.dtype)
    transform = "neglog" if weighted else "hops"
    # one Floyd-Warshall for both path predictors; predecessors only when
    # search information needs them
    if "search_information" in names:
        paths = graph.shortest_paths(w, transform=transform, track="predecessor", loop=loop, pivots=pivots)
    elif "path_length" in names:
        paths = graph.shortest_paths(w, transform=transform, track="length", loop=loop, pivots=pivots)
    else:
        paths = None
    dist = graph.euclidean_distance(coords) if coords is not None else None
    out = []
    zero = xp.asarray(0.0, dtype=w.dtype)
    for name in names:
        if name == "distance":
            m = dist
        elif name == "path_length":
            m = paths[0]
        elif name == "communicability":
            m = graph.communicability(w, weighted=weighted)
        elif name == "search_information":
            si = graph.search_information(w, paths[2])
            si = xp.where(xp.isfinite(si), si, zero)
            m = (si + xp.matrix_transpose(si)) / 2
        elif name == "navigation":
            length, _ = graph.navigation(w, xp.broadcast_to(dist, w.shape), loop=loop)
            ok = xp.isfinite(length) & (length > 0)
            e = xp.where(ok, 1.0 / xp.where(ok, length, 1.0), zero)
            m = (e + xp.matrix_transpose(e)) / 2
        elif name == "diffusion":
            e = graph.diffusion_efficiency(w)
            m = (e + xp.matrix_transpose(e)) / 2
        else:
            raise ValueError(f"predictor must be one of {PREDICTORS}; got {name!r}")
        out.append(m)
    return out


def _subsets(p):
    return [c for k in range(1, p + 1) for c in itertools.combinations(range(p), k)]


def _column_cross_products(xp, zs):
    """Centred cross-products of the columns of ``zs`` over the rows j != i.

    ``zs`` is a list of Q arrays (..., N, N); column i of each uses rows
    j != i. Returns ``ok`` (..., N) -- every column i finite in those rows --,
    ``g`` (..., N, Q, Q) with g[i, a, b] = sum_j (z_a[j, i] - mean_a)
    (z_b[j, i] - mean_b), and ``tiny`` (..., N, Q): sums of squares at or
    below it are round-off of a constant column, not variation. Non-finite
    entries count as 0 (their columns are flagged in ``ok``). Each matrix is
    first shifted by its mean off-diagonal entry so that the one-pass sums
    do not cancel.
    """
    n = zs[0].shape[-1]
    m = n - 1
    dt = zs[0].dtype
    off = ~xp.astype(xp.eye(n, dtype=dt), xp.bool)
    zero = xp.asarray(0.0, dtype=dt)
    ok = None
    z0 = []
    for z in zs:
        centred, col_ok = _centred_offdiag(xp, z, off, zero)
        ok = col_ok if ok is None else ok & col_ok
        z0.append(centred)
    s = [xp.sum(v, axis=-2) for v in z0]
    q = len(zs)
    prod = _column_dot if is_numpy_namespace(xp) else (lambda a, b: xp.sum(a * b, axis=-2))
    g = [[None] * q for _ in range(q)]
    tiny = [None] * q
    eps = xp.finfo(dt).eps
    for a in range(q):
        for b in range(a, q):
            raw = prod(z0[a], z0[b])
            if a == b:
                # a one-pass sum of squares carries ~eps * sum z^2 of round-off
                tiny[a] = 16 * eps * raw
            g[a][b] = g[b][a] = raw - s[a] * s[b] / m
    shape = ok.shape
    for row in g:
        for v in row:
            shape = v.shape if len(v.shape) > len(shape) else shape
    ok = xp.broadcast_to(ok, shape)
    tiny = xp.stack([xp.broadcast_to(v, shape) for v in tiny], axis=-1)
    return ok, xp.stack([xp.stack([xp.broadcast_to(v, shape) for v in row], axis=-1) for row in g], axis=-2), tiny


def _centred_offdiag(xp, z, off, zero):
    """``z`` minus its mean finite off-diagonal entry, 0 on the diagonal and
    where not finite (a new array), and whether each column is finite off
    the diagonal (..., N)."""
    n = z.shape[-1]
    if is_numpy_namespace(xp):
        # the sum of the off-diagonal entries is finite only if they all are
        # (NaN and inf propagate; an overflow just takes the general path):
        # then a copy, one in-place pass and O(N) diagonal writes suffice
        out = np.array(z, copy=True)
        idx = np.arange(n)
        out[..., idx, idx] = 0.0
        total = np.sum(out, axis=(-2, -1), keepdims=True)
        if np.all(np.isfinite(total)):
            out -= total / (n * (n - 1))
            out[..., idx, idx] = 0.0
            return out, np.ones(z.shape[:-2] + (n,), dtype=bool)
    fin = xp.isfinite(z)
    keep = fin & off
    cnt = xp.sum(xp.astype(keep, z.dtype), axis=(-2, -1), keepdims=True)
    c = xp.sum(xp.where(keep, z, zero), axis=(-2, -1), keepdims=True) / xp.where(cnt > 0, cnt, 1.0)
    return xp.where(keep, z - c, zero), xp.all(fin | ~off, axis=-2)


def _column_dot(a, b):
    # fused multiply-and-sum over rows, no temporary (..., N, N) product
    return np.einsum("...jn,...jn->...n", a, b)


def local_regression_parts(y, *xs, order=None, dominance=False, **fixed):
    """:func:`local_regression` with the P predictors as separate (..., N, N)
    arrays (broadcast against ``y``), so that callers need not stack them.

    ``fixed`` holds predictors shared by every subject (N, N) by keyword;
    ``order`` (a tuple of ints for positions in ``xs`` and keyword names)
    gives the predictors' order; by default ``xs`` then ``fixed``.
    """
    if order is None:
        mats = list(xs) + [fixed[k] for k in sorted(fixed)]
    else:
        mats = [xs[k] if isinstance(k, int) else fixed[k] for k in order]
    return _local_regression(mats, y, dominance=dominance)


def local_regression(x, y, *, dominance=False):
    """Per-node OLS of FC on predictors, leaving out the node's own row.

    Parameters
    ----------
    x : (..., P, N, N) array
        Predictor matrices; node i uses column i, rows j != i.
    y : (..., N, N) array
        Functional connectivity; node i's response is column i, rows j != i.
    dominance : bool
        Also return the general (total) dominance of each predictor.

    Returns
    -------
    r2, r2_adj : (..., N) arrays
    dominance : (..., N, P) array, only with ``dominance``
        General dominance on adjusted R^2 (sums to ``r2_adj``). NaN for nodes whose predictors
    or response are not finite or are constant over the n = N - 1 rows.

    Notes
    -----
    With intercept, R^2 = r^T R^-1 r where R is the predictors' correlation
    matrix and r their correlations with the response over rows j != i
    (z-scoring after removing row i, as METHODS 1.3); adjusted
    R^2 = 1 - (1 - R^2)(n - 1)/(n - p - 1). The centred cross-products of
    every node's columns come from column sums of the whole matrices (no
    per-node copies); all nodes and subjects are then solved as one batch of
    P x P systems.
    """
    return _local_regression([x[..., a, :, :] for a in range(x.shape[-3])], y, dominance=dominance)


def _local_regression(xs, y, *, dominance):
    xp = namespace(y, *xs)
    dt = xp.result_type(float_dtype(xp, y), *[float_dtype(xp, x) for x in xs])
    xs = [xp.astype(x, dt, copy=False) for x in xs]
    y = xp.astype(y, dt, copy=False)
    n = y.shape[-1]
    p = len(xs)
    m = n - 1
    zero = xp.asarray(0.0, dtype=dt)
    ok, g, tiny = _column_cross_products(xp, xs + [y])
    sxx = g[..., :p, :p]
    sxy = g[..., :p, p]
    syy = g[..., p, p]
    varies = xp.linalg.diagonal(sxx) > tiny[..., :p]
    dx = xp.sqrt(xp.where(varies, xp.linalg.diagonal(sxx), zero))
    ok = ok & xp.all(varies, axis=-1) & (syy > tiny[..., p])
    dxs = xp.where(dx > 0, dx, 1.0)
    corr = sxx / (dxs[..., :, None] * dxs[..., None, :])
    eye_p = xp.eye(p, dtype=dt)
    corr = xp.where(ok[..., None, None], corr, eye_p)
    r = sxy / (dxs * xp.sqrt(xp.where(syy > 0, syy, 1.0))[..., None])
    r = xp.where(ok[..., None], r, zero)
    nan = xp.asarray(float("nan"), dtype=dt)

    def r2_of(idx):
        if len(idx) == p:
            c, rv = corr, r
        else:
            ii = xp.asarray(idx)
            c = xp.take(xp.take(corr, ii, axis=-1), ii, axis=-2)
            rv = xp.take(r, ii, axis=-1)
        beta = xp.linalg.solve(c, rv[..., None])
        val = xp.sum(rv * beta[..., 0], axis=-1)
        return xp.where(ok, val, nan)

    def adjust(r2, k):
        return 1.0 - (1.0 - r2) * (m - 1) / (m - k - 1)

    r2 = r2_of(tuple(range(p)))
    if not dominance:
        return r2, adjust(r2, p)
    subsets = _subsets(p)
    adj = {s: adjust(r2_of(s), len(s)) for s in subsets}
    cols = []
    for a in range(p):
        terms = []
        for k in range(p):
            with_a = [s for s in subsets if len(s) == k + 1 and a in s]
            diffs = [adj[s] - (adj[tuple(v for v in s if v != a)] if k else 0.0) for s in with_a]
            terms.append(sum(diffs[1:], diffs[0]) / len(diffs))
        cols.append(sum(terms[1:], terms[0]) / p)
    return r2, adjust(r2, p), xp.stack(cols, axis=-1)


def communication_model(sc, fc, coords=None, *, names=("distance", "path_length", "communicability"),
                        weighted=True, dominance=False, loop=None, pivots=None):
    """Predictors from ``sc`` then :func:`local_regression` of ``fc`` (one kernel;
    ``loop``, ``pivots`` as :func:`communication_predictors`)."""
    xs = predictor_list(sc, coords, names=names, weighted=weighted, loop=loop, pivots=pivots)
    return _local_regression(xs, fc, dominance=dominance)


# --- structural decoupling index (Preti & Van De Ville 2019) -----------------------------


def normalized_laplacian(w):
    """Symmetric normalised Laplacian I - D^-1/2 W D^-1/2 (..., N, N)."""
    xp = namespace(w)
    w = as_float(xp, w)
    s = xp.sum(w, axis=-1)
    inv_sqrt = xp.where(s > 0, 1.0 / xp.sqrt(xp.where(s > 0, s, 1.0)), 0.0)
    a = inv_sqrt[..., :, None] * w * inv_sqrt[..., None, :]
    return xp.eye(w.shape[-1], dtype=w.dtype) - a


def configuration_laplacian(w):
    """Configuration-model Laplacian diag(k) - k k^T / sum(k), k = A_hat 1."""
    xp = namespace(w)
    w = as_float(xp, w)
    s = xp.sum(w, axis=-1)
    inv_sqrt = xp.where(s > 0, 1.0 / xp.sqrt(xp.where(s > 0, s, 1.0)), 0.0)
    a = inv_sqrt[..., :, None] * w * inv_sqrt[..., None, :]
    k = xp.sum(a, axis=-1)
    return k[..., :, None] * xp.eye(w.shape[-1], dtype=w.dtype) - k[..., :, None] * k[..., None, :] / xp.sum(k)


def zscore_time(ts):
    """Each region's series z-scored over time (ddof=1; MATLAB zscore(X, 0, 2))."""
    xp = namespace(ts)
    ts = as_float(xp, ts)
    t = ts.shape[-1]
    d = ts - xp.mean(ts, axis=-1, keepdims=True)
    sd = xp.sqrt(xp.sum(d * d, axis=-1, keepdims=True) / (t - 1))
    return d / xp.where(sd > 0, sd, 1.0)


def graph_energy(ts, harmonics):
    """Mean energy per harmonic: mean over time of |U^T z(X)|^2, (S, N, T) -> (S, N)."""
    xp = namespace(harmonics, ts)
    xhat = xp.matrix_transpose(harmonics) @ zscore_time(ts)
    return xp.mean(xhat * xhat, axis=-1)


def _split_norms(xp, low, x):
    coupled = low @ (xp.matrix_transpose(low) @ x)
    decoupled = x - coupled
    return xp.sqrt(xp.sum(coupled * coupled, axis=-1)), xp.sqrt(xp.sum(decoupled * decoupled, axis=-1))


def decoupling_norms(ts, harmonics, *, n_low):
    """Norms over time of the coupled and decoupled parts of z-scored signals.

    Parameters
    ----------
    ts : (S, N, T) array
    harmonics : (N, N) array, eigenvectors in columns, ascending eigenvalue
    n_low : int
        Number of low-frequency (coupled) harmonics.

    Returns
    -------
    coupled, decoupled : (S, N) arrays
    """
    xp = namespace(ts, harmonics)
    x = zscore_time(ts)
    return _split_norms(xp, harmonics[:, :n_low], x)


def surrogate_norms(ts, signs, harmonics, basis, *, n_low):
    """Coupled/decoupled norms of sign-randomised surrogates V diag(phi) V^T z(X).

    Parameters
    ----------
    ts : (S, N, T) array
    signs : (S, K, N) array of +-1
        One sign vector per subject and surrogate.
    harmonics : (N, N) array
        Structural harmonics U defining the coupled/decoupled split.
    basis : (N, N) array
        Eigenvectors V randomised: U itself (SC-informed) or those of a
        configuration-model Laplacian (SC-ignorant).

    Returns
    -------
    coupled, decoupled : (S, K, N) arrays
    """
    xp = namespace(ts, harmonics, basis, signs)
    x = zscore_time(ts)
    xhat = xp.matrix_transpose(basis) @ x  # (S, N, T)
    surr = basis @ (signs[..., :, None] * xhat[:, None, :, :])  # (S, K, N, T)
    return _split_norms(xp, harmonics[:, :n_low], surr)
