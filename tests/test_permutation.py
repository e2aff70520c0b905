"""Designs, resampling schemes and corrections of recouple.permutation."""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pytest
from scipy import stats

import recouple as rc
from recouple.exceptions import InputError, ShapeError
from recouple.permutation import Resampling

perm = rc.permutation


# ----------------------------------------------------------------------------- nilearn replay
def _nilearn_job_seeds(random_state, n_perm, n_jobs):
    rng = np.random.RandomState(random_state)
    chunks = np.asarray([n_perm / n_jobs] * n_jobs, dtype=int)
    chunks[-1] += n_perm % n_jobs
    return [(int(rng.randint(1, np.iinfo(np.int32).max - 1)), int(k)) for k in chunks]


def _nilearn_signs(random_state, n_perm, n, n_jobs):
    """The sign vectors nilearn's permuted_ols applies (its flips accumulate within a job)."""
    rows = []
    for seed, k in _nilearn_job_seeds(random_state, n_perm, n_jobs):
        r = np.random.RandomState(seed)
        cur = np.ones(n)
        for _ in range(k):
            cur = cur * (r.randint(2, size=(n, 1)) * 2 - 1)[:, 0]
            rows.append(cur.copy())
    return np.array(rows)


def _nilearn_permutations(random_state, n_perm, n, n_jobs):
    """Data-row permutations equivalent to nilearn's accumulated shuffles of the tested variable."""
    rows = []
    for seed, k in _nilearn_job_seeds(random_state, n_perm, n_jobs):
        r = np.random.RandomState(seed)
        cur = np.arange(n)
        for _ in range(k):
            cur = cur[r.permutation(n)]
            rows.append(np.argsort(cur))  # x[cur] against y == x against y[argsort(cur)]
    return np.array(rows)


@pytest.mark.peer
@pytest.mark.parametrize("n_jobs", [2])
def test_signflip_matches_nilearn_permuted_ols(n_jobs):
    mu = pytest.importorskip("nilearn.mass_univariate")
    cohort = rc.simulate.cohort(n_regions=40, n_patients=20, n_controls=4, seed=1)
    iu = np.triu_indices(40, 1)
    sess = cohort.scans["session"]
    pat = cohort.scans["group"] == "patient"
    d = cohort.fc[pat & (sess == "post")][:, iu[0], iu[1]] - cohort.fc[pat & (sess == "pre")][:, iu[0], iu[1]]
    n = d.shape[0]
    out = mu.permuted_ols(np.ones((n, 1)), d, n_perm=200, random_state=7, n_jobs=n_jobs, output_type="dict",
                          verbose=0)
    signs = _nilearn_signs(7, 200, n, n_jobs)
    res = perm.one_sample(d, resampling=Resampling(signs=signs))
    np.testing.assert_allclose(res.statistic, out["t"][0], atol=1e-10)
    np.testing.assert_allclose(res.null_max, out["h0_max_t"][0], rtol=1e-10)
    np.testing.assert_allclose(res.pvalue_fwer, 10 ** -out["logp_max_t"][0], rtol=1e-10)


@pytest.mark.peer
def test_permutation_matches_nilearn_permuted_ols():
    mu = pytest.importorskip("nilearn.mass_univariate")
    cohort = rc.simulate.cohort(n_regions=30, n_patients=18, n_controls=4, seed=2)
    iu = np.triu_indices(30, 1)
    pre = (cohort.scans["session"] == "pre") & (cohort.scans["group"] == "patient")
    y = cohort.fc[pre][:, iu[0], iu[1]]
    x = cohort.scans["hamd"][pre]
    n = y.shape[0]
    out = mu.permuted_ols(x[:, None], y, n_perm=150, random_state=3, n_jobs=1, output_type="dict", verbose=0)
    perms = _nilearn_permutations(3, 150, n, 1)
    res = perm.glm(y, np.column_stack([x, np.ones(n)]), [1, 0], resampling=Resampling(permutations=perms))
    np.testing.assert_allclose(res.statistic, out["t"][0], atol=1e-10)
    np.testing.assert_allclose(res.null_max, out["h0_max_t"][0], rtol=1e-10)
    np.testing.assert_allclose(res.pvalue_fwer, 10 ** -out["logp_max_t"][0], rtol=1e-10)


