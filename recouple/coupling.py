"""Structure-function coupling: public API.

``nodal`` computes, for every node, the correlation between its row of
structural connectivity (SC) and its row of functional connectivity (FC)
over an edge set, batched over any number of subjects or scans.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
from scipy.stats import binom

from .engine.dispatch import call_batched, call_kernel, host_map
from .engine.random import sign_flips
from .exceptions import InputError, ShapeError
from .graph import kernel_routes, prepare_coords
from .kernels import coupling as _k
from .kernels._xp import namespace
from .validation import (
    as_array,
    check_choice,
    check_finite,
    check_nonnegative,
    check_positive_int,
    check_same_shape,
    check_square,
    check_symmetric,
    weight_stack,
)

# communication model on the NumPy backend: working sets of one or two 400-region subjects
_HOST_BATCH = 40e6
# nodal coupling: two 400-region subjects per batch (sorts and gathers stay in cache), one batch per core
_NODAL_HOST_BATCH = 32e6

__all__ = [
    "NodalCoupling",
    "nodal",
    "prepare_connectivity",
    "consistency_mask",
    "CommunicationModel",
    "communication",
    "SDIResult",
    "sdi",
]


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
    sc_a = weight_stack(sc_name, sc, symmetrize=symmetrize, allow_negative=allow_negative, mapper=host_map)
    fc_a = as_array(fc_name, fc, ndim_min=2)
    check_square(fc_name, fc_a)
    check_same_shape(sc_name, sc_a, fc_name, fc_a)
    check_finite(fc_name, fc_a)
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
            raise InputError(
                f"mask must be a boolean array; got dtype {mask_a.dtype}. Pass e.g. mask=weights > 0."
            )
        try:
            np.broadcast_shapes(mask_a.shape, sc_a.shape)
        except ValueError:
            raise ShapeError(
                f"mask must broadcast against sc of shape {sc_a.shape}; got shape {mask_a.shape}. "
                "Pass an (N, N) mask or one per subject."
            ) from None
    elif edges == "mask":
        raise InputError("mask must be given when edges='mask'; got None. Pass mask=<(N, N) bool array>.")
    lead = sc_a.shape[:-2]
    n = sc_a.shape[-1]
    sc2 = sc_a.reshape((-1, n, n))
    fc2 = fc_a.reshape((-1, n, n))
    if mask_a is not None and mask_a.ndim > 2:
        mask_a = np.broadcast_to(mask_a, sc_a.shape).reshape((-1, n, n))
    # working set per subject: inputs, masks, ranks and sort indices
    bytes_per_item = 12 * 8 * n * n
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
        bytes_per_item=bytes_per_item,
        memory_limit=memory_limit,
        host_batch_bytes=_NODAL_HOST_BATCH,
        host_threads=True,
    )
    r = np.asarray(r, dtype=np.float64).reshape(lead + (n,))
    n_edges = np.asarray(n_edges).astype(np.int64).reshape(lead + (n,))
    undefined = np.isnan(r)
    if not np.isnan(fill_undefined):
        r = np.where(undefined, fill_undefined, r)
    params = {"method": method, "edges": edges, "min_edges": min_edges, "fill_undefined": fill_undefined}
    return NodalCoupling(coupling=r, n_edges=n_edges, undefined=undefined, params=params)


# --- group-consistency mask ---------------------------------------------------------------


def consistency_mask(sc, *, fraction: float = 0.75, symmetrize: bool = False, backend=None) -> np.ndarray:
    """Edges most consistent across subjects (Baum et al. 2020).

    Keeps ``round(fraction * N (N - 1) / 2)`` of all region pairs: those
    with the lowest coefficient of variation std/mean (ddof=1) of the weight
    across subjects, as ``GLB_threshold_consistency(W, fraction)``. Pass the
    result as ``nodal(..., mask=...)``.

    Parameters
    ----------
    sc : (S, N, N) array_like
        Subjects' structural connectivity (S >= 2), non-negative.
    fraction : float in (0, 1]

    Returns
    -------
    mask : (N, N) bool ndarray, symmetric, False on the diagonal

    Examples
    --------
    >>> import recouple as rc
    >>> cohort = rc.simulate.cohort(n_regions=30, n_patients=3, n_controls=2, seed=0)
    >>> mask = rc.coupling.consistency_mask(cohort.sc, fraction=0.5)
    >>> int(mask.sum()) == 2 * round(0.5 * 30 * 29 / 2)
    True
    """
    a = as_array("sc", sc, ndim=3)
    check_square("sc", a)
    check_finite("sc", a)
    if a.shape[0] < 2:
        raise ShapeError(
            f"sc must stack at least 2 subjects to measure consistency; got {a.shape[0]}. "
            "Pass the whole cohort, shape (S, N, N)."
        )
    if symmetrize:
        a = (a + np.swapaxes(a, -1, -2)) / 2
    else:
        check_symmetric("sc", a)
    check_nonnegative("sc", a)
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 < fraction <= 1:
        raise InputError(f"fraction must be a number in (0, 1]; got {fraction!r}. Pass e.g. fraction=0.75.")
    n = a.shape[-1]
    n_keep = int(round(fraction * n * (n - 1) / 2))
    return np.asarray(call_kernel(_k.consistency_mask, a, backend=backend, static={"n_keep": n_keep}))


# --- multilinear communication model --------------------------------------------------------


@dataclass(frozen=True)
class CommunicationModel:
    """Result of :func:`communication`.

    Attributes
    ----------
    r2_adj : (..., N) ndarray
        Adjusted R^2 of each node's model (NaN where undefined, e.g. a node
        with unreachable regions under ``path_length``).
    r2 : (..., N) ndarray
        Plain R^2.
    predictors : tuple of str
        Predictor names, in the order of the last axis of ``dominance``.
    dominance : (..., N, P) ndarray or None
        General (total) dominance of each predictor on adjusted R^2
        (Budescu 1993; netneurotools ``get_dominance_stats``); sums to
        ``r2_adj`` over the last axis.
    params : dict
    """

    r2_adj: np.ndarray
    r2: np.ndarray
    predictors: tuple
    dominance: np.ndarray | None = None
    params: dict = field(default_factory=dict)

    def mean(self) -> float:
        """Mean adjusted R^2 over defined nodes (and subjects)."""
        return float(np.nanmean(self.r2_adj))


def communication(
    sc,
    fc,
    *,
    coords=None,
    predictors=("distance", "path_length", "communicability"),
    weighted: bool = True,
    dominance: bool = False,
    symmetrize: bool = False,
    backend: str | None = None,
    batch_size: int | None = None,
    memory_limit=None,
) -> CommunicationModel:
    """Local multilinear model of FC from SC communication predictors.

    For every node i, FC(j, i) over the other regions j is regressed (OLS
    with intercept) on the predictors' column i, and the adjusted R^2 is its
    coupling (Vazquez-Rodriguez et al. 2019; METHODS 1.3).

    Parameters
    ----------
    sc, fc : (N, N) or (..., N, N) array_like
        Structural (symmetric, non-negative) and functional connectivity.
    coords : (N, 3) or (..., N, 3) array_like, optional
        Region centroids; required for ``"distance"`` and ``"navigation"``.
    predictors : sequence of str or dict
        Names from ``"distance"``, ``"path_length"``, ``"communicability"``,
        ``"search_information"``, ``"navigation"``, ``"diffusion"`` computed
        from ``sc``; or a dict ``{name: (N, N) or (..., N, N) array}`` of
        precomputed predictor matrices (node i uses column i).
    weighted : bool
        ``True``: weighted predictors (-log(W / (max W + 1)) path lengths,
        expm(D^-1/2 W D^-1/2), symmetrised search information / navigation /
        diffusion efficiency; Liu et al. 2023). ``False``: the 2019 binary
        set (hop counts, expm(A)).
    dominance : bool
        Also compute each predictor's general dominance per node.
    symmetrize : bool
        Average SC with its transpose instead of rejecting asymmetry.
    backend, batch_size, memory_limit
        Where to run; subjects per batch.

    Returns
    -------
    CommunicationModel

    References
    ----------
    Vazquez-Rodriguez B et al. PNAS 2019;116:21219-21227.
    Liu ZQ et al. NeuroImage 2023;274:120276.

    Examples
    --------
    >>> import recouple as rc
    >>> cohort = rc.simulate.cohort(n_regions=40, n_patients=2, n_controls=1, seed=0)
    >>> res = rc.coupling.communication(cohort.sc, cohort.fc, coords=cohort.centroids)
    >>> res.r2_adj.shape == cohort.sc.shape[:-1]
    True
    """
    sc_a, fc_a = prepare_connectivity(sc, fc, symmetrize=symmetrize)
    lead = sc_a.shape[:-2]
    n = sc_a.shape[-1]
    if n < 4:
        raise ShapeError(f"sc must have at least 4 regions for a local regression; got {n}. Use a finer parcellation.")
    custom = isinstance(predictors, dict)
    names = tuple(predictors) if not custom else tuple(predictors.keys())
    if not names:
        raise InputError("predictors must name at least one predictor; got none. Pass e.g. ('distance', 'path_length').")
    if not custom:
        for name in names:
            check_choice("predictors", name, _k.PREDICTORS)
        if len(set(names)) != len(names):
            raise InputError(f"predictors must not repeat a name; got {names!r}. List each predictor once.")
    p = len(names)
    if n - 1 - p - 1 < 1:
        raise ShapeError(f"sc has too few regions ({n}) for {p} predictors; need N >= p + 3. Use fewer predictors.")
    sc2 = sc_a.reshape((-1, n, n))
    fc2 = fc_a.reshape((-1, n, n))
    static = {"dominance": bool(dominance)}
    if custom:
        per_subject, fixed, order = [], {}, []
        for name in names:
            m = as_array(f"predictors[{name!r}]", predictors[name], ndim_min=2)
            check_square(f"predictors[{name!r}]", m)
            if m.shape[-1] != n:
                raise ShapeError(f"predictors[{name!r}] must be (N, N) with N = {n}; got {m.shape}. Use sc's regions.")
            if m.ndim == 2:
                # one matrix for every subject (e.g. distance): passed whole,
                # centred and multiplied once per batch
                order.append(f"fixed{len(fixed)}")
                fixed[order[-1]] = m
            else:
                order.append(len(per_subject))
                # a view for one subject axis: no (S, P, N, N) stack is built
                per_subject.append(np.broadcast_to(m, sc_a.shape).reshape((-1, n, n)))
        out = call_batched(
            _k.local_regression_parts, fc2, *per_subject, backend=backend,
            static={**static, "order": tuple(order)}, batch_size=batch_size,
            bytes_per_item=(3 * p + 4) * 8 * n * n, memory_limit=memory_limit, host_batch_bytes=_HOST_BATCH, host_threads=True,
            shared=fixed,
        )
    else:
        need_coords = {"distance", "navigation"} & set(names)
        if need_coords and coords is None:
            raise InputError(
                f"coords must be given for the predictors {sorted(need_coords)}; got None. "
                "Pass coords=<(N, 3) centroids> or drop those predictors."
            )
        c = None if coords is None else prepare_coords(coords, n, lead)
        kw, shared = {}, {"coords": c}
        if c is not None and c.ndim > 2:
            kw = {"coords": np.broadcast_to(c, lead + c.shape[-2:]).reshape((-1, n, c.shape[-1]))}
            shared = None
        out = call_batched(
            _k.communication_model, sc2, fc2, backend=backend,
            static={**static, "names": names, "weighted": bool(weighted), **kernel_routes(backend)},
            batch_size=batch_size,
            bytes_per_item=(3 * p + 14) * 8 * n * n, memory_limit=memory_limit, shared=shared,
            host_batch_bytes=_HOST_BATCH, host_threads=True, **kw,
        )
    r2 = np.asarray(out[0]).reshape(lead + (n,))
    r2_adj = np.asarray(out[1]).reshape(lead + (n,))
    dom = np.asarray(out[2]).reshape(lead + (n, p)) if dominance else None
    params = {"predictors": names, "weighted": bool(weighted), "dominance": bool(dominance)}
    return CommunicationModel(r2_adj=r2_adj, r2=r2, predictors=names, dominance=dom, params=params)


# --- structural decoupling index --------------------------------------------------------------


@dataclass(frozen=True)
class SDIResult:
    """Result of :func:`sdi`.

    Attributes
    ----------
    sdi : (S, N) ndarray
        Per-subject SDI = ||decoupled|| / ||coupled|| per region.
    group_sdi : (N,) ndarray
        mean_s ||decoupled|| / mean_s ||coupled|| (ratio of means).
    log2_group_sdi : (N,) ndarray
    cutoff : int
        Number of low-frequency (coupled) harmonics.
    eigenvalues : (N,) ndarray
        Normalised-Laplacian eigenvalues, ascending.
    energy : (N,) ndarray
        Group-mean energy per harmonic.
    coupled_norm, decoupled_norm : (S, N) ndarray
    surrogates : dict
        For each surrogate kind (``"informed"``, ``"ignorant"``):
        ``sdi`` (S, K, N), ``n_above`` / ``n_below`` (N,) subjects whose SDI
        is above every / below every surrogate, ``threshold`` (int), and
        ``significant_above`` / ``significant_below`` (N,) bool.
    params : dict
    """

    sdi: np.ndarray
    group_sdi: np.ndarray
    log2_group_sdi: np.ndarray
    cutoff: int
    eigenvalues: np.ndarray
    energy: np.ndarray
    coupled_norm: np.ndarray
    decoupled_norm: np.ndarray
    surrogates: dict = field(default_factory=dict)
    params: dict = field(default_factory=dict)


def _median_energy_cutoff(energy: np.ndarray) -> int:
    # smallest c with trapz(energy[:c]) >= trapz(energy) / 2 (unit spacing, as GSP_Laplacian.m)
    csum = np.concatenate([[0.0], np.cumsum((energy[1:] + energy[:-1]) / 2)])
    total = csum[-1]
    return int(np.argmax(csum >= total / 2)) + 1


def binomial_threshold(n_subjects: int, n_regions: int, *, alpha: float = 0.05) -> int:
    """Subjects needed to call a region significant (Preti & Van De Ville 2019).

    x = smallest count of 100 with P(X > x | Bin(100, alpha)) < alpha / n_regions,
    rescaled to ``floor(n_subjects / 100 * x) + 1``; a region is significant
    when more subjects than this are flagged.
    """
    x = next(k for k in range(101) if binom.sf(k, 100, alpha) < alpha / n_regions)
    return int(np.floor(n_subjects / 100 * x) + 1)


def sdi(
    sc,
    timeseries,
    *,
    cutoff="median_energy",
    n_surrogates: int = 19,
    surrogates=("informed", "ignorant"),
    seed=0,
    signs=None,
    symmetrize: bool = False,
    backend: str | None = None,
    batch_size: int | None = None,
    memory_limit=None,
) -> SDIResult:
    """Structural decoupling index (Preti & Van De Ville 2019; METHODS 1.4).

    Parameters
    ----------
    sc : (N, N) or (S, N, N) array_like
        Structural connectivity; a stack is averaged into the group SC.
    timeseries : (S, N, T) array_like
        Regional time series per subject (z-scored over time here).
    cutoff : "median_energy" or int
        Number of coupled (low-frequency) harmonics; ``"median_energy"``: where
        the group energy spectrum reaches half its area.
    n_surrogates : int
        Sign-randomised surrogates per subject (19 as the reference); 0 skips.
    surrogates : sequence of {"informed", "ignorant"}
        SC-informed (structural harmonics) and SC-ignorant (configuration
        model harmonics) surrogates.
    seed : int
        Surrogate k draws its signs from its own stream of ``seed``.
    signs : dict, optional
        Precomputed ``{kind: (K, S, N) array of +-1}`` (overrides ``seed``).
    backend, batch_size, memory_limit
        Where to run; subjects per batch.

    Returns
    -------
    SDIResult

    References
    ----------
    Preti MG, Van De Ville D. Nat Commun 2019;10:4747.

    Examples
    --------
    >>> import recouple as rc
    >>> cohort = rc.simulate.cohort(n_regions=30, n_patients=3, n_controls=2, n_timepoints=60, seed=0)
    >>> res = rc.coupling.sdi(cohort.sc, cohort.timeseries, n_surrogates=5)
    >>> res.sdi.shape == cohort.timeseries.shape[:2]
    True
    """
    w = as_array("sc", sc, ndim_min=2)
    check_square("sc", w)
    check_finite("sc", w)
    if w.ndim > 3:
        raise ShapeError(f"sc must be (N, N) or (S, N, N); got shape {w.shape}. Stack subjects on one axis.")
    if symmetrize:
        w = (w + np.swapaxes(w, -1, -2)) / 2
    else:
        check_symmetric("sc", w)
    check_nonnegative("sc", w)
    group = w.mean(axis=0) if w.ndim == 3 else w
    n = group.shape[-1]
    ts = as_array("timeseries", timeseries, ndim=3)
    check_finite("timeseries", ts)
    if ts.shape[1] != n:
        raise ShapeError(
            f"timeseries must be (S, N, T) with N = {n} regions as sc; got shape {ts.shape}. "
            "Use the same parcellation and region order (transpose (S, T, N) input)."
        )
    if ts.shape[2] < 3:
        raise ShapeError(f"timeseries must have at least 3 time points; got {ts.shape[2]}. Pass full series.")
    if w.ndim == 3 and w.shape[0] != ts.shape[0]:
        raise ShapeError(
            f"sc and timeseries must have the same number of subjects; got {w.shape[0]} and {ts.shape[0]}. "
            "Pass one SC per subject or a single group SC."
        )
    if (group.sum(axis=-1) == 0).any():
        bad = np.flatnonzero(group.sum(axis=-1) == 0)
        raise InputError(
            f"sc must connect every region (group strength > 0); got all-zero rows at regions {bad[:5].tolist()}. "
            "Drop those regions from sc and timeseries."
        )
    sd = ts.std(axis=-1)
    if (sd == 0).any():
        s, i = np.argwhere(sd == 0)[0]
        raise InputError(
            f"timeseries must vary over time in every region; subject {s}, region {i} is constant. "
            "Drop or fix that region."
        )
    for kind in surrogates:
        check_choice("surrogates", kind, ("informed", "ignorant"))
    n_surrogates = check_positive_int("n_surrogates", n_surrogates, minimum=0)
    lam, u = call_kernel(_eigh, _k.normalized_laplacian(group), backend=backend)
    s_count = ts.shape[0]
    ts_b = ts
    energy = call_batched(_k.graph_energy, ts_b, shared={"harmonics": u}, backend=backend, batch_size=batch_size,
                          bytes_per_item=4 * 8 * n * ts.shape[2], memory_limit=memory_limit).mean(axis=0)
    if cutoff == "median_energy":
        c = _median_energy_cutoff(energy)
    else:
        c = check_positive_int("cutoff", cutoff)
        if c >= n:
            raise InputError(f"cutoff must be below N = {n}; got {c}. Pass a smaller number of harmonics.")
    if c < n and abs(lam[c] - lam[c - 1]) < 1e-10:
        warnings.warn(
            f"the cutoff ({c}) splits a degenerate eigenspace (eigenvalues {lam[c - 1]:.3g} = {lam[c]:.3g}); "
            "the coupled/decoupled split is not unique there.",
            UserWarning,
            stacklevel=2,
        )
    coupled, decoupled = call_batched(
        _k.decoupling_norms, ts_b, shared={"harmonics": u}, static={"n_low": c}, backend=backend,
        batch_size=batch_size, bytes_per_item=4 * 8 * n * ts.shape[2], memory_limit=memory_limit,
    )
    subject_sdi = decoupled / coupled
    group_sdi = decoupled.mean(axis=0) / coupled.mean(axis=0)
    surr_out = {}
    if n_surrogates > 0:
        threshold = binomial_threshold(s_count, n)
        for kind in surrogates:
            basis = u if kind == "informed" else call_kernel(
                _eigh, _k.configuration_laplacian(group), backend=backend)[1]
            if signs is not None and kind in signs:
                phi = np.asarray(signs[kind], dtype=np.float64)
                if phi.shape != (phi.shape[0], s_count, n):
                    raise ShapeError(
                        f"signs[{kind!r}] must be (K, S, N) = (K, {s_count}, {n}); got {phi.shape}. "
                        "Pass one +-1 vector per surrogate and subject."
                    )
            else:
                phi = sign_flips(seed, n_surrogates, s_count * n, purpose=f"sdi_{kind}").reshape(-1, s_count, n)
            phi_s = np.ascontiguousarray(np.swapaxes(phi, 0, 1))  # (S, K, N)
            sc_c, sc_d = call_batched(
                _k.surrogate_norms, ts_b, phi_s, shared={"harmonics": u, "basis": basis}, static={"n_low": c},
                backend=backend, batch_size=batch_size,
                bytes_per_item=4 * 8 * n * ts.shape[2] * phi.shape[0], memory_limit=memory_limit,
            )
            surr_sdi = sc_d / sc_c
            above = (subject_sdi > surr_sdi.max(axis=1)).sum(axis=0)
            below = (subject_sdi < surr_sdi.min(axis=1)).sum(axis=0)
            surr_out[kind] = {
                "sdi": surr_sdi,
                "n_above": above,
                "n_below": below,
                "threshold": threshold,
                "significant_above": above > threshold,
                "significant_below": below > threshold,
            }
    params = {"cutoff": cutoff, "n_surrogates": n_surrogates, "surrogates": tuple(surrogates), "seed": seed}
    return SDIResult(
        sdi=subject_sdi, group_sdi=group_sdi, log2_group_sdi=np.log2(group_sdi), cutoff=c,
        eigenvalues=np.asarray(lam), energy=energy, coupled_norm=coupled, decoupled_norm=decoupled,
        surrogates=surr_out, params=params,
    )


def _eigh(a):
    xp = namespace(a)
    lam, vec = xp.linalg.eigh(a)
    return lam, vec
