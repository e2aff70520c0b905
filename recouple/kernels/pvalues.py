"""The one permutation p-value rule of recouple.

Every resampling p-value in the package — spins and surrogates against maps,
sign-flips and Freedman-Lane permutations, TFCE, cluster and NBS maxima,
gene associations and enrichment — is computed from the functions below, so
that a tie, a ``+1`` and an alternative mean the same thing everywhere.

The rule
--------
1. **Score.** An alternative turns a statistic into a score where larger is
   more extreme: ``"two-sided"`` -> ``|s|``, ``"greater"`` -> ``s``,
   ``"less"`` -> ``-s`` (:func:`tail_score`). F statistics and other
   one-tailed quantities are scored with ``"greater"``.
2. **Ties.** A null score counts as *as or more extreme* when it is at least
   ``score_obs - TIE_RTOL * max(|score_obs|, 1)`` (:func:`tie_threshold`),
   ``TIE_RTOL = 1e-10``. Scores that differ from the observed one only in
   round-off (another backend's summation order, a resample equal to the
   identity, a statistic that cancels to zero) therefore give the same count
   on every backend, chunking and scheduler. The floor of 1 makes the
   tolerance absolute for scores below one in magnitude: the statistics
   recouple computes are standardised (r, t, F, z, TFCE and cluster measures
   of t), for which 1e-10 is far below any meaningful difference.
3. **Counts.** ``p = (1 + #{as or more extreme}) / (1 + K)`` with ``K`` the
   number of finite null draws (Phipson & Smyth 2010; PALM, neuromaps,
   nilearn), so the smallest attainable p-value is ``1 / (K + 1)``.
   ``plus_one=False`` gives ``count / K``. NaN observed -> NaN p-value;
   NaN null draws are not counted.
   **float32 nulls.** When the null statistics are computed in float32
   (``precision="float32"``, an explicit option), their rounding error is far
   above 1e-10, so the tolerance widens to the rounding bound of the
   products they come from (:func:`tie_rtol`): about ``2 n u``
   (``u = 2**-24``) for dot products of ``n`` terms of unit-norm vectors
   (twice Higham's ``gamma_n``, with the inputs' own rounding), at least
   :data:`TIE_RTOL`. A null draw that is
   truly as extreme as the observed one is then still counted, so float32
   p-values are never below float64's; draws within the band are counted
   too (conservative by at most those draws).
4. **FWER.** The family-wise p-value of an element is the same rule applied
   to the null distribution of the maximum score over elements
   (:func:`fwer_pvalue`; Westfall & Young 1993, Nichols & Holmes 2002).

Counts are additive over blocks of null draws, so streamed nulls use
:func:`exceedance_counts` per block and :func:`pvalue_from_counts` at the
end; the result is identical to one call on the whole null.
"""

from __future__ import annotations

import numpy as np

from ._xp import float_dtype, namespace

ALTERNATIVES = ("two-sided", "greater", "less")

#: The tie tolerance of every permutation p-value (relative to max(|score|, 1)).
TIE_RTOL = 1e-10

#: Unit roundoff of IEEE float32 (2**-24).
FLOAT32_UNIT_ROUNDOFF = 2.0**-24

PRECISIONS = ("float64", "float32")


