"""Check before compute: `recouple run --check` reads every input and computes
nothing; every `recouple run` does the same checks first, so a configuration
problem (missing geometry for spins, labels that do not agree, duplicate
genes, a bad nulls file, a vertex spin without a surface) is refused before
any coupling is computed. Also: [regions] geometry in the study file, the
files -> ingest -> check -> run -> report flow on simulated files."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

import recouple as rc
from recouple.cli import main
from recouple.exceptions import ConfigError
from recouple.study import check_study, load_config, write_config


def _sim(seed=2, n_regions=16, **kw):
    return rc.simulate.cohort(n_regions=n_regions, n_patients=5, n_controls=3, n_genes=40, seed=seed, **kw)


def _config(store, **sections):
    cfg = {"study": {"store": str(store), "output": "results"},
           "contrasts": [{"name": "pp", "type": "paired", "group": "patient", "sessions": ["pre", "post"]}],
           "association": {"expression": "store", "pls_components": 1, "pls_bootstrap": 10},
           "nulls": {"method": "vasa", "n_perm": 20},
           "permutation": {"n_perm": 50}}
    for k, v in sections.items():
        cfg.setdefault(k, {}).update(v) if isinstance(v, dict) else cfg.__setitem__(k, v)
    return cfg


def _store_without_geometry(sim, path):
    """A store as ingested from matrix files alone: NaN centroids."""
    st = rc.store.create(path, scans=dict(sim.scans), labels=sim.labels)
    st.write_array("sc", sim.sc)
    st.write_array("fc", sim.fc)
    st.write_array("maps/expression", np.asarray(sim.expression, dtype=np.float64),
                   attrs={"space": "region", "genes": [str(g) for g in sim.genes]})
    st.close()
    return path


def _sphere_points(n, radius=100.0):
    i = np.arange(n) + 0.5
    phi = np.arccos(1 - 2 * i / n)
    theta = np.pi * (1 + 5 ** 0.5) * i
    return radius * np.column_stack([np.cos(theta) * np.sin(phi), np.sin(theta) * np.sin(phi), np.cos(phi)])


def _surface_files(sim, folder, n_vertices=200):
    """Per-vertex CSV parcellations (region names) and FreeSurfer spheres, one per hemisphere."""
    paths = {"parcellation": [], "sphere": []}
    cent = np.asarray(sim.centroids, dtype=float)
    hemi = np.asarray(sim.hemisphere).astype(str)
    for h, tag in (("L", "lh"), ("R", "rh")):
        idx = np.flatnonzero(hemi == h)
        dirs = cent[idx] / np.linalg.norm(cent[idx], axis=1, keepdims=True)
        verts = np.vstack([_sphere_points(n_vertices), 100.0 * dirs])
        nearest = np.argmax(verts @ dirs.T, axis=1)
        names = np.asarray(sim.labels)[idx][nearest]
        parc = folder / f"{tag}.parc.csv"
        parc.write_text("\n".join(names) + "\n")
        sphere = folder / f"{tag}.sphere"
        nib.freesurfer.write_geometry(str(sphere), verts, np.array([[0, 1, 2]], dtype=np.int32))
        paths["parcellation"].append(parc.name)
        paths["sphere"].append(sphere.name)
    return paths


def test_check_computes_nothing_and_summarises(tmp_path, capsys):
    sim = _sim()
    rc.store.from_simulated(sim, tmp_path / "c.h5").close()
    path = write_config(tmp_path / "STUDY.toml", _config("c.h5"))
    assert main(["run", "--check", str(path)]) == 0
    out = capsys.readouterr().out
    assert "nothing computed" in out and "contrast pp: paired" in out and "'vasa' spins" in out
    assert "exchangeability" in out and "genes: 40 genes" in out
    assert not (tmp_path / "results").exists()
    with rc.store.open(tmp_path / "c.h5") as st:
        assert st.results() == []


def test_spins_without_geometry_refused_before_coupling(tmp_path, capsys):
    sim = _sim()
    _store_without_geometry(sim, tmp_path / "c.h5")
    path = write_config(tmp_path / "STUDY.toml", _config("c.h5"))
    with pytest.raises(ConfigError) as err:
        check_study(load_config(path))
    text = str(err.value)
    assert "needs finite region centroids" in text and "--parcellation LH RH" in text
    assert "rc.store.set_geometry" in text and "[regions]" in text and "nan_to_num" not in text
    assert main(["run", str(path)]) == 2
    assert "--sphere" in capsys.readouterr().err
    with rc.store.open(tmp_path / "c.h5") as st:
        assert st.results() == [], "coupling was computed before the configuration was refused"
    assert not (tmp_path / "results").exists()


def test_regions_section_gives_geometry(tmp_path):
    sim = _sim()
    _store_without_geometry(sim, tmp_path / "c.h5")
    table = pd.DataFrame({"label": sim.labels, "x": sim.centroids[:, 0], "y": sim.centroids[:, 1],
                          "z": sim.centroids[:, 2], "hemisphere": sim.hemisphere})
    table.to_csv(tmp_path / "centroids.csv", index=False)
    cfg = _config("c.h5", regions={"centroids": "centroids.csv"})
    plan = check_study(load_config(write_config(tmp_path / "S.toml", cfg)))
    assert "[regions] centroids" in plan.summary()
    # the same spins as a store that holds those centroids
    rc.store.from_simulated(sim, tmp_path / "ref.h5").close()
    ref = check_study(load_config(write_config(tmp_path / "R.toml", _config("ref.h5"))))
    np.testing.assert_allclose(plan.nulls["spec"]["coords"], ref.nulls["spec"]["coords"], atol=1e-12)
    # a surface parcellation + sphere, paths relative to the study file
    files = _surface_files(sim, tmp_path)
    cfg = _config("c.h5", regions=files)
    plan = check_study(load_config(write_config(tmp_path / "S2.toml", cfg)))
    assert plan.geometry.has_surface and np.isfinite(plan.geometry.centroids).all()
    # bad [regions] values are config errors
    for bad, pattern in (({"sphere": files["sphere"]}, "sphere needs parcellation"),
                         ({"parcellation": files["parcellation"], "sphere": files["sphere"],
                           "centroids": "centroids.csv"}, "not both"),
                         ({"parcellation": ["nope.annot", "nope2.annot"], "sphere": files["sphere"]},
                          "regions.parcellation file .* does not exist")):
        with pytest.raises(ConfigError, match=pattern):
            load_config(write_config(tmp_path / "B.toml", _config("c.h5", regions=bad)))


def test_duplicate_genes_key(tmp_path):
    sim = _sim()
    rc.store.from_simulated(sim, tmp_path / "c.h5").close()
    expr = pd.DataFrame(np.asarray(sim.expression), columns=[str(g) for g in sim.genes])
    expr.columns = ["Mar-01", "Mar-01", *expr.columns[2:]]
    expr.insert(0, "label", sim.labels)
    expr.to_csv(tmp_path / "expr.csv", index=False)
    cfg = _config("c.h5", association={"expression": "expr.csv"})
    with pytest.raises(ConfigError, match=r"genes must be unique.*duplicate_genes = \"drop\""):
        check_study(load_config(write_config(tmp_path / "S.toml", cfg)))
    cfg["association"]["duplicate_genes"] = "drop"
    plan = check_study(load_config(write_config(tmp_path / "S.toml", cfg)))
    assert plan.expression.genes.size == 38 and "duplicate_genes = 'drop'" in plan.summary()
    cfg["association"]["duplicate_genes"] = "keep"
    with pytest.raises(ConfigError, match=r"\[association\] duplicate_genes must be one of"):
        load_config(write_config(tmp_path / "S.toml", cfg))


def test_labels_must_agree_names_the_missing(tmp_path):
    sim = _sim()
    rc.store.from_simulated(sim, tmp_path / "c.h5").close()
    expr = pd.DataFrame(np.asarray(sim.expression)[2:], columns=[str(g) for g in sim.genes])
    expr.insert(0, "label", sim.labels[2:])
    expr.to_csv(tmp_path / "expr.csv", index=False)
    cfg = _config("c.h5", association={"expression": "expr.csv"})
    with pytest.raises(ConfigError, match=rf"no row for 2 of the store's 16 regions: {sim.labels[0]}, {sim.labels[1]}"):
        check_study(load_config(write_config(tmp_path / "S.toml", cfg)))
    maps = pd.DataFrame({"label": sim.labels[1:], "myelin": np.arange(15.0)})
    maps.to_csv(tmp_path / "maps.csv", index=False)
    cfg = _config("c.h5", association={"maps": ["maps.csv"]})
    with pytest.raises(ConfigError, match=rf"maps.csv lacks 1 region\(s\) of the store: {sim.labels[0]}"):
        check_study(load_config(write_config(tmp_path / "S.toml", cfg)))
    np.save(tmp_path / "nulls.npy", np.zeros((10, 15), dtype=np.int64))
    cfg = _config("c.h5", nulls={"file": "nulls.npy"})
    with pytest.raises(ConfigError, match=r"\[nulls\] file .*nulls.npy.*N = 16"):
        check_study(load_config(write_config(tmp_path / "S.toml", cfg)))


def test_vertex_spins_need_a_surface_and_give_maps(tmp_path):
    sim = _sim()
    rc.store.from_simulated(sim, tmp_path / "c.h5").close()
    cfg = _config("c.h5", nulls={"method": "cornblath", "n_perm": 10})
    with pytest.raises(ConfigError, match="rotates the vertices of a surface parcellation"):
        check_study(load_config(write_config(tmp_path / "S.toml", cfg)))
    cfg["regions"] = _surface_files(sim, tmp_path)
    res = rc.run_study(write_config(tmp_path / "S.toml", cfg), log=lambda *_: None)
    nulls = res.steps["nulls"]
    assert "maps" in nulls and "indices" not in nulls
    assert nulls["maps"].dtype == np.float64 and nulls["maps"].shape == (10, 16)
    # the stored surrogates are what cornblath spins give for the target map
    plan = check_study(load_config(tmp_path / "S.toml"))
    y = res.steps["contrasts"]["pp"]["statistic"]
    kind, ref = rc.nulls.spec.resolve(plan.nulls["spec"], y)
    np.testing.assert_array_equal(nulls["maps"], ref[0])
    g = rc.genes.associate(y, plan.expression, labels=sim.labels, nulls=ref[0])
    np.testing.assert_array_equal(res.steps["genes"]["pvalue"], g.pvalue[0])


def test_nulls_file_is_used(tmp_path):
    sim = _sim()
    rc.store.from_simulated(sim, tmp_path / "c.h5").close()
    idx = np.array([np.random.default_rng(k).permutation(16) for k in range(30)])
    np.save(tmp_path / "spins.npy", idx)
    res = rc.run_study(write_config(tmp_path / "S.toml", _config("c.h5", nulls={"file": "spins.npy"})),
                       log=lambda *_: None)
    np.testing.assert_array_equal(res.steps["nulls"]["indices"], idx)


def test_files_to_report_on_simulated_files(tmp_path, capsys):
    """files -> recouple ingest (--parcellation/--sphere) -> run --check -> run -> report."""
    sim = _sim(seed=4, sc_density=0.5)  # every region well connected: t defined everywhere
    d = tmp_path / "data"
    d.mkdir()
    for k, sid in enumerate(sim.scans["scan_id"]):
        np.savetxt(d / f"{sid}_sc.csv", sim.sc[k], delimiter=",")
        np.savetxt(d / f"{sid}_fc.csv", sim.fc[k], delimiter=",")
    pd.DataFrame({k: sim.scans[k] for k in ("scan_id", "subject", "session", "group", "age", "hamd")}).to_csv(
        d / "participants.tsv", sep="\t", index=False)
    (d / "labels.csv").write_text(",".join(sim.labels))
    files = _surface_files(sim, d)
    expr = pd.DataFrame(np.asarray(sim.expression), columns=[str(g) for g in sim.genes])
    expr.insert(0, "label", sim.labels)
    expr.to_csv(d / "expression.csv", index=False)
    rc.simulate.write_gmt(d / "sets.gmt", rc.simulate.gene_sets(sim, n_random=5, seed=0))
    assert main(["ingest", str(d / "participants.tsv"), "-o", str(tmp_path / "cohort.h5"), "--sc", "{scan_id}_sc.csv",
                 "--fc", "{scan_id}_fc.csv", "--labels", str(d / "labels.csv"),
                 "--parcellation", *(str(d / p) for p in files["parcellation"]),
                 "--sphere", *(str(d / p) for p in files["sphere"])]) == 0
    cfg = _config("cohort.h5", association={"expression": "data/expression.csv", "duplicate_genes": "drop"},
                  clinical={"score": "hamd", "group": "patient", "sessions": ["pre", "post"]},
                  enrichment={"gene_sets": "data/sets.gmt", "min_size": 3})
    path = write_config(tmp_path / "STUDY.toml", cfg)
    assert main(["run", "--check", str(path)]) == 0
    assert not (tmp_path / "results").exists()
    assert main(["run", str(path)]) == 0
    capsys.readouterr()
    out = tmp_path / "results"
    assert (out / "report.html").is_file()
    coupling = pd.read_csv(out / "tables" / "coupling.csv")
    np.testing.assert_allclose(coupling[list(sim.labels)].to_numpy(), rc.coupling.nodal(sim.sc, sim.fc).coupling,
                               atol=1e-10)
    html = (out / "report.html").read_text()
    assert "Exchangeability: sign flips of each subject" in html


def test_undefined_target_regions_refused_before_coupling(tmp_path):
    sim = _sim()
    sc = sim.sc.copy()
    sc[:, 0, :] = sc[:, :, 0] = 0.0  # region 0 has no edges
    sc[:, 0, 1] = sc[:, 1, 0] = 1.0
    rc.store.create(tmp_path / "c.h5", scans=dict(sim.scans), labels=sim.labels, hemisphere=sim.hemisphere,
                    centroids=sim.centroids).close()
    with rc.store.open(tmp_path / "c.h5", "r+") as st:
        st.write_array("sc", sc)
        st.write_array("fc", sim.fc)
        st.write_array("maps/expression", np.asarray(sim.expression, dtype=np.float64),
                       attrs={"space": "region", "genes": [str(g) for g in sim.genes]})
    path = write_config(tmp_path / "S.toml", _config("c.h5"))
    with pytest.raises(ConfigError, match=rf"min_edges = 3: 2 region\(s\).*{sim.labels[0]}"):
        check_study(load_config(path))
    with rc.store.open(tmp_path / "c.h5") as st:
        assert st.results() == []