# ----------------------------------------------------------------------------- enumeration
def test_signflip_enumeration_is_exact(rng):
    n = 7
    y = rng.normal(size=(n, 4)) + 0.4
    with pytest.warns(UserWarning, match="enumerated"):
        res = perm.one_sample(y, resampling=Resampling(n_perm=1000))
    assert res.exhaustive and res.n_perm == 2**n - 1
    assert len({tuple(s) for s in res.signs}) == 2**n - 1
    all_signs = np.array(list(itertools.product([1.0, -1.0], repeat=n)))
    t_all = stats.ttest_1samp(all_signs[:, :, None] * y[None], 0, axis=1).statistic
    exact = (np.abs(t_all) >= np.abs(res.statistic) - 1e-12).mean(0)
    np.testing.assert_allclose(res.pvalue, exact, atol=1e-12)


def test_permutation_enumeration_is_exact(rng):
    a, b = rng.normal(size=(3, 2)), rng.normal(size=(3, 2)) + 1
    with pytest.warns(UserWarning, match="720"):
        res = perm.two_sample(a, b, resampling=Resampling(n_perm=5000))
    y = np.vstack([a, b])
    t_all = np.array([stats.ttest_ind(y[list(p)[:3]], y[list(p)[3:]]).statistic
                      for p in itertools.permutations(range(6))])
    exact = (np.abs(t_all) >= np.abs(res.statistic) - 1e-12).mean(0)
    np.testing.assert_allclose(res.pvalue, exact, atol=1e-12)


# ----------------------------------------------------------------------------- blocks
def test_within_block_permutations_keep_blocks():
    blocks = np.repeat([0, 1, 2], [4, 5, 3])
    p = perm.permutation_matrix(12, n_perm=200, seed=0, exchangeability_blocks=blocks)
    assert (blocks[p] == blocks[None, :]).all()
    assert (p != np.arange(12)).any(axis=1).mean() > 0.9


def test_whole_block_permutations_move_blocks_intact():
    blocks = np.repeat(np.arange(5), 2)
    p = perm.permutation_matrix(10, n_perm=100, seed=1, exchangeability_blocks=blocks, whole_blocks=True)
    pairs = p.reshape(100, 5, 2)
    assert (pairs[:, :, 1] == pairs[:, :, 0] + 1).all() and (pairs[:, :, 0] % 2 == 0).all()
    s = perm.sign_flip_matrix(10, n_perm=50, seed=1, exchangeability_blocks=blocks, whole_blocks=True)
    assert (s[:, ::2] == s[:, 1::2]).all()


def test_draws_independent_of_batch():
    a = perm.permutation_matrix(9, n_perm=30, seed=4)
    b = perm.permutation_matrix(9, n_perm=10, seed=4, start=20)
    np.testing.assert_array_equal(a[20:], b)
    s = perm.sign_flip_matrix(9, n_perm=30, seed=4)
    np.testing.assert_array_equal(s[5:8], perm.sign_flip_matrix(9, n_perm=3, seed=4, start=5))


def test_block_errors(rng):
    y = rng.normal(size=(6, 3))
    with pytest.raises(InputError, match="equal size"):
        perm.two_sample(y[:3], y[3:],
                        resampling=Resampling(exchangeability_blocks=[0, 0, 1, 1, 1, 2], whole_blocks=True, n_perm=10))
    with pytest.raises(InputError, match="no resample but the identity"):
        perm.two_sample(y[:3], y[3:], resampling=Resampling(exchangeability_blocks=np.arange(6), n_perm=10))
    with pytest.raises(ShapeError, match="one block label per scan"):
        perm.two_sample(y[:3], y[3:], resampling=Resampling(exchangeability_blocks=[0, 1], n_perm=10))


# ----------------------------------------------------------------------------- null uniformity
def _assert_uniform(p, n_perm):
    # p is discrete on {1..K+1}/(K+1): compare to U(0,1) allowing the grid,
    # and the rejection rate at 0.05 to its binomial spread.
    p = np.asarray(p).ravel()
    assert stats.kstest(p - 0.5 / (n_perm + 1), "uniform").pvalue > 0.001
    assert abs(np.mean(p <= 0.05) - 0.05) < 4 * np.sqrt(0.05 * 0.95 / p.size)


