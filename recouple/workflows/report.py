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
    sc = ax.scatter(xy[:, 0], xy[:, 1], c=values, cmap=cmap, vmin=vmin, vmax=vmax, s=55,
                    edgecolors="none")
    if marked is not None and marked.any():
        ax.scatter(xy[marked, 0], xy[marked, 1], s=110, facecolors="none", edgecolors="black", linewidths=1.4)
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
    """Render ``report.html`` and ``figures/*.png`` for a finished study."""
    plt = _plt()
    figs_dir = out / "figures"
    figs_dir.mkdir(exist_ok=True)
    steps = result.steps
    coup = steps["coupling"]
    scans, labels, regions = coup["scans"], coup["labels"], coup["regions"]
    coupling = coup["coupling"]
    alpha = cfg["permutation"]["alpha"]
    figures: list[tuple[str, str, str]] = []  # (title, caption, base64)
    region_level = labels is not None
    xy = regions[["x", "y"]].to_numpy(dtype=float) if region_level else None

    # coupling per group/session
    if region_level:
        combos = []
        for g in sorted(set(scans["group"].astype(str))):
            for s in sorted(set(scans["session"].astype(str)), key=lambda v: (v != "pre", v)):
                rows = np.nonzero((scans["group"].astype(str) == g).to_numpy()
                                  & (scans["session"].astype(str) == s).to_numpy())[0]
                if rows.size:
                    combos.append((f"{g}, {s} (n = {rows.size})", np.nanmean(coupling[rows], axis=0)))
        vmin = float(np.nanmin([c[1] for c in combos]))
        vmax = float(np.nanmax([c[1] for c in combos]))
        fig, axes = plt.subplots(1, len(combos), figsize=(3.2 * len(combos), 3.4), squeeze=False)
        for ax, (title, vals) in zip(axes[0], combos):
            sc = _brain(ax, xy, vals, cmap="viridis", vmin=vmin, vmax=vmax, title=title)
        fig.colorbar(sc, ax=axes[0].tolist(), shrink=0.8, label="mean nodal coupling")
        figures.append(("Coupling by group and session",
                        "Mean SC-FC coupling per region (axial view of region centroids, left hemisphere left).",
                        _save(fig, figs_dir / "coupling_by_group.png")))

    # change map of the first contrast (or the association target)
    contrasts = steps.get("contrasts", {})
    target = cfg["association"].get("target") or (cfg["contrasts"][0]["name"] if cfg["contrasts"] else None)
    if target and target in contrasts and region_level:
        c = contrasts[target]
        t = np.asarray(c["statistic"], dtype=float)
        sig = np.asarray(c["pvalue_fwer"]) < alpha
        lim = float(np.nanmax(np.abs(t))) or 1.0
        fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.8), gridspec_kw={"width_ratios": [1, 1.6]})
        sc = _brain(ax1, xy, t, cmap="RdBu_r", vmin=-lim, vmax=lim, marked=sig,
                    title=f"t map (circled: FWER p < {alpha})")
        fig.colorbar(sc, ax=ax1, shrink=0.8, label="t")
        order = np.argsort(-t)
        ax2.bar(np.arange(t.size), t[order], color=np.where(sig[order], "#c0392b", "#bbbbbb"), width=1.0)
        ax2.set_xlabel("regions, sorted by t")
        ax2.set_ylabel("t")
        ax2.set_title(f"{int(sig.sum())} of {t.size} regions significant (red)", fontsize=10)
        ax2.axhline(0, color="black", linewidth=0.6)
        figures.append(("Change map", str(c["desc"]), _save(fig, figs_dir / "change_map.png")))

    # clinical scatter
    clin = steps.get("clinical")
    if clin is not None:
        r = np.asarray(clin["r"], dtype=float)
        best = int(np.nanargmax(np.abs(r)))
        fig, ax = plt.subplots(figsize=(4.6, 3.8))
        x, yv = clin["dscore"], clin["dcoupling"][:, best]
        ax.scatter(x, yv, color="#2c7fb8", s=28)
        if np.ptp(x) > 0:
            slope, icpt = np.polyfit(x, yv, 1)
            xs = np.linspace(x.min(), x.max(), 10)
            ax.plot(xs, slope * xs + icpt, color="black", linewidth=1)
        name = labels[best] if region_level else f"element {best}"
        score = cfg["clinical"]["score"]
        ax.set_xlabel(f"{score} {cfg['clinical']['change']}")
        ax.set_ylabel(f"coupling change, {name}")
        ax.set_title(f"r = {r[best]:.2f}, FWER p = {_fmt(float(clin['pvalue_fwer'][best]))}", fontsize=10)
        figures.append(("Coupling change vs clinical change",
                        f"Per patient: change in coupling at the region most associated with {score} change.",
                        _save(fig, figs_dir / "clinical.png")))

    # null distributions
    panels = []
    if target and target in contrasts:
        c = contrasts[target]
        panels.append((np.asarray(c["null_max"], dtype=float), float(np.nanmax(np.abs(c["statistic"]))),
                       f"max |t| over regions, {target}"))
    genes = steps.get("genes")
    if genes is not None and "pls_null_var_explained" in genes:
        nv = np.asarray(genes["pls_null_var_explained"], dtype=float).reshape(-1, np.asarray(
            genes["pls_var_explained"]).size)[:, 0]
        panels.append((nv, float(np.asarray(genes["pls_var_explained"]).ravel()[0]),
                       "PLS1 variance explained under spatial nulls"))
    if panels:
        fig, axes = plt.subplots(1, len(panels), figsize=(4.6 * len(panels), 3.4), squeeze=False)
        for ax, (null, obs, title) in zip(axes[0], panels):
            ax.hist(null[np.isfinite(null)], bins=40, color="#bbbbbb")
            ax.axvline(obs, color="#c0392b", linewidth=2, label="observed")
            ax.set_title(title, fontsize=10)
            ax.legend(fontsize=8)
        figures.append(("Null distributions", "Permutation / spatial-null distributions with the observed value.",
                        _save(fig, figs_dir / "nulls.png")))

    # top genes
    if genes is not None:
        k = int(cfg["association"]["top_genes"])
        order = np.argsort(-np.abs(genes["r"]))[:k]
        fig, ax = plt.subplots(figsize=(6, 0.25 * len(order) + 1.2))
        ax.barh(np.arange(len(order))[::-1], genes["r"][order],
                color=np.where(genes["pvalue_fdr"][order] < 0.05, "#c0392b", "#999999"))
        ax.set_yticks(np.arange(len(order))[::-1], genes["genes"][order], fontsize=7)
        ax.set_xlabel(f"{cfg['association']['method']} r with the {target} map (red: FDR q < 0.05)")
        ax.axvline(0, color="black", linewidth=0.6)
        figures.append(("Top genes", f"Genes most associated with the {target} map.",
                        _save(fig, figs_dir / "top_genes.png")))

    # --- HTML ---
    sections = []
    name = html.escape(cfg["study"]["name"])
    summary_rows = []
    for cname, c in contrasts.items():
        sig = np.asarray(c["pvalue_fwer"]) < alpha
        top = np.argsort(np.asarray(c["pvalue_fwer"]))[:5]
        top_names = ", ".join(
            f"{labels[i] if region_level else i} (t = {c['statistic'][i]:.2f})" for i in top if sig[i])
        summary_rows.append((cname, str(c["desc"]), int(sig.sum()), top_names or "none"))
    if summary_rows:
        sections.append("<h2>Contrasts</h2>" + _table(
            ["contrast", "test", f"significant (FWER p < {alpha})", "strongest significant"], summary_rows))
    for title, caption, b64 in figures:
        sections.append(f"<figure><h3>{html.escape(title)}</h3><img alt=\"{html.escape(title)}\" "
                        f"src=\"data:image/png;base64,{b64}\"><figcaption>{html.escape(caption)}</figcaption>"
                        "</figure>")
    if genes is not None:
        order = np.argsort(-np.abs(genes["r"]))[:15]
        sections.append("<h2>Top genes</h2>" + _table(
            ["gene", "r", "p", "FDR q", "FWER p"],
            [(genes["genes"][i], _fmt(float(genes["r"][i])), _fmt(float(genes["pvalue"][i])),
              _fmt(float(genes["pvalue_fdr"][i])), _fmt(float(genes["pvalue_fwer"][i]))) for i in order]))
    enr = steps.get("enrichment")
    if enr is not None:
        order = np.argsort(enr["pvalue"])[:10]
        sections.append("<h2>Enriched gene categories</h2>" + _table(
            ["category", "genes", "score", "p", "FDR q"],
            [(enr["categories"][i], int(enr["sizes"][i]), _fmt(float(enr["scores"][i])),
              _fmt(float(enr["pvalue"][i])), _fmt(float(enr["pvalue_fdr"][i]))) for i in order]))
    maps = steps.get("maps")
    if maps is not None:
        sections.append("<h2>Annotation maps</h2>" + _table(
            ["map", "r", "p", "FDR q", "FWER p"],
            [(maps["names"][i], _fmt(float(maps["r"][i])), _fmt(float(maps["pvalue"][i])),
              _fmt(float(maps["pvalue_fdr"][i])), _fmt(float(maps["pvalue_fwer"][i])))
             for i in range(maps["names"].size)]))
    sections.append("<h2>Methods</h2><p>" + html.escape(methods_paragraph(cfg, result)) + "</p>")
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


