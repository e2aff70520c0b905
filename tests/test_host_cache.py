"""Compiled host loops cache their machine code in a per-user folder, never
inside the installed package (a ``__pycache__`` left there by numba outlived
``pip uninstall`` and turned ``recouple`` into a namespace package that
shadowed a later install)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import recouple
from recouple.host import jit

pytest.importorskip("numba")

PACKAGE = Path(recouple.__file__).resolve().parent

# compiles one loop (Floyd-Warshall on a 3-node path) and prints its result
_SCRIPT = """
import numpy as np
from recouple.host import jit
d = np.array([[[0.0, 1.0, np.inf], [1.0, 0.0, 2.0], [np.inf, 2.0, 0.0]]])
print(jit.floyd_warshall_blocks(d)[0, 0, 2])
"""


def _numba_files(folder: Path) -> set[Path]:
    return {p for p in folder.rglob("*") if p.suffix in (".nbi", ".nbc")}


def _run(env_updates, tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("NUMBA_CACHE_DIR", "RECOUPLE_JIT", "RECOUPLE_CACHE_DIR")}
    env.update(env_updates)
    env["PYTHONPATH"] = os.pathsep.join([str(PACKAGE.parent), env.get("PYTHONPATH", "")])
    return subprocess.run([sys.executable, "-c", _SCRIPT], env=env, cwd=tmp_path, capture_output=True, text=True,
                          check=True)


def test_compiled_loops_cached_in_user_folder_not_in_package(tmp_path):
    before = _numba_files(PACKAGE)
    cache = tmp_path / "cache"
    out = _run({"RECOUPLE_CACHE_DIR": str(cache)}, tmp_path)
    assert out.stdout.strip() == "3.0"
    assert out.stderr == ""
    written = _numba_files(cache)
    assert any(p.name.startswith("jit._floyd_warshall_loop") and p.suffix == ".nbi" for p in written), written
    assert any(p.suffix == ".nbc" for p in written), written
    assert _numba_files(PACKAGE) == before  # nothing new inside the package
    # a second process loads the cached code instead of writing it again
    stamps = {p: p.stat().st_mtime_ns for p in written}
    _run({"RECOUPLE_CACHE_DIR": str(cache)}, tmp_path)
    assert {p: p.stat().st_mtime_ns for p in _numba_files(cache)} == stamps


def test_cache_folder_default_per_user(monkeypatch, tmp_path):
    monkeypatch.delenv("RECOUPLE_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert jit.cache_dir() == tmp_path / "recouple" / "numba"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert jit.cache_dir() == tmp_path / "home" / ".cache" / "recouple" / "numba"
    monkeypatch.setenv("RECOUPLE_CACHE_DIR", str(tmp_path / "mine"))
    assert jit.cache_dir() == tmp_path / "mine"


def test_unwritable_cache_folder_compiles_without_cache(tmp_path):
    before = _numba_files(PACKAGE)
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    out = _run({"RECOUPLE_CACHE_DIR": str(blocker / "cache")}, tmp_path)
    assert out.stdout.strip() == "3.0"
    note = out.stderr.strip().splitlines()
    assert len(note) == 1 and "compiled loops are not cached" in note[0] and "RECOUPLE_CACHE_DIR" in note[0]
    assert _numba_files(PACKAGE) == before
