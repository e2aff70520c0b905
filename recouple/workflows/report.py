"""The study report: a self-contained HTML page with PNG figures, tables and a
methods paragraph generated from the parameters that ran."""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path

import numpy as np

from .. import __version__
from ..io.files import atomic_write
from ..nulls import resolution_note
from .figures import add_colorbar, draw_views, surface_problem
from .references import cited, is_spatial, null_description, null_short


def _plt():
    # matplotlib loads only when a report is drawn: selecting the Agg backend is a
    # process-wide side effect that importing recouple must not have
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    data = buf.getvalue()
    atomic_write(path, data)
    _plt().close(fig)
    return base64.b64encode(data).decode()


def _brain(ax, xy, values, *, cmap, vmin, vmax, marked=None, title=""):
    values = np.asarray(values, dtype=float)
    placed = np.isfinite(xy).all(axis=1)
    ok = placed & np.isfinite(values)
    missing = placed & ~np.isfinite(values)
    if missing.any():  # regions without a value: light grey
        ax.scatter(xy[missing, 0], xy[missing, 1], s=55, color="0.85", edgecolors="none")
    sc = ax.scatter(xy[ok, 0], xy[ok, 1], c=values[ok], cmap=cmap, vmin=vmin, vmax=vmax, s=55,
                    edgecolors="none")
    if marked is not None and (np.asarray(marked) & placed).any():
        m = np.asarray(marked) & placed
        ax.scatter(xy[m, 0], xy[m, 1], s=110, facecolors="none", edgecolors="black", linewidths=1.4)
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title, fontsize=10)
    for side in ax.spines.values():
        side.set_visible(False)
    ax.text(0.02, 0.02, "L", transform=ax.transAxes, fontsize=9, color="0.4")
    ax.text(0.95, 0.02, "R", transform=ax.transAxes, fontsize=9, color="0.4")
    return sc


def _table(headers, rows) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _fmt(x, digits=3):
    if isinstance(x, (float, np.floating)):
        if np.isnan(x):
            return "n/a"
        return f"{x:.{digits}g}" if abs(x) < 1e-3 or abs(x) >= 1e4 else f"{x:.{digits}f}"
    return str(x)


