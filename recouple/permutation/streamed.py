"""How a permutation null is run: counts and maxima of the score streamed
through the fused host kernel or the device-resident loop, and blocks of the
null itself for the statistics that need whole maps (TFCE, clusters, NBS,
``keep_null``).

Shared by :mod:`.glm` and :mod:`.spatial`; the loop is
:mod:`recouple.engine.streaming`, the arithmetic :mod:`recouple.kernels.glm`.
"""

from __future__ import annotations

import numpy as np

from ..engine.backend import device_get, device_put, get_backend
from ..engine.streaming import (
    device_loop_guard,
    host_workers,
    plan_device_tiles,
    stream_on_device,
    stream_resamples,
    tile_columns,
    untile_columns,
)
from ..kernels import glm as _glm

__all__ = ["HOST_BLOCK", "identity_row", "null_basis", "null_batches", "observed_g", "stream_scores"]


#: Resamples per block of the fused host path when no batch size is given:
#: only the (r + q) gathered rows of each resample are held, so the block is
#: bounded for the progress bar, not for memory.
HOST_BLOCK = 4096


def identity_row(mode, n):
    """The identity resample (all signs +1, or the identity permutation), used as padding."""
    return np.ones(n) if mode == "signflip" else np.arange(n)


def null_basis(part, mode, dtype=np.float64):
    """Rows every resample projects on: ``[basis_x; basis_z]``, for
    permutations without the constant direction of the nuisance space, in
    ``dtype`` (the data's: float32 nulls multiply float32 by float32).

    When the intercept lies in the nuisance space, every column of the
    reduced-model residuals ``E`` sums to zero, and a permutation keeps that
    sum: ``1' P e = 1' e = 0``. The constant row's projection is zero for
    every permutation, so its share of ``w`` (one of the ``r + q`` GEMM rows
    per resample) is dropped by rotating ``basis_z`` so that one row is the
    constant and leaving that row out. ``w`` changes by ``(1'e)^2 / n``,
    the square of a rounding error (~1e-33). Sign flips do not keep sums,
    so their basis is unchanged.
    """
    bz = part.basis_z
    if mode == "permute" and bz.shape[0] > 0:
        n = bz.shape[1]
        a = bz @ np.full(n, 1.0 / np.sqrt(n))
        if abs(float(a @ a) - 1.0) < 1e-10:
            # orthonormal basis of the complement of a in R^q: rows of bz orthogonal to the constant
            u, _, _ = np.linalg.svd(np.eye(bz.shape[0]) - np.outer(a, a) / float(a @ a))
            bz = u[:, : bz.shape[0] - 1].T @ bz
    return np.ascontiguousarray(_glm.stacked_basis(part.basis_x, bz), dtype=dtype)


def observed_g(scaled, part, *, mode, backend):
    """``g`` of the unresampled data, ``(V,)``: the identity resample through
    :func:`recouple.kernels.glm.null_batch` (explicit transfers, one
    compilation per shape)."""
    be = get_backend(backend)
    basis = np.ascontiguousarray(_glm.stacked_basis(part.basis_x, part.basis_z))
    identity = identity_row(mode, scaled.shape[0])[None, :]
    static = {"rank": part.rank, "mode": mode}
    if be.name == "numpy":
        with host_workers(flops=0):  # one small product: BLAS at one thread
            return _glm.null_batch(scaled, basis, identity, **static)[0]
    fn = be.compile(_glm.null_batch, static_argnames=tuple(static))
    with device_loop_guard(be):
        args = [device_put(a, be) for a in (scaled, basis, identity)]
        return device_get(fn(*args, **static), be)[0]


