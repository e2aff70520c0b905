"""The one null specification, shared by map association
(:func:`recouple.nulls.compare_maps`), imaging transcriptomics
(:mod:`recouple.genes`) and studies.

A null specification is one of

* ``None`` or ``"none"``: no nulls;
* a ``(K, N)`` integer array of resampling indices (spins, permutations):
  entry ``i`` of row ``k`` names the original region placed at ``i``, ``-1``
  drops it (NaN); applied to every map;
* a ``(K, N)`` float array of surrogate maps (one map) or ``(M, K, N)`` (one
  stack per map);
* a path to a ``.npy`` file holding one of those arrays;
* a method name (``"vasa"``, ``"spin"``, ``"permutation"``, ``"variogram"``,
  ...) or a dict ``{"method": ..., "n_perm": ..., "seed": ..., "coords": ...,
  "hemi": ..., "distance": ..., ...}`` that draws the nulls of the maps.

Methods (:data:`METHODS`): the spin methods of
:func:`recouple.nulls.spin_permutations` (:data:`SPIN_METHODS`; ``"spin"`` is
an alias of ``"vasa"``, ``"vazquez_rodriguez"`` of ``"alexander_bloch"``) need
``coords`` (and ``hemi``); ``"permutation"`` (alias ``"naive"``) draws
spatially naive label permutations; ``"variogram"`` (alias ``"burt2020"``),
``"burt2018"`` and ``"moran"`` need ``distance`` (``"moran"`` also takes
``weights``). ``n_perm`` defaults to 1000 and ``seed`` to 0: the same seed
gives identical nulls.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..engine.random import permutation_indices
from ..exceptions import InputError, ShapeError
from ..validation import as_array, check_finite, check_positive_int, check_real
from .spins import SPIN_METHODS, spin_permutations
from .surrogates import burt2018_surrogates, moran, moran_weights, variogram_surrogates

__all__ = ["SPIN_METHODS", "ALIASES", "METHODS", "resolve", "resolve_nulls", "null_maps", "as_null_maps"]

ALIASES = {"spin": "vasa", "naive": "permutation", "burt2020": "variogram"}
"""Alternative method names and the method each one names."""

METHODS = SPIN_METHODS + ("permutation", "variogram", "burt2018", "moran") + tuple(ALIASES)
"""Every method name a null specification accepts."""

_SPIN_KEYS = ("n_perm", "seed", "coords", "hemi", "rotations", "parcellation", "backend", "batch_size")
_KEYS = {
    "spin": _SPIN_KEYS,
    "permutation": ("n_perm", "seed"),
    "variogram": ("n_perm", "seed", "distance", "deltas", "kernel", "pv", "nh", "resample", "b", "mode", "index",
                  "ns", "knn", "permutations", "normals", "batch_size", "backend"),
    "burt2018": ("n_perm", "seed", "distance", "rho", "d0", "normalize", "normals", "backend"),
    "moran": ("n_perm", "seed", "distance", "weights", "procedure", "tol", "joint", "backend"),
}


def _family(method):
    return "spin" if method in SPIN_METHODS else method


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
    x = as_array("x", x)
    arr = np.asarray(nulls)
    check_real("nulls", arr)
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


def resolve(nulls, maps, *, n_perm=None, seed=None, coords=None, hemi=None, distance=None):
    """Resolve a null specification for ``maps``.

    Parameters
    ----------
    nulls : None, str, dict, path or array
        See the module docstring.
    maps : (N,) or (M, N) array
        The maps the nulls belong to, in their own region order (needed to
        draw surrogates, and for the shape checks).
    n_perm, seed, coords, hemi, distance : optional
        Defaults for a spec given by name or dict; a key the dict sets wins,
        and a default the method does not use is ignored.

    Returns
    -------
    ``None`` (no nulls), ``("index", (K, N) int64 array)`` or ``("maps", (M, K, N) float array)``.
    """
    y = np.atleast_2d(as_array("maps", maps))
    m, n = y.shape
    if nulls is None or (isinstance(nulls, str) and nulls.lower() == "none"):
        return None
    if isinstance(nulls, (str, Path)) and str(nulls).lower().endswith(".npy"):
        if not Path(nulls).is_file():
            raise InputError(f"nulls file must exist; got {str(nulls)!r}. Check the path.")
        nulls = np.load(nulls, allow_pickle=False)
    elif isinstance(nulls, Path):
        raise InputError(f"nulls given as a path must be a .npy file; got {str(nulls)!r}. "
                         "Save the nulls with numpy.save.")
    if isinstance(nulls, str):
        nulls = {"method": nulls}
    if isinstance(nulls, dict):
        defaults = {"n_perm": n_perm, "seed": seed, "coords": coords, "hemi": hemi, "distance": distance}
        return _from_spec(nulls, y, defaults)
    arr = np.asarray(getattr(nulls, "indices", nulls))
    check_real("nulls", arr)
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise InputError(
            f"nulls must be an index array (n_perm, N), surrogate maps (n_perm, N), a method name or a spec dict; "
            f"got dtype {arr.dtype}. Pass e.g. nulls={{'method': 'vasa', 'coords': coords, 'n_perm': 1000, 'seed': 0}}."
        )
    if np.issubdtype(arr.dtype, np.integer):
        if arr.ndim != 2 or arr.shape[1] != n:
            raise ShapeError(
                f"nulls index arrays must be (n_perm, N) with N = {n} (the maps' regions); got shape {arr.shape}. "
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
    if arr.ndim == 2 and m == 1:
        arr = arr[None]
    if arr.ndim != 3 or arr.shape[0] != m or arr.shape[2] != n:
        raise ShapeError(
            f"surrogate nulls must be (n_perm, N) for one map or (M, n_perm, N) for M maps, with N = {n}; "
            f"got shape {arr.shape} for {m} map(s). Generate surrogates of each map, one null per row, or pass "
            "integer indices shared by all maps."
        )
    return "maps", arr


def _from_spec(spec, y, defaults):
    spec = dict(spec)
    if "method" not in spec:
        raise InputError(f"a nulls spec dict must name its 'method' (one of {', '.join(METHODS)}); got keys "
                         f"{sorted(map(str, spec))}. Add e.g. 'method': 'vasa'.")
    name = spec.pop("method")
    method = ALIASES.get(str(name).lower(), str(name).lower()) if isinstance(name, str) else name
    if method not in SPIN_METHODS + ("permutation", "variogram", "burt2018", "moran"):
        raise InputError(f"nulls spec 'method' must be one of {', '.join(METHODS)}; got {name!r}. Pick one of those "
                         "(\"spin\" = \"vasa\").")
    accepted = _KEYS[_family(method)]
    unknown = [k for k in spec if k not in accepted]
    if unknown:
        raise InputError(f"nulls spec key {unknown[0]!r} is not accepted for method {name!r}; accepted keys are "
                         f"'method', {', '.join(repr(k) for k in accepted)}. Remove or rename it.")
    for key, value in defaults.items():
        if key in accepted and key not in spec and value is not None:
            spec[key] = value
    if "seed" in accepted:
        spec.setdefault("seed", 0)
    if method in SPIN_METHODS and "rotations" not in spec:
        spec.setdefault("n_perm", 1000)
    m, n = y.shape

    def need(key, what):
        if spec.get(key) is None:
            raise InputError(f"nulls method {name!r} needs {key!r} ({what}); got none. Pass {key}= (or add "
                             f"{key!r} to the spec dict), or pass precomputed nulls as an array.")
        return spec.pop(key)

    if method in SPIN_METHODS:
        coords = need("coords", "the regions' (N, 3) sphere coordinates, with 'hemi'")
        if method == "cornblath":
            return "maps", np.stack([spin_permutations(coords, method=method, data=row, **spec) for row in y])
        return "index", np.asarray(spin_permutations(coords, method=method, **spec))
    if method == "permutation":
        n_perm = check_positive_int("n_perm", spec.pop("n_perm", 1000))
        return "index", permutation_indices(spec.pop("seed"), n_perm, n)
    if method == "variogram":
        dist = need("distance", "the (N, N) distance matrix of the regions")
        return "maps", np.stack([np.asarray(variogram_surrogates(row, dist, **spec)) for row in y])
    if method == "burt2018":
        dist = need("distance", "the (N, N) distance matrix of the regions")
        return "maps", np.stack([burt2018_surrogates(row, dist, **spec) for row in y])
    w = spec.pop("weights", None)
    if w is None:
        w = moran_weights(need("distance", "the (N, N) distance matrix of the regions, or 'weights'"))
    else:
        spec.pop("distance", None)
    return "maps", np.stack([moran(row, w, **spec) for row in y])


def as_null_maps(source, maps) -> np.ndarray | None:
    """``(M, K, N)`` null maps of ``maps`` from a :func:`resolve` result (``None`` stays ``None``)."""
    if source is None:
        return None
    kind, arr = source
    if kind == "index":
        y = np.atleast_2d(np.asarray(maps, dtype=np.float64))
        return np.stack([null_maps(y[i], arr) for i in range(y.shape[0])])
    return arr


def resolve_nulls(nulls, maps, *, n_perm=1000, seed=0, coords=None, hemi=None, distance=None):
    """Null maps for each map: ``(M, K, N)`` float array, or ``None``.

    Parameters
    ----------
    nulls : None, "none", method name, spec dict, ``.npy`` path or array
        See :mod:`recouple.nulls.spec`. Index arrays are applied to every map
        (-1 drops an entry, giving NaN).
    maps : (M, N) array
        The maps the nulls belong to, in the maps' own region order.
    n_perm, seed, coords, hemi, distance
        For nulls drawn by name (``seed`` default 0: same seed, identical nulls).
    """
    source = resolve(nulls, maps, n_perm=n_perm, seed=seed, coords=coords, hemi=hemi, distance=distance)
    return as_null_maps(source, maps)
