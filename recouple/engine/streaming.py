"""The one block loop over resamples.

Permutation inference, NBS and (later) map association all do the same
thing: plan how many resamples fit the memory budget at once, run a block of
them, and fold the block into running per-element exceedance counts and
per-resample maxima, so that the full ``(K, V)`` null is never held unless
asked for. :func:`plan_resample_batch` and :func:`stream_resamples` are that
loop; what a block computes is the caller's ``block`` function.

Counts are summed in block order and maxima written at their resample
positions, so the result does not depend on the batch size.

Two ways to run the blocks fast:

- On the host, :func:`host_workers` lends a kernel threads that each run
  single-threaded BLAS on their own cache-sized tiles (no barrier between
  the two BLAS threads per small product, and the element-wise passes run on
  every core too).
- On an accelerator, :func:`stream_on_device` keeps the loop device
  resident: the data are moved once, every block is padded to one shape
  (a validity mask keeps padding out of the counts) so the step compiles
  once, the running counts stay on the device, and only each block's
  resamples go in and the counts and maxima come back once, at the end.
"""

from __future__ import annotations

import contextlib
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
from threadpoolctl import ThreadpoolController

from .backend import device_get, device_put, get_backend
from .dispatch import host_thread_count
from .planner import plan_batch
from .progress import progress as _progress

__all__ = ["HOST_THREAD_MIN_FLOPS", "plan_resample_batch", "plan_device_batch", "plan_device_tiles", "tile_columns",
           "untile_columns", "stream_resamples", "stream_on_device", "device_loop_guard", "host_workers", "StreamedNull",
           "CACHE_CAP_BYTES"]

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


#: A device step on a CPU (JAX-CPU) materialises its whole product before the
#: fused reductions read it; past the last-level cache that pass becomes
#: memory bound (measured: the step rate falls about fourfold between a
#: 10 MB and a 20 MB product), so CPU devices keep the product near this size.
CPU_DEVICE_PRODUCT_BYTES = 2**23


