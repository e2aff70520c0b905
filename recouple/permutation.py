"""Subject-level permutation inference: one-sample / paired sign-flip tests,
two-sample tests, the GLM with nuisance covariates (Freedman-Lane), clinical
correlations, TFCE, cluster extent/mass and NBS, with max-statistic FWER and
BH-FDR (METHODS 3.1-3.11).

All permutations of a batch are evaluated as matrix products
(:mod:`recouple.kernels.glm`); batches are streamed from the memory budget and
only per-permutation maxima and per-element exceedance counts are kept unless
``keep_null=True``. Resamples are drawn on the host, one random stream per
permutation (:mod:`recouple.engine.random`), so results do not depend on the
batch size, the backend or the number of workers; every function also takes a
precomputed ``permutations=`` or ``signs=`` matrix.

Conventions
-----------
- Data are ``(n_scans, n_elements)``; resample matrices are ``(n_perm, n_scans)``.
- ``permutations[k, i] = j`` means that in permutation ``k`` row ``i`` of the
  (reduced-model residual) data is taken from row ``j``.
- p-values use the +1 convention ``(1 + #{null >= observed}) / (n_perm + 1)``
  (floor ``1 / (n_perm + 1)``). When every distinct resample is enumerated the
  identity is left out of the null and the same formula is the exact p-value.
"""

from __future__ import annotations

import itertools
import math
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .engine.dispatch import call_kernel, host_map
from .engine.planner import plan_batch
from .engine.progress import progress
from .engine.random import stream
from .exceptions import InputError, ShapeError, describe
from .kernels import clusters as _clusters
from .kernels import glm as _glm
from .kernels import pvalues as _kp
from .kernels import stats as _kstats
from .validation import as_array, check_choice, check_positive_int

__all__ = [
    "PermutationResult",
    "SpatialResult",
    "ClusterResult",
    "NBSResult",
    "one_sample",
    "paired",
    "two_sample",
    "glm",
    "correlation",
    "nbs",
    "sign_flip_matrix",
    "permutation_matrix",
    "pair_sessions",
    "gpd_pvalue",
]

ALTERNATIVES = ("two-sided", "greater", "less")
_ENUMERATION_CAP = 2_000_000
# Resamples that give the observed statistic up to rounding (e.g. swaps within
# a group) count as ties: the package-wide tolerance of permutation_pvalue.
TIE_RTOL = _kp.TIE_RTOL


# --------------------------------------------------------------------------- results
@dataclass(frozen=True)
class SpatialResult:
    """TFCE scores with their FWER (max-statistic) and uncorrected p-values.

    Attributes
    ----------
    statistic : (V,) TFCE of the observed map (signed for two-sided tests)
    pvalue : (V,) uncorrected permutation p
    pvalue_fwer : (V,) max-TFCE FWER p
    null_max : (n_perm,) max |TFCE| (two-sided) or max TFCE per permutation
    params : dict of H, E, steps, connectivity
    """

    statistic: np.ndarray
    pvalue: np.ndarray
    pvalue_fwer: np.ndarray
    null_max: np.ndarray
    params: dict = field(default_factory=dict)


@dataclass(frozen=True)
class ClusterResult:
    """Supra-threshold clusters of the observed map with max-extent/max-mass FWER p.

    Attributes
    ----------
    labels : (V,) cluster label of every element (0 = none)
    extent, mass : (n_clusters,) size in elements; sum of (score - threshold)
    pvalue_extent, pvalue_mass : (n_clusters,) FWER p from the max-cluster nulls
    null_max_extent, null_max_mass : (n_perm,)
    threshold : float
    """

    labels: np.ndarray
    extent: np.ndarray
    mass: np.ndarray
    pvalue_extent: np.ndarray
    pvalue_mass: np.ndarray
    null_max_extent: np.ndarray
    null_max_mass: np.ndarray
    threshold: float


@dataclass(frozen=True)
class PermutationResult:
    """Per-element statistics and permutation p-values.

    Attributes
    ----------
    statistic : (V,) or (n_contrasts, V) t, F or r per element
    pvalue : uncorrected permutation p (+1 convention)
    pvalue_fwer : max-statistic FWER p (across elements; across contrasts too
        when ``fwer_across_contrasts=True``)
    pvalue_fdr : BH q-values of ``pvalue`` across elements
    null_max : (n_perm,) or (n_contrasts, n_perm) max statistic per resample
        (|t| for two-sided tests, -t for ``alternative="less"``)
    n_perm : number of resamples in the null (identity excluded when exhaustive)
    permutations : (n_perm, n) int or None — row-permutation indices used
    signs : (n_perm, n) float or None — sign flips used
    stat : "t", "F" or "r"
    df : residual degrees of freedom
    alternative : the tail
    exhaustive : whether every distinct resample was enumerated
    null : (n_perm, V) full null of the statistic when ``keep_null=True``
    tfce : :class:`SpatialResult` or None
    clusters : :class:`ClusterResult` or None
    params : dict of the options used (method, contrast, design columns, ...)
    """

    statistic: np.ndarray
    pvalue: np.ndarray
    pvalue_fwer: np.ndarray
    pvalue_fdr: np.ndarray
    null_max: np.ndarray
    n_perm: int
    permutations: np.ndarray | None
    signs: np.ndarray | None
    stat: str
    df: int
    alternative: str
    exhaustive: bool
    null: np.ndarray | None = None
    tfce: SpatialResult | None = None
    clusters: ClusterResult | None = None
    params: dict = field(default_factory=dict)


@dataclass(frozen=True)
class NBSResult:
    """Network-based statistic.

    Attributes
    ----------
    statistic : (E,) edge statistic (t or F), edges in ``edges`` order
    edges : (E, 2) node pairs (upper triangle, i < j)
    edge_component : (E,) component of every supra-threshold edge (0 = none),
        components numbered 1..n_components by decreasing size
    component_size : (n_components,) size (edges or intensity)
    component_nodes : (n_components,) number of nodes
    pvalue : (n_components,) FWER p from the max-component null
    null_max : (n_perm,) largest component per resample (0 if none)
    threshold : float, measure : str, n_perm : int
    permutations, signs : the resamples used
    """

    statistic: np.ndarray
    edges: np.ndarray
    edge_component: np.ndarray
    component_size: np.ndarray
    component_nodes: np.ndarray
    pvalue: np.ndarray
    null_max: np.ndarray
    threshold: float
    measure: str
    n_perm: int
    permutations: np.ndarray | None
    signs: np.ndarray | None
    params: dict = field(default_factory=dict)


# --------------------------------------------------------------------------- resamples
def _blocks_array(blocks, n):
    if blocks is None:
        return None
    b = np.asarray(blocks)
    if b.ndim != 1 or b.shape[0] != n:
        raise ShapeError(
            f"exchangeability_blocks must be one block label per scan, shape ({n},); got {describe(b)}. "
            "Pass e.g. the site or subject of every row of the data."
        )
    _, codes = np.unique(b, return_inverse=True)
    return codes


def _count_resamples(kind, n, codes, whole_blocks):
    if kind == "signflip":
        units = n if codes is None or not whole_blocks else int(codes.max()) + 1
        return 2**units if units < 64 else math.inf
    if codes is None:
        return math.factorial(n) if n < 25 else math.inf
    sizes = np.bincount(codes)
    if whole_blocks:
        return math.factorial(len(sizes)) if len(sizes) < 25 else math.inf
    total = 1
    for s in sizes:
        total *= math.factorial(int(s))
        if total > 1e18:
            return math.inf
    return total


