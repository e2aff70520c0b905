"""Benchmarks of subject-level permutation inference (issue sizes with RECOUPLE_BENCH=full).

Groups:
- ``signflip``: paired sign-flip t with max-stat, recouple (numpy, jax) vs the
  bare sign-matrix GEMM and ``nilearn.mass_univariate.permuted_ols`` (n_jobs=2).
  nilearn is timed on ``PEER_PERM`` flips and scaled linearly to the full count
  (stated in ``extra_info``).
- ``freedman_lane``: GLM with 3 nuisance covariates; throughput and the share of
  the two GEMMs (effect and nuisance projections).
- ``tfce``: TFCE of 91x109x91 maps, permutations per second.
- ``gemm_fraction``: the sign-flip and Freedman-Lane nulls on NumPy and JAX,
  interleaved with the float64 GEMM rate of
  :func:`recouple.engine.perf.measure_gemm_gflops`, all in one process and
  best of ``ROUNDS`` (the machine may be shared: ratios of times taken side
  by side are what is comparable). ``extra_info`` holds ``gemm_fraction``
  (flops of the essential products -- ``2 K n V`` per effect or nuisance
  row of every resample -- per second over the GEMM rate) and
  ``jax_over_numpy`` (time ratio, JAX-CPU / NumPy).
"""

from __future__ import annotations

import os
import time

import numpy as np
import pytest

import recouple as rc

FULL = os.environ.get("RECOUPLE_BENCH") == "full"
SF = dict(n=100, v=79_800, k=10_000, peer_k=200) if FULL else dict(n=40, v=4_950, k=500, peer_k=100)
FL = dict(n=200, v=50_000, k=5_000) if FULL else dict(n=60, v=5_000, k=300)
TF = dict(shape=(91, 109, 91), k=4) if FULL else dict(shape=(30, 36, 30), k=4)
ROUNDS = 3 if FULL else 2


def _signflip_data():
    rng = np.random.default_rng(0)
    return rng.normal(size=(SF["n"], SF["v"])) + 0.05


@pytest.fixture(scope="module")
def signflip_problem():
    y = _signflip_data()
    signs = rc.permutation.sign_flip_matrix(SF["n"], n_perm=SF["k"], seed=0)
    return y, signs


@pytest.mark.benchmark(group="signflip")
@pytest.mark.parametrize("backend", ["numpy", "jax"])
def test_signflip_recouple(benchmark, signflip_problem, backend):
    y, signs = signflip_problem
    R = rc.permutation.Resampling
    rc.permutation.one_sample(y[:, :50], resampling=R(signs=signs[:8], backend=backend))  # warm up / compile
    res = benchmark.pedantic(lambda: rc.permutation.one_sample(y, resampling=R(signs=signs, backend=backend)),
                             rounds=1, iterations=1)
    benchmark.extra_info.update(dict(backend=backend, n=SF["n"], elements=SF["v"], n_perm=SF["k"], dtype="float64"))
    assert res.null_max.shape == (SF["k"],)


@pytest.mark.benchmark(group="signflip")
def test_signflip_bare_gemm(benchmark, signflip_problem):
    y, signs = signflip_problem

    def gemm():
        for s in range(0, signs.shape[0], 256):
            signs[s : s + 256] @ y

    benchmark.pedantic(gemm, rounds=1, iterations=1)
    benchmark.extra_info.update(dict(backend="numpy GEMM only", n=SF["n"], elements=SF["v"], n_perm=SF["k"]))


@pytest.mark.benchmark(group="signflip")
def test_signflip_nilearn(benchmark, signflip_problem):
    mu = pytest.importorskip("nilearn.mass_univariate")
    y, _ = signflip_problem
    k = SF["peer_k"]
    mu.permuted_ols(np.ones((SF["n"], 1)), y[:, :100], n_perm=4, n_jobs=2, verbose=0)  # start workers
    t0 = time.perf_counter()
    benchmark.pedantic(lambda: mu.permuted_ols(np.ones((SF["n"], 1)), y, n_perm=k, n_jobs=2, random_state=0,
                                               verbose=0), rounds=1, iterations=1)
    elapsed = time.perf_counter() - t0
    benchmark.extra_info.update(dict(backend="nilearn permuted_ols n_jobs=2", n=SF["n"], elements=SF["v"],
                                     timed_n_perm=k, n_perm=SF["k"],
                                     extrapolated_s=elapsed * SF["k"] / k,
                                     note=f"timed on {k} flips, scaled linearly to {SF['k']}"))


@pytest.fixture(scope="module")
def fl_problem():
    rng = np.random.default_rng(1)
    n = FL["n"]
    design = np.column_stack([rng.normal(size=n), np.ones(n), rng.normal(size=(n, 3))])
    y = rng.normal(size=(n, FL["v"])) + design[:, 2:3]
    perms = rc.permutation.permutation_matrix(n, n_perm=FL["k"], seed=0)
    return y, design, perms


