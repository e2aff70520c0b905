"""Options of permutation inference as two objects, and their shared docs.

:class:`Resampling` says *how the null is drawn and run* (how many resamples,
the seed or the resamples themselves, exchangeability blocks, batching,
backend, what is kept); :class:`Spatial` says *which spatial statistics are
computed on it* (TFCE, cluster extent/mass) and in which neighbourhood. Every
test (:func:`~recouple.permutation.glm`, ``one_sample``, ``paired``,
``two_sample``, ``correlation``, ``nbs``) takes the same two objects, so an
analysis is reproduced by passing the same ``Resampling`` again.

The keywords these objects replaced (``n_perm=``, ``seed=``, ``mask=``, ...)
are still accepted for one release with a :class:`DeprecationWarning`.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import warnings
from dataclasses import dataclass, field
from typing import Any

from ..exceptions import InputError
from ..kernels.pvalues import PRECISIONS
from ..validation import check_choice

__all__ = ["Resampling", "Spatial", "check_precision", "fill_doc"]

RESAMPLING_KINDS = ("auto", "permute", "signflip")


@dataclass(frozen=True)
class Resampling:
    """How the permutation null is drawn and computed.

    Parameters
    ----------
    n_perm : int
        Number of random resamples (default 10,000). When fewer distinct
        resamples exist, all are enumerated (with a warning) and p is exact.
    seed : int, numpy SeedSequence or Generator
        Seed of the per-resample random streams (default 0).
    kind : {"auto", "permute", "signflip"}
        ``"auto"``: sign flips when the tested effect is a constant column and
        nothing else is tested (one-sample designs), permutations otherwise.
    permutations : (n_perm, n) int array, optional
        Precomputed row permutations, used verbatim (implies ``"permute"``).
    signs : (n_perm, n) array of +-1, optional
        Precomputed sign flips, used verbatim (implies ``"signflip"``).
    exchangeability_blocks : (n,) array, optional
        Block label per scan; permute within blocks, or whole blocks with
        ``whole_blocks=True`` (blocks of equal size; for sign flips every
        member of a block shares one sign).
    whole_blocks : bool
    batch_size : int, optional
        Resamples per block (default: planned from ``memory_limit``).
    memory_limit : str or float, optional
        Memory budget, e.g. ``"4GB"`` (default half of the available memory,
        :func:`recouple.engine.planner.default_memory_limit`). The resample
        matrix (and a kept null) must fit: larger requests are refused at once.
    backend : str, optional
        Array backend (``"numpy"``, ``"jax"``, ``"cupy"``, ``"auto"``).
    progress : bool or None
        Progress bar on stderr (``None``: when stderr is a terminal).
    keep_null : bool
        Keep the full ``(n_perm, V)`` null of the statistic.
    tail_approximation : bool
        Replace small FWER p-values by the generalised-Pareto tail fit
        (:func:`recouple.permutation.gpd_pvalue`), useful with few resamples.
    tail_threshold_p : float
        Only FWER p-values below this use the tail fit (default 0.10).
    precision : {"float64", "float32"}
        Arithmetic of the null's matrix products (default ``"float64"``).
        ``"float32"`` halves their memory and is several times faster on
        GPUs with slow float64; the observed statistic stays float64, and
        null draws within the float32 rounding bound of the observed score
        count as ties (:func:`recouple.kernels.pvalues.tie_rtol`, about
        ``1.2e-5 x max(|g|, 1)`` for 100 scans), so p-values are never
        smaller than float64's and differ only by draws in that band. Not
        with TFCE, clusters or ``fwer_across_contrasts`` (their statistics
        are not covered by that bound): those need ``"float64"``.

    Examples
    --------
    >>> from recouple.permutation import Resampling
    >>> r = Resampling(n_perm=500, seed=1)
    >>> r.replace(batch_size=100).batch_size
    100
    """

    n_perm: int = 10_000
    seed: Any = 0
    kind: str = "auto"
    permutations: Any = None
    signs: Any = None
    exchangeability_blocks: Any = None
    whole_blocks: bool = False
    batch_size: int | None = None
    memory_limit: Any = None
    backend: Any = None
    progress: bool | None = None
    keep_null: bool = False
    tail_approximation: bool = False
    tail_threshold_p: float = 0.10
    precision: str = "float64"

    def __post_init__(self):
        check_choice("kind", self.kind, RESAMPLING_KINDS)
        check_choice("precision", self.precision, PRECISIONS)
        if self.permutations is not None and self.signs is not None:
            raise InputError("pass at most one of permutations= and signs=; got both. Pass only the one you need.")
        if self.batch_size is not None and (isinstance(self.batch_size, bool) or int(self.batch_size) < 1):
            raise InputError(f"batch_size must be a positive integer or None; got {self.batch_size!r}. "
                             "Pass e.g. batch_size=500, or None to plan it from memory_limit.")

    def replace(self, **changes) -> "Resampling":
        """A copy with ``changes`` applied (``dataclasses.replace``)."""
        return dataclasses.replace(self, **changes)

    @property
    def resolved_kind(self) -> str:
        """``kind``, overridden by the precomputed resamples when given."""
        if self.signs is not None:
            return "signflip"
        if self.permutations is not None:
            return "permute"
        return self.kind


@dataclass(frozen=True)
class Spatial:
    """Spatial statistics computed on the permutation null, and their neighbourhood.

    Parameters
    ----------
    tfce : bool
        Threshold-free cluster enhancement with max-TFCE FWER.
    cluster_threshold : float, optional
        Cluster-forming threshold for cluster extent and mass inference. For
        two-sided tests clusters are formed separately on ``t > h`` and
        ``t < -h`` (touching positive and negative elements never merge).
    mask : (X, Y, Z) bool array, optional
        Voxels of the data columns (column order = ``mask`` C order).
    adjacency : (V, V) sparse matrix, optional
        Graph neighbourhood for surface/region TFCE and clusters.
    connectivity : {6, 18, 26}
        Voxel neighbourhood for volumes (default 6, PALM/FSL).
    tfce_params : dict, optional
        ``height`` (2), ``extent`` (0.5), ``n_steps`` (100), ``dh``,
        ``multiply_dh`` (True: PALM; False: fslmaths/nilearn), ``weights``.
    """

    tfce: bool = False
    cluster_threshold: float | None = None
    mask: Any = None
    adjacency: Any = None
    connectivity: int = 6
    tfce_params: dict | None = field(default=None)

    def replace(self, **changes) -> "Spatial":
        """A copy with ``changes`` applied (``dataclasses.replace``)."""
        return dataclasses.replace(self, **changes)

    @property
    def active(self) -> bool:
        return bool(self.tfce) or self.cluster_threshold is not None


_RESAMPLING_FIELDS = {f.name for f in dataclasses.fields(Resampling)} - {"kind", "tail_threshold_p", "precision"}
_SPATIAL_FIELDS = {f.name for f in dataclasses.fields(Spatial)}


def resolve_options(function, resampling, spatial, legacy, *, default_resampling=None, allowed=None,
                    stacklevel=3):
    """``(Resampling, Spatial)`` from the new objects and deprecated keywords.

    ``resampling`` may still be a kind string (``"auto"``/``"permute"``/
    ``"signflip"``, the old ``glm(resampling=...)``) and ``legacy`` holds the
    old keywords (``n_perm=``, ``mask=``, ...); both warn. ``allowed``
    restricts the old keywords to those the function used to take.
    """
    base = default_resampling if default_resampling is not None else Resampling()
    if isinstance(resampling, str):
        warnings.warn(f"{function}(resampling={resampling!r}) is deprecated; pass "
                      f"resampling=Resampling(kind={resampling!r}, ...) instead.", DeprecationWarning,
                      stacklevel=stacklevel)
        base = base.replace(kind=resampling)
        resampling = None
    if resampling is not None and not isinstance(resampling, Resampling):
        raise InputError(f"resampling must be a recouple.permutation.Resampling; got {type(resampling).__name__}. "
                         "Pass e.g. resampling=Resampling(n_perm=5000, seed=0).")
    if spatial is not None and not isinstance(spatial, Spatial):
        raise InputError(f"spatial must be a recouple.permutation.Spatial; got {type(spatial).__name__}. "
                         "Pass e.g. spatial=Spatial(tfce=True, mask=mask).")
    res = resampling if resampling is not None else base
    sp = spatial if spatial is not None else Spatial()
    if not legacy:
        return res, sp
    known = _RESAMPLING_FIELDS | _SPATIAL_FIELDS if allowed is None else set(allowed)
    unknown = sorted(set(legacy) - known)
    if unknown:
        raise TypeError(f"{function}() got unexpected keyword argument(s) {', '.join(map(repr, unknown))}")
    r_keys = {k: v for k, v in legacy.items() if k in _RESAMPLING_FIELDS}
    s_keys = {k: v for k, v in legacy.items() if k in _SPATIAL_FIELDS}
    parts = []
    if r_keys:
        if resampling is not None:
            raise InputError(f"{function}: pass the resampling options either as resampling=Resampling(...) or as "
                             f"the deprecated keywords {sorted(r_keys)}, not both.")
        res = res.replace(**r_keys)
        parts.append(f"resampling=Resampling({', '.join(sorted(r_keys))})")
    if s_keys:
        if spatial is not None:
            raise InputError(f"{function}: pass the spatial options either as spatial=Spatial(...) or as the "
                             f"deprecated keywords {sorted(s_keys)}, not both.")
        sp = sp.replace(**s_keys)
        parts.append(f"spatial=Spatial({', '.join(sorted(s_keys))})")
    warnings.warn(f"{function}({', '.join(f'{k}=' for k in sorted(legacy))}) keywords are deprecated and will be "
                  f"removed in the next release; pass {' and '.join(parts)} instead.", DeprecationWarning,
                  stacklevel=stacklevel)
    return res, sp


def check_precision(function, resampling, spatial, *, fwer_across_contrasts=False):
    """Refuse, before any compute, what ``precision="float32"`` does not cover.

    The float32 tie band (:func:`recouple.kernels.pvalues.tie_rtol`) bounds
    the rounding of the null's ``g``; TFCE, cluster and NBS statistics, and
    maxima compared across contrasts in t units, are further functions of
    it that the band does not bound.
    """
    if resampling.precision == "float64":
        return
    what = []
    if function == "nbs":
        what.append("NBS")
    if spatial.tfce:
        what.append("TFCE (Spatial(tfce=True))")
    if spatial.cluster_threshold is not None:
        what.append("cluster statistics (Spatial(cluster_threshold=...))")
    if fwer_across_contrasts:
        what.append("fwer_across_contrasts=True")
    if what:
        raise InputError(
            f"{function}: Resampling(precision={resampling.precision!r}) covers element-wise and max-statistic "
            f"p-values only; got {' and '.join(what)}. Use precision='float64' (the default) for these.")


def accepts_legacy_options(*, default_resampling=None, allowed=None):
    """Decorator: fold the deprecated keywords of a test into ``resampling=``/``spatial=``.

    The decorated function keeps its real signature (``inspect.signature``
    follows ``__wrapped__``); the old keywords pass through ``**legacy``.
    """

    def wrap(fn):
        params = inspect.signature(fn).parameters
        has_spatial = "spatial" in params

        @functools.wraps(fn)
        def inner(*args, resampling=None, spatial=None, **kwargs):
            own = {k: kwargs.pop(k) for k in list(kwargs) if k in params}
            legacy = kwargs
            res, sp = resolve_options(fn.__name__, resampling, spatial, legacy,
                                      default_resampling=default_resampling, allowed=allowed)
            check_precision(fn.__name__, res, sp, fwer_across_contrasts=bool(own.get("fwer_across_contrasts")))
            if has_spatial:
                return fn(*args, resampling=res, spatial=sp, **own)
            if sp.active or sp != Spatial():
                raise TypeError(f"{fn.__name__}() takes no spatial options; got {sp}.")
            return fn(*args, resampling=res, **own)

        return inner

    return wrap


# --------------------------------------------------------------------------- shared parameter docs
DOCS = {
    "resampling": """resampling : Resampling, optional
        How the null is drawn and run: ``n_perm``, ``seed``, precomputed
        ``permutations``/``signs``, ``exchangeability_blocks``,
        ``whole_blocks``, ``batch_size``, ``memory_limit``, ``backend``,
        ``progress``, ``keep_null``, ``tail_approximation``, ``precision`` (see
        :class:`recouple.permutation.Resampling`; default ``Resampling()``,
        10,000 resamples, seed 0).""",
    "spatial": """spatial : Spatial, optional
        TFCE and/or cluster extent and mass inference and their neighbourhood
        (``mask`` or ``adjacency``, ``connectivity``, ``tfce_params``; see
        :class:`recouple.permutation.Spatial`). Default: none.""",
    "alternative": """alternative : {"two-sided", "greater", "less"}
        Tail of the test; the score is ``|t|``, ``t`` or ``-t``
        (:func:`recouple.kernels.pvalues.tail_score`).""",
    "legacy": """**legacy
        The keywords of earlier releases (``n_perm=``, ``seed=``,
        ``permutations=``, ``signs=``, ``mask=``, ``tfce=``, ...): accepted
        for one release with a ``DeprecationWarning``.""",
}


def fill_doc(fn):
    """Replace ``%(name)s`` lines of ``fn.__doc__`` by the shared entries of :data:`DOCS`."""
    doc = fn.__doc__ or ""
    for key, text in DOCS.items():
        doc = doc.replace(f"    %({key})s\n", "    " + text + "\n")
    fn.__doc__ = doc
    return fn
