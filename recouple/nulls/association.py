"""Map-versus-maps association under spatial nulls.

Association of one map (or M maps) with G maps under K nulls is computed as
streamed matrix products of standardised rows; per-map exceedance counts and
per-null maxima are reduced block by block, so the ``(K, G)`` null is kept
only when asked for. Nulls follow :mod:`recouple.nulls.spec`.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np

from ..engine.backend import get_backend, to_host
from ..engine.dispatch import device_get, device_put, pad_leading, resident_body, resident_step
from ..engine.planner import parse_memory
from ..engine.progress import progress as _progress_bar
from ..exceptions import InputError, ShapeError
from ..kernels import nulls as _k
from ..kernels import pvalues as _kp
from ..kernels import stats as _ks
from ..permutation.tail import gpd_pvalue
from ..validation import as_array, check_choice, check_finite, check_positive_int
from . import spec as _spec
from .spec import null_maps

__all__ = ["compare_maps", "associate", "Association", "null_maps", "resolution_note", "tail_pvalues"]

_DEFAULT_BLOCK_MEMORY = 128 * 2**20


@dataclass(frozen=True)
class Association:
    """Result of :func:`compare_maps`.

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
    tail_approximation : bool
        Whether ``pvalue`` and ``pvalue_fwer`` carry the generalised-Pareto
        tail approximation (:func:`tail_pvalues`); ``pvalue_fdr`` is then
        BH of the approximated ``pvalue``.
    pvalue_permutation : same shape as ``r`` or None
        With ``tail_approximation``, the plain permutation p-values (+1 rule).
    precision : str
        Arithmetic of the null correlations (``"float64"`` or ``"float32"``).
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
    tail_approximation: bool = False
    pvalue_permutation: np.ndarray | None = field(default=None, repr=False)
    precision: str = "float64"

    def resolution_note(self, alpha=0.05) -> str:
        """One sentence on why q-values stay above ``alpha`` when many p-values
        sit at the smallest attainable p-value ``1/(K+1)`` (empty otherwise);
        see :func:`resolution_note`."""
        p = np.atleast_2d(self.pvalue)
        notes = [resolution_note(row, self.n_perm, alpha=alpha) for row in p]
        if p.shape[0] == 1:
            return notes[0]
        return " ".join(f"Map {i}: {n}" for i, n in enumerate(notes) if n)


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



def _is_exact_permutation(idx):
    if (idx < 0).any():
        return False
    n = idx.shape[1]
    seen = np.zeros(idx.shape, dtype=bool)
    np.put_along_axis(seen, idx, True, axis=1)
    return bool(seen.all()) and idx.shape[1] == n