def stream_scores(scaled, part, resample, score_cmp, *, mode, alternative, resampling, desc=""):
    """Streamed exceedance counts and per-resample maxima of the score.

    NumPy: the fused tiled kernel (:func:`recouple.kernels.glm.reduce_block_numpy`)
    on :func:`~recouple.engine.streaming.host_workers` threads. Other
    backends: the device-resident loop
    (:func:`~recouple.engine.streaming.stream_on_device`), data moved once,
    one compilation.
    """
    n, v = scaled.shape
    k = resample.shape[0]
    basis = null_basis(part, mode, scaled.dtype)
    be = get_backend(resampling.backend)
    if be.name == "numpy":
        bs = resampling.batch_size if resampling.batch_size is not None else min(k, HOST_BLOCK)
        with host_workers(flops=2.0 * min(bs, k) * basis.shape[0] * n * v) as (run, workers):
            def block(start, stop):
                return _glm.reduce_block_numpy(scaled, basis, resample[start:stop], score_cmp, rank=part.rank,
                                               mode=mode, alternative=alternative, workers=workers, run=run)

            return stream_resamples(block, k, batch_size=bs, counts={"counts": v}, maxima=("max_score",),
                                    desc=desc, progress=resampling.progress)
    bs, tile = plan_device_tiles(k, v, basis.shape[0],
                                 8.0 * (v * (basis.shape[0] + 4) + n * (basis.shape[0] + 1)), backend=be,
                                 batch_size=resampling.batch_size, memory_limit=resampling.memory_limit)
    args = (device_put(tile_columns(scaled, tile), be), device_put(basis, be),
            device_put(tile_columns(score_cmp, tile), be))
    out = stream_on_device(
        _device_step, resample, batch_size=bs, backend=be, args=args,
        counts=device_put(np.zeros((args[0].shape[0], tile)), be), pad_row=identity_row(mode, n),
        static={"rank": part.rank, "mode": mode, "alternative": alternative, "backend": be.name}, desc=desc,
        progress=resampling.progress,
    )
    out.counts["counts"] = untile_columns(out.counts["counts"], v)
    return out


def _device_step(data_tiles, basis, observed_tiles, batch, valid, count_tiles, *, rank, mode, alternative, backend):
    """One block of resamples, reduced one element tile at a time
    (``Backend.map_leading``: on JAX one traced body, so each tile's product
    is reduced while it is in cache)."""
    be = get_backend(backend)
    rows = _glm.batch_rows(basis, batch, mode=mode)

    def tile(parts):
        data, observed, counts = parts
        return _glm.reduce_tile(rows, data, valid, observed, counts, rank=rank, alternative=alternative)

    count_tiles, maxima = be.map_leading(tile, (data_tiles, observed_tiles, count_tiles))
    return count_tiles, be.xp.max(maxima, axis=0)


def null_batches(scaled, part, resample, *, mode, backend, batch_size):
    """``null_batch(start, stop) -> (stop - start, V)``: host ``g`` of those resamples.

    NumPy: one kernel call per block. Other backends: data moved once, every
    block padded to ``batch_size`` rows (one compilation), only the block's
    resamples moved in and its ``g`` moved out, both explicitly (the call
    runs under :func:`~recouple.engine.streaming.device_loop_guard`).
    """
    be = get_backend(backend)
    basis = null_basis(part, mode, scaled.dtype)
    static = {"rank": part.rank, "mode": mode}
    if be.name == "numpy":
        return lambda start, stop: _glm.null_batch(scaled, basis, resample[start:stop], **static)
    fn = be.compile(_glm.null_batch, static_argnames=tuple(static))
    data_d, basis_d = device_put(scaled, be), device_put(basis, be)
    bs = max(1, min(int(batch_size), resample.shape[0]))
    pad = identity_row(mode, scaled.shape[0])

    def null_batch(start, stop):
        batch = resample[start:stop]
        if stop - start < bs:
            batch = np.concatenate([batch, np.broadcast_to(pad, (bs - (stop - start), batch.shape[1]))])
        with device_loop_guard(be):
            return device_get(fn(data_d, basis_d, device_put(batch, be), **static), be)[: stop - start]

    return null_batch
