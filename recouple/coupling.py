"""Structure-function coupling: public API.

``nodal`` computes, for every node, the correlation between its row of
structural connectivity (SC) and its row of functional connectivity (FC)
over an edge set, batched over any number of subjects or scans.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .engine.dispatch import call_batched
from .kernels import coupling as _k
from .validation import (
    as_array,
    check_choice,
    check_finite,
    check_nonnegative,
    check_positive_int,
    check_same_shape,
    check_square,
    check_symmetric,
)

__all__ = ["NodalCoupling", "nodal", "prepare_connectivity"]


@dataclass(frozen=True)
class NodalCoupling:
    """Result of :func:`nodal`.

    Attributes
    ----------
    coupling : (..., N) float array
        Coupling per node; NaN (or ``fill_undefined``) where fewer than
        ``min_edges`` edges or a constant profile make it undefined.
    n_edges : (..., N) int array
        Number of edges each node's correlation used.
    undefined : (..., N) bool array
        Where the coupling was undefined before filling.
    params : dict
        The parameters used.
    """

    coupling: np.ndarray
    n_edges: np.ndarray
    undefined: np.ndarray
    params: dict = field(default_factory=dict)

    def mean(self) -> float:
        """Mean coupling over defined nodes (and subjects)."""
        return float(np.nanmean(np.where(self.undefined, np.nan, self.coupling)))


def prepare_connectivity(
    sc,
    fc,
    *,
    symmetrize: bool = False,
    allow_negative: bool = False,
    sc_name: str = "sc",
    fc_name: str = "fc",
):
    """Validate a pair of SC/FC stacks and return float64 host copies.

    Raises a clear error for non-square or mismatched matrices, NaN/inf,
    asymmetric SC (unless ``symmetrize``) and negative SC weights (unless
    ``allow_negative``). The caller's arrays are never modified.
    """
    sc_a = as_array(sc_name, sc, ndim_min=2)
    fc_a = as_array(fc_name, fc, ndim_min=2)
    check_square(sc_name, sc_a)
    check_square(fc_name, fc_a)
    check_same_shape(sc_name, sc_a, fc_name, fc_a)
    check_finite(sc_name, sc_a)
    check_finite(fc_name, fc_a)
    if symmetrize:
        sc_a = (sc_a + np.swapaxes(sc_a, -1, -2)) / 2
    else:
        check_symmetric(sc_name, sc_a)
    if not allow_negative:
        check_nonnegative(sc_name, sc_a)
    return sc_a, fc_a


def nodal(
    sc,
    fc,
    *,
    method: str = "spearman",
    edges: str = "sc_nonzero",
    min_edges: int = 3,
    mask=None,
    fill_undefined: float = np.nan,
    symmetrize: bool = False,
    allow_negative: bool = False,
    backend: str | None = None,
    batch_size: int | None = None,
    memory_limit=None,
) -> NodalCoupling:
    """Nodal SC-FC coupling, batched over subjects.

    Parameters
    ----------
    sc, fc : (..., N, N) array_like
        Structural and functional connectivity; leading axes are subjects,
        sessions, ... . SC must be symmetric and non-negative unless
        ``symmetrize`` / ``allow_negative`` say otherwise.
    method : {"spearman", "pearson"}
        Correlation type.
    edges : {"sc_nonzero", "offdiag", "both_nonzero", "mask"}
        Which entries of row i enter node i's correlation (the diagonal never
        does): ``"sc_nonzero"`` SC_ij != 0 (Baum et al. 2020, the default);
        ``"offdiag"`` every j != i (Gu et al. 2021); ``"both_nonzero"``
        SC_ij != 0 and FC_ij != 0 (Fotiadis et al. 2023); ``"mask"`` only
        the entries of ``mask``.
    min_edges : int
        Fewest edges for a defined coupling (default 3).
    mask : (N, N) or (..., N, N) bool array_like, optional
        Extra edge mask (e.g. a group-consistency mask), intersected with the
        edge set; required for ``edges="mask"``.
    fill_undefined : float
        Value for undefined nodes: NaN (default) or 0 to match Baum's and
        Gu's reference code. ``undefined`` in the result says where.
    symmetrize : bool
        Average SC with its transpose instead of rejecting asymmetric SC.
    allow_negative : bool
        Accept negative SC weights (e.g. log-transformed weights).
    backend : {"numpy", "jax", "cupy", "auto"}, optional
    batch_size : int, optional
        Subjects per batch; planned from ``memory_limit`` when omitted.

    Returns
    -------
    NodalCoupling
        ``coupling`` and ``n_edges`` of shape ``(..., N)``.

    References
    ----------
    Baum GL et al. PNAS 2020;117:771-778. Gu Z et al. Nat Commun 2021;12:4894.
    Fotiadis P et al. Nat Commun 2023.

    Examples
    --------
    >>> import numpy as np, recouple as rc
    >>> cohort = rc.simulate.cohort(n_regions=40, n_patients=2, n_controls=1, seed=0)
    >>> res = rc.coupling.nodal(cohort.sc, cohort.fc)
    >>> res.coupling.shape == cohort.sc.shape[:-1]
    True
    """
    check_choice("method", method, _k.METHODS)
    check_choice("edges", edges, _k.EDGE_SETS)
    min_edges = check_positive_int("min_edges", min_edges, minimum=2)
    sc_a, fc_a = prepare_connectivity(sc, fc, symmetrize=symmetrize, allow_negative=allow_negative)
    mask_a = None
    if mask is not None:
        mask_a = np.asarray(mask)
        if mask_a.dtype != bool:
            from .exceptions import InputError

            raise InputError(
                f"mask must be a boolean array; got dtype {mask_a.dtype}. Pass e.g. mask=weights > 0."
            )
        try:
            np.broadcast_shapes(mask_a.shape, sc_a.shape)
        except ValueError:
            from .exceptions import ShapeError

            raise ShapeError(
                f"mask must broadcast against sc of shape {sc_a.shape}; got shape {mask_a.shape}. "
                "Pass an (N, N) mask or one per subject."
            ) from None
    elif edges == "mask":
        from .exceptions import InputError

        raise InputError("mask must be given when edges='mask'; got None. Pass mask=<(N, N) bool array>.")
    lead = sc_a.shape[:-2]
    n = sc_a.shape[-1]
    sc2 = sc_a.reshape((-1, n, n))
    fc2 = fc_a.reshape((-1, n, n))
    if mask_a is not None and mask_a.ndim > 2:
        mask_a = np.broadcast_to(mask_a, sc_a.shape).reshape((-1, n, n))
    # working set per subject: inputs, masks, ranks and sort indices
    batched_mask = mask_a is not None and mask_a.ndim == 3
    r, n_edges = call_batched(
        _k.nodal_coupling,
        sc2,
        fc2,
        **({"mask": mask_a} if batched_mask else {}),
        shared=None if batched_mask else {"mask": mask_a},
        backend=backend,
        static={"method": method, "edges": edges, "min_edges": min_edges},
        batch_size=batch_size,
        bytes_per_item=12 * 8 * n * n,
        memory_limit=memory_limit,
    )
    r = np.asarray(r, dtype=np.float64).reshape(lead + (n,))
    n_edges = np.asarray(n_edges).astype(np.int64).reshape(lead + (n,))
    undefined = np.isnan(r)
    if not np.isnan(fill_undefined):
        r = np.where(undefined, fill_undefined, r)
    params = {"method": method, "edges": edges, "min_edges": min_edges, "fill_undefined": fill_undefined}
    return NodalCoupling(coupling=r, n_edges=n_edges, undefined=undefined, params=params)
