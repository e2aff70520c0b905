"""recouple: structure-function coupling, spatial nulls, permutation inference
and imaging transcriptomics as batched linear algebra on NumPy, JAX and CuPy.

>>> import recouple as rc
>>> rc.set_backend("numpy")
"""

from __future__ import annotations

import importlib

from .engine.backend import available_backends, get_backend, set_backend, use_backend
from .exceptions import BackendUnavailable, InputError, RecoupleError

__version__ = "0.1.0"

_SUBMODULES = {
    "coupling",
    "graph",
    "nulls",
    "permutation",
    "genes",
    "stats",
    "simulate",
    "store",
    "study",
    "exceptions",
    "validation",
}

__all__ = [
    "__version__",
    "available_backends",
    "get_backend",
    "set_backend",
    "use_backend",
    "BackendUnavailable",
    "InputError",
    "RecoupleError",
    *sorted(_SUBMODULES),
]


def __getattr__(name):
    # Submodules load on first use so `import recouple` stays light.
    if name in _SUBMODULES:
        return importlib.import_module(f".{name}", __name__)
    if name == "run_study":
        return importlib.import_module(".study", __name__).run_study
    raise AttributeError(f"module 'recouple' has no attribute {name!r}")
