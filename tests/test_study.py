"""The study pipeline: a TOML study end to end, planted effects recovered,
validation errors, crash-and-resume, and the report in a headless browser."""

from __future__ import annotations

import html
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import recouple as rc
from recouple.exceptions import ConfigError
from recouple.study import load_config, write_config

N_PERM = 500
N_NULLS = 200


def _make_study(folder: Path, *, seed=0, n_perm=N_PERM, n_nulls=N_NULLS, enrichment=True):
    from recouple.workflows.demo import demo_config

    sim = rc.simulate.cohort(n_regions=60, n_patients=24, n_controls=10, n_genes=200, effect=0.8, seed=seed)
    rc.store.from_simulated(sim, folder / "cohort.h5", overwrite=True).close()
    rc.simulate.write_gmt(folder / "gene_sets.gmt", rc.simulate.gene_sets(sim, n_random=15, seed=seed))
    cfg = demo_config(n_perm=n_perm, n_nulls=n_nulls, seed=seed, backend="numpy")
    cfg["association"]["pls_bootstrap"] = 100
    if not enrichment:
        del cfg["enrichment"]
    return sim, write_config(folder / "STUDY.toml", cfg)


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    folder = tmp_path_factory.mktemp("study")
    sim, path = _make_study(folder)
    res = rc.run_study(path, log=lambda *_: None)
    return sim, path, res


def test_outputs_exist(study):
    sim, path, res = study
    out = res.output
    for name in ("coupling.csv", "contrast_post_vs_pre_patients.csv", "clinical.csv", "genes.csv", "genes.rnk",
                 "enrichment.csv", "pls1_genes.csv"):
        assert (out / "tables" / name).is_file(), name
    assert res.report.is_file() and res.provenance.is_file()
    coupling = pd.read_csv(out / "tables" / "coupling.csv")
    assert coupling.shape == (sim.n_scans, sim.n_regions + 1)
    direct = rc.coupling.nodal(sim.sc, sim.fc).coupling
    np.testing.assert_allclose(coupling.iloc[:, 1:].to_numpy(), direct, atol=1e-10, equal_nan=True)


def test_planted_effects_recovered(study):
    sim, path, res = study
    c = res.steps["contrasts"]["post_vs_pre_patients"]
    sig = np.asarray(c["pvalue_fwer"]) < 0.05
    planted = np.zeros(sim.n_regions, bool)
    planted[sim.planted_regions] = True
    assert sig[planted].sum() >= planted.sum() // 2, (sig[planted], c["statistic"][planted])
    assert sig[~planted].sum() <= 1
    genes = res.steps["genes"]
    top = genes["genes"][np.argsort(-np.abs(genes["r"]))[:20]]
    assert len(set(top) & set(sim.planted_genes)) >= 5
    enr = pd.read_csv(res.output / "tables" / "enrichment.csv")
    assert set(enr["category"].head(2)) == {"PLANTED_POSITIVE", "PLANTED_NEGATIVE"}


def test_methods_and_provenance(study):
    _, _, res = study
    html = res.report.read_text()
    assert "Methods" in html and "Baum et al., 2020" in html and f"{N_PERM} permutations" in html
    prov = __import__("json").loads(res.provenance.read_text())
    assert prov["backend"] == "numpy" and prov["config"]["permutation"]["n_perm"] == N_PERM


def test_rerun_resumes_everything(study):
    _, path, res = study
    again = rc.run_study(path, log=lambda *_: None)
    assert "coupling" in again.skipped and "contrast_post_vs_pre_patients" in again.skipped
    assert not [s for s in again.computed if s != "coupling"]
    np.testing.assert_array_equal(again.steps["genes"]["r"], res.steps["genes"]["r"])


def test_rerun_from_another_folder_resumes_everything(study, monkeypatch):
    """The study file's relative store path reached from another working
    folder (as after `recouple demo`, whose summary says to `cd` and run
    `recouple run STUDY.toml`) is the same store: nothing is recomputed."""
    _, path, res = study
    monkeypatch.chdir(path.parent)
    log = []
    again = rc.run_study(path.name, log=log.append)
    assert not [s for s in again.computed if s != "coupling"], log
    assert not [line for line in log if "recomputing" in line]


def test_demo_then_run_resumes_everything(tmp_path, monkeypatch, capsys):
    from recouple.cli import main

    monkeypatch.chdir(tmp_path)
    assert main(["demo", "--out", "d", "--n-perm", "200", "--n-nulls", "100"]) == 0
    monkeypatch.chdir(tmp_path / "d")
    capsys.readouterr()
    assert main(["run", "STUDY.toml"]) == 0
    out = capsys.readouterr().out + capsys.readouterr().err
    assert "recomputing" not in out, out


