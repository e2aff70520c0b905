"""Nodal coupling (Baum 2020): batched kernel per backend vs a scipy.stats.spearmanr loop.

Full size (RECOUPLE_BENCH=full): 200 subjects x 400 regions; the scipy loop is
timed on 10 subjects and reported per subject (``extra_info["per_subject_s"]``).
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.stats as ss

import recouple as rc

from conftest import size

N_SUBJECTS = size(20, 200)
N_REGIONS = size(100, 400)
N_LOOP = size(3, 10)


@pytest.fixture(scope="module")
def data():
    sim = rc.simulate.cohort(n_regions=N_REGIONS, n_patients=N_SUBJECTS // 2, n_controls=0, seed=0)
    return sim.sc[:N_SUBJECTS], sim.fc[:N_SUBJECTS]


def scipy_loop(sc, fc):
    out = np.full(sc.shape[:2], np.nan)
    for s in range(sc.shape[0]):
        for i in range(sc.shape[1]):
            j = np.nonzero(sc[s, i])[0]
            j = j[j != i]
            if j.size >= 3:
                out[s, i] = ss.spearmanr(sc[s, i, j], fc[s, i, j])[0]
    return out


@pytest.mark.benchmark(group="nodal_coupling")
def test_nodal_recouple(benchmark, data, backend):
    sc, fc = data
    rc.coupling.nodal(sc[:2], fc[:2], backend=backend)  # warm up / compile a batch shape
    res = benchmark.pedantic(lambda: rc.coupling.nodal(sc, fc, backend=backend), rounds=3, iterations=1)
    benchmark.extra_info.update(
        backend=backend, n_subjects=sc.shape[0], n_regions=sc.shape[1],
        per_subject_s=benchmark.stats.stats.min / sc.shape[0],
    )
    assert res.coupling.shape == sc.shape[:2]


@pytest.mark.benchmark(group="nodal_coupling")
def test_nodal_scipy_loop(benchmark, data):
    sc, fc = data
    out = benchmark.pedantic(lambda: scipy_loop(sc[:N_LOOP], fc[:N_LOOP]), rounds=1, iterations=1)
    benchmark.extra_info.update(
        backend="scipy-loop", n_subjects=N_LOOP, n_regions=sc.shape[1],
        per_subject_s=benchmark.stats.stats.min / N_LOOP,
    )
    assert np.isfinite(out).any()
