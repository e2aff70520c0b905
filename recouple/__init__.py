"""recouple: structure-function coupling, spatial nulls, permutation inference
and imaging transcriptomics as batched linear algebra on NumPy, JAX and CuPy.

>>> import recouple as rc
>>> rc.set_backend("numpy")
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import types
import warnings

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


# Modules that moved to another room keep their old import path for one release. The
# package itself (which knows every room) maps the old name to the new module, so no
# lower room has to import an upper one to stay compatible.
_MOVED_MODULES = {"recouple.engine.analyses": "recouple.workflows.coupling"}


class _MovedModuleFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, fullname, path=None, target=None):
        if fullname in _MOVED_MODULES:
            return importlib.util.spec_from_loader(fullname, self)
        return None

    def create_module(self, spec):
        # a stand-in module: every name read from it warns and comes from the new module
        new = _MOVED_MODULES[spec.name]
        alias = types.ModuleType(spec.name, f"Deprecated location of {new}.")

        def __getattr__(name):
            if name.startswith("__"):
                raise AttributeError(name)
            warnings.warn(f"{spec.name}.{name} moved to {new}.{name}; the old location will be removed in the "
                          "next release.", DeprecationWarning, stacklevel=2)
            return getattr(importlib.import_module(new), name)

        alias.__getattr__ = __getattr__
        return alias

    def exec_module(self, module):
        pass


if not any(isinstance(f, _MovedModuleFinder) for f in sys.meta_path):
    sys.meta_path.append(_MovedModuleFinder())