def compare_maps(
    x,
    Y,
    *,
    nulls,
    n_perm=1000,
    seed=0,
    coords=None,
    hemi=None,
    distance=None,
    method="pearson",
    alternative="two-sided",
    labels=None,
    tail_approximation=False,
    store_null=False,
    batch_size=None,
    map_batch_size=None,
    memory_limit=None,
    min_count=3,
    progress=False,
    backend=None,
    precision="float64",
) -> Association:
    """Correlate map(s) ``x`` with many maps ``Y`` and test against spatial nulls.

    Parameters
    ----------
    x : (N,) or (M, N) array_like
        Source map(s), e.g. a coupling-change map. NaN marks missing regions.
    Y : (G, N) array_like
        Target maps (genes, receptor densities). NaN marks missing regions.
    nulls : (K, N) int array, (K, N) / (M, K, N) float array, ``.npy`` path, method name or dict
        Index nulls of ``x`` (spins, permutations; row k entry i names the
        original region placed at i, -1 = dropped), surrogate maps of ``x``,
        or a generator spec such as ``{"method": "vasa", "coords": coords,
        "hemi": hemi, "n_perm": 1000, "seed": 0}`` (methods of
        :func:`spin_permutations`, ``"permutation"``, ``"variogram"`` with
        ``distance``, ``"burt2018"`` with ``distance``, ``"moran"`` with ``distance`` or ``weights``);
        see :mod:`recouple.nulls.spec`.
    n_perm, seed, coords, hemi, distance
        Defaults for nulls drawn by name or dict (``seed`` default 0: the
        same seed gives identical nulls).
    method : {"pearson", "spearman"}
    alternative : {"two-sided", "greater", "less"}
    labels : (N,) sequence of str, optional
        Region labels of the columns of ``x`` and ``Y``. Labelled nulls (a
        ``.npy`` with ``<file>.labels.txt`` from ``recouple nulls``, an
        ``.npz`` with ``labels``, :class:`recouple.nulls.spec.LabelledNulls`)
        are aligned to them by label; a region the nulls lack is an error.
    tail_approximation : bool
        Replace small p-values by a generalised-Pareto fit to the tail of the
        null (:func:`tail_pvalues`; Winkler et al. 2016), for each map pair
        and for the max-statistic FWER null, so p-values below ``1/(K+1)``
        can be resolved. Default False (plain permutation p-values).
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
    precision : {"float64", "float32"}
        Arithmetic of the null correlations (default ``"float64"``).
        ``"float32"`` halves their memory and is faster (about twice on
        CPUs); the observed ``r`` stays float64 and null correlations within
        the float32 rounding bound of the observed one count as ties
        (:func:`recouple.kernels.pvalues.tie_rtol`), so p-values are never
        below float64's. Needs maps and nulls without missing values (the
        matrix-product path).

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
    >>> res = rc.nulls.compare_maps(x, Y, nulls={"method": "permutation", "n_perm": 99, "seed": 0})
    >>> res.pvalue.shape
    (3,)
    """
    check_choice("method", method, ("pearson", "spearman"))
    check_choice("alternative", alternative, _kp.ALTERNATIVES)
    check_choice("precision", precision, _kp.PRECISIONS)
    min_count = check_positive_int("min_count", min_count, minimum=2)
    x2, Y_all, x_1d = _check_maps(x, Y)
    m, n = x2.shape
    g_all = Y_all.shape[0]
    source = _spec.resolve(nulls, x2, n_perm=n_perm, seed=seed, coords=coords, hemi=hemi, distance=distance,
                           labels=labels)
    if source is None:
        raise InputError("nulls must be given; got None. Pass index nulls, surrogate maps, a .npy path or a spec "
                         "such as {'method': 'vasa', 'coords': coords, 'hemi': hemi, 'n_perm': 1000}.")
    kind, nul = source
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
    if precision == "float32" and mode == "pairwise":
        raise InputError("precision='float32' needs maps and nulls without missing values (the matrix-product "
                         "path); got NaN in x, Y or the nulls (or dropped regions in index nulls). Use "
                         "precision='float64' (the default), or drop the missing regions first.")
    rtol = _kp.tie_rtol(precision, n)

    be = get_backend(backend)
    kern = be.compile(
        _k.association_block,
        static_argnames=("method", "mode", "standardized", "alternative", "store", "min_count", "rtol"),
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
    cols = np.flatnonzero(keep)
    # float32: the nulls and the targets they meet in float32; the observed r from the float64 targets
    null_dtype = np.float32 if precision == "float32" else np.float64
    null_targets = [t.astype(null_dtype, copy=False) for t in targets]
    if null_dtype is np.float32 and kind == "index":
        src = src.astype(np.float32)
    # For the tail approximation keep, per pair, the largest null scores: the
    # fit only looks above the 75th percentile of the null (tail.gpd_pvalue).
    n_tail = min(k_total, int(np.ceil(0.25 * k_total)) + 2)
    store_block = bool(store_null or tail_approximation)
    loop = _resident_loop if be.name != "numpy" else _host_loop
    r_obs, count, n_valid, null_max, null_store, tail = loop(
        be, kern, gather, x2, src, nul, kind, targets, g_starts, g, g_all, cols, m, k_total, kb, method=method,
        mode=mode, standardized=standardized, alternative=alternative, min_count=min_count, store_null=store_null,
        tail_approximation=tail_approximation, n_tail=n_tail, store_block=store_block, progress=progress,
        null_targets=null_targets, null_dtype=null_dtype, rtol=rtol)

    p_kept = _kp.pvalue_from_counts(count, n_valid, r_obs)
    stat_obs = _kp.tail_score(r_obs, alternative)
    nm = np.where(np.isneginf(null_max), np.nan, null_max)
    pf_kept = np.stack([_kp.fwer_pvalue(stat_obs[i], nm[i], rtol=rtol) for i in range(stat_obs.shape[0])])
    p_perm = None
    if tail_approximation:
        p_perm = np.full((m, g_all), np.nan)
        p_perm[:, cols] = p_kept
        p_kept = tail_pvalues(stat_obs, tail, n_valid, p_kept)
        pf_kept = np.stack([gpd_pvalue(stat_obs[i], nm[i][np.isfinite(nm[i])], fallback=pf_kept[i])
                            for i in range(m)])

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
        if p_perm is not None:
            p_perm = p_perm[0]
    return Association(r=r_obs, pvalue=p, pvalue_fdr=q, pvalue_fwer=p_fwer, null_max=nm, n_perm=int(k_total),
                       method=method, alternative=alternative, null=null_store,
                       tail_approximation=bool(tail_approximation), pvalue_permutation=p_perm,
                       precision=precision)


def _host_loop(be, kern, gather, x2, src, nul, kind, targets, g_starts, g, g_all, cols, m, k_total, kb, *, method,
               mode, standardized, alternative, min_count, store_null, tail_approximation, n_tail, store_block,
               progress, null_targets, null_dtype, rtol):
    """The block loop with host accumulators (NumPy backend)."""
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
    tail = np.full((m, n_tail, g), -np.inf) if tail_approximation else None

    blocks = [(k0, g0, gi) for gi, g0 in enumerate(g_starts) for k0 in range(0, k_total, kb)]
    src_dev = be.to_device(src) if kind == "index" else None
    current = (None, None)
    for k0, g0, gi in _progress(blocks, progress):
        if current[0] != gi:
            current = (gi, be.to_device(null_targets[gi]))
        ks = slice(k0, min(k0 + kb, k_total))
        gs = slice(g0, g0 + targets[gi].shape[0])
        if kind == "index":
            xnull = gather(src_dev, be.to_device(nul[ks]))
        else:
            xnull = be.to_device(nul[:, ks].astype(null_dtype, copy=False))
        res = kern(xnull, current[1], be.to_device(r_obs[:, gs]), method=method, mode=mode,
                   standardized=standardized, alternative=alternative, store=store_block, min_count=min_count,
                   rtol=rtol)
        count[:, gs] += to_host(res["count"])
        n_valid[:, gs] += to_host(res["n_valid"])
        null_max[:, ks] = np.maximum(null_max[:, ks], to_host(res["null_max"]))
        if store_null:
            null_store[ks, :, cols[gs]] = np.transpose(to_host(res["null"]), (1, 0, 2))
        if tail_approximation:
            sc = np.asarray(_kp.tail_score(to_host(res["null"]), alternative))
            both = np.concatenate([tail[:, :, gs], np.where(np.isnan(sc), -np.inf, sc)], axis=1)
            tail[:, :, gs] = np.partition(both, both.shape[1] - n_tail, axis=1)[:, -n_tail:]
    return r_obs, count, n_valid, null_max, null_store, tail


def _resident_loop(be, kern, gather, x2, src, nul, kind, targets, g_starts, g, g_all, cols, m, k_total, kb, *,
                   method, mode, standardized, alternative, min_count, store_null, tail_approximation, n_tail,
                   store_block, progress, null_targets, null_dtype, rtol):
    """The block loop on an accelerator backend, kept on the device.

    The source maps and every target block go to the device once; each
    block of nulls is padded to ``kb`` (index rows of -1, map rows of NaN:
    padding is undefined, so it counts toward no count, ``n_valid`` or
    maximum) and copied explicitly; target blocks are padded to one width by
    repeating their first row (a duplicate column changes no maximum; its
    counts are dropped). Counts accumulate on the device in the compiled
    step, so the analysis compiles two programs: the observed correlations
    and the block step. Same arithmetic as :func:`_host_loop`.
    """
    kb = max(1, min(kb, k_total))
    gw = max([t.shape[0] for t in targets], default=1)
    static = {"method": method, "mode": mode, "min_count": min_count}
    observed = resident_step(_k.association_observed, be, static=static)
    step = resident_step(_k.association_step, be, static=dict(static, gather=kind == "index",
                                                             standardized=standardized, alternative=alternative,
                                                             store=store_block, rtol=rtol))
    moved = device_put([x2, src if kind == "index" else None, *[pad_leading(t, gw, t[0]) for t in targets]], be)
    x_dev, src_dev, tgt_dev = moved[0], moved[1], moved[2:]
    null_tgt_dev = (tgt_dev if null_dtype is np.float64
                    else device_put([pad_leading(t, gw, t[0]) for t in null_targets], be))
    zeros = device_put([np.zeros((m, gw)) for _ in range(2 * len(targets))], be)
    with resident_body(be):
        r_dev = [observed(x_dev, t) for t in tgt_dev]
    r_pad = device_get(r_dev, be)
    r_obs = np.concatenate([r[:, : t.shape[0]] for r, t in zip(r_pad, targets)], axis=1) if targets else \
        np.empty((m, 0))
    count, n_valid = np.zeros((m, g)), np.zeros((m, g))
    null_max = np.full((m, k_total), -np.inf)
    null_store = np.full((k_total, m, g_all), np.nan) if store_null else None
    tail = np.full((m, n_tail, g), -np.inf) if tail_approximation else None

    blocks = [(k0, g0, gi) for gi, g0 in enumerate(g_starts) for k0 in range(0, k_total, kb)]
    acc = {gi: (zeros[2 * gi], zeros[2 * gi + 1]) for gi in range(len(targets))}
    maxima = []
    for k0, g0, gi in _progress(blocks, progress):
        ks = slice(k0, min(k0 + kb, k_total))
        gs = slice(g0, g0 + targets[gi].shape[0])
        if kind == "index":
            block = device_put(pad_leading(nul[ks], kb, -1), be)
        else:
            block = device_put(np.swapaxes(pad_leading(np.swapaxes(nul[:, ks], 0, 1), kb, np.nan), 0, 1)
                               .astype(null_dtype, copy=False), be)
        with resident_body(be):
            res = step(block, src_dev, null_tgt_dev[gi], r_dev[gi], *acc[gi])
        acc[gi] = (res["count"], res["n_valid"])
        maxima.append((ks, res["null_max"]))
        if store_block:
            null = device_get(res["null"], be)[:, : ks.stop - ks.start, : gs.stop - gs.start]
            if store_null:
                null_store[ks, :, cols[gs]] = np.transpose(null, (1, 0, 2))
            if tail_approximation:
                sc = np.asarray(_kp.tail_score(null, alternative))
                both = np.concatenate([tail[:, :, gs], np.where(np.isnan(sc), -np.inf, sc)], axis=1)
                tail[:, :, gs] = np.partition(both, both.shape[1] - n_tail, axis=1)[:, -n_tail:]
    sums = device_get([acc[gi] for gi in range(len(targets))], be)
    for (c, v), g0, t in zip(sums, g_starts, targets):
        count[:, g0 : g0 + t.shape[0]] = c[:, : t.shape[0]]
        n_valid[:, g0 : g0 + t.shape[0]] = v[:, : t.shape[0]]
    for (ks, _), mx in zip(maxima, device_get([mx for _, mx in maxima], be)):
        null_max[:, ks] = np.maximum(null_max[:, ks], mx[:, : ks.stop - ks.start])
    return r_obs, count, n_valid, null_max, null_store, tail


def tail_pvalues(score, tail, n_valid, pvalue, *, threshold_p=0.10):
    """Generalised-Pareto tail p-values of each pair from its largest null scores.

    Parameters
    ----------
    score : (M, G) observed scores (:func:`recouple.kernels.pvalues.tail_score` of r)
    tail : (M, T, G) the T largest null scores of each pair (-inf pads undefined
        nulls); T >= 25% of the K nulls + 2 covers every threshold the fit tries.
    n_valid : (M, G) nulls giving a defined correlation (K of each pair)
    pvalue : (M, G) permutation p-values, kept where the fit does not apply

    Returns
    -------
    (M, G) p-values.

    Notes
    -----
    What it approximates: the upper tail of each pair's own null distribution
    of the score (``|r|`` two-sided) above a threshold between its 75th and
    99th percentile, by :func:`recouple.permutation.gpd_pvalue` (method of
    moments, the first threshold passing an Anderson-Darling check). Only
    pairs with permutation p below ``threshold_p`` use it (the others keep
    their permutation p), and the result is not floored at ``1/(K+1)``, so
    BH q-values are no longer limited by the number of nulls. A fit that
    fails every check keeps the permutation p. Where the fitted tail is
    bounded (shape ``k > 0``, natural for ``|r| <= 1``) and the observed
    score lies beyond its end point, the approximated p-value is 0: "beyond
    every value the fitted null reaches", not an exact probability. The null below the kept tail
    is padded with -inf: the fit and the exceedance count only see values
    above the 75th percentile, so the padding changes neither.
    """
    out = np.array(pvalue, dtype=np.float64, copy=True)
    for i, j in zip(*np.nonzero(np.asarray(pvalue) < threshold_p)):
        kv = int(n_valid[i, j])
        vals = tail[i, :, j]
        vals = vals[np.isfinite(vals)][:kv]
        null = np.full(kv, -np.inf)
        null[:vals.size] = vals
        out[i, j] = gpd_pvalue(np.asarray([score[i, j]]), null, threshold_p=threshold_p,
                               fallback=np.asarray([pvalue[i, j]]))[0]
    return out


def resolution_note(pvalue, n_perm, *, alpha=0.05) -> str:
    """One sentence explaining q-values held up by the permutation resolution.

    With K nulls no permutation p-value is below ``1/(K+1)``; when many tests
    sit at that floor, Benjamini-Hochberg q-values cannot fall below
    ``G / n_floor / (K+1)`` (G tests, n_floor at the floor), which can exceed
    ``alpha`` even where max-statistic FWER p-values are small. Returns that
    explanation when it applies (some p at the floor and the bound above
    ``alpha``), else an empty string.

    Parameters
    ----------
    pvalue : (G,) p-values of one family (NaN ignored)
    n_perm : int
        K, the number of nulls.
    alpha : float
        The level at which the q-values are read.
    """
    p = np.asarray(pvalue, dtype=np.float64).ravel()
    p = p[np.isfinite(p)]
    k = int(n_perm)
    if p.size == 0 or k < 1:
        return ""
    floor = 1.0 / (k + 1)
    at = int(np.sum(np.abs(p - floor) <= 1e-9 * floor))  # at the floor (tail-approximated p can lie below it)
    if at == 0:
        return ""
    bound = min(1.0, floor * p.size / at)
    if bound <= alpha:
        return ""
    return (f"With {k} nulls the smallest attainable p-value is 1/({k}+1) = {floor:.3g} and {at} of {p.size} tests "
            f"sit at it, so Benjamini-Hochberg q-values cannot fall below {floor:.3g} x {p.size}/{at} = {bound:.3g} "
            f"(above {alpha:g}) even where the max-statistic FWER p-values, which are not divided by the test's "
            "rank, are small; more nulls or the generalised-Pareto tail approximation resolve smaller p-values.")


def _progress(items, show):
    if not show:
        return items
    return _progress_bar(items, total=len(items), desc="associate", unit="blocks")


def _varies(Y):
    if not np.isnan(Y).any():
        return Y.max(axis=1) > Y.min(axis=1)
    finite = ~np.isnan(Y)
    hi = np.where(finite, Y, -np.inf).max(axis=1)
    lo = np.where(finite, Y, np.inf).min(axis=1)
    return (finite.sum(axis=1) >= 2) & (hi > lo)


def associate(x, Y, **kwargs) -> Association:
    """Deprecated alias of :func:`compare_maps` (renamed so that it is not
    confused with :func:`recouple.genes.associate`); removed in the next release."""
    warnings.warn("recouple.nulls.associate is deprecated; use recouple.nulls.compare_maps (same arguments).",
                  DeprecationWarning, stacklevel=2)
    return compare_maps(x, Y, **kwargs)
