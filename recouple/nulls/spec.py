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
* a path to a ``.npy`` file holding one of those arrays, with the region
  labels of its columns, when known, in ``<file>.labels.txt`` beside it (one
  label per line; :func:`save_nulls`, :func:`load_nulls`, as ``recouple nulls``
  writes them), or an ``.npz`` with arrays ``nulls`` and ``labels``;
* :class:`LabelledNulls`: an array with the region label of each column.
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

Labelled nulls are aligned to the maps **by label** (``labels=`` of
:func:`resolve`, :func:`recouple.nulls.compare_maps`,
:func:`recouple.genes.associate`): columns are reordered to the maps' region
order, index values renumbered, null regions the maps lack are dropped (an
index pointing at one becomes -1, NaN), and a map region the nulls lack is an
error naming it. Labels match up to hemisphere spelling (``L_x``, ``lh_x``,
``ctx-lh-x``; :func:`recouple.io.surfaces.region_key`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..engine.random import permutation_indices
from ..exceptions import InputError, ShapeError
from ..io.surfaces import region_key
from ..validation import as_array, check_finite, check_positive_int, check_real
from .spins import SPIN_METHODS, spin_permutations
from .surrogates import burt2018_surrogates, moran, moran_weights, variogram_surrogates

__all__ = ["SPIN_METHODS", "ALIASES", "METHODS", "resolve", "resolve_nulls", "null_maps", "as_null_maps",
           "LabelledNulls", "save_nulls", "load_nulls", "labels_path", "align_nulls", "LABELS_SUFFIX"]

LABELS_SUFFIX = ".labels.txt"
"""Suffix of the region-label file written beside a nulls ``.npy`` (``nulls.npy`` -> ``nulls.npy.labels.txt``)."""

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


@dataclass(frozen=True)
class LabelledNulls:
    """Nulls with the region label of each column.

    Attributes
    ----------
    nulls : (K, N) int array (resampling indices), (K, N) or (M, K, N) float array (surrogate maps)
    labels : (N,) str array or None
        Region label of each column; ``None`` when not known (then nulls are
        matched to maps by position).
    """

    nulls: np.ndarray
    labels: np.ndarray | None = None

    def __post_init__(self):
        arr = np.asarray(self.nulls)
        object.__setattr__(self, "nulls", arr)
        if self.labels is not None:
            lab = np.asarray([str(v).strip() for v in np.atleast_1d(self.labels)], dtype=str)
            if arr.ndim < 1 or lab.size != arr.shape[-1]:
                raise ShapeError(f"labels must name each null column ({arr.shape[-1] if arr.ndim else 0}); got "
                                 f"{lab.size}. Pass one region label per column, in column order.")
            object.__setattr__(self, "labels", lab)


def labels_path(path) -> Path:
    """The region-label file of a nulls file: ``<file>`` + :data:`LABELS_SUFFIX`."""
    p = Path(path)
    return p.with_name(p.name + LABELS_SUFFIX)


def save_nulls(path, nulls, labels=None) -> Path:
    """Write nulls to ``path`` (``.npy``) and their region labels beside it.

    The array goes to ``path`` unchanged (readable by ``numpy.load`` and any
    tool that takes ``(n_perm, N)`` nulls); with ``labels``, one label per
    line goes to ``<path>.labels.txt`` (:func:`labels_path`), which
    :func:`load_nulls` and every ``nulls=`` argument read back. A stale label
    file of an earlier run is removed when ``labels`` is None.
    """
    p = Path(path)
    if p.suffix != ".npy":
        raise InputError(f"nulls path must end in .npy; got {str(p)!r}. Pass e.g. nulls.npy.")
    ln = LabelledNulls(nulls, labels)
    if ln.labels is not None and any("\n" in v or v == "" for v in ln.labels.tolist()):
        raise InputError("labels must be non-empty names without line breaks; got an empty or multi-line label.")
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(p.name + ".part.npy")
    np.save(tmp, ln.nulls)
    tmp.replace(p)
    side = labels_path(p)
    if ln.labels is None:
        side.unlink(missing_ok=True)
    else:
        side.write_text("\n".join(ln.labels.tolist()) + "\n")
    return p


def load_nulls(path) -> LabelledNulls:
    """Read nulls from a ``.npy`` (labels from ``<file>.labels.txt`` when present)
    or an ``.npz`` (arrays ``nulls`` and, optionally, ``labels``)."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"nulls file must exist; got {str(p)!r}. Check the path, or make one with `recouple nulls`.")
    if p.suffix == ".npz":
        with np.load(p, allow_pickle=False) as z:
            if "nulls" not in z:
                raise InputError(f"nulls .npz file {str(p)!r} must hold an array 'nulls' (and 'labels'); got "
                                 f"{sorted(z.files)}. Save it with numpy.savez(path, nulls=..., labels=...).")
            return LabelledNulls(z["nulls"], z["labels"] if "labels" in z else None)
    arr = np.load(p, allow_pickle=False)
    side = labels_path(p)
    if not side.is_file():
        return LabelledNulls(arr, None)
    lab = [ln.strip() for ln in side.read_text().splitlines() if ln.strip()]
    arr_n = arr.shape[-1] if arr.ndim else 0
    if len(lab) != arr_n:
        raise InputError(f"nulls label file {side.name} must hold one label per null column ({arr_n}); it holds "
                         f"{len(lab)}. Remake the nulls, or delete the label file to match by position.")
    return LabelledNulls(arr, lab)


def _is_code(label) -> bool:
    return str(label).lstrip("-").isdigit()


def align_nulls(nulls: LabelledNulls, labels) -> np.ndarray:
    """The array of labelled ``nulls`` in the region order of ``labels``.

    Index nulls are renumbered (entry ``i`` of a row names a region by its
    position in ``labels``); an index naming a null region that ``labels``
    lacks becomes -1 (dropped). Surrogate maps keep the columns of
    ``labels``. A region of ``labels`` missing from the nulls is an error.
    """
    arr = np.asarray(nulls.nulls)
    if nulls.labels is None:
        return arr
    want = np.asarray([str(v) for v in np.atleast_1d(labels)], dtype=str)
    have = nulls.labels
    if want.shape == have.shape and np.array_equal(want, have):
        return arr
    full: dict[str, int] = {}
    bare: dict[str, list[int]] = {}
    for j, lab in enumerate(have.tolist()):
        key = region_key(lab)
        full.setdefault(key, j)
        bare.setdefault(key.split(":", 1)[-1], []).append(j)
    pos, missing = [], []
    for lab in want.tolist():
        key = region_key(lab)
        j = full.get(key)
        if j is None:
            cand = bare.get(key.split(":", 1)[-1], [])
            j = cand[0] if len(cand) == 1 else None
        if j is None:
            missing.append(lab)
        pos.append(j)
    if missing:
        hint = ("the nulls' regions are unnamed parcellation codes; remake them with names (`recouple nulls "
                "--parcellation-names FILE` or `--labels FILE`, or an .annot/.label.gii parcellation)"
                if all(_is_code(v) for v in have.tolist()) and not all(_is_code(v) for v in want.tolist())
                else "make the nulls for the maps' regions (same parcellation and region names)")
        raise InputError(
            f"nulls must cover every region of the maps (matched by label); {len(missing)} of {want.size} map "
            f"region(s) have no null column: {', '.join(missing[:10])}{' ...' if len(missing) > 10 else ''}. "
            f"The nulls hold {have.size} regions, e.g. {', '.join(have[:5].tolist())}. Fix: {hint}."
        )
    pos = np.asarray(pos, dtype=np.int64)
    if len(set(pos.tolist())) != pos.size:
        raise InputError("labels must name distinct regions of the nulls; two map regions match the same null "
                         "column. Use hemisphere-prefixed labels (L_/R_).")
    if np.issubdtype(arr.dtype, np.integer):
        inv = np.full(have.size, -1, dtype=np.int64)
        inv[pos] = np.arange(pos.size)
        sel = arr[..., pos]
        return np.where(sel < 0, -1, inv[np.where(sel < 0, 0, sel)])
    return arr[..., pos]


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
            + _shape_hint(arr, x.shape[-1])
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


def resolve(nulls, maps, *, n_perm=None, seed=None, coords=None, hemi=None, distance=None, labels=None):
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
    labels : (N,) sequence of str, optional
        Region labels of the maps' columns. Labelled nulls (a ``.npy`` with
        its ``.labels.txt``, an ``.npz`` with ``labels``, :class:`LabelledNulls`)
        are aligned to them by label (:func:`align_nulls`); without
        ``labels`` they are used by position and must have N columns.

    Returns
    -------
    ``None`` (no nulls), ``("index", (K, N) int64 array)`` or ``("maps", (M, K, N) float array)``.
    """
    y = np.atleast_2d(as_array("maps", maps))
    m, n = y.shape
    if nulls is None or (isinstance(nulls, str) and nulls.lower() == "none"):
        return None
    if isinstance(nulls, (str, Path)) and str(nulls).lower().endswith((".npy", ".npz")):
        nulls = load_nulls(nulls)
    elif isinstance(nulls, Path):
        raise InputError(f"nulls given as a path must be a .npy or .npz file; got {str(nulls)!r}. "
                         "Save the nulls with recouple.nulls.save_nulls (or numpy.save).")
    if isinstance(nulls, LabelledNulls):
        if nulls.labels is not None and labels is not None:
            nulls = align_nulls(nulls, labels)
        elif nulls.labels is not None and nulls.nulls.shape[-1] != n:
            raise ShapeError(
                f"labelled nulls have {nulls.nulls.shape[-1]} regions and the maps {n}; pass the maps' region "
                f"labels (labels=) to align them by label. The nulls hold e.g. {', '.join(nulls.labels[:4])}."
            )
        else:
            nulls = nulls.nulls
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
                + _shape_hint(arr, n)
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
            f"got shape {arr.shape} for {m} map(s). " + _shape_hint(arr, n, surrogates=True)
        )
    return "maps", arr


