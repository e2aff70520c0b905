"""Rotations, spins, variogram surrogates and Moran randomisation: references,
peers (neuromaps, brainsmash) and bad input."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from scipy.spatial import cKDTree

import recouple as rc
from recouple.exceptions import InputError, ShapeError
from recouple.io import surfaces


def _sphere(rng, n, radius=100.0):
    p = rng.standard_normal((n, 3))
    return radius * p / np.linalg.norm(p, axis=1, keepdims=True)


def test_rotations_are_haar_and_seeded():
    R = rc.nulls.rotations(2000, seed=1)
    assert R.shape == (2000, 2, 3, 3)
    flat = R.reshape(-1, 3, 3)
    np.testing.assert_allclose(np.einsum("kji,kjl->kil", flat, flat), np.broadcast_to(np.eye(3), flat.shape),
                               atol=1e-12)
    np.testing.assert_allclose(np.linalg.det(flat), 1.0, atol=1e-12)
    F = np.diag([-1.0, 1.0, 1.0])
    np.testing.assert_allclose(R[:, 1], F @ R[:, 0] @ F, atol=1e-15)
    # Rotation angle density (1 - cos t) / pi on [0, pi].
    theta = np.arccos(np.clip((np.trace(R[:, 0], axis1=1, axis2=2) - 1) / 2, -1, 1))
    cdf = lambda t: (t - np.sin(t)) / np.pi  # noqa: E731
    assert stats.kstest(theta, cdf).pvalue > 0.001
    np.testing.assert_array_equal(rc.nulls.rotations(5, seed=1), R[:5])
    np.testing.assert_array_equal(rc.nulls.rotations(3, seed=1, start=2), R[2:5])


@pytest.mark.peer
def test_rotations_from_normals_match_neuromaps():
    spins = pytest.importorskip("neuromaps.nulls.spins")
    a, b = np.random.RandomState(5), np.random.RandomState(5)
    normals = np.stack([a.normal(size=(3, 3)) for _ in range(10)])
    ref = np.stack([np.stack(spins._gen_rotation(b)) for _ in range(10)])
    np.testing.assert_array_equal(rc.nulls.rotations_from_normals(normals), ref)


def test_alexander_bloch_matches_kdtree(rng):
    pts = _sphere(rng, 300)
    hemi = (pts[:, 0] > 0).astype(int)
    R = rc.nulls.rotations(8, seed=0)
    out = rc.nulls.spin_permutations(pts, hemi=hemi, rotations=R)
    for k in range(8):
        for h in (0, 1):
            sel = np.flatnonzero(hemi == h)
            col = cKDTree(pts[sel] @ R[k, h]).query(pts[sel])[1]
            np.testing.assert_array_equal(out[k, sel], sel[col])


def test_grid_index_exact_for_many_points(rng):
    pts = _sphere(rng, 6000)
    R = rc.nulls.rotations(3, seed=2)[:, 0]
    out = rc.nulls.spin_permutations(pts, rotations=R)
    ref = np.stack([cKDTree(pts @ r).query(pts)[1] for r in R])
    np.testing.assert_array_equal(out, ref)


def test_spins_same_on_jax(rng):
    pytest.importorskip("jax")
    pts = _sphere(rng, 200)
    a = rc.nulls.spin_permutations(pts, n_perm=4, seed=3)
    b = rc.nulls.spin_permutations(pts, n_perm=4, seed=3, backend="jax")
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("method", ["vasa", "hungarian"])
def test_exact_permutations(rng, method):
    pts = _sphere(rng, 60)
    hemi = np.r_[np.zeros(25, int), np.ones(35, int)]  # unequal hemispheres
    out = rc.nulls.spin_permutations(pts, n_perm=5, seed=0, method=method, hemi=hemi)
    for row in out:
        np.testing.assert_array_equal(np.sort(row), np.arange(60))
        assert np.all(hemi[row] == hemi)


def test_vasa_matches_plain_greedy(rng):
    pts = _sphere(rng, 40)
    R = rc.nulls.rotations(3, seed=4)
    out = rc.nulls.spin_permutations(pts, rotations=R, method="vasa")
    for k in range(3):
        d = np.sqrt(((pts[:, None] - (pts @ R[k, 0])[None]) ** 2).sum(-1))
        col = np.empty(40, int)
        for _ in range(40):
            row = d.min(1).argmax()
            col[row] = d[row].argmin()
            d[row] = -np.inf
            d[:, col[row]] = np.inf
        np.testing.assert_array_equal(out[k], col)


def _fsa5(shared, parc):
    lh = surfaces.load_sphere(shared / "surfaces" / "fsa5_sphere_lh.gii")
    rh = surfaces.load_sphere(shared / "surfaces" / "fsa5_sphere_rh.gii")
    lab, _ = surfaces.load_labels(shared / "parcellations" / f"{parc}_fsa5.csv")
    coords = np.vstack([lh, rh])
    hemi = np.r_[np.zeros(len(lh), int), np.ones(len(rh), int)]
    return coords, hemi, lab


def _gifti_labels(tmp_path, lab):
    import nibabel as nib

    files = []
    for h, sl in enumerate([slice(0, 10242), slice(10242, None)]):
        lt = nib.gifti.GiftiLabelTable()
        for v in np.unique(lab[sl]):
            L = nib.gifti.GiftiLabel(int(v))
            L.label = "unknown" if v == 0 else f"p{v}"
            lt.labels.append(L)
        arr = nib.gifti.GiftiDataArray(lab[sl].astype(np.int32), intent="NIFTI_INTENT_LABEL",
                                       datatype="NIFTI_TYPE_INT32")
        f = tmp_path / f"h{h}.label.gii"
        nib.save(nib.gifti.GiftiImage(labeltable=lt, darrays=[arr]), f)
        files.append(str(f))
    return files


@pytest.mark.peer
@pytest.mark.realdata
@pytest.mark.parametrize("parc", ["schaefer_400", "schaefer_100"])
def test_parcel_spins_match_neuromaps(shared_data, tmp_path, parc):
    spins = pytest.importorskip("neuromaps.nulls.spins")
    coords, hemi, lab = _fsa5(shared_data, parc)
    cen, ph, codes = surfaces.parcel_centroids(coords, lab, hemi=hemi)
    sph = (str(shared_data / "surfaces" / "fsa5_sphere_lh.gii"), str(shared_data / "surfaces" / "fsa5_sphere_rh.gii"))
    ref_c, ref_h = spins.get_parcel_centroids(sph, _gifti_labels(tmp_path, lab), method="surface")
    np.testing.assert_array_equal(cen, ref_c)
    np.testing.assert_array_equal(ph, ref_h)
    k = 6
    rs = np.random.RandomState(11)
    R = rc.nulls.rotations_from_normals(np.stack([rs.normal(size=(3, 3)) for _ in range(k)]))
    for method, ours in (("original", "alexander_bloch"), ("vasa", "vasa"), ("hungarian", "hungarian")):
        ref = spins.gen_spinsamples(cen, ph, n_rotate=k, seed=11, method=method, check_duplicates=False).T
        np.testing.assert_array_equal(rc.nulls.spin_permutations(cen, hemi=ph, rotations=R, method=ours), ref)


@pytest.mark.peer
@pytest.mark.realdata
def test_baum_cornblath_match_neuromaps(shared_data, tmp_path):
    spins = pytest.importorskip("neuromaps.nulls.spins")
    coords, hemi, lab = _fsa5(shared_data, "schaefer_100")
    files = _gifti_labels(tmp_path, lab)
    sph = (str(shared_data / "surfaces" / "fsa5_sphere_lh.gii"), str(shared_data / "surfaces" / "fsa5_sphere_rh.gii"))
    k = 3
    R = rc.nulls.rotations(k, seed=0)
    vert_spins = rc.nulls.spin_permutations(coords, hemi=hemi, rotations=R)
    ref = spins.spin_parcels(sph, files, n_rotate=k, spins=vert_spins.T).T
    ours = rc.nulls.spin_permutations(coords, hemi=hemi, rotations=R, method="baum", parcellation=lab)
    np.testing.assert_array_equal(ours, ref)
    data = np.random.default_rng(0).standard_normal(100)
    ref = spins.spin_data(data, sph, files, n_rotate=k, spins=vert_spins.T).T
    ours = rc.nulls.spin_permutations(coords, hemi=hemi, rotations=R, method="cornblath", parcellation=lab,
                                      data=data)
    np.testing.assert_allclose(ours, ref, atol=1e-12)


@pytest.mark.peer
@pytest.mark.realdata
@pytest.mark.parametrize("metric", ["pearsonr", "spearmanr"])
def test_associate_pvalues_match_compare_images(shared_data, metric):
    nstats = pytest.importorskip("neuromaps.stats")
    coords, hemi, lab = _fsa5(shared_data, "schaefer_400")
    cen, ph, _ = surfaces.parcel_centroids(coords, lab, hemi=hemi)
    fc = np.loadtxt(shared_data / "hcp" / "funcMatrix_ctx_schaefer_400.csv", delimiter=",")
    sc = np.loadtxt(shared_data / "hcp" / "strucMatrix_ctx_schaefer_400.csv", delimiter=",")
    x = fc.sum(axis=1)
    Y = np.stack([sc.sum(axis=1), (sc > 0).sum(axis=1).astype(float), fc.std(axis=1)])
    idx = rc.nulls.spin_permutations(cen, hemi=ph, n_perm=99, seed=0, method="vasa")
    method = "pearson" if metric == "pearsonr" else "spearman"
    res = rc.nulls.compare_maps(x, Y, nulls=idx, method=method)
    # compare_images ranks src and trg but not the nulls: give it nulls of rank(x)
    # (exact permutations, so this is the Spearman null).
    src = stats.rankdata(x) if method == "spearman" else x
    for g, y in enumerate(Y):
        r, p = nstats.compare_images(x, y, metric=metric, ignore_zero=False, nulls=src[idx].T)
        assert res.r[g] == pytest.approx(r, abs=1e-12)
        assert res.pvalue[g] == p


def test_variogram_reference_and_fit(rng):
    pts = rng.uniform(0, 100, size=(60, 3))
    D = rc.nulls.distance(pts)
    x = np.sin(pts[:, 0] / 20) + 0.1 * rng.standard_normal(60)
    fit = rc.nulls.variogram_surrogates(x, D, n_perm=20, seed=0, return_fit=True)
    assert fit.maps.shape == (20, 60)
    np.testing.assert_allclose(fit.maps.mean(axis=1), 0, atol=1e-12)
    again = rc.nulls.variogram_surrogates(x, D, n_perm=20, seed=0, batch_size=7)
    np.testing.assert_allclose(again, fit.maps, atol=1e-12)
    rs = rc.nulls.variogram_surrogates(x, D, n_perm=3, seed=0, resample=True)
    np.testing.assert_array_equal(np.sort(rs, axis=1), np.broadcast_to(np.sort(x), (3, 60)))
    xn = x.copy()
    xn[:3] = np.nan
    out = rc.nulls.variogram_surrogates(xn, D, n_perm=4, seed=0)
    assert np.isnan(out[:, :3]).all() and np.isfinite(out[:, 3:]).all()


@pytest.mark.peer
def test_variogram_matches_brainsmash_given_permutation(rng):
    mapgen = pytest.importorskip("brainsmash.mapgen")
    pts = rng.uniform(0, 100, size=(80, 3))
    D = rc.nulls.distance(pts)
    x = np.cos(pts[:, 1] / 25) + 0.2 * rng.standard_normal(80)
    base = mapgen.Base(x, D, seed=0)
    perms = np.stack([rng.permutation(80) for _ in range(4)])
    fit = rc.nulls.variogram_surrogates(x, D, n_perm=4, permutations=perms, normals=np.zeros((4, 80)),
                                        return_fit=True)
    np.testing.assert_allclose(fit.target, base._smvar, atol=1e-12)
    np.testing.assert_allclose(fit.h, base.h, atol=1e-12)
    for k in range(4):
        rows = []
        for d in base.deltas:
            sm = base.smooth_map(x[perms[k]][:, None], d)[:, 0]
            rows.append([float(np.squeeze(v)) for v in base.regress(base.compute_smooth_variogram(sm), base._smvar)])
        a, b, s = np.array(rows).T
        i = int(np.argmin(s))
        assert fit.delta[k] == pytest.approx(base.deltas[i])
        np.testing.assert_allclose([fit.alpha[k], fit.beta[k], fit.sse[k]], [a[i], b[i], s[i]], rtol=1e-9)


@pytest.mark.peer
def test_variogram_fit_quality_like_brainsmash(rng):
    mapgen = pytest.importorskip("brainsmash.mapgen")
    pts = rng.uniform(0, 100, size=(70, 3))
    D = rc.nulls.distance(pts)
    x = np.sin(pts[:, 0] / 15) + 0.3 * rng.standard_normal(70)
    ours = rc.nulls.variogram_surrogates(x, D, n_perm=60, seed=1, return_fit=True)
    theirs = mapgen.Base(x, D, seed=1)(60, batch_size=20)
    base = mapgen.Base(x, D, seed=0)
    sse = lambda maps: np.array([np.sum((base.compute_smooth_variogram(m) - base._smvar) ** 2) for m in maps])  # noqa
    a, b = sse(ours.maps), sse(theirs)
    assert stats.mannwhitneyu(a, b).pvalue > 0.001
    assert 0.5 < np.median(a) / np.median(b) < 2.0


def test_variogram_sampled_mode(rng):
    pts = _sphere(rng, 800)
    x = pts[:, 2] / 100 + 0.2 * rng.standard_normal(800)
    d, idx = rc.nulls.distance(pts, knn=200)
    assert d.shape == (800, 201) and np.all(idx[:, 0] == np.arange(800))
    out = rc.nulls.variogram_surrogates(x, d, index=idx, mode="sampled", knn=200, ns=100, n_perm=5, seed=0)
    assert out.shape == (5, 800) and np.isfinite(out).all()
    np.testing.assert_allclose(out.mean(axis=1), 0, atol=1e-12)
    # Spatially smooth: neighbours correlate more than random pairs.
    nb = np.mean([np.corrcoef(o, o[idx[:, 1]])[0, 1] for o in out])
    assert nb > 0.2


def test_moran_singleton_and_pair(rng):
    pts = rng.uniform(0, 100, size=(50, 3))
    W = rc.nulls.moran_weights(rc.nulls.distance(pts))
    x = pts[:, 0] + rng.standard_normal(50)
    for proc in ("singleton", "pair"):
        s = rc.nulls.moran(x, W, n_perm=30, seed=0, procedure=proc, tol=1e-10)
        np.testing.assert_allclose(s.mean(axis=1), x.mean(), atol=1e-10)
        # All components kept: the variance of x is kept exactly.
        np.testing.assert_allclose(s.std(axis=1, ddof=1), x.std(ddof=1), rtol=1e-8)
    np.testing.assert_array_equal(rc.nulls.moran(x, W, n_perm=3, seed=5), rc.nulls.moran(x, W, n_perm=3, seed=5))


def test_associate_with_spin_spec(rng):
    pts = _sphere(rng, 120)
    hemi = (pts[:, 0] > 0).astype(int)
    x = pts[:, 2]
    Y = np.stack([pts[:, 2] + 10 * rng.standard_normal(120), rng.standard_normal(120)])
    spec = {"method": "hungarian", "coords": pts, "hemi": hemi, "n_perm": 30, "seed": 0}
    res = rc.nulls.compare_maps(x, Y, nulls=spec)
    idx = rc.nulls.spin_permutations(pts, hemi=hemi, n_perm=30, seed=0, method="hungarian")
    np.testing.assert_array_equal(res.pvalue, rc.nulls.compare_maps(x, Y, nulls=idx).pvalue)


def test_bad_inputs(rng):
    pts = _sphere(rng, 50)
    with pytest.raises(InputError, match="sphere"):
        rc.nulls.spin_permutations(pts * rng.uniform(0.5, 1.5, (50, 1)), n_perm=2, seed=0)
    with pytest.raises(ShapeError, match=r"\(N, 3\)"):
        rc.nulls.spin_permutations(pts[:, :2], n_perm=2, seed=0)
    with pytest.raises(InputError, match="hemi"):
        rc.nulls.spin_permutations(pts, n_perm=2, seed=0, hemi=np.full(50, 3))
    with pytest.raises(InputError, match="n_perm"):
        rc.nulls.spin_permutations(pts)
    with pytest.raises(InputError, match="orthogonal"):
        rc.nulls.spin_permutations(pts, rotations=np.ones((2, 3, 3)))
    with pytest.raises(InputError, match="parcellation"):
        rc.nulls.spin_permutations(pts, n_perm=2, seed=0, method="baum")
    lab = np.r_[np.zeros(10), np.ones(20), 2 * np.ones(20)].astype(int)
    with pytest.raises(InputError, match="appear"):
        surfaces.parcel_centroids(pts, lab, parcels=[1, 2, 3])
    with pytest.raises(InputError, match="one hemisphere"):
        surfaces.parcel_centroids(pts, lab, hemi=(np.arange(50) % 2))
    D = rc.nulls.distance(pts)
    with pytest.raises(InputError, match="vary"):
        rc.nulls.variogram_surrogates(np.ones(50), D, n_perm=2)
    with pytest.raises(ShapeError, match="distance"):
        rc.nulls.variogram_surrogates(rng.standard_normal(49), D, n_perm=2)
    with pytest.raises(InputError, match="index"):
        rc.nulls.variogram_surrogates(rng.standard_normal(50), D[:, :5], mode="sampled", n_perm=2)
    with pytest.raises(InputError, match="vary"):
        rc.nulls.moran(np.ones(50), rc.nulls.moran_weights(D), n_perm=2)


@pytest.mark.peer
def test_burt2018_matches_neuromaps(rng):
    burt = pytest.importorskip("neuromaps.nulls.burt")
    pts = rng.uniform(0, 100, (50, 3))
    D = rc.nulls.distance(pts)
    x = np.sin(pts[:, 0] / 20) + 0.1 * rng.standard_normal(50)
    rho, d0 = burt.estimate_rho_d0(D, x + abs(x.min()) + 0.1)
    _, (r2, d2) = rc.nulls.burt2018_surrogates(x, D, n_perm=2, seed=0, normalize="neuromaps", return_params=True)
    np.testing.assert_allclose([r2, d2], [rho, d0], rtol=1e-6)
    u = rng.standard_normal((3, 50))
    ours = rc.nulls.burt2018_surrogates(x, D, n_perm=3, normals=u, rho=rho, d0=d0, normalize="neuromaps")
    w = burt._make_weight_matrix(D, d0)
    for k in range(3):
        s = np.linalg.solve(np.eye(50) - rho * w, u[k])
        s[s.argsort()] = np.sort(x)
        np.testing.assert_allclose(ours[k], s, atol=1e-12)


def test_burt2018_row_normalised(rng):
    pts = rng.uniform(0, 100, (40, 3))
    D = rc.nulls.distance(pts)
    x = pts[:, 1] + 5 * rng.standard_normal(40)
    s = rc.nulls.burt2018_surrogates(x, D, n_perm=6, seed=2)
    np.testing.assert_array_equal(np.sort(s, axis=1), np.broadcast_to(np.sort(x), (6, 40)))
    np.testing.assert_array_equal(s, rc.nulls.burt2018_surrogates(x, D, n_perm=6, seed=2))
    with pytest.raises(InputError, match="normalize"):
        rc.nulls.burt2018_surrogates(x, D, n_perm=2, normalize="col")
