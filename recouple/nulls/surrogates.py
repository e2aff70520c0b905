"""Distances and distance-based surrogate maps: variogram-matched
surrogates (Burt et al. 2020; dense and sampled), Moran spectral
randomisation (Wagner & Dray 2015) and spatial-lag SAR surrogates
(Burt et al. 2018). Surrogates are ``(n_perm, N)`` float maps; surrogate
k draws from its own random stream, so the same seed (default 0) gives
identical surrogates for any batch size.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import linalg
from scipy.optimize import least_squares
from scipy.sparse import coo_matrix, csr_matrix
from scipy.sparse.csgraph import dijkstra
from scipy.spatial import cKDTree
from scipy.stats import boxcox

from ..engine.backend import get_backend, to_host
from ..engine.dispatch import call_kernel
from ..engine.planner import require_memory
from ..engine.random import iter_streams, root_entropy, stream
from ..exceptions import InputError, ShapeError
from ..host import spheres as _spheres
from ..kernels import nulls as _k
from ..validation import as_array, check_choice, check_finite, check_positive_int

__all__ = ["distance", "variogram_surrogates", "VariogramFit", "moran", "moran_weights", "burt2018_surrogates"]

# ----------------------------------------------------------------------------
# Distances, variogram-matched surrogates, Moran spectral randomisation
# ----------------------------------------------------------------------------


def distance(coords, *, knn=None, method="euclidean", faces=None):
    """Distances between regions for variogram and Moran nulls.

    Parameters
    ----------
    coords : (N, 3) array_like
        Parcel centroids or vertices.
    knn : int, optional
        If given, return only each point's ``knn`` nearest neighbours (for
        :func:`variogram_surrogates` ``mode="sampled"``): no N x N matrix.
    method : {"euclidean", "geodesic"}
        ``geodesic`` runs Dijkstra along the mesh edges given by ``faces``
        (vertex-level data; medial-wall vertices should be removed first).
    faces : (F, 3) int array_like
        Mesh triangles for ``geodesic``.

    Returns
    -------
    (N, N) array, or with ``knn`` a pair ``(distances, indices)`` of
    ``(N, knn + 1)`` arrays sorted by distance, column 0 being the point
    itself (brainsmash's ``Sampled`` layout).
    """
    c = as_array("coords", coords)
    if c.ndim != 2 or c.shape[1] != 3:
        raise ShapeError(f"coords must be (N, 3); got shape {c.shape}. Pass x, y, z columns.")
    check_choice("method", method, ("euclidean", "geodesic"))
    n = c.shape[0]
    if method == "euclidean":
        if knn is None:
            return _spheres.euclidean(c, c)
        k = check_positive_int("knn", knn)
        k = min(k, n - 1)
        d, idx = cKDTree(c).query(c, k=k + 1, workers=-1)
        return d, idx.astype(np.int64)
    if faces is None:
        raise InputError("method='geodesic' needs faces=(F, 3) mesh triangles; got None. Pass the surface's faces.")
    f = np.asarray(faces, dtype=np.int64)
    e = np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]])
    w = np.linalg.norm(c[e[:, 0]] - c[e[:, 1]], axis=1)
    g = coo_matrix((np.r_[w, w], (np.r_[e[:, 0], e[:, 1]], np.r_[e[:, 1], e[:, 0]])), shape=(n, n)).tocsr()
    if knn is None:
        return dijkstra(g, directed=False)
    k = min(check_positive_int("knn", knn), n - 1)
    d = dijkstra(g, directed=False)
    idx = np.argsort(d, axis=1, kind="stable")[:, : k + 1]
    return np.take_along_axis(d, idx, axis=1), idx


_KERNELS = ("exp", "gaussian", "invdist", "uniform")


def _kernel_weights(d, kernel):
    if kernel == "exp":
        w = np.exp(-d / d.max(axis=-1, keepdims=True))
    elif kernel == "gaussian":
        w = np.exp(-1.25 * np.square(d / d.max(axis=-1, keepdims=True)))
    elif kernel == "invdist":
        w = 1.0 / d
    else:
        w = np.ones_like(d) / d.shape[-1]
    return w / w.sum(axis=-1, keepdims=True)


@dataclass(frozen=True)
class VariogramFit:
    """Surrogates with their variogram fits (``variogram_surrogates(..., return_fit=True)``).

    maps : (K, N); delta : (K,) chosen neighbourhood fraction; alpha, beta, sse : (K,);
    h : (nh,) distances; target : (nh,) smoothed variogram of ``x``.
    """

    maps: np.ndarray
    delta: np.ndarray
    alpha: np.ndarray
    beta: np.ndarray
    sse: np.ndarray
    h: np.ndarray
    target: np.ndarray


def _variogram_weights(u, h, b):
    w = np.exp(-np.square(2.68 * np.abs(u[None, :] - h[:, None]) / b) / 2)
    return w / w.sum(axis=1, keepdims=True)


def variogram_surrogates(
    x,
    distance,
    *,
    n_perm=1000,
    seed=0,
    deltas=None,
    kernel="exp",
    pv=None,
    nh=25,
    resample=False,
    b=None,
    mode="base",
    index=None,
    ns=500,
    knn=1000,
    permutations=None,
    normals=None,
    batch_size=None,
    return_fit=False,
    backend=None,
    memory_limit=None,
):
    """Variogram-matched surrogate maps (Burt et al. 2020; brainsmash defaults).

    Parameters
    ----------
    x : (N,) array_like
        Map; NaN regions are left out and stay NaN in the surrogates.
    distance : (N, N) array_like, or (N, knn+1) sorted distances for ``mode="sampled"``
        Pairwise distances (e.g. :func:`distance`).
    n_perm : int
    seed : int, optional
        Surrogate k uses its own stream: a permutation then normals. Default
        0; the same seed gives identical surrogates.
    deltas : sequence of float
        Neighbourhood fractions; default ``0.1..0.9`` (base) or
        ``0.3, 0.5, 0.7, 0.9`` (sampled).
    kernel : {"exp", "gaussian", "invdist", "uniform"}
    pv : float
        Distance percentile for the variogram (default 25 base, 70 sampled).
    nh : int
        Number of variogram distances.
    resample : bool
        Rank-match surrogates to the values of ``x`` (else de-mean them).
    b : float, optional
        Variogram smoothing bandwidth (default 3 x the spacing of ``h``).
    mode : {"base", "sampled"}
        ``base``: dense distances (parcels). ``sampled``: brainsmash
        ``Sampled`` for dense vertex data, needing only each point's ``knn``
        nearest neighbours (``distance`` and ``index`` from
        ``distance(coords, knn=...)``), with ``ns`` random rows per variogram.
    index : (N, knn+1) int array_like
        ``sampled``: neighbour indices matching ``distance``.
    permutations, normals : (n_perm, N) array_like, optional
        Precomputed permutations and residual normals (e.g. to reproduce
        brainsmash given its draws).
    batch_size : int, optional
        Surrogates per block.
    return_fit : bool
        Return a :class:`VariogramFit` with the chosen parameters.
    memory_limit : int, str or float, optional
        Budget (see :func:`recouple.engine.planner.parse_memory`; default
        half of the available memory). The ``(n_perm, N)`` output and the
        distance matrices must fit; otherwise the call is refused before
        anything is drawn. Surrogates are drawn and fitted block by block.

    Returns
    -------
    (n_perm, N) array, or :class:`VariogramFit`.

    Notes
    -----
    Per surrogate and delta, brainsmash smooths a permuted map with a kNN
    kernel, fits ``gamma_x ~ alpha + beta gamma_smooth`` and keeps the best
    delta. Here the smoothing for every delta is one product with a stacked
    ``(D, N, N)`` smoothing matrix, the variograms of all surrogates are one
    product with the ``(nh, P)`` distance-weight matrix, and the fits are
    closed-form least squares over the whole batch.

    References
    ----------
    Burt JB, Helmer M, Shinn M, Anticevic A, Murray JD. NeuroImage 2020;220:117038.
    """
    check_choice("kernel", kernel, _KERNELS)
    check_choice("mode", mode, ("base", "sampled"))
    n_perm = check_positive_int("n_perm", n_perm)
    x_all = as_array("x", x, ndim=1)
    check_finite("x", x_all, allow_nan=True)
    valid = ~np.isnan(x_all)
    if valid.sum() < 3 or np.ptp(x_all[valid]) == 0:
        raise InputError("x must vary across at least 3 regions; it is constant or mostly NaN. Pass a brain map.")
    D_all = as_array("distance", distance)
    if D_all.shape[0] != x_all.shape[0] or D_all.ndim != 2:
        raise ShapeError(f"distance must have one row per region ({x_all.shape[0]}); got shape {D_all.shape}. "
                         "Use the same regions and order as x.")
    if mode == "sampled":
        # the output and the fits; the sparse smoothers grow with N x knn
        require_memory(f"variogram_surrogates: the ({n_perm:,}, {x_all.size:,}) surrogates", n_perm,
                       8.0 * (x_all.size + 4), fixed_bytes=8.0 * 8 * D_all.size, memory_limit=memory_limit,
                       fix="draw fewer surrogates per call")
        return _variogram_sampled(x_all, D_all, index, n_perm=n_perm, seed=seed, deltas=deltas, kernel=kernel,
                                  pv=70 if pv is None else pv, nh=nh, resample=resample, b=b, ns=ns, knn=knn,
                                  permutations=permutations, normals=normals, return_fit=return_fit)
    if D_all.shape != (x_all.shape[0],) * 2:
        raise ShapeError(f"distance must be (N, N) with N = {x_all.shape[0]}; got {D_all.shape}. "
                         "For dense data use mode='sampled' with distance(coords, knn=...).")
    pv = 25 if pv is None else pv
    deltas = np.linspace(0.1, 0.9, 9) if deltas is None else as_array("deltas", deltas)
    if deltas.ndim != 1 or np.any(deltas <= 0) or np.any(deltas > 1):
        raise InputError(f"deltas must be fractions in (0, 1]; got {deltas}. Pass e.g. [0.1, 0.3, 0.5].")
    # the output and the fits per surrogate; the stacked smoothers, the sorted
    # distances and the variogram pairs once
    n_valid = int(valid.sum())
    require_memory(f"variogram_surrogates: the ({n_perm:,}, {x_all.size:,}) surrogates", n_perm,
                   8.0 * (x_all.size + 5), fixed_bytes=8.0 * (len(deltas) + 4) * n_valid * n_valid,
                   memory_limit=memory_limit, fix="draw fewer surrogates per call")
    xv = x_all[valid]
    D = D_all[np.ix_(valid, valid)]
    n = xv.size
    iu, ju = np.triu_indices(n, k=1)
    u = D[iu, ju]
    keep = u < np.percentile(u, pv)
    pi, pj, uk = iu[keep], ju[keep], u[keep]
    h = np.linspace(uk.min(), uk.max(), nh)
    bw = 3.0 * (h[1] - h[0]) if b is None else float(b)
    W = _variogram_weights(uk, h, bw)
    gamma_t = 0.5 * np.square(xv[pi] - xv[pj]) @ W.T
    order = np.argsort(D, axis=-1, kind="quicksort")
    smoothers = np.zeros((len(deltas), n, n))
    rows = np.arange(n)[:, None]
    for t, delta in enumerate(deltas):
        k = int(delta * n)
        jk = order[:, 1 : k + 1]
        smoothers[t][rows, jk] = _kernel_weights(D[rows, jk], kernel)

    draws = _perm_normals_blocks(seed, n_perm, n, permutations, normals, "variogram")
    be = get_backend(backend)
    fn = be.compile(_k.variogram_block)
    step = batch_size or max(1, int(2**26 // max(8 * (len(deltas) * (n + len(pi)) + 4 * n), 1)))
    dev = [be.to_device(a) for a in (smoothers, pi, pj, W, gamma_t)]
    # One block at a time: draw its permutations and normals, fit, centre (or
    # rank-match) each surrogate and write it into the output; every step is
    # row-wise, so the result is that of the whole batch at once.
    out = np.full((n_perm, x_all.size), np.nan)
    res = {}
    sorted_x = np.sort(xv)
    for k0 in range(0, n_perm, step):
        perms_b, z_b = draws(k0, min(k0 + step, n_perm))
        out_b = {key: to_host(v) for key, v in fn(be.to_device(xv[perms_b]), be.to_device(z_b), *dev).items()}
        surr = out_b.pop("maps")
        if resample:
            surr = sorted_x[np.argsort(np.argsort(surr, axis=1, kind="stable"), axis=1, kind="stable")]
        else:
            surr = surr - surr.mean(axis=1, keepdims=True)
        out[k0 : k0 + len(surr), valid] = surr
        for key, v in out_b.items():
            res.setdefault(key, np.empty(n_perm, dtype=np.asarray(v).dtype))[k0 : k0 + len(surr)] = v
    if return_fit:
        return VariogramFit(maps=out, delta=deltas[res["delta_index"]], alpha=res["alpha"], beta=res["beta"],
                            sse=res["sse"], h=h, target=gamma_t)
    return out


def _perm_normals_blocks(seed, n_perm, n, permutations, normals, purpose):
    """``draw(k0, k1)``: the permutations and normals of surrogates ``k0..k1-1``
    (user-given rows, or drawn from stream k: a permutation, then normals)."""
    perms = z = None
    if permutations is not None:
        perms = np.asarray(permutations)
        if perms.dtype.kind not in "iu" and not (perms.dtype.kind == "f" and np.all(perms == np.round(perms))):
            raise InputError(f"permutations must hold integer indices; got dtype {perms.dtype}. Pass one "
                             "permutation of the valid regions per surrogate.")
        perms = perms.astype(np.int64, copy=False)
        if perms.shape != (n_perm, n):
            raise ShapeError(f"permutations must be (n_perm, N) = ({n_perm}, {n}); got {perms.shape}. "
                             "Pass one permutation of the valid regions per surrogate.")
    if normals is not None:
        z = as_array("normals", normals)
        if z.shape != (n_perm, n):
            raise ShapeError(f"normals must be (n_perm, N) = ({n_perm}, {n}); got {z.shape}. "
                             "Pass one standard-normal vector per surrogate.")
    entropy = None if perms is not None and z is not None else root_entropy(seed)

    def draw(k0, k1):
        if perms is not None and z is not None:
            return perms[k0:k1], z[k0:k1]
        gp, gz = np.empty((k1 - k0, n), dtype=np.int64), np.empty((k1 - k0, n))
        for k, g in enumerate(iter_streams(entropy, purpose, range(k0, k1))):
            gp[k] = g.permutation(n)
            gz[k] = g.standard_normal(n)
        return (gp if perms is None else perms[k0:k1]), (gz if z is None else z[k0:k1])

    return draw


def _gaussian_weights(u, h, bw):
    """``(nh, P)`` weights ``exp(-(2.68 (u - h_k) / b)^2 / 2)`` normalised per row.

    With evenly spaced ``h`` and ``u >= h_0`` the rows follow a recursion,
    ``w_{k+1} = w_k q exp(-(2k+1) s^2 / 2)`` with ``q = exp(t s)``, so one exp
    per pair replaces ``nh`` (same values to ~1e-14 relative); it is used only
    where no intermediate can underflow.
    """
    c = 2.68 / bw
    t = c * (u - h[0])
    step = c * (h[1] - h[0]) if len(h) > 1 else 0.0
    if len(h) < 3 or t.min() < 0 or t.max() > 30 or step * (len(h) - 1) > 30:
        tt = (u[None, :] - h[:, None]) * c
        w = np.exp(-0.5 * (tt * tt))
    else:
        w = np.empty((len(h), u.size))
        w[0] = np.exp(-0.5 * t * t)
        q = np.exp(t * step)
        for k in range(len(h) - 1):
            np.multiply(w[k], q, out=w[k + 1])
            w[k + 1] *= np.exp(-0.5 * (2 * k + 1) * step * step)
    return w / w.sum(axis=1, keepdims=True)


def _variogram_sampled(x_all, dist, index, *, n_perm, seed, deltas, kernel, pv, nh, resample, b, ns, knn,
                       permutations, normals, return_fit):
    if index is None:
        raise InputError("mode='sampled' needs index=(N, knn+1) neighbour indices matching distance; got None. "
                         "Use d, idx = rc.nulls.distance(coords, knn=...).")
    idx_all = np.asarray(index, dtype=np.int64)
    if idx_all.shape != dist.shape:
        raise ShapeError(f"index must match distance's shape {dist.shape}; got {idx_all.shape}. "
                         "Pass both from rc.nulls.distance(coords, knn=...).")
    if np.isnan(x_all).any():
        raise InputError("x must have no NaN in mode='sampled'; drop NaN (medial-wall) vertices from x, the "
                         "coordinates and the neighbour lists first.")
    deltas = np.arange(0.3, 1.0, 0.2) if deltas is None else np.asarray(deltas, dtype=float)
    n = x_all.size
    knn = min(int(knn), dist.shape[1] - 1)
    D = dist[:, 1 : knn + 1]
    J = idx_all[:, 1 : knn + 1]
    ns = min(int(ns), n)
    dmax = np.percentile(D, pv)
    h = np.linspace(D.min(), dmax, nh)
    bw = 3.0 * (h[1] - h[0]) if b is None else float(b)
    ks = [max(1, int(d * knn)) for d in deltas]
    # One sparse kNN smoothing matrix per delta: all surrogates of a batch are
    # smoothed by one sparse x dense product each.
    smoothers = []
    for k in ks:
        w = _kernel_weights(D[:, :k], kernel)
        indptr = np.arange(0, n * k + 1, k)
        smoothers.append(csr_matrix((w.ravel(), np.ascontiguousarray(J[:, :k]).ravel(), indptr), shape=(n, n)))
    draws = _perm_normals_blocks(seed, n_perm, n, permutations, normals, "variogram")
    out = np.empty((n_perm, n))
    fit = {"delta": np.empty(n_perm), "alpha": np.empty(n_perm), "beta": np.empty(n_perm), "sse": np.empty(n_perm)}
    entropy = root_entropy(seed)
    step = 32
    for k0 in range(0, n_perm, step):
        kk = range(k0, min(k0 + step, n_perm))
        perms_b, z_b = draws(k0, kk.stop)
        xperm = x_all[perms_b].T  # (n, B)
        sms = np.stack([S @ xperm for S in smoothers])  # (D, n, B)
        for b, k in enumerate(kk):
            rows = stream(entropy, "variogram-sample", k).choice(n, size=ns, replace=False)
            u = D[rows]
            m = u < dmax
            uu = u[m]
            w = _gaussian_weights(uu, h, bw)
            jj = J[rows][m]
            ii = np.broadcast_to(rows[:, None], u.shape)[m]
            gt = w @ (0.5 * np.square(x_all[ii] - x_all[jj]))
            sm = sms[:, :, b]
            gp = (0.5 * np.square(sm[:, ii] - sm[:, jj])) @ w.T
            a, bt, sse = _fit(np, gp, gt)
            best = int(np.argmin(sse))
            surr = np.sqrt(abs(bt[best])) * sm[best] + np.sqrt(abs(a[best])) * z_b[b]
            if resample:
                surr = np.sort(x_all)[np.argsort(np.argsort(surr, kind="stable"), kind="stable")]
            else:
                surr = surr - surr.mean()
            out[k] = surr
            fit["delta"][k], fit["alpha"][k], fit["beta"][k], fit["sse"][k] = (deltas[best], a[best], bt[best],
                                                                                sse[best])
    if return_fit:
        return VariogramFit(maps=out, h=h, target=np.full(nh, np.nan), **fit)
    return out


_fit = _k._fit


def moran_weights(distance) -> np.ndarray:
    """Inverse-distance weights ``1/D`` with unit diagonal (neuromaps' ``moran``)."""
    D = as_array("distance", distance)
    if D.ndim != 2 or D.shape[0] != D.shape[1]:
        raise ShapeError(f"distance must be (N, N); got {D.shape}. Pass a square distance matrix.")
    D = D.copy()
    np.fill_diagonal(D, 1.0)
    if (D <= 0).any():
        raise InputError("distance must be positive off the diagonal (two regions at distance 0). "
                         "Remove duplicate regions.")
    return 1.0 / D


def _map_and_matrix(x, matrix, name):
    """The map ``x`` (N,), finite and not constant, and its (N, N) ``matrix`` (weights or distances)."""
    xv = as_array("x", x, ndim=1)
    check_finite("x", xv)
    if np.ptp(xv) == 0:
        raise InputError("x must vary; it is constant. Pass a brain map.")
    m = as_array(name, matrix)
    if m.shape != (xv.size, xv.size):
        raise ShapeError(f"{name} must be (N, N) with N = {xv.size}; got {m.shape}. Use the regions of x.")
    return xv, m


def moran(x, weights, *, n_perm=1000, seed=0, procedure="singleton", tol=1e-6, joint=False, backend=None,
          memory_limit=None):
    """Moran spectral randomisation surrogates ``(n_perm, N)`` (Wagner & Dray 2015; BrainSpace).

    Parameters
    ----------
    x : (N,) array_like
    weights : (N, N) array_like
        Spatial weights (symmetrised), e.g. :func:`moran_weights` of distances.
    n_perm : int
    seed : int, optional
        Surrogate k draws from its own stream. Default 0; the same seed gives
        identical surrogates.
    procedure : {"singleton", "pair"}
        ``singleton``: flip the sign of each Moran coefficient at random.
        ``pair``: rotate random pairs of coefficients by a uniform angle.
    tol : float
        Keep eigenvectors with ``|lambda| >= tol`` (neuromaps uses 1e-6).
    joint : bool
        ``pair`` only: add ``atan2(r_a, r_b)`` to each angle (BrainSpace ``joint``).
    memory_limit : int, str or float, optional
        Budget (see :func:`recouple.engine.planner.parse_memory`; default
        half of the available memory); a request that does not fit is
        refused before anything is computed.

    Returns
    -------
    (n_perm, N) array; each surrogate has the mean and (when all eigenvectors are
    kept) the variance of ``x``.
    """
    check_choice("procedure", procedure, ("singleton", "pair"))
    n_perm = check_positive_int("n_perm", n_perm)
    xv, W = _map_and_matrix(x, weights, "weights")
    # coefficients, the maps and their temporaries per surrogate; the
    # centred weights and eigenvectors once
    require_memory(f"moran: the ({n_perm:,}, {xv.size:,}) surrogates", n_perm, 8.0 * 4 * xv.size,
                   fixed_bytes=8.0 * 5 * W.size, memory_limit=memory_limit, fix="draw fewer surrogates per call")
    W = 0.5 * (W + W.T)
    m = W.mean(axis=0, keepdims=True)
    Wc = W - m - m.T + W.mean()
    lam, U = np.linalg.eigh(Wc)
    order = np.argsort(lam)[::-1]
    lam, U = lam[order], U[:, order]
    U = U[:, np.abs(lam) >= tol]
    U = U - U.mean(axis=0, keepdims=True)
    U = U / np.linalg.norm(U, axis=0, keepdims=True)
    n = xv.size
    mu, sd = xv.mean(), xv.std(ddof=1)
    r = ((xv - mu) / (sd * np.sqrt(n - 1))) @ U
    c = U.shape[1]
    coeffs = np.empty((n_perm, c))
    for k, g in enumerate(iter_streams(seed, f"moran-{procedure}", range(n_perm))):
        if procedure == "singleton":
            coeffs[k] = r * np.where(g.random(c) < 0.5, -1.0, 1.0)
        else:
            p = g.permutation(c)
            half = c // 2
            a, bb = p[:half], p[half : 2 * half]
            phi = g.uniform(0, 2 * np.pi, size=half)
            if joint:
                phi = phi + np.arctan2(r[a], r[bb])
            rad = np.sqrt(r[a] ** 2 + r[bb] ** 2)
            out = r.copy()
            out[a], out[bb] = rad * np.cos(phi), rad * np.sin(phi)
            if c % 2:
                out[p[-1]] = r[p[-1]] * np.where(g.random() < 0.5, -1.0, 1.0)
            coeffs[k] = out
    return call_kernel(_k.moran_surrogates, coeffs, U, np.asarray(mu), np.asarray(sd * np.sqrt(n - 1)),
                       backend=backend)


# ----------------------------------------------------------------------------
# Burt et al. 2018 spatial-lag (SAR) surrogates
# ----------------------------------------------------------------------------


def _sar_weights(D, d0, normalize):
    with np.errstate(over="ignore", under="ignore"):
        w = np.exp(-D / d0)
    np.fill_diagonal(w, 0.0)
    s = w.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        # "neuromaps" divides column j by the sum of row j (its broadcasting);
        # "row" makes W row-stochastic as in the paper.
        return w / s[None, :] if normalize == "neuromaps" else w / s[:, None]


def burt2018_surrogates(x, distance, *, n_perm=1000, seed=0, rho=None, d0=None, normalize="row",
                        normals=None, return_params=False, backend=None, memory_limit=None):
    """Spatial-lag surrogates (Burt et al. 2018), rank-matched to ``x``.

    Parameters
    ----------
    x : (N,) array_like
        Map (finite).
    distance : (N, N) array_like
    n_perm : int
    seed : int, optional
        Surrogate k draws its normals from its own stream. Default 0; the
        same seed gives identical surrogates.
    rho, d0 : float, optional
        SAR parameters; estimated when not given: Box-Cox transform of the map
        (shifted to be positive by ``|min| + 0.1`` as neuromaps does), then
        least squares of ``y ~ rho W(d0) y`` (Levenberg-Marquardt from (1, 1)).
    normalize : {"row", "neuromaps"}
        ``row``: ``W`` row-stochastic (the paper); ``neuromaps``: its
        column-wise division, to reproduce neuromaps' ``burt2018``.
    normals : (n_perm, N) array_like, optional
        Precomputed standard-normal draws.
    return_params : bool
        Also return ``(rho, d0)``.
    memory_limit : int, str or float, optional
        Budget (see :func:`recouple.engine.planner.parse_memory`; default
        half of the available memory); a request that does not fit is
        refused before anything is computed.

    Returns
    -------
    (n_perm, N) array (and ``(rho, d0)``). Surrogate k is
    ``(I - rho W)^{-1} u_k`` (one LU for all k) with its values replaced by the
    sorted values of ``x`` in its rank order.

    References
    ----------
    Burt JB et al. Nat Neurosci 2018;21:1251-1259.
    """
    check_choice("normalize", normalize, ("row", "neuromaps"))
    n_perm = check_positive_int("n_perm", n_perm)
    xv, D = _map_and_matrix(x, distance, "distance")
    # normals, solutions, two rank arrays and the output per surrogate; the
    # SAR weights and their LU once
    require_memory(f"burt2018_surrogates: the ({n_perm:,}, {xv.size:,}) surrogates", n_perm, 8.0 * 6 * xv.size,
                   fixed_bytes=8.0 * 4 * D.size, memory_limit=memory_limit, fix="draw fewer surrogates per call")
    if rho is None or d0 is None:
        y = xv + abs(xv.min()) + 0.1
        y, _ = boxcox(y)
        y = y - y.mean()

        def resid(p):
            return y - p[0] * (_sar_weights(D, p[1], normalize) @ y)

        est = least_squares(resid, [1.0 if rho is None else rho, 1.0 if d0 is None else d0], method="lm").x
        rho = est[0] if rho is None else rho
        d0 = est[1] if d0 is None else d0
    if normals is None:
        z = np.empty((n_perm, xv.size))
        for k, g in enumerate(iter_streams(seed, "burt2018", range(n_perm))):
            z[k] = g.standard_normal(xv.size)
    else:
        z = as_array("normals", normals)
        if z.shape != (n_perm, xv.size):
            raise ShapeError(f"normals must be (n_perm, N) = ({n_perm}, {xv.size}); got {z.shape}.")
    A = np.eye(xv.size) - rho * _sar_weights(D, d0, normalize)
    surr = linalg.lu_solve(linalg.lu_factor(A), z.T).T
    ranks = np.argsort(np.argsort(surr, axis=1, kind="stable"), axis=1, kind="stable")
    out = np.sort(xv)[ranks]
    return (out, (float(rho), float(d0))) if return_params else out

