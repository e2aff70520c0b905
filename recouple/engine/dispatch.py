"""Run a kernel on a backend: move host arrays to the device, call the
(compiled) kernel, bring results back, and batch along a leading axis so that
memory stays within the planner's budget."""

from __future__ import annotations

import contextlib
import contextvars
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


# ----------------------------------------------------------------------------- device-resident loops
#
# A resample loop that stays on the device moves its data once per analysis
# (``device_put``), pads every batch to one shape (``pad_leading``) so that one
# compiled step serves every batch, runs each iteration inside
# ``resident_body`` and brings results back explicitly (``device_get``).

_LOOP_GUARD: contextvars.ContextVar[str | None] = contextvars.ContextVar("recouple_loop_transfer_guard",
                                                                         default=None)


def device_put(x, backend=None):
    """Explicit host-to-device copy of ``x`` (an array, or a list/tuple of arrays).

    On JAX this is :func:`jax.device_put` (an explicit transfer, allowed by
    ``jax.transfer_guard("disallow")``); elsewhere ``Backend.to_device``
    (NumPy: the array itself). ``None`` entries pass through.
    """
    be = get_backend(backend)
    if isinstance(x, (list, tuple)):
        if be.name == "jax":
            import jax  # optional dependency: only reached on the JAX backend

            put = iter(jax.device_put([np.asarray(a) for a in x if a is not None]))
            return type(x)(None if a is None else next(put) for a in x)
        return type(x)(None if a is None else be.to_device(a) for a in x)
    if x is None:
        return None
    if be.name == "jax":
        import jax  # optional dependency: only reached on the JAX backend

        return jax.device_put(np.asarray(x))
    return be.to_device(x)


def device_get(tree, backend=None):
    """Explicit device-to-host copy of an array or a dict/list/tuple of arrays (NumPy arrays come back)."""
    be = get_backend(backend)
    if be.name == "jax":
        import jax  # optional dependency: only reached on the JAX backend

        return jax.tree_util.tree_map(np.asarray, jax.device_get(tree))
    return _tree_to_host(tree)


def pad_leading(a, size: int, fill):
    """Host array ``a`` extended along axis 0 to ``size`` rows of ``fill``
    (a scalar, or a row to repeat); ``a`` itself when it already has ``size``."""
    a = np.asarray(a)
    extra = int(size) - a.shape[0]
    if extra <= 0:
        return a
    pad = np.broadcast_to(np.asarray(fill, dtype=a.dtype), (extra,) + a.shape[1:])
    return np.concatenate([a, pad], axis=0)


def resident_step(kernel: Callable, backend=None, *, static: dict | None = None) -> Callable:
    """``kernel`` compiled once for a device-resident loop, configuration ``static`` bound.

    On JAX: ``jax.jit`` with the static configuration closed over (cached per
    kernel and configuration on the backend, like :meth:`Backend.compile`).
    Every argument must be a device array (a Python scalar would be an
    implicit transfer). Elsewhere: ``kernel`` with ``static`` bound.
    """
    be = get_backend(backend)
    static = dict(static or {})
    if be.name != "jax":
        return lambda *args: kernel(*args, **static)
    key = ("resident", kernel, tuple(sorted(static.items())))
    cached = be._jit_cache.get(key)
    if cached is None:
        import jax  # optional dependency: only reached on the JAX backend

        def bound(*args):
            return kernel(*args, **static)

        bound.__name__ = bound.__qualname__ = getattr(kernel, "__name__", "kernel")  # names it in compile logs
        cached = jax.jit(bound)
        be._jit_cache[key] = cached
    return cached


@contextlib.contextmanager
def guard_resident_loops(level: str = "disallow"):
    """Run the iterations of every device-resident loop under ``jax.transfer_guard(level)``.

    With ``"disallow"`` an implicit host<->device copy inside a loop
    iteration raises; the loops' explicit ``device_put``/``device_get`` stay
    allowed. A check that a loop really stays on the device (tests,
    debugging); no effect on other backends.
    """
    token = _LOOP_GUARD.set(level)
    try:
        yield
    finally:
        _LOOP_GUARD.reset(token)


def resident_body(backend=None):
    """Context for one iteration of a device-resident loop: ``jax.transfer_guard``
    at the level of :func:`guard_resident_loops` on JAX when set, else nothing."""
    level = _LOOP_GUARD.get()
    if level is None or get_backend(backend).name != "jax":
        return contextlib.nullcontext()
    import jax  # optional dependency: only reached on the JAX backend

    return jax.transfer_guard(level)