def test_float32_precision_is_a_new_step_and_said_in_the_methods(study, tmp_path):
    """precision = "float32" recomputes the contrasts (it is part of their
    step key), gives p-values never below the float64 run's, and the
    report's methods say so."""
    sim, path, res = study
    folder = tmp_path / "f32"
    shutil.copytree(path.parent, folder, ignore=shutil.ignore_patterns("recouple_output*", "output*"))
    cfg = load_config(folder / path.name)
    cfg["permutation"]["precision"] = "float32"
    del cfg["enrichment"]
    cfg["association"]["pls_bootstrap"] = 20
    f32 = rc.run_study(write_config(folder / "F32.toml", cfg), log=lambda *_: None)
    name = "contrast_post_vs_pre_patients"
    assert name in f32.computed
    a, b = res.steps["contrasts"]["post_vs_pre_patients"], f32.steps["contrasts"]["post_vs_pre_patients"]
    np.testing.assert_array_equal(b["statistic"], a["statistic"])
    assert np.all(b["pvalue"] >= a["pvalue"]) and np.all(b["pvalue_fwer"] >= a["pvalue_fwer"])
    assert "computed in float32" in f32.report.read_text()
    assert "in float64, except the permutation nulls' matrix products (float32" in html.unescape(f32.report.read_text())
    assert "computed in float32" not in res.report.read_text()


def _base_config(folder):
    sim = rc.simulate.cohort(n_regions=20, n_patients=3, n_controls=2, n_genes=30, seed=1)
    rc.store.from_simulated(sim, folder / "c.h5", overwrite=True).close()
    return {"study": {"store": "c.h5"},
            "contrasts": [{"name": "pp", "type": "paired", "group": "patient", "sessions": ["pre", "post"]}]}


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda c: c["study"].update(stroe="x"), "unknown key 'stroe'.*Did you mean 'store'"),
        (lambda c: c.update(coupling_options={}), r"unknown section \[coupling_options\]"),
        (lambda c: c["study"].update(store="missing.h5"), "does not exist"),
        (lambda c: c["contrasts"][0].update(group="patients"), "group 'patients', absent from the store"),
        (lambda c: c["contrasts"][0].update(sessions=["pre", "week6"]), "session 'week6', absent"),
        (lambda c: c["contrasts"][0].update(type="anova"), "type 'anova'"),
        (lambda c: c["contrasts"][0].update(covariates=["height"]), "covariate 'height'"),
        (lambda c: c.update(clinical={"score": "madrs"}), "score 'madrs' is not a scans column"),
        (lambda c: c.update(association={"target": "nope"}), "target 'nope' is not a contrast"),
        (lambda c: c.update(enrichment={"gene_sets": "none.gmt"}), "gene_sets file .* does not exist"),
        (lambda c: c["study"].pop("store"), "store is required"),
    ],
)
def test_config_errors(tmp_path, mutate, message):
    cfg = _base_config(tmp_path)
    mutate(cfg)
    path = write_config(tmp_path / "s.toml", cfg)
    with pytest.raises(ConfigError, match=message):
        load_config(path)


def test_cli_run_reports_bad_toml(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text("[study\nstore = 1")
    from recouple.cli import main

    assert main(["run", str(bad)]) == 2
    assert "not valid TOML" in capsys.readouterr().err


def test_crash_and_resume(tmp_path):
    sim, path = _make_study(tmp_path, n_perm=3000, n_nulls=300, enrichment=False)
    env = dict(os.environ, RECOUPLE_BACKEND="numpy")
    proc = subprocess.Popen([sys.executable, "-m", "recouple.cli", "run", str(path)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    marker = tmp_path / "results" / "steps" / "contrast_post_vs_pre_patients.done.json"
    deadline = time.time() + 240
    while not marker.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    killed = proc.poll() is None
    if killed:
        proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    assert marker.exists(), "the first contrast never finished"
    rerun = subprocess.run([sys.executable, "-m", "recouple.cli", "run", str(path)], env=env, capture_output=True,
                           text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert "resumed:" in rerun.stdout and "contrast_post_vs_pre_patients" in rerun.stdout
    resumed = {p.name: p.read_text() for p in (tmp_path / "results" / "tables").glob("*.csv")}
    # an uninterrupted run into a fresh folder gives the same tables
    fresh = subprocess.run([sys.executable, "-m", "recouple.cli", "run", str(path), "--out",
                            str(tmp_path / "fresh")], env=env, capture_output=True, text=True, timeout=600)
    assert fresh.returncode == 0, fresh.stderr
    for name, text in resumed.items():
        assert (tmp_path / "fresh" / "tables" / name).read_text() == text, name


def _chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


def test_report_renders_in_headless_browser(study, tmp_path):
    browser = _chromium()
    if browser is None:
        pytest.skip("no headless Chromium on this machine (Debian package 'chromium')")
    _, _, res = study
    html = res.report.read_text()
    assert html.count("<img") >= 5
    for png in ("coupling_by_group.png", "change_map.png", "clinical.png", "nulls.png", "top_genes.png"):
        assert (res.output / "figures" / png).stat().st_size > 5000, png
    shot = tmp_path / "shot.png"
    dump = subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1200,2400", "--dump-dom",
         res.report.as_uri()], capture_output=True, text=True, timeout=120)
    assert dump.returncode == 0, dump.stderr[-2000:]
    assert dump.stdout.count("<img") >= 5 and "Methods" in dump.stdout
    subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={tmp_path / 'profile2'}", "--window-size=1200,2400", f"--screenshot={shot}",
         res.report.as_uri()], capture_output=True, text=True, timeout=120)
    import matplotlib.image as mpimg

    img = mpimg.imread(shot)
    assert img.shape[0] >= 2000
    # figures make the page far from blank: many distinct colours
    colours = np.unique((img[..., :3] * 255).astype(np.uint8).reshape(-1, 3), axis=0)
    assert len(colours) > 200
