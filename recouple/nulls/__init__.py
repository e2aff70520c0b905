"""Spatial null models and map-versus-maps association.

Null arrays are always oriented ``(n_perm, N)``: one null per row. Index
nulls follow neuromaps and the original spin test: entry ``i`` of row ``k``
names the original region whose value lands at ``i`` (``-1``: dropped).

* :mod:`~recouple.nulls.spec`: the one null specification (arrays, ``.npy``
  paths, method names, spec dicts) used by association, genes and studies;
* :mod:`~recouple.nulls.spins`: rotations and spin resampling arrays;
* :mod:`~recouple.nulls.surrogates`: distances, variogram, Moran and SAR
  surrogate maps;
* :mod:`~recouple.nulls.association`: :func:`compare_maps`, one map (or M
  maps) against many maps under nulls, streamed.

Random draws default to ``seed=0``: the same seed gives identical nulls.
"""

from __future__ import annotations

from ..host.spheres import INDEX_CACHE as _INDEX_CACHE
from ..host.spheres import SphereIndex as _SphereIndex
from ..kernels.pvalues import ALTERNATIVES
from . import association, spec, spins, surrogates
from .association import Association, associate, compare_maps, resolution_note
from .spec import ALIASES, METHODS, SPIN_METHODS, LabelledNulls, load_nulls, null_maps, resolve_nulls, save_nulls
from .spins import describe_hemi, rotations, rotations_from_normals, spin_permutations
from .surrogates import VariogramFit, burt2018_surrogates, distance, moran, moran_weights, variogram_surrogates

__all__ = [
    "null_maps", "compare_maps", "associate", "Association", "resolve_nulls", "rotations", "rotations_from_normals",
    "spin_permutations", "distance", "variogram_surrogates", "VariogramFit", "moran", "moran_weights",
    "burt2018_surrogates", "SPIN_METHODS", "METHODS", "ALIASES", "ALTERNATIVES", "describe_hemi", "LabelledNulls",
    "load_nulls", "save_nulls", "resolution_note",
]