def _enumerate(kind, n, codes, whole_blocks):
    """Every distinct resample except the identity, in a fixed order."""
    if kind == "signflip":
        if codes is None or not whole_blocks:
            units, expand = n, None
        else:
            units, expand = int(codes.max()) + 1, codes
        bits = ((np.arange(1, 2**units)[:, None] >> np.arange(units)[None, :]) & 1).astype(np.float64)
        signs = 1.0 - 2.0 * bits
        return signs if expand is None else signs[:, expand]
    if codes is None:
        perms = np.array(list(itertools.permutations(range(n))), dtype=np.int64)
        return perms[1:]
    positions = [np.flatnonzero(codes == b) for b in range(int(codes.max()) + 1)]
    if whole_blocks:
        out = []
        for order in itertools.permutations(range(len(positions))):
            idx = np.empty(n, dtype=np.int64)
            for dest, src in zip(positions, order):
                idx[dest] = positions[src]
            out.append(idx)
        return np.array(out[1:])
    per_block = [list(itertools.permutations(p.tolist())) for p in positions]
    out = []
    for combo in itertools.product(*per_block):
        idx = np.empty(n, dtype=np.int64)
        for dest, src in zip(positions, combo):
            idx[dest] = src
        out.append(idx)
    return np.array(out[1:])


def _check_whole_blocks(codes):
    sizes = np.bincount(codes)
    if np.unique(sizes).size != 1:
        raise InputError(
            f"whole-block permutation needs blocks of equal size; got block sizes {sorted(set(sizes.tolist()))}. "
            "Use whole_blocks=False to permute within blocks, or make every block the same size."
        )


def sign_flip_matrix(n, *, n_perm=10_000, seed=0, exchangeability_blocks=None, whole_blocks=False,
                     start=0):
    """Sign-flip matrix ``(n_perm, n)`` of +-1, one random stream per row.

    Parameters
    ----------
    n : int
        Number of scans (e.g. patients with a pre/post difference).
    n_perm : int
        Number of random sign vectors.
    seed : int
    exchangeability_blocks : (n,) array, optional
        With ``whole_blocks=True`` all members of a block share one sign.
    start : int
        Index of the first stream (draw ``k`` is the same whatever ``start``).

    Returns
    -------
    signs : (n_perm, n) float64
    """
    codes = _blocks_array(exchangeability_blocks, n)
    out = np.empty((n_perm, n), dtype=np.float64)
    units = n if codes is None or not whole_blocks else int(codes.max()) + 1
    for k in range(n_perm):
        s = np.where(stream(seed, "signflip", start + k).random(units) < 0.5, -1.0, 1.0)
        out[k] = s if units == n and (codes is None or not whole_blocks) else s[codes]
    return out


def permutation_matrix(n, *, n_perm=10_000, seed=0, exchangeability_blocks=None, whole_blocks=False,
                       start=0):
    """Row-permutation indices ``(n_perm, n)``, one random stream per row.

    Within blocks (default) each block's rows are shuffled among themselves;
    with ``whole_blocks=True`` blocks (of equal size) swap places as units,
    keeping their internal order.

    Returns
    -------
    permutations : (n_perm, n) int64; permuted row ``i`` is original row ``permutations[k, i]``.
    """
    codes = _blocks_array(exchangeability_blocks, n)
    out = np.empty((n_perm, n), dtype=np.int64)
    if codes is None:
        for k in range(n_perm):
            out[k] = stream(seed, "permutation", start + k).permutation(n)
        return out
    positions = [np.flatnonzero(codes == b) for b in range(int(codes.max()) + 1)]
    if whole_blocks:
        _check_whole_blocks(codes)
    for k in range(n_perm):
        g = stream(seed, "permutation", start + k)
        idx = np.empty(n, dtype=np.int64)
        if whole_blocks:
            order = g.permutation(len(positions))
            for dest, src in zip(positions, order):
                idx[dest] = positions[src]
        else:
            for pos in positions:
                idx[pos] = pos[g.permutation(pos.size)]
        out[k] = idx
    return out


def _resamples(kind, n, *, n_perm, seed, blocks, whole_blocks, permutations, signs):
    """Resolve the resample matrix: user-given, enumerated, or drawn."""
    if permutations is not None and signs is not None:
        raise InputError("pass at most one of permutations= and signs=; got both. Pass only the one you need.")
    if permutations is not None:
        p = np.asarray(permutations)
        if p.ndim != 2 or p.shape[1] != n or not np.issubdtype(p.dtype, np.integer):
            raise ShapeError(
                f"permutations must be an integer array of shape (n_perm, {n}); got {describe(p)}. "
                "Each row is a permutation of range(n_scans)."
            )
        if not (np.sort(p, axis=1) == np.arange(n)).all():
            raise InputError(
                "permutations must hold a permutation of range(n_scans) in every row; some rows repeat or miss "
                "indices. Build them with recouple.permutation.permutation_matrix."
            )
        return "permute", p.astype(np.int64), False
    if signs is not None:
        s = np.asarray(signs, dtype=np.float64)
        if s.ndim != 2 or s.shape[1] != n or not np.isin(s, (-1.0, 1.0)).all():
            raise ShapeError(
                f"signs must be a (n_perm, {n}) array of +1/-1; got {describe(np.asarray(signs))}. "
                "Build it with recouple.permutation.sign_flip_matrix."
            )
        return "signflip", s, False
    n_perm = check_positive_int("n_perm", n_perm)
    codes = _blocks_array(blocks, n)
    if codes is not None and whole_blocks and kind == "permute":
        _check_whole_blocks(codes)
    total = _count_resamples(kind, n, codes, whole_blocks)
    if total <= 1:
        raise InputError(
            f"exchangeability_blocks leave no resample but the identity for a {kind} test (every block has one "
            "scan, or there is one whole block); got block sizes "
            f"{np.bincount(codes).tolist() if codes is not None else [n]}. Use larger blocks or no blocks."
        )
    if total - 1 <= n_perm:
        if total - 1 > _ENUMERATION_CAP:  # pragma: no cover - needs astronomically many draws
            raise InputError(f"n_perm={n_perm} would enumerate {total - 1} resamples; pass a smaller n_perm.")
        warnings.warn(
            f"only {int(total)} distinct {'sign flips' if kind == 'signflip' else 'permutations'} exist for "
            f"{n} scans (n_perm={n_perm} requested); all {int(total) - 1} non-identity resamples are enumerated "
            "and the p-values are exact.",
            UserWarning,
            stacklevel=3,
        )
        return kind, _enumerate(kind, n, codes, whole_blocks), True
    if kind == "signflip":
        return kind, sign_flip_matrix(n, n_perm=n_perm, seed=seed, exchangeability_blocks=blocks,
                                      whole_blocks=whole_blocks), False
    return kind, permutation_matrix(n, n_perm=n_perm, seed=seed, exchangeability_blocks=blocks,
                                    whole_blocks=whole_blocks), False


def _tie_threshold(score):
    # The package tie rule (kernels.pvalues), on host scores.
    return _kp.tie_threshold(np.asarray(score, dtype=np.float64))


def _fwer_pvalue(observed, null_max, *, plus_one=True):
    """Family-wise p-values by the package rule (:func:`recouple.kernels.pvalues.fwer_pvalue`)."""
    return _kp.fwer_pvalue(np.asarray(observed, dtype=np.float64), np.asarray(null_max, dtype=np.float64),
                           plus_one=plus_one)


