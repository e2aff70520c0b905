"""Connected-component labelling for permutation inference: TFCE (volumes and
graphs), cluster extent and mass, and NBS components.

Connected components are not a matrix product; they are labelled with SciPy
(``scipy.ndimage.label`` / ``scipy.sparse.csgraph``) and the compiled
union-find loops on the host for NumPy input, and with
``cupyx.scipy.ndimage.label`` for CuPy volumes (the CuPy delegate). Arrays of
other backends are brought to the host by the caller
(:func:`recouple.engine.backend.to_host`). Every
function takes a *batch* of maps ``(B, ...)`` and labels all of them in one
call: the maps are stacked along a leading axis that the connectivity
structure does not connect, so no Python loop runs over maps. The only loop is
over the fixed number of TFCE height steps.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage, sparse
from scipy.sparse.csgraph import connected_components

# The compiled loops: imported here only, so that their home can move.
from . import jit as _jit
from ..kernels import pvalues as _kp

_VOLUME_CONNECTIVITY = {6: 1, 18: 2, 26: 3}


def _is_cupy(x) -> bool:
    return type(x).__module__.startswith("cupy")


def volume_structure(connectivity: int = 6, ndim: int = 3) -> np.ndarray:
    """Boolean neighbourhood for ``connectivity`` in {6, 18, 26} (3-D) or 4/8 (2-D)."""
    if ndim == 3:
        rank = _VOLUME_CONNECTIVITY[connectivity]
    elif ndim == 2:
        rank = {4: 1, 8: 2}[connectivity]
    else:
        rank = 1
    return ndimage.generate_binary_structure(ndim, rank)


def _pad_structure(structure: np.ndarray) -> np.ndarray:
    # a 1-D or 2-D neighbourhood as the middle of a 3x3x3 one (volumes of
    # shape (X,) or (X, Y) are run as (X, 1, 1) or (X, Y, 1))
    out = np.zeros((3, 3, 3), dtype=bool)
    if structure.ndim == 1:
        out[:, 1, 1] = structure
    else:
        out[:, :, 1] = structure
    return out


def _batched_structure(structure: np.ndarray) -> np.ndarray:
    # Leading batch axis: only the middle slice is set, so maps never touch.
    out = np.zeros((3,) + structure.shape, dtype=bool)
    out[1] = structure
    return out


def label_volumes(mask, structure):
    """Connected components of every map in a batch.

    Parameters
    ----------
    mask : (B, X, Y, Z) bool array
        Supra-threshold voxels of B maps (any spatial rank).
    structure : bool array of the spatial rank
        Neighbourhood (see :func:`volume_structure`).

    Returns
    -------
    labels : (B, X, Y, Z) int array
        0 outside ``mask``; components numbered 1..n across the whole batch.
    sizes : (n + 1,) int array
        Voxels per label (``sizes[0]`` counts the background).
    """
    if _is_cupy(mask):
        # CuPy delegate; cupy is optional, so imported only when its arrays arrive.
        import cupy
        from cupyx.scipy import ndimage as cundi

        labels, _ = cundi.label(mask, structure=cupy.asarray(_batched_structure(np.asarray(structure))))
        return labels, cupy.bincount(labels.ravel())
    labels, _ = ndimage.label(np.asarray(mask), structure=_batched_structure(np.asarray(structure)))
    return labels, np.bincount(labels.ravel())


def label_graph(active, adjacency):
    """Connected components of the active nodes of a graph, for a batch of node masks.

    Parameters
    ----------
    active : (B, V) bool array
    adjacency : (V, V) scipy sparse matrix or array (nonzero = edge)

    Returns
    -------
    labels : (B, V) int array
        0 for inactive nodes; components numbered from 1 across the batch.
    sizes : (n + 1,) int array
    """
    active = np.asarray(active, dtype=bool)
    b, v = active.shape
    coo = sparse.coo_matrix(adjacency)
    rows, cols = coo.row, coo.col
    both = active[:, rows] & active[:, cols]  # (B, n_edges)
    kb, ke = np.nonzero(both)
    offset = kb.astype(np.int64) * v
    graph = sparse.coo_matrix(
        (np.ones(kb.size, dtype=np.int8), (offset + rows[ke], offset + cols[ke])), shape=(b * v, b * v)
    ).tocsr()
    _, comp = connected_components(graph, directed=False)
    flat_active = active.ravel()
    # Renumber components of active nodes 1..n; inactive nodes are 0.
    uniq, inverse = np.unique(comp[flat_active], return_inverse=True)
    labels = np.zeros(b * v, dtype=np.int64)
    labels[flat_active] = inverse + 1
    return labels.reshape(b, v), np.bincount(labels)


def tfce(stat, *, structure=None, adjacency=None, height=2.0, extent=0.5, n_steps=100, dh=None,
         alternative="two-sided", multiply_dh=True, weights=None):
    """Threshold-free cluster enhancement of a batch of maps.

    Parameters
    ----------
    stat : (B, X, Y, Z) array (volumes) or (B, V) array (graph/surface with ``adjacency``)
        Statistic maps; NaN counts as below every threshold.
    structure : bool array, optional
        Volume neighbourhood (default 6-connectivity, :func:`volume_structure`).
    adjacency : (V, V) sparse matrix, optional
        Graph neighbourhood for surface or region data; switches to graph mode.
    height, extent : float
        H and E (PALM/FSL volume defaults 2 and 0.5; surfaces often E = 1).
    n_steps : int
        Number of height steps when ``dh`` is None: ``dh = max / n_steps`` per map,
        where ``max`` is the map's largest |value| (two-sided) or value (one-sided).
    dh : float, optional
        Fixed step; heights are ``dh, 2 dh, ...`` up to the map maximum.
    alternative : {"two-sided", "greater", "less"}
        Two-sided: positive and negative parts enhanced separately with the
        same heights; negative parts return negative TFCE.
    multiply_dh : bool
        ``True`` (PALM, Smith & Nichols 2009): each step contributes
        ``e^E h^H dh``. ``False`` (fslmaths, nilearn): ``e^E h^H``.
    weights : (V,) array, optional
        Graph mode: extent as the summed node weight (e.g. vertex areas)
        instead of the node count.

    Returns
    -------
    (B, ...) float64 array of TFCE values, same shape as ``stat``.

    Notes
    -----
    ``TFCE(v) = sum_{j=1..n} e_v(h_j)^E h_j^H [dh]`` with ``h_j = j dh`` and
    ``e_v(h)`` the extent of the component of ``{stat >= h}`` containing v.
    With ``multiply_dh=False`` and 100 steps this equals
    ``nilearn.mass_univariate._utils.calculate_tfce``.
    """
    xp_is_cupy = _is_cupy(stat)
    if xp_is_cupy:
        import cupy as mod  # optional dependency, only with CuPy input
    else:
        mod = np
        stat = np.asarray(stat, dtype=np.float64)
    b = stat.shape[0]
    flat = stat.reshape(b, -1)
    clean = mod.where(mod.isnan(flat), 0.0, flat)
    if alternative == "two-sided":
        top = mod.max(mod.abs(clean), axis=1)
        parts = ((1.0, clean), (-1.0, -clean))
    elif alternative == "greater":
        top = mod.max(clean, axis=1)
        parts = ((1.0, clean),)
    else:
        top = mod.max(-clean, axis=1)
        parts = ((-1.0, -clean),)
    top = mod.maximum(top, 0.0)
    if dh is None:
        steps = int(n_steps)
        step = top / steps
    else:
        step = mod.full(b, float(dh))
        steps = int(np.ceil(float(top.max()) / float(dh))) if b else 0
        steps = max(steps, 0)
    out = mod.zeros_like(clean)
    graph = adjacency is not None
    if structure is None and not graph:
        structure = volume_structure(6, stat.ndim - 1)
    if graph and weights is not None:
        weights = np.asarray(weights, dtype=np.float64)
    if not xp_is_cupy and (graph or stat.ndim <= 4) and _jit.enabled():
        # one union-find pass per map instead of labelling every height
        j = np.arange(1, steps + 1, dtype=np.float64)
        heights = step[:, None] * j[None, :]
        if dh is None and steps:
            heights[:, -1] = top  # as below: the last automatic height is the maximum itself
        coef = heights**height * step[:, None] if multiply_dh else heights**height
        heights = np.where(heights > 0, heights, np.inf)  # a zero height activates nothing
        if graph:
            kw = {"adjacency": adjacency, "weights": weights}
        else:
            st = np.asarray(structure, dtype=bool)
            kw = {"shape": (stat.shape[1:] + (1, 1))[:3], "structure": st if st.ndim == 3 else _pad_structure(st)}
        for sign, values in parts:
            _jit.tfce_maps(values, heights, coef, extent=extent, sign=sign, out=out, **kw)
        return out.reshape(stat.shape)
    for sign, values in parts:
        for j in range(1, steps + 1):
            # The last automatic height is the maximum itself (as numpy.linspace
            # gives it), so rounding of j * (max / n) never drops the peak.
            h = top if (dh is None and j == steps) else step * j  # (B,)
            active = (values >= h[:, None]) & (h[:, None] > 0)
            if graph:
                labels, sizes = label_graph(active, adjacency)
                if weights is not None:
                    sizes = np.bincount(labels.ravel(), weights=np.tile(weights, b), minlength=sizes.size)
                    sizes[0] = 0
            else:
                labels, sizes = label_volumes(active.reshape(stat.shape), structure)
                labels = labels.reshape(b, -1)
            ext = sizes[labels].astype(np.float64)
            contrib = ext**extent * (h[:, None] ** height)
            if multiply_dh:
                contrib = contrib * step[:, None]
            out = out + sign * mod.where(labels > 0, contrib, 0.0)
    return out.reshape(stat.shape)


def cluster_sizes(stat, threshold, *, structure=None, adjacency=None, alternative="greater"):
    """Cluster extent and mass of supra-threshold components for a batch of maps.

    Parameters
    ----------
    stat : (B, X, Y, Z) or (B, V) array
    threshold : float
        Cluster-forming threshold ``h``. ``"greater"``: clusters of
        ``stat > h``; ``"less"``: of ``-stat > h``; ``"two-sided"``: clusters of
        ``stat > h`` and of ``stat < -h`` formed *separately*, so touching
        positive and negative elements never share a cluster (nilearn, FSL,
        MNE; the same split as :func:`tfce`).
    structure, adjacency
        As in :func:`tfce`.

    Returns
    -------
    labels : (B, ...) int array (0 = not in a cluster; numbered across the batch,
        positive clusters first for two-sided maps)
    extent : (n + 1,) float array, voxels per cluster (entry 0 unused, set to 0)
    mass : (n + 1,) float array, sum of ``score - threshold`` per cluster, the
        score being ``|stat|`` for two-sided maps
    owner : (n + 1,) int array, the map each cluster belongs to (entry 0 = -1)
    """
    stat = np.asarray(stat, dtype=np.float64)
    b = stat.shape[0]
    if adjacency is None and structure is None:
        structure = volume_structure(6, stat.ndim - 1)

    def label(active):
        if adjacency is not None:
            lab, _ = label_graph(active.reshape(b, -1), adjacency)
            return lab.reshape(stat.shape)
        lab, _ = label_volumes(active, structure)
        return np.asarray(lab)

    score = _kp.tail_score(stat, alternative)
    score = np.where(np.isnan(score), -np.inf, score)
    if alternative == "two-sided":
        clean = np.where(np.isnan(stat), 0.0, stat)
        positive = label(clean > threshold)
        negative = label(-clean > threshold)
        n_positive = int(positive.max()) if positive.size else 0
        labels = np.where(negative > 0, negative + n_positive, positive)
    else:
        labels = label(score > threshold)
    n = int(labels.max()) + 1 if labels.size else 1
    flat = labels.ravel()
    extent = np.bincount(flat, minlength=n).astype(np.float64)
    mass = np.bincount(flat, weights=np.where(flat > 0, (score - threshold).ravel(), 0.0), minlength=n)
    extent[0] = 0.0
    mass[0] = 0.0
    owner = np.full(n, -1, dtype=np.int64)
    per_map = np.repeat(np.arange(b), flat.size // max(b, 1))
    owner[flat[flat > 0]] = per_map[flat > 0]
    return labels, extent, mass, owner


def max_per_map(values, owner, n_maps):
    """Largest ``values[c]`` over the clusters ``c`` of each map (0 where a map has none): ``(B,)``."""
    out = np.zeros(n_maps, dtype=np.float64)
    keep = owner >= 0
    np.maximum.at(out, owner[keep], values[keep])
    return out


def nbs_components(edge_stat, rows, cols, n_nodes, threshold, *, alternative="greater", measure="extent"):
    """Network-based-statistic components of a batch of edge-statistic vectors.

    Parameters
    ----------
    edge_stat : (B, E) array
        Statistic per edge, edges listed by ``rows``/``cols`` (upper triangle).
    rows, cols : (E,) int arrays
    n_nodes : int
    threshold : float
        Edges with score > threshold (strict, as in NBS) are supra-threshold;
        score is ``stat``, ``-stat`` or ``|stat|`` by ``alternative``. Two-sided
        components are formed on ``|stat|`` (bctpy ``tail="both"``), so
        positive and negative edges may share a component.
    measure : {"extent", "intensity"}
        Component size as its number of edges, or ``sum(score - threshold)``.

    Returns
    -------
    edge_component : (B, E) int array
        Component label of every supra-threshold edge (0 = none), numbered
        across the batch.
    size : (n + 1,) float array, size per component (entry 0 is 0)
    owner : (n + 1,) int array, the map of each component (entry 0 = -1)
    """
    stat = np.asarray(edge_stat, dtype=np.float64)
    b, e = stat.shape
    score = _kp.tail_score(stat, alternative)
    score = np.where(np.isnan(score), -np.inf, score)
    active = score > threshold
    kb, ke = np.nonzero(active)
    offset = kb.astype(np.int64) * n_nodes
    src = offset + rows[ke]
    dst = offset + cols[ke]
    graph = sparse.coo_matrix((np.ones(kb.size, dtype=np.int8), (src, dst)), shape=(b * n_nodes,) * 2).tocsr()
    _, comp = connected_components(graph, directed=False)
    edge_comp_raw = comp[src]
    uniq, inverse = np.unique(edge_comp_raw, return_inverse=True)
    n = uniq.size + 1
    edge_component = np.zeros((b, e), dtype=np.int64)
    edge_component[kb, ke] = inverse + 1
    if measure == "intensity":
        size = np.bincount(inverse + 1, weights=score[kb, ke] - threshold, minlength=n)
    else:
        size = np.bincount(inverse + 1, minlength=n).astype(np.float64)
    size[0] = 0.0
    owner = np.full(n, -1, dtype=np.int64)
    owner[inverse + 1] = kb
    return edge_component, size, owner