def _shape_hint(arr, n, surrogates=False):
    """How to fix a nulls array whose shape does not fit N regions."""
    if arr.ndim == 2 and arr.shape[0] == n and arr.shape[1] != n:
        return "It looks like (N, n_perm), as neuromaps writes it: transpose it (nulls.T)."
    if arr.ndim >= 1 and arr.shape[-1] != n:
        return (f"The nulls were made for {arr.shape[-1]} regions, not the maps' {n} (e.g. medial wall, "
                "'unknown' or 'corpuscallosum' parcels counted as regions, or another parcellation). Make them for "
                "the maps' regions; nulls with region labels (`recouple nulls` writes <file>.labels.txt) are "
                "aligned to labelled maps by label.")
    if surrogates:
        return "Generate surrogates of each map, one null per row, or pass integer indices shared by all maps."
    return "Orient nulls with one null per row."


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


def resolve_nulls(nulls, maps, *, n_perm=1000, seed=0, coords=None, hemi=None, distance=None, labels=None):
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
    labels : (N,) sequence of str, optional
        The maps' region labels: labelled nulls are aligned to them by label.
    """
    source = resolve(nulls, maps, n_perm=n_perm, seed=seed, coords=coords, hemi=hemi, distance=distance,
                     labels=labels)
    return as_null_maps(source, maps)
