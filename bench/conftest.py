"""Benchmark settings: small (smoke) sizes by default, the issues' full sizes
with RECOUPLE_BENCH=full. Ratios are computed from per-item times recorded in
``extra_info`` (peers are often timed on fewer items and scaled linearly)."""

from __future__ import annotations

import os

import pytest

FULL = os.environ.get("RECOUPLE_BENCH", "").lower() == "full"


def size(smoke, full):
    """Pick the smoke or the full size."""
    return full if FULL else smoke


def backends():
    """Backend names to benchmark: numpy and jax (if importable), cupy (if usable)."""
    from recouple.engine.backend import available_backends

    return [name for name, (ok, _) in available_backends().items() if ok]


@pytest.fixture(params=backends())
def backend(request):
    return request.param
