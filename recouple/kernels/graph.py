"""Communication predictors on connectivity graphs, batched over leading axes.

Shortest paths (Floyd-Warshall as N min-plus pivot steps over ``(..., N, N)``
blocks), search information, communicability,
greedy navigation and diffusion efficiency. Path bookkeeping (search information, navigation) uses
pointer doubling: ceil(log2 N) gathers instead of walking every path.

Loops over pivots or candidate neighbours take two optional routes that the
caller picks for the backend (:mod:`recouple.graph` does): ``loop(n, body,
carry)`` runs ``carry = body(k, carry)`` for k in 0..n-1 (JAX's
``fori_loop``: one compiled step instead of n unrolled ones; default a Python
loop), and ``pivots(d, p)`` runs all N Floyd-Warshall pivot steps at once
(the NumPy backend's compiled loops in :mod:`recouple.host.graph`, the same
sums and strict comparisons in the same order, so bit-identical). Without
them every function here is plain array-API code.
"""

from __future__ import annotations

import math

import numpy as np

from ._xp import as_float, is_numpy_namespace, namespace, take_along

__all__ = [
    "TRANSFORMS",
    "euclidean_distance",
    "weight_to_length",
    "TRACK",
    "floyd_warshall",
    "shortest_paths",
    "path_lengths",
    "search_information",
    "communicability",
    "navigation",
    "reachability",
    "mean_first_passage_time",
    "diffusion_efficiency",
]

TRANSFORMS = ("neglog", "neglog_raw", "inv", "length", "hops")


def _fori_loop(loop, n, body, carry):
    """``carry = body(k, carry)`` for k in 0..n-1: through ``loop`` when the
    caller gives one (e.g. JAX's ``fori_loop``), else a Python loop."""
    if loop is not None:
        return loop(n, body, carry)
    for k in range(n):
        carry = body(k, carry)
    return carry


def _eye_bool(xp, n, like):
    return xp.astype(xp.eye(n, dtype=like.dtype), xp.bool)


def _doubling_steps(n):
    return max(1, math.ceil(math.log2(max(n, 2))))


def euclidean_distance(coords):
    """Pairwise Euclidean distances between centroids.

    Parameters
    ----------
    coords : (..., N, D) array

    Returns
    -------
    dist : (..., N, N) array
    """
    xp = namespace(coords)
    c = as_float(xp, coords)
    diff = c[..., :, None, :] - c[..., None, :, :]
    return xp.sqrt(xp.sum(diff * diff, axis=-1))


def weight_to_length(w, *, transform="neglog"):
    """Connection lengths from weights; absent edges (w == 0) get length inf.

    ``"neglog"``: -log(w / (max w + 1)) with the maximum taken per matrix;
    ``"neglog_raw"``: -log(w) (w <= 1); ``"inv"``: 1 / w; ``"length"``: ``w``
    already holds lengths; ``"hops"``: every edge has length 1. The diagonal
    is 0.
    """
    xp = namespace(w)
    w = as_float(xp, w)
    n = w.shape[-1]
    edge = w != 0
    safe = xp.where(edge, w, 1.0)
    if transform == "neglog":
        wmax = xp.max(w, axis=(-2, -1), keepdims=True)
        length = -xp.log(safe / (wmax + 1.0))
    elif transform == "neglog_raw":
        length = -xp.log(safe)
    elif transform == "inv":
        length = 1.0 / safe
    elif transform == "length":
        length = safe
    elif transform == "hops":
        length = xp.ones_like(safe)
    else:
        raise ValueError(f"transform must be one of {TRANSFORMS}; got {transform!r}")
    inf = xp.asarray(float("inf"), dtype=w.dtype)
    length = xp.where(edge, length, inf)
    return xp.where(_eye_bool(xp, n, w), xp.asarray(0.0, dtype=w.dtype), length)


TRACK = ("length", "predecessor", "all")


