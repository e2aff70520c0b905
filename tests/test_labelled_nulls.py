"""Region labels carried with nulls and alignment by label; GPD tail p-values
and the resolution note of association results; enrichment size-bound report;
expression-duplicate messages."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import recouple as rc
from recouple.engine.random import permutation_indices
from recouple.exceptions import InputError, ShapeError
from recouple.nulls import spec
from recouple.permutation.tail import gpd_pvalue


def _reordered(nul, perm):
    """The same index nulls written in another region order: column j is region perm[j]."""
    inv = np.argsort(perm)
    return np.where(nul[:, perm] < 0, -1, inv[np.where(nul[:, perm] < 0, 0, nul[:, perm])])


def test_save_load_and_align_by_label(tmp_path, rng):
    n = 40
    labels = np.array([f"L_r{i}" for i in range(n)])
    x, Y = rng.standard_normal(n), rng.standard_normal((6, n))
    nul = permutation_indices(0, 99, n)
    nul[:5, 3] = -1  # dropped regions survive the renumbering
    perm = rng.permutation(n)
    path = spec.save_nulls(tmp_path / "n.npy", _reordered(nul, perm), labels[perm])
    assert (tmp_path / "n.npy.labels.txt").read_text().split() == labels[perm].tolist()
    loaded = spec.load_nulls(path)
    np.testing.assert_array_equal(spec.align_nulls(loaded, labels), nul)
    ref = rc.nulls.compare_maps(x, Y, nulls=nul)
    # hemisphere spellings match (lh_ == L_); the nulls come as a path, a LabelledNulls or an .npz
    other = [lab.replace("L_", "lh_") for lab in labels]
    np.savez(tmp_path / "n.npz", nulls=_reordered(nul, perm), labels=labels[perm])
    for given in (path, loaded, tmp_path / "n.npz"):
        got = rc.nulls.compare_maps(x, Y, nulls=given, labels=other)
        np.testing.assert_array_equal(got.pvalue, ref.pvalue)
        np.testing.assert_allclose(got.r, ref.r)
    # surrogate maps: columns reordered; a superset of regions is cut to the maps' regions
    sur = rng.standard_normal((30, n + 2))
    lab_s = np.r_[labels[perm], ["L_extra1", "L_extra2"]]
    got = spec.align_nulls(spec.LabelledNulls(sur, lab_s), labels)
    np.testing.assert_array_equal(got, sur[:, np.argsort(perm)])
    # without map labels a labelled file is used by position only when N matches
    with pytest.raises(ShapeError, match="labels="):
        rc.nulls.compare_maps(x[:-1], Y[:, :-1], nulls=path)


def test_missing_labels_are_named(tmp_path, rng):
    n = 20
    labels = [f"L_r{i}" for i in range(n)]
    spec.save_nulls(tmp_path / "n.npy", permutation_indices(0, 9, n), labels)
    x, Y = rng.standard_normal(n + 1), rng.standard_normal((2, n + 1))
    with pytest.raises(InputError, match="L_new") as exc:
        rc.nulls.compare_maps(x, Y, nulls=tmp_path / "n.npy", labels=labels + ["L_new"])
    assert "1 of 21" in str(exc.value)
    # nulls labelled by unnamed codes: the message says how to name them
    spec.save_nulls(tmp_path / "c.npy", permutation_indices(0, 9, n), [str(i + 1) for i in range(n)])
    with pytest.raises(InputError, match="parcellation-names"):
        rc.nulls.compare_maps(x[:n], Y[:, :n], nulls=tmp_path / "c.npy", labels=labels)
    # plain arrays of the wrong width: the hint names the region count, not a transpose
    with pytest.raises(ShapeError) as exc:
        rc.nulls.compare_maps(x[:n], Y[:, :n], nulls=permutation_indices(0, 9, n + 2))
    assert "made for 22 regions" in str(exc.value) and "transpose" not in str(exc.value)
    with pytest.raises(ShapeError, match="transpose"):
        rc.nulls.compare_maps(x[:n], Y[:, :n], nulls=permutation_indices(0, 9, n).T.copy())


def test_genes_associate_aligns_labelled_nulls(tmp_path):
    c = rc.simulate.cohort(n_regions=30, n_patients=2, n_controls=2, n_genes=40, n_planted_genes=4, seed=2)
    e = rc.genes.load_expression(c.expression, regions=c.labels, genes=c.genes)
    nul = permutation_indices(1, 60, 30)
    ref = rc.genes.associate(c.change_map, e, labels=c.labels, nulls=nul)
    perm = np.random.default_rng(5).permutation(30)
    spec.save_nulls(tmp_path / "n.npy", _reordered(nul, perm), c.labels[perm])
    got = rc.genes.associate(c.change_map, e, labels=c.labels, nulls=str(tmp_path / "n.npy"))
    np.testing.assert_array_equal(got.pvalue, ref.pvalue)


def test_tail_approximation(rng):
    n, k = 60, 199
    x = rng.standard_normal(n)
    Y = rng.standard_normal((120, n))
    Y[:4] += 1.5 * x
    nul = permutation_indices(0, k, n)
    plain = rc.nulls.compare_maps(x, Y, nulls=nul, store_null=True)
    tail = rc.nulls.compare_maps(x, Y, nulls=nul, tail_approximation=True)
    assert tail.tail_approximation and not plain.tail_approximation and plain.pvalue_permutation is None
    np.testing.assert_array_equal(tail.pvalue_permutation, plain.pvalue)
    np.testing.assert_array_equal(tail.r, plain.r)
    # each pair: gpd_pvalue on its full null equals the streamed top-of-tail version
    score = np.abs(plain.r)
    full = np.array([gpd_pvalue(score[j:j + 1], np.abs(plain.null[:, j]), fallback=plain.pvalue[j:j + 1])[0]
                     for j in range(Y.shape[0])])
    np.testing.assert_allclose(tail.pvalue, full, rtol=1e-12, atol=0)
    np.testing.assert_allclose(tail.pvalue_fwer, gpd_pvalue(score, plain.null_max, fallback=plain.pvalue_fwer))
    assert (tail.pvalue[:4] < 1 / (k + 1)).all()  # resolved below the permutation floor
    big = plain.pvalue >= 0.10
    np.testing.assert_array_equal(tail.pvalue[big], plain.pvalue[big])  # the fit only touches small p
    np.testing.assert_allclose(tail.pvalue_fdr, rc.stats.fdr_bh(tail.pvalue))


def test_resolution_note():
    k, g = 999, 15000
    p = np.full(g, 0.5)
    p[:90] = 1 / (k + 1)
    note = rc.nulls.resolution_note(p, k)
    assert "0.001" in note and "90 of 15000" in note and "0.167" in note and note.count(".") >= 1
    assert rc.nulls.resolution_note(p[:1000], k) == ""  # bound 0.011 < 0.05: q not held up
    assert rc.nulls.resolution_note(np.full(g, 0.5), k) == ""


def test_gene_association_resolution_note_and_duplicates(tmp_path, rng):
    c = rc.simulate.cohort(n_regions=30, n_patients=2, n_controls=2, n_genes=200, n_planted_genes=20, seed=4)
    df = pd.DataFrame(c.expression, columns=c.genes)
    df.insert(0, "label", c.labels)
    df["Mar-01"] = rng.standard_normal(30)
    df = pd.concat([df, df[["Mar-01"]]], axis=1)
    df.to_csv(tmp_path / "e.csv", index=False)
    with pytest.raises(InputError) as exc:
        rc.genes.load_expression(tmp_path / "e.csv")
    assert "duplicate_genes='drop'" in str(exc.value) and "--duplicate-genes drop" in str(exc.value)
    res = rc.genes.associate(c.change_map, tmp_path / "e.csv", labels=c.labels, duplicate_genes="drop",
                             nulls=permutation_indices(0, 19, 30))
    assert "Mar-01" not in res.genes.tolist() and res.genes.size == 200
    assert res.n_perm == 19 and "1/(19+1)" in res.resolution_note()


def test_enrichment_reports_dropped_sets(rng):
    genes = np.array([f"G{i}" for i in range(300)])
    e = rc.genes.load_expression(rng.standard_normal((25, 300)), regions=[f"L_r{i}" for i in range(25)],
                                 genes=genes)
    sets = {"small": list(genes[:5]), "mid": list(genes[:50]), "big": list(genes[:250])}
    x = rng.standard_normal(25)
    res = rc.genes.enrichment(x, e, sets, null_type="random-genes", n_perm=20)
    assert res.categories.tolist() == ["mid"] and set(res.dropped) == {"small", "big"}
    msg = res.dropped_message
    assert msg.startswith("2 of 3 gene sets") and "big" in msg and "max_size=200" in msg and "min_size=10" in msg
    res = rc.genes.enrichment(x, e, sets, null_type="random-genes", n_perm=20, max_size=None)
    assert res.categories.tolist() == ["mid", "big"] and res.dropped_message.startswith("1 of 3")
