"""Subject-level permutation inference: one-sample / paired sign-flip tests,
two-sample tests, the GLM with nuisance covariates (Freedman-Lane), clinical
correlations, TFCE, cluster extent/mass and NBS, with max-statistic FWER and
BH-FDR (METHODS 3.1-3.11).

All resamples of a block are evaluated as matrix products
(:mod:`recouple.kernels.glm`); blocks are streamed from the memory budget
(:mod:`recouple.engine.streaming`) and only per-resample maxima and
per-element exceedance counts are kept unless ``keep_null=True``. Resamples
are drawn on the host, one random stream per resample
(:mod:`recouple.engine.random`), so results do not depend on the batch size,
the backend or the number of workers; every test also takes precomputed
``permutations=`` or ``signs=`` (in :class:`Resampling`).

How the null is drawn and run is one :class:`Resampling` object; which
spatial statistics are computed is one :class:`Spatial` object. Both are
shared by every test.

Conventions
-----------
- Data are ``(n_scans, n_elements)``; resample matrices are ``(n_perm, n_scans)``.
- ``permutations[k, i] = j`` means that in permutation ``k`` row ``i`` of the
  (reduced-model residual) data is taken from row ``j``.
- p-values use the +1 convention ``(1 + #{null >= observed}) / (n_perm + 1)``
  (floor ``1 / (n_perm + 1)``; :mod:`recouple.kernels.pvalues`). When every
  distinct resample is enumerated the identity is left out of the null and the
  same formula is the exact p-value.

Modules: :mod:`.options` (``Resampling``, ``Spatial``, shared docs),
:mod:`.resamples` (drawing and enumerating resamples), :mod:`.design` (design
algebra, checks, ``pair_sessions``), :mod:`.glm` (the tests), :mod:`.spatial`
(TFCE, clusters, NBS), :mod:`.tail` (``gpd_pvalue``).
"""

from .design import pair_sessions
from .glm import PermutationResult, correlation, glm, glm_resamples, one_sample, paired, two_sample
from .options import Resampling, Spatial
from .resamples import Resamples, draw_resamples, permutation_matrix, sign_flip_matrix
from .spatial import ClusterResult, NBSResult, SpatialResult, nbs
from .tail import gpd_pvalue

__all__ = [
    "Resampling",
    "Spatial",
    "Resamples",
    "PermutationResult",
    "SpatialResult",
    "ClusterResult",
    "NBSResult",
    "one_sample",
    "paired",
    "two_sample",
    "glm",
    "glm_resamples",
    "correlation",
    "nbs",
    "draw_resamples",
    "sign_flip_matrix",
    "permutation_matrix",
    "pair_sessions",
    "gpd_pvalue",
]
