"""`recouple bench --quick`: every operation on every usable backend in the JSON,
the voxel FC sweep, GEMM fractions, JAX/NumPy ratios and the markdown report.
Structure only: no test asserts a timing."""

from __future__ import annotations

import json
import math

import pytest

from recouple.cli import main
from recouple.engine.backend import available_backends
from recouple.workflows.bench import OPERATIONS, VOXEL_DENSITIES, VOXEL_MODES
from recouple.workflows.benchreport import README_END, README_START, format_markdown

MATRIX_BOUND = {"association", "signflip_paired", "freedman_lane_glm", "voxel_coupling", "pls_bootstrap"}


def _usable():
    return {name for name, (ok, _) in available_backends().items() if ok}


def _finite_positive(x):
    return x is not None and math.isfinite(x) and x > 0


@pytest.mark.slow
def test_bench_quick_json_complete(tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert main(["bench", "--quick", "--json", str(out)]) == 0
    table = capsys.readouterr().out
    for col in ("vs numpy", "GEMM frac", "jax/numpy", "1st call (s)", "sampled/dense"):
        assert col in table
    result = json.loads(out.read_text())
    usable = _usable()
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
        if r["speedup_vs_peer"] is not None:
            assert _finite_positive(r["peer_time_s"])
    for r in result["rows"]:
        if r["operation"] in MATRIX_BOUND:
            assert 0 < r["gemm_fraction"] < 5, r
    assert all(g > 0 for g in result["gemm_gflops"].values())
    if "jax" in usable:  # every operation that runs on both has the ratio, on both rows
        for r in result["rows"]:
            op = next(o for o in OPERATIONS if o.name == r["operation"])
            if {"numpy", "jax"} <= set(op.backends):
                assert _finite_positive(r["jax_vs_numpy"]), r
                if r["operation"] != "voxel_fc":
                    assert _finite_positive(r["first_call_s"]), r


@pytest.mark.slow
def test_bench_quick_voxel_study_markdown(tmp_path, capsys):
    js, md = tmp_path / "bench.json", tmp_path / "speed.md"
    assert main(["bench", "--quick", "--only", "voxel_fc", "association", "study", "--json", str(js),
                 "--markdown", str(md)]) == 0
    capsys.readouterr()
    result = json.loads(js.read_text())
    usable = _usable() & {"numpy", "jax", "cupy"}
    vox = [r for r in result["rows"] if r["operation"] == "voxel_fc"]
    got = {(r["backend"], r["extra"]["density"], r["extra"]["fc_mode"]) for r in vox}
    assert got == {(b, d, m) for b in usable for d in VOXEL_DENSITIES for m in VOXEL_MODES}
    for r in vox:
        e = r["extra"]
        assert r["unit"] == "voxels/s" and _finite_positive(r["throughput"])
        assert e["path"] in ("dense", "sampled")
        if e["fc_mode"] != "auto":
            assert e["path"] == e["fc_mode"]
        if e["fc_mode"] != "dense":
            assert _finite_positive(e["vs_dense"])
        if e["path"] == "dense":  # the GEMM fraction of the path that ran: only the dense one is a GEMM
            assert 0 < r["gemm_fraction"] < 5
        else:
            assert r["gemm_fraction"] is None
    text = md.read_text()
    header = text.splitlines()[0]
    assert "recouple bench --quick --only voxel_fc association study" in header
    assert result["date"][:10] in header and "cores" in header and "GFLOP/s" in header
    assert result["machine"]["blas"] in header
    for col in ("| operation |", "NumPy (s)", "peer (s)", "vs peer", "GEMM fraction", "sampled/dense",
                "| step |", "step/bare"):
        assert col in text
    if "jax" in usable:
        assert "jax vs NumPy" in text and "jax 1st call (s)" in text
    table = [l for l in text.splitlines() if l.startswith("| association ")]
    assert len(table) == 1
    # one voxel line per backend and density, one study line per step
    assert sum(l.startswith(("| 0.1% ", "| 1% ", "| 10% ", "| 100% ")) for l in text.splitlines()) == \
        len(usable) * len(VOXEL_DENSITIES)
    (study,) = [r for r in result["rows"] if r["operation"] == "study"]
    for step in study["extra"]["steps_s"]:
        assert f"| {step} |" in text


def _fake_result():
    row = dict(operation="association", size="1 map vs 5 maps", backend="numpy", time_s=2.0, throughput=2.5,
               unit="maps/s", speedup_vs_numpy=1.0, speedup_vs_peer=10.0, peer="neuromaps",
               peer_note="neuromaps x, 2 maps, scaled", gemm_fraction=0.5, extra={}, variant=None,
               peer_time_s=20.0, first_call_s=2.5, jax_vs_numpy=4.0)
    jrow = dict(row, backend="jax", time_s=0.5, speedup_vs_numpy=4.0, speedup_vs_peer=40.0, first_call_s=3.0)
    return {"machine": {"python": "3.11", "cpus": 2, "cpu_model": "CPU", "numpy": "2", "blas": "OpenBLAS 0.3",
                        "devices": {"numpy": "cpu", "jax": "cpu:0"}},
            "gemm_gflops": {"numpy": 100.0, "jax": 50.0}, "gemm_size": 2048, "quick": False, "repeats": 1,
            "date": "2030-01-02T03:04:05+00:00", "wall_s": 12.0, "command": "recouple bench --repeats 1",
            "backends": ["numpy", "jax"], "rows": [row, jrow]}


def test_markdown_row_per_operation():
    text = format_markdown(_fake_result())
    assert text.splitlines()[0].startswith("Generated by `recouple bench --repeats 1` on 2030-01-02: 2 cores")
    (line,) = [l for l in text.splitlines() if l.startswith("| association ")]
    cells = [c.strip() for c in line.strip("|").split("|")]
    assert cells == ["association", "1 map vs 5 maps", "2", "20", "10.0x", "50% numpy / 50% jax", "0.5", "4.00x",
                     "3"]


def test_readme_block_replaced(tmp_path, monkeypatch, capsys):
    import recouple.workflows.bench as wb

    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n\nbefore\n{README_START}\nold table\n{README_END}\nafter\n")
    monkeypatch.setattr(wb, "run_benchmarks", lambda **kw: dict(_fake_result(), command=kw["command"]))
    assert main(["bench", "--repeats", "1", "--readme", str(readme)]) == 0
    capsys.readouterr()
    text = readme.read_text()
    assert "old table" not in text and text.startswith("# x\n\nbefore\n" + README_START + "\nGenerated by `")
    assert text.endswith(README_END + "\nafter\n")
    assert f"recouple bench --repeats 1 --readme {readme}" in text
    assert "| association |" in text


def test_readme_without_markers_refused_before_compute(tmp_path, monkeypatch, capsys):
    import recouple.workflows.bench as wb

    readme = tmp_path / "README.md"
    readme.write_text("# no markers\n")
    monkeypatch.setattr(wb, "run_benchmarks", lambda **kw: pytest.fail("ran before checking --readme"))
    assert main(["bench", "--readme", str(readme)]) == 2
    assert "--readme" in capsys.readouterr().err and readme.read_text() == "# no markers\n"


def test_bench_rejects_bad_repeats(capsys):
    assert main(["bench", "--repeats", "0"]) == 2
    assert "--repeats must be a positive integer" in capsys.readouterr().err


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
    assert all(math.isfinite(v) and v > 0 for v in extra["step_over_bare"].values())
    assert {"genes:associate", "genes:pls"} <= set(extra["bare_s"])
    assert extra["study_s"] == pytest.approx(sum(steps.values()))


def test_bench_quick_float32_option(tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert main(["bench", "--quick", "--only", "float32_option", "--backend", "numpy", "--json", str(out)]) == 0
    table = capsys.readouterr().out
    assert "float32 option" in table and "p-values moved" in table and "(LOWER by" not in table
    rows = json.loads(out.read_text())["rows"]
    assert [r["variant"] for r in rows] == ["association", "signflip_paired", "freedman_lane_glm"]
    for r in rows:
        e = r["extra"]
        assert _finite_positive(e["float64_s"]) and _finite_positive(e["gemm32_fraction"])
        assert e["min_draws_moved"] >= 0 and e["pvalues_moved"] <= e["n_elements"]
        assert e["tie_rtol"] > 1e-10
    md = tmp_path / "speed.md"
    assert main(["bench", "--quick", "--only", "float32_option", "--backend", "numpy", "--markdown",
                 str(md)]) == 0
    assert "| float32 option |" in md.read_text()
