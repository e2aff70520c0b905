"""The demo: simulate an ECT cohort, write it to a cohort store and a
STUDY.toml, run the study and point at the report. The TOML is a starting
point users can edit for their own data."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..engine.backend import get_backend
from ..simulate import cohort, fsaverage5_parcellation, gene_sets, write_gmt
from ..store import from_simulated
from ..study import load_config, write_config
from .pipeline import execute


@dataclass(frozen=True)
class DemoSummary:
    out: Path
    study_file: Path
    report: Path
    text: str
    result: object


def demo_config(*, n_perm: int, n_nulls: int, seed: int, backend: str) -> dict:
    """The demo's study description (also written as STUDY.toml)."""
    return {
        "study": {"name": "Simulated ECT study: coupling change, symptoms and gene expression",
                  "store": "cohort.h5", "output": "results",
                  "description": "simulated with recouple.simulate.cohort"},
        "coupling": {"method": "spearman", "edges": "sc_nonzero", "level": "region"},
        "contrasts": [
            {"name": "post_vs_pre_patients", "type": "paired", "group": "patient", "sessions": ["pre", "post"]},
            {"name": "patients_vs_controls_change", "type": "group_by_time", "groups": ["patient", "control"],
             "sessions": ["pre", "post"]},
            {"name": "patients_vs_controls_baseline", "type": "two_sample", "groups": ["patient", "control"],
             "session": "pre", "covariates": ["age", "sex"]},
        ],
        "clinical": {"score": "hamd", "group": "patient", "sessions": ["pre", "post"], "change": "improvement"},
        "association": {"target": "post_vs_pre_patients", "expression": "store", "method": "spearman",
                        "pls_components": 1, "pls_bootstrap": 500},
        "nulls": {"method": "vasa", "n_perm": n_nulls, "seed": seed},
        "permutation": {"n_perm": n_perm, "seed": seed, "alpha": 0.05},
        "enrichment": {"gene_sets": "gene_sets.gmt", "min_size": 5, "max_size": 200},
        "compute": {"backend": backend},
    }


def run_demo(*, out="recouple-demo", seed=0, n_regions=100, n_patients=24, n_controls=16, backend=None,
             n_perm=2000, n_nulls=1000, progress=False, log=print, overwrite=False) -> DemoSummary:
    """Simulate the cohort, write store + STUDY.toml + gene sets, run the study."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    be = get_backend(backend)
    store = out / "cohort.h5"
    # regions of a seeded parcellation of fsaverage5: real cortical geometry for the
    # simulator's distance rule, the spins and the report's brain maps
    parcellation = fsaverage5_parcellation(n_regions, seed=seed)
    sim = cohort(n_regions=n_regions, n_patients=n_patients, n_controls=n_controls, seed=seed,
                 centroids=parcellation.centroids_mm)
    if overwrite or not store.exists():
        with from_simulated(sim, store, overwrite=True) as st:
            write_demo_geometry(st, parcellation)
    write_gmt(out / "gene_sets.gmt", gene_sets(sim, seed=seed))
    study_file = write_config(out / "STUDY.toml", demo_config(n_perm=n_perm, n_nulls=n_nulls, seed=seed,
                                                              backend=be.name))
    cfg = load_config(study_file)
    res = execute(cfg, progress=progress, overwrite=overwrite, log=log)

    c = res.steps["contrasts"]["post_vs_pre_patients"]
    labels = res.steps["coupling"]["labels"]
    planted = set(int(i) for i in sim.planted_regions)
    sig = np.nonzero(np.asarray(c["pvalue_fwer"]) < 0.05)[0]
    lines = [
        f"recouple demo — simulated ECT cohort: {n_patients} patients (pre/post), {n_controls} controls (twice), "
        f"{sim.n_regions} regions; backend {be.name}",
        f"mean nodal coupling {np.nanmean(res.steps['coupling']['coupling']):.3f}",
        f"post vs pre in patients: {sig.size} region(s) significant (FWER p < 0.05), "
        f"{sum(int(i) in planted for i in sig)} of them among the {len(planted)} planted",
    ]
    order = np.argsort(-np.asarray(c["statistic"]))[:5]
    for i in order:
        lines.append(f"  {labels[i]:<14} t = {c['statistic'][i]:6.2f}  FWER p = {c['pvalue_fwer'][i]:.4f}"
                     f"{'  (planted)' if i in planted else ''}")
    genes = res.steps.get("genes")
    if genes is not None:
        top = np.argsort(-np.abs(genes["r"]))[:10]
        hits = sum(g in set(sim.planted_genes) for g in genes["genes"][top])
        lines.append(f"genes: {hits} of the top 10 by |r| are planted genes")
    enr = res.steps.get("enrichment")
    if enr is not None:
        k = int(np.argmin(enr["pvalue"]))
        lines.append(f"enrichment: top category {enr['categories'][k]} (p = {enr['pvalue'][k]:.3g})")
    lines.append(f"study file: {study_file} (edit it for your own data and run `recouple run {study_file.name}`)")
    lines.append(f"report: {res.report}")
    return DemoSummary(out=out, study_file=study_file, report=res.report, text="\n".join(lines), result=res)


def write_demo_geometry(store, parcellation) -> None:
    """Store the simulated parcellation in an open, writable cohort store: its
    sphere, the region of each vertex and each region's centroid on the sphere."""
    from ..io.surfaces import region_geometry

    geometry = region_geometry(store.labels, parcellation.vertex_labels, parcellation.sphere)
    store.write_region_geometry(geometry, sources=["recouple.simulate.fsaverage5_parcellation"])
