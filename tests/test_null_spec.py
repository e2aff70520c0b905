"""The one null specification (recouple.nulls.spec), the deprecated spellings
kept for one release, and results pinned from before the nulls/genes split
(same seeds -> same bytes)."""

from __future__ import annotations

import hashlib
import warnings

import numpy as np
import pytest

import recouple as rc
from recouple.exceptions import InputError
from recouple.nulls import spec


def _h(*arrs):
    m = hashlib.sha256()
    for a in arrs:
        a = np.ascontiguousarray(a)
        m.update(str(a.dtype).encode())
        m.update(str(a.shape).encode())
        m.update(a.tobytes())
    return m.hexdigest()[:16]


# Computed with the single-module recouple/nulls.py and recouple/genes.py (commit 7f8b651).
PINNED = {
    "spins_vasa": "6d367b93bfaaa10c",
    "spins_ab": "eef3bb307a9264be",
    "assoc_spin_p": "a907f81c558cd4ab",
    "assoc_spin_r": "ee31699bc82dbc18",
    "assoc_perm_p": "afa1a84646e1f475",
    "variogram": "cc4fd0d808d0bc0c",
    "moran": "579d0847a0eea0e6",
    "burt2018": "11757074874db542",
    "genes_assoc_p": "1a71b45f4cb148b4",
    "genes_assoc_r": "a19ff26fd276e850",
    "pls_p": "f7ce9ee7ed2a9c1b",
    "pls_z": "de2bd18ff675af39",
    "enrich_p": "f58af33013d0c42b",
    "enrich_rg_p": "5463999a63587313",
}


@pytest.fixture(scope="module")
def pinned_results():
    rng = np.random.default_rng(2024)
    p = rng.standard_normal((120, 3))
    coords = 100 * p / np.linalg.norm(p, axis=1, keepdims=True)
    hemi = (coords[:, 0] > 0).astype(int)
    x = coords[:, 2] + rng.standard_normal(120)
    Y = np.stack([x + 2 * rng.standard_normal(120)] + [rng.standard_normal(120) for _ in range(5)])
    out = {}
    out["spins_vasa"] = _h(rc.nulls.spin_permutations(coords, hemi=hemi, n_perm=200, seed=7, method="vasa"))
    out["spins_ab"] = _h(rc.nulls.spin_permutations(coords, hemi=hemi, n_perm=200, seed=7, method="alexander_bloch"))
    res = rc.nulls.compare_maps(x, Y, nulls={"method": "vasa", "coords": coords, "hemi": hemi, "n_perm": 200,
                                             "seed": 7}, method="spearman", store_null=True)
    out["assoc_spin_p"] = _h(res.pvalue, res.pvalue_fwer, res.pvalue_fdr)
    out["assoc_spin_r"] = _h(np.round(res.r, 10), np.round(res.null, 10))
    res2 = rc.nulls.compare_maps(x, Y, nulls={"method": "permutation", "n_perm": 150, "seed": 3}, method="pearson")
    out["assoc_perm_p"] = _h(res2.pvalue, res2.pvalue_fwer)
    D = rc.nulls.distance(coords)
    out["variogram"] = _h(np.round(rc.nulls.variogram_surrogates(x, D, n_perm=20, seed=5), 10))
    out["moran"] = _h(np.round(rc.nulls.moran(x, rc.nulls.moran_weights(D), n_perm=20, seed=5), 10))
    out["burt2018"] = _h(rc.nulls.burt2018_surrogates(x, D, n_perm=20, seed=5))
    genes = [f"G{i}" for i in range(40)]
    E = rng.standard_normal((120, 40))
    E[:, 0] += x
    expr = rc.genes.load_expression(E, regions=[f"R{i}" for i in range(120)], genes=genes)
    ga = rc.genes.associate(x, expr, nulls="spin", coords=coords, hemi=hemi, n_perm=100, seed=4)
    out["genes_assoc_p"] = _h(ga.pvalue, ga.pvalue_fwer, ga.pvalue_fdr)
    out["genes_assoc_r"] = _h(np.round(ga.r, 10))
    pl = rc.genes.pls(x, expr, n_components=2, n_boot=30, nulls="permutation", n_perm=50, seed=4)
    out["pls_p"] = _h(pl.pvalue)
    out["pls_z"] = _h(np.round(pl.zscores, 8), np.round(pl.null_var_explained, 10))
    sets = {f"S{j}": genes[j:j + 12] for j in range(0, 28, 4)}
    en = rc.genes.enrichment(x, expr, sets, nulls="spin", coords=coords, hemi=hemi, n_perm=60, seed=4, min_size=5)
    out["enrich_p"] = _h(en.pvalue, en.pvalue_fdr)
    en2 = rc.genes.enrichment(x, expr, sets, null_type="random-genes", n_perm=60, seed=4, min_size=5)
    out["enrich_rg_p"] = _h(en2.pvalue)
    return out


@pytest.mark.parametrize("key", sorted(PINNED))
def test_results_pinned_from_before_the_split(pinned_results, key):
    assert pinned_results[key] == PINNED[key]


# ---------------------------------------------------------------- the one specification


def _sphere(rng, n):
    p = rng.standard_normal((n, 3))
    return 100 * p / np.linalg.norm(p, axis=1, keepdims=True)


def test_one_spin_methods_tuple():
    assert rc.nulls.SPIN_METHODS is spec.SPIN_METHODS is rc.nulls.spins.SPIN_METHODS is rc.genes.SPIN_METHODS
    assert spec.ALIASES["spin"] == "vasa"
    assert set(rc.nulls.SPIN_METHODS) | {"spin", "permutation", "variogram"} <= set(spec.METHODS)


