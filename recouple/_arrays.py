"""Host conversion of arrays from any backend, at the bottom of the package
(used by input validation and by the engine; imports only NumPy)."""

from __future__ import annotations

import numpy as np

__all__ = ["to_host"]


def to_host(x) -> np.ndarray:
    """Copy an array from any backend to a NumPy array on the host."""
    if isinstance(x, np.ndarray):
        return x
    mod = type(x).__module__
    if mod.startswith("cupy"):
        return x.get()
    if mod.startswith("array_api_strict"):
        return np.asarray(x._array) if hasattr(x, "_array") else np.asarray(x)
    return np.asarray(x)
