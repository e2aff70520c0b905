"""Permutation inference over a stored result, chunked over elements.

The scans x elements matrix of a stored result (region or voxel coupling) is
split into element chunks that Dask runs independently, each through
:func:`recouple.permutation.glm` with the *same* resampling matrix
(:func:`recouple.permutation.glm_resamples`). Every
chunk returns its statistics, uncorrected p-values and its per-resample
maximum; the maxima of all chunks give the family-wise null. Because each
element only ever sees the shared resamples, the result equals the unchunked
analysis whatever the chunk width or scheduler. Chunks are written to the
store with completion flags, so an interrupted run resumes.

Scans of one subject are not exchangeable with scans of another.
:func:`subject_exchangeability` applies PALM's ``-eb`` rule when the scans
table shows subjects with more than one scan: the subject is the
exchangeability block; whole blocks are permuted (or sign-flipped) when the
tested effect is constant within every subject (a between-subject effect
such as group), scans are permuted within subjects when it varies within
subjects (a within-subject effect such as session), and the test is refused
when neither is valid (whole-block permutation with unequal block sizes).
:func:`store_glm` applies it by default.
"""

from __future__ import annotations

import functools
import hashlib
import json
import warnings
from dataclasses import dataclass, field

import numpy as np

from .. import permutation as P
from ..engine.runner import OutputSpec, run_chunks, worker_count
from ..exceptions import InputError, ShapeError
from ..io.store import checksum
from ..io.store import open as open_store
from ..kernels import pvalues as _kp
from ..kernels.stats import fdr_bh
from ..permutation.design import resolve_kind
from ..validation import check_choice


@dataclass(frozen=True)
class CohortPermutation:
    """Result of :func:`cohort_permutation` (one t contrast).

    Attributes
    ----------
    statistic, pvalue, pvalue_fwer, pvalue_fdr : (V,) float arrays
    null_max : (n_perm,) float array
        Largest |t| (two-sided), t (greater) or -t (less) over all elements per resample.
    n_perm : int
    signs, permutations : (n_perm, n) array or None
        The resamples every chunk used.
    analysis : str
        ``results/<analysis>`` in the store.
    n_computed, n_skipped : int
        Chunks computed now, and chunks an earlier run had finished.
    exhaustive : bool
        Always False: the resamples are drawn, never enumerated per chunk.
    tfce : None
        Element-chunked runs compute statistics and p-values only.
    """

    statistic: np.ndarray
    pvalue: np.ndarray
    pvalue_fwer: np.ndarray
    pvalue_fdr: np.ndarray
    null_max: np.ndarray
    n_perm: int
    signs: np.ndarray | None
    permutations: np.ndarray | None
    analysis: str
    n_computed: int = 0
    n_skipped: int = 0
    params: dict = field(default_factory=dict)
    exhaustive: bool = False
    tfce: None = None