def methods_paragraph(cfg: dict, result) -> str:
    """A methods paragraph describing exactly what ran."""
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
    for c in cfg["contrasts"]:
        saved = result.steps["contrasts"].get(c["name"])
        if saved is None:
            continue
        cov = f", adjusting for {', '.join(c['covariates'])} by Freedman-Lane" if c.get("covariates") else ""
        parts.append(
            f"Contrast '{c['name']}' ({saved['desc']}{cov}) was tested with {int(saved['n_perm'])} permutations "
            f"(seed {perm['seed']}); family-wise error across regions was controlled by the maximum statistic "
            f"(alpha = {perm['alpha']}) and false discovery rate by Benjamini-Hochberg.")
    clin = cfg["clinical"]
    if "clinical" in result.steps:
        parts.append(
            f"The change in coupling ({clin['sessions'][1]} minus {clin['sessions'][0]}) in {clin['group']}s was "
            f"correlated ({clin['method']}) with the {clin['change']} of {clin['score']} across subjects, tested by "
            f"permutation with max-statistic FWER correction.")
    if "genes" in result.steps:
        target = result.steps.get("nulls", {}).get("target", assoc.get("target"))
        parts.append(
            f"The '{target}' statistic map was related to regional gene expression ({assoc['method']} correlation "
            f"per gene) against {nl['n_perm']} spatially constrained nulls ('{nl['method']}' spin permutations of "
            f"region centroids projected to the sphere, seed {nl['seed']}; p-values with the +1 convention, "
            f"FDR across genes).")
        if int(assoc["pls_components"]) > 0:
            parts.append(
                f"PLS regression (SIMPLS, {assoc['pls_components']} component(s)) of the map on expression was "
                f"tested against the same nulls, and gene weights were standardised by {assoc['pls_bootstrap']} "
                f"bootstrap resamples of regions.")
    if "enrichment" in result.steps:
        enr = cfg["enrichment"]
        parts.append(
            f"Gene-category enrichment used ensemble spatial nulls (Fulcher et al., 2021): category score = mean "
            f"gene score, categories of {enr['min_size']}-{enr['max_size']} genes, p from the same statistic on "
            f"the null maps, FDR across categories.")
    parts.append(f"Computation ran on the {cfg['compute'].get('backend')} backend in float64.")
    return " ".join(parts)