def floyd_warshall(length, *, track="all", loop=None, pivots=None):
    """All-pairs shortest paths by N batched min-plus pivot steps.

    Parameters
    ----------
    length : (..., N, N) array
        Edge lengths, inf where there is no edge, 0 on the diagonal.
    track : {"length", "predecessor", "all"}
        What to compute besides the lengths: ``"length"`` nothing (one
        add and one minimum a pivot), ``"predecessor"`` the predecessors,
        ``"all"`` predecessors and hop counts. Untracked outputs are None.
    loop : callable, optional
        ``loop(n, body, carry)`` running the pivot steps (see the module
        docstring); default a Python loop.
    pivots : callable, optional
        ``pivots(d, p)`` running all N pivot steps on lengths ``d`` and
        predecessors ``p`` (None when not tracked); returns ``dist`` or
        ``(dist, pred)``. Default: the portable pivot steps.

    Returns
    -------
    dist : (..., N, N) float array
        Shortest path lengths (inf where unreachable).
    hops : (..., N, N) float array or None
        Edges on the chosen shortest path (inf where unreachable).
    predecessor : (..., N, N) int array or None
        Node before ``j`` on the chosen path from ``i`` to ``j``; -1 on the
        diagonal and where unreachable.

    Notes
    -----
    A pair is updated through pivot k only when the detour is strictly
    shorter, pivots in ascending order: among equally short paths the one
    kept is the one SciPy's and the Brain Connectivity Toolbox's
    Floyd-Warshall keep. Hop counts are summed along the predecessor paths
    afterwards (pointer doubling, ceil(log2 N) gathers) rather than carried
    through the N pivot steps.
    """
    if track not in TRACK:
        raise ValueError(f"track must be one of {TRACK}; got {track!r}")
    xp = namespace(length)
    d0 = as_float(xp, length)
    n = d0.shape[-1]
    if track == "length":
        if pivots is not None:
            return pivots(d0, None), None, None

        def relax(k, d):
            return xp.minimum(d, d[..., :, k][..., :, None] + d[..., k, :][..., None, :])

        return _fori_loop(loop, n, relax, d0), None, None

    finite = xp.isfinite(d0)
    eye = _eye_bool(xp, n, d0)
    edge = finite & ~eye
    rows = xp.broadcast_to(xp.reshape(xp.arange(n, dtype=xp.int64), (n, 1)), d0.shape)
    pred0 = xp.where(edge, rows, xp.asarray(-1, dtype=xp.int64))

    if pivots is not None:
        dist, pred = pivots(d0, pred0)
    else:
        def pivot(k, carry):
            d, p = carry
            through = d[..., :, k][..., :, None] + d[..., k, :][..., None, :]
            better = through < d
            return xp.where(better, through, d), xp.where(better, p[..., k, :][..., None, :], p)

        dist, pred = _fori_loop(loop, n, pivot, (d0, pred0))
    if track == "predecessor":
        return dist, None, pred
    one = xp.where(edge, xp.asarray(1.0, dtype=d0.dtype), xp.asarray(0.0, dtype=d0.dtype))
    return dist, _path_sums(xp, pred, one), pred


def shortest_paths(w, *, transform="neglog", track="all", loop=None, pivots=None):
    """Shortest paths of weight matrices ``w`` (..., N, N) after
    :func:`weight_to_length`; returns ``(dist, hops, predecessor)`` as
    :func:`floyd_warshall` (None for what ``track`` leaves out; ``loop``,
    ``pivots`` as there)."""
    return floyd_warshall(weight_to_length(w, transform=transform), track=track, loop=loop, pivots=pivots)


def path_lengths(w, *, transform="neglog", loop=None, pivots=None):
    """Shortest path lengths only (..., N, N) (inf where unreachable)."""
    return shortest_paths(w, transform=transform, track="length", loop=loop, pivots=pivots)[0]


