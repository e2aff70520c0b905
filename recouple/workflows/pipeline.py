"""The study pipeline: coupling -> contrasts -> clinical association ->
spatial association (genes, PLS, maps) -> enrichment -> report.

Every step writes its arrays to ``<output>/steps/<step>.npz`` and then a
completion marker ``<step>.done.json`` holding a hash of the step's
parameters and inputs; a re-run skips steps whose marker matches and loads
their arrays instead. Coupling itself is chunked and resumable inside the
cohort store.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
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
from ..exceptions import ConfigError
from ..io.store import checksum
from .coupling import cohort_coupling
from .report import write_report


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


def _hash(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


class _Steps:
    """Completion markers and saved arrays of pipeline steps."""

    def __init__(self, root: Path, overwrite: bool, result: "StudyResult"):
        self.root = root / "steps"
        self.root.mkdir(parents=True, exist_ok=True)
        self.overwrite = overwrite
        self.result = result

    def run(self, name, key, compute):
        """The saved arrays of step ``name`` if finished with ``key``, else
        ``compute()`` saved with a completion marker; and "computed" / "already done"."""
        saved = self.load(name, key)
        if saved is not None:
            self.result.skipped.append(name)
            return saved, "already done"
        t0 = time.perf_counter()
        saved = compute()
        self.save(name, key, saved)
        self.result.timings[name] = time.perf_counter() - t0
        self.result.computed.append(name)
        return saved, "computed"

    def load(self, name, key):
        marker = self.root / f"{name}.done.json"
        data = self.root / f"{name}.npz"
        if self.overwrite or not marker.is_file() or not data.is_file():
            return None
        try:
            meta = json.loads(marker.read_text())
        except json.JSONDecodeError:
            return None
        if meta.get("key") != key:
            return None
        with np.load(data, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}

    def save(self, name, key, arrays: dict):
        tmp = self.root / f".{name}.tmp.npz"
        np.savez(tmp, **arrays)
        os.replace(tmp, self.root / f"{name}.npz")
        marker_tmp = self.root / f".{name}.done.tmp"
        marker_tmp.write_text(json.dumps({"key": key, "finished": time.strftime("%Y-%m-%dT%H:%M:%S")}))
        os.replace(marker_tmp, self.root / f"{name}.done.json")


def _write_csv(path: Path, header: list[str], columns: list) -> None:
    tmp = path.with_name("." + path.name + ".tmp")
    pd.DataFrame({h: c for h, c in zip(header, columns)}).to_csv(tmp, index=False, float_format="%.10g")
    os.replace(tmp, path)


def _input_fingerprint(store_path, coupling, scans) -> dict:
    """What downstream steps depend on: the coupling values, the scans table and the stored maps."""
    return {
        "store": str(store_path),
        "coupling_sha256": hashlib.sha256(np.ascontiguousarray(coupling).tobytes()).hexdigest(),
        "scans_sha256": hashlib.sha256(scans.to_csv(index=False).encode()).hexdigest(),
        "maps": checksum(store_path, ["maps"]),
    }


def sphere_coords(centroids: np.ndarray) -> np.ndarray:
    """Centroids projected onto the unit sphere (what spin nulls rotate)."""
    c = np.asarray(centroids, dtype=float)
    return c / np.linalg.norm(c, axis=1, keepdims=True)


def _select(scans, **where):
    keep = np.ones(len(scans), dtype=bool)
    for k, v in where.items():
        keep &= scans[k].astype(str).to_numpy() == str(v)
    return np.nonzero(keep)[0]


def _pairs(scans, rows, sessions):
    sub = scans.iloc[rows].reset_index(drop=True)
    subjects, pre, post = P.pair_sessions(sub, pre=sessions[0], post=sessions[1])
    return subjects, rows[pre], rows[post]


def _covariates(scans, rows, names):
    if not names:
        return None
    cols = []
    for n in names:
        col = scans[n].iloc[rows]
        if col.dtype == object or str(col.dtype).startswith(("str", "string")):
            col = np.unique(col.astype(str), return_inverse=True)[1]
        cols.append(np.asarray(col, dtype=float))
    return np.column_stack(cols)


def _run_contrast(c, scans, coupling, perm_cfg, backend):
    common = {"resampling": P.Resampling(n_perm=int(perm_cfg["n_perm"]), seed=int(perm_cfg["seed"]), backend=backend)}
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


def execute(cfg: dict, *, progress=False, overwrite=False, log=print) -> StudyResult:
    """Run the pipeline for a validated config (see :mod:`recouple.study`)."""
    out = Path(cfg["study"]["output"])
    out.mkdir(parents=True, exist_ok=True)
    (out / "tables").mkdir(exist_ok=True)
    comp = cfg["compute"]
    be = get_backend(comp.get("backend"))
    store_path = cfg["study"]["store"]
    result = StudyResult(output=out, report=out / "report.html", provenance=out / "provenance.json")
    steps = _Steps(out, overwrite, result)
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
    labels = np.asarray(regions["label"]).astype(str) if cp["level"] == "region" else None
    inputs = _input_fingerprint(store_path, coupling, scans)
    _write_csv(out / "tables" / "coupling.csv", ["scan_id", *(labels if labels is not None else
               [f"v{i}" for i in range(coupling.shape[1])])],
               [coup.scan_ids, *coupling.T])
    base_key = {"coupling": coup.analysis, "inputs": inputs, "version": __version__}
    result.steps["coupling"] = {"coupling": coupling, "scans": scans, "labels": labels, "regions": regions,
                                "analysis": coup.analysis}

    # 2. contrasts
    contrasts = {}
    for c in cfg["contrasts"]:
        name = f"contrast_{c['name']}"
        key = _hash({**base_key, "contrast": c, "perm": cfg["permutation"], "backend": be.name})
        t0 = time.perf_counter()

        def compute(c=c):
            res, desc, n = _run_contrast(c, scans, coupling, cfg["permutation"], be.name)
            return {"statistic": res.statistic, "pvalue": res.pvalue, "pvalue_fwer": res.pvalue_fwer,
                    "pvalue_fdr": res.pvalue_fdr, "null_max": res.null_max, "n_perm": np.asarray(res.n_perm),
                    "df": np.asarray(res.df), "desc": np.asarray(desc), "n": np.asarray(n)}

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
                                                        seed=int(cfg["permutation"]["seed"]), backend=be.name))
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
        result.steps.update(_spatial_steps(cfg, steps, base_key, contrasts, regions, labels, store_path, be, out,
                                           result, log, progress))

    prov = {
        "recouple_version": __version__,
        "study": cfg["study"]["name"],
        "config": {k: ({kk: vv for kk, vv in v.items() if not kk.startswith("_")} if isinstance(v, dict) else v)
                   for k, v in cfg.items()},
        "backend": be.name,
        "device": be.device,
        "dtype": "float64",
        "inputs": inputs,
        "coupling_provenance": coup.provenance,
        "steps_computed": result.computed,
        "steps_skipped": result.skipped,
        "wall_time_s": round(time.perf_counter() - t_start, 3),
    }
    tmp = out / ".provenance.json.tmp"
    tmp.write_text(json.dumps(prov, indent=2, default=str) + "\n")
    os.replace(tmp, result.provenance)
    t0 = time.perf_counter()
    write_report(cfg, result, out)
    result.timings["report"] = time.perf_counter() - t0
    log(f"[report] {result.report}")
    return result


def _target_map(cfg, contrasts):
    target = cfg["association"].get("target") or cfg["contrasts"][0]["name"]
    return target, np.asarray(contrasts[target]["statistic"], dtype=float)


def _load_expression(cfg, store_path, labels, regions):
    src = cfg["association"]["expression"]
    if src in (None, "", "store"):
        with store.open(store_path) as st:
            if "maps/expression" not in st:
                raise ConfigError("[association] expression = \"store\" but the store has no maps/expression; "
                                  "give an expression CSV (abagen format) instead.")
            values = st.read("maps/expression")
            raw = st.file["maps/expression"].attrs.get("genes")
        genes = json.loads(raw) if isinstance(raw, str) else [str(g) for g in raw]
        return G.load_expression(values, regions=list(labels), genes=genes)
    return G.load_expression(src)


def _spatial_steps(cfg, steps, base_key, contrasts, regions, labels, store_path, be, out, result, log, progress):
    assoc, ncfg, enr = cfg["association"], cfg["nulls"], cfg["enrichment"]
    target, y = _target_map(cfg, contrasts)
    hemi = np.where(regions["hemisphere"].astype(str).str.upper().str.startswith("R"), 1, 0)
    coords = sphere_coords(regions[["x", "y", "z"]].to_numpy(dtype=float))
    produced = {}

    # nulls: spatial permutations of the target map's regions
    key = _hash({**base_key, "nulls": ncfg, "target": target})
    t0 = time.perf_counter()

    def draw_nulls():
        # the one null specification (recouple.nulls.spec); coords/hemi are used by spin methods only
        _, idx = NL.spec.resolve(ncfg["method"], y, n_perm=int(ncfg["n_perm"]), seed=int(ncfg["seed"]),
                                 coords=coords, hemi=hemi)
        return {"indices": np.asarray(idx)}

    nulls = steps.run("nulls", key, draw_nulls)[0]["indices"]
    log(f"[nulls] {nulls.shape[0]} {ncfg['method']} nulls of {y.size} regions ({time.perf_counter() - t0:.1f} s)")
    produced["nulls"] = {"indices": nulls, "target": target}

    # Read the expression table only if a step that needs it has to run.
    expression = functools.lru_cache(maxsize=1)(lambda: _load_expression(cfg, store_path, labels, regions))
    key = _hash({**base_key, "assoc": {k: v for k, v in assoc.items() if k != "_present"}, "nulls": ncfg,
                 "target": target, "backend": be.name})
    t0 = time.perf_counter()

    def gene_steps():
        expr = expression()
        ga = G.associate(y, expr, labels=labels, nulls=nulls, method=assoc["method"], backend=be.name)
        saved = {"r": ga.r[0], "pvalue": ga.pvalue[0], "pvalue_fdr": ga.pvalue_fdr[0],
                 "pvalue_fwer": ga.pvalue_fwer[0], "genes": np.asarray(ga.genes).astype(str)}
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
    rnk.write_text("".join(f"{g}\t{r:.10g}\n" for g, r in zip(saved["genes"][np.argsort(-saved["r"])],
                                                               np.sort(saved["r"])[::-1])))
    if "pls_weights" in saved:
        z = saved.get("pls_zscores")
        _write_csv(out / "tables" / "pls1_genes.csv", ["gene", "weight", "z"],
                   [saved["genes"], saved["pls_weights"][:, 0],
                    z[:, 0] if z is not None and z.ndim == 2 else np.full(saved["genes"].size, np.nan)])
    log(f"[genes] {saved['genes'].size} genes vs the {target} map: {int(np.sum(saved['pvalue_fdr'] < 0.05))} with "
        f"FDR q < 0.05; top {saved['genes'][order[0]]} r = {saved['r'][order[0]]:.2f}; {state} "
        f"({time.perf_counter() - t0:.1f} s)")
    produced["genes"] = saved

    if assoc["maps"]:
        key = _hash({**base_key, "maps": assoc["maps"], "nulls": ncfg, "target": target, "backend": be.name})

        def map_steps():
            names, Y = _read_user_maps(assoc["maps"], labels)
            am = NL.compare_maps(y, Y, nulls=nulls, method=assoc["method"], backend=be.name)
            return {"names": np.asarray(names), "r": np.atleast_1d(am.r).ravel(),
                    "pvalue": np.atleast_1d(am.pvalue).ravel(), "pvalue_fdr": np.atleast_1d(am.pvalue_fdr).ravel(),
                    "pvalue_fwer": np.atleast_1d(am.pvalue_fwer).ravel()}

        saved = steps.run("maps", key, map_steps)[0]
        _write_csv(out / "tables" / "maps.csv", ["map", "r", "p_uncorrected", "p_fdr", "p_fwer"],
                   [saved["names"], saved["r"], saved["pvalue"], saved["pvalue_fdr"], saved["pvalue_fwer"]])
        log(f"[maps] {saved['names'].size} annotation map(s) vs the {target} map")
        produced["maps"] = saved

    if enr.get("gene_sets"):
        key = _hash({**base_key, "enr": enr, "nulls": ncfg, "target": target, "backend": be.name})
        t0 = time.perf_counter()

        def enrichment_steps():
            sets = G.load_gene_sets(enr["gene_sets"])
            er = G.enrichment(y, expression(), sets, nulls=nulls, labels=labels, min_size=int(enr["min_size"]),
                              max_size=int(enr["max_size"]), alternative=enr["alternative"], backend=be.name)
            return {k: np.asarray(v) for k, v in _enrichment_arrays(er).items()}

        saved = steps.run("enrichment", key, enrichment_steps)[0]
        order = np.argsort(saved["pvalue"])
        _write_csv(out / "tables" / "enrichment.csv", ["category", "size", "score", "p_uncorrected", "p_fdr"],
                   [saved["categories"][order], saved["sizes"][order], saved["scores"][order],
                    saved["pvalue"][order], saved["pvalue_fdr"][order]])
        log(f"[enrichment] {saved['categories'].size} categories; top {saved['categories'][order[0]]} "
            f"(p = {saved['pvalue'][order[0]]:.3g}) ({time.perf_counter() - t0:.1f} s)")
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


def _read_user_maps(paths, labels):
    names, rows = [], []
    for p in paths:
        table = pd.read_csv(p)
        label_col = next((c for c in table.columns if c.lower() in ("label", "region", "name")), None)
        if label_col is None:
            raise ConfigError(f"map table {p} needs a 'label' column naming regions; got columns "
                              f"{list(table.columns)}.")
        table = table.set_index(table[label_col].astype(str))
        missing = [lab for lab in labels if lab not in table.index]
        if missing:
            raise ConfigError(f"map table {p} lacks region(s) {missing[:5]}; labels must match the store's.")
        for col in table.columns:
            if col == label_col:
                continue
            names.append(f"{Path(p).stem}:{col}")
            rows.append(table.loc[list(labels), col].to_numpy(dtype=float))
    return names, np.vstack(rows)
