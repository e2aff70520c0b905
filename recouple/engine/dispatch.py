"""Run a kernel on a backend: move host arrays to the device, call the
(compiled) kernel, bring results back, and batch along a leading axis so that
memory stays within the planner's budget."""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

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
    """
    n = np.shape(args[0])[0]
    if batch_size is None and memory_limit is None and host_batch_bytes is not None:
        if get_backend(backend).name == "numpy":
            batch_size = max(1, int(host_batch_bytes // max(bytes_per_item or 1.0, 1.0)))
    if batch_size is None:
        batch_size = plan_batch(n, bytes_per_item or 1.0, memory_limit=memory_limit)
    batch_size = max(1, min(int(batch_size), n)) if n else 1
    shared = dict(shared or {})
    if n <= batch_size:
        return call_kernel(kernel, *args, backend=backend, static=static, **kwargs, **shared)

    def cut(a, s):
        return None if a is None else a[s]

    pieces = []
    for start in range(0, n, batch_size):
        s = slice(start, min(start + batch_size, n))
        pieces.append(
            call_kernel(
                kernel,
                *[cut(a, s) for a in args],
                backend=backend,
                static=static,
                **{k: cut(v, s) for k, v in kwargs.items()},
                **shared,
            )
        )
    first = pieces[0]
    if isinstance(first, tuple):
        return tuple(np.concatenate([p[i] for p in pieces], axis=0) for i in range(len(first)))
    return np.concatenate(pieces, axis=0)
