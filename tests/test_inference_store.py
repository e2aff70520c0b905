"""Permutation GLM over a stored result, chunked over elements with Dask:
identical to the unchunked analysis for any chunk width and scheduler."""

from __future__ import annotations

import numpy as np
import pytest

import recouple as rc
from recouple.workflows.coupling import cohort_coupling
from recouple.workflows.inference import cohort_permutation
from recouple.exceptions import InputError, ShapeError
from recouple.permutation import Resampling


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    path = tmp_path_factory.mktemp("inf") / "c.h5"
    sim = rc.simulate.cohort(n_regions=30, n_patients=8, n_controls=8, control_sessions=1, seed=5)
    rc.store.from_simulated(sim, path).close()
    coup = cohort_coupling(path)
    scans = rc.store.read_table(path, "scans")
    x = np.column_stack([np.ones(len(scans)), (scans["group"] == "patient").to_numpy(float), scans["age"]])
    return path, coup, x


@pytest.mark.parametrize("width, scheduler", [(1, "sync"), (7, "threads"), (None, "threads"), (30, "sync")])
def test_chunked_equals_unchunked(store, width, scheduler):
    path, coup, x = store
    c = np.array([0.0, 1.0, 0.0])
    ref = rc.permutation.glm(coup.coupling, x, c, resampling=Resampling(n_perm=300, seed=3))
    res = cohort_permutation(path, coup.analysis, x, c, n_perm=300, seed=3, chunk_size=width,
                             scheduler=scheduler, name=f"perm_{width}_{scheduler}")
    np.testing.assert_allclose(res.statistic, np.ravel(ref.statistic), atol=1e-10)
    np.testing.assert_array_equal(res.pvalue, np.ravel(ref.pvalue))
    np.testing.assert_array_equal(res.pvalue_fwer, np.ravel(ref.pvalue_fwer))
    np.testing.assert_allclose(res.pvalue_fdr, np.ravel(ref.pvalue_fdr), atol=1e-12)
    np.testing.assert_allclose(res.null_max, np.ravel(ref.null_max), atol=1e-10)


def test_resume_skips_finished_chunks(store):
    path, coup, x = store
    c = np.array([0.0, 1.0, 0.0])
    a = cohort_permutation(path, coup.analysis, x, c, n_perm=100, seed=1, chunk_size=4, name="perm_resume")
    b = cohort_permutation(path, coup.analysis, x, c, n_perm=100, seed=1, chunk_size=4, name="perm_resume")
    assert a.n_computed == 8 and b.n_computed == 0 and b.n_skipped == 8
    np.testing.assert_array_equal(a.pvalue_fwer, b.pvalue_fwer)


def test_bad_input(store):
    path, coup, x = store
    with pytest.raises(InputError, match="result must be one of"):
        cohort_permutation(path, "nope", x, [0, 1, 0])
    with pytest.raises(ShapeError, match="design must be"):
        cohort_permutation(path, coup.analysis, x[:-1], [0, 1, 0])
    with pytest.raises(ShapeError, match="contrast must have 3"):
        cohort_permutation(path, coup.analysis, x, [0, 1])


def test_chunk_elements_is_a_deprecated_spelling_of_chunk_size(store):
    path, coup, x = store
    c = np.array([0.0, 1.0, 0.0])
    with pytest.warns(DeprecationWarning, match="chunk_size"):
        a = cohort_permutation(path, coup.analysis, x, c, n_perm=50, seed=1, chunk_elements=4, name="perm_old")
    b = cohort_permutation(path, coup.analysis, x, c, n_perm=50, seed=1, chunk_size=4, name="perm_new")
    np.testing.assert_array_equal(a.pvalue, b.pvalue)
    with pytest.raises(InputError, match="chunk_size only"):
        cohort_permutation(path, coup.analysis, x, c, n_perm=50, chunk_size=4, chunk_elements=4, name="perm_x")