def tie_rtol(precision="float64", n_terms=1):
    """Tie tolerance for null statistics computed at ``precision``.

    ``"float64"``: :data:`TIE_RTOL`. ``"float32"``: the rounding bound of a
    float32 dot product of ``n_terms`` terms of unit-norm vectors, inputs
    rounded to float32 too: ``(n_terms + 2) u / (1 - (n_terms + 2) u)`` with
    ``u = 2**-24``, doubled for the normalisation that follows, and never
    below :data:`TIE_RTOL` (e.g. 1.2e-5 for 100 terms, 1.2e-4 for 1,000).
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be 'float64' or 'float32'; got {precision!r}")
    if precision == "float64":
        return TIE_RTOL
    nu = (max(int(n_terms), 1) + 2) * FLOAT32_UNIT_ROUNDOFF
    return max(TIE_RTOL, 2.0 * nu / (1.0 - nu))


def check_alternative(alternative):
    """Raise ``ValueError`` unless ``alternative`` is one of :data:`ALTERNATIVES`."""
    if alternative not in ALTERNATIVES:
        raise ValueError(f"alternative must be 'two-sided', 'greater' or 'less'; got {alternative!r}")
    return alternative


def tail_score(stat, alternative, *, xp=None):
    """Score of ``stat`` under ``alternative``: larger is more extreme.

    ``"two-sided"`` -> ``|stat|``, ``"greater"`` -> ``stat``,
    ``"less"`` -> ``-stat``. NaN stays NaN.
    """
    check_alternative(alternative)
    xp = namespace(stat) if xp is None else xp
    if alternative == "two-sided":
        return xp.abs(stat)
    if alternative == "greater":
        return stat
    return -stat


def tail_score_inplace(buffer, alternative, *, two_sided=True):
    """:func:`tail_score` written into ``buffer`` (a NumPy array the caller owns).

    The NumPy fast paths of memory-bound reductions use it on their product
    buffers to avoid a copy; ``two_sided=False`` treats ``"two-sided"`` as
    ``"greater"`` (F statistics, which are one-tailed by nature).
    """
    check_alternative(alternative)
    if alternative == "two-sided" and two_sided:
        np.abs(buffer, out=buffer)
    elif alternative == "less":
        np.negative(buffer, out=buffer)
    return buffer


def tie_threshold(score, *, xp=None, rtol=TIE_RTOL):
    """The smallest null score that counts as a tie with ``score``.

    ``score - rtol * max(|score|, 1)`` (``rtol``: :data:`TIE_RTOL`, or
    :func:`tie_rtol` for float32 nulls); non-finite scores are returned
    unchanged (an infinite observed score is only matched by infinity, NaN
    matches nothing).
    """
    xp = namespace(score) if xp is None else xp
    score = xp.asarray(score)
    finite = xp.isfinite(score)
    safe = xp.where(finite, score, xp.zeros_like(score))
    one = xp.ones_like(safe)
    return xp.where(finite, safe - rtol * xp.maximum(xp.abs(safe), one), score)


def threshold_in(threshold, dtype, *, xp=None):
    """``threshold`` as the smallest value of ``dtype`` not below it.

    For a null ``s`` held in ``dtype`` (float32 nulls), ``s >= result`` is
    exactly ``s >= threshold`` (no value of ``dtype`` lies between them),
    without promoting every null value to the threshold's float64 in the
    comparison. Same dtype: unchanged.
    """
    xp = namespace(threshold) if xp is None else xp
    if threshold.dtype == dtype:
        return threshold
    near = xp.astype(threshold, dtype)
    below = xp.astype(near, threshold.dtype) < threshold
    return xp.where(below, xp.nextafter(near, xp.asarray(float("inf"), dtype=dtype)), near)


def _count_true(xp, hit, axis, dt):
    fn = getattr(xp, "count_nonzero", None)
    if fn is not None:
        return xp.astype(fn(hit, axis=axis), dt)
    return xp.sum(xp.astype(hit, dt), axis=axis)


def exceedance_counts(observed, null, *, alternative="two-sided", axis=0):
    """Counts of null draws as or more extreme than ``observed``, and of finite draws.

    Parameters
    ----------
    observed : (...) array
        Observed statistics (not scores).
    null : array with the resample axis at ``axis``, the other axes
        broadcastable against ``observed``.
    alternative : {"two-sided", "greater", "less"}

    Returns
    -------
    count, n_valid : arrays of the broadcast shape of ``observed``
        Summing them over blocks of draws and applying
        :func:`pvalue_from_counts` gives the p-value of the whole null.
    """
    xp = namespace(observed, null)
    dt = float_dtype(xp, null)
    obs = xp.expand_dims(xp.astype(xp.asarray(observed), dt), axis=axis)
    thr = tie_threshold(tail_score(obs, alternative, xp=xp), xp=xp)
    valid = ~xp.isnan(null)
    hit = (tail_score(null, alternative, xp=xp) >= thr) & valid
    return _count_true(xp, hit, axis, dt), _count_true(xp, valid, axis, dt)


def pvalue_from_counts(count, n_valid, observed=None, *, plus_one=True, xp=None):
    """``(count + 1) / (n_valid + 1)`` (or ``count / n_valid``); NaN where ``observed`` is NaN.

    ``plus_one=False`` with no valid draws gives NaN.
    """
    xp = namespace(count, n_valid) if xp is None else xp
    dt = float_dtype(xp, count)
    count = xp.astype(xp.asarray(count), dt)
    n_valid = xp.astype(xp.asarray(n_valid), dt)
    nan = xp.asarray(float("nan"), dtype=dt)
    if plus_one:
        p = (count + 1) / (n_valid + 1)
    else:
        p = xp.where(n_valid > 0, count / xp.where(n_valid > 0, n_valid, xp.ones_like(n_valid)), nan)
    if observed is not None:
        p = xp.where(xp.isnan(xp.asarray(observed)), nan, p)
    return p


def permutation_pvalue(observed, null, *, alternative="two-sided", axis=0, plus_one=True):
    """Permutation p-value of ``observed`` against ``null`` draws.

    Parameters
    ----------
    observed : (...) array
        Observed statistic(s).
    null : array with the permutation axis at ``axis`` and the other axes
        broadcastable against ``observed``; e.g. ``(n_perm, ...)``.
    alternative : {"two-sided", "greater", "less"}
        Two-sided compares ``|null| >= |observed|``.
    plus_one : bool
        ``True`` (default): ``p = (1 + #{null as or more extreme}) / (1 + K)``
        (Phipson & Smyth 2010; PALM, neuromaps, nilearn), floor ``1/(K+1)``.
        ``False``: ``#{...} / K``.

    Notes
    -----
    Ties follow the package rule (module docstring): a draw within
    ``1e-10 * max(|observed|, 1)`` of the observed score counts as extreme.

    Returns
    -------
    p : (...) array
        NaN where ``observed`` is NaN; NaN null draws are ignored (K counts
        the finite draws only).
    """
    xp = namespace(observed, null)
    dt = float_dtype(xp, null)
    observed = xp.astype(xp.asarray(observed), dt)
    count, n_valid = exceedance_counts(observed, null, alternative=alternative, axis=axis)
    return pvalue_from_counts(count, n_valid, observed, plus_one=plus_one, xp=xp)


def fwer_pvalue(score, null_max, *, plus_one=True, rtol=TIE_RTOL):
    """Family-wise p-values of observed ``score`` s against per-resample maxima.

    Parameters
    ----------
    score : (...) array
        Observed scores (already passed through :func:`tail_score`).
    null_max : (K,) array
        The maximum score over elements in each resample; NaN draws are
        ignored.
    plus_one : bool
    rtol : float
        Tie tolerance (:func:`tie_rtol`).

    Returns
    -------
    p : array of the shape of ``score``
        ``(1 + #{null_max >= tie_threshold(score)}) / (K + 1)`` by binary
        search in the sorted maxima, ``O((K + V) log K)``; NaN stays NaN.
    """
    xp = namespace(score, null_max)
    dt = float_dtype(xp, null_max)
    score = xp.astype(xp.asarray(score), dt)
    null_max = xp.astype(xp.asarray(null_max), dt)
    null = xp.sort(null_max[~xp.isnan(null_max)])
    k = null.shape[0]
    flat = xp.reshape(score, (-1,))
    thr = tie_threshold(flat, xp=xp, rtol=rtol)
    count = k - xp.searchsorted(null, xp.where(xp.isnan(thr), xp.asarray(float("inf"), dtype=dt), thr), side="left")
    count = xp.reshape(xp.astype(count, dt), score.shape)
    k_arr = xp.full(score.shape, float(k), dtype=dt)
    return pvalue_from_counts(count, k_arr, score, plus_one=plus_one, xp=xp)
