"""Study files: every value is checked by load_config (type, range, distinctness,
presence in the store, safe contrast names) before anything is computed; the
error is a ConfigError naming the key, what was expected and what came."""

from __future__ import annotations

import pytest

import recouple as rc
from recouple.exceptions import ConfigError, InputError
from recouple.study import load_config, write_config


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cfg")
    sim = rc.simulate.cohort(n_regions=12, n_patients=3, n_controls=2, n_genes=10, seed=1)
    rc.store.from_simulated(sim, folder / "c.h5").close()
    return folder / "c.h5"


def _base(store):
    return {"study": {"store": str(store)},
            "contrasts": [{"name": "pp", "type": "paired", "group": "patient", "sessions": ["pre", "post"]}]}


def _section(name, **kw):
    return lambda c: c.setdefault(name, {}).update(kw)


def _contrast(**kw):
    return lambda c: c["contrasts"][0].update(kw)


CASES = [
    # (mutation, pattern that the message must match)
    (_section("permutation", alpha=2.0), r"\[permutation\] alpha must be a number between 0 and 1.*got float 2\.0"),
    (_section("permutation", alpha=0.0), r"\[permutation\] alpha must be"),
    (_section("permutation", alpha="0.05"), r"\[permutation\] alpha must be .*got str '0\.05'.*no quotes"),
    (_section("permutation", n_perm="abc"), r"\[permutation\] n_perm must be an integer >= 1; got str 'abc'"),
    (_section("permutation", n_perm=200.7), r"\[permutation\] n_perm must be an integer >= 1; got float 200\.7"),
    (_section("permutation", n_perm=0), r"\[permutation\] n_perm must be an integer >= 1; got int 0"),
    (_section("permutation", seed=-1), r"\[permutation\] seed must be an integer >= 0"),
    (_section("permutation", precision="half"), r"\[permutation\] precision must be one of 'float64', 'float32'"),
    (_section("nulls", n_perm=True), r"\[nulls\] n_perm must be an integer"),
    (_section("nulls", method="spinn"), r"\[nulls\] method must be one of"),
    (_section("coupling", min_edges="three"), r"\[coupling\] min_edges must be an integer >= 2; got str 'three'"),
    (_section("coupling", method="kendall"), r"\[coupling\] method must be one of 'spearman', 'pearson'"),
    (_section("coupling", edges="mask"), r"\[coupling\] edges must be one of"),
    (_section("coupling", symmetrize="yes"), r"\[coupling\] symmetrize must be true or false"),
    (_section("compute", backend="torch"), r"\[compute\] backend must be one of"),
    (_section("compute", chunk_size=2.5), r"\[compute\] chunk_size must be an integer >= 1"),
    (_section("compute", memory_limit="lots"), r"\[compute\] memory_limit must be a size"),
    (_section("enrichment", min_size=20, max_size=10), r"\[enrichment\] max_size must be an integer >= 20"),
    (_section("association", maps="receptor.csv"), r"\[association\] maps must be a list of names; got str"),
    (_section("association", pls_components=0), r"\[association\] pls_components must be an integer >= 1"),
    (_section("clinical", score="hamd", group="nobody"), r"\[clinical\] group 'nobody' is absent from the store"),
    (_section("clinical", score="hamd", sessions=["pre", "pre"]),
     r"\[clinical\] sessions must name distinct entries; got \['pre', 'pre'\]"),
    (_section("clinical", score="hamd", sessions=["pre", "week9"]), r"\[clinical\] sessions names 'week9', absent"),
    (_section("clinical", score="hamd", covariates=["height"]), r"\[clinical\] covariate 'height'"),
    (_contrast(sessions=["pre", "pre"]), r"\[\[contrasts\]\] 'pp' sessions must name distinct entries"),
    (_contrast(sessions="pre"), r"\[\[contrasts\]\] 'pp' sessions must be a list of 2 distinct names; got str"),
    (_contrast(type="two_sample", group=None, sessions=None, session="pre", groups=["patient", "patient"]),
     r"\[\[contrasts\]\] 'pp' groups must name distinct entries; got \['patient', 'patient'\]"),
    (_contrast(type="two_sample", group=None, sessions=None, session="pre", groups="patient"),
     r"\[\[contrasts\]\] 'pp' groups must be a list of 2 distinct names; got str 'patient'"),
    (_contrast(group=3), r"\[\[contrasts\]\] 'pp' group must be a non-empty string; got int 3"),
    (_contrast(covariates="age"), r"\[\[contrasts\]\] 'pp' covariates must be a list of names"),
    (_contrast(name="../../x"), r"\[\[contrasts\]\] #1 name must be usable as a file name; got '\.\./\.\./x'"),
    (_contrast(name="a" * 201), r"\[\[contrasts\]\] #1 name must be usable as a file name"),
]