def test_signflip_null_pvalues_uniform():
    rng = np.random.default_rng(0)
    # 400 independent null datasets (columns), symmetric but non-normal errors.
    y = rng.standard_t(3, size=(10, 400))
    res = perm.one_sample(y, resampling=Resampling(n_perm=199, seed=1))
    _assert_uniform(res.pvalue, 199)


def test_within_block_null_pvalues_uniform():
    rng = np.random.default_rng(1)
    blocks = np.repeat([0, 1, 2], 6)
    site = np.array([0.0, 3.0, -2.0])[blocks]
    group = np.tile([1.0, 1, 1, 0, 0, 0], 3)
    y = site[:, None] * 1.0 + rng.normal(size=(18, 400)) * (1 + blocks[:, None])  # heteroscedastic by site
    design = np.column_stack([group, np.ones(18), blocks == 1, blocks == 2])
    res = perm.glm(y, design, [1, 0, 0, 0], resampling=Resampling(exchangeability_blocks=blocks, n_perm=199, seed=2))
    assert (blocks[res.permutations] == blocks).all()
    _assert_uniform(res.pvalue, 199)


def test_freedman_lane_null_pvalues_uniform():
    """A strong nuisance effect correlated with the regressor: FL keeps the size."""
    rng = np.random.default_rng(3)
    n = 20
    z = rng.normal(size=n)
    x = 0.7 * z + rng.normal(size=n)
    y = 3.0 * z[:, None] + rng.normal(size=(n, 500))
    design = np.column_stack([x, np.ones(n), z])
    res = perm.glm(y, design, [1, 0, 0], resampling=Resampling(n_perm=199, seed=4))
    _assert_uniform(res.pvalue, 199)


def test_fwer_controls_familywise_rate():
    rng = np.random.default_rng(5)
    hits = 0
    for i in range(60):
        y = rng.normal(size=(12, 30))
        hits += perm.one_sample(y, resampling=Resampling(n_perm=99, seed=i)).pvalue_fwer.min() <= 0.05
    assert hits / 60 < 0.05 + 4 * np.sqrt(0.05 * 0.95 / 60)


# ----------------------------------------------------------------------------- designs
def test_two_sample_matches_scipy(rng):
    a, b = rng.normal(size=(9, 6)), rng.normal(size=(11, 6)) + 0.5
    res = perm.two_sample(a, b, resampling=Resampling(n_perm=50))
    np.testing.assert_allclose(res.statistic, stats.ttest_ind(a, b).statistic, atol=1e-10)
    assert res.df == 18


def test_paired_equals_one_sample_of_differences(rng):
    pre, post = rng.normal(size=(10, 5)), rng.normal(size=(10, 5)) + 0.5
    a = perm.paired(pre, post, resampling=Resampling(n_perm=100, seed=3))
    b = perm.one_sample(post - pre, resampling=Resampling(n_perm=100, seed=3))
    np.testing.assert_allclose(a.statistic, stats.ttest_rel(post, pre).statistic, atol=1e-10)
    np.testing.assert_array_equal(a.pvalue, b.pvalue)
    assert a.params["test"] == "paired"
    with pytest.raises(ShapeError, match="same shape"):
        perm.paired(pre, post[:-1])


def test_pair_sessions_and_unpaired_error():
    cohort = rc.simulate.cohort(n_regions=10, n_patients=5, n_controls=2, seed=0)
    scans = {k: v for k, v in cohort.scans.items()}
    subjects, pre, post = perm.pair_sessions(scans)
    assert len(subjects) == 7
    assert (np.asarray(scans["subject"])[pre] == np.asarray(scans["subject"])[post]).all()
    keep = np.ones(len(scans["subject"]), bool)
    keep[1] = False  # drop one post scan
    broken = {k: np.asarray(v)[keep] for k, v in scans.items()}
    with pytest.raises(InputError, match="only one of"):
        perm.pair_sessions(broken)