def test_name_dict_and_array_give_the_same_nulls(rng):
    pts = _sphere(rng, 60)
    hemi = (pts[:, 0] > 0).astype(int)
    x = rng.standard_normal(60)
    by_name = spec.resolve("spin", x, n_perm=20, seed=3, coords=pts, hemi=hemi)
    by_dict = spec.resolve({"method": "vasa", "n_perm": 20, "seed": 3, "coords": pts, "hemi": hemi}, x)
    direct = rc.nulls.spin_permutations(pts, hemi=hemi, n_perm=20, seed=3, method="vasa")
    assert by_name[0] == by_dict[0] == "index"
    np.testing.assert_array_equal(by_name[1], direct)
    np.testing.assert_array_equal(by_dict[1], direct)
    kind, arr = spec.resolve(direct, x)
    assert kind == "index" and arr is not None
    assert spec.resolve(None, x) is None and spec.resolve("none", x) is None


def test_default_seed_is_zero(rng):
    x = rng.standard_normal(30)
    a = spec.resolve("permutation", x, n_perm=10)
    b = spec.resolve({"method": "permutation", "n_perm": 10, "seed": 0}, x)
    np.testing.assert_array_equal(a[1], b[1])
    np.testing.assert_array_equal(rc.nulls.rotations(3), rc.nulls.rotations(3, seed=0))


def test_unknown_spec_key_names_the_key_and_the_accepted_keys(rng):
    x = rng.standard_normal(30)
    with pytest.raises(InputError, match=r"'n_perms'.*accepted keys are 'method', 'n_perm', 'seed'"):
        spec.resolve({"method": "permutation", "n_perms": 10}, x)
    with pytest.raises(InputError, match="'coord'"):
        rc.nulls.compare_maps(x, rng.standard_normal((2, 30)), nulls={"method": "vasa", "coord": _sphere(rng, 30)})


@pytest.mark.parametrize("method, missing", [("vasa", "coords"), ("spin", "coords"), ("variogram", "distance"),
                                             ("burt2018", "distance"), ("moran", "distance")])
def test_missing_argument_is_an_input_error_naming_it(rng, method, missing):
    x = rng.standard_normal(30)
    with pytest.raises(InputError, match=f"needs '{missing}'"):
        spec.resolve({"method": method, "n_perm": 5}, x)
    with pytest.raises(InputError, match=f"needs '{missing}'"):
        rc.nulls.compare_maps(x, rng.standard_normal((2, 30)), nulls={"method": method, "n_perm": 5})


def test_genes_accept_spec_dicts_and_spin_alias(rng):
    pts = _sphere(rng, 40)
    x = pts[:, 2] + rng.standard_normal(40)
    E = rng.standard_normal((40, 8))
    expr = rc.genes.load_expression(E, regions=[f"R{i}" for i in range(40)], genes=[f"G{i}" for i in range(8)])
    a = rc.genes.associate(x, expr, nulls={"method": "spin", "coords": pts, "n_perm": 30, "seed": 2})
    b = rc.genes.associate(x, expr, nulls="vasa", coords=pts, n_perm=30, seed=2)
    np.testing.assert_array_equal(a.pvalue, b.pvalue)
    with pytest.raises(InputError, match="needs 'coords'"):
        rc.genes.associate(x, expr, nulls="spin", n_perm=30)


# ---------------------------------------------------------------- deprecated spellings


def test_nulls_associate_is_a_deprecated_alias_of_compare_maps(rng):
    x, Y = rng.standard_normal(40), rng.standard_normal((3, 40))
    nul = {"method": "permutation", "n_perm": 50, "seed": 1}
    with pytest.warns(DeprecationWarning, match="compare_maps"):
        old = rc.nulls.associate(x, Y, nulls=nul)
    new = rc.nulls.compare_maps(x, Y, nulls=nul)
    np.testing.assert_array_equal(old.pvalue, new.pvalue)
    np.testing.assert_array_equal(old.r, new.r)


def test_pls_old_argument_order_warns_and_gives_the_same_result(rng):
    E = rng.standard_normal((30, 12))
    expr = rc.genes.load_expression(E, regions=[f"R{i}" for i in range(30)], genes=[f"G{i}" for i in range(12)])
    y = E[:, 0] + rng.standard_normal(30)
    new = rc.genes.pls(y, expr, n_components=2, n_boot=10, seed=3)
    with pytest.warns(DeprecationWarning, match=r"pls\(maps, expression\)"):
        old = rc.genes.pls(expr, y, n_components=2, n_boot=10, seed=3)
    np.testing.assert_array_equal(old.weights, new.weights)
    np.testing.assert_array_equal(old.zscores, new.zscores)
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        rc.genes.pls(y, expr, n_components=1)
        rc.genes.pls(maps=y, expression=expr, n_components=1)


def test_pls_progress_is_a_bool_and_callables_are_deprecated(rng, capsys, monkeypatch):
    E = rng.standard_normal((30, 12))
    expr = rc.genes.load_expression(E, regions=[f"R{i}" for i in range(30)], genes=[f"G{i}" for i in range(12)])
    y = E[:, 0] + rng.standard_normal(30)
    monkeypatch.setenv("RECOUPLE_PROGRESS", "1")
    a = rc.genes.pls(y, expr, n_boot=20, seed=1, batch_size=7, progress=True)
    assert "pls bootstrap" in capsys.readouterr().err
    calls = []
    with pytest.warns(DeprecationWarning, match="progress"):
        b = rc.genes.pls(y, expr, n_boot=20, seed=1, batch_size=7, progress=lambda d, t: calls.append((d, t)))
    assert calls[-1] == (20, 20) and len(calls) == 3
    np.testing.assert_array_equal(a.zscores, b.zscores)
