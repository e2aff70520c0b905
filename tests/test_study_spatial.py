"""Study spatial steps: regions with an undefined target statistic are left out (and named),
too few defined regions stop the spatial steps with a clear line, the gene table carries the
permutation-resolution note, enrichment names the gene sets its size bounds left out, and
[enrichment] max_size = "none" means no upper bound."""

from __future__ import annotations

import html as _html
from pathlib import Path

import numpy as np
import pytest

import recouple as rc
from recouple.exceptions import ConfigError
from recouple.simulate import gene_sets, write_gmt
from recouple.study import load_config, write_config
from recouple.workflows.demo import demo_config, write_demo_geometry

N_REGIONS = 40


def _study(folder: Path, frozen, *, n_nulls=100, enrichment=None):
    """A small surface cohort (6 patients pre/post, 2 controls) whose ``frozen`` regions have SC and FC
    rows identical before and after in every subject: zero within-subject change, so the paired t is NaN."""
    folder.mkdir(parents=True, exist_ok=True)
    parc = rc.simulate.fsaverage5_parcellation(N_REGIONS, seed=0)
    sim = rc.simulate.cohort(n_regions=N_REGIONS, n_patients=6, n_controls=2, n_genes=60, effect=0.9, seed=0,
                             centroids=parc.centroids_mm)
    with rc.store.from_simulated(sim, folder / "cohort.h5", overwrite=True) as st:
        write_demo_geometry(st, parc)
        scans = st.scans
        sc, fc = st.read("sc"), st.read("fc")
        for subject in sorted(set(scans["subject"])):
            pre = np.flatnonzero((scans["subject"] == subject) & (scans["session"] == "pre"))[0]
            post = np.flatnonzero((scans["subject"] == subject) & (scans["session"] == "post"))[0]
            for i in frozen:
                for m in (sc, fc):
                    m[post, i, :] = m[pre, i, :]
                    m[post, :, i] = m[pre, :, i]
        st.write_array("sc", sc, overwrite=True)
        st.write_array("fc", fc, overwrite=True)
        labels = st.labels
    write_gmt(folder / "gene_sets.gmt", gene_sets(sim, seed=0))
    cfg = demo_config(n_perm=100, n_nulls=n_nulls, seed=0, backend="numpy")
    cfg["contrasts"] = cfg["contrasts"][:1]
    cfg["association"]["pls_bootstrap"] = 10
    cfg["enrichment"].update(enrichment or {})
    path = write_config(folder / "STUDY.toml", cfg)
    lines = []
    res = rc.run_study(path, log=lines.append)
    return res, "\n".join(lines), labels


@pytest.fixture(scope="module")
def nan_study(tmp_path_factory):
    return _study(tmp_path_factory.mktemp("nan"), frozen=(3, 17), n_nulls=20,
                  enrichment={"min_size": 5, "max_size": 20})


def test_nan_regions_are_left_out_of_the_spatial_steps_and_named(nan_study):
    res, log, labels = nan_study
    t = res.steps["contrasts"]["post_vs_pre_patients"]["statistic"]
    assert np.flatnonzero(np.isnan(t)).tolist() == [3, 17]  # the cohort does what the test needs
    note = (f"[spatial] 2 of {N_REGIONS} regions have no defined statistic in the 'post_vs_pre_patients' map")
    assert note in log and f"{labels[3]}, {labels[17]}." in log
    html = _html.unescape(res.report.read_text())
    assert "Spatial association" in html and f"left out of the spatial steps (gene association, PLS, " \
        f"enrichment, map association): {labels[3]}, {labels[17]}." in html
    with np.load(res.output / "steps" / "nulls.npz") as z:
        assert z["indices"].shape == (20, N_REGIONS - 2)  # spins among the 38 defined regions
    assert np.isfinite(res.steps["genes"]["r"]).all()
    assert res.steps["genes"]["pls_scores"].shape[0] == N_REGIONS - 2
    assert "PLS1 regional scores" in html and (res.output / "figures" / "pls_scores.png").is_file()
    assert res.steps["enrichment"]["categories"].size > 0