@pytest.mark.parametrize("mutate, pattern", CASES, ids=[p for _, p in CASES])
def test_bad_values_are_config_errors(store, tmp_path, mutate, pattern):
    cfg = _base(store)
    mutate(cfg)
    path = write_config(tmp_path / "s.toml", cfg)
    with pytest.raises(ConfigError, match=pattern) as info:
        load_config(path)
    assert isinstance(info.value, InputError)
    assert str(path) in str(info.value), "the message names the file"


def test_later_contrast_name_refused_before_compute(store, tmp_path):
    # the reported case: a third contrast named ../../x crashed after two were computed
    cfg = _base(store)
    cfg["contrasts"] += [{"name": "pp2", "type": "paired", "group": "patient", "sessions": ["pre", "post"]},
                         {"name": "../../x", "type": "paired", "group": "patient", "sessions": ["pre", "post"]}]
    path = write_config(tmp_path / "s.toml", cfg)
    with pytest.raises(ConfigError, match=r"#3 name must be usable as a file name"):
        rc.run_study(path, output=tmp_path / "out", log=lambda *_: None)
    assert not (tmp_path / "out").exists(), "nothing computed or written"


def test_dict_config_is_checked_too(store, tmp_path):
    cfg = _base(store)
    cfg["permutation"] = {"alpha": 2.0}
    with pytest.raises(ConfigError, match=r"\[permutation\] alpha"):
        rc.run_study(cfg, output=tmp_path / "out", log=lambda *_: None)
    assert not (tmp_path / "out").exists()


def test_good_values_pass_and_integral_floats_become_ints(store, tmp_path):
    cfg = _base(store)
    cfg["permutation"] = {"n_perm": 1e3, "alpha": 0.01}
    cfg["clinical"] = {"score": "hamd", "sessions": ["pre", "post"]}
    out = load_config(write_config(tmp_path / "s.toml", cfg))
    assert out["permutation"]["n_perm"] == 1000 and isinstance(out["permutation"]["n_perm"], int)
    assert out["permutation"]["alpha"] == 0.01


def test_binary_file_is_a_config_error(tmp_path):
    path = tmp_path / "study.toml"
    path.write_bytes(bytes(range(256)) * 4)
    with pytest.raises(ConfigError, match="not a text \\(UTF-8\\) TOML file"):
        load_config(path)


def test_cli_run_bad_value_one_line_exit_2(store, tmp_path, capsys):
    from recouple.cli import main

    cfg = _base(store)
    cfg["permutation"] = {"alpha": 2.0}
    path = write_config(tmp_path / "s.toml", cfg)
    assert main(["run", str(path), "--out", str(tmp_path / "out")]) == 2
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert len(err) == 1, captured.err
    assert err[0].startswith("recouple run: error:") and "[permutation] alpha" in err[0]
    assert "Traceback" not in captured.err and captured.out == ""
    assert not (tmp_path / "out").exists()


def test_cli_run_binary_file(tmp_path, capsys):
    from recouple.cli import main

    path = tmp_path / "s.toml"
    path.write_bytes(b"\x89HDF\r\n\x1a\n\xff\xfe\x00")
    assert main(["run", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not a text (UTF-8) TOML file" in err[0]
