"""Predictor benchmarks: weighted shortest paths + communicability + search information,
batched, against netneurotools per subject. RECOUPLE_BENCH=full: 200 subjects x 400 regions;
the peer is timed on a few subjects and extrapolated linearly (stated in extra_info).
RECOUPLE_BENCH_SUBJECTS=<k> runs the full region count on k subjects instead of 200."""

from __future__ import annotations

import os
import time
import warnings

import numpy as np
import pytest

import recouple as rc

FULL = os.environ.get("RECOUPLE_BENCH") == "full"
N = 400 if FULL else 80
S = int(os.environ.get("RECOUPLE_BENCH_SUBJECTS", 200)) if FULL else 8
PEER_SUBJECTS = 2


@pytest.fixture(scope="module")
def graphs():
    return rc.simulate.cohort(n_regions=N, n_patients=S // 2, n_controls=0, seed=0).sc


def _ours(w, backend):
    paths = rc.graph.shortest_paths(w, backend=backend, batch_size=4)
    si = rc.graph.search_information(w, paths=paths, backend=backend, batch_size=4)
    cmc = rc.graph.communicability(w, backend=backend, batch_size=4)
    return paths.length, si, cmc


@pytest.mark.benchmark(group="predictors")
@pytest.mark.parametrize("backend", ["numpy", "jax"])
def test_predictors(benchmark, graphs, backend):
    _ours(graphs[:4], backend)  # compile the batch shape
    benchmark.extra_info.update(subjects=graphs.shape[0], regions=N, backend=backend,
                                measures="path_length(neglog)+search_information+communicability(weighted)")
    benchmark.pedantic(lambda: _ours(graphs, backend), rounds=1, iterations=1)


@pytest.mark.benchmark(group="predictors")
def test_predictors_netneurotools(benchmark, graphs):
    nm = pytest.importorskip("netneurotools.metrics")

    def loop():
        t = time.perf_counter()
        with warnings.catch_warnings(), np.errstate(divide="ignore"):
            warnings.simplefilter("ignore")
            for w in graphs[:PEER_SUBJECTS]:
                length = -np.log(w / (w.max() + 1))
                nm.distance_wei_floyd(length)
                nm.search_information(w, length)
                nm.communicability_wei(w)
        return (time.perf_counter() - t) * graphs.shape[0] / PEER_SUBJECTS

    extrapolated = benchmark.pedantic(loop, rounds=1, iterations=1)
    benchmark.extra_info.update(subjects_timed=PEER_SUBJECTS, subjects=graphs.shape[0], regions=N,
                                extrapolated_seconds=extrapolated, note="timed on subjects_timed, scaled linearly")
