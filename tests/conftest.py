"""Shared fixtures: the ``xp`` backend fixture and access to ../shared/data."""

from __future__ import annotations

import importlib
import os
from pathlib import Path

import numpy as np
import pytest

SHARED_DATA = Path(os.environ.get("RECOUPLE_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


def _xp_params():
    params = [pytest.param("numpy", id="numpy"), pytest.param("array_api_strict", id="array_api_strict"),
              pytest.param("jax", id="jax")]
    params.append(pytest.param("cupy", id="cupy"))
    return params


class XP:
    """A backend under test: ``ns`` the namespace, ``asarray`` to move host data
    there, ``to_numpy`` to bring results back, ``jit`` to compile a kernel
    (jax.jit for JAX, identity elsewhere)."""

    def __init__(self, name):
        self.name = name
        if name == "numpy":
            import array_api_compat.numpy as ns

            self.ns = ns
        elif name == "array_api_strict":
            self.ns = importlib.import_module("array_api_strict")
        elif name == "jax":
            import jax

            jax.config.update("jax_enable_x64", True)
            self.ns = importlib.import_module("jax.numpy")
        else:
            import array_api_compat.cupy as ns

            self.ns = ns

    def asarray(self, x):
        x = np.asarray(x)
        if self.name == "numpy":
            return x
        return self.ns.asarray(x)

    def to_numpy(self, x):
        from recouple.engine.backend import to_host

        return to_host(x)

    def jit(self, fn, **static):
        if self.name != "jax":
            return lambda *a, **k: fn(*a, **k, **static)
        import functools

        import jax

        return jax.jit(functools.partial(fn, **static))


@pytest.fixture(params=_xp_params())
def xp(request):
    name = request.param
    if name == "array_api_strict":
        pytest.importorskip("array_api_strict")
    if name == "jax":
        pytest.importorskip("jax")
    if name == "cupy":
        cupy = pytest.importorskip("cupy", reason="CuPy not installed (no GPU on this machine)")
        try:
            if cupy.cuda.runtime.getDeviceCount() < 1:
                pytest.skip("no CUDA device")
        except Exception as exc:  # pragma: no cover - depends on the machine
            pytest.skip(f"no usable CUDA device: {exc}")
    return XP(name)


@pytest.fixture
def shared_data() -> Path:
    """Path to ../shared/data; skips the test when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real reference data not found at {SHARED_DATA} (set RECOUPLE_SHARED_DATA)")
    return SHARED_DATA


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


def load_hcp(shared: Path, parcellation: str):
    """Group SC, FC and labels of an HCP parcellation: 'ctx' (DK-68), 'ctx_schaefer_400', ..."""
    sc = np.loadtxt(shared / "hcp" / f"strucMatrix_{parcellation}.csv", delimiter=",")
    fc = np.loadtxt(shared / "hcp" / f"funcMatrix_{parcellation}.csv", delimiter=",")
    labels = np.loadtxt(shared / "hcp" / f"strucLabels_{parcellation}.csv", delimiter=",", dtype=str)
    return sc, fc, np.atleast_1d(labels)
