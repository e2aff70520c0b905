"""Voxel-to-voxel coupling (Fotiadis 2023): throughput in voxels/s per backend,
the matrix-multiply share of the time, and a per-voxel scipy loop for scale.

One chunk of C voxels: FC rows ``Z_chunk @ Z_all.T / (T-1)`` (the GEMM),
gathered at the CSR structural non-zeros, then masked Spearman per row.
Full size (RECOUPLE_BENCH=full): V = 50,000 voxels, T = 300, C = 1,000,
K = 256 structural non-zeros per row. The scipy loop runs on 50 voxels.

``test_fc_modes``: voxels/s of the dense (GEMM of whole FC rows) and the
sampled (one dot product per structural non-zero) FC paths at structural
densities 0.1%, 0.512% (256 of 50,000), 1%, 10% and 100% of V, through
:func:`recouple.engine.voxel.chunk_coupling` (what a store run calls per
chunk), plus the path ``fc_mode="auto"`` takes. Chunks hold at most 2**21
structural entries (C = 1,000 rows at low densities, fewer at high ones);
voxels/s is per row, so the figures compare across chunk sizes.

``gemm_fraction`` (extra info of ``test_voxel_to_voxel``; ``python
bench/bench_voxel.py --fraction``): the kernel's useful flops (2 C V T) per
second over this machine's float64 GEMM rate (a 2048 x 2048 product, as
``recouple bench``), both timed in alternation, round by round, so that on a
shared machine both meet the same load; the best of each and the median of
the per-round ratios are reported.

Peak memory of a whole store run (V = 50,000, T = 300, 1,000-voxel chunks):
``python bench/bench_voxel.py --rss [--voxels 50000 --timepoints 300 --chunk 1000]``
builds a one-scan store in a temporary folder (in a separate process) and
reports the peak RSS of a second process that runs the analysis.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

from conftest import size

V = size(5000, 50000)
T = size(100, 300)
C = size(500, 1000)
K = size(64, 256)
N_LOOP = 50


def _csr(v, k, seed=0):
    rng = np.random.default_rng(seed)
    cols = np.sort(rng.integers(0, v, size=(v, k)), axis=1)
    indptr = np.arange(v + 1, dtype=np.int64) * k
    return rng.lognormal(size=v * k), cols.ravel(), indptr


@pytest.fixture(scope="module")
def data():
    from recouple.kernels.voxel import standardize_timeseries

    rng = np.random.default_rng(0)
    x = rng.standard_normal((V, T)) + 0.3 * rng.standard_normal(T)
    z = standardize_timeseries(x)
    values, cols, _ = _csr(V, K)
    rows = np.arange(C)
    return z, values.reshape(V, K)[:C], cols.reshape(V, K)[:C], np.ones((C, K), bool), rows


def _timed(fn, be, repeats=3):
    be.synchronize(fn())
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        be.synchronize(fn())
        best = min(best, time.perf_counter() - t0)
    return best


@pytest.mark.benchmark(group="voxel_to_voxel_coupling")
def test_voxel_to_voxel(benchmark, data, backend):
    from recouple.engine.backend import get_backend
    from recouple.kernels.voxel import fc_rows, voxel_to_voxel_coupling

    be = get_backend(backend)
    z, vals, cols, valid, rows = (be.to_device(a) for a in data)
    kernel = be.compile(voxel_to_voxel_coupling, static_argnames=("method", "edges", "min_edges"))
    gemm = be.compile(fc_rows)
    zc = z[:C]

    def run():
        r, n = kernel(zc, z, vals, cols, valid, rows, method="spearman", edges="both_nonzero", min_edges=3)
        return be.synchronize(r)

    run()  # warm up / compile
    gemm_s = _timed(lambda: gemm(zc, z), be)
    benchmark.pedantic(run, rounds=3, iterations=1)
    total = benchmark.stats.stats.min
    frac = gemm_fraction(backend, data=data, rounds=3)
    benchmark.extra_info.update(
        backend=backend, device=be.device, dtype="float64", n_voxels=V, n_timepoints=T, chunk=C, nnz_per_row=K,
        voxels_per_s=C / total, gemm_s=gemm_s, matmul_share=gemm_s / total, gemm_fraction=frac["best"],
        gemm_fraction_median=frac["median"],
    )


def gemm_fraction(backend="numpy", *, data=None, rounds=5, gemm_n=2048):
    """The voxel kernel's GEMM fraction with the reference GEMM timed in alternation.

    Per round: one ``gemm_n``-square float64 product, then one call of the
    kernel (Spearman, ``both_nonzero``, dense FC) on ``data`` (the module's
    fixture layout; default V, T, C, K of this module). Returns the best-of
    fraction (best kernel time against best GEMM time), the median of the
    per-round fractions, and the times.
    """
    from recouple.engine.backend import get_backend
    from recouple.kernels.voxel import standardize_timeseries, voxel_to_voxel_coupling

    be = get_backend(backend)
    if data is None:
        rng = np.random.default_rng(0)
        z = standardize_timeseries(rng.standard_normal((V, T)) + 0.3 * rng.standard_normal(T))
        values, cols, _ = _csr(V, K)
        data = (z, values.reshape(V, K)[:C], cols.reshape(V, K)[:C], np.ones((C, K), bool), np.arange(C))
    z, vals, cols, valid, rows = (be.to_device(a) for a in data)
    c = cols.shape[0]
    v, t = z.shape
    kernel = be.compile(voxel_to_voxel_coupling, static_argnames=("method", "edges", "min_edges"))
    rng = np.random.default_rng(1)
    a, b = (be.to_device(rng.standard_normal((gemm_n, gemm_n))) for _ in range(2))
    matmul = be.compile(lambda x, y: x @ y)

    def run():
        return kernel(z[:c], z, vals, cols, valid, rows, method="spearman", edges="both_nonzero", min_edges=3)[0]

    be.synchronize(run())
    be.synchronize(matmul(a, b))
    gemm_s, kernel_s = [], []
    for _ in range(rounds):
        t0 = time.perf_counter()
        be.synchronize(matmul(a, b))
        gemm_s.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        be.synchronize(run())
        kernel_s.append(time.perf_counter() - t0)
    flops = 2.0 * c * v * t
    ref = 2.0 * gemm_n**3
    per_round = [(flops / k) / (ref / g) for g, k in zip(gemm_s, kernel_s)]
    return {"best": (flops / min(kernel_s)) / (ref / min(gemm_s)), "median": float(np.median(per_round)),
            "per_round": per_round, "kernel_s": kernel_s, "gemm_s": gemm_s, "backend": be.name,
            "size": f"{c} voxels of V = {v}, T = {t}, {cols.shape[1]} non-zeros a row"}


@pytest.mark.benchmark(group="voxel_to_voxel_coupling")
def test_voxel_to_voxel_scipy_loop(benchmark, data):
    from scipy import stats

    z, vals, cols, _, _ = data

    def loop():
        out = np.empty(N_LOOP)
        for i in range(N_LOOP):
            f = z[i] @ z.T / (T - 1)
            keep = (cols[i] != i) & (f[cols[i]] != 0)
            out[i] = stats.spearmanr(vals[i, keep], f[cols[i]][keep])[0]
        return out

    benchmark.pedantic(loop, rounds=1, iterations=1)
    benchmark.extra_info.update(backend="scipy-loop", n_voxels=V, n_timepoints=T, voxels=N_LOOP,
                                voxels_per_s=N_LOOP / benchmark.stats.stats.min)


DENSITIES = (0.001, 0.00512, 0.01, 0.1, 1.0)  # 0.512%: 256 of V = 50,000
ENTRIES_PER_CHUNK = 2**21


@pytest.fixture(scope="module")
def mode_data():
    from recouple.engine.voxel import synthetic_chunk

    cache = {}

    def get(density):
        if density not in cache:
            cache.clear()  # one density's arrays at a time
            k = max(1, round(density * V))
            c = int(min(C, max(16, ENTRIES_PER_CHUNK // k)))
            cache[density] = synthetic_chunk(V, T, c, density, seed=0)
        return cache[density]

    return get


@pytest.mark.benchmark(group="voxel_fc_modes")
@pytest.mark.parametrize("fc_mode", ["dense", "sampled", "auto"])
@pytest.mark.parametrize("density", DENSITIES)
def test_fc_modes(benchmark, mode_data, backend, density, fc_mode):
    from recouple.engine.voxel import chunk_coupling, fc_rates

    z, vals, cols, valid, rows = mode_data(density)
    c = cols.shape[0]
    taken = []

    def run():
        r, _, mode = chunk_coupling(z[:c], z, vals, cols, valid, rows, method="spearman", edges="both_nonzero",
                                    min_edges=3, fc_mode=fc_mode, backend=backend)
        taken.append(mode)
        return r

    run()  # warm up / compile / measure the rates
    benchmark.pedantic(run, rounds=3 if density < 0.5 else 1, iterations=1)
    dense_rate, sampled_rate = fc_rates(backend, T)
    benchmark.extra_info.update(
        backend=backend, dtype="float64", n_voxels=V, n_timepoints=T, chunk=c, nnz_per_row=cols.shape[1],
        density=density, fc_mode=fc_mode, mode=taken[-1], voxels_per_s=c / benchmark.stats.stats.min,
        dense_rate_mac_s=dense_rate, sampled_rate_mac_s=sampled_rate, crossover_density=sampled_rate / dense_rate,
    )


# ----------------------------------------------------------------------------- peak RSS of a store run

_BUILD = """
import sys, numpy as np, recouple as rc
sys.path.insert(0, {bench!r})
from bench_voxel import _csr
v, t, k, path = {v}, {t}, {k}, {path!r}
scans = {{"scan_id": ["s1"], "subject": ["s1"], "session": ["1"], "group": ["all"]}}
st = rc.store.create(path, scans=scans, labels=["L_a", "R_a"])
mask = np.zeros((64, 64, 64), bool); mask.flat[:v] = True
st.write_voxel_mask(mask, np.eye(4))
rng = np.random.default_rng(0)
st.write_array("voxel/bold", (rng.standard_normal((1, v, t)) + 0.3 * rng.standard_normal(t)).astype(np.float32))
data, indices, indptr = _csr(v, k)
st.write_voxel_sc(0, data, indices, indptr)
st.close()
"""

_RUN = """
import resource, time, json
from recouple.workflows.coupling import cohort_coupling
t0 = time.perf_counter()
res = cohort_coupling({path!r}, level="voxel", chunk_size={chunk}, memory_limit={limit!r})
wall = time.perf_counter() - t0
print(json.dumps({{"peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "wall_s": wall, "voxels_per_s": res.coupling.size / wall,
                  "defined": int((~res.undefined).sum())}}))