def _path_sums(xp, predecessor, *step_costs):
    """Sum ``step_cost[u, v]`` over the edges u -> v of every chosen path.

    ``predecessor`` (..., N, N) as returned by :func:`floyd_warshall`; one
    result per ``step_cost`` (a tuple when several are given; the pointer
    chain is shared).
    Pointer doubling: after step s each entry has summed the last 2^s edges of
    its path and points 2^s nodes further back, so ceil(log2 N) gathers reach
    the source of every path. Unreachable pairs give inf; the diagonal 0.
    """
    if is_numpy_namespace(xp):
        out = _path_sums_numpy(predecessor, step_costs)
        return out if len(out) > 1 else out[0]
    n = predecessor.shape[-1]
    rows = xp.broadcast_to(xp.reshape(xp.arange(n, dtype=predecessor.dtype), (n, 1)), predecessor.shape)
    reach = predecessor >= 0
    parent = xp.where(reach, predecessor, rows)
    # cost of the last edge parent[i, j] -> j of the path i -> j
    cols = xp.broadcast_to(xp.reshape(xp.arange(n, dtype=predecessor.dtype), (1, n)), predecessor.shape)
    flat = xp.reshape(parent * n + cols, predecessor.shape[:-2] + (n * n,))
    eye = _eye_bool(xp, n, step_costs[0])
    accs = []
    for step_cost in step_costs:
        dt = step_cost.dtype
        cost_flat = xp.reshape(xp.broadcast_to(step_cost, predecessor.shape), predecessor.shape[:-2] + (n * n,))
        last = xp.reshape(take_along(xp, cost_flat, flat, axis=-1), predecessor.shape)
        accs.append(xp.where(reach, last, xp.where(eye, xp.asarray(0.0, dtype=dt), xp.asarray(float("inf"), dtype=dt))))
    for _ in range(_doubling_steps(n) + 1):
        accs = [acc + take_along(xp, acc, parent, axis=-1) for acc in accs]
        parent = take_along(xp, parent, parent, axis=-1)
    return tuple(accs) if len(accs) > 1 else accs[0]


def _path_sums_numpy(predecessor, step_costs):
    # The same pointer doubling with flat indices into the whole batch: plain
    # 1-D fancy indexing gathers several times faster than take_along_axis.
    pred = np.asarray(predecessor)
    shape = pred.shape
    n = shape[-1]
    pred = pred.reshape((-1, n, n))
    reach = pred >= 0
    safe = np.where(reach, pred, 0).astype(np.int64, copy=False)
    matrix = (np.arange(pred.shape[0], dtype=np.int64) * (n * n))[:, None, None]
    row = (np.arange(n, dtype=np.int64) * n)[None, :, None]
    col = np.arange(n, dtype=np.int64)[None, None, :]
    # flat index of (b, i, parent[i, j]); unreachable pairs and the diagonal point to themselves
    parent = np.where(reach, matrix + row + safe, matrix + row + col).ravel()
    # last edge parent -> j of the path i -> j: entry (b, parent, j) of the cost
    last_edge = (matrix + safe * n + col).ravel()
    reach = reach.ravel()
    idle = np.where(np.eye(n, dtype=bool), 0.0, np.inf)
    accs = []
    for step_cost in step_costs:
        cost = np.broadcast_to(np.asarray(step_cost), shape).reshape(-1)
        fill = np.broadcast_to(idle.astype(cost.dtype), pred.shape).ravel()
        accs.append(np.where(reach, cost[last_edge], fill))
    for _ in range(_doubling_steps(n) + 1):
        accs = [acc + acc[parent] for acc in accs]
        parent = parent[parent]
    return tuple(acc.reshape(shape) for acc in accs)


def search_information(w, predecessor):
    """Search information along the chosen shortest paths (Goni et al. 2014).

    Parameters
    ----------
    w : (..., N, N) array
        Symmetric non-negative weights defining the random walk T = D^-1 W.
    predecessor : (..., N, N) int array
        From :func:`floyd_warshall` on the lengths of ``w``.

    Returns
    -------
    si : (..., N, N) array
        SI_ij = -log2 of the probability that a walker from i follows the
        path to j without memory; for i > j the path from j to i walked
        backwards (the reference convention for symmetric graphs). NaN on the
        diagonal, inf where unreachable.
    """
    xp = namespace(w, predecessor)
    w = as_float(xp, w)
    n = w.shape[-1]
    strength = xp.sum(w, axis=-1, keepdims=True)
    trans = w / xp.where(strength > 0, strength, 1.0)
    inf = xp.asarray(float("inf"), dtype=w.dtype)
    step = xp.where(trans > 0, -xp.log2(xp.where(trans > 0, trans, 1.0)), inf)
    forward, backward = _path_sums(xp, predecessor, step, xp.matrix_transpose(step))
    i = xp.reshape(xp.arange(n), (n, 1))
    j = xp.reshape(xp.arange(n), (1, n))
    si = xp.where(i < j, forward, xp.matrix_transpose(backward))
    return xp.where(i == j, xp.asarray(float("nan"), dtype=w.dtype), si)


