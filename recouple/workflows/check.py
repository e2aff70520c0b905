"""Everything a study needs, checked before anything is computed.

:func:`check_study` opens and parses every input a validated study config
names (the store, the expression table, gene sets, map tables, a nulls file,
region geometry), checks that their region labels agree with the store's
(naming which regions are missing where), that each method has what it needs
(spin nulls need finite region geometry; vertex spins need a surface
parcellation), that contrasts can be formed (paired scans exist) and that the
scans of a contrast are exchangeable (subject blocks, see
:func:`recouple.workflows.inference.subject_exchangeability`). It returns a
:class:`StudyPlan` holding what it read (so the pipeline reads nothing twice)
and a short summary of what would run. Every problem is a
:class:`~recouple.exceptions.ConfigError` naming the key and the fix.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .. import genes as G
from .. import nulls as NL
from .. import permutation as P
from ..exceptions import ConfigError, InputError, StoreError
from ..genes.enrichment import dropped_message, membership_matrix
from ..io.store import open as open_store
from ..io.store import validate as validate_store
from ..io.surfaces import centroid_table, region_geometry, region_key
from .inference import subject_exchangeability

STUDY_UNBOUNDED = 'set max_size = "none" in [enrichment]'  # how a study file lifts the gene-set upper bound

__all__ = ["StudyPlan", "check_study", "GEOMETRY_HINT", "VERTEX_SPINS"]

VERTEX_SPINS = ("baum", "cornblath")
"""Spin methods that rotate the vertices of a surface parcellation (not region centroids)."""

GEOMETRY_HINT = ("Give the regions' geometry in one of three ways: `recouple ingest ... --parcellation LH RH "
                 "--sphere LH RH` (or --centroids table.csv) when building the store; "
                 "`rc.store.set_geometry(store, parcellation=(lh, rh), sphere=(lh, rh))` on an existing store; or "
                 "in the study file, [regions] parcellation = [\"lh.aparc.annot\", \"rh.aparc.annot\"] and "
                 "sphere = [\"lh.sphere\", \"rh.sphere\"] (or centroids = \"centroids.csv\"). Never replace missing "
                 "coordinates by zeros: every spin would then be meaningless.")


@dataclass
class StudyPlan:
    """What :func:`check_study` found: the inputs, read once, and what would run.

    Attributes
    ----------
    labels : (N,) str array
        The store's regions, in store order.
    scans : pandas.DataFrame
    geometry : RegionGeometry or None
        From ``[regions]`` when given, else the store's.
    geometry_source : str
    nulls : dict or None
        ``{"method", "spec"}`` (a spec for :func:`recouple.nulls.spec.resolve`)
        or ``{"method": "file", "array"}``; None when no spatial step runs.
    expression : Expression or None
    gene_sets : dict or None
    maps : (names, (M, N) array) or None
    contrasts : dict
        Per contrast name: ``{"units", "exchangeability", "blocks", "whole_blocks"}``.
    lines : list of str
        The summary (:meth:`summary`).
    """

    labels: np.ndarray
    scans: pd.DataFrame
    geometry: object = None
    geometry_source: str = ""
    nulls: dict | None = None
    expression: object = None
    gene_sets: dict | None = None
    maps: tuple | None = None
    contrasts: dict = field(default_factory=dict)
    lines: list = field(default_factory=list)

    def summary(self) -> str:
        return "\n".join(self.lines)


# ----------------------------------------------------------------------------- helpers shared with the pipeline

def select_rows(scans, **where):
    """Row indices of ``scans`` whose columns equal the given values (compared as text)."""
    keep = np.ones(len(scans), dtype=bool)
    for k, v in where.items():
        keep &= scans[k].astype(str).to_numpy() == str(v)
    return np.nonzero(keep)[0]


def pair_rows(scans, rows, sessions):
    """Subjects and the pre/post row indices among ``rows``."""
    sub = scans.iloc[rows].reset_index(drop=True)
    subjects, pre, post = P.pair_sessions(sub, pre=sessions[0], post=sessions[1])
    return subjects, rows[pre], rows[post]


def covariate_matrix(scans, rows, names):
    """Covariate columns of ``rows`` (text columns coded 0, 1, ...), or None."""
    if not names:
        return None
    cols = []
    for n in names:
        col = scans[n].iloc[rows]
        if col.dtype == object or str(col.dtype).startswith(("str", "string")):
            col = np.unique(col.astype(str), return_inverse=True)[1]
        cols.append(np.asarray(col, dtype=float))
    return np.column_stack(cols)


def read_map_tables(paths, labels):
    """``(names, (M, N) values)`` of map tables (a ``label`` column and one column per map), rows by label."""
    names, rows = [], []
    for p in paths:
        try:
            table = pd.read_csv(p, sep="\t" if str(p).endswith((".tsv", ".txt")) else ",")
        except Exception as exc:
            raise ConfigError(f"[association] maps: {p} could not be parsed as a table ({exc}). Write a CSV with "
                              "a 'label' column and one column per map.") from None
        label_col = next((c for c in table.columns if str(c).lower() in ("label", "region", "name")), None)
        if label_col is None:
            raise ConfigError(f"map table {p} needs a 'label' column naming regions; got columns "
                              f"{list(table.columns)}.")
        table = table.set_index(table[label_col].astype(str))
        missing = [lab for lab in labels if lab not in table.index]
        if missing:
            raise ConfigError(f"map table {p} lacks {len(missing)} region(s) of the store: "
                              f"{', '.join(missing[:20])}{' ...' if len(missing) > 20 else ''}; labels must match "
                              "the store's.")
        for col in table.columns:
            if col == label_col:
                continue
            values = pd.to_numeric(table.loc[list(labels), col], errors="coerce").to_numpy(dtype=float)
            if not np.isfinite(values).all():
                raise ConfigError(f"map table {p} column {col!r} must hold finite numbers for every region of the "
                                  "store; some are empty or not numbers.")
            names.append(f"{Path(p).stem}:{col}")
            rows.append(values)
    return names, np.vstack(rows)


def sphere_coords(centroids: np.ndarray) -> np.ndarray:
    """Centroids projected onto the unit sphere (what spin nulls rotate)."""
    c = np.asarray(centroids, dtype=float)
    return c / np.linalg.norm(c, axis=1, keepdims=True)


# ----------------------------------------------------------------------------- the check

def _missing_text(items, limit=20):
    return f"{', '.join(map(str, items[:limit]))}{' ...' if len(items) > limit else ''}"


def _store_checks(cfg, plan):
    path = cfg["study"]["store"]
    try:
        report = validate_store(path)
    except (InputError, StoreError) as exc:
        raise ConfigError(f"[study] store {path!r} is not a valid cohort store: {exc}") from None
    with open_store(path) as st:
        plan.scans = st.scans
        plan.labels = np.asarray(st.labels).astype(str)
        names = set(st.datasets())
    if cfg["coupling"]["level"] == "region":
        need = [d for d in ("sc", "fc") if d not in names]
        if need:
            raise ConfigError(f"[study] store {path!r} has no {' and no '.join(need)} matrices, which region "
                              "coupling needs. Ingest them with `recouple ingest --sc ... --fc ...`.")
    plan.lines.append(f"store: {path} ({len(plan.scans)} scans, {plan.labels.size} regions; "
                      f"datasets {', '.join(report.datasets)})")


def _contrast_checks(cfg, plan):
    scans = plan.scans
    has_subject = "subject" in scans.columns
    n_perm = cfg["permutation"]["n_perm"]
    for c in cfg["contrasts"]:
        where = f"[[contrasts]] {c['name']!r}"
        try:
            if c["type"] in ("paired", "group_by_time"):
                groups = [c["group"]] if c["type"] == "paired" else list(c["groups"])
                sizes = []
                for g in groups:
                    _, pre, _ = pair_rows(scans, select_rows(scans, group=g), c["sessions"])
                    covariate_matrix(scans, pre, c.get("covariates"))
                    sizes.append(len(pre))
                if c["type"] == "paired":
                    rule = (f"sign flips of each subject's {c['sessions'][1]} - {c['sessions'][0]} difference "
                            "(exchanging each subject's two scans: permutation within subject)")
                    units = f"{sizes[0]} subjects"
                else:
                    rule = ("permutation of the subjects' within-subject differences between the groups "
                            "(one difference per subject)")
                    units = f"{sizes[0]} + {sizes[1]} subjects"
                info = {"units": units, "blocks": None, "whole_blocks": False,
                        "exchangeability": {"blocks": "subject", "whole_blocks": False, "rule": rule}}
            else:
                a = select_rows(scans, group=c["groups"][0], session=c["session"])
                b = select_rows(scans, group=c["groups"][1], session=c["session"])
                if not a.size or not b.size:
                    empty = c["groups"][0] if not a.size else c["groups"][1]
                    raise ConfigError(f"{where}: group {empty!r} has no scan at session {c['session']!r}. "
                                      "Pick a session both groups have.")
                rows = np.concatenate([a, b])
                cov = covariate_matrix(scans, rows, c.get("covariates"))
                design = np.column_stack([np.r_[np.ones(a.size), np.zeros(b.size)], np.ones(rows.size)]
                                         + ([] if cov is None else [cov]))
                contrast = np.zeros(design.shape[1])
                contrast[0] = 1.0
                eb = None
                if has_subject:
                    eb = subject_exchangeability(scans["subject"].iloc[rows], design, contrast,
                                                 resampling=P.Resampling(kind="permute"),
                                                 where=f"one scan per subject at session {c['session']!r}")
                info = {"units": f"{a.size} + {b.size} scans", "blocks": None if eb is None else eb["blocks"],
                        "whole_blocks": False if eb is None else eb["whole_blocks"],
                        "exchangeability": ({"blocks": None, "whole_blocks": False,
                                             "rule": "permutation of scans (one scan per subject)"}
                                            if eb is None else eb["params"])}
        except ConfigError:
            raise
        except InputError as exc:
            raise ConfigError(f"{where}: {exc}") from None
        plan.contrasts[c["name"]] = info
        plan.lines.append(f"contrast {c['name']}: {c['type']} on {info['units']}, {n_perm} resamples; "
                          f"exchangeability: {info['exchangeability']['rule']}")
    clin = cfg["clinical"]
    if clin["_present"] and clin.get("score"):
        try:
            subjects, pre, post = pair_rows(scans, select_rows(scans, group=clin["group"]), clin["sessions"])
            covariate_matrix(scans, pre, clin.get("covariates"))
        except InputError as exc:
            raise ConfigError(f"[clinical]: {exc}") from None
        score = pd.to_numeric(scans[clin["score"]], errors="coerce").to_numpy(dtype=float)
        if not np.isfinite(score[np.r_[pre, post]]).all():
            raise ConfigError(f"[clinical] score {clin['score']!r} must be a number for every {clin['group']} scan "
                              f"at {clin['sessions'][0]!r} and {clin['sessions'][1]!r}; some are empty or not "
                              "numbers. Fill them or drop those subjects.")
        plan.lines.append(f"clinical: change in coupling vs {clin['change']} of {clin['score']} over "
                          f"{len(subjects)} {clin['group']} subjects ({clin['method']})")


def _edge_checks(cfg, plan):
    """Regions whose coupling would be undefined (fewer than min_edges SC edges in some scan) would leave
    the target map undefined there; the spatial association needs it everywhere, so refuse now."""
    cp = cfg["coupling"]
    if cp["edges"] != "sc_nonzero":
        return
    with open_store(cfg["study"]["store"]) as st:
        sc = st.handle("sc")
        n_scans = st.n_scans
        fewest = np.full(plan.labels.size, np.iinfo(np.int64).max)
        for k0 in range(0, n_scans, 64):
            block = np.asarray(sc[k0:k0 + 64], dtype=np.float64)
            off = block.copy()
            idx = np.arange(off.shape[-1])
            off[:, idx, idx] = 0.0
            fewest = np.minimum(fewest, np.count_nonzero(off, axis=2).min(axis=0))
    bad = plan.labels[fewest < int(cp["min_edges"])].tolist()
    if bad:
        raise ConfigError(
            f"[coupling] min_edges = {cp['min_edges']}: {len(bad)} region(s) have fewer non-zero SC edges in some "
            f"scan ({_missing_text(bad)}), so their coupling, and the association target map there, would be "
            "undefined; the spatial association needs the map at every region. Lower [coupling] min_edges, or "
            "use a parcellation whose regions are all connected in every scan.")


def _geometry(cfg, plan, *, needed):
    reg = cfg["regions"]
    given = reg.get("_present") and (reg.get("parcellation") or reg.get("centroids"))
    if given:
        try:
            if reg.get("centroids"):
                geo = centroid_table(plan.labels, reg["centroids"])
                plan.geometry_source = f"[regions] centroids {reg['centroids']}"
            else:
                parc = reg["parcellation"]
                geo = region_geometry(plan.labels, parc if len(parc) == 2 else parc[0], reg["sphere"],
                                      names=reg.get("names"))
                plan.geometry_source = f"[regions] parcellation {', '.join(Path(p).name for p in parc)}"
        except InputError as exc:
            raise ConfigError(f"[regions]: {exc}") from None
        plan.geometry = geo
        if geo.message:
            plan.lines.append(f"regions: {geo.message}")
        return
    if not needed:
        return
    with open_store(cfg["study"]["store"]) as st:
        plan.geometry = st.region_geometry()
    plan.geometry_source = "the store's /regions"


def _null_checks(cfg, plan):
    ncfg = cfg["nulls"]
    n = plan.labels.size
    if ncfg.get("file"):
        path = Path(ncfg["file"])
        if path.suffix.lower() == ".npy":
            try:
                arr = np.load(path, allow_pickle=False)
            except Exception as exc:
                raise ConfigError(f"[nulls] file {str(path)!r} could not be read as a .npy array ({exc}).") from None
        else:
            try:
                table = pd.read_csv(path, sep="\t" if path.suffix.lower() in (".tsv", ".txt") else ",")
            except Exception as exc:
                raise ConfigError(f"[nulls] file {str(path)!r} could not be parsed ({exc}).") from None
            keys = {region_key(str(col)): col for col in table.columns}
            missing = [lab for lab in plan.labels if region_key(lab) not in keys]
            if missing:
                raise ConfigError(f"[nulls] file {str(path)!r} has no column for {len(missing)} region(s) of the "
                                  f"store: {_missing_text(missing)}. One column per region (named like the store's "
                                  "labels), one null map per row.")
            arr = table[[keys[region_key(lab)] for lab in plan.labels]].apply(pd.to_numeric, errors="coerce")
            arr = arr.to_numpy(dtype=np.float64)
        try:
            kind, values = NL.spec.resolve(arr, np.zeros(n))
        except InputError as exc:
            raise ConfigError(f"[nulls] file {str(path)!r}: {exc} Its columns must be the store's {n} regions in "
                              "store order (a .npy), or be named by region (a CSV).") from None
        plan.nulls = {"method": "file", "array": values if kind == "index" else values[0], "kind": kind}
        plan.lines.append(f"nulls: {values.shape[-2]} precomputed {'resampling indices' if kind == 'index' else 'surrogate maps'} "
                          f"from {path.name}")
        return
    method = ncfg["method"]
    spec = {"method": method, "n_perm": int(ncfg["n_perm"]), "seed": int(ncfg["seed"])}
    if method in NL.SPIN_METHODS:
        geo = plan.geometry
        cent = None if geo is None else np.asarray(geo.centroids, dtype=float)
        if cent is None or not np.isfinite(cent).all():
            bad = [] if cent is None else plan.labels[~np.isfinite(cent).all(axis=1)].tolist()
            raise ConfigError(
                f"[nulls] method {method!r} (spin permutations) needs finite region centroids on the sphere; "
                f"{plan.geometry_source or 'the store'} has none for {len(bad) if cent is not None else n} of the "
                f"{n} regions ({_missing_text(bad)}). {GEOMETRY_HINT}")
        if method in VERTEX_SPINS:
            if not geo.has_surface:
                raise ConfigError(
                    f"[nulls] method {method!r} rotates the vertices of a surface parcellation; "
                    f"{plan.geometry_source} gives region centroids only. Give a parcellation and a sphere "
                    "([regions] parcellation/sphere, `recouple ingest --parcellation/--sphere` or "
                    "rc.store.set_geometry), or use method = \"vasa\".")
            coords, vhemi = geo.vertex_coords()
            spec.update(coords=coords, hemi=vhemi, parcellation=geo.vertex_labels())
        else:
            hemi = np.where(pd.Series(np.asarray(geo.hemisphere).astype(str)).str.upper().str.startswith("R"), 1, 0)
            spec.update(coords=sphere_coords(cent), hemi=hemi)
        where = "vertices of the surface parcellation" if method in VERTEX_SPINS else "region centroids"
        plan.lines.append(f"nulls: {ncfg['n_perm']} {method!r} spins of the {where} ({plan.geometry_source}), "
                          f"seed {ncfg['seed']}"
                          f"{'; surrogate maps (re-averaged per region)' if method == 'cornblath' else ''}")
    else:
        plan.lines.append(f"nulls: {ncfg['n_perm']} spatially naive permutations of the regions, seed {ncfg['seed']}")
    plan.nulls = {"method": method, "spec": spec}


def _expression_checks(cfg, plan):
    assoc = cfg["association"]
    src = assoc["expression"]
    dup = assoc["duplicate_genes"]
    try:
        if src in (None, "", "store"):
            with open_store(cfg["study"]["store"]) as st:
                if "maps/expression" not in st:
                    raise ConfigError("[association] expression = \"store\" but the store has no maps/expression; "
                                      "give an expression CSV (abagen format) instead.")
                values = st.read("maps/expression")
                raw = st.file["maps/expression"].attrs.get("genes")
            genes = json.loads(raw) if isinstance(raw, str) else [str(g) for g in raw]
            expr = G.load_expression(values, regions=list(plan.labels), genes=genes, duplicate_genes=dup)
        else:
            expr = G.load_expression(src, duplicate_genes=dup)
    except ConfigError:
        raise
    except InputError as exc:
        fix = (" Set [association] duplicate_genes = \"drop\" (or \"mean\") to handle them."
               if "genes must be unique" in str(exc) else "")
        raise ConfigError(f"[association] expression {src!r}: {exc}{fix}") from None
    keys = {region_key(r) for r in expr.regions}
    missing = [lab for lab in plan.labels if region_key(lab) not in keys]
    if missing:
        raise ConfigError(f"[association] expression {src!r} has no row for {len(missing)} of the store's "
                          f"{plan.labels.size} regions: {_missing_text(missing)} (its regions look like "
                          f"{list(expr.regions[:3])}). Use the expression of the store's parcellation.")
    try:
        al = G.align(expr, plan.labels, missing="error")
    except InputError as exc:
        raise ConfigError(f"[association] expression {src!r}: {exc}") from None
    vals = al.expression.values
    nan = np.isnan(vals).any(axis=1)
    if nan.any():
        raise ConfigError(f"[association] expression {src!r} has missing values in {int(nan.sum())} region(s) of "
                          f"the store: {_missing_text(list(al.expression.regions[nan]))}. Fill or drop those genes.")
    const = np.ptp(vals, axis=0) == 0
    if const.any():
        raise ConfigError(f"[association] expression {src!r} has {int(const.sum())} gene(s) constant over the "
                          f"store's regions, e.g. {list(al.expression.genes[const][:5])}; drop them from the table.")
    plan.expression = expr
    extra = f"; {al.unmatched_expression.size} expression region(s) not in the store left out" \
        if al.unmatched_expression.size else ""
    plan.lines.append(f"genes: {expr.genes.size} genes x {plan.labels.size} matched regions "
                      f"(duplicate_genes = {dup!r}){extra}; {assoc['method']} r per gene"
                      + (f", PLS {assoc['pls_components']} component(s), {assoc['pls_bootstrap']} bootstraps"
                         if int(assoc["pls_components"]) > 0 else ""))


def check_study(cfg: dict) -> StudyPlan:
    """Check every input of a validated study config (see :func:`recouple.study.load_config`); compute nothing.

    Returns
    -------
    StudyPlan
        The inputs read and a summary of what would run.

    Raises
    ------
    ConfigError
        Naming the key, the file, the missing regions, and the fix.
    """
    plan = StudyPlan(labels=np.array([], dtype=str), scans=pd.DataFrame())
    _store_checks(cfg, plan)
    cp = cfg["coupling"]
    plan.lines.append(f"coupling: {cp['method']} over {cp['edges']} edges, {cp['level']} level, "
                      f"min_edges {cp['min_edges']}")
    _contrast_checks(cfg, plan)
    assoc, enr = cfg["association"], cfg["enrichment"]
    spatial = bool(assoc["_present"] and cp["level"] == "region" and cfg["contrasts"])
    if assoc["_present"] and not spatial:
        plan.lines.append("association: skipped (needs region-level coupling and at least one contrast)")
    needs_geometry = spatial and not cfg["nulls"].get("file") and cfg["nulls"]["method"] in NL.SPIN_METHODS
    _geometry(cfg, plan, needed=needs_geometry)
    if spatial:
        target = assoc.get("target") or cfg["contrasts"][0]["name"]
        plan.lines.append(f"association target: the t map of contrast {target!r}")
        _edge_checks(cfg, plan)
        _null_checks(cfg, plan)
        _expression_checks(cfg, plan)
        if assoc["maps"]:
            plan.maps = read_map_tables(assoc["maps"], plan.labels)
            plan.lines.append(f"maps: {len(plan.maps[0])} annotation map(s) from {len(assoc['maps'])} table(s)")
        if enr.get("gene_sets"):
            try:
                plan.gene_sets = G.load_gene_sets(enr["gene_sets"])
            except InputError as exc:
                raise ConfigError(f"[enrichment] gene_sets {enr['gene_sets']!r}: {exc}") from None
            except Exception as exc:  # a file that is not GMT
                raise ConfigError(f"[enrichment] gene_sets {enr['gene_sets']!r} could not be parsed as GMT ({exc}).") \
                    from None
            max_size = None if enr["max_size"] is None else int(enr["max_size"])
            _, names, _, dropped = membership_matrix(plan.gene_sets, plan.expression.genes,
                                                     min_size=int(enr["min_size"]), max_size=max_size)
            bounds = (f"at least {enr['min_size']}" if max_size is None
                      else f"between {enr['min_size']} and {max_size}")
            if not names.size:
                raise ConfigError(f"[enrichment] gene_sets {enr['gene_sets']!r}: no category has {bounds} genes "
                                  f"of the expression table ({_missing_text([f'{k}: {v}' for k, v in dropped.items()], 5)}). "
                                  "Adjust min_size/max_size or use gene sets with the table's gene symbols.")
            plan.lines.append(f"enrichment: {names.size} of {len(plan.gene_sets)} categories with {bounds} genes")
            if dropped:
                plan.lines.append("  " + dropped_message(dropped, len(plan.gene_sets), int(enr["min_size"]), max_size,
                                                         unbounded=STUDY_UNBOUNDED))
    elif enr.get("gene_sets") and enr.get("_present"):
        plan.lines.append("enrichment: skipped (needs the gene association step)")
    plan.lines.append(f"output: {cfg['study']['output']}")
    return plan