def subject_exchangeability(subjects, design, contrast, *, resampling=None, where="exchangeability_blocks"):
    """Exchangeability blocks by subject for a GLM on scans (PALM ``-eb`` semantics).

    Parameters
    ----------
    subjects : (n,) sequence
        Subject of each row of the design (e.g. the scans table's ``subject`` column).
    design : (n, p) array
    contrast : (p,) or (r, p) array
        The tested effect: the design columns with a non-zero weight.
    resampling : Resampling, optional
        Its ``kind`` decides sign flips or permutations (``"auto"`` as :func:`recouple.permutation.glm`).
    where : str
        How the caller names the blocks option, for the refusal message (``--blocks``).

    Returns
    -------
    None when every subject has one row (scans are exchangeable), else a dict
    ``{"blocks": (n,) int codes, "whole_blocks": bool, "params": {...}}``:

    * the tested effect is constant within every subject (between-subject,
      e.g. group): whole-block permutation (subjects exchanged with all
      their scans; for sign flips every scan of a subject shares one sign);
      permuting whole blocks needs every subject to have the same number of
      rows;
    * the tested effect varies within some subject (within-subject, e.g.
      session): permutation within subjects (each subject's scans exchanged
      among themselves).

    Raises
    ------
    InputError
        When neither is valid: a between-subject effect with unequal numbers
        of scans per subject (whole blocks cannot be exchanged, and
        permuting within subjects leaves the effect untouched), or a subject
        with missing id.
    """
    subj = np.asarray([str(s) for s in subjects])
    x = np.asarray(design, dtype=np.float64)
    c = np.atleast_2d(np.asarray(contrast, dtype=np.float64))
    if subj.shape != (x.shape[0],):
        raise ShapeError(f"subjects must name the subject of each design row ({x.shape[0]}); got {subj.size}.")
    if np.any(np.isin(subj, ("", "nan", "None"))):
        raise InputError("subjects must all be named to build exchangeability blocks; some rows have no subject. "
                         f"Fill the subject column, or pass {where} yourself.")
    names, codes, sizes = np.unique(subj, return_inverse=True, return_counts=True)
    if sizes.max() <= 1:
        return None
    tested = np.flatnonzero(np.any(c != 0, axis=0))
    between = all(np.ptp(x[codes == b][:, tested], axis=0).max(initial=0.0) == 0 for b in range(names.size))
    kind = resolve_kind(resampling if resampling is not None else P.Resampling(), x, c)
    size_text = (f"{names.size} subjects x {int(sizes[0])} scans" if np.unique(sizes).size == 1
                 else f"{names.size} subjects with {int(sizes.min())}-{int(sizes.max())} scans")
    if between:
        if kind == "permute" and np.unique(sizes).size != 1:
            counts = {int(k): int(v) for k, v in zip(*np.unique(sizes, return_counts=True))}
            raise InputError(
                f"scans are not exchangeable across subjects: {int(np.sum(sizes > 1))} of {names.size} subjects have "
                "more than one scan, and the tested effect is constant within subject (a between-subject effect), "
                "which needs whole-subject (whole-block) permutation; that needs every subject to have the same "
                f"number of scans, but the counts differ (scans per subject: subjects {counts}). Analyse one scan "
                f"per subject (one session, or subject means), or pass {where} (with whole blocks) yourself.")
        rule = (f"whole-block {'sign flips' if kind == 'signflip' else 'permutation'} by subject ({size_text}): "
                "the tested effect is constant within subject, so subjects are exchanged with all their scans")
    else:
        rule = (f"{'sign flips' if kind == 'signflip' else 'permutation'} within subject ({size_text}): "
                "the tested effect varies within subject, so scans are exchanged only within each subject")
    return {"blocks": codes.astype(np.int64), "whole_blocks": bool(between),
            "params": {"blocks": "subject", "whole_blocks": bool(between), "n_blocks": int(names.size),
                       "rule": rule}}


def _chunk_task(chunk, *, source, design, contrast, resampling, width, n_elements, alternative):
    (k0, _k1), = chunk
    v0 = k0 * width
    v1 = min(v0 + width, n_elements)
    y = np.asarray(source[:, v0:v1], dtype=np.float64)
    res = P.glm(y, design, contrast, alternative=alternative, resampling=resampling)
    stat = np.full(width, np.nan)
    pval = np.full(width, np.nan)
    stat[: v1 - v0] = np.ravel(res.statistic)
    pval[: v1 - v0] = np.ravel(res.pvalue)
    return {"statistic": stat[None], "pvalue": pval[None], "null_max": np.ravel(res.null_max)[None]}


