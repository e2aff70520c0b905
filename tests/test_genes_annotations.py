"""Annotation maps (receptors, other maps): parcellation and association."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

import recouple as rc
from recouple.io.annotations import load_annotation_table, parcellate, parcellate_surface, parcellate_volume


def test_parcellate_means_ignore_nonfinite():
    data = np.array([[1.0, 3.0, np.nan, 5.0, 7.0, 2.0]])
    labels = np.array([1, 1, 1, 2, 2, 3])
    out = parcellate(data, labels, [1, 2, 3, 4])
    np.testing.assert_allclose(out, [[2.0, 6.0, 2.0, np.nan]])


def test_parcellate_volume(tmp_path):
    nib = pytest.importorskip("nibabel")
    atlas = np.zeros((4, 4, 4), dtype=np.int16)
    atlas[:2] = 1
    atlas[2:, :2] = 2
    rng = np.random.default_rng(0)
    vol = rng.random((4, 4, 4))
    nib.save(nib.Nifti1Image(atlas, np.eye(4)), tmp_path / "atlas.nii.gz")
    nib.save(nib.Nifti1Image(vol, np.eye(4)), tmp_path / "receptor.nii.gz")
    res = parcellate_volume(tmp_path / "receptor.nii.gz", tmp_path / "atlas.nii.gz", region_names={1: "A", 2: "B"})
    np.testing.assert_allclose(res.values, [[vol[atlas == 1].mean(), vol[atlas == 2].mean()]])
    assert list(res.regions) == ["A", "B"] and list(res.names) == ["receptor"]


@pytest.mark.realdata
def test_surface_annotation_association(shared_data, tmp_path):
    annot = (shared_data / "ahba" / "fsa5_lh_aparc.annot", shared_data / "ahba" / "fsa5_rh_aparc.annot")
    rng = np.random.default_rng(0)
    lh, rh = rng.random(10242), rng.random(10242)
    res = parcellate_surface((lh, rh), annot, names=["receptor"])
    assert "L_bankssts" in res.regions and "R_insula" in res.regions
    assert not any("unknown" in r.lower() or "corpuscallosum" in r.lower() for r in res.regions)
    # association of an HCP DK map with the parcellated annotation, aligned by label
    labels = np.loadtxt(shared_data / "hcp" / "funcLabels_ctx.csv", delimiter=",", dtype=str)
    y = rng.standard_normal(68)
    ann = rc.genes.from_annotations(res)
    out = rc.genes.associate(y, ann, labels=labels)
    al = rc.genes.align(ann, labels)
    np.testing.assert_allclose(out.r[0, 0], stats.spearmanr(y[al.map_index], al.expression.values[:, 0])[0],
                               atol=1e-12)


def test_annotation_table(tmp_path):
    (tmp_path / "maps.csv").write_text("label,5HT1a,D2\nL_a,1,2\nL_b,2,1\nL_c,3,5\nL_d,4,3\n")
    ann = load_annotation_table(tmp_path / "maps.csv")
    assert list(ann.names) == ["5HT1a", "D2"] and ann.values.shape == (2, 4)
    res = rc.genes.associate([1.0, 2.0, 3.0, 4.5], rc.genes.from_annotations(ann),
                             labels=["lh_a", "lh_b", "lh_c", "lh_d"])
    np.testing.assert_allclose(res.r[0], [1.0, 0.6], atol=1e-12)  # D2 ranks 2,1,4,3