@pytest.mark.benchmark(group="freedman_lane")
@pytest.mark.parametrize("backend", ["numpy", "jax"])
def test_freedman_lane(benchmark, fl_problem, backend):
    y, design, perms = fl_problem
    R = rc.permutation.Resampling
    rc.permutation.glm(y[:, :50], design, [1, 0, 0, 0, 0], resampling=R(permutations=perms[:8], backend=backend))
    res = benchmark.pedantic(lambda: rc.permutation.glm(y, design, [1, 0, 0, 0, 0],
                                                        resampling=R(permutations=perms, backend=backend)),
                             rounds=1, iterations=1)
    # Matrix-product share: the two projections (effect + 4 nuisance rows) alone.
    from recouple.permutation.design import partition as _partition

    part = _partition(design, np.array([[1.0, 0, 0, 0, 0]]))
    inv = np.argsort(perms, axis=1)
    t0 = time.perf_counter()
    for s in range(0, perms.shape[0], 128):
        rows = np.concatenate([part.basis_x[:, inv[s : s + 128]], part.basis_z[:, inv[s : s + 128]]])
        rows.transpose(1, 0, 2).reshape(-1, y.shape[0]) @ y
    gemm_s = time.perf_counter() - t0
    total = benchmark.stats.stats.mean
    benchmark.extra_info.update(dict(backend=backend, n=FL["n"], elements=FL["v"], n_perm=FL["k"], nuisance=3,
                                     perms_per_s=FL["k"] / total,
                                     element_perms_per_s=FL["k"] * FL["v"] / total,
                                     gemm_s=gemm_s, gemm_share=gemm_s / total))
    assert res.null_max.shape == (FL["k"],)


@pytest.mark.benchmark(group="tfce")
@pytest.mark.parametrize("host_loops", ["compiled", "numpy-code"])
def test_tfce_volume(benchmark, monkeypatch, host_loops):
    """The TFCE kernel alone, one thread: union-find pass (compiled host
    loop) or one scipy.ndimage.label per height (RECOUPLE_JIT=0)."""
    from scipy import ndimage

    from recouple.host import labels as clusters

    monkeypatch.setenv("RECOUPLE_JIT", "1" if host_loops == "compiled" else "0")
    rng = np.random.default_rng(2)
    maps = ndimage.gaussian_filter(rng.normal(size=(TF["k"],) + TF["shape"]), (0, 2, 2, 2)) * 20
    clusters.tfce(maps[:1, :8, :8, :8])  # compile / load the loop
    out = benchmark.pedantic(lambda: clusters.tfce(maps), rounds=1, iterations=1)
    total = benchmark.stats.stats.mean
    benchmark.extra_info.update(dict(backend="numpy", host_loops=host_loops,
                                     method="union-find" if host_loops == "compiled" else "scipy.ndimage.label per height",
                                     shape=TF["shape"], maps=TF["k"], steps=100, two_sided=True,
                                     perms_per_s=TF["k"] / total))
    assert out.shape == maps.shape


def _side_by_side(runs, rounds):
    """Best-of-``rounds`` seconds of every callable in ``runs`` (dict), interleaved,
    and the best float64 GEMM rate (GFLOP/s) measured between them."""
    from recouple.engine.backend import get_backend
    from recouple.engine.perf import measure_gemm_gflops

    numpy_backend = get_backend("numpy")
    best = {name: float("inf") for name in runs}
    gemm = measure_gemm_gflops(numpy_backend, n=2048)
    for _ in range(rounds):
        for name, fn in runs.items():
            t0 = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - t0)
        gemm = max(gemm, measure_gemm_gflops(numpy_backend, n=2048))
    return best, gemm


def _fraction_row(benchmark, runs, flops, info):
    jax = "jax" in runs
    for fn in runs.values():
        fn()  # warm up: imports, compilation
    best, gemm = _side_by_side(runs, ROUNDS)
    benchmark.pedantic(runs["numpy"], rounds=1, iterations=1)
    info = dict(info, gemm_gflops=gemm, numpy_s=best["numpy"], rounds=ROUNDS,
                gemm_fraction=flops / best["numpy"] / (gemm * 1e9))
    if jax:
        info.update(jax_s=best["jax"], jax_over_numpy=best["jax"] / best["numpy"],
                    jax_gemm_fraction=flops / best["jax"] / (gemm * 1e9))
    benchmark.extra_info.update(info)
    return info


@pytest.mark.benchmark(group="gemm_fraction")
def test_signflip_gemm_fraction(benchmark, signflip_problem):
    """Paired sign-flip null (no nuisance: one row per flip)."""
    y, signs = signflip_problem
    R = rc.permutation.Resampling
    runs = {b: (lambda b=b: rc.permutation.one_sample(y, resampling=R(signs=signs, backend=b)))
            for b in ("numpy", "jax")}
    n, v, k = SF["n"], SF["v"], SF["k"]
    info = _fraction_row(benchmark, runs, 2.0 * k * n * v,
                         dict(test="sign-flip", n=n, elements=v, n_perm=k, rows_per_resample=1))
    assert info["gemm_fraction"] > 0


@pytest.mark.benchmark(group="gemm_fraction")
def test_freedman_lane_gemm_fraction(benchmark, fl_problem):
    """Freedman-Lane GLM, 3 nuisance covariates + intercept: one effect and
    three nuisance rows per permutation (the constant row projects to zero
    under permutations and is not computed; ``rows_per_resample``).
    ``gemm_fraction_two_products`` counts ``4 K n V`` flops as
    ``recouple bench`` does."""
    y, design, perms = fl_problem
    R = rc.permutation.Resampling
    c = [1, 0, 0, 0, 0]
    runs = {b: (lambda b=b: rc.permutation.glm(y, design, c, resampling=R(permutations=perms, backend=b)))
            for b in ("numpy", "jax")}
    n, v, k = FL["n"], FL["v"], FL["k"]
    rows = 4
    info = _fraction_row(benchmark, runs, 2.0 * rows * k * n * v,
                         dict(test="freedman-lane", n=n, elements=v, n_perm=k, nuisance=3,
                              rows_per_resample=rows))
    benchmark.extra_info["gemm_fraction_two_products"] = info["gemm_fraction"] * 2 / rows
    assert info["gemm_fraction"] > 0
