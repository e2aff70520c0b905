"""Communication predictors of structural connectivity: public API.

Every function takes one matrix ``(N, N)`` or a stack ``(..., N, N)`` (one
per subject), validates it on the host, runs the batched kernels of
:mod:`recouple.kernels.graph` on the chosen backend in batches along the
subject axis, and returns host NumPy arrays of the input's shape.

Conventions: ``w`` is a symmetric, non-negative weight matrix, 0 = no edge,
the diagonal is ignored. Unreachable pairs have infinite path length and
search information, and zero efficiency.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .engine.backend import get_backend
from .engine.dispatch import call_batched, call_kernel, host_map, kernel_loop
from .exceptions import InputError, ShapeError, describe
from .host.graph import floyd_warshall_pivots
from .kernels import graph as _k
from .validation import as_array, check_choice, check_finite, weight_stack

__all__ = [
    "ShortestPaths",
    "euclidean_distance",
    "shortest_paths",
    "path_length",
    "communicability",
    "search_information",
    "navigation",
    "navigation_efficiency",
    "mean_first_passage_time",
    "diffusion_efficiency",
    "prepare_weights",
    "prepare_coords",
    "kernel_routes",
]


def kernel_routes(backend=None) -> dict:
    """Keyword arguments that route the loops of the graph kernels
    (:mod:`recouple.kernels.graph`, and the communication predictors of
    :mod:`recouple.kernels.coupling`) for ``backend``: ``loop`` (JAX's
    ``fori_loop`` on JAX) and ``pivots`` (the compiled Floyd-Warshall of
    :mod:`recouple.host.graph` on NumPy). The routes change speed, not results.

    Examples
    --------
    >>> import recouple as rc
    >>> sorted(rc.graph.kernel_routes("numpy"))
    ['loop', 'pivots']
    """
    be = get_backend(backend)
    return {"loop": kernel_loop(be), "pivots": floyd_warshall_pivots if be.name == "numpy" else None}


def prepare_weights(w, *, name: str = "w", symmetrize: bool = False) -> np.ndarray:
    """Validated float64 host copy of a weight stack ``(..., N, N)``.

    Raises a clear error for non-square matrices, NaN/inf, asymmetric weights
    (unless ``symmetrize``) and negative weights.
    """
    return weight_stack(name, w, symmetrize=symmetrize, mapper=host_map)


def prepare_coords(coords, n: int, lead: tuple = (), *, name: str = "coords") -> np.ndarray:
    """Validated float64 centroids ``(N, 3)`` or ``(..., N, 3)`` for ``n`` regions."""
    c = as_array(name, coords, ndim_min=2)
    check_finite(name, c)
    if c.shape[-2] != n or c.shape[-1] not in (2, 3):
        raise ShapeError(
            f"{name} must be region centroids of shape (N, 3) with N = {n} regions; got {describe(c)}. "
            "Pass one (x, y, z) row per region, in the order of the connectivity matrix."
        )
    if c.ndim > 2:
        try:
            np.broadcast_shapes(c.shape[:-2], lead)
        except ValueError:
            raise ShapeError(
                f"{name} must be (N, 3) or one (N, 3) block per matrix {lead}; got {describe(c)}. "
                "Pass a single set of centroids or stack them like the matrices."
            ) from None
    return c


def _flatten(a, n):
    return a.reshape((-1,) + a.shape[-2:]) if a.ndim > 2 else a[None]


def _run(kernel, w, *, lead, backend, batch_size, memory_limit, static=None, bytes_factor=12, shared=None, **kw):
    n = w.shape[-1]
    w2 = _flatten(w, n)
    out = call_batched(
        kernel,
        w2,
        backend=backend,
        static=static or {},
        batch_size=batch_size,
        bytes_per_item=bytes_factor * 8 * n * n,
        memory_limit=memory_limit,
        shared=shared,
        host_batch_bytes=32e6,
        **kw,
    )
    if isinstance(out, tuple):
        return tuple(np.asarray(o).reshape(lead + o.shape[1:]) for o in out)
    return np.asarray(out).reshape(lead + out.shape[1:])


def euclidean_distance(coords, *, backend=None) -> np.ndarray:
    """Euclidean distance between region centroids.

    Parameters
    ----------
    coords : (N, 3) or (..., N, 3) array_like

    Returns
    -------
    dist : (N, N) or (..., N, N) ndarray

    Examples
    --------
    >>> import recouple as rc
    >>> rc.graph.euclidean_distance([[0, 0, 0], [3, 4, 0]])[0, 1]
    5.0
    """
    c = as_array("coords", coords, ndim_min=2)
    check_finite("coords", c)
    if c.shape[-1] not in (2, 3):
        raise ShapeError(f"coords must have shape (N, 3); got {describe(c)}. Pass one (x, y, z) row per region.")
    return np.asarray(call_kernel(_k.euclidean_distance, c, backend=backend))


@dataclass(frozen=True)
class ShortestPaths:
    """Result of :func:`shortest_paths`.

    Attributes
    ----------
    length : (..., N, N) ndarray
        Shortest path length (inf where unreachable, 0 on the diagonal).
    hops : (..., N, N) ndarray
        Number of edges on the chosen shortest path (inf where unreachable).
    predecessor : (..., N, N) int ndarray
        Node before j on the chosen path from i to j (-1: none), as
        ``scipy.sparse.csgraph.shortest_path(..., return_predecessors=True)``
        with -1 instead of -9999.
    params : dict
    """

    length: np.ndarray
    hops: np.ndarray
    predecessor: np.ndarray
    params: dict = field(default_factory=dict)


def _prepare_paths_input(w, transform, symmetrize):
    check_choice("transform", transform, _k.TRANSFORMS)
    a = prepare_weights(w, symmetrize=symmetrize)
    if transform == "neglog_raw" and (a > 1).any():
        raise InputError(
            f"w must be <= 1 for transform='neglog_raw' (-log W); got maximum {a.max():.4g}. "
            "Use transform='neglog' (-log(W / (max W + 1))) or scale the weights."
        )
    return a


def shortest_paths(w, *, transform="neglog", symmetrize=False, backend=None, batch_size=None, memory_limit=None):
    """All-pairs shortest paths, batched Floyd-Warshall.

    JAX and CuPy run N min-plus pivot steps over the whole batch; NumPy runs
    the same pivot steps in compiled loops (:mod:`recouple.host.graph`; the
    same sums and comparisons, so identical lengths and predecessors).

    Parameters
    ----------
    w : (N, N) or (..., N, N) array_like
        Symmetric non-negative weights; 0 = no edge.
    transform : {"neglog", "neglog_raw", "inv", "length", "hops"}
        Weight-to-length map: ``"neglog"`` -log(W / (max W + 1)) (max per
        matrix; METHODS 1.3), ``"neglog_raw"`` -log(W) (BCT
        ``transform='log'``; W <= 1), ``"inv"`` 1/W, ``"length"`` W already
        holds lengths, ``"hops"`` binary hop count (BCT ``distance_bin``).
    symmetrize : bool
        Average ``w`` with its transpose instead of rejecting asymmetry.
    backend, batch_size, memory_limit
        Where to run and how many matrices per batch.

    Returns
    -------
    ShortestPaths
    """
    a = _prepare_paths_input(w, transform, symmetrize)
    lead = a.shape[:-2]
    dist, hops, pred = _run(
        _k.shortest_paths, a, lead=lead, backend=backend, batch_size=batch_size,
        memory_limit=memory_limit, static={"transform": transform, **kernel_routes(backend)},
    )
    return ShortestPaths(dist, hops, pred.astype(np.int64), {"transform": transform})


def path_length(w, *, transform="neglog", symmetrize=False, backend=None, batch_size=None, memory_limit=None):
    """Shortest-path length matrices ``(..., N, N)`` (inf where unreachable).

    Shortcut for ``shortest_paths(...).length``; parameters as there.

    Examples
    --------
    >>> import numpy as np, recouple as rc
    >>> a = np.array([[0, 1, 0], [1, 0, 1], [0, 1, 0]])
    >>> rc.graph.path_length(a, transform="hops")[0, 2]
    2.0
    """
    a = _prepare_paths_input(w, transform, symmetrize)
    return _run(_k.path_lengths, a, lead=a.shape[:-2], backend=backend, batch_size=batch_size,
                memory_limit=memory_limit, static={"transform": transform, **kernel_routes(backend)}, bytes_factor=4)


def _si_kernel(w, *, transform, loop=None, pivots=None):
    _, _, pred = _k.shortest_paths(w, transform=transform, track="predecessor", loop=loop, pivots=pivots)
    return _k.search_information(w, pred)


def _si_from_predecessors(w, predecessor):
    return _k.search_information(w, predecessor)


def search_information(w, *, transform=None, paths=None, symmetrize=False, backend=None, batch_size=None,
                       memory_limit=None):
    """Search information along weighted shortest paths (Goni et al. 2014).

    Parameters
    ----------
    w : (N, N) or (..., N, N) array_like
        Symmetric non-negative weights; the random walk is T = D^-1 W.
    transform : str, optional
        Weight-to-length map for the shortest paths (see
        :func:`shortest_paths`); ``"neglog"`` when neither it nor ``paths``
        is given.
    paths : ShortestPaths, optional
        Result of :func:`shortest_paths` on the same ``w`` (same symmetrize
        choice), reused instead of running Floyd-Warshall again.

    Returns
    -------
    si : (..., N, N) ndarray
        -log2 of the probability that a memoryless walker from i follows the
        shortest path to j (for i > j: the path from j, walked backwards,
        the convention of netneurotools/BCT for symmetric graphs). NaN on the
        diagonal, inf where unreachable. Not symmetric.
    """
    a = prepare_weights(w, symmetrize=symmetrize)
    lead = a.shape[:-2]
    if paths is None:
        transform = "neglog" if transform is None else transform
        check_choice("transform", transform, _k.TRANSFORMS)
        return _run(_si_kernel, a, lead=lead, backend=backend, batch_size=batch_size,
                    memory_limit=memory_limit, static={"transform": transform, **kernel_routes(backend)},
                    bytes_factor=16)
    if not isinstance(paths, ShortestPaths):
        raise InputError(
            f"paths must be a ShortestPaths result; got {type(paths).__name__}. "
            "Pass rc.graph.shortest_paths(w, ...) or leave paths=None."
        )
    used = paths.params.get("transform")
    if transform is not None and used is not None and transform != used:
        raise InputError(
            f"transform must match the one paths were computed with ({used!r}); got {transform!r}. "
            "Leave transform=None when passing paths, or recompute the paths."
        )
    pred = np.asarray(paths.predecessor)
    if pred.shape != a.shape:
        raise ShapeError(
            f"paths.predecessor must have the shape of w {a.shape}; got {describe(pred)}. "
            "Pass the shortest paths of this same w."
        )
    n = a.shape[-1]
    return _run(_si_from_predecessors, a, lead=lead, backend=backend, batch_size=batch_size,
                memory_limit=memory_limit, bytes_factor=16, predecessor=pred.reshape((-1, n, n)))


def communicability(w, *, weighted=True, normalize=False, symmetrize=False, backend=None, batch_size=None,
                    memory_limit=None):
    """Communicability (matrix exponential) of each graph.

    Parameters
    ----------
    w : (N, N) or (..., N, N) array_like
        Symmetric non-negative weights.
    weighted : bool
        ``True``: expm(D^-1/2 W D^-1/2) with a zero diagonal (Crofts & Higham
        2009; netneurotools ``communicability_wei``); rows of unconnected
        nodes are 0. ``False``: expm(A) of the binary adjacency A = (w != 0)
        (Estrada & Hatano 2008; ``communicability_bin``).
    normalize : bool
        Binary only: divide A by its largest eigenvalue first.

    Returns
    -------
    cmc : (..., N, N) ndarray
    """
    a = prepare_weights(w, symmetrize=symmetrize)
    if normalize and weighted:
        raise InputError(
            "normalize must be False when weighted=True (the weighted form is already normalised by "
            "strength); got normalize=True. Pass weighted=False for expm(A / lambda_max)."
        )
    return _run(_k.communicability, a, lead=a.shape[:-2], backend=backend, batch_size=batch_size,
                memory_limit=memory_limit, static={"weighted": bool(weighted), "normalize": bool(normalize)})


def _nav_kernel(w, coords, *, loop=None):
    return _k.navigation(w, _k.euclidean_distance(coords), loop=loop)


def navigation(w, coords, *, symmetrize=False, backend=None, batch_size=None, memory_limit=None):
    """Greedy navigation paths (Seguin et al. 2018) guided by centroid distance.

    Parameters
    ----------
    w : (N, N) or (..., N, N) array_like
        Symmetric non-negative weights (only the edges matter).
    coords : (N, 3) or (..., N, 3) array_like
        Region centroids.

    Returns
    -------
    length : (..., N, N) ndarray
        Euclidean length of the navigated path (inf where navigation fails).
    hops : (..., N, N) ndarray
        Edges on the navigated path (inf where it fails).
    """
    a = prepare_weights(w, symmetrize=symmetrize)
    lead = a.shape[:-2]
    c = prepare_coords(coords, a.shape[-1], lead)
    n = a.shape[-1]
    w2 = _flatten(a, n)
    if c.ndim > 2:
        c2 = np.broadcast_to(c, lead + c.shape[-2:]).reshape((-1,) + c.shape[-2:])
        kw, shared = {"coords": c2}, None
    else:
        kw, shared = {}, {"coords": c}
    length, hops = call_batched(
        _nav_kernel, w2, backend=backend, batch_size=batch_size, bytes_per_item=14 * 8 * n * n,
        memory_limit=memory_limit, shared=shared, static={"loop": kernel_loop(backend)}, **kw,
    )
    return length.reshape(lead + (n, n)), hops.reshape(lead + (n, n))


def navigation_efficiency(w, coords, *, symmetric=True, symmetrize=False, backend=None, batch_size=None,
                          memory_limit=None):
    """Navigation efficiency 1 / navigation path length (0 where it fails).

    Parameters
    ----------
    w : (N, N) or (..., N, N) array_like
    coords : (N, 3) or (..., N, 3) array_like
    symmetric : bool
        Return (E + E^T) / 2 (METHODS 1.3, the default) instead of E.

    Returns
    -------
    efficiency : (..., N, N) ndarray, 0 on the diagonal
    """
    length, _ = navigation(w, coords, symmetrize=symmetrize, backend=backend, batch_size=batch_size,
                           memory_limit=memory_limit)
    ok = np.isfinite(length) & (length > 0)
    eff = np.where(ok, 1.0 / np.where(ok, length, 1.0), 0.0)
    return (eff + np.swapaxes(eff, -1, -2)) / 2 if symmetric else eff


def mean_first_passage_time(w, *, symmetrize=False, backend=None, batch_size=None, memory_limit=None):
    """Mean first-passage times of the random walk D^-1 W (..., N, N).

    inf between disconnected components; an isolated node is its own
    component. Equals netneurotools ``mean_first_passage_time`` on connected
    graphs (which it requires).
    """
    a = prepare_weights(w, symmetrize=symmetrize)
    return _run(_k.mean_first_passage_time, a, lead=a.shape[:-2], backend=backend, batch_size=batch_size,
                memory_limit=memory_limit)


def diffusion_efficiency(w, *, symmetric=False, symmetrize=False, backend=None, batch_size=None,
                         memory_limit=None):
    """Pairwise diffusion efficiency 1 / mean first-passage time (Goni et al. 2013).

    Parameters
    ----------
    w : (N, N) or (..., N, N) array_like
    symmetric : bool
        Return (E + E^T) / 2 (the predictor of METHODS 1.3) instead of E,
        which is not symmetric (netneurotools ``diffusion_efficiency``).

    Returns
    -------
    efficiency : (..., N, N) ndarray
        0 on the diagonal and between disconnected components.
    """
    a = prepare_weights(w, symmetrize=symmetrize)
    eff = _run(_k.diffusion_efficiency, a, lead=a.shape[:-2], backend=backend, batch_size=batch_size,
               memory_limit=memory_limit)
    return (eff + np.swapaxes(eff, -1, -2)) / 2 if symmetric else eff
