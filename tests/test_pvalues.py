"""The one permutation p-value rule (recouple.kernels.pvalues)."""

import numpy as np
import pytest

from recouple.kernels import pvalues as kp


def test_tie_rule_relative_with_floor_of_one():
    # Scores below one in magnitude: absolute tolerance 1e-10.
    obs = np.array([0.5, 0.0, 1e3])
    thr = np.asarray(kp.tie_threshold(obs))
    np.testing.assert_allclose(thr, [0.5 - 1e-10, -1e-10, 1e3 - 1e-7], rtol=0, atol=1e-16)
    assert np.asarray(kp.tie_threshold(np.array([np.inf])))[0] == np.inf
    assert np.isnan(np.asarray(kp.tie_threshold(np.array([np.nan])))[0])


@pytest.mark.parametrize("alternative", kp.ALTERNATIVES)
def test_pvalue_matches_direct_count_and_blocks_add_up(alternative):
    rng = np.random.default_rng(0)
    obs = rng.standard_normal(7)
    null = rng.standard_normal((500, 7))
    null[3] = obs  # an exact tie
    null[4] = obs + 1e-13  # a round-off tie
    score = {"two-sided": np.abs, "greater": lambda a: a, "less": lambda a: -a}[alternative]
    direct = ((score(null) >= score(obs) - 1e-10 * np.maximum(np.abs(score(obs)), 1)).sum(0) + 1) / 501
    p = np.asarray(kp.permutation_pvalue(obs, null, alternative=alternative))
    np.testing.assert_array_equal(p, direct)
    c1, n1 = kp.exceedance_counts(obs, null[:200], alternative=alternative)
    c2, n2 = kp.exceedance_counts(obs, null[200:], alternative=alternative)
    np.testing.assert_array_equal(np.asarray(kp.pvalue_from_counts(c1 + c2, n1 + n2, obs)), p)
    assert (p >= 3 / 501).all()  # both ties counted


def test_nan_handling_and_plus_one_off():
    obs = np.array([1.0, np.nan])
    null = np.array([[2.0, 0.0], [np.nan, 1.0], [0.5, 3.0]])
    p = np.asarray(kp.permutation_pvalue(obs, null, alternative="greater"))
    assert p[0] == 2 / 3 and np.isnan(p[1])  # K counts the two finite draws
    p0 = np.asarray(kp.permutation_pvalue(obs, null, alternative="greater", plus_one=False))
    assert p0[0] == 1 / 2


def test_fwer_equals_pvalue_against_maxima():
    rng = np.random.default_rng(1)
    scores = np.abs(rng.standard_normal(50))
    null_max = np.abs(rng.standard_normal((300, 50))).max(1)
    null_max[10] = np.nan
    p = np.asarray(kp.fwer_pvalue(scores, null_max))
    ref = np.asarray(kp.permutation_pvalue(scores, null_max[:, None], alternative="greater"))
    np.testing.assert_array_equal(p, ref)
    assert np.isnan(np.asarray(kp.fwer_pvalue(np.array([np.nan]), null_max))[0])


def test_unknown_alternative_is_an_error():
    with pytest.raises(ValueError, match="alternative"):
        kp.tail_score(np.ones(2), "both")


@pytest.mark.parametrize("backend", ["array_api_strict", "jax"])
def test_same_counts_on_other_namespaces(backend):
    rng = np.random.default_rng(2)
    obs = rng.standard_normal(5)
    null = rng.standard_normal((100, 5))
    ref = np.asarray(kp.permutation_pvalue(obs, null))
    ref_f = np.asarray(kp.fwer_pvalue(np.abs(obs), np.abs(null).max(1)))
    if backend == "jax":
        jnp = pytest.importorskip("jax.numpy")
        import jax

        jax.config.update("jax_enable_x64", True)
        o, n = jnp.asarray(obs), jnp.asarray(null)
    else:
        xp = pytest.importorskip("array_api_strict")
        o, n = xp.asarray(obs), xp.asarray(null)
    np.testing.assert_array_equal(np.asarray(kp.permutation_pvalue(o, n)), ref)
    nm = kp.tail_score(n, "two-sided")
    import array_api_compat

    xp = array_api_compat.array_namespace(nm)
    np.testing.assert_array_equal(np.asarray(kp.fwer_pvalue(kp.tail_score(o, "two-sided"), xp.max(nm, axis=1))), ref_f)