def test_gene_table_carries_the_resolution_note(nan_study):
    res, log, _ = nan_study
    g = res.steps["genes"]
    assert int(g["n_perm"]) == 20
    floor = 1 / 21
    assert np.isclose(g["pvalue"], floor).any()  # some genes sit at the permutation floor
    note = rc.nulls.resolution_note(g["pvalue"], 20, alpha=0.05)
    assert note.startswith("With 20 nulls the smallest attainable p-value is 1/(20+1)")
    html = _html.unescape(res.report.read_text())
    top_genes = html.index("<h2>Top genes</h2>")
    assert html.index(note) > top_genes and html.index(note) < html.index("<h2>Enriched gene categories</h2>")
    assert f"[genes] {note}" in log


def test_enrichment_names_the_sets_left_out(nan_study):
    res, log, _ = nan_study
    enr = res.steps["enrichment"]
    msg = str(enr["dropped_message"])
    n_sets = len(rc.genes.load_gene_sets(res.output.parent / "gene_sets.gmt"))
    assert msg.startswith(f"{enr['dropped'].size} of {n_sets} gene sets left out by the size bounds [5, 20]")
    assert enr["dropped"].size > 0 and enr["categories"].size + enr["dropped"].size == n_sets
    assert 'set max_size = "none" in [enrichment] to keep them' in msg
    assert f"[enrichment] {msg}" in log
    html = _html.unescape(res.report.read_text())
    assert msg in html and html.index(msg) > html.index("<h2>Enriched gene categories</h2>")


def test_too_few_defined_regions_stop_the_spatial_steps_clearly(tmp_path):
    frozen = [i for i in range(N_REGIONS) if i not in (0, 5, 9, 14, 22, 30, 35)]
    res, log, _ = _study(tmp_path, frozen=frozen)
    k = int(np.isfinite(res.steps["contrasts"]["post_vs_pre_patients"]["statistic"]).sum())
    assert 0 < k < 10
    line = (f"[spatial] Spatial steps not run: only {k} of {N_REGIONS} regions have a defined statistic in the "
            "'post_vs_pre_patients' map; correlations across regions, PLS and enrichment need at least 10.")
    assert line in log
    assert "genes" not in res.steps and "enrichment" not in res.steps
    assert line.removeprefix("[spatial] ") in _html.unescape(res.report.read_text())


def test_enrichment_max_size_none(tmp_path):
    folder = tmp_path
    sim = rc.simulate.cohort(n_regions=20, n_patients=3, n_controls=2, n_genes=30, seed=0)
    rc.store.from_simulated(sim, folder / "cohort.h5").close()
    cfg = demo_config(n_perm=10, n_nulls=10, seed=0, backend="numpy")
    write_gmt(folder / "gene_sets.gmt", gene_sets(sim, seed=0))
    cfg["enrichment"]["max_size"] = "none"
    loaded = load_config(write_config(folder / "STUDY.toml", cfg))
    assert loaded["enrichment"]["max_size"] is None
    again = load_config(write_config(folder / "again.toml", {k: v for k, v in loaded.items()}))
    assert again["enrichment"]["max_size"] is None  # written back as "none", not dropped to the default 200
    cfg["enrichment"]["max_size"] = "None "
    assert load_config(write_config(folder / "s2.toml", cfg))["enrichment"]["max_size"] is None
    cfg["enrichment"]["max_size"] = "unbounded"
    with pytest.raises(ConfigError, match=r'\[enrichment\] max_size must be an integer >= min_size \(5\) or "none"'):
        load_config(write_config(folder / "s3.toml", cfg))
    cfg["enrichment"]["max_size"] = 3
    with pytest.raises(ConfigError, match=r"\[enrichment\] max_size must be an integer >= 5"):
        load_config(write_config(folder / "s4.toml", cfg))
