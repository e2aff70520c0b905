"""Host (NumPy) batches on several threads: same results for any thread count."""

from __future__ import annotations

import numpy as np
import pytest

import recouple as rc
from recouple.engine.dispatch import call_batched, host_thread_count
from recouple.exceptions import InputError


def test_thread_count_from_environment(monkeypatch):
    monkeypatch.setenv("RECOUPLE_NUM_THREADS", "3")
    assert host_thread_count() == 3
    monkeypatch.delenv("RECOUPLE_NUM_THREADS")
    assert host_thread_count() >= 1
    for bad in ("0", "-2", "two", "1.5"):
        monkeypatch.setenv("RECOUPLE_NUM_THREADS", bad)
        with pytest.raises(InputError, match="RECOUPLE_NUM_THREADS must be a positive integer"):
            host_thread_count()


def test_threaded_batches_keep_order(monkeypatch):
    x = np.arange(23.0).reshape(23, 1)

    def kernel(a):
        return a * 2, a[:, 0] + 1

    monkeypatch.setenv("RECOUPLE_NUM_THREADS", "4")
    doubled, plus = call_batched(kernel, x, batch_size=3, host_threads=True)
    np.testing.assert_array_equal(doubled, x * 2)
    np.testing.assert_array_equal(plus, x[:, 0] + 1)


@pytest.mark.parametrize("threads", ["1", "2", "3"])
def test_kernels_identical_for_any_thread_count(monkeypatch, threads):
    coh = rc.simulate.cohort(n_regions=40, n_patients=5, n_controls=0, seed=4)
    monkeypatch.setenv("RECOUPLE_NUM_THREADS", "1")
    ref = (rc.coupling.nodal(coh.sc, coh.fc, batch_size=1).coupling,
           rc.coupling.communication(coh.sc, coh.fc, coords=coh.centroids, batch_size=1).r2_adj,
           rc.graph.search_information(coh.sc, batch_size=1))
    monkeypatch.setenv("RECOUPLE_NUM_THREADS", threads)
    for bs in (None, 2, 3):
        out = (rc.coupling.nodal(coh.sc, coh.fc, batch_size=bs).coupling,
               rc.coupling.communication(coh.sc, coh.fc, coords=coh.centroids, batch_size=bs).r2_adj,
               rc.graph.search_information(coh.sc, batch_size=bs))
        for a, b in zip(out, ref):
            np.testing.assert_array_equal(a, b)


def test_spins_identical_for_any_thread_count(monkeypatch):
    rng = np.random.default_rng(0)
    p = rng.standard_normal((1200, 3))
    p = 100 * p / np.linalg.norm(p, axis=1, keepdims=True)
    hemi = np.repeat([0, 1], 600)
    c = p[:80] / np.linalg.norm(p[:80], axis=1, keepdims=True)
    out = {}
    for threads in ("1", "2"):
        monkeypatch.setenv("RECOUPLE_NUM_THREADS", threads)
        out[threads] = [rc.nulls.spin_permutations(p, hemi=hemi, n_perm=40, seed=1, batch_size=7)]
        out[threads] += [rc.nulls.spin_permutations(c, hemi=hemi[::15][:80], n_perm=30, seed=2, method=m)
                         for m in ("vasa", "hungarian")]
    for a, b in zip(out["1"], out["2"]):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("defect", ["asymmetric", "negative", "nan"])
def test_stack_validation_on_threads_finds_one_bad_matrix(monkeypatch, defect):
    # 9 matrices of 480 x 480 (16.6 MB): checked one matrix at a time on threads
    monkeypatch.setenv("RECOUPLE_NUM_THREADS", "2")
    rng = np.random.default_rng(1)
    w = rng.random((9, 480, 480))
    w = w + np.swapaxes(w, 1, 2)
    from recouple.engine.dispatch import host_map
    from recouple.validation import weight_stack

    calls = []

    def mapper(fn, items):  # the public API passes host_map
        calls.append(len(items))
        return host_map(fn, items)

    assert weight_stack("sc", w, mapper=mapper) is not None
    assert calls == [9]
    bad = w.copy()
    if defect == "asymmetric":
        bad[8, 3, 5] += 1.0
    elif defect == "negative":
        bad[8, 3, 5] = bad[8, 5, 3] = -1.0
    else:
        bad[8, 3, 5] = bad[8, 5, 3] = np.nan
    with pytest.raises(InputError, match={"asymmetric": "symmetric", "negative": "non-negative",
                                          "nan": "finite"}[defect]):
        weight_stack("sc", bad, mapper=mapper)
    with pytest.raises(InputError, match={"asymmetric": "symmetric", "negative": "non-negative",
                                          "nan": "finite"}[defect]):
        rc.graph.prepare_weights(bad)