def cohort_permutation(store_path, result, design, contrast, *, dataset="coupling", n_perm=5000, seed=0,
                       alternative="two-sided", chunk_size=None, scheduler=None, client=None, overwrite=False,
                       backend=None, progress=False, name=None, chunk_elements=None) -> CohortPermutation:
    """Permutation GLM (Freedman-Lane; sign flips for one-sample designs) of a
    stored ``(scans, elements)`` result, chunked over elements with Dask.

    Parameters
    ----------
    store_path : str or Path
    result : str
        Result group holding the data, e.g. ``"coupling_spearman_sc_nonzero"``.
    design : (n_scans, p) array
        One row per scan of the store (store order).
    contrast : (p,) array
        One t contrast.
    dataset : str
        Dataset inside the result group (default ``"coupling"``).
    n_perm, seed, alternative
        As in :func:`recouple.permutation.glm`.
    chunk_size : int, optional
        Elements per chunk (default: about two chunks per worker); the one
        chunk parameter name of the package (as in
        :func:`recouple.workflows.coupling.cohort_coupling`).
    chunk_elements : int, optional
        Deprecated spelling of ``chunk_size`` (one release).
    scheduler, client
        Dask scheduler name or address, or a ``distributed.Client``.
    overwrite : bool
        Recompute instead of resuming.

    Returns
    -------
    CohortPermutation
    """
    path = str(store_path)
    with open_store(path) as st:
        names = st.results()
        if result not in names:
            raise InputError(f"result must be one of {', '.join(names) or 'none (run `recouple coupling` first)'}; "
                             f"got {result!r}.")
        dset = f"results/{result}/{dataset}"
        if dset not in st.file:
            raise InputError(f"dataset must exist in results/{result}; got {dataset!r}. "
                             f"Available: {', '.join(st.file[f'results/{result}'].keys())}.")
        n_scans, n_elements = st.file[dset].shape
        source = st.handle(dset)
    check_choice("alternative", alternative, _kp.ALTERNATIVES)
    x = np.asarray(design, dtype=np.float64)
    c = np.asarray(contrast, dtype=np.float64).ravel()
    if x.ndim != 2 or x.shape[0] != n_scans:
        raise ShapeError(f"design must be (n_scans={n_scans}, p); got shape {x.shape}. One row per scan of the store.")
    if c.size != x.shape[1]:
        raise ShapeError(f"contrast must have {x.shape[1]} entries (one per design column); got {c.size}.")
    # The resamples the unchunked analysis would draw, handed to every chunk.
    drawn = P.glm_resamples(x, c, resampling=P.Resampling(n_perm=n_perm, seed=seed))
    signs, perms, k = drawn.signs, drawn.permutations, drawn.n_perm
    chunk_resampling = drawn.as_resampling(P.Resampling(backend=backend, progress=False))
    chunk_elements = _chunk_size(chunk_size, chunk_elements)
    if chunk_elements is None:
        workers = worker_count(scheduler, client)
        chunk_elements = max(1, -(-n_elements // (2 * max(workers, 1))))
    width = int(min(max(1, chunk_elements), n_elements))
    n_chunks = -(-n_elements // width)
    digest = hashlib.sha256(np.ascontiguousarray(x).tobytes() + c.tobytes()).hexdigest()[:16]
    params = {"result": result, "dataset": dataset, "n_perm": int(n_perm), "seed": int(seed),
              "alternative": alternative, "design_contrast_sha": digest, "width": width,
              "backend": backend or "default"}
    analysis = name or f"permutation_{result}_{digest[:8]}_w{width}"
    task = functools.partial(_chunk_task, source=source, design=x, contrast=c, resampling=chunk_resampling,
                             width=width, n_elements=n_elements, alternative=alternative)
    outputs = [OutputSpec("statistic", (n_chunks, width)), OutputSpec("pvalue", (n_chunks, width)),
               OutputSpec("null_max", (n_chunks, k))]
    chunks = [((i, i + 1),) for i in range(n_chunks)]
    info = run_chunks(path, analysis, task=task, chunks=chunks, outputs=outputs, params=params,
                      inputs=checksum(path, [dset]), backend=backend, chunking={"elements_per_chunk": width},
                      overwrite=overwrite, scheduler=scheduler, client=client, progress=progress,
                      desc="permutations", seed=seed)
    with open_store(path) as st:
        stat = st.read_result(analysis, "statistic").ravel()[:n_elements]
        pval = st.read_result(analysis, "pvalue").ravel()[:n_elements]
        null_max = np.nanmax(st.read_result(analysis, "null_max"), axis=0)
    pfwer = np.asarray(_kp.fwer_pvalue(_kp.tail_score(stat, alternative), null_max))
    pfdr = np.asarray(fdr_bh(pval))
    return CohortPermutation(statistic=stat, pvalue=pval, pvalue_fwer=pfwer, pvalue_fdr=pfdr, null_max=null_max,
                             n_perm=int(k), signs=signs, permutations=perms, analysis=analysis,
                             n_computed=info.n_computed, n_skipped=info.n_skipped,
                             params=params | {"resampling": "signflip" if signs is not None else "permute",
                                              "provenance": json.loads(json.dumps(info.provenance, default=str))})


def _chunk_size(chunk_size, chunk_elements):
    """``chunk_size``, or the deprecated ``chunk_elements`` with a warning."""
    if chunk_elements is None:
        return chunk_size
    if chunk_size is not None:
        raise InputError("pass chunk_size only; chunk_elements is its deprecated spelling.")
    warnings.warn("chunk_elements is deprecated; pass chunk_size (the package's one chunk parameter name).",
                  DeprecationWarning, stacklevel=3)
    return chunk_elements


def store_glm(store_path, result, design, contrast, *, test="t", alternative="two-sided", resampling=None,
              dataset="coupling", chunk_size=None, scheduler=None, client=None, overwrite=False, progress=None,
              subject_blocks=True, chunk_elements=None):
    """Permutation GLM of a stored ``(scans, elements)`` result, by the route the test allows.

    One t contrast with freely drawn resamples (``Resampling`` with
    ``kind="auto"``, no exchangeability blocks, no precomputed resamples, no
    full null or tail fit, float64) runs element-chunked and resumable through
    :func:`cohort_permutation`; anything else reads the matrix and runs
    :func:`recouple.permutation.glm` in memory. Both give the same numbers
    for the same seed.

    Parameters
    ----------
    store_path, result, dataset, chunk_size, scheduler, client, overwrite
        As in :func:`cohort_permutation` (``chunk_elements``: deprecated spelling of ``chunk_size``).
    design : (n_scans, p) array
    contrast : (p,) t contrast, or (r, p) rows (t contrasts, or one F with ``test="F"``)
    test : {"t", "F"}
    alternative : {"two-sided", "greater", "less"}
    resampling : recouple.permutation.Resampling, optional
    progress : bool or None
    subject_blocks : bool
        When the resampling names no exchangeability blocks (nor precomputed
        resamples) and the store's scans table shows subjects with more than
        one scan, use subject blocks by :func:`subject_exchangeability`
        (default True); the choice is recorded in ``params["exchangeability"]``.

    Returns
    -------
    :class:`CohortPermutation` (chunked) or :class:`recouple.permutation.PermutationResult`.
    """
    chunk_size = _chunk_size(chunk_size, chunk_elements)
    r = resampling if resampling is not None else P.Resampling()
    c = np.asarray(contrast, dtype=np.float64)
    exchange = {"blocks": "given" if r.exchangeability_blocks is not None else None,
                "whole_blocks": bool(r.whole_blocks)}
    if subject_blocks and r.exchangeability_blocks is None and r.permutations is None and r.signs is None:
        with open_store(str(store_path)) as st:
            scans = st.scans
        if "subject" in scans:
            eb = subject_exchangeability(scans["subject"], design, c, resampling=r)
            if eb is not None:
                r = r.replace(exchangeability_blocks=eb["blocks"], whole_blocks=eb["whole_blocks"])
                exchange = eb["params"]
    res = _store_glm(store_path, result, design, c, r, test=test, alternative=alternative, dataset=dataset,
                     chunk_size=chunk_size, scheduler=scheduler, client=client, overwrite=overwrite,
                     progress=progress)
    res.params["exchangeability"] = exchange
    return res


def _store_glm(store_path, result, design, c, r, *, test, alternative, dataset, chunk_size, scheduler, client,
               overwrite, progress):
    chunkable = (test == "t" and (c.ndim == 1 or c.shape[0] == 1) and r.kind == "auto"
                 and r.exchangeability_blocks is None and r.permutations is None and r.signs is None
                 and not r.keep_null and not r.tail_approximation and r.precision == "float64")
    if chunkable:
        return cohort_permutation(store_path, result, design, c.ravel(), dataset=dataset, n_perm=r.n_perm,
                                  seed=r.seed, alternative=alternative, chunk_size=chunk_size,
                                  scheduler=scheduler, client=client, overwrite=overwrite, backend=r.backend,
                                  progress=progress)
    with open_store(str(store_path)) as st:
        y = np.asarray(st.read(f"results/{result}/{dataset}"), dtype=np.float64)
    return P.glm(y, design, c, test=test, alternative=alternative,
                 resampling=r if r.progress is not None or progress is None else r.replace(progress=progress))
