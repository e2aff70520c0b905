"""Deprecated location of the cohort coupling workflow: use
:mod:`recouple.workflows.coupling`. Kept for one release; every name warns."""

from __future__ import annotations

import warnings

_MOVED = ("CohortCoupling", "cohort_coupling", "coupling_result_name")


def __getattr__(name):
    if name in _MOVED:
        warnings.warn(
            f"recouple.engine.analyses.{name} moved to recouple.workflows.coupling.{name}; "
            "the old location will be removed in the next release.",
            DeprecationWarning, stacklevel=2,
        )
        # the workflow sits above the engine: imported only through this deprecated
        # alias (listed as such in tests/test_layers.py)
        from ..workflows import coupling

        return getattr(coupling, name)
    raise AttributeError(f"module 'recouple.engine.analyses' has no attribute {name!r}")