# --------------------------------------------------------------------------- design algebra
def _orth(a, tol=None):
    """Orthonormal basis of the column space of ``a`` (n, m) -> (n, rank)."""
    if a.size == 0:
        return np.zeros((a.shape[0], 0))
    u, s, _ = np.linalg.svd(a, full_matrices=False)
    tol = s.max() * max(a.shape) * np.finfo(float).eps if tol is None and s.size else (tol or 0)
    return u[:, s > tol]


def _matrix_rank(m):
    return int(np.linalg.matrix_rank(m)) if m.size else 0


@dataclass(frozen=True)
class _Partition:
    basis_x: np.ndarray  # (r, n)
    basis_z: np.ndarray  # (q, n)
    df: int
    rank: int


def _partition(design, contrast):
    """Effect and nuisance bases for ``contrast`` (r, p) of ``design`` (n, p)."""
    n, p = design.shape
    q_full = np.linalg.pinv(design.T @ design)
    # Reduced model under H0 (C beta = 0): beta in null(C), Z = M null(C).
    _, s, vt = np.linalg.svd(contrast, full_matrices=True)
    r = int((s > s.max() * max(contrast.shape) * np.finfo(float).eps).sum())
    null_c = vt[r:].T
    qz = _orth(design @ null_c)
    x = design @ q_full @ contrast.T  # (n, r), coefficient of x equals C beta
    xr = x - qz @ (qz.T @ x)
    if r == 1:
        norm = np.linalg.norm(xr[:, 0])
        qx = (xr[:, :1] / norm).T if norm > 0 else np.zeros((1, n))
    else:
        qx = _orth(xr).T
    return _Partition(basis_x=qx, basis_z=np.ascontiguousarray(qz.T), df=n - _matrix_rank(design), rank=r)


def _check_design(design, contrast, n):
    m = as_array("design", design)
    if m.ndim == 1:
        m = m[:, None]
    if m.ndim != 2 or m.shape[0] != n:
        raise ShapeError(
            f"design must be a (n_scans, n_regressors) matrix with n_scans = {n} rows (one per data row); got "
            f"{describe(m)}. Build it with recouple.io.design.design_from_table or read_fsl_design."
        )
    if not np.isfinite(m).all():
        bad = np.argwhere(~np.isfinite(m))[0]
        raise InputError(
            f"design must contain only finite values; found NaN/inf at row {bad[0]}, column {bad[1]}. "
            "Drop or impute the scans with missing covariates (and the matching data rows)."
        )
    rank = _matrix_rank(m)
    if rank < m.shape[1]:
        raise InputError(
            f"design must have full column rank; got rank {rank} for {m.shape[1]} columns (collinear or constant "
            "duplicate regressors, e.g. an intercept plus a full set of group dummies). Drop the redundant "
            "column(s) or use treatment coding."
        )
    if n - rank < 1:
        raise InputError(
            f"design must leave at least one residual degree of freedom; got {n} scans and {rank} regressors. "
            "Use fewer regressors or more scans."
        )
    c = as_array("contrast", contrast)
    if c.ndim == 1:
        c = c[None, :]
    if c.ndim != 2 or c.shape[1] != m.shape[1]:
        raise ShapeError(
            f"contrast must have one weight per design column ({m.shape[1]}); got {describe(c)}. "
            "Pass e.g. [1, 0, 0] to test the first regressor."
        )
    if not np.isfinite(c).all() or not np.any(c):
        raise InputError(f"contrast must be finite and not all zero; got {c.tolist()}. Put a 1 on the tested column.")
    return m, c


def _check_data(data, name="data"):
    y = as_array(name, data)
    if y.ndim == 1:
        y = y[:, None]
    if y.ndim != 2:
        raise ShapeError(
            f"{name} must be (n_scans, n_elements); got {describe(y)}. Flatten regions/edges/voxels into columns."
        )
    if not np.isfinite(y).all():
        bad = np.argwhere(~np.isfinite(y))[0]
        raise InputError(
            f"{name} must contain only finite values; found {int((~np.isfinite(y)).sum())} NaN/inf value(s), the "
            f"first at scan {bad[0]}, element {bad[1]}. Drop those elements (columns) or scans, or impute them."
        )
    return y


