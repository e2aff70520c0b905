"""Every generator and analysis plans its memory before it starts (refusals
must come at once, without allocating), and input checks at the entry points."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import recouple as rc
from recouple.cli import main
from recouple.engine import planner
from recouple.engine import random as rrandom
from recouple.exceptions import InputError
from recouple.permutation import Resampling
from recouple.validation import as_array, frame_values

BIG = 10**9


def _sphere(n, seed=0):
    p = np.random.default_rng(seed).standard_normal((n, 3))
    return 100 * p / np.linalg.norm(p, axis=1, keepdims=True)


@pytest.fixture(scope="module")
def maps():
    pts = _sphere(60)
    x = np.sin(pts[:, 0] / 30)
    return pts, x, rc.nulls.distance(pts)


class _TookTooLong(Exception):
    pass


def _alarm(signum, frame):
    raise _TookTooLong("no refusal within 10 s: the work was started instead of planned")


@contextlib.contextmanager
def deadline(seconds=10.0):
    """Stop work that was started instead of refused: an alarm after
    ``seconds``, repeated every second in case one lands where it is ignored."""
    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds, 1.0)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def refused_at_once(fn, match="GiB"):
    """``fn()`` raises InputError naming GiB within 2 s, tracing under 8 MB."""
    tracemalloc.start()
    t0 = time.perf_counter()
    try:
        with deadline(), pytest.raises(InputError, match=match) as info:
            fn()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert time.perf_counter() - t0 < 2.0
    assert peak < 8 * 2**20, f"{peak / 2**20:.1f} MiB traced before the refusal"
    return str(info.value)


# --------------------------------------------------------------------------- the planner
def test_default_limit_is_half_the_available_memory(monkeypatch):
    monkeypatch.setattr(planner, "available_memory", lambda: 6 * 2**30)
    assert planner.DEFAULT_FRACTION == 0.5
    assert planner.parse_memory(None) == 3 * 2**30
    assert planner.plan_batch(10**9, 2**20) == 3 * 2**10


def test_available_memory_without_psutil(monkeypatch):
    monkeypatch.setitem(sys.modules, "psutil", None)  # import psutil -> ImportError
    avail = planner.available_memory()
    assert 0 < avail <= planner.total_memory() * 1.01
    if Path("/proc/meminfo").is_file():
        line = next(ln for ln in Path("/proc/meminfo").read_text().splitlines() if ln.startswith("MemAvailable:"))
        assert abs(avail - int(line.split()[1]) * 1024) < 2**30  # the same reading, up to what changed since


def test_require_memory_message():
    with pytest.raises(InputError) as info:
        planner.require_memory("thing: the (1000, 1000) array", 1000, 8e6, memory_limit="1GB", fix="stream it")
    msg = str(info.value)
    assert "7.45 GiB" in msg and "0.931 GiB" in msg and "memory_limit='1GB'" in msg
    assert "at most 125 fit" in msg and "stream it" in msg and "\n" not in msg
    assert planner.require_memory("ok", 10, 8.0, memory_limit="1MB") == 10**6


# --------------------------------------------------------------------------- generators refuse at once
def test_spins_refuse_under_the_default_limit(monkeypatch):
    pts = _sphere(80)
    monkeypatch.setattr(planner, "available_memory", lambda: 2**20)
    msg = refused_at_once(lambda: rc.nulls.spin_permutations(pts, n_perm=20_000))
    assert "spin_permutations" in msg and "50% of the" in msg and "rotations=rc.nulls.rotations" in msg
    refused_at_once(lambda: rc.nulls.rotations(20_000))


def test_spins_and_rotations_refuse_huge_requests():
    pts = _sphere(80)
    refused_at_once(lambda: rc.nulls.spin_permutations(pts, n_perm=BIG))
    refused_at_once(lambda: rc.nulls.spin_permutations(pts, n_perm=BIG, method="vasa"))
    refused_at_once(lambda: rc.nulls.rotations(BIG))
    refused_at_once(lambda: rc.nulls.spin_permutations(pts, n_perm=100, memory_limit="10KB"))


def test_spins_within_the_limit_are_unchanged():
    pts = _sphere(80)
    hemi = (pts[:, 0] > 0).astype(int)
    a = rc.nulls.spin_permutations(pts, hemi=hemi, n_perm=30, seed=2)
    b = rc.nulls.spin_permutations(pts, hemi=hemi, n_perm=30, seed=2, memory_limit="1GB")
    np.testing.assert_array_equal(a, b)
    # blocks of rotations give the same spins as one call
    blocks = [rc.nulls.spin_permutations(pts, hemi=hemi, rotations=rc.nulls.rotations(10, seed=2, start=s))
              for s in (0, 10, 20)]
    np.testing.assert_array_equal(np.vstack(blocks), a)


def test_surrogates_refuse_huge_requests(maps):
    pts, x, D = maps
    msg = refused_at_once(lambda: rc.nulls.variogram_surrogates(x, D, n_perm=BIG))
    assert "variogram_surrogates" in msg and "n_perm" in msg
    d, idx = rc.nulls.distance(pts, knn=20)
    refused_at_once(lambda: rc.nulls.variogram_surrogates(x, d, index=idx, mode="sampled", knn=20, n_perm=BIG))
    refused_at_once(lambda: rc.nulls.moran(x, rc.nulls.moran_weights(D), n_perm=BIG))
    refused_at_once(lambda: rc.nulls.burt2018_surrogates(x, D, n_perm=BIG))
    refused_at_once(lambda: rc.nulls.variogram_surrogates(x, D, n_perm=50, memory_limit="100KB"))


def test_variogram_blocks_give_the_same_surrogates(maps):
    _, x, D = maps
    ref = rc.nulls.variogram_surrogates(x, D, n_perm=25, seed=4)
    for bs in (1, 7, 25):  # the batched products may differ in the last bits only
        np.testing.assert_allclose(rc.nulls.variogram_surrogates(x, D, n_perm=25, seed=4, batch_size=bs), ref,
                                   rtol=0, atol=1e-12)
    fit = rc.nulls.variogram_surrogates(x, D, n_perm=25, seed=4, batch_size=6, return_fit=True)
    np.testing.assert_array_equal(fit.maps, rc.nulls.variogram_surrogates(x, D, n_perm=25, seed=4, batch_size=6))
    assert fit.delta.shape == fit.alpha.shape == (25,)
    with pytest.raises(InputError, match="integer indices"):
        rc.nulls.variogram_surrogates(x, D, n_perm=2, permutations=np.full((2, 60), 0.5))


def test_index_generators_refuse_huge_requests():
    refused_at_once(lambda: rrandom.permutation_indices(0, BIG, 100))
    refused_at_once(lambda: rrandom.sign_flips(0, BIG, 100))
    refused_at_once(lambda: rrandom.bootstrap_indices(0, BIG, 100))
    refused_at_once(lambda: rc.permutation.permutation_matrix(100, n_perm=BIG))
    refused_at_once(lambda: rc.permutation.sign_flip_matrix(100, n_perm=BIG))
    refused_at_once(lambda: rc.permutation.permutation_matrix(100, n_perm=1000, memory_limit="100KB"))
    np.testing.assert_array_equal(rc.permutation.permutation_matrix(12, n_perm=9, seed=3, memory_limit="1MB"),
                                  rc.permutation.permutation_matrix(12, n_perm=9, seed=3))


def test_permutation_tests_refuse_huge_requests():
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((20, 50)), rng.standard_normal((20, 50))
    msg = refused_at_once(lambda: rc.permutation.two_sample(a, b, resampling=Resampling(n_perm=BIG)))
    assert "(1,000,000,000, 40) resample matrix" in msg
    big = rng.standard_normal((80, 50))
    refused_at_once(lambda: rc.permutation.one_sample(big, resampling=Resampling(n_perm=BIG)))
    design = np.column_stack([np.ones(80), rng.standard_normal(80)])
    refused_at_once(lambda: rc.permutation.glm(big, design, [0, 1], resampling=Resampling(n_perm=BIG)))
    refused_at_once(lambda: rc.permutation.correlation(design[:, 1], big, resampling=Resampling(n_perm=BIG)))


def test_keep_null_and_precomputed_resamples_are_planned():
    rng = np.random.default_rng(1)
    y = rng.standard_normal((30, 400))
    msg = refused_at_once(lambda: rc.permutation.one_sample(
        y, resampling=Resampling(n_perm=5000, keep_null=True, memory_limit="4MB")))
    assert "kept (5,000, 400) null" in msg and "keep_null=False" in msg
    # the same analysis streams within the limit without the kept null
    res = rc.permutation.one_sample(y, resampling=Resampling(n_perm=5000, memory_limit="4MB"))
    assert res.n_perm == 5000 and res.null is None
    perms = rc.permutation.permutation_matrix(30, n_perm=20_000, seed=0)
    refused_at_once(lambda: rc.permutation.two_sample(
        y[:15], y[15:], resampling=Resampling(permutations=perms, memory_limit="1MB")))


# --------------------------------------------------------------------------- the nulls command
def test_nulls_cli_refuses_fast_in_one_line(tmp_path, capsys):
    pts = _sphere(100)
    np.save(tmp_path / "c.npy", pts)
    np.save(tmp_path / "x.npy", pts[:, 0])
    common = ["--map", str(tmp_path / "x.npy"), "--coords", str(tmp_path / "c.npy"), "--out", str(tmp_path / "o.npy")]
    for method in ("vasa", "variogram", "moran", "burt2018", "permutation"):
        capsys.readouterr()
        t0 = time.perf_counter()
        with deadline():
            assert main(["nulls", "--method", method, "--n-perm", str(BIG)] + common) == 2
        assert time.perf_counter() - t0 < 5
        err = capsys.readouterr().err.strip()
        assert "\n" not in err and "GiB" in err and "memory limit" in err, err
    assert main(["nulls", "--method", "permutation", "--n-perm", "500", "--memory-limit", "100KB"] + common) == 2
    assert "memory_limit='100KB'" in capsys.readouterr().err
    assert not (tmp_path / "o.npy").exists()
    assert main(["nulls", "--method", "permutation", "--n-perm", "5", "--memory-limit", "1GB"] + common) == 0
    np.testing.assert_array_equal(np.load(tmp_path / "o.npy"), rrandom.permutation_indices(0, 5, 100))


def test_nulls_cli_permutation_process_exits_2(tmp_path):
    np.save(tmp_path / "x.npy", np.arange(50.0))
    env_path = str(Path(rc.__file__).resolve().parents[1])
    out = subprocess.run([sys.executable, "-m", "recouple.cli", "nulls", "--method", "permutation", "--n-perm",
                          str(BIG), "--map", str(tmp_path / "x.npy"), "--out", str(tmp_path / "o.npy")],
                         capture_output=True, text=True, timeout=60, env={"PYTHONPATH": env_path, "PATH": ""})
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "GiB" in lines[0] and "n_perm" in lines[0]


# --------------------------------------------------------------------------- inputs
def test_hemi_labels_are_never_truncated():
    pts = _sphere(40)
    half = np.where(pts[:, 0] > 0, 0.5, 0.0)
    with pytest.raises(InputError, match="hemi must hold exactly 0"):
        rc.nulls.spin_permutations(pts, hemi=half, n_perm=3)
    hemi = (pts[:, 0] > 0).astype(int)
    np.testing.assert_array_equal(rc.nulls.spin_permutations(pts, hemi=hemi.astype(float), n_perm=4),
                                  rc.nulls.spin_permutations(pts, hemi=np.where(hemi, "R", "L"), n_perm=4))
    with pytest.raises(InputError, match="hemi"):
        rc.nulls.spin_permutations(pts, hemi=hemi + 0j, n_perm=3)


def test_complex_input_is_refused(maps):
    pts, x, D = maps
    with pytest.raises(InputError, match="real numbers"):
        as_array("x", np.ones(3) + 1j)
    y = np.random.default_rng(2).standard_normal((3, 60))
    calls = [
        lambda: rc.nulls.spin_permutations(pts + 0j, n_perm=3),
        lambda: rc.nulls.variogram_surrogates(x + 1j, D, n_perm=3),
        lambda: rc.nulls.moran(x, rc.nulls.moran_weights(D) + 0j, n_perm=3),
        lambda: rc.nulls.compare_maps(x + 1j, y, nulls=None),
        lambda: rc.nulls.compare_maps(x, y, nulls=np.ones((4, 60)) + 1j),
        lambda: rc.nulls.null_maps(x + 1j, rrandom.permutation_indices(0, 3, 60)),
        lambda: rc.permutation.one_sample(y.T + 1j, resampling=Resampling(n_perm=10)),
        lambda: rc.permutation.one_sample(y.T, resampling=Resampling(signs=np.ones((4, 60)) + 0j)),
        lambda: rc.coupling.nodal(np.eye(5)[None] + 0j, np.eye(5)[None]),
    ]
    for call in calls:
        with pytest.raises(InputError):
            call()


def test_empty_inputs_give_clear_errors():
    rng = np.random.default_rng(3)
    a = rng.standard_normal((10, 4))
    with pytest.raises(InputError, match="at least one scan"):
        rc.permutation.two_sample(a, a[:0])
    with pytest.raises(InputError, match="at least one scan"):
        rc.permutation.one_sample(a[:0])
    with pytest.raises(InputError, match="one element"):
        rc.permutation.one_sample(a[:, :0])
    with pytest.raises(InputError, match="at least one region"):
        rc.nulls.spin_permutations(np.zeros((0, 3)), n_perm=3)
    with pytest.raises(InputError, match="positive integer"):
        rc.permutation.permutation_matrix(0, n_perm=3)


def test_non_numeric_expression_cell_is_named():
    df = pd.DataFrame({"G1": [1.0, 2.0, 3.0], "G2": [0.5, "n/a?", 0.1]}, index=["R1", "R2", "R3"])
    with pytest.raises(InputError, match=r"row 'R2', column 'G2' is 'n/a\?'"):
        rc.genes.load_expression(df)
    with pytest.raises(InputError, match="real numbers"):
        frame_values("expression", pd.DataFrame({"G1": [1 + 1j, 2.0]}))
    ok = rc.genes.load_expression(df.assign(G2=[0.5, np.nan, 0.1]))
    assert ok.values.shape == (3, 2) and np.isnan(ok.values[1, 1])
