"""Real data: HCP Desikan-Killiany coupling map vs AHBA genes under Váša spins,
recouple's own rotations against neuromaps' (p-values within Monte-Carlo error)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import recouple as rc
from recouple.io import surfaces

from conftest import load_hcp

K = 500


def _dk_centroids(shared, names):
    lh = surfaces.load_sphere(shared / "surfaces" / "fsa5_sphere_lh.gii")
    rh = surfaces.load_sphere(shared / "surfaces" / "fsa5_sphere_rh.gii")
    coords = np.vstack([lh, rh])
    hemi = np.r_[np.zeros(len(lh), int), np.ones(len(rh), int)]
    labs, codes_by_name = [], {}
    for h, side in enumerate(("lh", "rh")):
        lab, table = surfaces.load_labels(shared / "ahba" / f"fsa5_{side}_aparc.annot")
        wall = surfaces.medial_mask(lab, table)
        lab = np.where(wall, 0, lab + 1000 * h)
        labs.append(lab)
        for code, name in table.items():
            codes_by_name[f"{'LR'[h]}_{name}"] = code + 1000 * h
    missing = [n for n in names if n not in codes_by_name]
    assert not missing, missing
    return surfaces.parcel_centroids(coords, np.concatenate(labs), hemi=hemi,
                                     parcels=[codes_by_name[n] for n in names])


@pytest.mark.realdata
@pytest.mark.peer
def test_coupling_vs_genes_pvalues_agree_with_neuromaps(shared_data):
    nspins = pytest.importorskip("neuromaps.nulls.spins")
    nstats = pytest.importorskip("neuromaps.stats")
    sc, fc, labels = load_hcp(shared_data, "ctx")
    x = rc.coupling.nodal(sc, fc).coupling
    expr = pd.read_csv(shared_data / "ahba" / "gene_expression_data.csv", encoding="utf-8-sig")
    expr = expr.set_index("Region").loc[list(labels)]
    genes = expr.columns[1:201]
    Y = expr[genes].to_numpy(dtype=float).T
    cen, ph, _ = _dk_centroids(shared_data, list(labels))

    ours = rc.nulls.compare_maps(x, Y, method="spearman",
                              nulls={"method": "vasa", "coords": cen, "hemi": ph, "n_perm": K, "seed": 0})
    spins = nspins.gen_spinsamples(cen, ph, n_rotate=K, seed=1, method="vasa")  # (N, K)
    theirs = rc.nulls.compare_maps(x, Y, method="spearman", nulls=spins.T)
    # compare_images itself on a few genes (nulls of rank(x): see test_nulls).
    src = rc.stats.rankdata(x)
    for g in range(3):
        r, p = nstats.compare_images(x, Y[g], metric="spearmanr", ignore_zero=False, nulls=src[spins])
        assert theirs.r[g] == pytest.approx(r, abs=1e-12) and theirs.pvalue[g] == p

    p = 0.5 * (ours.pvalue + theirs.pvalue)
    se = np.sqrt(2 * p * (1 - p) / K) + 2.0 / K
    assert np.all(np.abs(ours.pvalue - theirs.pvalue) <= 4.5 * se)
    assert abs(np.mean(ours.pvalue - theirs.pvalue)) < 0.02
    np.testing.assert_allclose(ours.r, theirs.r)
