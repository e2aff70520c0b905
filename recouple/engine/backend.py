"""Array backends: numpy (CPU baseline), jax (jitted, CPU or GPU) and cupy.

Kernels are written once against the array API. This module decides which
namespace they run in, moves data to and from the device (only through the
named helpers ``to_device`` / ``to_host``), and compiles kernels with
``jax.jit`` when the backend is JAX.

Selection, from strongest to weakest: a ``backend=`` argument, the innermost
:func:`use_backend` context, :func:`set_backend`, the ``RECOUPLE_BACKEND``
environment variable, and finally ``"numpy"``.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import importlib
import os
from dataclasses import dataclass, field
from typing import Any, Callable

import array_api_compat.numpy as _numpy_xp
import numpy as np

from .._arrays import to_host  # noqa: F401  (the engine's host transfer; defined below validation)
from ..exceptions import BackendUnavailable, InputError

# JAX and CuPy are imported inside the functions below, never at module level:
# they are optional at run time (a missing one raises BackendUnavailable saying
# what to install) and `import recouple` must not load them.

BACKENDS = ("numpy", "jax", "cupy")
CHOICES = BACKENDS + ("auto",)

_INSTALL_HINT = {
    "jax": "install it with `pip install jax` (CPU) or `pip install 'jax[cuda12]'` (NVIDIA GPU)",
    "cupy": "install it with `pip install 'recouple[gpu]'` on a machine with an NVIDIA GPU and CUDA 12",
}

_global_choice: str | None = None
_context_choice: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "recouple_backend", default=None
)


@dataclass(frozen=True)
class Backend:
    """A usable array backend.

    Attributes
    ----------
    name : str
        ``"numpy"``, ``"jax"`` or ``"cupy"``.
    xp : module
        The array-API namespace kernels receive.
    device : str
        Human-readable device description.
    """

    name: str
    xp: Any
    device: str
    _jit_cache: dict = field(default_factory=dict, compare=False, repr=False)

    def compile(self, fn: Callable, *, static_argnames: tuple[str, ...] = ()) -> Callable:
        """Return ``fn`` compiled for this backend (``jax.jit`` on JAX, unchanged elsewhere).

        Compiled functions are cached per kernel and static-argument set, so a
        second call with arrays of the same shapes does not recompile.
        """
        if self.name != "jax":
            return fn
        key = (fn, tuple(static_argnames))
        cached = self._jit_cache.get(key)
        if cached is None:
            import jax

            cached = jax.jit(fn, static_argnames=tuple(static_argnames))
            self._jit_cache[key] = cached
        return cached

    def map_leading(self, fn: Callable, xs):
        """``fn`` over the leading axis of every array in the tuple ``xs``,
        results stacked along a new leading axis (a tuple of arrays when
        ``fn`` returns a tuple).

        Inside a compiled JAX function this is ``jax.lax.map``: one traced
        body, run sequentially, so each slice's temporaries are freed before
        the next (the way a kernel tiles its work without unrolling).
        Elsewhere a Python loop.
        """
        if self.name == "jax":
            import jax  # optional dependency: imported only when the JAX backend is used

            return jax.lax.map(fn, xs)
        outs = [fn(tuple(x[i] for x in xs)) for i in range(xs[0].shape[0])]
        if isinstance(outs[0], tuple):
            return tuple(self.xp.stack([o[j] for o in outs]) for j in range(len(outs[0])))
        return self.xp.stack(outs)

    def to_device(self, x, dtype=None):
        """Copy host data ``x`` to this backend (float64 by default for floats)."""
        arr = np.asarray(x)
        if dtype is not None:
            arr = arr.astype(dtype, copy=False)
        if self.name == "numpy":
            return arr
        if self.name == "jax":
            import jax.numpy as jnp

            return jnp.asarray(arr)
        import cupy

        return cupy.asarray(arr)

    def synchronize(self, x=None):
        """Block until work on ``x`` (or the device) has finished; for timing."""
        if self.name == "jax" and x is not None:
            x.block_until_ready()
        elif self.name == "cupy":
            import cupy

            cupy.cuda.get_current_stream().synchronize()
        return x


def _probe(name: str) -> tuple[bool, str]:
    """Try to make backend ``name`` usable; return (ok, device or reason)."""
    if name == "numpy":
        return True, "cpu"
    if name == "jax":
        try:
            jax = importlib.import_module("jax")
        except Exception as exc:  # ImportError, or a broken install
            return False, f"JAX is not importable ({exc.__class__.__name__}: {exc}); {_INSTALL_HINT['jax']}"
        # x64 so that JAX matches NumPy to ~1e-12; set before any array exists.
        jax.config.update("jax_enable_x64", True)
        devs = jax.devices()
        return True, ", ".join(f"{d.platform}:{d.id}" for d in devs)
    if name == "cupy":
        try:
            cupy = importlib.import_module("cupy")
        except Exception as exc:
            return False, f"CuPy is not importable ({exc.__class__.__name__}); {_INSTALL_HINT['cupy']}"
        try:
            n = cupy.cuda.runtime.getDeviceCount()
        except Exception as exc:
            return False, f"CuPy found no usable CUDA device ({exc})"
        if n < 1:
            return False, "CuPy found no CUDA device"
        props = cupy.cuda.runtime.getDeviceProperties(0)
        devname = props["name"].decode() if isinstance(props["name"], bytes) else props["name"]
        return True, f"cuda:0 ({devname})"
    raise InputError(
        f"backend must be one of {CHOICES}; got {name!r}. Pick one of those names."
    )


@functools.lru_cache(maxsize=None)
def _load(name: str) -> Backend:
    ok, info = _probe(name)
    if not ok:
        raise BackendUnavailable(f"backend {name!r} is not available: {info}")
    if name == "numpy":
        xp = _numpy_xp
    elif name == "jax":
        import jax.numpy as xp
    else:
        import array_api_compat.cupy as xp
    return Backend(name=name, xp=xp, device=info)


def _jax_has_gpu() -> bool:
    try:
        import jax

        return any(d.platform == "gpu" for d in jax.devices())
    except Exception:
        return False


def _resolve_auto() -> str:
    if _probe("cupy")[0]:
        return "cupy"
    if _probe("jax")[0] and _jax_has_gpu():
        return "jax"
    return "numpy"


def _check_name(name: str, argument: str) -> str:
    if not isinstance(name, str) or name.lower() not in CHOICES:
        raise InputError(
            f"{argument} must be one of {', '.join(CHOICES)}; got {name!r}. "
            "Use 'numpy' for the CPU baseline, 'jax' or 'cupy' for accelerators, 'auto' to choose."
        )
    return name.lower()


def backend_name(backend: str | None = None) -> str:
    """Name of the backend that a call with ``backend=`` would use."""
    if backend is not None:
        choice = _check_name(backend, "backend")
    elif _context_choice.get() is not None:
        choice = _context_choice.get()
    elif _global_choice is not None:
        choice = _global_choice
    elif os.environ.get("RECOUPLE_BACKEND"):
        choice = _check_name(os.environ["RECOUPLE_BACKEND"], "RECOUPLE_BACKEND")
    else:
        choice = "numpy"
    return _resolve_auto() if choice == "auto" else choice


def get_backend(backend: str | Backend | None = None) -> Backend:
    """Return the :class:`Backend` to use, raising :class:`BackendUnavailable` if it cannot run."""
    if isinstance(backend, Backend):
        return backend
    return _load(backend_name(backend))


def set_backend(name: str) -> None:
    """Set the process-wide default backend (``numpy``, ``jax``, ``cupy`` or ``auto``).

    Raises :class:`~recouple.exceptions.BackendUnavailable` at once if the
    backend cannot be used, saying what to install.
    """
    global _global_choice
    choice = _check_name(name, "name")
    if choice != "auto":
        _load(choice)
    _global_choice = choice


@contextlib.contextmanager
def use_backend(name: str):
    """Context manager that runs the enclosed code on backend ``name``.

    Examples
    --------
    >>> import recouple as rc
    >>> with rc.use_backend("numpy"):
    ...     rc.get_backend().name
    'numpy'
    """
    choice = _check_name(name, "name")
    if choice != "auto":
        _load(choice)
    token = _context_choice.set(choice)
    try:
        yield get_backend()
    finally:
        _context_choice.reset(token)


def available_backends() -> dict[str, tuple[bool, str]]:
    """Map each backend name to ``(usable, device-or-reason)``."""
    out = {}
    for name in BACKENDS:
        try:
            out[name] = _probe(name)
        except Exception as exc:  # never let a broken optional install break `info`
            out[name] = (False, f"{exc.__class__.__name__}: {exc}")
    return out


def device_put(x, backend=None):
    """Move host array ``x`` to ``backend`` by one explicit transfer.

    Unlike :meth:`Backend.to_device` (``jnp.asarray``), this is an explicit
    transfer for ``jax.transfer_guard``, so device-resident loops can run
    under ``transfer_guard("disallow")`` and still move what they mean to.
    """
    be = get_backend(backend)
    arr = np.asarray(x)
    if be.name == "jax":
        import jax  # optional dependency: imported only when the JAX backend is used

        return jax.device_put(arr)
    return be.to_device(arr)


def device_get(tree, backend=None):
    """Bring arrays (or a list/tuple/dict of arrays) back to the host by one explicit transfer."""
    be = get_backend(backend)
    if be.name == "jax":
        import jax  # optional dependency: imported only when the JAX backend is used

        tree = jax.device_get(tree)
    if isinstance(tree, (list, tuple)):
        return type(tree)(device_get(t, "numpy") for t in tree)
    if isinstance(tree, dict):
        return {k: device_get(v, "numpy") for k, v in tree.items()}
    return to_host(tree)
