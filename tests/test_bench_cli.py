"""`recouple bench --quick`: every operation on every usable backend in the JSON."""

from __future__ import annotations

import json

import pytest

from recouple.cli import main
from recouple.engine.backend import available_backends
from recouple.workflows.bench import OPERATIONS


@pytest.mark.slow
def test_bench_quick_json_complete(tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert main(["bench", "--quick", "--json", str(out)]) == 0
    table = capsys.readouterr().out
    assert "vs numpy" in table and "GEMM frac" in table
    result = json.loads(out.read_text())
    usable = {name for name, (ok, _) in available_backends().items() if ok}
    assert set(result["backends"]) == usable
    assert result["operations"] == [op.name for op in OPERATIONS]
    seen = {(r["operation"], r["backend"]) for r in result["rows"]}
    for op in OPERATIONS:
        for backend in usable & set(op.backends):
            assert (op.name, backend) in seen, (op.name, backend)
    for r in result["rows"]:
        assert r["time_s"] > 0 and r["throughput"] > 0
        assert r["speedup_vs_numpy"] is not None
        if r["backend"] == "numpy":
            assert r["speedup_vs_numpy"] == pytest.approx(1.0)
    matrix_bound = {"association", "signflip_paired", "freedman_lane_glm", "voxel_coupling"}
    for r in result["rows"]:
        if r["operation"] in matrix_bound:
            assert 0 < r["gemm_fraction"] < 5
    assert all(g > 0 for g in result["gemm_gflops"].values())


def test_bench_rejects_unknown_operation(capsys):
    assert main(["bench", "--only", "nodal"]) == 2
    assert "--only must name operations" in capsys.readouterr().err


def test_bench_quick_study_times_every_step(tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert main(["bench", "--quick", "--only", "study", "--json", str(out)]) == 0
    table = capsys.readouterr().out
    assert "step/bare" in table
    result = json.loads(out.read_text())
    (row,) = result["rows"]
    assert row["operation"] == "study" and row["backend"] == "numpy"
    extra = row["extra"]
    steps = extra["steps_s"]
    expected = {"coupling", "contrast_post_vs_pre_patients", "contrast_patients_vs_controls_change",
                "contrast_patients_vs_controls_baseline", "clinical", "nulls", "genes", "enrichment", "report"}
    assert set(steps) == expected
    assert all(t > 0 for t in steps.values())
    assert set(extra["step_over_bare"]) == expected - {"report"}
    assert {"genes:associate", "genes:pls"} <= set(extra["bare_s"])
    assert extra["study_s"] == pytest.approx(sum(steps.values()))
