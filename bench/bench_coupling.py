"""Coupling benchmarks: nodal vs a scipy.spearmanr loop, communication vs per-node statsmodels.

Small sizes by default; RECOUPLE_BENCH=full runs the issue's sizes (1000 x 400 nodal,
200 x 400 communication). Peers are timed on a few subjects and extrapolated linearly in
the number of subjects (stated in extra_info).
RECOUPLE_BENCH_SUBJECTS=<k> runs communication at full size on k subjects instead of 200."""

from __future__ import annotations

import os
import time

import numpy as np
import pytest
from scipy import stats

import recouple as rc

FULL = os.environ.get("RECOUPLE_BENCH") == "full"
N = 400 if FULL else 100
S_NODAL = 1000 if FULL else 40
S_COMM = int(os.environ.get("RECOUPLE_BENCH_SUBJECTS", 200)) if FULL else 6
PEER_SUBJECTS = 20 if FULL else 4


def _cohort(s, n):
    return rc.simulate.cohort(n_regions=n, n_patients=s // 2, n_controls=0, seed=0)


@pytest.fixture(scope="module")
def nodal_data():
    c = _cohort(S_NODAL, N)
    return c.sc, c.fc


@pytest.mark.benchmark(group="nodal")
@pytest.mark.parametrize("backend", ["numpy", "jax"])
def test_nodal(benchmark, nodal_data, backend):
    sc, fc = nodal_data
    rc.coupling.nodal(sc, fc, backend=backend)  # compile the batch shapes, warm caches
    benchmark.extra_info.update(subjects=sc.shape[0], regions=N, backend=backend, batch="default")
    benchmark.pedantic(lambda: rc.coupling.nodal(sc, fc, backend=backend), rounds=3, iterations=1)


@pytest.mark.benchmark(group="nodal")
def test_nodal_scipy_loop(benchmark, nodal_data):
    sc, fc = nodal_data

    def loop():
        for s in range(PEER_SUBJECTS):
            for i in range(N):
                j = sc[s, i] != 0
                j[i] = False
                stats.spearmanr(sc[s, i, j], fc[s, i, j])

    # best of 3 on both sides (this machine's timings vary by ~20% run to run)
    benchmark.pedantic(loop, rounds=3, iterations=1)
    extrapolated = benchmark.stats.stats.min * sc.shape[0] / PEER_SUBJECTS
    benchmark.extra_info.update(subjects_timed=PEER_SUBJECTS, subjects=sc.shape[0], regions=N,
                                extrapolated_seconds=extrapolated, note="timed on subjects_timed, scaled linearly")


@pytest.fixture(scope="module")
def comm_data():
    c = _cohort(S_COMM, N)
    return c.sc, c.fc, c.centroids


@pytest.fixture(scope="module")
def comm_predictors(comm_data):
    sc, fc, xyz = comm_data
    x = rc.coupling._k.communication_predictors(sc, xyz, **rc.graph.kernel_routes("numpy"))
    # what a user passes: one (N, N) distance matrix, per-subject graph predictors
    return {"distance": x[0, 0], "path_length": x[:, 1], "communicability": x[:, 2]}


def _time_communication(benchmark, sc, fc, backend, label, **kw):
    rc.coupling.communication(sc, fc, backend=backend, **kw)  # compile the shapes
    benchmark.extra_info.update(subjects=sc.shape[0], regions=N, backend=backend, predictors=label)
    benchmark.pedantic(lambda: rc.coupling.communication(sc, fc, backend=backend, **kw), rounds=1, iterations=1)


@pytest.mark.benchmark(group="communication")
@pytest.mark.parametrize("backend", ["numpy", "jax"])
def test_communication_fit(benchmark, comm_data, comm_predictors, backend):
    """The per-node regressions alone (predictors given): the same work as the
    statsmodels loop below."""
    sc, fc, _ = comm_data
    _time_communication(benchmark, sc, fc, backend, "distance,path_length,communicability (precomputed)",
                        predictors=comm_predictors)


@pytest.mark.benchmark(group="communication")
@pytest.mark.parametrize("backend", ["numpy", "jax"])
def test_communication(benchmark, comm_data, backend):
    """Predictors computed from SC, then the regressions."""
    sc, fc, xyz = comm_data
    _time_communication(benchmark, sc, fc, backend, "distance,path_length,communicability", coords=xyz)


@pytest.mark.benchmark(group="communication")
def test_communication_statsmodels_per_node(benchmark, comm_data, comm_predictors):
    """Per-node statsmodels OLS on the same precomputed predictors (compare with
    test_communication_fit)."""
    sm = pytest.importorskip("statsmodels.api")
    sc, fc, xyz = comm_data
    n_timed = max(1, PEER_SUBJECTS // 10)
    x = rc.coupling._k.communication_predictors(sc[:n_timed], xyz, **rc.graph.kernel_routes("numpy"))

    def loop():
        t = time.perf_counter()
        for s in range(n_timed):
            for i in range(N):
                rows = np.arange(N) != i
                sm.OLS(fc[s, rows, i], sm.add_constant(x[s][:, rows, i].T)).fit().rsquared_adj
        return (time.perf_counter() - t) * sc.shape[0] / n_timed

    extrapolated = benchmark.pedantic(loop, rounds=1, iterations=1)
    benchmark.extra_info.update(subjects_timed=n_timed, subjects=sc.shape[0], regions=N,
                                extrapolated_seconds=extrapolated,
                                note="OLS fits only (predictors precomputed), scaled linearly")


@pytest.mark.benchmark(group="communication")
def test_communication_netneurotools_statsmodels(benchmark, comm_data):
    """The whole per-subject workflow with peers (compare with test_communication):
    netneurotools path length and communicability, then per-node statsmodels."""
    sm = pytest.importorskip("statsmodels.api")
    nm = pytest.importorskip("netneurotools.metrics")
    import warnings

    sc, fc, xyz = comm_data
    n_timed = max(1, PEER_SUBJECTS // 10)
    dist = np.sqrt(((xyz[:, None] - xyz[None]) ** 2).sum(-1))

    def loop():
        t = time.perf_counter()
        with warnings.catch_warnings(), np.errstate(divide="ignore"):
            warnings.simplefilter("ignore")
            for s in range(n_timed):
                w = sc[s]
                spl = nm.distance_wei_floyd(-np.log(w / (w.max() + 1)))[0]
                cmc = nm.communicability_wei(w)
                for i in range(N):
                    rows = np.arange(N) != i
                    x = np.column_stack([dist[rows, i], spl[rows, i], cmc[rows, i]])
                    sm.OLS(fc[s, rows, i], sm.add_constant(x)).fit().rsquared_adj
        return (time.perf_counter() - t) * sc.shape[0] / n_timed

    extrapolated = benchmark.pedantic(loop, rounds=1, iterations=1)
    benchmark.extra_info.update(subjects_timed=n_timed, subjects=sc.shape[0], regions=N,
                                extrapolated_seconds=extrapolated,
                                note="netneurotools predictors + per-node statsmodels, scaled linearly")