def plan_device_batch(n_resamples: int, bytes_per_resample: float, product_bytes_per_resample: float, *,
                      backend=None, batch_size=None, memory_limit=None) -> int:
    """Resamples per block of :func:`stream_on_device`.

    ``batch_size`` if given; on an accelerator, planned from the budget as
    :func:`plan_resample_batch`; on a CPU device (JAX-CPU), also at most
    :data:`CPU_DEVICE_PRODUCT_BYTES` of product per block (at least 8
    resamples).
    """
    planned = plan_resample_batch(n_resamples, bytes_per_resample, batch_size=batch_size,
                                  memory_limit=memory_limit)
    if batch_size is not None:
        return planned
    if str(get_backend(backend).device).startswith("cpu"):
        fit = int(CPU_DEVICE_PRODUCT_BYTES // max(product_bytes_per_resample, 1.0))
        planned = min(planned, max(8, fit))
    return max(1, min(planned, int(n_resamples)))


#: Resamples per block of a tiled step on a CPU device (:func:`plan_device_tiles`).
CPU_DEVICE_TILED_BATCH = 256

#: Bytes of one tile's product ``(B rows, tile)`` on a CPU device: the product
#: and its reductions stay in cache (measured on JAX-CPU: 2-8 MB tiles run
#: the sign-flip and Freedman-Lane steps at 55-90% of the GEMM rate, a whole
#: 8 MB-product step at 10-30%).
CPU_DEVICE_TILE_BYTES = 2**22


def plan_device_tiles(n_resamples: int, n_elements: int, rows_per_resample: int, bytes_per_resample: float, *,
                      backend=None, batch_size=None, memory_limit=None) -> tuple[int, int]:
    """``(batch, tile)`` for a device step that reduces its product one
    element tile at a time (:func:`tile_columns`, ``Backend.map_leading``).

    On a CPU device (JAX-CPU) the block holds :data:`CPU_DEVICE_TILED_BATCH`
    resamples (fewer if ``K`` or the memory budget is smaller) and each tile of elements is
    sized so the tile's product ``(batch x rows_per_resample, tile)`` is
    about :data:`CPU_DEVICE_TILE_BYTES` (a power of two, at least 128
    elements). On an accelerator the batch is planned from the memory
    budget as :func:`plan_device_batch` and the elements form one tile.
    ``batch_size`` fixes the batch on both.
    """
    v = max(1, int(n_elements))
    k = max(1, int(n_resamples))
    if not str(get_backend(backend).device).startswith("cpu"):
        bs = plan_resample_batch(k, bytes_per_resample, batch_size=batch_size, memory_limit=memory_limit)
        return max(1, min(bs, k)), v
    if batch_size is not None:
        bs = max(1, int(batch_size))
    else:  # within the memory budget too (the estimate of a whole-V block bounds a tiled one)
        bs = min(CPU_DEVICE_TILED_BATCH, plan_resample_batch(k, bytes_per_resample, memory_limit=memory_limit,
                                                             cache_cap=None))
    bs = min(bs, k)
    per_element = 8.0 * bs * max(1, int(rows_per_resample))
    tile = 128
    while tile * 2 * per_element <= CPU_DEVICE_TILE_BYTES:
        tile *= 2
    return bs, min(tile, v)


def tile_columns(x, tile: int):
    """Host array ``(..., V)`` as ``(n_tiles, ..., tile)``: column tiles along a
    new leading axis, the last tile filled up with copies of the last column
    (a repeated column changes no maximum; its counts are cut off by
    :func:`untile_columns`)."""
    x = np.asarray(x)
    v = x.shape[-1]
    n_tiles = -(-v // tile)
    pad = n_tiles * tile - v
    if pad:
        x = np.concatenate([x, np.repeat(x[..., -1:], pad, axis=-1)], axis=-1)
    x = x.reshape(x.shape[:-1] + (n_tiles, tile))
    return np.ascontiguousarray(np.moveaxis(x, -2, 0))


def untile_columns(x, n_elements: int):
    """Inverse of :func:`tile_columns` for a host array ``(n_tiles, ..., tile)``."""
    x = np.moveaxis(np.asarray(x), 0, -2)
    return x.reshape(x.shape[:-2] + (-1,))[..., :n_elements]


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


#: Below this many flops per block, host kernels run on the calling thread:
#: handing tiles to threads costs more than it saves (most of all on a busy
#: machine, where every hand-off waits for a time slice).
HOST_THREAD_MIN_FLOPS = 2e8

_POOLS: dict = {}
_CONTROLLER: list = []
_POOL_LOCK = threading.Lock()


def _blas_controller():
    with _POOL_LOCK:
        if not _CONTROLLER:
            _CONTROLLER.append(ThreadpoolController())  # scans the loaded BLAS libraries once
        return _CONTROLLER[0]


def _pool(workers):
    with _POOL_LOCK:
        pool = _POOLS.get(workers)
        if pool is None:
            pool = _POOLS[workers] = ThreadPoolExecutor(workers, thread_name_prefix="recouple-host")
        return pool


@contextlib.contextmanager
def host_workers(threads=None, *, flops=None):
    """Threads for host kernels that tile their own work, BLAS at one thread each.

    Yields ``(run, workers)``: ``run(fn, items)`` is ``[fn(i) for i in items]``
    on ``workers`` threads (:func:`~recouple.engine.dispatch.host_thread_count`
    unless ``threads`` is given). While the context is open, BLAS runs one
    thread per call, so a kernel that hands every thread its own cache-sized
    matrix products uses the cores without the barriers multi-threaded BLAS
    pays on small products. With one core or for blocks of fewer than
    :data:`HOST_THREAD_MIN_FLOPS` ``flops``: ``workers = 1`` (BLAS still at
    one thread). Off the main thread (inside a Dask task, whose scheduler
    owns the cores): ``workers = 1`` and BLAS is left alone. The threads are
    kept for the next analysis.
    """
    workers = host_thread_count() if threads is None else max(1, int(threads))
    if flops is not None and flops < HOST_THREAD_MIN_FLOPS:
        workers = 1
    serial = (lambda fn, items: [fn(i) for i in items]), 1
    if threading.current_thread() is not threading.main_thread():
        yield serial
        return
    with _blas_controller().limit(limits=1, user_api="blas"):
        if workers <= 1:
            yield serial
        else:
            pool = _pool(workers)
            yield (lambda fn, items: list(pool.map(fn, items))), workers


def device_loop_guard(backend=None):
    """Context of a device-resident loop: on JAX, ``jax.transfer_guard("disallow")``.

    Inside it only explicit transfers
    (:func:`~recouple.engine.backend.device_put` / ``device_get``) run; an
    implicit one (a host array passed to a compiled step, an eager op on a
    Python scalar) raises instead of silently copying every block.
    """
    if get_backend(backend).name != "jax":
        return contextlib.nullcontext()
    import jax  # optional dependency: imported only when the JAX backend is used

    return jax.transfer_guard("disallow")


def stream_on_device(step, resample, *, batch_size, backend, counts, pad_row, args=(), static=None,
                     desc: str = "", progress=None) -> StreamedNull:
    """The resample loop with the data and the running counts on the device.

    Parameters
    ----------
    step : callable ``(*args, batch, valid, counts, **static) -> (counts, max_score)``
        Kernel for one block: ``batch`` ``(B, n)`` resamples, ``valid``
        ``(B,)`` bool (``False`` for padding), ``counts`` ``(V,)`` the running
        counts; returns the counts with this block added and the ``(B,)``
        maxima. Compiled once (every block has the same shapes).
    resample : (K, n) host array
        All resamples; block ``i`` is rows ``i*B .. (i+1)*B - 1``, the last
        block padded with ``pad_row``.
    batch_size : int
        ``B`` (at most ``K``).
    backend : str or Backend
    args : tuple of device arrays
        Moved to the device once, before the loop (:func:`recouple.engine.backend.device_put`).
    counts : device array (V,)
        Initial counts (e.g. zeros, moved once).
    pad_row : (n,) host array
        A valid resample used for padding (identity permutation, all signs +1).
    static : dict
        Compile-time configuration of ``step``.

    Returns
    -------
    :class:`StreamedNull` with ``counts["counts"]`` and ``maxima["max_score"]``.

    Notes
    -----
    Inside the loop the only transfers are explicit: one
    :func:`~recouple.engine.backend.device_put` of each block's resamples
    and mask. Counts and maxima come back by one
    :func:`~recouple.engine.backend.device_get` after the last block. Each
    step runs under :func:`device_loop_guard`, so an implicit transfer
    raises.
    """
    be = get_backend(backend)
    static = dict(static or {})
    fn = be.compile(step, static_argnames=tuple(static))
    k = int(resample.shape[0])
    bs = max(1, min(int(batch_size), k))
    starts = range(0, k, bs)
    maxima = []
    for start in _progress(starts, total=len(starts), desc=desc, show=progress):
        stop = min(start + bs, k)
        batch = resample[start:stop]
        valid = np.ones(bs, dtype=bool)
        if stop - start < bs:
            valid[stop - start:] = False
            batch = np.concatenate([batch, np.broadcast_to(pad_row, (bs - (stop - start),) + batch.shape[1:])])
        with device_loop_guard(be):
            counts, mx = fn(*args, device_put(batch, be), device_put(valid, be), counts, **static)
        maxima.append(mx)
    with device_loop_guard(be):
        counts, maxima = device_get((counts, maxima), be)
    max_score = np.concatenate(maxima)[:k] if maxima else np.empty(0)
    return StreamedNull(counts={"counts": np.asarray(counts)}, maxima={"max_score": max_score},
                        n_resamples=k, batch_size=bs)
