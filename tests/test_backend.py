"""Backend selection, availability errors, and import without JAX/CuPy."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

import recouple as rc
from recouple.engine import backend as B
from recouple.exceptions import BackendUnavailable, InputError


def test_default_is_numpy(monkeypatch):
    monkeypatch.delenv("RECOUPLE_BACKEND", raising=False)
    assert rc.get_backend().name == "numpy"


def test_env_variable(monkeypatch):
    monkeypatch.setenv("RECOUPLE_BACKEND", "jax")
    assert rc.get_backend().name == "jax"
    monkeypatch.setenv("RECOUPLE_BACKEND", "tensorflow")
    with pytest.raises(InputError, match="RECOUPLE_BACKEND must be one of"):
        rc.get_backend()


def test_context_manager_nests_and_restores(monkeypatch):
    monkeypatch.delenv("RECOUPLE_BACKEND", raising=False)
    with rc.use_backend("jax") as be:
        assert be.name == "jax"
        assert rc.get_backend().name == "jax"
        with rc.use_backend("numpy"):
            assert rc.get_backend().name == "numpy"
        assert rc.get_backend().name == "jax"
    assert rc.get_backend().name == "numpy"


def test_set_backend_and_argument_precedence(monkeypatch):
    monkeypatch.delenv("RECOUPLE_BACKEND", raising=False)
    try:
        rc.set_backend("jax")
        assert rc.get_backend().name == "jax"
        assert rc.get_backend("numpy").name == "numpy"
    finally:
        B._global_choice = None


def test_auto_without_gpu_is_numpy():
    # No CUDA device on CPU-only machines: auto must fall back to numpy.
    if B._probe("cupy")[0] or B._jax_has_gpu():
        pytest.skip("a GPU is present")
    assert B.backend_name("auto") == "numpy"


def test_unavailable_backend_message():
    if B._probe("cupy")[0]:
        pytest.skip("CuPy is usable here")
    with pytest.raises(BackendUnavailable, match="pip install"):
        rc.set_backend("cupy")


def test_unknown_backend_name():
    with pytest.raises(InputError, match="one of numpy, jax, cupy, auto"):
        rc.set_backend("torch")


def test_jit_cache_does_not_recompile():
    jax = pytest.importorskip("jax")
    be = rc.get_backend("jax")
    traces = []

    def kernel(x, *, power):
        traces.append(1)
        return x**power

    fn = be.compile(kernel, static_argnames=("power",))
    assert be.compile(kernel, static_argnames=("power",)) is fn
    x = be.to_device(np.arange(4.0))
    fn(x, power=2)
    fn(x, power=2)
    assert len(traces) == 1
    assert isinstance(fn(x, power=2), jax.Array)


def test_import_without_jax_or_cupy(tmp_path):
    # A meta-path finder that refuses jax and cupy: recouple must still import
    # and run on numpy, and asking for jax must say what to install.
    code = r"""
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in ('jax', 'jaxlib', 'cupy'):
            raise ImportError('blocked for test: ' + name)
        return None
sys.meta_path.insert(0, Block())
import numpy as np
import recouple as rc
res = rc.coupling.nodal(np.ones((5, 5)) - np.eye(5), np.random.default_rng(0).random((5, 5)) + np.eye(5) * 0,
                        symmetrize=True)
assert res.coupling.shape == (5,)
try:
    rc.set_backend('jax')
except rc.BackendUnavailable as exc:
    assert 'pip install jax' in str(exc), exc
    print('OK')
assert 'jax' not in sys.modules
"""
    env = dict(os.environ)
    env.pop("RECOUPLE_BACKEND", None)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "OK"
