"""The command line: help, info, demo, backends and bad usage."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from recouple.cli import build_parser, main


def test_help_lists_commands(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for verb in ("info", "demo"):
        assert verb in out


def test_no_command_is_usage_error(capsys):
    assert main([]) == 2


def test_unknown_backend_is_usage_error(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["demo", "--backend", "torch"])
    assert exc.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_every_command_accepts_backend():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    for name, p in sub.choices.items():
        assert any("--backend" in a.option_strings for a in p._actions), name


def test_info(capsys):
    assert main(["info", "--size", "128"]) == 0
    out = capsys.readouterr().out
    assert "numpy  usable" in out
    assert "GFLOP/s" in out
    assert "cupy" in out


def _read_coupling(folder):
    return np.loadtxt(folder / "results" / "tables" / "coupling.csv", delimiter=",", skiprows=1,
                      usecols=range(1, 41))


def test_demo_numpy_equals_jax(tmp_path, capsys):
    args = ["--regions", "40", "--patients", "10", "--controls", "3", "--seed", "2", "--n-perm", "200",
            "--n-nulls", "100"]
    assert main(["demo", "--out", str(tmp_path / "np"), *args]) == 0
    text = capsys.readouterr().out
    assert "report:" in text and "planted" in text and (tmp_path / "np" / "results" / "report.html").is_file()
    assert main(["demo", "--backend", "jax", "--out", str(tmp_path / "jx"), *args]) == 0
    a, b = _read_coupling(tmp_path / "np"), _read_coupling(tmp_path / "jx")
    assert a.shape == (10 * 2 + 3 * 2, 40)
    assert np.nanmax(np.abs(a - b)) < 1e-10
    prov = json.loads((tmp_path / "jx" / "results" / "provenance.json").read_text())
    assert prov["backend"] == "jax"
    t_np = np.loadtxt(tmp_path / "np" / "results" / "tables" / "contrast_post_vs_pre_patients.csv", delimiter=",",
                      skiprows=1, usecols=range(1, 5))
    t_jx = np.loadtxt(tmp_path / "jx" / "results" / "tables" / "contrast_post_vs_pre_patients.csv", delimiter=",",
                      skiprows=1, usecols=range(1, 5))
    assert t_np.shape == (40, 4)
    np.testing.assert_allclose(t_np, t_jx, atol=1e-10)


def test_console_script_runs():
    out = subprocess.run([sys.executable, "-m", "recouple.cli", "--version"], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0 and "recouple" in out.stdout
