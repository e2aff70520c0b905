"""Subject exchangeability blocks for GLMs on scans (PALM -eb semantics): a
store whose subjects have several scans is never permuted across subjects'
scans freely: whole-subject permutation for a between-subject effect,
within-subject permutation for a within-subject effect, refusal otherwise."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import recouple as rc
from recouple.cli import main
from recouple.exceptions import InputError
from recouple.workflows.inference import store_glm, subject_exchangeability


@pytest.fixture(scope="module")
def prepost(tmp_path_factory):
    """Every subject scanned pre and post (patients and controls): equal blocks of 2."""
    path = tmp_path_factory.mktemp("eb") / "c.h5"
    sim = rc.simulate.cohort(n_regions=14, n_patients=5, n_controls=5, control_sessions=2, seed=3)
    rc.store.from_simulated(sim, path).close()
    assert main(["coupling", str(path)]) == 0
    return path


@pytest.fixture(scope="module")
def unequal(tmp_path_factory):
    """Patients pre/post, controls once: blocks of 2 and 1."""
    path = tmp_path_factory.mktemp("eb1") / "c.h5"
    sim = rc.simulate.cohort(n_regions=12, n_patients=5, n_controls=5, control_sessions=1, seed=3)
    rc.store.from_simulated(sim, path).close()
    assert main(["coupling", str(path)]) == 0
    return path


def test_rule_between_within_and_refusal():
    subj = np.repeat(["a", "b", "c", "d"], 2)
    group = np.repeat([1.0, 1.0, 0.0, 0.0], 2)
    session = np.tile([0.0, 1.0], 4)
    x = np.column_stack([np.ones(8), group, session])
    between = subject_exchangeability(subj, x, [0, 1, 0])
    assert between["whole_blocks"] is True and "whole-block permutation" in between["params"]["rule"]
    np.testing.assert_array_equal(between["blocks"], np.repeat([0, 1, 2, 3], 2))
    within = subject_exchangeability(subj, x, [0, 0, 1])
    assert within["whole_blocks"] is False and "within subject" in within["params"]["rule"]
    # one-sample (sign flips) on repeated subjects: every scan of a subject shares one sign
    ones = subject_exchangeability(subj, np.ones((8, 1)), [1])
    assert ones["whole_blocks"] is True and "sign flips" in ones["params"]["rule"]
    # one scan per subject: nothing to do
    assert subject_exchangeability(list("abcdefgh"), x, [0, 1, 0]) is None
    # between-subject effect with unequal scan counts: neither rule is valid
    with pytest.raises(InputError, match=r"constant within subject.*same\s+number of scans.*--blocks"):
        subject_exchangeability(subj[:7], x[:7], [0, 1, 0], where="--blocks")


def test_whole_block_resamples_keep_subjects_together():
    subj = np.repeat(np.arange(6), 2)
    x = np.column_stack([np.ones(12), np.repeat([1.0, 0.0], 6)])
    eb = subject_exchangeability(subj, x, [0, 1])
    r = rc.permutation.Resampling(n_perm=50, seed=0, exchangeability_blocks=eb["blocks"],
                                  whole_blocks=eb["whole_blocks"])
    perms = rc.permutation.glm_resamples(x, [0, 1], resampling=r).permutations
    # the two scans of a subject always move together to the two slots of one subject
    assert np.all(perms[:, 0::2] // 2 == perms[:, 1::2] // 2)


def test_cli_store_between_subject_uses_whole_blocks(prepost, tmp_path, capsys):
    out = tmp_path / "grp"
    args = ["permute", str(prepost), "--design", "store", "--formula", "~ group + age", "--contrast",
            "group[T.patient]", "--n-perm", "200", "--seed", "1", "-o", str(out)]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "whole-block permutation by subject" in text
    prov = json.loads(Path(f"{out}.provenance.json").read_text())
    eb = prov["parameters"]["exchangeability"][0]
    assert eb["blocks"] == "subject" and eb["whole_blocks"] is True
    # equals the GLM with subject blocks permuted whole
    from recouple.workflows.coupling import cohort_coupling

    coup = cohort_coupling(prepost).coupling
    scans = rc.store.read_table(prepost, "scans")
    x = np.column_stack([np.ones(len(scans)), (scans["group"] == "patient").to_numpy(float), scans["age"]])
    codes = np.unique(scans["subject"], return_inverse=True)[1]
    ref = rc.permutation.glm(coup, x, [0.0, 1.0, 0.0], resampling=rc.permutation.Resampling(
        n_perm=200, seed=1, exchangeability_blocks=codes, whole_blocks=True))
    got = pd.read_csv(f"{out}_fwep_c1.csv")["value"].to_numpy()
    np.testing.assert_array_equal(got, ref.pvalue_fwer.ravel())
    free = rc.permutation.glm(coup, x, [0.0, 1.0, 0.0], resampling=rc.permutation.Resampling(n_perm=200, seed=1))
    assert not np.array_equal(got, free.pvalue_fwer.ravel())


def test_cli_store_within_subject_effect(prepost, tmp_path, capsys):
    out = tmp_path / "ses"
    args = ["permute", str(prepost), "--design", "store", "--formula", "~ session + group", "--contrast",
            "session[T.pre]", "--n-perm", "100", "-o", str(out)]
    assert main(args) == 0
    assert "permutation within subject" in capsys.readouterr().out
    prov = json.loads(Path(f"{out}.provenance.json").read_text())
    assert prov["parameters"]["exchangeability"][0]["whole_blocks"] is False


def test_cli_store_unequal_blocks_refused_before_compute(unequal, tmp_path, capsys):
    out = tmp_path / "x"
    args = ["permute", str(unequal), "--design", "store", "--formula", "~ group", "--contrast",
            "group[T.patient]", "--n-perm", "100", "-o", str(out)]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "--blocks" in err and "same number of scans" in err
    assert not list(tmp_path.glob("x_*"))
    # an explicit choice is the user's
    assert main([*args, "--blocks", "subject"]) == 0


def test_store_glm_records_blocks(prepost):
    scans = rc.store.read_table(prepost, "scans")
    x = np.column_stack([np.ones(len(scans)), (scans["group"] == "patient").to_numpy(float)])
    with rc.store.open(prepost) as st:
        result = [r for r in st.results() if "coupling" in r][0]
    res = store_glm(prepost, result, x, [0.0, 1.0], resampling=rc.permutation.Resampling(n_perm=50, seed=0))
    assert res.params["exchangeability"]["blocks"] == "subject"
    assert res.params["exchangeability"]["whole_blocks"] is True
    off = store_glm(prepost, result, x, [0.0, 1.0], resampling=rc.permutation.Resampling(n_perm=50, seed=0),
                    subject_blocks=False)
    assert off.params["exchangeability"]["blocks"] is None