# --------------------------------------------------------------------------- the engine
def _batch_plan(n_perm, n, v, r, q, batch_size, memory_limit, keep_full):
    if batch_size is not None:
        return max(1, int(batch_size))
    # g, scores and the projections: a few (r + q + 4) x V floats per permutation.
    per = 8.0 * (v * (r + q + 4) + n * (r + q + 1))
    if keep_full:
        per += 8.0 * v * 4
    planned = plan_batch(n_perm, per, memory_limit=memory_limit, minimum=1)
    # Past ~256 MB per batch the element-wise reduction falls out of cache
    # without making the GEMM any faster.
    return max(1, min(planned, int(2**28 // max(per, 1.0))))


def _prepare(y, design, contrast):
    part = _partition(design, contrast)
    qz = part.basis_z
    resid = y - qz.T @ (qz @ y) if qz.shape[0] else y.copy()
    ss = np.einsum("ij,ij->j", resid, resid)
    scale_ref = np.einsum("ij,ij->j", y - y.mean(0), y - y.mean(0)) + np.einsum("ij,ij->j", y, y)
    degenerate = ss <= 1e-24 * np.maximum(scale_ref, 1e-300)
    scaled = np.where(degenerate, 0.0, resid / np.sqrt(np.where(degenerate, 1.0, ss)))
    return part, np.ascontiguousarray(scaled), degenerate


@dataclass
class _Spatial:
    kind: str  # "tfce" | "cluster"
    mask: np.ndarray | None
    adjacency: Any
    structure: np.ndarray | None
    params: dict


def _to_maps(stat, spatial):
    """(B, V) element statistics -> (B, X, Y, Z) volumes or (B, V) graph maps."""
    if spatial.mask is None:
        return stat
    vol = np.zeros((stat.shape[0],) + spatial.mask.shape)
    vol[:, spatial.mask] = stat
    return vol


def _spatial_scores(stat, spatial, alternative):
    """TFCE maps (B, V) of element statistics (B, V); maps on every core
    (each map's TFCE depends on that map alone)."""
    p = spatial.params

    def one(k):
        maps = _clusters.tfce(
            _to_maps(stat[k : k + 1], spatial), structure=spatial.structure, adjacency=spatial.adjacency,
            height=p["height"], extent=p["extent"], n_steps=p["n_steps"], dh=p["dh"],
            alternative=alternative, multiply_dh=p["multiply_dh"], weights=p.get("weights"),
        )
        return maps[:, spatial.mask] if spatial.mask is not None else maps

    return np.concatenate(host_map(one, range(stat.shape[0])), axis=0)


def _cluster_stats(stat, spatial, alternative):
    labels, extent, mass, owner = _clusters.cluster_sizes(
        _to_maps(stat, spatial), spatial.params["threshold"], structure=spatial.structure,
        adjacency=spatial.adjacency, alternative=alternative,
    )
    return labels, extent, mass, owner


def _fit_contrast(y, design, contrast, *, kind, matrix, alternative, batch_size, memory_limit, backend,
                  keep_null, spatial, tfce_spatial, desc):
    """Observed statistic + streamed null for one contrast."""
    part, scaled, degenerate = _prepare(y, design, contrast)
    n, v = y.shape
    rank = part.rank
    if rank > 1 and alternative != "two-sided":
        raise InputError(
            f"alternative must be 'two-sided' (the default) for an F contrast of rank {rank}; got {alternative!r}. "
            "F statistics are one-sided by construction."
        )
    mode = "signflip" if kind == "signflip" else "permute"
    identity = np.ones((1, n)) if mode == "signflip" else np.arange(n)[None, :]
    g_obs = call_kernel(_glm.monotone_statistic, scaled, part.basis_x, part.basis_z, identity,
                        backend=backend, static={"mode": mode})[0]
    g_obs = np.where(degenerate, np.nan, g_obs)
    score_obs = np.asarray(_glm.tail_score(g_obs, alternative=alternative, rank=rank))
    # NaN scores never count as exceeded; +inf keeps them out of the counts.
    score_cmp = np.where(np.isnan(score_obs), np.inf, _tie_threshold(score_obs))
    resample = matrix if mode == "signflip" else np.argsort(matrix, axis=1)
    k_total = matrix.shape[0]
    bs = _batch_plan(k_total, n, v, rank, part.basis_z.shape[0], batch_size, memory_limit,
                     keep_null or tfce_spatial is not None or spatial is not None)
    counts = np.zeros(v)
    max_score = np.empty(k_total)
    null = np.empty((k_total, v)) if keep_null else None
    need_maps = keep_null or tfce_spatial is not None or spatial is not None
    stat_obs = np.asarray(_glm.statistic_from_monotone(g_obs, df=part.df, rank=rank))
    tf_obs = tf_counts = tf_max = None
    if tfce_spatial is not None:
        tf_obs = _spatial_scores(np.nan_to_num(stat_obs)[None], tfce_spatial, alternative if rank == 1 else "greater")[0]
        tf_score_obs = _kp.tail_score(tf_obs, alternative)
        tf_thr = _tie_threshold(tf_score_obs)
        tf_counts = np.zeros(v)
        tf_max = np.empty(k_total)
    cl_max_extent = cl_max_mass = None
    if spatial is not None:
        cl_max_extent = np.empty(k_total)
        cl_max_mass = np.empty(k_total)
    starts = range(0, k_total, bs)
    for start in progress(starts, total=len(starts), desc=desc):
        stop = min(start + bs, k_total)
        out = call_kernel(
            _glm.permutation_batch, scaled, part.basis_x, part.basis_z, resample[start:stop], score_cmp,
            backend=backend, static={"mode": mode, "alternative": alternative, "keep_null": need_maps},
        )
        counts += out["counts"]
        max_score[start:stop] = out["max_score"]
        if need_maps:
            stat_b = np.asarray(_glm.statistic_from_monotone(out["g"], df=part.df, rank=rank))
            stat_b = np.where(degenerate[None, :], 0.0, stat_b)
            if keep_null:
                null[start:stop] = stat_b
            if tfce_spatial is not None:
                tf_b = _spatial_scores(stat_b, tfce_spatial, alternative if rank == 1 else "greater")
                sc = _kp.tail_score(tf_b, alternative)
                tf_max[start:stop] = sc.max(axis=1)
                tf_counts += (sc >= tf_thr[None, :]).sum(axis=0)
            if spatial is not None:
                _, extent, mass, owner = _cluster_stats(stat_b, spatial, alternative if rank == 1 else "greater")
                cl_max_extent[start:stop] = _clusters.max_per_map(extent, owner, stop - start)
                cl_max_mass[start:stop] = _clusters.max_per_map(mass, owner, stop - start)
    pvalue = _kp.pvalue_from_counts(counts, np.full(counts.shape, float(k_total)), score_obs)
    pvalue_fwer = _fwer_pvalue(np.where(np.isnan(score_obs), np.inf, score_obs), max_score)
    pvalue_fwer = np.where(np.isnan(score_obs), np.nan, pvalue_fwer)
    null_max = np.asarray(_glm.statistic_from_monotone(max_score, df=part.df, rank=rank))
    if rank == 1 and alternative == "two-sided":
        null_max = np.abs(null_max)
    out = {
        "statistic": np.where(degenerate, np.nan, stat_obs),
        "pvalue": pvalue,
        "pvalue_fwer": pvalue_fwer,
        "null_max": null_max,
        "df": part.df,
        "rank": rank,
        "null": null,
    }
    if tfce_spatial is not None:
        out["tfce"] = SpatialResult(
            statistic=tf_obs,
            pvalue=_kp.pvalue_from_counts(tf_counts, np.full(tf_counts.shape, float(k_total))),
            pvalue_fwer=_fwer_pvalue(tf_score_obs, tf_max),
            null_max=tf_max,
            params={k: val for k, val in tfce_spatial.params.items() if k != "weights"},
        )
    if spatial is not None:
        labels, extent, mass, owner = _cluster_stats(np.nan_to_num(stat_obs)[None], spatial,
                                                     alternative if rank == 1 else "greater")
        labels = labels.reshape(1, -1)[0] if spatial.mask is None else labels[0][spatial.mask]
        ext, ms = extent[1:], mass[1:]
        out["clusters"] = ClusterResult(
            labels=labels, extent=ext, mass=ms,
            pvalue_extent=_fwer_pvalue(ext, cl_max_extent),
            pvalue_mass=_fwer_pvalue(ms, cl_max_mass),
            null_max_extent=cl_max_extent, null_max_mass=cl_max_mass,
            threshold=float(spatial.params["threshold"]),
        )
    return out


def _make_spatial(tfce, cluster_threshold, mask, adjacency, connectivity, tfce_params, v):
    if not tfce and cluster_threshold is None:
        return None, None
    if mask is None and adjacency is None:
        raise InputError(
            "tfce and cluster inference need a neighbourhood; got neither mask= (3-D boolean volume of the data "
            "columns) nor adjacency= ((V, V) graph). Pass one of them."
        )
    structure = None
    if mask is not None:
        mask = np.asarray(mask, dtype=bool)
        if int(mask.sum()) != v:
            raise ShapeError(
                f"mask must have one True voxel per data column ({v}); got {int(mask.sum())} True voxels in a "
                f"{mask.shape} mask. Pass the mask the data were extracted with."
            )
        if connectivity not in (6, 18, 26) and mask.ndim == 3:
            raise InputError(f"connectivity must be 6, 18 or 26; got {connectivity!r}. The PALM/FSL default is 6.")
        structure = _clusters.volume_structure(connectivity if mask.ndim == 3 else {6: 4, 18: 8, 26: 8}.get(connectivity, 4),
                                               mask.ndim)
    elif adjacency is not None:
        shape = getattr(adjacency, "shape", None)
        if shape is None or tuple(shape) != (v, v):
            raise ShapeError(f"adjacency must be ({v}, {v}); got {describe(adjacency)}. One row per data column.")
    params = {"height": 2.0, "extent": 0.5, "n_steps": 100, "dh": None, "multiply_dh": True,
              "connectivity": connectivity if mask is not None else "graph"}
    unknown = set(tfce_params or {}) - {"height", "extent", "n_steps", "dh", "multiply_dh", "weights"}
    if unknown:
        raise InputError(f"tfce_params accepts height, extent, n_steps, dh, multiply_dh, weights; got {sorted(unknown)}. "
                         "Remove the unknown keys.")
    params.update(tfce_params or {})
    tf = _Spatial("tfce", mask, adjacency, structure, params) if tfce else None
    cl = None
    if cluster_threshold is not None:
        cl = _Spatial("cluster", mask, adjacency, structure, {"threshold": float(cluster_threshold)})
    return tf, cl


def _run(y, design, contrasts, *, default_kind, n_perm, seed, exchangeability_blocks, whole_blocks,
         permutations, signs, alternative, batch_size, memory_limit, backend, keep_null, tfce, cluster_threshold,
         mask, adjacency, connectivity, tfce_params, fwer_across_contrasts, tail_approximation, stat_name,
         params, convert=None):
    check_choice("alternative", alternative, ALTERNATIVES)
    n, v = y.shape
    kind, matrix, exhaustive = _resamples(
        default_kind, n, n_perm=n_perm, seed=seed, blocks=exchangeability_blocks, whole_blocks=whole_blocks,
        permutations=permutations, signs=signs,
    )
    tf_sp, cl_sp = _make_spatial(tfce, cluster_threshold, mask, adjacency, connectivity, tfce_params, v)
    fits = []
    for i, c in enumerate(contrasts):
        desc = f"permute c{i + 1}" if len(contrasts) > 1 else "permute"
        fits.append(_fit_contrast(
            y, design, c, kind=kind, matrix=matrix, alternative=alternative, batch_size=batch_size,
            memory_limit=memory_limit, backend=backend, keep_null=keep_null, spatial=cl_sp, tfce_spatial=tf_sp,
            desc=desc,
        ))
    k = matrix.shape[0]
    if tail_approximation:
        for f in fits:
            f["pvalue_fwer"] = gpd_pvalue(_abs_if(f["statistic"], alternative, f["rank"]), f["null_max"],
                                          fallback=f["pvalue_fwer"])
    if fwer_across_contrasts and len(fits) > 1:
        if any(f["rank"] > 1 for f in fits):
            raise InputError("fwer_across_contrasts needs t contrasts only; got an F contrast. Test F contrasts "
                             "separately or set fwer_across_contrasts=False.")
        joint = np.max(np.stack([f["null_max"] for f in fits]), axis=0)
        for f in fits:
            f["pvalue_fwer"] = _fwer_pvalue(_abs_if(f["statistic"], alternative, 1), joint)
    single = len(fits) == 1

    def pick(key):
        arrs = [f[key] for f in fits]
        return arrs[0] if single else np.stack(arrs)

    statistic = pick("statistic")
    null = pick("null") if keep_null else None
    null_max = pick("null_max")
    if convert is not None:
        df = fits[0]["df"]
        statistic = convert(statistic, df)
        null_max = convert(null_max, df)
        null = convert(null, df) if null is not None else None
    pvalue = pick("pvalue")
    return PermutationResult(
        statistic=statistic,
        pvalue=pvalue,
        pvalue_fwer=pick("pvalue_fwer"),
        pvalue_fdr=np.asarray(_kstats.fdr_bh(pvalue, axis=-1)),
        null_max=null_max,
        n_perm=int(k),
        permutations=matrix if kind == "permute" else None,
        signs=matrix if kind == "signflip" else None,
        stat=stat_name if all(f["rank"] == 1 for f in fits) else "F",
        df=int(fits[0]["df"]),
        alternative=alternative,
        exhaustive=bool(exhaustive),
        null=null,
        tfce=fits[0].get("tfce") if single else None,
        clusters=fits[0].get("clusters") if single else None,
        params={**params, "resampling": kind, "seed": seed if permutations is None and signs is None else None,
                "tfce_by_contrast": None if single else [f.get("tfce") for f in fits],
                "clusters_by_contrast": None if single else [f.get("clusters") for f in fits]},
    )


def _abs_if(stat, alternative, rank):
    if rank > 1 or alternative == "greater":
        return stat
    return -stat if alternative == "less" else np.abs(stat)


# --------------------------------------------------------------------------- tail approximation
def gpd_pvalue(observed, null, *, threshold_p=0.10, fallback=None):
    """Generalised-Pareto tail p-values (Winkler et al. 2016; METHODS 3.9).

    Parameters
    ----------
    observed : (V,) scores (larger = more extreme)
    null : (K,) null scores (e.g. the max-statistic null)
    threshold_p : float
        Only observed values whose permutation p is below this use the tail fit.
    fallback : (V,) p-values to keep where the fit is not used (default: the
        +1 permutation p).

    Returns
    -------
    (V,) p-values.

    Notes
    -----
    For tail quantiles Q = 0.751, 0.761, ..., 0.991 the threshold ``u`` is the
    midpoint between the last null value below Q and the first at or above;
    the exceedances are fitted by the method of moments (Hosking & Wallis
    1987): ``a = m (m^2/s^2 + 1)/2``, ``k = (m^2/s^2 - 1)/2``. The first Q
    whose Anderson-Darling statistic is below 2.492 (the 5% point for a fully
    specified distribution; PALM interpolates a table in ``k`` instead, which
    is stricter) is used, and ``p = (N_tail / K) (1 - k (x - u)/a)^(1/k)``
    (``exp(-(x - u)/a)`` as ``k -> 0``).
    """
    obs = np.asarray(observed, dtype=np.float64)
    nul = np.sort(np.asarray(null, dtype=np.float64))
    kk = nul.size
    base = np.asarray(_kstats.permutation_pvalue(obs, nul.reshape((-1,) + (1,) * obs.ndim), alternative="greater"))
    if fallback is None:
        fallback = base
    out = np.array(fallback, dtype=np.float64, copy=True)
    use = base < threshold_p
    if not use.any() or kk < 20:
        return out
    for q in np.arange(0.751, 0.9915, 0.01):
        cut = int(np.ceil(q * kk))
        if cut <= 0 or cut >= kk - 5:
            continue
        u = 0.5 * (nul[cut - 1] + nul[cut])
        y = nul[nul > u] - u
        if y.size < 5:
            continue
        m, s2 = y.mean(), y.var(ddof=1)
        if s2 <= 0:
            continue
        ratio = m * m / s2
        a = m * (ratio + 1) / 2
        k = (ratio - 1) / 2
        cdf = _gpd_cdf(np.sort(y), a, k)
        cdf = np.clip(cdf, 1e-12, 1 - 1e-12)
        nn = y.size
        i = np.arange(1, nn + 1)
        ad = -nn - np.mean((2 * i - 1) * (np.log(cdf) + np.log1p(-cdf[::-1])))
        if ad < 2.492:
            frac = y.size / kk
            tail = frac * (1.0 - _gpd_cdf(np.maximum(obs - u, 0.0), a, k))
            above = obs > u
            out = np.where(use & above, tail, out)
            return out
    return out


def _gpd_cdf(y, a, k):
    if abs(k) < 1e-10:
        return 1.0 - np.exp(-y / a)
    base = np.maximum(1.0 - k * y / a, 0.0)
    return 1.0 - base ** (1.0 / k)


# --------------------------------------------------------------------------- public tests
_COMMON_DOC = """
    n_perm : int
        Number of random resamples (default 10,000). When fewer distinct
        resamples exist, all are enumerated (with a warning) and p is exact.
    seed : int
        Seed of the per-permutation random streams.
    permutations, signs : (n_perm, n) arrays, optional
        Precomputed resamples (row indices, or +-1 signs) used verbatim.
    exchangeability_blocks : (n,) array, optional
        Block label per scan; permute within blocks, or whole blocks with
        ``whole_blocks=True`` (blocks of equal size).
    alternative : {"two-sided", "greater", "less"}
    tfce : bool
        Also compute TFCE with max-TFCE FWER (needs ``mask`` or ``adjacency``).
    cluster_threshold : float, optional
        Cluster-forming threshold for cluster extent and mass inference.
    mask : (X, Y, Z) bool array, optional
        Voxels of the data columns (column order = ``mask`` C order).
    adjacency : (V, V) sparse matrix, optional
        Graph neighbourhood for surface/region TFCE and clusters.
    connectivity : {6, 18, 26}
        Voxel neighbourhood for volumes (default 6, PALM/FSL).
    tfce_params : dict, optional
        ``height`` (2), ``extent`` (0.5), ``n_steps`` (100), ``dh``,
        ``multiply_dh`` (True: PALM; False: fslmaths/nilearn), ``weights``.
    tail_approximation : bool
        Replace small FWER p-values by the generalised-Pareto tail fit
        (:func:`gpd_pvalue`), useful with few permutations.
    keep_null : bool
        Keep the full ``(n_perm, V)`` null of the statistic.
    batch_size : int, optional
        Permutations per batch (default: planned from ``memory_limit``).
    memory_limit : str or float, optional
    backend : str, optional
"""


def _fill(doc):
    return doc.replace("    %(common)s\n", _COMMON_DOC.strip("\n") + "\n")


def one_sample(data, *, covariates=None, n_perm=10_000, seed=0, signs=None, exchangeability_blocks=None,
               whole_blocks=False, alternative="two-sided", tfce=False, cluster_threshold=None, mask=None,
               adjacency=None, connectivity=6, tfce_params=None, tail_approximation=False, keep_null=False,
               batch_size=None, memory_limit=None, backend=None) -> PermutationResult:
    """One-sample t-test of mean zero per element by sign flipping.

    Parameters
    ----------
    data : (n, V) array
        One row per scan (e.g. post - pre differences), one column per element.
    covariates : (n, c) array, optional
        Nuisance regressors; their effect is removed by Freedman-Lane (the
        reduced-model residuals are sign-flipped).
    %(common)s

    Returns
    -------
    :class:`PermutationResult` with ``stat="t"``, ``df = n - 1 - c``.

    Notes
    -----
    t = mean / (sd / sqrt(n)) per column; under sign flips the sum of squares is
    unchanged, so the whole null is one ``(K, n) @ (n, V)`` product.
    Requires symmetric errors (Winkler et al. 2014).

    Examples
    --------
    >>> import numpy as np, recouple as rc
    >>> d = np.random.default_rng(0).normal(size=(12, 5))
    >>> res = rc.permutation.one_sample(d, n_perm=200, seed=1)
    >>> res.statistic.shape, res.n_perm
    ((5,), 200)
    """
    y = _check_data(data)
    n = y.shape[0]
    design = np.ones((n, 1))
    if covariates is not None:
        cov = _check_covariates(covariates, n)
        design = np.column_stack([design, cov])
    return _first_column_test(
        y, design, default_kind="signflip", stat_name="t",
        params={"test": "one_sample", "method": "freedman-lane" if covariates is not None else "sign-flip"},
        n_perm=n_perm, seed=seed, exchangeability_blocks=exchangeability_blocks, whole_blocks=whole_blocks,
        signs=signs, alternative=alternative, batch_size=batch_size, memory_limit=memory_limit, backend=backend,
        keep_null=keep_null, tfce=tfce, cluster_threshold=cluster_threshold, mask=mask, adjacency=adjacency,
        connectivity=connectivity, tfce_params=tfce_params, tail_approximation=tail_approximation,
    )


def _first_column_test(y, design, *, default_kind, stat_name, params, convert=None, **options):
    """:func:`_run` for the one contrast on the design's first column (one-
    and two-sample tests, correlation); options not given take the defaults
    of a test without spatial statistics or precomputed resamples."""
    contrast = np.zeros(design.shape[1])
    contrast[0] = 1.0
    _check_design(design, contrast, y.shape[0])
    options = {"permutations": None, "signs": None, "tfce": False, "cluster_threshold": None, "mask": None,
               "adjacency": None, "connectivity": 6, "tfce_params": None, **options}
    return _run(y, design, [contrast[None, :]], default_kind=default_kind, fwer_across_contrasts=False,
                stat_name=stat_name, params=params, convert=convert, **options)


one_sample.__doc__ = _fill(one_sample.__doc__)


def _check_covariates(covariates, n):
    cov = as_array("covariates", covariates)
    if cov.ndim == 1:
        cov = cov[:, None]
    if cov.ndim != 2 or cov.shape[0] != n:
        raise ShapeError(f"covariates must be (n_scans={n}, n_covariates); got {describe(cov)}. One row per scan.")
    if not np.isfinite(cov).all():
        raise InputError("covariates must contain only finite values; found NaN/inf. Drop or impute those scans.")
    return cov


def pair_sessions(scans, *, subject="subject", session="session", pre="pre", post="post"):
    """Row indices of the pre and post scan of every subject with both.

    Parameters
    ----------
    scans : pandas.DataFrame or dict of columns
    subject, session : column names
    pre, post : session values

    Returns
    -------
    subjects : (n,) subject ids, sorted
    pre_rows, post_rows : (n,) int row indices into ``scans``

    Raises
    ------
    InputError if a subject has a pre scan without a post scan (or the reverse)
    or more than one scan per session.
    """
    import pandas as pd

    table = pd.DataFrame(scans)
    for col in (subject, session):
        if col not in table.columns:
            raise InputError(f"scans must have a {col!r} column; got columns {list(table.columns)}. "
                             f"Pass {'subject' if col == subject else 'session'}= with the right name.")
    rows = {}
    for i, (s, ses) in enumerate(zip(table[subject].tolist(), table[session].tolist())):
        if ses not in (pre, post):
            continue
        key = (s, ses)
        if key in rows:
            raise InputError(f"scans must have one {ses!r} scan per subject; subject {s!r} has several. "
                             "Average them or keep one.")
        rows[key] = i
    subs_pre = {s for s, ses in rows if ses == pre}
    subs_post = {s for s, ses in rows if ses == post}
    unpaired = sorted(map(str, subs_pre ^ subs_post))
    if unpaired:
        raise InputError(
            f"paired sessions must exist for every subject; subject(s) {', '.join(unpaired[:10])} have only one of "
            f"{pre!r}/{post!r}. Drop those subjects (or their scans) before a paired test."
        )
    if not subs_pre:
        raise InputError(f"scans must contain sessions {pre!r} and {post!r}; found none. Check pre=/post=.")
    subjects = np.array(sorted(subs_pre, key=str))
    return (subjects, np.array([rows[(s, pre)] for s in subjects]), np.array([rows[(s, post)] for s in subjects]))


def paired(pre, post, *, covariates=None, **kwargs) -> PermutationResult:
    """Paired test (e.g. ECT post vs pre) by sign flipping the within-subject differences.

    Parameters
    ----------
    pre, post : (n, V) arrays
        Row i of both is the same subject (see :func:`pair_sessions`).
    covariates : (n, c) array, optional
        Nuisance regressors of the difference (Freedman-Lane).
    **kwargs
        As in :func:`one_sample`.

    Returns
    -------
    :class:`PermutationResult` of ``post - pre`` (positive t: increase).
    """
    a = _check_data(pre, "pre")
    b = _check_data(post, "post")
    if a.shape != b.shape:
        raise ShapeError(
            f"pre and post must have the same shape (one row per subject in the same order); got {a.shape} and "
            f"{b.shape}. Use recouple.permutation.pair_sessions to match the scans."
        )
    res = one_sample(b - a, covariates=covariates, **kwargs)
    return _replace_params(res, test="paired")


def _replace_params(res, **extra):
    import dataclasses

    return dataclasses.replace(res, params={**res.params, **extra})


def two_sample(a, b, *, covariates=None, n_perm=10_000, seed=0, permutations=None, exchangeability_blocks=None,
               whole_blocks=False, alternative="two-sided", tfce=False, cluster_threshold=None, mask=None,
               adjacency=None, connectivity=6, tfce_params=None, tail_approximation=False, keep_null=False,
               batch_size=None, memory_limit=None, backend=None) -> PermutationResult:
    """Two-sample t-test (mean of ``a`` minus mean of ``b``) by permutation.

    Parameters
    ----------
    a : (n_a, V) array
    b : (n_b, V) array
    covariates : (n_a + n_b, c) array, optional
        Nuisance regressors, rows ``a`` then ``b`` (Freedman-Lane).
    %(common)s

    Returns
    -------
    :class:`PermutationResult`; pooled-variance t with ``df = n_a + n_b - 2 - c``.
    Rows of ``permutations`` index the stacked ``[a; b]`` data.
    """
    ya = _check_data(a, "a")
    yb = _check_data(b, "b")
    if ya.shape[1] != yb.shape[1]:
        raise ShapeError(f"a and b must have the same number of elements (columns); got {ya.shape[1]} and "
                         f"{yb.shape[1]}. Use the same parcellation for both groups.")
    y = np.vstack([ya, yb])
    n = y.shape[0]
    group = np.r_[np.ones(ya.shape[0]), np.zeros(yb.shape[0])]
    design = np.column_stack([group, np.ones(n)])
    if covariates is not None:
        design = np.column_stack([design, _check_covariates(covariates, n)])
    return _first_column_test(
        y, design, default_kind="permute", stat_name="t", params={"test": "two_sample", "method": "freedman-lane"},
        n_perm=n_perm, seed=seed, exchangeability_blocks=exchangeability_blocks, whole_blocks=whole_blocks,
        permutations=permutations, alternative=alternative, batch_size=batch_size, memory_limit=memory_limit,
        backend=backend, keep_null=keep_null, tfce=tfce, cluster_threshold=cluster_threshold, mask=mask,
        adjacency=adjacency, connectivity=connectivity, tfce_params=tfce_params,
        tail_approximation=tail_approximation,
    )


two_sample.__doc__ = _fill(two_sample.__doc__)


def _split_contrasts(contrast, test, p):
    c = np.asarray(contrast, dtype=np.float64)
    if c.ndim == 1:
        return [c[None, :]]
    if c.ndim != 2:
        raise ShapeError(f"contrast must be (p,) or (n_contrasts, p); got {describe(c)}. One weight per design column.")
    if test == "F":
        return [c]
    return [row[None, :] for row in c]


def glm(data, design, contrast, *, test="t", resampling="auto", n_perm=10_000, seed=0, permutations=None,
        signs=None, exchangeability_blocks=None, whole_blocks=False, alternative="two-sided", tfce=False,
        cluster_threshold=None, mask=None, adjacency=None, connectivity=6, tfce_params=None,
        fwer_across_contrasts=False, tail_approximation=False, keep_null=False, batch_size=None,
        memory_limit=None, backend=None) -> PermutationResult:
    """General linear model with permutation inference (Freedman-Lane).

    Parameters
    ----------
    data : (n, V) array
    design : (n, p) array
        Full-rank design (include an intercept column yourself; see
        :func:`recouple.io.design.design_from_table`).
    contrast : (p,) or (n_contrasts, p) array
        With ``test="t"`` each row is a t contrast (statistic ``(n_contrasts, V)``
        when several); with ``test="F"`` the rows form one F contrast.
    test : {"t", "F"}
    resampling : {"auto", "permute", "signflip"}
        ``"auto"``: sign flips when the tested effect is a constant column and
        nothing else is tested (one-sample designs), permutations otherwise.
    fwer_across_contrasts : bool
        Max-statistic FWER over elements *and* t contrasts.
    %(common)s

    Returns
    -------
    :class:`PermutationResult`

    Notes
    -----
    With ``Z`` the reduced model under ``C beta = 0`` (``Z = M null(C)``),
    ``E = R_z Y``, every resample ``P_k`` gives ``Y*_k = P_k E + H_z Y`` and the
    full-model t/F of ``Y*_k`` (Freedman & Lane 1983; Winkler et al. 2014).
    Observed t equals OLS ``c'b / sqrt(s^2 c'(M'M)^-1 c)``, ``df = n - rank(M)``.
    """
    y = _check_data(data)
    n = y.shape[0]
    check_choice("test", test, ("t", "F"))
    check_choice("resampling", resampling, ("auto", "permute", "signflip"))
    raw = as_array("contrast", contrast)
    m, _ = _check_design(design, raw[0] if raw.ndim == 2 else raw, n)
    contrasts = _split_contrasts(contrast, test, m.shape[1])
    for c in contrasts:
        _check_design(m, c, n)
    if resampling == "auto":
        tested = np.flatnonzero(np.any(np.vstack(contrasts) != 0, axis=0))
        constant = len(tested) == 1 and np.ptp(m[:, tested[0]]) == 0
        resampling = "signflip" if constant else "permute"
    if signs is not None:
        resampling = "signflip"
    if permutations is not None:
        resampling = "permute"
    f_of_t = test == "F" and all(np.linalg.matrix_rank(np.atleast_2d(c)) == 1 for c in contrasts)
    if f_of_t and alternative != "two-sided":
        raise InputError(f"alternative must be 'two-sided' for an F test; got {alternative!r}. Use test='t' for "
                         "a one-sided test of a single contrast.")
    return _run(y, m, contrasts, default_kind=resampling, n_perm=n_perm, seed=seed,
                exchangeability_blocks=exchangeability_blocks, whole_blocks=whole_blocks, permutations=permutations,
                signs=signs, alternative=alternative, batch_size=batch_size, memory_limit=memory_limit,
                backend=backend, keep_null=keep_null, tfce=tfce, cluster_threshold=cluster_threshold, mask=mask,
                adjacency=adjacency, connectivity=connectivity, tfce_params=tfce_params,
                fwer_across_contrasts=fwer_across_contrasts, tail_approximation=tail_approximation,
                stat_name="F" if f_of_t else "t", convert=_t_squared if f_of_t else None,
                params={"test": "glm", "method": "freedman-lane", "contrast": np.asarray(contrast).tolist()})


def _t_squared(t, df):
    # A one-row F contrast is the square of its two-sided t (same p-values).
    return None if t is None else np.asarray(t) ** 2


glm.__doc__ = _fill(glm.__doc__)


def correlation(x, data, *, covariates=None, method="pearson", n_perm=10_000, seed=0, permutations=None,
                exchangeability_blocks=None, whole_blocks=False, alternative="two-sided", tail_approximation=False,
                keep_null=False, batch_size=None, memory_limit=None, backend=None) -> PermutationResult:
    """Correlation of a clinical variable with every element, tested by permutation.

    E.g. per-region change in coupling (``data``, patients x regions) against
    the change in HAMD (``x``).

    Parameters
    ----------
    x : (n,) array
    data : (n, V) array
    covariates : (n, c) array, optional
        Partial correlation; inference by Freedman-Lane on
        ``data = b x + Z g + e`` (partial r and t are monotone at fixed df).
    method : {"pearson", "spearman"}
        Spearman ranks ``x``, ``data`` and the covariates once.
    n_perm, seed, permutations, exchangeability_blocks, whole_blocks, alternative,
    tail_approximation, keep_null, batch_size, memory_limit, backend
        As in :func:`glm`.

    Returns
    -------
    :class:`PermutationResult` with ``stat="r"``: ``statistic`` and
    ``null_max`` are (partial) correlations, ``r = t / sqrt(t^2 + df)``.
    """
    check_choice("method", method, ("pearson", "spearman"))
    y = _check_data(data)
    n = y.shape[0]
    xv = as_array("x", x)
    if xv.ndim != 1 or xv.shape[0] != n:
        raise ShapeError(f"x must be a vector with one value per scan ({n}); got {describe(xv)}. "
                         "Pass e.g. the HAMD change per patient.")
    if not np.isfinite(xv).all():
        raise InputError("x must contain only finite values; found NaN/inf. Drop those patients from x and data.")
    cov = _check_covariates(covariates, n) if covariates is not None else None
    if method == "spearman":
        from scipy.stats import rankdata

        xv = rankdata(xv)
        y = rankdata(y, axis=0)
        if cov is not None:
            cov = rankdata(cov, axis=0)
    design = np.column_stack([xv, np.ones(n)] + ([cov] if cov is not None else []))

    def to_r(t, df):
        return t / np.sqrt(t * t + df)

    return _first_column_test(
        y, design, default_kind="permute", stat_name="r", params={"test": "correlation", "method": method},
        convert=to_r, n_perm=n_perm, seed=seed, exchangeability_blocks=exchangeability_blocks,
        whole_blocks=whole_blocks, permutations=permutations, alternative=alternative, batch_size=batch_size,
        memory_limit=memory_limit, backend=backend, keep_null=keep_null, tail_approximation=tail_approximation,
    )


# --------------------------------------------------------------------------- NBS
def _edges_from(data, n_nodes):
    y = as_array("data", data)
    if y.ndim == 3:
        if y.shape[1] != y.shape[2]:
            raise ShapeError(f"data must be (n, N, N) matrices or (n, E) edge vectors; got {describe(y)}.")
        nn = y.shape[1]
        rows, cols = np.triu_indices(nn, 1)
        return y[:, rows, cols], rows, cols, nn
    if y.ndim == 2:
        if n_nodes is None:
            raise InputError("n_nodes is needed with (n, E) edge vectors; got None. Pass n_nodes=N "
                             "(edges in np.triu_indices(N, 1) order).")
        rows, cols = np.triu_indices(int(n_nodes), 1)
        if rows.size != y.shape[1]:
            raise ShapeError(f"data must have N(N-1)/2 = {rows.size} edge columns for n_nodes={n_nodes}; got "
                             f"{y.shape[1]}. Pass the upper-triangle edges in np.triu_indices order.")
        return y, rows, cols, int(n_nodes)
    raise ShapeError(f"data must be (n, N, N) or (n, E); got {describe(y)}.")


def nbs(data, design, contrast, *, threshold, measure="extent", alternative="greater", n_nodes=None,
        resampling="auto", n_perm=5_000, seed=0, permutations=None, signs=None, exchangeability_blocks=None,
        whole_blocks=False, plus_one=True, batch_size=None, memory_limit=None, backend=None) -> NBSResult:
    """Network-based statistic (Zalesky et al. 2010) with a Freedman-Lane GLM per edge.

    Parameters
    ----------
    data : (n, N, N) symmetric matrices or (n, E) upper-triangle edge vectors
    design : (n, p) array
    contrast : (p,) t contrast, or (r, p) F contrast
    threshold : float
        Primary threshold: edges with statistic > threshold (strict) form the
        supra-threshold graph.
    measure : {"extent", "intensity"}
        Component size: number of edges, or sum of (statistic - threshold).
    alternative : {"greater", "less", "two-sided"}
        Statistic thresholded as t, -t or |t| (bctpy ``tail="both"`` is |t|).
    n_nodes : int, optional
        Needed for (n, E) input.
    plus_one : bool
        ``True``: ``(1 + #{max >= size}) / (K + 1)``; ``False``: ``#{...} / K`` (NBS, bctpy).
    resampling, n_perm, seed, permutations, signs, exchangeability_blocks, whole_blocks,
    batch_size, memory_limit, backend
        As in :func:`glm`.

    Returns
    -------
    :class:`NBSResult`
    """
    check_choice("measure", measure, ("extent", "intensity"))
    check_choice("alternative", alternative, ALTERNATIVES)
    y, rows, cols, nn = _edges_from(data, n_nodes)
    y = _check_data(y)
    n = y.shape[0]
    c = np.asarray(contrast, dtype=np.float64)
    m, c2 = _check_design(design, c, n)
    if resampling == "auto":
        tested = np.flatnonzero(np.any(c2 != 0, axis=0))
        resampling = "signflip" if len(tested) == 1 and np.ptp(m[:, tested[0]]) == 0 else "permute"
    if signs is not None:
        resampling = "signflip"
    if permutations is not None:
        resampling = "permute"
    kind, matrix, exhaustive = _resamples(resampling, n, n_perm=n_perm, seed=seed, blocks=exchangeability_blocks,
                                          whole_blocks=whole_blocks, permutations=permutations, signs=signs)
    part, scaled, degenerate = _prepare(y, m, c2)
    mode = "signflip" if kind == "signflip" else "permute"
    rank = part.rank
    tail = alternative if rank == 1 else "greater"
    identity = np.ones((1, n)) if mode == "signflip" else np.arange(n)[None, :]
    g_obs = call_kernel(_glm.monotone_statistic, scaled, part.basis_x, part.basis_z, identity, backend=backend,
                        static={"mode": mode})
    # NBS convention: undefined (constant) edges get statistic 0.
    stat_obs = np.where(degenerate, 0.0, np.asarray(_glm.statistic_from_monotone(g_obs, df=part.df, rank=rank)))
    comp, size, owner = _clusters.nbs_components(stat_obs, rows, cols, nn, float(threshold), alternative=tail,
                                                 measure=measure)
    resample = matrix if mode == "signflip" else np.argsort(matrix, axis=1)
    k_total = matrix.shape[0]
    e = y.shape[1]
    bs = batch_size or plan_batch(k_total, 8.0 * e * (rank + part.basis_z.shape[0] + 6), memory_limit=memory_limit)
    null_max = np.empty(k_total)
    zero_score = np.zeros(e)
    starts = range(0, k_total, bs)
    for start in progress(starts, total=len(starts), desc="nbs"):
        stop = min(start + bs, k_total)
        out = call_kernel(_glm.permutation_batch, scaled, part.basis_x, part.basis_z, resample[start:stop],
                          zero_score, backend=backend,
                          static={"mode": mode, "alternative": alternative, "keep_null": True})
        stat_b = np.where(degenerate[None, :], 0.0,
                          np.asarray(_glm.statistic_from_monotone(out["g"], df=part.df, rank=rank)))
        _, sz, ow = _clusters.nbs_components(stat_b, rows, cols, nn, float(threshold), alternative=tail,
                                             measure=measure)
        null_max[start:stop] = _clusters.max_per_map(sz, ow, stop - start)
    # Order components by decreasing size; relabel edges 1..n_components.
    sizes = size[1:]
    order = np.argsort(-sizes, kind="stable")
    relabel = np.zeros(size.size, dtype=np.int64)
    relabel[order + 1] = np.arange(1, sizes.size + 1)
    edge_component = relabel[comp[0]]
    sizes = sizes[order]
    n_nodes_comp = np.array([np.unique(np.r_[rows[edge_component == i + 1], cols[edge_component == i + 1]]).size
                             for i in range(sizes.size)], dtype=np.int64)
    pval = np.asarray(_kstats.permutation_pvalue(sizes, null_max[:, None], alternative="greater",
                                                 plus_one=bool(plus_one)))
    return NBSResult(
        statistic=stat_obs[0], edges=np.column_stack([rows, cols]), edge_component=edge_component,
        component_size=sizes, component_nodes=n_nodes_comp, pvalue=pval, null_max=null_max,
        threshold=float(threshold), measure=measure, n_perm=int(k_total),
        permutations=matrix if kind == "permute" else None, signs=matrix if kind == "signflip" else None,
        params={"resampling": kind, "alternative": alternative, "df": part.df, "exhaustive": exhaustive,
                "plus_one": bool(plus_one)},
    )
