"""Resampling / Spatial option objects, deprecated keywords, the resample
generators (bytes pinned) and the streaming block loop."""

from __future__ import annotations

import hashlib
import inspect
import warnings

import numpy as np
import pytest

import recouple as rc
from recouple.engine import random as rrandom
from recouple.engine.streaming import plan_resample_batch, stream_resamples
from recouple.exceptions import InputError
from recouple.permutation import Resampling, Spatial

perm = rc.permutation


def _sha(a):
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()


# Hashes computed with the generators as they were before sign_flip_matrix and
# permutation_matrix were routed through engine.random (same seed -> same bytes).
BLOCKS = np.repeat(np.arange(4), 3)


@pytest.mark.parametrize("make, expected", [
    (lambda: perm.sign_flip_matrix(13, n_perm=257, seed=7),
     "53652065e7b3ab061a401e8799f557f697b9ad398140dab7e3334dcc1f8aeefd"),
    (lambda: rrandom.sign_flips(7, 257, 13), "53652065e7b3ab061a401e8799f557f697b9ad398140dab7e3334dcc1f8aeefd"),
    (lambda: perm.sign_flip_matrix(12, n_perm=100, seed=3, exchangeability_blocks=BLOCKS, whole_blocks=True),
     "9f7ad6f6e7a20508d7a1a209ab3dd895ed34449929ae04887044d04031c9c6d5"),
    (lambda: perm.sign_flip_matrix(13, n_perm=50, seed=7, start=100),
     "309a78ac48c0787611bd20c6f27e00e881526e87c29776d39a21d3a4fb19df07"),
    (lambda: perm.permutation_matrix(13, n_perm=257, seed=7),
     "8440204b5722a761c41a65a183b39bc10cb277586d97e79170a843b148f7776c"),
    (lambda: perm.permutation_matrix(12, n_perm=100, seed=3, exchangeability_blocks=BLOCKS),
     "98d177a59582b1cf09b22be575247c502ede4b46369629e4422974ba5dc143de"),
    (lambda: perm.permutation_matrix(12, n_perm=100, seed=3, exchangeability_blocks=BLOCKS, whole_blocks=True),
     "4519383d2e40a2518acd1d1e248cc0f00c1337a0d1cc9fc30f3bc35060876b73"),
])
def test_resample_bytes_are_pinned(make, expected):
    assert _sha(make()) == expected


def test_old_keywords_warn_and_give_the_same_result():
    y = np.random.default_rng(0).normal(size=(10, 6))
    new = perm.one_sample(y, resampling=Resampling(n_perm=99, seed=3))
    with pytest.warns(DeprecationWarning, match=r"one_sample\(n_perm=, seed=\).*Resampling"):
        old = perm.one_sample(y, n_perm=99, seed=3)
    np.testing.assert_array_equal(new.pvalue_fwer, old.pvalue_fwer)
    np.testing.assert_array_equal(new.signs, old.signs)


@pytest.mark.parametrize("call", [
    lambda y, x: perm.glm(y, x, [1, 0], resampling="permute", n_perm=50),
    lambda y, x: perm.two_sample(y[:5], y[5:], n_perm=50, batch_size=7),
    lambda y, x: perm.paired(y[:5], y[5:], n_perm=50, backend="numpy"),
    lambda y, x: perm.correlation(x[:, 0], y, n_perm=50, seed=1),
    lambda y, x: perm.nbs(y[:, :3], x, [1, 0], threshold=1.0, n_nodes=3, n_perm=20),
    lambda y, x: perm.one_sample(y, n_perm=20, tfce=True, mask=np.ones((2, 3), bool)),
])
def test_every_test_accepts_the_old_keywords_with_a_warning(call):
    rng = np.random.default_rng(1)
    y = rng.normal(size=(10, 6))
    x = np.column_stack([np.r_[np.ones(5), np.zeros(5)], np.ones(10)])
    with pytest.warns(DeprecationWarning, match="deprecated"):
        call(y, x)


def test_new_spelling_does_not_warn_and_mixing_is_refused():
    y = np.random.default_rng(2).normal(size=(8, 4))
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        perm.one_sample(y, resampling=Resampling(n_perm=20))
    with pytest.raises(InputError, match="not both"):
        perm.one_sample(y, resampling=Resampling(n_perm=20), n_perm=30)
    with pytest.raises(TypeError, match="unexpected keyword"):
        perm.one_sample(y, n_perms=20)
    with pytest.raises(InputError, match="Resampling"):
        perm.one_sample(y, resampling={"n_perm": 20})


