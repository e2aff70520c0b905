"""`recouple permute STORE --design store --formula ...`: coupling from the cohort store."""

from __future__ import annotations

import numpy as np
import pandas as pd

import recouple as rc
from recouple.cli import main
from recouple.permutation import Resampling


def _one_scan_per_subject(sim):
    """The simulated scans with every scan its own subject: scans exchangeable, no subject blocks."""
    sim.scans["subject"] = sim.scans["scan_id"]
    return sim


def test_permute_reads_coupling_from_store(tmp_path, capsys):
    sim = _one_scan_per_subject(rc.simulate.cohort(n_regions=20, n_patients=6, n_controls=6, control_sessions=1,
                                                   seed=4))
    path = tmp_path / "c.h5"
    rc.store.from_simulated(sim, path).close()
    assert main(["coupling", str(path)]) == 0
    out = tmp_path / "res" / "grp"
    args = [str(path), "--design", "store", "--formula", "~ group + age", "--contrast", "group[T.patient]",
            "--n-perm", "200", "--seed", "1", "-o", str(out)]
    assert main(["permute", *args]) == 0
    capsys.readouterr()
    tstat = pd.read_csv(f"{out}_tstat_c1.csv")
    assert len(tstat) == 20
    # the same test straight from Python
    from recouple.workflows.coupling import cohort_coupling

    coup = cohort_coupling(path).coupling
    scans = rc.store.read_table(path, "scans")
    x = np.column_stack([np.ones(len(scans)), (scans["group"] == "patient").to_numpy(float), scans["age"]])
    ref = rc.permutation.glm(coup, x, np.array([0.0, 1.0, 0.0]), resampling=Resampling(n_perm=200, seed=1))
    np.testing.assert_allclose(tstat.iloc[:, -1].to_numpy(), ref.statistic.ravel(), atol=1e-10)


def test_permute_store_without_formula_is_usage_error(tmp_path, capsys):
    sim = rc.simulate.cohort(n_regions=12, n_patients=3, n_controls=3, control_sessions=1, seed=4)
    path = tmp_path / "c.h5"
    rc.store.from_simulated(sim, path).close()
    args = ["permute", str(path), "--design", "store", "--contrast", "1 0", "-o", str(tmp_path / "x")]
    assert main(args) == 2
    assert "Run `recouple coupling" in capsys.readouterr().err
    assert main(["coupling", str(path)]) == 0
    capsys.readouterr()
    assert main(args) == 2
    assert "--formula is required" in capsys.readouterr().err


def test_permute_store_chunked_equals_whole(tmp_path, capsys):
    sim = _one_scan_per_subject(rc.simulate.cohort(n_regions=16, n_patients=6, n_controls=6, control_sessions=1,
                                                   seed=6))
    path = tmp_path / "c.h5"
    rc.store.from_simulated(sim, path).close()
    assert main(["coupling", str(path)]) == 0
    base = [str(path), "--design", "store", "--formula", "~ group", "--contrast", "group[T.patient]",
            "--n-perm", "150", "--seed", "2"]
    assert main(["permute", *base, "--chunk-elements", "3", "--scheduler", "threads", "-o", str(tmp_path / "a")]) == 0
    assert main(["permute", *base, "--chunk-elements", "16", "--scheduler", "sync", "-o", str(tmp_path / "b")]) == 0
    capsys.readouterr()
    for kind in ("tstat", "uncp", "fwep", "fdrp"):
        a = pd.read_csv(tmp_path / f"a_{kind}_c1.csv")
        b = pd.read_csv(tmp_path / f"b_{kind}_c1.csv")
        np.testing.assert_allclose(a.iloc[:, -1].to_numpy(), b.iloc[:, -1].to_numpy(), atol=1e-12)