def write_report(cfg: dict, result, out: Path) -> Path:
    """Render ``report.html`` and ``figures/*.png`` for a finished study.

    Every figure shows data; what cannot be drawn (no region geometry, no
    defined value) is said in words in the report instead of an empty axes.
    """

    plt = _plt()
    figs_dir = out / "figures"
    figs_dir.mkdir(exist_ok=True)
    steps = result.steps
    coup = steps["coupling"]
    scans, labels, regions = coup["scans"], coup["labels"], coup["regions"]
    coupling = coup["coupling"]
    alpha = cfg["permutation"]["alpha"]
    # (title, caption, base64 PNG or None, note in words or "")
    figures: list[tuple[str, str, str | None, str]] = []
    region_level = labels is not None
    mode, where_note, xy = _brain_mode(coup.get("geometry"), regions) if region_level else (None, "", None)
    geometry = coup.get("geometry")

    # coupling per group/session
    if region_level:
        combos = []
        for g in sorted(set(scans["group"].astype(str))):
            for s in sorted(set(scans["session"].astype(str)), key=lambda v: (v != "pre", v)):
                rows = np.nonzero((scans["group"].astype(str) == g).to_numpy()
                                  & (scans["session"].astype(str) == s).to_numpy())[0]
                if rows.size:
                    vals = np.asarray(coupling[rows], dtype=float)
                    n = np.isfinite(vals).sum(axis=0)
                    mean = np.where(n > 0, np.nansum(vals, axis=0) / np.maximum(n, 1), np.nan)
                    combos.append((f"{g}, {s} (n = {rows.size})", mean))
        title = "Coupling by group and session"
        defined = [c for c in combos if np.isfinite(c[1]).any()]
        if mode is None:
            figures.append((title, "", None, f"Coupling maps are not drawn: {where_note}. The values are in "
                            "tables/coupling.csv."))
        elif not defined:
            figures.append((title, "", None, "Coupling maps are not drawn: no region has a defined coupling value "
                            "(every region has fewer edges than [coupling] min_edges in every scan)."))
        else:
            vmin = float(np.nanmin([np.nanmin(c[1]) for c in defined]))
            vmax = float(np.nanmax([np.nanmax(c[1]) for c in defined]))
            vmax = vmax if vmax > vmin else vmin + 1e-6
            fig = _maps_figure(plt, mode, geometry, xy, defined, cmap="viridis", vmin=vmin, vmax=vmax,
                               label="mean nodal coupling")
            view = ("lateral and medial views of both hemispheres on the fsaverage5 inflated surface"
                    if mode == "surface" else "axial view of region centroids, left hemisphere left")
            figures.append((title, f"Mean SC-FC coupling per region ({view}; grey: no value).",
                            _save(fig, figs_dir / "coupling_by_group.png"), where_note))

    # change map of the first contrast (or the association target)
    contrasts = steps.get("contrasts", {})
    target = cfg["association"].get("target") or (cfg["contrasts"][0]["name"] if cfg["contrasts"] else None)
    if target and target in contrasts and region_level:
        c = contrasts[target]
        t = np.asarray(c["statistic"], dtype=float)
        sig = np.asarray(c["pvalue_fwer"]) < alpha
        finite = np.isfinite(t)
        if not finite.any():
            figures.append(("Change map", str(c["desc"]), None,
                            "The t map is not drawn: no region has a defined t statistic."))
        else:
            lim = float(np.max(np.abs(t[finite]))) or 1.0
            brain = mode is not None
            if mode == "surface":
                fig = plt.figure(figsize=(10, 5.6))
                gs = fig.add_gridspec(2, 1, height_ratios=[1.15, 1.0], hspace=0.25)
                axes = _draw_surface(fig, gs[0], geometry, t, cmap="RdBu_r", vmin=-lim, vmax=lim, outline=sig,
                                     title=f"t map (outlined: FWER p < {alpha})")

                add_colorbar(fig, axes, cmap="RdBu_r", vmin=-lim, vmax=lim, label="t")
                ax2 = fig.add_subplot(gs[1])
            elif brain:
                fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.8), gridspec_kw={"width_ratios": [1, 1.6]})
                sc = _brain(ax1, xy, t, cmap="RdBu_r", vmin=-lim, vmax=lim, marked=sig,
                            title=f"t map (circled: FWER p < {alpha})")
                fig.colorbar(sc, ax=ax1, shrink=0.8, label="t")
            else:
                fig, ax2 = plt.subplots(figsize=(7, 3.6))
            order = np.argsort(-np.where(finite, t, -np.inf))[: int(finite.sum())]
            ax2.bar(np.arange(order.size), t[order], color=np.where(sig[order], "#c0392b", "#888888"), width=1.0)
            ax2.set_xlabel("regions, sorted by t")
            ax2.set_ylabel("t")
            ax2.set_title(f"{int(sig.sum())} of {t.size} regions significant (red)", fontsize=10)
            ax2.axhline(0, color="black", linewidth=0.6)
            note = where_note if brain else f"The t map is not drawn on a brain: {where_note}."
            figures.append(("Change map", str(c["desc"]), _save(fig, figs_dir / "change_map.png"), note))

    # clinical scatter
    clin = steps.get("clinical")
    if clin is not None:
        r = np.asarray(clin["r"], dtype=float)
        score = cfg["clinical"]["score"]
        title = "Coupling change vs clinical change"
        if not np.isfinite(r).any():
            figures.append((title, "", None, f"Not drawn: the correlation with {score} change is undefined in "
                            "every region."))
        else:
            best = int(np.nanargmax(np.abs(r)))
            fig, ax = plt.subplots(figsize=(4.6, 3.8))
            x, yv = clin["dscore"], clin["dcoupling"][:, best]
            ax.scatter(x, yv, color="#2c7fb8", s=28)
            ok = np.isfinite(x) & np.isfinite(yv)
            if ok.sum() > 1 and np.ptp(x[ok]) > 0:
                slope, icpt = np.polyfit(x[ok], yv[ok], 1)
                xs = np.linspace(x[ok].min(), x[ok].max(), 10)
                ax.plot(xs, slope * xs + icpt, color="black", linewidth=1)
            name = labels[best] if region_level else f"element {best}"
            ax.set_xlabel(f"{score} {cfg['clinical']['change']}")
            ax.set_ylabel(f"coupling change, {name}")
            ax.set_title(f"r = {r[best]:.2f}, FWER p = {_fmt(float(clin['pvalue_fwer'][best]))}", fontsize=10)
            figures.append((title,
                            f"Per patient: change in coupling at the region most associated with {score} change.",
                            _save(fig, figs_dir / "clinical.png"), ""))

    # PLS1 regional scores
    genes = steps.get("genes")
    spatial = steps.get("spatial")
    if genes is not None and "pls_scores" in genes and region_level:
        scores = np.asarray(genes["pls_scores"], dtype=float)
        scores = scores[:, 0] if scores.ndim == 2 else scores
        if spatial is not None and scores.size != labels.size:  # regions left out of the spatial steps: no score
            full = np.full(labels.size, np.nan)
            full[np.asarray(spatial["keep"], dtype=bool)] = scores
            scores = full
        ve = np.asarray(genes.get("pls_var_explained", [np.nan]), dtype=float).ravel()
        title = "PLS1 regional scores"
        if mode is None or not np.isfinite(scores).any():
            why = where_note if mode is None else "no region has a defined score"
            figures.append((title, "", None, f"PLS1 scores are not drawn on a brain: {why}."))
        else:
            lim = float(np.nanmax(np.abs(scores))) or 1.0
            fig = _maps_figure(plt, mode, geometry, xy, [(f"PLS1 ({_fmt(100 * float(ve[0]), 2)}% of the "
                                                          f"{target} map's variance)", scores)],
                               cmap="RdBu_r", vmin=-lim, vmax=lim, label="PLS1 score")
            figures.append((title, "Regional scores of the first PLS component of gene expression against the "
                            f"{target} map.", _save(fig, figs_dir / "pls_scores.png"), where_note))

    # null distributions
    ncfg = cfg.get("nulls", {})
    panels = []
    if target and target in contrasts:
        c = contrasts[target]
        ctype = next((k["type"] for k in cfg.get("contrasts", []) if k["name"] == target), "")
        panels.append((np.asarray(c["null_max"], dtype=float), float(np.nanmax(np.abs(c["statistic"]))),
                       f"{target}: max |t| over regions", "max |t| over regions",
                       f"{int(c['n_perm'])} {_resampling_kind(ctype)}"))
    if genes is not None and "pls_null_var_explained" in genes:
        nv = np.asarray(genes["pls_null_var_explained"], dtype=float).reshape(-1, np.asarray(
            genes["pls_var_explained"]).size)[:, 0]
        panels.append((nv, float(np.asarray(genes["pls_var_explained"]).ravel()[0]),
                       f"PLS1 under {null_short(ncfg.get('method', ''))}", "variance explained by PLS1",
                       f"{nv.size} {null_short(ncfg.get('method', ''))}"))
    panels = [p for p in panels if np.isfinite(p[0]).any()]
    if panels:
        fig, axes = plt.subplots(1, len(panels), figsize=(4.8 * len(panels), 3.5), squeeze=False)
        for ax, (null, obs, title, xlabel, what) in zip(axes[0], panels):
            ax.hist(null[np.isfinite(null)], bins=40, color="#999999", label=f"null ({what})")
            if np.isfinite(obs):
                ax.axvline(obs, color="#c0392b", linewidth=2, label="observed")
            ax.set_title(title, fontsize=10)
            ax.set_xlabel(xlabel)
            ax.set_ylabel("null samples")
            ax.legend(fontsize=7)
        fig.tight_layout()
        caption = "Null distributions with the observed value (red): " + "; ".join(
            f"{p[2]} from {p[4]}" for p in panels) + "."
        figures.append(("Null distributions", caption, _save(fig, figs_dir / "nulls.png"), ""))

    # top genes
    if genes is not None:
        k = int(cfg["association"]["top_genes"])
        order = np.argsort(-np.abs(np.nan_to_num(genes["r"], nan=0.0)))[:k]
        fig, ax = plt.subplots(figsize=(6, 0.25 * len(order) + 1.2))
        ax.barh(np.arange(len(order))[::-1], genes["r"][order],
                color=np.where(genes["pvalue_fdr"][order] < 0.05, "#c0392b", "#999999"))
        ax.set_yticks(np.arange(len(order))[::-1], genes["genes"][order], fontsize=7)
        ax.set_xlabel(f"{cfg['association']['method']} r with the {target} map (red: FDR q < 0.05)")
        ax.axvline(0, color="black", linewidth=0.6)
        figures.append(("Top genes", f"Genes most associated with the {target} map.",
                        _save(fig, figs_dir / "top_genes.png"), ""))

    # --- HTML ---
    sections = []
    name = html.escape(cfg["study"]["name"])
    summary_rows = []
    for cname, c in contrasts.items():
        sig = np.asarray(c["pvalue_fwer"]) < alpha
        top = _strongest(c["pvalue_fwer"], c["statistic"], sig)[:5]
        top_names = ", ".join(f"{labels[i] if region_level else i} (t = {c['statistic'][i]:.2f})" for i in top)
        summary_rows.append((cname, str(c["desc"]), int(sig.sum()), top_names or "none"))
    if summary_rows:
        sections.append("<h2>Contrasts</h2>" + _table(
            ["contrast", "test", f"significant (FWER p < {alpha})", "strongest significant (by p, then |t|)"],
            summary_rows))
    for title, caption, b64, note in figures:
        body = ""
        if note:
            body += f"<p class=\"note\">{html.escape(note)}</p>"
        if b64 is not None:
            body += (f"<img alt=\"{html.escape(title)}\" src=\"data:image/png;base64,{b64}\">"
                     f"<figcaption>{html.escape(caption)}</figcaption>")
        sections.append(f"<figure><h3>{html.escape(title)}</h3>{body}</figure>")
    if spatial is not None:
        notes = [n for n in (str(spatial.get("note", "")), str(spatial.get("skipped", ""))) if n]
        sections.append("<h2>Spatial association</h2>"
                        + "".join(f"<p class=\"note\">{html.escape(n)}</p>" for n in notes))
    if genes is not None:
        order = np.argsort(-np.abs(np.nan_to_num(genes["r"], nan=0.0)))[:15]
        sections.append("<h2>Top genes</h2>" + _table(
            ["gene", "r", "p", "FDR q", "FWER p"],
            [(genes["genes"][i], _fmt(float(genes["r"][i])), _fmt(float(genes["pvalue"][i])),
              _fmt(float(genes["pvalue_fdr"][i])), _fmt(float(genes["pvalue_fwer"][i]))) for i in order]))
        # why FDR q can stay high next to small FWER p: many genes at the permutation floor 1/(K+1)
        resolution = (resolution_note(genes["pvalue"], int(genes["n_perm"]), alpha=alpha)
                      if "n_perm" in genes else "")
        if resolution:
            sections.append(f"<p class=\"note\">{html.escape(resolution)}</p>")
    enr = steps.get("enrichment")
    if enr is not None:
        order = np.argsort(enr["pvalue"])[:10]
        sections.append("<h2>Enriched gene categories</h2>" + _table(
            ["category", "genes", "score", "p", "FDR q"],
            [(enr["categories"][i], int(enr["sizes"][i]), _fmt(float(enr["scores"][i])),
              _fmt(float(enr["pvalue"][i])), _fmt(float(enr["pvalue_fdr"][i]))) for i in order]))
        if str(enr.get("dropped_message", "")):
            sections.append(f"<p class=\"note\">{html.escape(str(enr['dropped_message']))}</p>")
    maps = steps.get("maps")
    if maps is not None:
        sections.append("<h2>Annotation maps</h2>" + _table(
            ["map", "r", "p", "FDR q", "FWER p"],
            [(maps["names"][i], _fmt(float(maps["r"][i])), _fmt(float(maps["pvalue"][i])),
              _fmt(float(maps["pvalue_fdr"][i])), _fmt(float(maps["pvalue_fwer"][i])))
             for i in range(maps["names"].size)]))
    methods = methods_paragraph(cfg, result)
    sections.append("<h2>Methods</h2><p>" + html.escape(methods) + "</p>")
    refs = cited(methods)
    if refs:
        sections.append("<h2>References</h2><ol class=\"refs\">"
                        + "".join(f"<li>{html.escape(r)}</li>" for r in refs) + "</ol>")
    files = sorted(p.relative_to(out).as_posix() for p in (out / "tables").glob("*"))
    sections.append("<h2>Files</h2><p>Tables: " + ", ".join(html.escape(f) for f in files)
                    + ". Provenance: provenance.json.</p>")

    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{name} — recouple report</title>