def test_correlation_matches_pearson_and_partial(rng):
    n = 16
    x = rng.normal(size=n)
    z = rng.normal(size=(n, 2))
    y = rng.normal(size=(n, 7)) + 0.5 * x[:, None]
    res = perm.correlation(x, y, resampling=Resampling(n_perm=100))
    np.testing.assert_allclose(res.statistic, [stats.pearsonr(x, y[:, j]).statistic for j in range(7)], atol=1e-12)
    assert res.stat == "r" and np.all(np.abs(res.null_max) <= 1)
    part = perm.correlation(x, y, covariates=z, resampling=Resampling(n_perm=100))
    zz = np.column_stack([np.ones(n), z])
    rx = x - zz @ np.linalg.lstsq(zz, x, rcond=None)[0]
    ry = y - zz @ np.linalg.lstsq(zz, y, rcond=None)[0]
    np.testing.assert_allclose(part.statistic, [np.corrcoef(rx, ry[:, j])[0, 1] for j in range(7)], atol=1e-12)
    sp = perm.correlation(x, y, method="spearman", resampling=Resampling(n_perm=100))
    np.testing.assert_allclose(sp.statistic, [stats.spearmanr(x, y[:, j]).statistic for j in range(7)], atol=1e-12)


def test_correlation_pvalue_close_to_scipy_permutation_test(rng):
    n = 12
    x = rng.normal(size=n)
    y = 0.6 * x + rng.normal(size=n)
    res = perm.correlation(x, y[:, None], resampling=Resampling(n_perm=4000, seed=0))
    ref = stats.permutation_test((x,), lambda a: stats.pearsonr(a, y).statistic, permutation_type="pairings",
                                 n_resamples=4000, rng=1)
    assert abs(res.pvalue[0] - ref.pvalue) < 4 * np.sqrt(ref.pvalue * (1 - ref.pvalue) / 4000) + 1e-3


def test_ect_group_by_time_as_two_sample_of_differences():
    cohort = rc.simulate.cohort(n_regions=12, n_patients=10, n_controls=8, seed=4)
    subjects, pre, post = perm.pair_sessions(cohort.scans)
    group = np.asarray(cohort.scans["group"])[pre]
    iu = np.triu_indices(12, 1)
    delta = cohort.fc[post][:, iu[0], iu[1]] - cohort.fc[pre][:, iu[0], iu[1]]
    res = perm.two_sample(delta[group == "patient"], delta[group == "control"],
                          resampling=Resampling(n_perm=99, seed=0))
    assert res.statistic.shape == (66,) and res.n_perm == 99


def test_reproducible_and_precomputed(rng):
    y = rng.normal(size=(14, 5))
    a = perm.one_sample(y, resampling=Resampling(n_perm=64, seed=9))
    b = perm.one_sample(y, resampling=Resampling(n_perm=64, seed=9))
    c = perm.one_sample(y, resampling=Resampling(signs=a.signs))
    np.testing.assert_array_equal(a.pvalue, b.pvalue)
    np.testing.assert_array_equal(a.pvalue, c.pvalue)
    with pytest.raises(ShapeError, match=r"\+1/-1"):
        perm.one_sample(y, resampling=Resampling(signs=np.zeros((4, 14))))
    with pytest.raises(InputError, match="permutation of range"):
        perm.glm(y, np.column_stack([rng.normal(size=14), np.ones(14)]), [1, 0],
                 resampling=Resampling(permutations=np.zeros((3, 14), dtype=int)))


def test_gpd_tail_pvalue():
    rng = np.random.default_rng(0)
    null = rng.exponential(size=2000)
    obs = np.array([0.5, 6.0, 9.0])
    p = perm.gpd_pvalue(obs, null)
    assert p[0] == pytest.approx((1 + (null >= 0.5).sum()) / 2001)
    assert p[1] == pytest.approx(np.exp(-6.0), rel=0.5)
    assert p[2] < 1 / 2001 and p[2] > 0
    y = rng.normal(size=(10, 20))
    y[:, 0] += 3
    res = perm.one_sample(y, resampling=Resampling(n_perm=99, tail_approximation=True))
    assert res.pvalue_fwer[0] < 1 / 100


def test_warning_is_a_userwarning_for_small_samples(rng):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        perm.one_sample(rng.normal(size=(4, 3)), resampling=Resampling(n_perm=100))
    assert any("enumerated" in str(w.message) for w in caught)
