"""Run a kernel on a backend: move host arrays to the device, call the
(compiled) kernel, bring results back, and batch along a leading axis so that
memory stays within the planner's budget."""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

import numpy as np

from ..exceptions import InputError
from .backend import get_backend, to_host
from .planner import plan_batch


def _tree_to_host(out):
    if isinstance(out, tuple):
        return tuple(_tree_to_host(o) for o in out)
    if isinstance(out, list):
        return [_tree_to_host(o) for o in out]
    if isinstance(out, dict):
        return {k: _tree_to_host(v) for k, v in out.items()}
    return to_host(out)


def host_thread_count() -> int:
    """Threads for host (NumPy) batches: ``RECOUPLE_NUM_THREADS`` if set,
    else the CPU cores this process may use."""
    env = os.environ.get("RECOUPLE_NUM_THREADS", "").strip()
    if env:
        if not env.isdigit() or int(env) < 1:
            raise InputError(
                f"RECOUPLE_NUM_THREADS must be a positive integer; got {env!r}. "
                "Set it to e.g. 4, or unset it to use every core."
            )
        return int(env)
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - platforms without affinity
        return os.cpu_count() or 1


def host_map(fn, items, *, parallel=True) -> list:
    """``[fn(item) for item in items]`` on :func:`host_thread_count` threads.

    For host work that releases the GIL (NumPy sorts, gathers, element-wise
    passes, SciPy's compiled routines). Serial when ``parallel`` is False,
    for a single item, or off the main thread: inside a Dask task the
    scheduler already uses the cores. Results keep the order of ``items``.
    """
    items = list(items)
    threads = host_thread_count() if parallel and threading.current_thread() is threading.main_thread() else 1
    if threads > 1 and len(items) > 1:
        with ThreadPoolExecutor(min(threads, len(items))) as pool:
            return list(pool.map(fn, items))
    return [fn(item) for item in items]


def _jax_fori_loop(n, body, carry):
    from jax import lax  # optional dependency: only reached on the JAX backend

    return lax.fori_loop(0, n, body, carry)


def kernel_loop(backend=None) -> Callable | None:
    """The ``loop=`` route of kernels that loop over pivots or candidates
    (``loop(n, body, carry)``): JAX's ``fori_loop`` on the JAX backend (one
    compiled step instead of n unrolled ones), None (a Python loop) elsewhere."""
    return _jax_fori_loop if get_backend(backend).name == "jax" else None


def call_kernel(kernel: Callable, *args, backend=None, static: dict | None = None, **kwargs) -> Any:
    """Run ``kernel(*args, **kwargs, **static)`` on ``backend`` and return host arrays.

    ``args``/``kwargs`` are host arrays (or ``None``) moved to the device;
    ``static`` holds configuration (strings, ints) that JAX treats as
    compile-time constants.
    """
    be = get_backend(backend)
    static = dict(static or {})
    fn = be.compile(kernel, static_argnames=tuple(static))
    dev_args = [None if a is None else be.to_device(a) for a in args]
    dev_kwargs = {k: (None if v is None else be.to_device(v)) for k, v in kwargs.items()}
    out = fn(*dev_args, **dev_kwargs, **static)
    return _tree_to_host(out)


def call_batched(
    kernel: Callable,
    *args,
    backend=None,
    static: dict | None = None,
    batch_size: int | None = None,
    bytes_per_item: float | None = None,
    memory_limit: float | str | None = None,
    shared: dict | None = None,
    host_batch_bytes: float | None = None,
    host_threads: bool = False,
    **kwargs,
):
    """:func:`call_kernel` over batches of the leading axis of every array argument.

    Every positional and keyword array is cut along axis 0; arrays in
    ``shared`` are passed whole to every batch (e.g. one mask for all
    subjects). ``None`` entries pass through. Outputs are
    concatenated along axis 0. The batch size is ``batch_size`` or, if
    ``None``, planned from ``bytes_per_item`` and the memory budget.
    ``host_batch_bytes``: on the NumPy backend, when neither ``batch_size``
    nor ``memory_limit`` is given, batches whose working set stays near this
    size (element-wise passes over cache-sized blocks run several times
    faster than over one huge batch); accelerators keep the whole budget.
    ``host_threads``: on the NumPy backend, run batches on
    :func:`host_thread_count` threads at once (for kernels whose time goes to
    sorts, gathers and element-wise passes, which release the GIL, rather
    than to multi-threaded BLAS). Batches are independent, so the result is
    the same for any thread count; the memory budget is shared between the
    batches in flight. Only from the main thread: inside a Dask task the
    scheduler already uses the cores.
    """
    n = np.shape(args[0])[0]
    threads = 1
    if host_threads and threading.current_thread() is threading.main_thread():
        if get_backend(backend).name == "numpy":
            threads = host_thread_count()  # for the memory plan; host_map runs them
    if batch_size is None and memory_limit is None and host_batch_bytes is not None:
        if get_backend(backend).name == "numpy":
            batch_size = max(1, int(host_batch_bytes // max(bytes_per_item or 1.0, 1.0)))
    if batch_size is None:
        batch_size = plan_batch(n, (bytes_per_item or 1.0) * threads, memory_limit=memory_limit)
    batch_size = max(1, min(int(batch_size), n)) if n else 1
    shared = dict(shared or {})
    if n <= batch_size:
        return call_kernel(kernel, *args, backend=backend, static=static, **kwargs, **shared)

    def cut(a, s):
        return None if a is None else a[s]

    def one(start):
        s = slice(start, min(start + batch_size, n))
        return call_kernel(
            kernel,
            *[cut(a, s) for a in args],
            backend=backend,
            static=static,
            **{k: cut(v, s) for k, v in kwargs.items()},
            **shared,
        )

    pieces = host_map(one, range(0, n, batch_size), parallel=threads > 1)
    first = pieces[0]
    if isinstance(first, tuple):
        return tuple(np.concatenate([p[i] for p in pieces], axis=0) for i in range(len(first)))
    return np.concatenate(pieces, axis=0)
