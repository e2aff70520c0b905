"""The one block loop over resamples.

Permutation inference, NBS and (later) map association all do the same
thing: plan how many resamples fit the memory budget at once, run a block of
them, and fold the block into running per-element exceedance counts and
per-resample maxima, so that the full ``(K, V)`` null is never held unless
asked for. :func:`plan_resample_batch` and :func:`stream_resamples` are that
loop; what a block computes is the caller's ``block`` function.

Counts are summed in block order and maxima written at their resample
positions, so the result does not depend on the batch size.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from .planner import plan_batch
from .progress import progress as _progress

__all__ = ["plan_resample_batch", "stream_resamples", "StreamedNull", "CACHE_CAP_BYTES"]

#: Past ~256 MB per batch the element-wise reductions fall out of cache
#: without making the matrix products any faster.
CACHE_CAP_BYTES = 2**28


def plan_resample_batch(n_resamples: int, bytes_per_resample: float, *, batch_size=None, memory_limit=None,
                        cache_cap: float | None = CACHE_CAP_BYTES) -> int:
    """Resamples per block: ``batch_size`` if given, else planned from the budget.

    Parameters
    ----------
    n_resamples : int
    bytes_per_resample : float
        Working set of one resample (all temporaries of a block, per resample).
    batch_size : int, optional
        Fixed block size (at least 1).
    memory_limit : str or float, optional
        Budget (see :func:`recouple.engine.planner.parse_memory`).
    cache_cap : float or None
        Upper bound on the bytes of one block; ``None``: the budget alone.
    """
    if batch_size is not None:
        return max(1, int(batch_size))
    planned = plan_batch(n_resamples, bytes_per_resample, memory_limit=memory_limit, minimum=1)
    if cache_cap is None:
        return planned
    return max(1, min(planned, int(cache_cap // max(bytes_per_resample, 1.0))))


@dataclass
class StreamedNull:
    """What a streamed null leaves: summed counts and per-resample maxima.

    Attributes
    ----------
    counts : dict of name -> (V,) float array
        Sums over blocks (e.g. exceedances of the observed score).
    maxima : dict of name -> (K,) float array
        One value per resample (e.g. the largest score over elements).
    n_resamples : int
    batch_size : int
    """

    counts: dict = field(default_factory=dict)
    maxima: dict = field(default_factory=dict)
    n_resamples: int = 0
    batch_size: int = 1


def stream_resamples(block: Callable, n_resamples: int, *, batch_size: int, counts=None, maxima=(),
                     desc: str = "", progress=None) -> StreamedNull:
    """Run ``block(start, stop)`` over ``[0, n_resamples)`` in blocks of ``batch_size``.

    Parameters
    ----------
    block : callable ``(start, stop) -> dict``
        Computes resamples ``start..stop-1``. The returned dict holds, for
        each name in ``counts``, a ``(V,)`` array added to the running count,
        and for each name in ``maxima`` a ``(stop - start,)`` array stored at
        those resamples. Other entries are ignored (a block may keep its own
        side outputs, e.g. the full null).
    n_resamples : int
    batch_size : int
        From :func:`plan_resample_batch`.
    counts : dict of name -> int, optional
        Names of the summed outputs and their length ``V``.
    maxima : iterable of str
        Names of the per-resample outputs.
    desc : str
        Progress-bar label.
    progress : bool or None
        Draw a progress bar (``None``: when stderr is a terminal).

    Returns
    -------
    :class:`StreamedNull`
    """
    bs = max(1, int(batch_size))
    acc = StreamedNull(counts={name: np.zeros(v) for name, v in (counts or {}).items()},
                       maxima={name: np.empty(n_resamples) for name in maxima},
                       n_resamples=int(n_resamples), batch_size=bs)
    starts = range(0, n_resamples, bs)
    for start in _progress(starts, total=len(starts), desc=desc, show=progress):
        stop = min(start + bs, n_resamples)
        out = block(start, stop)
        for name in acc.counts:
            acc.counts[name] += out[name]
        for name in acc.maxima:
            acc.maxima[name][start:stop] = out[name]
    return acc
