"""Spatial null models and map-versus-maps association.

Null arrays are always oriented ``(n_perm, N)``: one null per row. Index
nulls follow neuromaps and the original spin test: entry ``i`` of row ``k``
names the original region whose value lands at ``i`` (``-1``: dropped).

Association of one map (or M maps) with G maps under K nulls is computed as
streamed matrix products of standardised rows; per-map exceedance counts and
per-null maxima are reduced block by block, so the ``(K, G)`` null is kept
only when asked for.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .engine.backend import get_backend, to_host
from .engine.dispatch import host_map, host_thread_count
from .engine.planner import parse_memory
from .exceptions import InputError, ShapeError
from .host import jit as _host
from .kernels import nulls as _k
from .kernels import pvalues as _kp
from .kernels import stats as _ks
from .validation import as_array, check_choice, check_finite, check_positive_int

__all__ = [
    "null_maps", "associate", "Association", "rotations", "rotations_from_normals", "spin_permutations",
    "distance", "variogram_surrogates", "VariogramFit", "moran", "moran_weights", "burt2018_surrogates",
]

ALTERNATIVES = ("two-sided", "greater", "less")
_DEFAULT_BLOCK_MEMORY = 128 * 2**20


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


@dataclass(frozen=True)
class Association:
    """Result of :func:`associate`.

    Attributes
    ----------
    r : (M, G) or (G,) array
        Observed correlation of each source map with each target map.
    pvalue : same shape as ``r``
        Permutation p-value, ``(1 + #{null as or more extreme}) / (1 + K)``
        with K the nulls giving a defined correlation; floor ``1/(K+1)``.
    pvalue_fdr : same shape as ``r``
        Benjamini-Hochberg q-values across the G target maps (per source map).
    pvalue_fwer : same shape as ``r``
        Family-wise p-values by the maximum statistic across the G maps.
    null_max : (M, K) or (K,) array
        Per null, the most extreme statistic across the G maps (``|r|`` for
        two-sided, ``r`` for "greater", ``-r`` for "less").
    n_perm : int
        Number of nulls K.
    method, alternative : str
    null : (K, M, G) or (K, G) array or None
        Null correlations, only when ``store_null=True``.
    """

    r: np.ndarray
    pvalue: np.ndarray
    pvalue_fdr: np.ndarray
    pvalue_fwer: np.ndarray
    null_max: np.ndarray
    n_perm: int
    method: str
    alternative: str
    null: np.ndarray | None = field(default=None, repr=False)


def _check_maps(x, Y):
    x = as_array("x", x)
    Y = as_array("Y", Y)
    check_finite("x", x, allow_nan=True)
    check_finite("Y", Y, allow_nan=True)
    if x.ndim not in (1, 2):
        raise ShapeError(f"x must be one map (N,) or M maps (M, N); got shape {x.shape}. Put maps in rows.")
    if Y.ndim == 1:
        Y = Y[None, :]
    if Y.ndim != 2:
        raise ShapeError(f"Y must be G maps of shape (G, N); got shape {Y.shape}. Put maps in rows, regions in columns.")
    if x.shape[-1] != Y.shape[-1]:
        raise ShapeError(
            f"x and Y must have the same number of regions N; got x {x.shape} and Y {Y.shape}. "
            "Use one parcellation and region order for both (align by label), with maps in rows."
        )
    x2 = x[None, :] if x.ndim == 1 else x
    for i, row in enumerate(x2):
        ok = row[~np.isnan(row)]
        if ok.size < 3 or np.ptp(ok) == 0:
            raise InputError(
                f"x must vary across at least 3 regions; map {i} is constant or has fewer than 3 finite values. "
                "Drop that map; a correlation with a constant map is undefined."
            )
    return x2, Y, x.ndim == 1


def _resolve_nulls(nulls, x2, n):
    """Return ('index', (K, N) int) or ('maps', (M, K, N) float)."""
    if isinstance(nulls, dict):
        return _nulls_from_spec(nulls, x2)
    arr = np.asarray(nulls)
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise InputError(
            f"nulls must be an index array (n_perm, N), surrogate maps (n_perm, N) or a generator spec dict; "
            f"got dtype {arr.dtype}. Pass e.g. nulls={{'method': 'vasa', 'coords': coords, 'n_perm': 1000, 'seed': 0}}."
        )
    if np.issubdtype(arr.dtype, np.integer):
        if arr.ndim != 2 or arr.shape[1] != n:
            raise ShapeError(
                f"nulls index arrays must be (n_perm, N) with N = {n}; got shape {arr.shape}. "
                "Transpose (N, n_perm) arrays from neuromaps (nulls.T)."
            )
        if arr.size and (arr.min() < -1 or arr.max() >= n):
            raise InputError(
                f"nulls index arrays must hold indices in [-1, {n - 1}]; got values from {arr.min()} to "
                f"{arr.max()}. Use -1 for dropped regions."
            )
        return "index", arr.astype(np.int64, copy=False)
    arr = arr.astype(np.float64, copy=False)
    check_finite("nulls", arr, allow_nan=True)
    m = x2.shape[0]
    if arr.ndim == 2 and m == 1:
        arr = arr[None]
    if arr.ndim != 3 or arr.shape[0] != m or arr.shape[2] != n:
        raise ShapeError(
            f"surrogate nulls must be (n_perm, N) for one map or (M, n_perm, N) for M maps, with N = {n}; "
            f"got shape {arr.shape} for {m} map(s). Generate surrogates of each map in x, one null per row."
        )
    return "maps", arr


def _nulls_from_spec(spec, x2):
    spec = dict(spec)
    method = spec.pop("method", None)
    n = x2.shape[1]
    if method in ("alexander_bloch", "vazquez_rodriguez", "vasa", "hungarian", "baum", "cornblath"):
        coords = spec.pop("coords", None)
        if coords is None:
            raise InputError("a spin nulls spec needs 'coords' (sphere coordinates of the regions); got none. "
                             "Add 'coords': (N, 3) array (and 'hemi').")
        if method == "cornblath":
            maps = np.stack([spin_permutations(coords, method=method, data=row, **spec) for row in x2])
            return "maps", maps
        return "index", spin_permutations(coords, method=method, **spec)
    if method in ("permutation", "naive"):
        from .engine.random import permutation_indices

        n_perm = check_positive_int("n_perm", spec.pop("n_perm", 1000))
        return "index", permutation_indices(spec.pop("seed", None), n_perm, n)
    if method in ("variogram", "burt2020"):
        distance = spec.pop("distance")
        return "maps", np.stack([variogram_surrogates(row, distance, **spec) for row in x2])
    if method == "burt2018":
        distance = spec.pop("distance")
        return "maps", np.stack([burt2018_surrogates(row, distance, **spec) for row in x2])
    if method == "moran":
        w = spec.pop("weights", None)
        if w is None:
            w = spec.pop("distance")
            w = moran_weights(w)
        return "maps", np.stack([moran(row, w, **spec) for row in x2])
    raise InputError(
        f"nulls spec 'method' must be one of 'alexander_bloch', 'vasa', 'hungarian', 'baum', 'cornblath', "
        f"'permutation', 'variogram', 'burt2018', 'moran'; got {method!r}. Pick one of those."
    )


def _is_exact_permutation(idx):
    if (idx < 0).any():
        return False
    n = idx.shape[1]
    seen = np.zeros(idx.shape, dtype=bool)
    np.put_along_axis(seen, idx, True, axis=1)
    return bool(seen.all()) and idx.shape[1] == n


def associate(
    x,
    Y,
    *,
    nulls,
    method="pearson",
    alternative="two-sided",
    store_null=False,
    batch_size=None,
    map_batch_size=None,
    memory_limit=None,
    min_count=3,
    progress=False,
    backend=None,
) -> Association:
    """Correlate map(s) ``x`` with many maps ``Y`` and test against spatial nulls.

    Parameters
    ----------
    x : (N,) or (M, N) array_like
        Source map(s), e.g. a coupling-change map. NaN marks missing regions.
    Y : (G, N) array_like
        Target maps (genes, receptor densities). NaN marks missing regions.
    nulls : (K, N) int array, (K, N) / (M, K, N) float array, or dict
        Index nulls of ``x`` (spins, permutations; row k entry i names the
        original region placed at i, -1 = dropped), surrogate maps of ``x``,
        or a generator spec such as ``{"method": "vasa", "coords": coords,
        "hemi": hemi, "n_perm": 1000, "seed": 0}`` (methods of
        :func:`spin_permutations`, ``"permutation"``, ``"variogram"`` with
        ``distance``, ``"burt2018"`` with ``distance``, ``"moran"`` with ``distance`` or ``weights``).
    method : {"pearson", "spearman"}
    alternative : {"two-sided", "greater", "less"}
    store_null : bool
        Keep the null correlations (memory K x M x G).
    batch_size : int, optional
        Nulls per block (default: planned from ``memory_limit``). Results do
        not depend on it.
    map_batch_size : int, optional
        Target maps per block (default: all, unless memory requires fewer).
    memory_limit : int, str or float, optional
        Working-set budget per block (default 128 MiB, which keeps blocks in cache-friendly sizes).
    min_count : int
        Fewest regions a pairwise-complete correlation needs.
    progress : bool
        Show a progress bar on stderr.
    backend : str, optional

    Returns
    -------
    Association

    Notes
    -----
    Without NaN, each block is one product of standardised rows
    ``Z(x_null) Z(Y)^T`` (METHODS 5.2). For Spearman with exact permutations
    (Váša, Hungarian, label permutations) ranks are computed once; other
    nulls are re-ranked per null. With NaN anywhere (medial wall, dropped
    parcels, missing expression) each pair uses the regions finite in both
    maps (pairwise-complete): Pearson by masked sums as matrix products,
    Spearman by re-ranking within each pair (much slower; it needs a
    ``(K, G, N)`` block). A constant ``x`` is an error; a constant row of
    ``Y`` gives NaN ``r`` and p-values and is left out of FDR and FWER. A
    null giving an undefined correlation (e.g. all-NaN) is not counted in K
    for that map.

    Examples
    --------
    >>> import numpy as np, recouple as rc
    >>> rng = np.random.default_rng(0)
    >>> x, Y = rng.standard_normal(50), rng.standard_normal((3, 50))
    >>> res = rc.nulls.associate(x, Y, nulls={"method": "permutation", "n_perm": 99, "seed": 0})
    >>> res.pvalue.shape
    (3,)
    """
    check_choice("method", method, ("pearson", "spearman"))
    check_choice("alternative", alternative, ALTERNATIVES)
    min_count = check_positive_int("min_count", min_count, minimum=2)
    x2, Y_all, x_1d = _check_maps(x, Y)
    m, n = x2.shape
    g_all = Y_all.shape[0]
    kind, nul = _resolve_nulls(nulls, x2, n)
    k_total = nul.shape[0] if kind == "index" else nul.shape[1]
    if k_total < 1:
        raise InputError("nulls must hold at least one null; got 0 rows. Generate e.g. n_perm=1000 nulls.")

    # Target maps that are constant over their finite regions have no defined
    # correlation: they are left out and reported as NaN.
    keep = _varies(Y_all)
    Y = Y_all[keep]
    g = Y.shape[0]

    has_nan = bool(np.isnan(x2).any() or np.isnan(Y).any())
    if kind == "index":
        has_nan = has_nan or bool((nul < 0).any())
    else:
        has_nan = has_nan or bool(np.isnan(nul).any())
    mode = "pairwise" if has_nan else "gemm"

    be = get_backend(backend)
    kern = be.compile(
        _k.association_block,
        static_argnames=("method", "mode", "standardized", "alternative", "store", "min_count"),
    )
    gather = be.compile(_k.gather_nulls)
    budget = parse_memory(memory_limit) if memory_limit is not None else _DEFAULT_BLOCK_MEMORY

    # For exact permutations without NaN, rank (Spearman) and standardise x
    # once: gathered rows are then already standardised.
    standardized = False
    src = x2
    if mode == "gemm" and kind == "index" and _is_exact_permutation(nul):
        src = to_host(_k.standardize_rows(x2, method=method))
        standardized = True

    if mode == "gemm":
        per_pair, per_null_fixed = 8 * 2.0, 8 * 3.0 * m * n
    elif method == "pearson":
        per_pair, per_null_fixed = 8 * 12.0, 8 * 4.0 * m * n
    else:
        per_pair, per_null_fixed = 8 * 10.0 * n, 8 * 4.0 * m * n
    if map_batch_size is None:
        # All maps in one block unless even 16 nulls would not fit.
        gb = int(max(1, min(max(g, 1), (budget / 16 - per_null_fixed) // max(per_pair * m, 1))))
    else:
        gb = check_positive_int("map_batch_size", map_batch_size)
    if batch_size is None:
        kb = int(max(1, min(k_total, budget // (per_null_fixed + per_pair * m * gb))))
    else:
        kb = check_positive_int("batch_size", batch_size)

    g_starts = list(range(0, g, gb))
    targets = [
        to_host(_k.standardize_rows(Y[g0 : g0 + gb], method=method)) if mode == "gemm" else Y[g0 : g0 + gb]
        for g0 in g_starts
    ]
    r_obs = np.empty((m, g))
    for g0, tgt in zip(g_starts, targets):
        res = kern(be.to_device(x2[:, None, :]), be.to_device(tgt), be.to_device(np.zeros((m, tgt.shape[0]))),
                   method=method, mode=mode, standardized=False, alternative=alternative, store=True,
                   min_count=min_count)
        r_obs[:, g0 : g0 + tgt.shape[0]] = to_host(res["null"])[:, 0, :]

    count = np.zeros((m, g))
    n_valid = np.zeros((m, g))
    null_max = np.full((m, k_total), -np.inf)
    null_store = np.full((k_total, m, g_all), np.nan) if store_null else None
    cols = np.flatnonzero(keep)

    blocks = [(k0, g0, gi) for gi, g0 in enumerate(g_starts) for k0 in range(0, k_total, kb)]
    src_dev = be.to_device(src) if kind == "index" else None
    current = (None, None)
    for k0, g0, gi in _progress(blocks, progress):
        if current[0] != gi:
            current = (gi, be.to_device(targets[gi]))
        ks = slice(k0, min(k0 + kb, k_total))
        gs = slice(g0, g0 + targets[gi].shape[0])
        if kind == "index":
            xnull = gather(src_dev, be.to_device(nul[ks]))
        else:
            xnull = be.to_device(nul[:, ks])
        res = kern(xnull, current[1], be.to_device(r_obs[:, gs]), method=method, mode=mode,
                   standardized=standardized, alternative=alternative, store=store_null, min_count=min_count)
        count[:, gs] += to_host(res["count"])
        n_valid[:, gs] += to_host(res["n_valid"])
        null_max[:, ks] = np.maximum(null_max[:, ks], to_host(res["null_max"]))
        if store_null:
            null_store[ks, :, cols[gs]] = np.transpose(to_host(res["null"]), (1, 0, 2))

    p_kept = _kp.pvalue_from_counts(count, n_valid, r_obs)
    stat_obs = _kp.tail_score(r_obs, alternative)
    nm = np.where(np.isneginf(null_max), np.nan, null_max)
    pf_kept = np.stack([_kp.fwer_pvalue(stat_obs[i], nm[i]) for i in range(stat_obs.shape[0])])

    r_full = np.full((m, g_all), np.nan)
    p = np.full((m, g_all), np.nan)
    p_fwer = np.full((m, g_all), np.nan)
    r_full[:, cols], p[:, cols], p_fwer[:, cols] = r_obs, p_kept, pf_kept
    q = np.stack([_ks.fdr_bh(row) for row in p])
    r_obs = r_full
    if x_1d:
        r_obs, p, q, p_fwer, nm = r_obs[0], p[0], q[0], p_fwer[0], nm[0]
        if store_null:
            null_store = null_store[:, 0, :]
    return Association(r=r_obs, pvalue=p, pvalue_fdr=q, pvalue_fwer=p_fwer, null_max=nm, n_perm=int(k_total),
                       method=method, alternative=alternative, null=null_store)


def _progress(items, show):
    if not show:
        return items
    try:
        from .engine.progress import progress as bar
    except ImportError:  # pragma: no cover - progress bars are optional
        return items
    return bar(items, total=len(items), desc="associate", unit="blocks")


def _varies(Y):
    if not np.isnan(Y).any():
        return Y.max(axis=1) > Y.min(axis=1)
    finite = ~np.isnan(Y)
    hi = np.where(finite, Y, -np.inf).max(axis=1)
    lo = np.where(finite, Y, np.inf).min(axis=1)
    return (finite.sum(axis=1) >= 2) & (hi > lo)


# ----------------------------------------------------------------------------
# Rotations and spins
# ----------------------------------------------------------------------------

SPIN_METHODS = ("alexander_bloch", "vazquez_rodriguez", "vasa", "hungarian", "baum", "cornblath")
_REFLECT = np.diag([-1.0, 1.0, 1.0])


def rotations_from_normals(normals) -> np.ndarray:
    """Haar rotations from standard-normal ``(K, 3, 3)`` draws (left and mirrored right).

    ``Q, R = qr(A)``; ``Q <- Q diag(sign(diag(R)))``; if ``det(Q) < 0`` the
    first column is negated; the right hemisphere uses ``F Q F`` with
    ``F = diag(-1, 1, 1)`` (METHODS 2.1). Feeding the normals of
    ``np.random.RandomState(seed).normal(size=(3, 3))``, one block per spin,
    reproduces neuromaps' ``_gen_rotation`` exactly.

    Returns
    -------
    (K, 2, 3, 3) array: ``[:, 0]`` left, ``[:, 1]`` right.
    """
    a = np.asarray(normals, dtype=np.float64)
    if a.ndim != 3 or a.shape[1:] != (3, 3):
        raise ShapeError(f"normals must be (K, 3, 3); got shape {a.shape}. Draw one 3x3 block per rotation.")
    q, r = np.linalg.qr(a)
    q = q * np.sign(np.diagonal(r, axis1=1, axis2=2))[:, None, :]
    neg = np.linalg.det(q) < 0
    q[neg, :, 0] = -q[neg, :, 0]
    right = _REFLECT @ q @ _REFLECT
    return np.stack([q, right], axis=1)


def rotations(n_perm, *, seed=None, start=0) -> np.ndarray:
    """``(n_perm, 2, 3, 3)`` uniform random rotations (left, mirrored right).

    Rotation k is drawn from its own stream ``SeedSequence(seed, spawn_key=
    ("rotation", k))``, so any subset or batch gives the same rotations.

    Examples
    --------
    >>> import recouple as rc
    >>> R = rc.nulls.rotations(4, seed=0)
    >>> R.shape
    (4, 2, 3, 3)
    """
    from .engine.random import streams

    n_perm = check_positive_int("n_perm", n_perm)
    normals = np.stack([g.standard_normal((3, 3)) for g in streams(seed, "rotation", range(start, start + n_perm))])
    return rotations_from_normals(normals)


def _check_rotations(rot, n_perm):
    r = np.asarray(rot, dtype=np.float64)
    if r.ndim == 3 and r.shape[1:] == (3, 3):
        r = np.stack([r, _REFLECT @ r @ _REFLECT], axis=1)
    if r.ndim != 4 or r.shape[1:] != (2, 3, 3):
        raise ShapeError(
            f"rotations must be (n_perm, 3, 3) left-hemisphere rotations or (n_perm, 2, 3, 3) (left, right); "
            f"got shape {r.shape}. Use rc.nulls.rotations(n_perm, seed=...)."
        )
    err = np.abs(np.einsum("abij,abik->abjk", r, r) - np.eye(3)).max() if r.size else 0.0
    if err > 1e-8:
        raise InputError(f"rotations must be orthogonal matrices (max |R^T R - I| = {err:.2g}). "
                         "Pass rotation matrices, e.g. from rc.nulls.rotations.")
    if n_perm is not None and r.shape[0] != n_perm:
        raise InputError(f"rotations hold {r.shape[0]} rotations but n_perm={n_perm}; pass matching numbers "
                         "(or leave n_perm out).")
    return r


def _check_hemi(hemi, n):
    if hemi is None:
        return np.zeros(n, dtype=np.int64)
    h = np.asarray(hemi)
    if h.dtype.kind in "UO":
        lower = np.char.lower(h.astype(str))
        out = np.full(h.shape, -1, dtype=np.int64)
        out[np.isin(lower, ("l", "lh", "left"))] = 0
        out[np.isin(lower, ("r", "rh", "right"))] = 1
        h = out
    h = np.asarray(h).astype(np.int64, copy=False)
    if h.shape != (n,) or not np.isin(h, (0, 1)).all():
        raise InputError(
            f"hemi must be ({n},) with 0/'L' for left and 1/'R' for right; got {describe_hemi(hemi)}. "
            "Pass one hemisphere label per region."
        )
    return h


def describe_hemi(hemi):
    h = np.asarray(hemi)
    return f"shape {h.shape} with values {np.unique(h)[:6]}"


def _check_sphere(coords, hemi):
    c = as_array("coords", coords)
    if c.ndim != 2 or c.shape[1] != 3:
        raise ShapeError(f"coords must be (N, 3) sphere coordinates; got shape {c.shape}. Pass x, y, z columns.")
    check_finite("coords", c)
    for h in (0, 1):
        sel = c[hemi == h]
        if len(sel) < 2:
            continue
        rad = np.linalg.norm(sel, axis=1)
        if rad.min() <= 0 or (rad.max() - rad.min()) > 0.02 * rad.mean():
            raise InputError(
                f"coords must lie on a sphere centred at the origin; hemisphere {h} has radii from "
                f"{rad.min():.4g} to {rad.max():.4g}. Use sphere surfaces (e.g. ?h.sphere) and parcel centroids "
                "snapped to the sphere (rc.io.surfaces.parcel_centroids)."
            )
    return c


class _SphereIndex:
    """Exact nearest-point lookup on a sphere through a cube-map grid of
    candidate lists (built once with a KD-tree; queried as a cell lookup,
    with a gather + argmin only in cells that several points can own).

    A point j is a candidate of a cell when some query in the cell's
    bounding cap (at any radius the points take) is at least as near to j
    as to the point k nearest the cell centre: ``max (p_j - p_k).q >=
    (|p_j|^2 - |p_k|^2) / 2`` over the cap, with a small safety margin.
    """

    def __init__(self, points, cells_per_point=16):
        from scipy.spatial import cKDTree

        self.points = points
        n = len(points)
        grid = max(4, int(np.ceil(np.sqrt(cells_per_point * n / 6))))
        r = np.linalg.norm(points, axis=1)
        r0, rmin, rmax = r.mean(), r.min(), r.max()
        edges = np.linspace(-1.0, 1.0, grid + 1)
        mid = (edges[:-1] + edges[1:]) / 2
        centers, angles = [], []
        for axis in range(3):
            others = [a for a in range(3) if a != axis]
            for sign in (1.0, -1.0):

                def direction(u, v):
                    d = np.empty(u.shape + (3,))
                    d[..., axis], d[..., others[0]], d[..., others[1]] = sign, u, v
                    return d / np.linalg.norm(d, axis=-1, keepdims=True)

                U, V = np.meshgrid(mid, mid, indexing="ij")
                c = direction(U, V)
                ang = np.zeros(U.shape)
                for eu in (edges[:-1], edges[1:]):
                    for ev in (edges[:-1], edges[1:]):
                        corner = direction(*np.meshgrid(eu, ev, indexing="ij"))
                        ang = np.maximum(ang, np.arccos(np.clip((c * corner).sum(-1), -1.0, 1.0)))
                centers.append(c.reshape(-1, 3))
                angles.append(ang.reshape(-1))
        # Cell order matches kernels.nulls.cube_cells: face = 2 axis + (major < 0).
        unit = np.concatenate(centers)
        alpha = np.minimum(np.concatenate(angles) * 1.01 + 1e-9, np.pi)
        tree = cKDTree(points)
        dnn, nn = tree.query(r0 * unit)
        # Superset by the triangle inequality (chord <= arc), then the exact cap test.
        reach = dnn + 2 * (r0 * alpha + (rmax - rmin)) + 1e-9 * r0
        # every point within each cell's reach: the k nearest (k doubled until
        # the k-th lies beyond every reach), as arrays rather than one Python
        # list per cell
        workers = host_thread_count()
        k = min(n, 32)
        while True:
            dk, ik = tree.query(r0 * unit, k=k, distance_upper_bound=float(reach.max()), workers=workers)
            dk, ik = dk.reshape(len(unit), -1), ik.reshape(len(unit), -1)
            if k >= n or np.all(dk[:, -1] > reach):
                break
            k = min(n, 2 * k)
        within = dk <= reach[:, None]
        sizes = within.sum(axis=1)
        width = int(sizes.max())
        ordered = np.sort(np.where(within, ik, n), axis=1)[:, :width]  # ascending indices, then padding
        raw = np.where(np.arange(width)[None, :] < sizes[:, None], ordered, ordered[:, :1])
        w = points[raw] - points[nn][:, None, :]  # (cells, width, 3)
        along = np.einsum("cwk,ck->cw", w, unit)
        perp = np.sqrt(np.maximum(np.einsum("cwk,cwk->cw", w, w) - along**2, 0.0))
        ca, sa = np.cos(alpha)[:, None], np.sin(alpha)[:, None]
        inside = along >= np.sqrt(np.einsum("cwk,cwk->cw", w, w)) * ca  # w's direction lies in the cap
        h = np.where(inside, np.sqrt(along**2 + perp**2), along * ca + perp * sa)
        reach_w = np.where(h > 0, rmax * h, rmin * h)
        rhs = (np.einsum("cwk,cwk->cw", points[raw], points[raw]) - (r[nn] ** 2)[:, None]) / 2
        keep = reach_w >= rhs - 1e-9 * r0 * (r0 + np.sqrt(np.einsum("cwk,cwk->cw", w, w)))
        keep |= raw == nn[:, None]
        keep &= np.arange(width)[None, :] < sizes[:, None]  # no padding copies
        # Kept candidates first, ascending; pad with the first.
        order = np.argsort(np.where(keep, raw, np.iinfo(np.int64).max), axis=1, kind="stable")
        srt = np.take_along_axis(raw, order, axis=1)
        kcount = keep.sum(axis=1)
        width = int(kcount.max())
        table = srt[:, :width].copy()
        pad = np.arange(width)[None, :] >= kcount[:, None]
        table[pad] = np.broadcast_to(table[:, :1], table.shape)[pad]
        self.table, self.grid = table, grid
        # host lookups: the first two candidates as contiguous columns (one
        # candidate when they agree) and a compact copy of the whole table
        small = np.int32 if n < 2**31 else np.int64
        self.first = np.ascontiguousarray(table[:, 0]).astype(small)
        self.second = np.ascontiguousarray(table[:, min(1, table.shape[1] - 1)]).astype(small)
        self.table_small = table.astype(small)
        self._loop_tables = None

    def loop_tables(self):
        """Inputs of :func:`recouple.host.jit.nearest_on_cells`: the points
        as columns sorted by their own cell (consecutive queries then stay
        near each other after any rotation, and so do their candidates in
        memory), the original index of each column, and the table in column
        positions (candidate order, hence the tie rule, unchanged)."""
        if self._loop_tables is None:
            n = len(self.points)
            order = np.argsort(_cube_cells_columns(self.points.T, self.grid), kind="stable").astype(np.int64)
            position = np.empty(n, dtype=np.int64)
            position[order] = np.arange(n)
            small = np.int16 if n <= np.iinfo(np.int16).max else np.int32  # a table that stays in cache
            self._loop_tables = (np.ascontiguousarray(self.points[order].T), order,
                                 position[self.table].astype(small))
        return self._loop_tables


_INDEX_CACHE: dict = {}


def _sphere_index(points):
    # The grid index depends only on the points: keep the last few (spheres
    # are reused across calls, e.g. once per hemisphere).
    import hashlib

    # The compiled loop reads every candidate of a cell at little cost, so a
    # coarser grid (a smaller table, kept in cache) is faster there; the NumPy
    # path pays per ambiguous query and wants the finer one.
    cells_per_point = 8 if _host.enabled() else 16
    key = (points.shape, cells_per_point, hashlib.sha1(np.ascontiguousarray(points).tobytes()).hexdigest())
    idx = _INDEX_CACHE.get(key)
    if idx is None:
        idx = _SphereIndex(points, cells_per_point=cells_per_point)
        if len(_INDEX_CACHE) >= 4:
            _INDEX_CACHE.pop(next(iter(_INDEX_CACHE)))
        _INDEX_CACHE[key] = idx
    return idx


def _nearest_push(be, points, rots, *, index=None, batch=None):
    """(K, n): entry i = the point j whose rotated position p_j R is nearest to p_i."""
    n = len(points)
    k_total = len(rots)
    out = np.empty((k_total, n), dtype=np.int64)
    if index is None:
        fn = be.compile(_k.nearest_on_sphere)
        step = batch or max(1, int(2**26 // max(n * n * 8, 1)))
        pts = be.to_device(points)
        for k0 in range(0, k_total, step):
            out[k0 : k0 + step] = to_host(fn(pts, be.to_device(rots[k0 : k0 + step])))
        return out
    pt = np.ascontiguousarray(points.T)
    if be.name == "numpy" and _host.enabled():
        cols, order, table = index.loop_tables()
        rots = np.ascontiguousarray(rots, dtype=np.float64)
        step = batch or max(1, -(-k_total // (8 * host_thread_count())))

        def block(k0):
            _host.nearest_on_cells(cols, order, rots[k0 : k0 + step], table, index.grid, out[k0 : k0 + step])

        host_map(block, range(0, k_total, step))
        return out
    step = batch or max(1, int(2**18 // max(n * index.table.shape[1], 1)))
    if be.name == "numpy":
        def block(k0):
            out[k0 : k0 + step] = _nearest_grid_numpy(pt, rots[k0 : k0 + step], index)

        # gathers and element-wise passes release the GIL: blocks of rotations
        # on every core (each block writes its own rows)
        host_map(block, range(0, k_total, step))
        return out
    fn = be.compile(_k.nearest_by_candidates, static_argnames=("grid",))
    pts, tab = be.to_device(points), be.to_device(index.table)
    for k0 in range(0, k_total, step):
        # |p_i - p_j R| = |p_i R^T - p_j|: query p_i R^T among the fixed points
        # (the same host arithmetic as the NumPy path, so the same queries)
        q = np.moveaxis(_rotate_columns(pt, rots[k0 : k0 + step]), 0, -1)
        out[k0 : k0 + step] = to_host(fn(be.to_device(np.ascontiguousarray(q)), pts, tab, grid=index.grid))
    return out


def _rotate_columns(pt, rots):
    """Queries p_i R^T as coordinate columns (3, K, n) from ``pt`` = points.T,
    summed x, y, z in that order (no fused multiply-add), so that every
    backend sees the same numbers."""
    q = np.empty((3, len(rots), pt.shape[1]))
    for a in range(3):
        np.multiply(pt[0], rots[:, a, 0, None], out=q[a])
        q[a] += pt[1] * rots[:, a, 1, None]
        q[a] += pt[2] * rots[:, a, 2, None]
    return q


def _cube_cells_columns(q, grid):
    # kernels.nulls.cube_cells on coordinate columns, in float32: a query
    # that lands in the neighbouring cell by rounding lies within ~1e-6 of a
    # cell edge, far inside the 1% angular margin of that cell's candidate cap.
    x, y, z = (c.astype(np.float32) for c in q)
    ax, ay, az = np.abs(x), np.abs(y), np.abs(z)
    fx = (ax >= ay) & (ax >= az)
    fy = ~fx & (ay >= az)
    fz = ~(fx | fy)
    major = np.where(fx, x, np.where(fy, y, z))
    u = np.where(fx, y, x)
    v = np.where(fz, y, z)
    s = np.float32(grid / 2) / np.abs(major)
    half = np.float32(grid / 2)
    iu = np.clip((u * s + half).astype(np.int32), 0, grid - 1)
    iv = np.clip((v * s + half).astype(np.int32), 0, grid - 1)
    face = 2 * (fy.astype(np.int32) + 2 * fz.astype(np.int32)) + (major < 0)
    return (face * grid + iu) * grid + iv


def _nearest_grid_numpy(pt, rots, index):
    """(K, n) nearest point to each p_i R^T by the grid index, on the host.

    One lookup where a cell has a single candidate; elsewhere the candidates'
    squared distances (summed x, y, z as in the kernel) and the first minimum,
    with 1-D gathers on coordinate columns throughout.
    """
    kb, n = len(rots), pt.shape[1]
    q = _rotate_columns(pt, rots).reshape(3, kb * n)
    cell = _cube_cells_columns(q, index.grid).reshape(-1)
    best = index.first[cell].astype(np.int64)
    amb = np.flatnonzero(index.second[cell] != best)
    if amb.size:
        cand = np.take(index.table_small, cell[amb], axis=0)  # several times faster than fancy row indexing
        width = cand.shape[1]
        flat = cand.reshape(-1)
        d2 = None
        for a in range(3):
            pa = pt[a][flat].reshape(cand.shape)
            pa -= q[a][amb][:, None]
            pa *= pa
            d2 = pa if d2 is None else d2.__iadd__(pa)
        pick = d2.argmin(axis=1)
        best[amb] = flat[np.arange(amb.size, dtype=np.int64) * width + pick]
    return best.reshape(kb, n)


def _euclidean(a, b):
    # Same arithmetic as scipy.spatial.distance_matrix (sqrt of squares summed
    # x, y, z in order), one axis at a time from contiguous coordinate
    # columns (no (..., n, m, 3) temporary, no strided inner loops); one
    # compiled pass for (n, 3) against (K, m, 3) when the host loops are on.
    if a.ndim == 2 and b.ndim == 3 and a.shape[1] == 3 and b.shape[2] == 3 and _host.enabled():
        return _host.euclidean_blocks(a.T, np.swapaxes(b, 1, 2))
    at = np.ascontiguousarray(np.moveaxis(a, -1, 0))
    bt = np.ascontiguousarray(np.moveaxis(b, -1, 0))
    d2 = None
    for ax in range(at.shape[0]):
        diff = at[ax][..., :, None] - bt[ax][..., None, :]
        np.multiply(diff, diff, out=diff)
        if d2 is None:
            d2 = diff
        else:
            d2 += diff
    return np.sqrt(d2, out=d2)


def _vasa(coords, rots):
    """Váša et al. 2018 greedy reassignment for all rotations at once.

    Repeat n times, for every rotation in parallel: take the remaining
    original parcel whose closest remaining rotated parcel is farthest, assign
    it that parcel and remove both. Row minima are updated only for rows that
    lost their closest column; taken columns are flagged rather than written
    into the distance block (a strided write of the whole block each step).
    """
    k_total, n = len(rots), len(coords)
    out = np.empty((k_total, n), dtype=np.int64)
    step = max(1, int(2**27 // (n * n * 8 * 3)))
    step = max(1, min(step, -(-k_total // host_thread_count())))  # at least one block per core
    sub = max(1, int(2**20 // (n * n * 8)))  # distances in cache-sized blocks of rotations
    ar = np.arange

    def block(k0):
        R = rots[k0 : k0 + step]
        kb = len(R)
        rotated = np.matmul(coords[None], R)
        dist = np.empty((kb, n, n))
        for j in range(0, kb, sub):
            dist[j : j + sub] = _euclidean(coords, rotated[j : j + sub])
        rowmin = dist.min(axis=2)
        rowarg = dist.argmin(axis=2)
        taken = np.zeros((kb, n), dtype=bool)
        kk = ar(kb)
        for _ in range(n):
            row = rowmin.argmax(axis=1)
            col = rowarg[kk, row]
            out[k0 + kk, row] = col
            rowmin[kk, row] = -np.inf
            rowarg[kk, row] = -1  # assigned rows never look stale
            taken[kk, col] = True
            # Rows whose closest column was just taken: recompute their minimum.
            sk, sr = np.nonzero(rowarg == col[:, None])
            if sk.size:
                d = np.where(taken[sk], np.inf, dist[sk, sr])
                a = d.argmin(axis=1)
                rowarg[sk, sr] = a
                rowmin[sk, sr] = d[ar(sk.size), a]

    # blocks of rotations are independent: one per core (the element-wise
    # passes and gathers release the GIL; each block writes its own rows)
    host_map(block, range(0, k_total, step))
    return out


def _hungarian(coords, rots):
    from scipy.optimize import linear_sum_assignment

    n = len(coords)
    sub = max(1, int(2**20 // (n * n * 8)))  # distances in cache-sized blocks of rotations
    if _host.enabled():
        # SciPy's algorithm and choices, compiled over a block of matrices
        # (no per-matrix call); rows of `out` written by each block
        out = np.empty((len(rots), n), dtype=np.int64)

        def block_compiled(k0):
            dist = _euclidean(coords, np.matmul(coords[None], rots[k0 : k0 + sub]))
            _host.assignment_blocks(dist, out[k0 : k0 + sub])

        host_map(block_compiled, range(0, len(rots), sub))
        return out

    def block(k0):
        rotated = np.matmul(coords[None], rots[k0 : k0 + sub])
        dist = _euclidean(coords, rotated)
        return [linear_sum_assignment(d)[1] for d in dist]

    cols = [c for part in host_map(block, range(0, len(rots), sub)) for c in part]
    return np.stack(cols).astype(np.int64)


def spin_permutations(
    coords,
    *,
    n_perm=None,
    method="alexander_bloch",
    hemi=None,
    seed=None,
    rotations=None,
    parcellation=None,
    data=None,
    backend=None,
    batch_size=None,
):
    """Spin-test resampling arrays ``(n_perm, N)`` (neuromaps conventions).

    Parameters
    ----------
    coords : (N, 3) or (V, 3) array_like
        Sphere coordinates of the N regions (vertices, or parcel centroids on
        the sphere, e.g. from :func:`recouple.io.surfaces.parcel_centroids`);
        for ``baum``/``cornblath`` the V sphere vertices of the parcellation.
        Each hemisphere must lie on a sphere centred at the origin.
    n_perm : int
        Number of spins (or taken from ``rotations``).
    method : {"alexander_bloch", "vasa", "hungarian", "baum", "cornblath"}
        ``alexander_bloch`` (alias ``vazquez_rodriguez``): nearest rotated
        region, duplicates allowed. ``vasa``: greedy farthest-first unique
        assignment. ``hungarian``: minimum total distance assignment (SciPy).
        ``baum``: rotate vertex labels, each parcel takes its most frequent
        rotated label (-1 when only medial wall lands on it). ``cornblath``:
        project ``data`` to vertices, rotate, re-average per parcel (NaN when
        only medial wall lands on it) — returns float maps.
    hemi : (N,) or (V,) array_like, optional
        0/'L' left, 1/'R' right; default: all one hemisphere. Hemispheres
        are rotated separately, the right with the mirrored rotation.
    seed : int, optional
        Seed for :func:`rotations` (ignored when ``rotations`` is given).
    rotations : (n_perm, 3, 3) or (n_perm, 2, 3, 3) array_like, optional
        Precomputed rotations (left; or left and right).
    parcellation : (V,) int array_like
        ``baum``/``cornblath``: parcel label of each vertex, 0 = medial wall;
        parcels are the sorted non-zero labels.
    data : (N,) array_like
        ``cornblath``: the parcel values to spin.
    backend, batch_size : optional
        Where the nearest-neighbour kernels run; rotations per block.

    Returns
    -------
    (n_perm, N) int array (float array for ``cornblath``)
        Row k, entry i names the original region whose rotated position lands
        nearest to region i; -1 marks a parcel covered by medial wall.

    Notes
    -----
    Nearest neighbours are exact: a batched product + argmin for up to a few
    hundred points per hemisphere, and above that a cube-map grid of
    candidate lists built once (cached per sphere), queried by a cell lookup
    and a gather + argmin where a cell has several candidates. ``vasa`` runs
    the greedy loop for all rotations at once; ``hungarian`` calls SciPy per
    rotation; ``baum``/``cornblath`` tally rotated labels with ``bincount``.
    Duplicate spins are not re-drawn (neuromaps' ``check_duplicates``).

    References
    ----------
    Alexander-Bloch AF et al. NeuroImage 2018;178:540-551. Váša F et al.
    Cereb Cortex 2018;28:281-294. Markello RD, Mišić B. NeuroImage 2021;236:118052.
    """
    check_choice("method", method, SPIN_METHODS)
    if rotations is None:
        if n_perm is None:
            raise InputError("n_perm must be given when rotations are not; got None. Pass e.g. n_perm=1000.")
        rots = globals()["rotations"](n_perm, seed=seed)
    else:
        rots = _check_rotations(rotations, n_perm)
    coords_arr = as_array("coords", coords)
    hemi_arr = _check_hemi(hemi, coords_arr.shape[0] if coords_arr.ndim == 2 else -1)
    coords_arr = _check_sphere(coords_arr, hemi_arr)
    be = get_backend(backend)
    n = coords_arr.shape[0]

    if method in ("baum", "cornblath"):
        return _spin_parcellation(coords_arr, hemi_arr, rots, method, parcellation, data, be, batch_size)

    out = np.empty((len(rots), n), dtype=np.int64)
    for h in (0, 1):
        sel = np.flatnonzero(hemi_arr == h)
        if sel.size == 0:
            continue
        pts = coords_arr[sel]
        R = rots[:, h]
        if method in ("alexander_bloch", "vazquez_rodriguez"):
            # the grid pays for its build from ~500 points on (brute force is
            # O(n^2) a rotation); with the compiled lookup from a few dozen
            grid_from = 32 if be.name == "numpy" and _host.enabled() else 512
            index = _sphere_index(pts) if sel.size > grid_from else None
            col = _nearest_push(be, pts, R, index=index, batch=batch_size)
        elif method == "vasa":
            col = _vasa(pts, R)
        else:
            col = _hungarian(pts, R)
        if sel[-1] - sel[0] + 1 == sel.size:  # a hemisphere stored as one block: an offset, not a gather
            np.add(col, sel[0], out=out[:, sel[0] : sel[-1] + 1])
        else:
            out[:, sel] = sel[col]
    return out


def _spin_parcellation(coords, hemi, rots, method, parcellation, data, be, batch_size):
    if parcellation is None:
        raise InputError(f"method={method!r} needs parcellation=(V,) vertex labels; got None. "
                         "Pass the label of each sphere vertex (0 = medial wall).")
    lab = np.asarray(parcellation)
    if lab.shape != (coords.shape[0],):
        raise ShapeError(f"parcellation must hold one label per vertex ({coords.shape[0]}); got shape {lab.shape}. "
                         "Use the labels of the same sphere.")
    lab = lab.astype(np.int64)
    codes = np.unique(lab[lab != 0])
    n_parc = codes.size
    pidx = np.where(lab == 0, -1, np.searchsorted(codes, lab))  # vertex -> parcel index or -1
    spins = spin_permutations(coords, method="alexander_bloch", hemi=hemi, rotations=rots, backend=be.name,
                              batch_size=batch_size)
    k_total, v = spins.shape
    if method == "cornblath":
        x = as_array("data", data)
        if x.shape != (n_parc,):
            raise ShapeError(f"data must hold one value per parcel ({n_parc}); got shape {x.shape}. "
                             "Order parcels by sorted parcellation label.")
        vert = np.where(pidx >= 0, x[np.maximum(pidx, 0)], np.nan)
        out = np.empty((k_total, n_parc))
        for k in range(k_total):
            vals = vert[spins[k]]
            ok = (pidx >= 0) & ~np.isnan(vals)
            s = np.bincount(pidx[ok], weights=vals[ok], minlength=n_parc)
            c = np.bincount(pidx[ok], minlength=n_parc)
            with np.errstate(invalid="ignore", divide="ignore"):
                out[k] = np.where(c > 0, s / np.maximum(c, 1), np.nan)
        return out
    # baum: most frequent rotated (non-medial) label per parcel; ties -> lowest label.
    out = np.empty((k_total, n_parc), dtype=np.int64)
    own = pidx >= 0
    for k in range(k_total):
        rl = pidx[spins[k]]
        ok = own & (rl >= 0)
        counts = np.bincount(pidx[ok] * n_parc + rl[ok], minlength=n_parc * n_parc).reshape(n_parc, n_parc)
        best = counts.argmax(axis=1)
        out[k] = np.where(counts.max(axis=1) > 0, best, -1)
    return out


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
            return _euclidean(c, c)
        from scipy.spatial import cKDTree

        k = check_positive_int("knn", knn)
        k = min(k, n - 1)
        d, idx = cKDTree(c).query(c, k=k + 1, workers=-1)
        return d, idx.astype(np.int64)
    if faces is None:
        raise InputError("method='geodesic' needs faces=(F, 3) mesh triangles; got None. Pass the surface's faces.")
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import dijkstra

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
    seed=None,
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
        Surrogate k uses its own stream: a permutation then normals.
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
        return _variogram_sampled(x_all, D_all, index, n_perm=n_perm, seed=seed, deltas=deltas, kernel=kernel,
                                  pv=70 if pv is None else pv, nh=nh, resample=resample, b=b, ns=ns, knn=knn,
                                  permutations=permutations, normals=normals, return_fit=return_fit)
    if D_all.shape != (x_all.shape[0],) * 2:
        raise ShapeError(f"distance must be (N, N) with N = {x_all.shape[0]}; got {D_all.shape}. "
                         "For dense data use mode='sampled' with distance(coords, knn=...).")
    pv = 25 if pv is None else pv
    deltas = np.linspace(0.1, 0.9, 9) if deltas is None else np.asarray(deltas, dtype=float)
    if deltas.ndim != 1 or np.any(deltas <= 0) or np.any(deltas > 1):
        raise InputError(f"deltas must be fractions in (0, 1]; got {deltas}. Pass e.g. [0.1, 0.3, 0.5].")
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

    perms, z = _perm_normals(seed, n_perm, n, permutations, normals, "variogram")
    be = get_backend(backend)
    fn = be.compile(_k.variogram_block)
    step = batch_size or max(1, int(2**26 // max(8 * (len(deltas) * (n + len(pi)) + 4 * n), 1)))
    dev = [be.to_device(a) for a in (smoothers, pi, pj, W, gamma_t)]
    parts = []
    for k0 in range(0, n_perm, step):
        xp_ = xv[perms[k0 : k0 + step]]
        out_b = fn(be.to_device(xp_), be.to_device(z[k0 : k0 + step]), *dev)
        parts.append({key: to_host(v) for key, v in out_b.items()})
    res = {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}
    surr = res["maps"]
    if resample:
        ranks = np.argsort(np.argsort(surr, axis=1, kind="stable"), axis=1, kind="stable")
        surr = np.sort(xv)[ranks]
    else:
        surr = surr - surr.mean(axis=1, keepdims=True)
    out = np.full((n_perm, x_all.size), np.nan)
    out[:, valid] = surr
    if return_fit:
        return VariogramFit(maps=out, delta=deltas[res["delta_index"]], alpha=res["alpha"], beta=res["beta"],
                            sse=res["sse"], h=h, target=gamma_t)
    return out


def _perm_normals(seed, n_perm, n, permutations, normals, purpose):
    if permutations is not None:
        perms = np.asarray(permutations, dtype=np.int64)
        if perms.shape != (n_perm, n):
            raise ShapeError(f"permutations must be (n_perm, N) = ({n_perm}, {n}); got {perms.shape}. "
                             "Pass one permutation of the valid regions per surrogate.")
    if normals is not None:
        z = as_array("normals", normals)
        if z.shape != (n_perm, n):
            raise ShapeError(f"normals must be (n_perm, N) = ({n_perm}, {n}); got {z.shape}. "
                             "Pass one standard-normal vector per surrogate.")
    if permutations is None or normals is None:
        from .engine.random import streams

        gp, gz = np.empty((n_perm, n), dtype=np.int64), np.empty((n_perm, n))
        for k, g in enumerate(streams(seed, purpose, range(n_perm))):
            gp[k] = g.permutation(n)
            gz[k] = g.standard_normal(n)
        perms = gp if permutations is None else perms
        z = gz if normals is None else z
    return perms, z


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
    from scipy.sparse import csr_matrix

    # One sparse kNN smoothing matrix per delta: all surrogates of a batch are
    # smoothed by one sparse x dense product each.
    smoothers = []
    for k in ks:
        w = _kernel_weights(D[:, :k], kernel)
        indptr = np.arange(0, n * k + 1, k)
        smoothers.append(csr_matrix((w.ravel(), np.ascontiguousarray(J[:, :k]).ravel(), indptr), shape=(n, n)))
    perms, z = _perm_normals(seed, n_perm, n, permutations, normals, "variogram")
    from .engine.random import streams

    out = np.empty((n_perm, n))
    fit = {"delta": np.empty(n_perm), "alpha": np.empty(n_perm), "beta": np.empty(n_perm), "sse": np.empty(n_perm)}
    samplers = streams(seed, "variogram-sample", range(n_perm))
    step = 32
    for k0 in range(0, n_perm, step):
        kk = range(k0, min(k0 + step, n_perm))
        xperm = x_all[perms[k0 : k0 + step]].T  # (n, B)
        sms = np.stack([S @ xperm for S in smoothers])  # (D, n, B)
        for b, k in enumerate(kk):
            rows = samplers[k].choice(n, size=ns, replace=False)
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
            surr = np.sqrt(abs(bt[best])) * sm[best] + np.sqrt(abs(a[best])) * z[k]
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


def moran(x, weights, *, n_perm=1000, seed=None, procedure="singleton", tol=1e-6, joint=False, backend=None):
    """Moran spectral randomisation surrogates ``(n_perm, N)`` (Wagner & Dray 2015; BrainSpace).

    Parameters
    ----------
    x : (N,) array_like
    weights : (N, N) array_like
        Spatial weights (symmetrised), e.g. :func:`moran_weights` of distances.
    procedure : {"singleton", "pair"}
        ``singleton``: flip the sign of each Moran coefficient at random.
        ``pair``: rotate random pairs of coefficients by a uniform angle.
    tol : float
        Keep eigenvectors with ``|lambda| >= tol`` (neuromaps uses 1e-6).
    joint : bool
        ``pair`` only: add ``atan2(r_a, r_b)`` to each angle (BrainSpace ``joint``).

    Returns
    -------
    (n_perm, N) array; each surrogate has the mean and (when all eigenvectors are
    kept) the variance of ``x``.
    """
    check_choice("procedure", procedure, ("singleton", "pair"))
    n_perm = check_positive_int("n_perm", n_perm)
    xv = as_array("x", x, ndim=1)
    check_finite("x", xv)
    if np.ptp(xv) == 0:
        raise InputError("x must vary; it is constant. Pass a brain map.")
    W = as_array("weights", weights)
    if W.shape != (xv.size, xv.size):
        raise ShapeError(f"weights must be (N, N) with N = {xv.size}; got {W.shape}. Use the regions of x.")
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
    from .engine.random import streams

    c = U.shape[1]
    coeffs = np.empty((n_perm, c))
    for k, g in enumerate(streams(seed, f"moran-{procedure}", range(n_perm))):
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
    from .engine.dispatch import call_kernel

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


def burt2018_surrogates(x, distance, *, n_perm=1000, seed=None, rho=None, d0=None, normalize="row",
                        normals=None, return_params=False, backend=None):
    """Spatial-lag surrogates (Burt et al. 2018), rank-matched to ``x``.

    Parameters
    ----------
    x : (N,) array_like
        Map (finite).
    distance : (N, N) array_like
    n_perm : int
    seed : int, optional
        Surrogate k draws its normals from its own stream.
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

    Returns
    -------
    (n_perm, N) array (and ``(rho, d0)``). Surrogate k is
    ``(I - rho W)^{-1} u_k`` (one LU for all k) with its values replaced by the
    sorted values of ``x`` in its rank order.

    References
    ----------
    Burt JB et al. Nat Neurosci 2018;21:1251-1259.
    """
    from scipy import linalg
    from scipy.optimize import least_squares
    from scipy.stats import boxcox

    check_choice("normalize", normalize, ("row", "neuromaps"))
    n_perm = check_positive_int("n_perm", n_perm)
    xv = as_array("x", x, ndim=1)
    check_finite("x", xv)
    if np.ptp(xv) == 0:
        raise InputError("x must vary; it is constant. Pass a brain map.")
    D = as_array("distance", distance)
    if D.shape != (xv.size, xv.size):
        raise ShapeError(f"distance must be (N, N) with N = {xv.size}; got {D.shape}. Use the regions of x.")
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
        from .engine.random import streams

        z = np.stack([g.standard_normal(xv.size) for g in streams(seed, "burt2018", range(n_perm))])
    else:
        z = as_array("normals", normals)
        if z.shape != (n_perm, xv.size):
            raise ShapeError(f"normals must be (n_perm, N) = ({n_perm}, {xv.size}); got {z.shape}.")
    A = np.eye(xv.size) - rho * _sar_weights(D, d0, normalize)
    surr = linalg.lu_solve(linalg.lu_factor(A), z.T).T
    ranks = np.argsort(np.argsort(surr, axis=1, kind="stable"), axis=1, kind="stable")
    out = np.sort(xv)[ranks]
    return (out, (float(rho), float(d0))) if return_params else out
