"""``Resampling(precision="float32")``: the null's products in float32, an
explicit option with a documented tolerance (never silent).

The observed statistic stays float64; null draws within the float32
rounding bound of the observed score count as ties
(:func:`recouple.kernels.pvalues.tie_rtol`), so float32 p-values are never
below float64's and differ only by draws inside that band.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import recouple as rc
from recouple.cli import main
from recouple.kernels import pvalues as kp
from recouple.permutation import Resampling, Spatial

BACKENDS = ["numpy", "jax"]


def _backend(name):
    if name == "jax":
        pytest.importorskip("jax")
    return name


def test_tie_rtol():
    assert kp.tie_rtol("float64", 500) == kp.TIE_RTOL
    small, large = kp.tie_rtol("float32", 10), kp.tie_rtol("float32", 1000)
    assert kp.TIE_RTOL < small < large < 1e-3
    assert kp.tie_rtol("float32", 100) == pytest.approx(2 * 102 * 2.0**-24, rel=1e-4)
    with pytest.raises(ValueError, match="precision"):
        kp.tie_rtol("float16", 10)


def test_tie_threshold_and_fwer_take_the_tolerance():
    s = np.array([0.5, 2.0])
    np.testing.assert_allclose(kp.tie_threshold(s, rtol=1e-3), [0.499, 1.998])
    # a null maximum 5e-4 below the observed score: a tie at rtol 1e-3, not at the float64 rule
    null_max = np.array([0.4995, 0.1, 0.2])
    assert kp.fwer_pvalue(np.array([0.5]), null_max, rtol=1e-3)[0] == pytest.approx(2 / 4)
    assert kp.fwer_pvalue(np.array([0.5]), null_max)[0] == pytest.approx(1 / 4)


def _designs(rng, n):
    x = np.column_stack([rng.normal(size=n), np.ones(n), rng.normal(size=(n, 2))])
    return {
        "signflip": (None, None),
        "glm_t": (x, np.array([1.0, 0, 0, 0])),
        "glm_F": (x, np.array([[1.0, 0, 0, 0], [0, 0, 1.0, 0]])),
    }


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("test", ["signflip", "glm_t", "glm_F"])
def test_float32_pvalues_never_below_float64(backend, test):
    backend = _backend(backend)
    rng = np.random.default_rng(11)
    n, v, k = 40, 3000, 999
    y = rng.normal(size=(n, v)) + 0.15
    design, contrast = _designs(rng, n)[test]

    def run(precision):
        r = Resampling(n_perm=k, seed=3, backend=backend, precision=precision)
        if design is None:
            return rc.permutation.one_sample(y, resampling=r)
        return rc.permutation.glm(y, design, contrast, test="F" if contrast.ndim == 2 else "t", resampling=r)

    a, b = run("float64"), run("float32")
    np.testing.assert_array_equal(b.statistic, a.statistic)  # the observed statistic is float64 either way
    assert np.all(b.pvalue >= a.pvalue) and np.all(b.pvalue_fwer >= a.pvalue_fwer)
    # only draws inside the band (~5e-6 wide here, null density ~2.5) move: about 4e-5 of the v x k comparisons
    extra = np.round((b.pvalue - a.pvalue) * (k + 1))
    assert extra.max() <= 4 and extra.sum() <= 5e-5 * v * k
    np.testing.assert_allclose(b.null_max, a.null_max, rtol=1e-4)
    assert b.params["precision"] == "float32" and b.params["tie_rtol"] == kp.tie_rtol("float32", n)
    assert a.params["precision"] == "float64" and a.params["tie_rtol"] == kp.TIE_RTOL


@pytest.mark.parametrize("backend", BACKENDS)
def test_float32_keeps_exact_ties(backend):
    """Resamples equal to the identity reproduce the observed statistic:
    float64 counts them as ties; their float32 rounding must not drop them."""
    backend = _backend(backend)
    rng = np.random.default_rng(2)
    n, v = 30, 400
    y = rng.normal(size=(n, v)) + 0.3
    signs = np.vstack([np.ones((20, n)), rc.permutation.sign_flip_matrix(n, n_perm=79, seed=1)])
    a = rc.permutation.one_sample(y, resampling=Resampling(signs=signs, backend=backend))
    b = rc.permutation.one_sample(y, resampling=Resampling(signs=signs, backend=backend, precision="float32"))
    assert np.all(a.pvalue >= 21 / 100)  # the 20 identity rows (and the observed) always count
    assert np.all(b.pvalue >= a.pvalue)
    # without the widened band some of those ties would be lost in float32 rounding
    g32 = (np.ones(n, dtype=np.float32) / np.float32(np.sqrt(n))) @ (y / np.linalg.norm(y, axis=0)).astype(np.float32)
    g64 = np.ones(n) / np.sqrt(n) @ (y / np.linalg.norm(y, axis=0))
    assert np.any(np.abs(g32) < np.abs(g64) - kp.TIE_RTOL)


def test_float32_with_keep_null_and_precomputed_permutations():
    rng = np.random.default_rng(4)
    n, v = 24, 50
    y = rng.normal(size=(n, v))
    x = np.column_stack([np.r_[np.ones(12), np.zeros(12)], np.ones(n)])
    perms = rc.permutation.permutation_matrix(n, n_perm=199, seed=5)
    a = rc.permutation.glm(y, x, [1, 0], resampling=Resampling(permutations=perms, keep_null=True))
    b = rc.permutation.glm(y, x, [1, 0], resampling=Resampling(permutations=perms, keep_null=True,
                                                                precision="float32"))
    np.testing.assert_allclose(b.null, a.null, rtol=1e-4, atol=1e-5)
    assert np.all(b.pvalue >= a.pvalue)


@pytest.mark.parametrize("call", ["tfce", "cluster", "fwer_across", "nbs"])
def test_float32_refused_where_its_bound_does_not_reach(call, monkeypatch):
    rng = np.random.default_rng(0)
    r = Resampling(n_perm=50, precision="float32")
    def no_compute(*args, **kwargs):  # the refusal comes before any compute
        raise AssertionError("computed before refusing")

    for module in ("recouple.permutation.glm", "recouple.permutation.spatial"):
        mod = importlib.import_module(module)
        monkeypatch.setattr(mod, "observed_g", no_compute)
        monkeypatch.setattr(mod, "draw_resamples", no_compute)
    y = rng.normal(size=(10, 27))
    x = np.column_stack([rng.normal(size=10), np.ones(10)])
    with pytest.raises(rc.InputError, match="precision='float64'") as err:
        if call == "tfce":
            rc.permutation.one_sample(y, resampling=r, spatial=Spatial(tfce=True, mask=np.ones((3, 3, 3), bool)))
        elif call == "cluster":
            rc.permutation.one_sample(y, resampling=r, spatial=Spatial(cluster_threshold=2.0,
                                                                       mask=np.ones((3, 3, 3), bool)))
        elif call == "fwer_across":
            rc.permutation.glm(y, x, np.eye(2), fwer_across_contrasts=True, resampling=r)
        else:
            rc.permutation.nbs(rng.normal(size=(10, 5, 5)), x, [1, 0], threshold=2.0, resampling=r)
    assert "float32" in str(err.value)


def test_precision_must_be_named():
    with pytest.raises(rc.InputError, match="precision must be one of 'float64', 'float32'; got 'single'"):
        Resampling(precision="single")
    with pytest.raises(TypeError, match="precision"):  # not among the deprecated keywords: only on Resampling
        rc.permutation.one_sample(np.ones((4, 3)), precision="float32", n_perm=10)


def test_cli_precision(tmp_path, capsys):
    rng = np.random.default_rng(0)
    n, v = 16, 12
    group = np.r_[np.ones(8), np.zeros(8)]
    y = rng.normal(size=(n, v)) + 1.5 * group[:, None] * (np.arange(v) < 3)
    pd.DataFrame(y, columns=[f"r{i}" for i in range(v)]).to_csv(tmp_path / "y.csv", index=False)
    pd.DataFrame({"group": np.where(group == 1, "p", "c")}).to_csv(tmp_path / "t.tsv", sep="\t", index=False)
    outs = {}
    for precision in ("float64", "float32"):
        out = tmp_path / precision / "x"
        assert main(["permute", str(tmp_path / "y.csv"), "--design", str(tmp_path / "t.tsv"), "--formula",
                     "~ group", "--contrast", "group[T.p]", "--n-perm", "300", "--precision", precision,
                     "-o", str(out)]) == 0
        text = capsys.readouterr().out
        assert ("float32 null products" in text) == (precision == "float32")
        prov = json.loads(Path(f"{out}.provenance.json").read_text())
        assert prov["parameters"]["precision"] == precision and prov["dtype"] == precision
        outs[precision] = pd.read_csv(f"{out}_uncp_c1.csv")["value"].to_numpy()
    assert np.all(outs["float32"] >= outs["float64"])


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("method", ["pearson", "spearman"])
def test_compare_maps_float32(backend, method):
    backend = _backend(backend)
    rng = np.random.default_rng(3)
    n, g, k = 120, 800, 499
    x = rng.standard_normal(n)
    Y = rng.standard_normal((g, n))
    Y[:40] += 0.3 * x
    spec = {"method": "permutation", "n_perm": k, "seed": 1}
    a = rc.nulls.compare_maps(x, Y, nulls=spec, method=method, backend=backend)
    b = rc.nulls.compare_maps(x, Y, nulls=spec, method=method, backend=backend, precision="float32")
    np.testing.assert_array_equal(b.r, a.r)  # the observed r is float64 either way
    assert np.all(b.pvalue >= a.pvalue) and np.all(b.pvalue_fwer >= a.pvalue_fwer)
    extra = np.round((b.pvalue - a.pvalue) * (k + 1))
    assert extra.max() <= 4 and extra.sum() <= 5e-4 * g * k
    np.testing.assert_allclose(b.null_max, a.null_max, atol=1e-5)
    assert (a.precision, b.precision) == ("float64", "float32")


def test_compare_maps_float32_keeps_exact_ties():
    """Index nulls equal to the identity reproduce the observed r exactly in
    float64 (counted as ties); float32 rounding must not drop them."""
    rng = np.random.default_rng(8)
    n, g = 90, 300
    x, Y = rng.standard_normal(n), rng.standard_normal((g, n))
    nulls = np.vstack([np.tile(np.arange(n), (10, 1)), np.argsort(rng.random((89, n)), axis=1)])
    a = rc.nulls.compare_maps(x, Y, nulls=nulls)
    b = rc.nulls.compare_maps(x, Y, nulls=nulls, precision="float32")
    assert np.all(a.pvalue >= 11 / 100) and np.all(b.pvalue >= a.pvalue)


def test_compare_maps_float32_refuses_missing_values():
    rng = np.random.default_rng(0)
    x, Y = rng.standard_normal(30), rng.standard_normal((4, 30))
    Y[1, 3] = np.nan
    with pytest.raises(rc.InputError, match="precision='float32' needs maps and nulls without missing values"):
        rc.nulls.compare_maps(x, Y, nulls={"method": "permutation", "n_perm": 20}, precision="float32")
    with pytest.raises(rc.InputError, match="precision must be one of"):
        rc.nulls.compare_maps(x, Y, nulls={"method": "permutation", "n_perm": 20}, precision="double")


def test_gene_association_float32():
    sim = rc.simulate.cohort(n_regions=40, n_patients=2, n_controls=1, n_genes=150, seed=2)
    expr = rc.genes.Expression(values=sim.expression, genes=np.asarray(sim.genes), regions=np.asarray(sim.labels))
    m = np.random.default_rng(1).standard_normal(40)
    spec = {"method": "permutation", "n_perm": 199, "seed": 0}
    a = rc.genes.associate(m, expr, nulls=spec, labels=np.asarray(sim.labels))
    b = rc.genes.associate(m, expr, nulls=spec, labels=np.asarray(sim.labels), precision="float32")
    np.testing.assert_array_equal(b.r, a.r)
    assert np.all(b.pvalue >= a.pvalue) and b.params["precision"] == "float32"


def test_cli_associate_precision(tmp_path, capsys):
    rng = np.random.default_rng(5)
    n = 50
    labels = [f"r{i}" for i in range(n)]
    x = rng.standard_normal(n)
    pd.DataFrame({"label": labels, "x": x}).to_csv(tmp_path / "x.csv", index=False)
    pd.DataFrame(rng.standard_normal((n, 6)) + 0.5 * x[:, None], index=pd.Index(labels, name="label"),
                 columns=[f"m{j}" for j in range(6)]).to_csv(tmp_path / "y.csv")
    tables = {}
    for precision in ("float64", "float32"):
        out = tmp_path / f"{precision}.csv"
        assert main(["associate", "--x", str(tmp_path / "x.csv"), "--y", str(tmp_path / "y.csv"), "--nulls",
                     "permutation", "--n-perm", "300", "--precision", precision, "--out", str(out)]) == 0
        text = capsys.readouterr().out
        assert ("float32 null products" in text) == (precision == "float32")
        assert json.loads(Path(f"{out}.provenance.json").read_text())["parameters"]["precision"] == precision
        tables[precision] = pd.read_csv(out).set_index("map").sort_index()
    np.testing.assert_array_equal(tables["float32"]["r"], tables["float64"]["r"])
    assert np.all(tables["float32"]["p"] >= tables["float64"]["p"])


@pytest.mark.parametrize("backend", ["numpy", "array_api_strict", "jax"])
def test_threshold_in_float32_is_exact(backend):
    """A float64 threshold brought to float32 (the largest float32 not above
    it) gives exactly the comparisons of the float64 threshold."""
    rng = np.random.default_rng(0)
    t = rng.standard_normal(5000)
    s = np.concatenate([t.astype(np.float32), np.nextafter(t.astype(np.float32), np.float32(np.inf)),
                        np.nextafter(t.astype(np.float32), np.float32(-np.inf)),
                        rng.standard_normal(5000).astype(np.float32)])
    tt = np.tile(t, 4)
    want = s.astype(np.float64) >= tt
    if backend == "numpy":
        got = s >= np.asarray(kp.threshold_in(tt, np.float32))
    else:
        xp = pytest.importorskip(backend if backend != "jax" else "jax.numpy")
        if backend == "jax":
            rc.get_backend("jax")
        thr = kp.threshold_in(xp.asarray(tt), xp.float32, xp=xp)
        assert thr.dtype == xp.float32
        got = np.asarray(xp.asarray(s) >= thr)
    np.testing.assert_array_equal(got, want)
    assert kp.threshold_in(tt, np.float64) is tt