def _expm_symmetric(xp, a):
    lam, vec = xp.linalg.eigh(a)
    return (vec * xp.exp(lam)[..., None, :]) @ xp.matrix_transpose(vec)


def communicability(w, *, weighted=True, normalize=False):
    """Communicability of symmetric graphs (expm by eigendecomposition).

    Parameters
    ----------
    w : (..., N, N) array
        Symmetric non-negative weights (binary adjacency when not weighted).
    weighted : bool
        ``True``: expm(D^-1/2 W D^-1/2) with the diagonal set to 0 (Crofts &
        Higham 2009); nodes without connections get 0. ``False``: expm(A) of
        the binary adjacency A = (w != 0) (Estrada & Hatano 2008).
    normalize : bool
        Binary only: divide A by its largest eigenvalue first.

    Returns
    -------
    cmc : (..., N, N) array
    """
    xp = namespace(w)
    w = as_float(xp, w)
    n = w.shape[-1]
    if weighted:
        s = xp.sum(w, axis=-1)
        inv_sqrt = xp.where(s > 0, 1.0 / xp.sqrt(xp.where(s > 0, s, 1.0)), 0.0)
        a = inv_sqrt[..., :, None] * w * inv_sqrt[..., None, :]
        out = _expm_symmetric(xp, a)
        return xp.where(_eye_bool(xp, n, w), xp.asarray(0.0, dtype=w.dtype), out)
    a = xp.astype(w != 0, w.dtype)
    lam, vec = xp.linalg.eigh(a)
    if normalize:
        top = lam[..., -1:]
        lam = lam / xp.where(top != 0, top, 1.0)
    return (vec * xp.exp(lam)[..., None, :]) @ xp.matrix_transpose(vec)


def navigation(w, dist, *, loop=None):
    """Greedy navigation (Seguin et al. 2018) from every node to every node.

    At node u the walker moves to the neighbour v (w_uv != 0, v != u) closest
    to the target by ``dist``, the lowest index among ties; it fails at a node
    without neighbours or when it would revisit a node.

    Parameters
    ----------
    w : (..., N, N) array
        Connectivity (only its non-zero pattern is used).
    dist : (..., N, N) array
        Distances that guide the walker and measure the path (e.g. Euclidean).
    loop : callable, optional
        ``loop(n, body, carry)`` scanning the candidate neighbours (see the
        module docstring); default a Python loop.

    Returns
    -------
    length : (..., N, N) array
        Summed ``dist`` along the navigated path; inf where navigation fails;
        0 on the diagonal.
    hops : (..., N, N) array
        Edges on the navigated path; inf where navigation fails.
    """
    xp = namespace(w, dist)
    dist = as_float(xp, dist)
    n = w.shape[-1]
    shape = xp.broadcast_arrays(as_float(xp, w), dist)[0].shape
    dist = xp.broadcast_to(dist, shape)
    eye = _eye_bool(xp, n, dist)
    adj = xp.broadcast_to((w != 0) & ~eye, shape)
    inf = xp.asarray(float("inf"), dtype=dist.dtype)

    # next hop from u towards target t: scan candidate neighbours v in order,
    # keeping the first strict minimum of dist[v, t] (np.argmin's tie rule)
    def scan(v, carry):
        best, arg = carry
        cand = xp.where(adj[..., :, v][..., :, None], dist[..., v, :][..., None, :], inf)
        better = cand < best
        return xp.where(better, cand, best), xp.where(better, v, arg)

    best0 = xp.full(shape, float("inf"), dtype=dist.dtype)
    rows = xp.broadcast_to(xp.reshape(xp.arange(n, dtype=xp.int64), (n, 1)), shape)
    cols = xp.broadcast_to(xp.reshape(xp.arange(n, dtype=xp.int64), (1, n)), shape)
    _, nxt = _fori_loop(loop, n, scan, (best0, xp.full(shape, -1, dtype=xp.int64)))
    dead = nxt < 0
    # the target absorbs; a dead end is a failure that stays in place
    nxt = xp.where(eye, cols, xp.where(dead, rows, nxt))
    # length of the edge u -> nxt[u, t]: dist[u, nxt[u, t]]
    flat = xp.reshape(rows * n + nxt, shape[:-2] + (n * n,))
    step = xp.reshape(take_along(xp, xp.reshape(dist, shape[:-2] + (n * n,)), flat, axis=-1), shape)
    zero = xp.asarray(0.0, dtype=dist.dtype)
    length = xp.where(eye, zero, xp.where(dead, inf, step))
    hops = xp.where(eye, zero, xp.where(dead, inf, xp.asarray(1.0, dtype=dist.dtype)))
    pos = nxt
    for _ in range(_doubling_steps(n) + 1):
        length = length + take_along(xp, length, pos, axis=-2)
        hops = hops + take_along(xp, hops, pos, axis=-2)
        pos = take_along(xp, pos, pos, axis=-2)
    arrived = pos == cols
    return xp.where(arrived, length, inf), xp.where(arrived, hops, inf)


