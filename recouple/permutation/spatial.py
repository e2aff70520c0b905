"""Spatial statistics on the permutation null: TFCE, cluster extent and mass
(volumes and graphs) and the network-based statistic, with their results.
Components are labelled on the host by :mod:`recouple.host.labels`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..engine.dispatch import host_map
from ..engine.streaming import plan_resample_batch, stream_resamples
from ..exceptions import InputError, ShapeError, describe
from ..host import labels as _labels
from ..kernels import glm as _glm
from ..kernels import pvalues as _kp
from ..validation import as_array, check_choice
from .design import check_data, check_design, prepare, resolve_kind
from .options import Resampling, Spatial, accepts_legacy_options, fill_doc
from .resamples import draw_resamples
from .streamed import null_batches, observed_g

__all__ = ["SpatialResult", "ClusterResult", "NBSResult", "nbs"]


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


@dataclass
class SpatialPlan:
    kind: str  # "tfce" | "cluster"
    mask: np.ndarray | None
    adjacency: Any
    structure: np.ndarray | None
    params: dict


def to_maps(stat, spatial):
    """(B, V) element statistics -> (B, X, Y, Z) volumes or (B, V) graph maps."""
    if spatial.mask is None:
        return stat
    vol = np.zeros((stat.shape[0],) + spatial.mask.shape)
    vol[:, spatial.mask] = stat
    return vol


def tfce_scores(stat, spatial, alternative):
    """TFCE maps (B, V) of element statistics (B, V); maps on every core
    (each map's TFCE depends on that map alone)."""
    p = spatial.params

    def one(k):
        maps = _labels.tfce(
            to_maps(stat[k : k + 1], spatial), structure=spatial.structure, adjacency=spatial.adjacency,
            height=p["height"], extent=p["extent"], n_steps=p["n_steps"], dh=p["dh"],
            alternative=alternative, multiply_dh=p["multiply_dh"], weights=p.get("weights"),
        )
        return maps[:, spatial.mask] if spatial.mask is not None else maps

    return np.concatenate(host_map(one, range(stat.shape[0])), axis=0)


def cluster_stats(stat, spatial, alternative):
    labels, extent, mass, owner = _labels.cluster_sizes(
        to_maps(stat, spatial), spatial.params["threshold"], structure=spatial.structure,
        adjacency=spatial.adjacency, alternative=alternative,
    )
    return labels, extent, mass, owner


def make_spatial(spatial: Spatial, v):
    """``(tfce plan, cluster plan)`` for ``v`` data columns (``None`` where not asked for)."""
    tfce, cluster_threshold, mask, adjacency = spatial.tfce, spatial.cluster_threshold, spatial.mask, spatial.adjacency
    connectivity, tfce_params = spatial.connectivity, spatial.tfce_params
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
        structure = _labels.volume_structure(connectivity if mask.ndim == 3 else {6: 4, 18: 8, 26: 8}.get(connectivity, 4),
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
    tf = SpatialPlan("tfce", mask, adjacency, structure, params) if tfce else None
    cl = None
    if cluster_threshold is not None:
        cl = SpatialPlan("cluster", mask, adjacency, structure, {"threshold": float(cluster_threshold)})
    return tf, cl


def edges_from(data, n_nodes):
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
        plus_one=True, resampling=None) -> NBSResult:
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
    %(resampling)s
        Default here: ``Resampling(n_perm=5000)``; ``keep_null`` and
        ``tail_approximation`` do not apply.
    %(legacy)s

    Returns
    -------
    :class:`NBSResult`
    """
    check_choice("measure", measure, ("extent", "intensity"))
    check_choice("alternative", alternative, _kp.ALTERNATIVES)
    y, rows, cols, nn = edges_from(data, n_nodes)
    y = check_data(y)
    n = y.shape[0]
    c = np.asarray(contrast, dtype=np.float64)
    m, c2 = check_design(design, c, n)
    drawn = draw_resamples(n, resampling, kind=resolve_kind(resampling, m, c2))
    kind, matrix, exhaustive = drawn.kind, drawn.matrix, drawn.exhaustive
    backend = resampling.backend
    part, scaled, degenerate = prepare(y, m, c2)
    mode = "signflip" if kind == "signflip" else "permute"
    rank = part.rank
    tail = alternative if rank == 1 else "greater"
    g_obs = observed_g(scaled, part, mode=mode, backend=backend)[None, :]
    # NBS convention: undefined (constant) edges get statistic 0.
    stat_obs = np.where(degenerate, 0.0, np.asarray(_glm.statistic_from_monotone(g_obs, df=part.df, rank=rank)))
    comp, size, owner = _labels.nbs_components(stat_obs, rows, cols, nn, float(threshold), alternative=tail,
                                               measure=measure)
    resample = matrix if mode == "signflip" else np.argsort(matrix, axis=1)
    k_total = matrix.shape[0]
    e = y.shape[1]
    bs = plan_resample_batch(k_total, 8.0 * e * (rank + part.basis_z.shape[0] + 6),
                             batch_size=resampling.batch_size, memory_limit=resampling.memory_limit, cache_cap=None)
    null_batch = null_batches(scaled, part, resample, mode=mode, backend=backend, batch_size=bs)

    def block(start, stop):
        stat_b = np.where(degenerate[None, :], 0.0,
                          np.asarray(_glm.statistic_from_monotone(null_batch(start, stop), df=part.df, rank=rank)))
        _, sz, ow = _labels.nbs_components(stat_b, rows, cols, nn, float(threshold), alternative=tail,
                                           measure=measure)
        return {"null_max": _labels.max_per_map(sz, ow, stop - start)}

    null_max = stream_resamples(block, k_total, batch_size=bs, maxima=("null_max",), desc="nbs",
                                progress=resampling.progress).maxima["null_max"]
    # Order components by decreasing size; relabel edges 1..n_components.
    sizes = size[1:]
    order = np.argsort(-sizes, kind="stable")
    relabel = np.zeros(size.size, dtype=np.int64)
    relabel[order + 1] = np.arange(1, sizes.size + 1)
    edge_component = relabel[comp[0]]
    sizes = sizes[order]
    n_nodes_comp = np.array([np.unique(np.r_[rows[edge_component == i + 1], cols[edge_component == i + 1]]).size
                             for i in range(sizes.size)], dtype=np.int64)
    pval = np.asarray(_kp.permutation_pvalue(sizes, null_max[:, None], alternative="greater",
                                             plus_one=bool(plus_one)))
    return NBSResult(
        statistic=stat_obs[0], edges=np.column_stack([rows, cols]), edge_component=edge_component,
        component_size=sizes, component_nodes=n_nodes_comp, pvalue=pval, null_max=null_max,
        threshold=float(threshold), measure=measure, n_perm=int(k_total),
        permutations=drawn.permutations, signs=drawn.signs,
        params={"resampling": kind, "alternative": alternative, "df": part.df, "exhaustive": exhaustive,
                "plus_one": bool(plus_one)},
    )


nbs = accepts_legacy_options(default_resampling=Resampling(n_perm=5_000))(fill_doc(nbs))

