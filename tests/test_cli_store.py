"""End-to-end command line: ingest -> coupling -> export."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

import recouple as rc
from recouple.cli import main


def test_ingest_coupling_export(tmp_path, capsys):
    c = rc.simulate.cohort(n_regions=12, n_patients=2, n_controls=0, seed=5)
    d = tmp_path / "in"
    d.mkdir()
    for k, sid in enumerate(c.scans["scan_id"]):
        np.savetxt(d / f"{sid}_sc.tsv", c.sc[k], delimiter="\t")
        np.savetxt(d / f"{sid}_fc.tsv", c.fc[k], delimiter="\t")
    pd.DataFrame({k: c.scans[k] for k in ("scan_id", "subject", "session", "group", "hamd")}).to_csv(
        d / "participants.tsv", sep="\t", index=False)
    (d / "labels.txt").write_text(",".join(c.labels))
    store = tmp_path / "s.h5"
    argv = ["ingest", str(d / "participants.tsv"), "-o", str(store), "--sc", "{scan_id}_sc.tsv", "--fc",
            "{scan_id}_fc.tsv", "--labels", str(d / "labels.txt"), "--sessions", "pre,post"]
    assert main(argv) == 0
    assert main(argv) == 2  # refuses to overwrite
    assert "already exists" in capsys.readouterr().err
    out = tmp_path / "out"
    assert main(["coupling", str(store), "--chunk-size", "2", "--no-progress", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "2 chunk(s) computed" in text
    table = pd.read_csv(out / "coupling_spearman_sc_nonzero.csv")
    ref = rc.coupling.nodal(c.sc, c.fc).coupling
    np.testing.assert_allclose(table[list(c.labels)].to_numpy(), ref, atol=1e-12)
    prov = json.loads((out / "coupling_spearman_sc_nonzero.provenance.json").read_text())
    assert prov["parameters"]["method"] == "spearman"
    assert main(["coupling", str(store), "--no-progress"]) == 0
    assert "0 chunk(s) computed, 2 already done" in capsys.readouterr().out
    assert main(["export", str(store)]) == 0
    assert "coupling_spearman_sc_nonzero" in capsys.readouterr().out
    assert main(["export", str(store), "nothing"]) == 2
    assert main(["coupling", str(store), "--level", "voxel"]) == 2
    assert "voxel/bold" in capsys.readouterr().err