"""


def measure_rss(voxels=50000, timepoints=300, chunk=1000, nnz=256, memory_limit="4GB"):
    import json
    import os
    import subprocess
    import sys
    import tempfile

    bench = os.path.dirname(os.path.abspath(__file__))
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "voxels.h5")
        subprocess.run([sys.executable, "-c", _BUILD.format(bench=bench, v=voxels, t=timepoints, k=nnz, path=path)],
                       check=True)
        env = dict(os.environ, RECOUPLE_PROGRESS="0")
        out = subprocess.run([sys.executable, "-c", _RUN.format(path=path, chunk=chunk, limit=memory_limit)],
                             check=True, capture_output=True, text=True, env=env)
        result = json.loads(out.stdout.strip().splitlines()[-1])
    result.update(voxels=voxels, timepoints=timepoints, chunk=chunk, nnz_per_row=nnz, memory_limit=memory_limit)
    return result


if __name__ == "__main__":
    import argparse

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rss", action="store_true", help="measure peak RSS of a store run")
    p.add_argument("--voxels", type=int, default=50000)
    p.add_argument("--timepoints", type=int, default=300)
    p.add_argument("--chunk", type=int, default=1000)
    p.add_argument("--nnz", type=int, default=256)
    p.add_argument("--memory-limit", default="4GB")
    p.add_argument("--fraction", action="store_true",
                   help="GEMM fraction of the dense voxel kernel (V = 50,000, T = 300, C = 1,000, K = 256), "
                        "the reference GEMM timed in alternation")
    p.add_argument("--backend", default="numpy")
    p.add_argument("--rounds", type=int, default=5)
    a = p.parse_args()
    if a.rss:
        print(measure_rss(a.voxels, a.timepoints, a.chunk, a.nnz, a.memory_limit))
    if a.fraction:
        V, T, C, K = 50000, 300, 1000, 256
        f = gemm_fraction(a.backend, rounds=a.rounds)
        print(f"{f['backend']}: {f['size']}: GEMM fraction best {100 * f['best']:.0f}%, median of rounds "
              f"{100 * f['median']:.0f}% (rounds: {', '.join(f'{100 * x:.0f}%' for x in f['per_round'])}; "
              f"kernel best {min(f['kernel_s']):.3f} s, GEMM best {min(f['gemm_s']):.3f} s)")
