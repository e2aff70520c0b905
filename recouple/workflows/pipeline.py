"""The study pipeline: coupling -> contrasts -> clinical association ->
spatial association (genes, PLS, maps) -> enrichment -> report.

Every step writes its arrays to ``<output>/steps/<step>.npz`` and then a
completion marker ``<step>.done.json`` holding a hash of the step's
parameters and inputs; a re-run skips steps whose marker matches and loads
their arrays instead. Coupling itself is chunked and resumable inside the
cohort store. Before any step, :func:`recouple.workflows.check.check_study`
reads and checks every input, so a configuration problem never surfaces
after compute has been spent.
Step keys hash the step's parameters and its inputs by content
(:mod:`.checkpoints`), and a re-run says which input changed when it
recomputes. One run at a time writes an output folder (a lock); every file
is written atomically under a unique temporary name.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .. import __version__
from .. import genes as G
from .. import nulls as NL
from .. import permutation as P
from .. import store
from ..engine.backend import get_backend
from ..engine.provenance import build_provenance, write_provenance_file
from ..genes.enrichment import dropped_message
from ..io.files import atomic_open, atomic_write
from ..io.store import checksum
from .check import STUDY_UNBOUNDED, check_study, covariate_matrix, pair_rows, select_rows, sphere_coords
from .checkpoints import Steps, output_lock, prepare_output, step_key
from .coupling import cohort_coupling
from .report import write_report

__all__ = ["StudyResult", "execute", "sphere_coords"]


@dataclass
class StudyResult:
    """What :func:`recouple.run_study` produced."""

    output: Path
    report: Path
    provenance: Path
    steps: dict = field(default_factory=dict)
    skipped: list = field(default_factory=list)
    computed: list = field(default_factory=list)
    timings: dict = field(default_factory=dict)  # step -> seconds to compute and save (steps run, not loaded)


# The key of a step: its parameters, with the store data it reads under "inputs" and, by content,
# every file the parameters name (see .checkpoints).
_hash = step_key


def _write_csv(path: Path, header: list[str], columns: list) -> None:
    with atomic_open(path, "w", newline="") as fh:
        pd.DataFrame({h: c for h, c in zip(header, columns)}).to_csv(fh, index=False, float_format="%.10g")


def _array_digest(a) -> str:
    a = np.ascontiguousarray(a)
    return hashlib.sha256(str((a.shape, a.dtype.str)).encode() + a.tobytes()).hexdigest()


def _input_fingerprint(store_path, coupling, scans) -> dict:
    """What downstream steps read from the store, by content: the coupling
    values, the scans table, the stored maps and the region table (labels,
    hemispheres, centroids, surface geometry). Not the store's path: the
    same store reached by another path (a relative path from another
    folder, a moved project) resumes."""
    stored = checksum(store_path, ["maps", "regions"])
    return {
        "coupling values": _array_digest(coupling),
        "scans table": hashlib.sha256(scans.to_csv(index=False).encode()).hexdigest(),
        "store /maps": stored.get("maps"),
        "store /regions": stored.get("regions"),
    }


_select, _pairs, _covariates = select_rows, pair_rows, covariate_matrix


def _run_contrast(c, scans, coupling, perm_cfg, backend, units=None):
    """One contrast; ``units`` (from :func:`check_study`) carries the subject blocks of scans-level tests."""
    resampling = P.Resampling(n_perm=int(perm_cfg["n_perm"]), seed=int(perm_cfg["seed"]), backend=backend,
                              precision=perm_cfg.get("precision", "float64"))
    if units is not None and units.get("blocks") is not None:
        resampling = resampling.replace(exchangeability_blocks=units["blocks"], whole_blocks=units["whole_blocks"])
    common = {"resampling": resampling}
    if c["type"] == "paired":
        rows = _select(scans, group=c["group"])
        subjects, pre, post = _pairs(scans, rows, c["sessions"])
        cov = _covariates(scans, pre, c.get("covariates"))
        res = P.paired(coupling[pre], coupling[post], covariates=cov, **common)
        desc = (f"{c['sessions'][1]} vs {c['sessions'][0]} in {c['group']} (paired sign-flip t, n = {len(pre)})")
        n = len(pre)
    elif c["type"] == "two_sample":
        a = _select(scans, group=c["groups"][0], session=c["session"])
        b = _select(scans, group=c["groups"][1], session=c["session"])
        cov = _covariates(scans, np.concatenate([a, b]), c.get("covariates"))
        res = P.two_sample(coupling[a], coupling[b], covariates=cov, **common)
        desc = (f"{c['groups'][0]} vs {c['groups'][1]} at {c['session']} (two-sample t, "
                f"n = {len(a)} + {len(b)})")
        n = len(a) + len(b)
    else:  # group_by_time: compare within-subject changes between groups
        diffs, cov_rows = [], []
        for g in c["groups"]:
            rows = _select(scans, group=g)
            _, pre, post = _pairs(scans, rows, c["sessions"])
            diffs.append(coupling[post] - coupling[pre])
            cov_rows.append(pre)
        cov = _covariates(scans, np.concatenate(cov_rows), c.get("covariates"))
        res = P.two_sample(diffs[0], diffs[1], covariates=cov, **common)
        desc = (f"change {c['sessions'][0]}->{c['sessions'][1]} in {c['groups'][0]} vs {c['groups'][1]} "
                f"(group x time, two-sample t on within-subject differences, n = {len(diffs[0])} + {len(diffs[1])})")
        n = len(diffs[0]) + len(diffs[1])
    return res, desc, n


def execute(cfg: dict, *, progress=False, overwrite=False, log=print, plan=None) -> StudyResult:
    """Run the pipeline for a validated config (see :mod:`recouple.study`).

    ``plan`` is the :class:`~recouple.workflows.check.StudyPlan` of
    :func:`~recouple.workflows.check.check_study` for this config; it is
    made here (every input read and checked) when not given. The output
    folder is locked for the run: a second run on it raises
    :class:`~recouple.exceptions.OutputError` at once, naming the first.
    """
    if plan is None:
        plan = check_study(cfg)
    out = prepare_output(cfg["study"]["output"])
    with output_lock(out):
        return _execute(cfg, out, plan, progress=progress, overwrite=overwrite, log=log)


def _execute(cfg: dict, out: Path, plan, *, progress, overwrite, log) -> StudyResult:
    (out / "tables").mkdir(exist_ok=True)
    comp = cfg["compute"]
    be = get_backend(comp.get("backend"))
    store_path = cfg["study"]["store"]
    result = StudyResult(output=out, report=out / "report.html", provenance=out / "provenance.json")
    steps = Steps(out, overwrite, result, log=log, exclude=[store_path])
    t_start = time.perf_counter()

    # 1. coupling (resumable inside the store)
    cp = cfg["coupling"]
    t0 = time.perf_counter()
    coup = cohort_coupling(
        store_path, method=cp["method"], edges=cp["edges"], level=cp["level"], min_edges=int(cp["min_edges"]),
        symmetrize=bool(cp["symmetrize"]), allow_negative=bool(cp["allow_negative"]),
        chunk_size=comp.get("chunk_size"), memory_limit=comp.get("memory_limit"),
        scheduler=comp.get("scheduler") or None, backend=be.name, progress=progress, overwrite=overwrite,
    )
    log(f"[coupling] {coup.coupling.shape[0]} scans x {coup.coupling.shape[1]} "
        f"{'regions' if cp['level'] == 'region' else 'voxels'}: {coup.n_computed} chunk(s) computed, "
        f"{coup.n_skipped} already done ({time.perf_counter() - t0:.1f} s)")
    (result.computed if coup.n_computed else result.skipped).append("coupling")
    result.timings["coupling"] = time.perf_counter() - t0
    coupling = coup.coupling
    with store.open(store_path) as st:
        scans = st.scans
        regions = st.regions
        geometry = st.region_geometry()
    labels = np.asarray(regions["label"]).astype(str) if cp["level"] == "region" else None
    inputs = _input_fingerprint(store_path, coupling, scans)
    _write_csv(out / "tables" / "coupling.csv", ["scan_id", *(labels if labels is not None else
               [f"v{i}" for i in range(coupling.shape[1])])],
               [coup.scan_ids, *coupling.T])
    base_key = {"coupling": coup.analysis, "inputs": inputs, "version": __version__}
    result.steps["coupling"] = {"coupling": coupling, "scans": scans, "labels": labels, "regions": regions,
                                "geometry": geometry, "analysis": coup.analysis}

    # 2. contrasts
    contrasts = {}
    for c in cfg["contrasts"]:
        name = f"contrast_{c['name']}"
        key = _hash({**base_key, "contrast": c, "perm": cfg["permutation"], "backend": be.name})
        t0 = time.perf_counter()

        def compute(c=c):
            units = plan.contrasts.get(c["name"])
            res, desc, n = _run_contrast(c, scans, coupling, cfg["permutation"], be.name, units)
            eb = units["exchangeability"] if units else {"blocks": None, "whole_blocks": False, "rule": ""}
            return {"statistic": res.statistic, "pvalue": res.pvalue, "pvalue_fwer": res.pvalue_fwer,
                    "pvalue_fdr": res.pvalue_fdr, "null_max": res.null_max, "n_perm": np.asarray(res.n_perm),
                    "df": np.asarray(res.df), "desc": np.asarray(desc), "n": np.asarray(n),
                    "exchangeability": np.asarray(eb["rule"]), "blocks": np.asarray(str(eb["blocks"])),
                    "whole_blocks": np.asarray(bool(eb["whole_blocks"]))}

        saved, state = steps.run(name, key, compute)
        alpha = cfg["permutation"]["alpha"]
        n_sig = int(np.sum(saved["pvalue_fwer"] < alpha))
        log(f"[{name}] {saved['desc']}: {n_sig} element(s) with FWER p < {alpha}; {state} "
            f"({time.perf_counter() - t0:.1f} s)")
        _write_csv(out / "tables" / f"{name}.csv",
                   ["region", "t", "p_uncorrected", "p_fwer", "p_fdr"],
                   [labels if labels is not None else np.arange(coupling.shape[1]), saved["statistic"],
                    saved["pvalue"], saved["pvalue_fwer"], saved["pvalue_fdr"]])
        contrasts[c["name"]] = saved
    result.steps["contrasts"] = contrasts

    # 3. clinical association: coupling change vs score change
    clin = cfg["clinical"]
    if clin["_present"] and clin.get("score"):
        key = _hash({**base_key, "clinical": {k: v for k, v in clin.items() if k != "_present"},
                     "perm": cfg["permutation"], "backend": be.name})
        t0 = time.perf_counter()

        def compute():
            rows = _select(scans, group=clin["group"])
            subjects, pre, post = _pairs(scans, rows, clin["sessions"])
            score = scans[clin["score"]].to_numpy(dtype=float)
            dscore = score[pre] - score[post] if clin["change"] == "improvement" else score[post] - score[pre]
            dcoup = coupling[post] - coupling[pre]
            cov = _covariates(scans, pre, clin.get("covariates"))
            res = P.correlation(dscore, dcoup, covariates=cov, method=clin["method"],
                                resampling=P.Resampling(n_perm=int(cfg["permutation"]["n_perm"]),
                                                        seed=int(cfg["permutation"]["seed"]), backend=be.name,
                                                        precision=cfg["permutation"].get("precision", "float64")))
            return {"r": res.statistic, "pvalue": res.pvalue, "pvalue_fwer": res.pvalue_fwer,
                    "pvalue_fdr": res.pvalue_fdr, "dscore": dscore, "dcoupling": dcoup,
                    "subjects": np.asarray(subjects).astype(str), "null_max": res.null_max}

        saved, state = steps.run("clinical", key, compute)
        best = int(np.nanargmax(np.abs(saved["r"])))
        log(f"[clinical] change in coupling vs {clin['change']} of {clin['score']}: strongest "
            f"{labels[best] if labels is not None else best} r = {saved['r'][best]:.2f} "
            f"(FWER p = {saved['pvalue_fwer'][best]:.3g}); {state} ({time.perf_counter() - t0:.1f} s)")
        _write_csv(out / "tables" / "clinical.csv", ["region", "r", "p_uncorrected", "p_fwer", "p_fdr"],
                   [labels if labels is not None else np.arange(coupling.shape[1]), saved["r"], saved["pvalue"],
                    saved["pvalue_fwer"], saved["pvalue_fdr"]])
        result.steps["clinical"] = saved

    # 4. spatial association of the target map with genes and maps
    assoc = cfg["association"]
    if assoc["_present"] and cp["level"] == "region" and cfg["contrasts"]:
        result.steps.update(_spatial_steps(cfg, plan, steps, base_key, contrasts, labels, be, out, log))

    config = {k: ({kk: vv for kk, vv in v.items() if not kk.startswith("_")} if isinstance(v, dict) else v)
              for k, v in cfg.items()}
    prov = build_provenance(
        analysis="study", params={"study": cfg["study"]["name"]}, backend=be,
        seed=cfg.get("permutation", {}).get("seed"), inputs=inputs,
        scheduler=comp.get("scheduler") or "threads",
        extra={"study": cfg["study"]["name"], "config": config, "coupling_provenance": coup.provenance,
               "input_files": steps.files(), "steps_computed": result.computed, "steps_skipped": result.skipped,
               "wall_time_s": round(time.perf_counter() - t_start, 3)},
    )
    write_provenance_file(out, prov)  # <output>/provenance.json, by the one provenance writer
    t0 = time.perf_counter()
    write_report(cfg, result, out)
    result.timings["report"] = time.perf_counter() - t0
    log(f"[report] {result.report}")
    return result


def _target_map(cfg, contrasts):
    target = cfg["association"].get("target") or cfg["contrasts"][0]["name"]
    return target, np.asarray(contrasts[target]["statistic"], dtype=float)


def _nulls_digest(plan) -> str:
    """Hash of what the nulls are drawn from (geometry, vertex parcellation, or the nulls file's array)."""
    h = hashlib.sha256()
    source = plan.nulls.get("spec") or {"array": plan.nulls.get("array")}
    for name in sorted(source):
        value = source[name]
        if isinstance(value, np.ndarray):
            h.update(name.encode() + np.ascontiguousarray(value).tobytes())
    return h.hexdigest()[:16]


MIN_SPATIAL_REGIONS = 10
"""Fewest regions with a defined target statistic for the spatial steps (correlations
across regions, PLS, enrichment) to run."""


def _restrict_nulls(source: dict, keep: np.ndarray) -> dict:
    """The null source of ``plan.nulls`` for the regions ``keep`` (a boolean mask) only.

    Spins of region centroids are drawn among the kept centroids; vertex spins
    treat the vertices of left-out regions like the medial wall; spatially
    naive permutations permute the kept regions; precomputed surrogate maps
    keep their kept columns; precomputed resampling indices are renumbered,
    an index pointing at a left-out region becoming -1 (a missing value).
    """
    if keep.all():
        return source
    source = dict(source)
    if source["method"] == "file":
        arr = source["array"]
        if source["kind"] == "index":
            new_pos = np.full(keep.size + 1, -1, dtype=np.int64)  # the last slot takes -1 (already missing)
            new_pos[np.flatnonzero(keep)] = np.arange(int(keep.sum()))
            sub = arr[:, keep]
            source["array"] = new_pos[np.where(sub < 0, keep.size, sub)]
        else:
            source["array"] = arr[:, keep]
        return source
    spec = dict(source["spec"])
    if "parcellation" in spec:  # vertex spins: region numbers 1..N per vertex, 0 = no region
        renumber = np.zeros(keep.size + 1, dtype=np.int64)
        renumber[1:][keep] = np.arange(1, int(keep.sum()) + 1)
        spec["parcellation"] = renumber[np.asarray(spec["parcellation"], dtype=np.int64)]
    elif "coords" in spec:
        spec["coords"] = np.asarray(spec["coords"])[keep]
        spec["hemi"] = np.asarray(spec["hemi"])[keep]
    source["spec"] = spec
    return source


def _spatial_steps(cfg, plan, steps, base_key, contrasts, labels, be, out, log):
    assoc, ncfg, enr = cfg["association"], cfg["nulls"], cfg["enrichment"]
    target, y = _target_map(cfg, contrasts)
    # every spatial step reads the target map: key them on its values, not on the name of its contrast
    base_key = {**base_key, "inputs": {**base_key["inputs"], "target map": _array_digest(y)}}
    produced = {}

    # regions whose target statistic is undefined (NaN: e.g. a within-subject change with zero
    # variance in a small cohort) are left out of every spatial step, and said so
    keep = np.isfinite(y)
    left_out = labels[~keep]
    if left_out.size:
        note = (f"{left_out.size} of {y.size} regions have no defined statistic in the {target!r} map (NaN: e.g. "
                "zero variance of the within-subject change, or no defined coupling) and are left out of the "
                f"spatial steps (gene association, PLS, enrichment, map association): {', '.join(left_out)}.")
        log(f"[spatial] {note}")
        produced["spatial"] = {"note": note, "keep": keep, "left_out": left_out}
    if int(keep.sum()) < MIN_SPATIAL_REGIONS:
        skipped = (f"Spatial steps not run: only {int(keep.sum())} of {y.size} regions have a defined statistic in "
                   f"the {target!r} map; correlations across regions, PLS and enrichment need at least "
                   f"{MIN_SPATIAL_REGIONS}. Use a larger cohort, or a contrast with more defined regions as "
                   "[association] target.")
        log(f"[spatial] {skipped}")
        produced["spatial"] = {**produced.get("spatial", {"note": "", "keep": keep, "left_out": left_out}),
                               "skipped": skipped}
        return produced
    y, labels = y[keep], labels[keep]
    null_source = _restrict_nulls(plan.nulls, keep)
    regions_key = {"left_out": left_out.tolist()}

    # nulls of the target map: resampling indices (spins, permutations) or surrogate maps (cornblath, a file)
    key = _hash({**base_key, "inputs": {**base_key["inputs"], "null geometry": _nulls_digest(plan)}, "nulls": ncfg,
                 "target": target, **regions_key})
    t0 = time.perf_counter()

    def draw_nulls():
        if null_source["method"] == "file":
            kind, arr = null_source["kind"], null_source["array"]
        else:
            # the one null specification (recouple.nulls.spec), with the geometry check_study found
            kind, arr = NL.spec.resolve(null_source["spec"], y)
            arr = arr if kind == "index" else arr[0]
        return {"indices": np.asarray(arr)} if kind == "index" else {"maps": np.asarray(arr, dtype=np.float64)}

    drawn = steps.run("nulls", key, draw_nulls)[0]
    kind = "indices" if "indices" in drawn else "maps"
    nulls = drawn[kind]
    log(f"[nulls] {nulls.shape[0]} {ncfg['method'] if plan.nulls['method'] != 'file' else 'precomputed'} "
        f"{'resampling indices' if kind == 'indices' else 'surrogate maps'} of {y.size} regions "
        f"({time.perf_counter() - t0:.1f} s)")
    produced["nulls"] = {kind: nulls, "target": target}

    def expression():
        return plan.expression
    key = _hash({**base_key, "assoc": {k: v for k, v in assoc.items() if k not in ("_present", "maps")}, "nulls": ncfg,
                 "target": target, "backend": be.name, **regions_key, "saves": ["n_perm"]})
    t0 = time.perf_counter()

    def gene_steps():
        expr = expression()
        ga = G.associate(y, expr, labels=labels, nulls=nulls, method=assoc["method"], backend=be.name)
        saved = {"r": ga.r[0], "pvalue": ga.pvalue[0], "pvalue_fdr": ga.pvalue_fdr[0],
                 "pvalue_fwer": ga.pvalue_fwer[0], "genes": np.asarray(ga.genes).astype(str),
                 "n_perm": np.asarray(ga.n_perm)}  # the p-value floor 1/(n_perm+1): the report's resolution note
        ncomp = int(assoc["pls_components"])
        if ncomp > 0:
            pl = G.pls(y, expr, n_components=ncomp, n_boot=int(assoc["pls_bootstrap"]), nulls=nulls,
                       seed=int(ncfg["seed"]), labels=labels, backend=be.name)
            saved.update({f"pls_{k}": np.asarray(v) for k, v in _pls_arrays(pl).items()})
        return saved

    saved, state = steps.run("genes", key, gene_steps)
    order = np.argsort(-np.abs(saved["r"]))
    _write_csv(out / "tables" / "genes.csv", ["gene", "r", "p_uncorrected", "p_fdr", "p_fwer"],
               [saved["genes"][order], saved["r"][order], saved["pvalue"][order], saved["pvalue_fdr"][order],
                saved["pvalue_fwer"][order]])
    rnk = out / "tables" / "genes.rnk"
    atomic_write(rnk, "".join(f"{g}\t{r:.10g}\n" for g, r in zip(saved["genes"][np.argsort(-saved["r"])],
                                                               np.sort(saved["r"])[::-1])))
    if "pls_weights" in saved:
        z = saved.get("pls_zscores")
        _write_csv(out / "tables" / "pls1_genes.csv", ["gene", "weight", "z"],
                   [saved["genes"], saved["pls_weights"][:, 0],
                    z[:, 0] if z is not None and z.ndim == 2 else np.full(saved["genes"].size, np.nan)])
    log(f"[genes] {saved['genes'].size} genes vs the {target} map: {int(np.sum(saved['pvalue_fdr'] < 0.05))} with "
        f"FDR q < 0.05; top {saved['genes'][order[0]]} r = {saved['r'][order[0]]:.2f}; {state} "
        f"({time.perf_counter() - t0:.1f} s)")
    resolution = NL.resolution_note(saved["pvalue"], int(saved["n_perm"]), alpha=float(cfg["permutation"]["alpha"]))
    if resolution:
        log(f"[genes] {resolution}")
    produced["genes"] = saved

    if assoc["maps"]:
        key = _hash({**base_key, "maps": assoc["maps"], "nulls": ncfg, "target": target, "backend": be.name,
                     **regions_key})

        def map_steps():
            names, Y = plan.maps
            am = NL.compare_maps(y, np.asarray(Y)[:, keep], nulls=nulls, method=assoc["method"], backend=be.name)
            return {"names": np.asarray(names), "r": np.atleast_1d(am.r).ravel(),
                    "pvalue": np.atleast_1d(am.pvalue).ravel(), "pvalue_fdr": np.atleast_1d(am.pvalue_fdr).ravel(),
                    "pvalue_fwer": np.atleast_1d(am.pvalue_fwer).ravel()}

        saved = steps.run("maps", key, map_steps)[0]
        _write_csv(out / "tables" / "maps.csv", ["map", "r", "p_uncorrected", "p_fdr", "p_fwer"],
                   [saved["names"], saved["r"], saved["pvalue"], saved["pvalue_fdr"], saved["pvalue_fwer"]])
        log(f"[maps] {saved['names'].size} annotation map(s) vs the {target} map")
        produced["maps"] = saved

    if enr.get("gene_sets"):
        key = _hash({**base_key, "enr": enr, "expression": assoc["expression"], "nulls": ncfg, "target": target,
                     "backend": be.name, **regions_key, "saves": ["dropped"]})
        t0 = time.perf_counter()

        def enrichment_steps():
            sets = plan.gene_sets
            max_size = None if enr["max_size"] is None else int(enr["max_size"])
            er = G.enrichment(y, expression(), sets, nulls=nulls, labels=labels, min_size=int(enr["min_size"]),
                              max_size=max_size, alternative=enr["alternative"], backend=be.name)
            saved = {k: np.asarray(v) for k, v in _enrichment_arrays(er).items()}
            # which gene sets the size bounds left out, and why (the report and the log print it)
            saved["dropped_message"] = np.asarray(dropped_message(er.dropped, er.n_sets, er.min_size, er.max_size,
                                                                  unbounded=STUDY_UNBOUNDED))
            saved["dropped"] = np.asarray(sorted(er.dropped), dtype=str)
            saved["n_sets"] = np.asarray(int(er.n_sets))
            return saved

        saved = steps.run("enrichment", key, enrichment_steps)[0]
        order = np.argsort(saved["pvalue"])
        _write_csv(out / "tables" / "enrichment.csv", ["category", "size", "score", "p_uncorrected", "p_fdr"],
                   [saved["categories"][order], saved["sizes"][order], saved["scores"][order],
                    saved["pvalue"][order], saved["pvalue_fdr"][order]])
        log(f"[enrichment] {saved['categories'].size} of {int(saved['n_sets'])} gene sets tested; top "
            f"{saved['categories'][order[0]]} (p = {saved['pvalue'][order[0]]:.3g}) "
            f"({time.perf_counter() - t0:.1f} s)")
        if str(saved["dropped_message"]):
            log(f"[enrichment] {saved['dropped_message']}")
        produced["enrichment"] = saved
    return produced


def _pls_arrays(pl) -> dict:
    out = {}
    for name in ("weights", "scores", "var_explained", "pvalue", "zscores", "null_var_explained"):
        v = getattr(pl, name, None)
        if v is not None:
            out[name] = np.asarray(v)
    return out


def _enrichment_arrays(er) -> dict:
    out = {}
    for name, attr in (("categories", "categories"), ("sizes", "sizes"), ("scores", "score"),
                       ("pvalue", "pvalue"), ("pvalue_fdr", "pvalue_fdr")):
        v = getattr(er, attr, None)
        if v is None and attr == "score":
            v = getattr(er, "scores", None)
        out[name] = np.asarray(v).astype(str) if name == "categories" else np.asarray(v)
    return out