<style>
body {{ font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; max-width: 1100px; margin: 2em auto;
       padding: 0 1em; color: #222; line-height: 1.45; }}
h1 {{ font-size: 1.6em; margin-bottom: 0.2em; }} h2 {{ border-bottom: 1px solid #ddd; padding-bottom: 0.2em; }}
table {{ border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.9em; }}
th, td {{ border: 1px solid #ddd; padding: 0.3em 0.6em; text-align: left; }} th {{ background: #f4f4f4; }}
figure {{ margin: 1.5em 0; }} img {{ max-width: 100%; }} figcaption {{ color: #555; font-size: 0.9em; }}
.note {{ color: #7a4b00; background: #fff6e0; border-left: 3px solid #e0a800; padding: 0.3em 0.6em; }}
.refs {{ font-size: 0.85em; color: #333; }}
.meta {{ color: #666; font-size: 0.9em; }}
</style></head><body>
<h1>{name}</h1>
<p class="meta">recouple {__version__} · backend {html.escape(str(cfg['compute'].get('backend')))} ·
store {html.escape(Path(cfg['study']['store']).name)} · {coupling.shape[0]} scans ×
{coupling.shape[1]} {'regions' if region_level else 'voxels'}</p>
{''.join(sections)}
</body></html>
"""
    atomic_write(result.report, page)
    return result.report


def _strongest(pvalue, statistic, keep) -> np.ndarray:
    """Indices of the ``keep`` elements, by p ascending, then |t| descending."""
    p = np.asarray(pvalue, dtype=float)
    t = np.abs(np.asarray(statistic, dtype=float))
    idx = np.flatnonzero(np.asarray(keep, dtype=bool))
    return idx[np.lexsort((-t[idx], p[idx]))]


def _brain_mode(geometry, regions):
    """How region maps are drawn: ("surface" | "dots" | None, note in words, dot positions or None)."""

    problem = surface_problem(geometry)
    if not problem:
        return "surface", "", None
    xyz = regions[["x", "y", "z"]].to_numpy(dtype=float)
    have = np.isfinite(xyz).all(axis=1)
    if not have.any():
        return None, (f"{problem}, and it holds no region centroids; add a surface parcellation with "
                      "`recouple ingest --parcellation LH RH --sphere LH RH` (or rc.store.set_geometry)"), None
    xy = xyz[:, :2].copy()
    if getattr(geometry, "source", "") == "surface":
        # centroids on each hemisphere's own sphere, both centred at 0: place them side by side
        right = regions["hemisphere"].astype(str).str.upper().str.startswith("R").to_numpy()
        r = float(np.nanmax(np.abs(xy[have])))
        xy[:, 0] += np.where(right, 1.15 * r, -1.15 * r)
    note = f"Regions are drawn as dots at their centroids because {problem}."
    if not have.all():
        note += f" {int((~have).sum())} region(s) without a centroid are not shown."
    return "dots", note, xy


def _draw_surface(fig, spec, geometry, values, **kw):

    return draw_views(fig, spec, values, geometry, **kw)


def _maps_figure(plt, mode, geometry, xy, maps, *, cmap, vmin, vmax, label):
    """One row of brain views (surface) or one dot panel per map."""
    if mode == "surface":

        fig = plt.figure(figsize=(10, 2.25 * len(maps)))
        gs = fig.add_gridspec(len(maps), 1, hspace=0.3)
        axes = []
        for k, (title, vals) in enumerate(maps):
            axes += _draw_surface(fig, gs[k], geometry, vals, cmap=cmap, vmin=vmin, vmax=vmax, title=title)
        add_colorbar(fig, axes, cmap=cmap, vmin=vmin, vmax=vmax, label=label)
        return fig
    fig, axes = plt.subplots(1, len(maps), figsize=(3.2 * len(maps) + 1.0, 3.4), squeeze=False)
    for ax, (title, vals) in zip(axes[0], maps):
        sc = _brain(ax, xy, vals, cmap=cmap, vmin=vmin, vmax=vmax, title=title)
    fig.colorbar(sc, ax=axes[0].tolist(), shrink=0.8, label=label)
    return fig


def _resampling_kind(contrast_type: str) -> str:
    """How a contrast's null was drawn, in words (figure legends and the methods)."""
    if contrast_type == "paired":
        return "sign flips"
    if contrast_type in ("two_sample", "group_by_time"):
        return "permutations of group labels"
    return "permutations"


def methods_paragraph(cfg: dict, result) -> str:
    """A methods paragraph describing exactly what ran, citing ``(Author et al., YEAR)``
    (the report's reference list is built from these citations)."""

    cp, perm, nl, assoc = cfg["coupling"], cfg["permutation"], cfg["nulls"], cfg["association"]
    edges = {"sc_nonzero": "over the edges with non-zero structural connectivity (Baum et al., 2020)",
             "offdiag": "over all off-diagonal entries (Gu et al., 2021)",
             "both_nonzero": "over the edges non-zero in both SC and FC (Fotiadis et al., 2023)"}.get(
        cp["edges"], f"over the edge set {cp['edges']!r}")
    coup = result.steps["coupling"]["coupling"]
    parts = [
        f"Structure-function coupling was computed with recouple {__version__} for each of {coup.shape[0]} scans "
        f"and {coup.shape[1]} {'regions' if cp['level'] == 'region' else 'voxels'} as the "
        f"{cp['method'].capitalize()} correlation between each node's structural and functional connectivity "
        f"profiles {edges}; nodes with fewer than {cp['min_edges']} edges were left undefined.",
    ]
    tested = False
    for c in cfg["contrasts"]:
        saved = result.steps["contrasts"].get(c["name"])
        if saved is None:
            continue
        tested = True
        desc = str(saved["desc"])
        if desc.endswith(")") and " (" in desc:  # "post vs pre in patient (paired sign-flip t, n = 24)"
            head, test = desc[:-1].split(" (", 1)
            desc = f"{head}: {test}"
        kind = _resampling_kind(c["type"])
        cov = (f", adjusting for {', '.join(c['covariates'])}" if c.get("covariates") else "")
        fl = ("; covariates were handled by Freedman-Lane permutation of the residuals of the reduced model "
              "(Freedman & Lane, 1983; Winkler et al., 2014)" if c.get("covariates") else "")
        parts.append(
            f"Contrast '{c['name']}' ({desc}{cov}) was tested with {int(saved['n_perm'])} {kind} "
            f"(seed {perm['seed']}){fl}; family-wise error across "
            f"{'regions' if cp['level'] == 'region' else 'voxels'} was controlled by the maximum statistic "
            f"(Nichols & Holmes, 2002; alpha = {perm['alpha']}) and the false discovery rate by the "
            "Benjamini-Hochberg procedure (Benjamini & Hochberg, 1995)."
            + (f" Exchangeability: {saved['exchangeability']}." if str(saved.get("exchangeability", "")) else "")
            + (" The null's matrix products were computed in float32; null statistics within the float32 rounding "
               "bound of the observed one were counted as ties, so these p-values are never below the float64 ones."
               if perm.get("precision") == "float32" else ""))
    clin = cfg["clinical"]
    if "clinical" in result.steps:
        tested = True
        parts.append(
            f"The change in coupling ({clin['sessions'][1]} minus {clin['sessions'][0]}) in {clin['group']}s was "
            f"correlated ({clin['method']}) with the {clin['change']} of {clin['score']} across subjects, tested by "
            f"permutation with max-statistic FWER correction.")
    if tested:
        parts.append("Permutation p-values count the observed statistic among the permutations (p = (1 + b) / "
                     "(1 + m); Phipson & Smyth, 2010).")
    if "genes" in result.steps:
        target = result.steps.get("nulls", {}).get("target", assoc.get("target"))
        src = assoc.get("expression")
        if src in (None, "", "store"):
            expr = "regional gene expression (the store's maps/expression)"
        else:
            expr = (f"regional gene expression from {Path(str(src)).name}, Allen Human Brain Atlas data "
                    "(Hawrylycz et al., 2012) in the format of abagen (Markello et al., 2021),")
        spatial = "" if is_spatial(nl["method"]) else " The nulls do not account for spatial autocorrelation."
        parts.append(
            f"The '{target}' statistic map was related to {expr} ({assoc['method']} correlation per gene); "
            f"p-values came from {nl['n_perm']} {null_description(nl['method'])} (seed {nl['seed']}), with "
            f"false discovery rate control across genes.{spatial}")
        ncomp = int(assoc["pls_components"])
        if ncomp > 0:
            parts.append(
                f"Partial least squares regression (Abdi, 2010) of the map on expression with {ncomp} "
                f"component{'s' if ncomp > 1 else ''} (SIMPLS; de Jong, 1993) was tested against the same nulls, "
                "and gene weights "
                f"were standardised by {assoc['pls_bootstrap']} bootstrap resamples of regions.")
    if "enrichment" in result.steps:
        enr = cfg["enrichment"]
        parts.append(
            f"Gene-category enrichment used ensemble nulls (Fulcher et al., 2021), here the same "
            f"{null_short(nl['method'])}: category score = mean gene score, categories of "
            + (f"at least {enr['min_size']}" if enr["max_size"] is None else f"{enr['min_size']}-{enr['max_size']}")
            + " genes, p from the same statistic on the null maps, false discovery rate across categories.")
    parts.append(f"Computation ran on the {cfg['compute'].get('backend')} backend in float64"
                 + (", except the permutation nulls' matrix products (float32, see above)."
                    if perm.get("precision") == "float32" else "."))
    return " ".join(parts)