def test_signatures_are_real():
    for fn in (perm.one_sample, perm.paired, perm.two_sample, perm.glm, perm.correlation, perm.nbs):
        params = inspect.signature(fn).parameters
        assert "resampling" in params and not any(p.kind == p.VAR_KEYWORD for p in params.values())
    assert list(inspect.signature(perm.paired).parameters) == ["pre", "post", "covariates", "alternative",
                                                               "resampling", "spatial"]
    assert len(inspect.signature(perm.glm).parameters) == 8
    assert "n_perm : int" not in perm.glm.__doc__ and "resampling : Resampling" in perm.glm.__doc__


def test_resampling_validates_and_replaces():
    with pytest.raises(InputError, match="at most one"):
        Resampling(permutations=np.zeros((2, 3), int), signs=np.ones((2, 3)))
    with pytest.raises(InputError, match="kind"):
        Resampling(kind="bootstrap")
    with pytest.raises(InputError, match="batch_size"):
        Resampling(batch_size=0)
    r = Resampling(n_perm=10).replace(seed=4)
    assert (r.n_perm, r.seed) == (10, 4)
    assert Resampling(signs=np.ones((1, 2))).resolved_kind == "signflip"
    assert Spatial(cluster_threshold=2.0).active and not Spatial().active


def test_glm_resamples_are_the_ones_glm_draws():
    rng = np.random.default_rng(3)
    y = rng.normal(size=(12, 5))
    x = np.column_stack([np.r_[np.ones(6), np.zeros(6)], np.ones(12), rng.normal(size=12)])
    r = Resampling(n_perm=40, seed=9)
    drawn = perm.glm_resamples(x, [1, 0, 0], resampling=r)
    res = perm.glm(y, x, [1, 0, 0], resampling=r)
    assert drawn.kind == "permute" and not drawn.exhaustive
    np.testing.assert_array_equal(drawn.permutations, res.permutations)
    replay = perm.glm(y, x, [1, 0, 0], resampling=drawn.as_resampling())
    np.testing.assert_array_equal(replay.pvalue_fwer, res.pvalue_fwer)
    one = perm.glm_resamples(np.ones((12, 1)), [1], resampling=r)
    assert one.kind == "signflip" and one.signs.shape == (40, 12)


def test_one_sample_refuses_permutations_and_two_sample_signs():
    y = np.random.default_rng(4).normal(size=(6, 3))
    with pytest.raises(InputError, match="permutations"):
        perm.one_sample(y, resampling=Resampling(permutations=np.tile(np.arange(6), (3, 1))))
    with pytest.raises(InputError, match="signs"):
        perm.two_sample(y[:3], y[3:], resampling=Resampling(signs=np.ones((3, 6))))


def test_streaming_is_batch_invariant():
    rng = np.random.default_rng(5)
    null = rng.normal(size=(23, 7))
    obs = rng.normal(size=7)

    def block(start, stop):
        part = null[start:stop]
        return {"counts": (part >= obs).sum(axis=0), "max": part.max(axis=1)}

    runs = [stream_resamples(block, 23, batch_size=b, counts={"counts": 7}, maxima=("max",), progress=False)
            for b in (1, 5, 23, 100)]
    for r in runs:
        np.testing.assert_array_equal(r.counts["counts"], (null >= obs).sum(axis=0))
        np.testing.assert_array_equal(r.maxima["max"], null.max(axis=1))
    assert plan_resample_batch(100, 8.0, batch_size=7) == 7
    assert plan_resample_batch(100, 2**27, memory_limit="1GB") == 2  # the cache cap
    assert plan_resample_batch(100, 2**27, memory_limit="1GB", cache_cap=None) == 7


def test_batch_size_does_not_change_glm_bytes():
    rng = np.random.default_rng(6)
    y = rng.normal(size=(11, 9))
    a = perm.one_sample(y, resampling=Resampling(n_perm=50, seed=1, batch_size=3))
    b = perm.one_sample(y, resampling=Resampling(n_perm=50, seed=1))
    for f in ("statistic", "pvalue", "pvalue_fwer"):
        np.testing.assert_array_equal(getattr(a, f), getattr(b, f))
    # the maxima go through GEMMs of different shapes: equal up to the last bits
    np.testing.assert_allclose(a.null_max, b.null_max, rtol=1e-14)