def reachability(w):
    """Boolean (..., N, N): j can be reached from i (i reaches itself);
    log-depth repeated squaring of (A + I)."""
    xp = namespace(w)
    w = as_float(xp, w)
    n = w.shape[-1]
    m = xp.astype((w != 0) | _eye_bool(xp, n, w), w.dtype)
    for _ in range(_doubling_steps(n)):
        m = xp.astype((m @ m) > 0, w.dtype)
    return m > 0


def mean_first_passage_time(w):
    """Mean first-passage times of the random walk T = D^-1 W.

    Parameters
    ----------
    w : (..., N, N) array
        Symmetric non-negative weights.

    Returns
    -------
    mfpt : (..., N, N) array
        Expected steps from i to first reach j (0 on the diagonal; inf
        between disconnected components).

    Notes
    -----
    Fundamental matrix Z = (I - T + 1 pi^T)^-1 and mfpt_ij = (Z_jj - Z_ij) / pi_j
    (Goni et al. 2013), applied per connected component with that
    component's stationary distribution pi_j = s_j / sum of its strengths;
    an isolated node forms its own component.
    """
    xp = namespace(w)
    w = as_float(xp, w)
    n = w.shape[-1]
    s = xp.sum(w, axis=-1)
    trans = w / xp.where(s > 0, s, 1.0)[..., :, None]
    reach = reachability(w)
    rf = xp.astype(reach, w.dtype)
    mass = rf * s[..., None, :]
    total = xp.sum(mass, axis=-1, keepdims=True)
    pi = xp.where(total > 0, mass / xp.where(total > 0, total, 1.0), rf)
    eye = xp.eye(n, dtype=w.dtype)
    z = xp.linalg.inv(eye - trans + pi)
    zdiag = xp.linalg.diagonal(z)[..., None, :]
    safe_pi = xp.where(reach, pi, 1.0)
    mfpt = (zdiag - z) / safe_pi
    mfpt = xp.where(reach, mfpt, xp.asarray(float("inf"), dtype=w.dtype))
    return xp.where(_eye_bool(xp, n, w), xp.asarray(0.0, dtype=w.dtype), mfpt)


def diffusion_efficiency(w):
    """Pairwise diffusion efficiency 1 / mfpt (..., N, N); 0 on the diagonal
    and between disconnected components. Not symmetric."""
    xp = namespace(w)
    mfpt = mean_first_passage_time(w)
    n = mfpt.shape[-1]
    ok = xp.isfinite(mfpt) & (mfpt > 0)
    eff = xp.where(ok, 1.0 / xp.where(ok, mfpt, 1.0), 0.0)
    return xp.where(_eye_bool(xp, n, mfpt), xp.asarray(0.0, dtype=mfpt.dtype), eff)
