"""The study report: no blank figure (every embedded PNG decoded and looked
at), brain maps on fsaverage5 when the store has a surface parcellation and
dots (or words) otherwise, null wording per method, the reference list, the
contrast table's order."""

from __future__ import annotations

import io
import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

import recouple as rc
from recouple.study import write_config

from _png import check_report_figures, figure_problems


def test_figure_check_catches_blank_and_grey_panels():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    def png(fig):
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=80)
        plt.close(fig)
        return (plt.imread(io.BytesIO(buf.getvalue()))[..., :3] * 255).astype(np.uint8)

    fig, axes = plt.subplots(1, 3, figsize=(9, 3))
    for ax in axes:  # what the report drew with NaN centroids: titles over nothing
        ax.scatter([np.nan], [np.nan], c=[1.0])
        ax.set_title("patient, pre (n = 24)")
        ax.axis("off")
    assert figure_problems("blank", png(fig), brain=True)
    fig, axes = plt.subplots(1, 3, figsize=(9, 3))
    for ax in axes:  # grey discs: a brain with no data on it
        ax.add_patch(plt.Circle((0.5, 0.5), 0.4, color="0.6"))
        ax.axis("off")
    assert figure_problems("grey", png(fig), brain=True)
    fig, axes = plt.subplots(1, 3, figsize=(9, 3))
    for ax in axes:
        ax.scatter(np.random.default_rng(0).random(50), np.random.default_rng(1).random(50),
                   c=np.arange(50), s=80)
        ax.axis("off")
    assert not figure_problems("dots", png(fig), brain=True)


def _study(folder: Path, *, surface=False, nan_centroids=False, null_method="vasa", seed=0):
    from recouple.workflows.demo import demo_config

    n = 40
    centroids = parcellation = None
    if surface:
        parcellation = rc.simulate.fsaverage5_parcellation(n, seed=seed)
        centroids = parcellation.centroids_mm
    sim = rc.simulate.cohort(n_regions=n, n_patients=12, n_controls=6, n_genes=60, effect=0.9, seed=seed,
                             centroids=centroids)
    with rc.store.from_simulated(sim, folder / "cohort.h5", overwrite=True) as st:
        if surface:
            from recouple.workflows.demo import write_demo_geometry

            write_demo_geometry(st, parcellation)
        if nan_centroids:
            st.file["regions/centroids"][...] = np.nan
    cfg = demo_config(n_perm=200, n_nulls=100, seed=seed, backend="numpy")
    cfg["association"]["pls_bootstrap"] = 20
    cfg["nulls"]["method"] = null_method
    del cfg["enrichment"]
    path = write_config(folder / "STUDY.toml", cfg)
    return rc.run_study(path, log=lambda *_: None)


@pytest.fixture(scope="module")
def surface_study(tmp_path_factory):
    return _study(tmp_path_factory.mktemp("surface"), surface=True)


def test_nan_centroids_give_words_not_blank_panels(tmp_path):
    res = _study(tmp_path, nan_centroids=True, null_method="permutation")  # spins need centroids
    html = res.report.read_text()
    imgs = check_report_figures(html)
    assert "Coupling by group and session" not in imgs
    assert "Coupling maps are not drawn: the store holds no surface parcellation, and it holds no region " \
           "centroids" in html
    assert "The t map is not drawn on a brain" in html
    assert "Change map" in imgs  # the sorted t values still are


def test_dot_maps_without_surface_say_so(tmp_path):
    res = _study(tmp_path)
    html = res.report.read_text()
    imgs = check_report_figures(html)
    assert {"Coupling by group and session", "Change map", "PLS1 regional scores"} <= set(imgs)
    assert "Regions are drawn as dots at their centroids because the store holds no surface parcellation" in html


def test_surface_maps_on_fsaverage5(surface_study):
    res = surface_study
    html = res.report.read_text()
    imgs = check_report_figures(html)
    assert {"Coupling by group and session", "Change map", "PLS1 regional scores"} <= set(imgs)
    assert "dots at their centroids" not in html and "fsaverage5 inflated surface" in html
    # four rows (group x session) of four views each
    fig = imgs["Coupling by group and session"]
    assert fig.shape[0] > 2.5 * fig.shape[1] / 4
    assert (res.output / "figures" / "pls_scores.png").is_file()


def test_surface_problem_names_the_reason():
    from recouple.io.surfaces import RegionGeometry
    from recouple.workflows.figures import surface_problem

    labels = np.array(["L_a", "R_a"])
    geo = RegionGeometry(labels=labels, hemisphere=np.array(["L", "R"]), centroids=np.zeros((2, 3)))
    assert surface_problem(geo) == "the store holds no surface parcellation"
    small = RegionGeometry(labels=labels, hemisphere=np.array(["L", "R"]), centroids=np.zeros((2, 3)),
                           vertex_region=(np.zeros(642, int), np.ones(642, int)),
                           sphere=(np.ones((642, 3)), np.ones((642, 3))))
    assert "642 + 642 vertices, not fsaverage5" in surface_problem(small)
    rng = np.random.default_rng(0)
    other = RegionGeometry(labels=labels, hemisphere=np.array(["L", "R"]), centroids=np.zeros((2, 3)),
                           vertex_region=(np.zeros(10242, int), np.ones(10242, int)),
                           sphere=(rng.standard_normal((10242, 3)), rng.standard_normal((10242, 3))))
    assert "not fsaverage5's" in surface_problem(other)


def test_real_parcellation_draws_on_fsaverage5(shared_data):
    """The DK annotation on fsaverage5, as ingest stores it, drawn with a regional map."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    from recouple.io.surfaces import region_geometry
    from recouple.workflows.figures import add_colorbar, draw_views, surface_problem

    labels = (shared_data / "hcp" / "strucLabels_ctx.csv").read_text().strip().split(",")
    geo = region_geometry(labels, [shared_data / "ahba" / f"fsa5_{h}_aparc.annot" for h in ("lh", "rh")],
                          [shared_data / "surfaces" / f"fsa5_sphere_{h}.gii" for h in ("lh", "rh")])
    assert surface_problem(geo) == ""
    values = np.random.default_rng(0).standard_normal(len(labels))
    values[:3] = np.nan  # regions without a value stay grey
    fig = plt.figure(figsize=(10, 2.4))
    axes = draw_views(fig, fig.add_gridspec(1, 1)[0], values, geo, cmap="RdBu_r", vmin=-2, vmax=2,
                      outline=values > 1.0, title="DK")
    add_colorbar(fig, axes, cmap="RdBu_r", vmin=-2, vmax=2, label="z")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    img = (plt.imread(io.BytesIO(buf.getvalue()))[..., :3] * 255).round().astype(np.uint8)
    assert not figure_problems("DK", img, brain=True)


# ----------------------------------------------------------------------------- words

def _fake(method, *, covariates=(), pls=1, enrichment=False, expression="store"):
    cfg = {
        "coupling": {"method": "spearman", "edges": "sc_nonzero", "level": "region", "min_edges": 3},
        "permutation": {"n_perm": 100, "seed": 0, "alpha": 0.05},
        "nulls": {"method": method, "n_perm": 50, "seed": 1},
        "association": {"target": "pp", "method": "spearman", "pls_components": pls, "pls_bootstrap": 10,
                        "expression": expression},
        "contrasts": [{"name": "pp", "type": "paired", "covariates": list(covariates)}],
        "clinical": {"score": "hamd", "group": "patient", "sessions": ["pre", "post"], "change": "improvement",
                     "method": "pearson"},
        "enrichment": {"min_size": 5, "max_size": 50},
        "compute": {"backend": "numpy"},
    }
    steps = {"coupling": {"coupling": np.zeros((4, 10))},
             "contrasts": {"pp": {"desc": np.asarray("post vs pre in patient (paired sign-flip t, n = 24)"),
                                  "n_perm": np.asarray(100)}},
             "genes": {}}
    if enrichment:
        steps["enrichment"] = {}
    return cfg, SimpleNamespace(steps=steps)


SPINS = ("alexander_bloch", "vasa", "hungarian", "baum", "cornblath")


@pytest.mark.parametrize("method", SPINS + ("variogram", "burt2018", "moran", "permutation"))
def test_methods_wording_per_null_method(method):
    from recouple.workflows.report import methods_paragraph
    from recouple.workflows.references import cited, citations

    text = methods_paragraph(*_fake(method, covariates=["age"], enrichment=True))
    if method == "permutation":
        assert "random permutations of the regions" in text and "spin" not in text.lower()
        assert "do not account for spatial autocorrelation" in text
        assert "spatially constrained" not in text
    else:
        assert "spatially constrained" in text
    if method in SPINS:
        assert "spin" in text and "Alexander-Bloch et al., 2018" in text
    else:
        assert "spin" not in text.lower() and "rotat" not in text
    expected = {"vasa": "Váša et al., 2018", "hungarian": "Hungarian algorithm", "baum": "Baum et al., 2020",
                "cornblath": "Cornblath et al., 2020", "variogram": "Burt et al., 2020",
                "burt2018": "Burt et al., 2018", "moran": "Wagner & Dray, 2015",
                "alexander_bloch": "Vázquez-Rodríguez et al., 2019"}
    if method in expected:
        assert expected[method] in text
    assert "))" not in text  # "(... (paired sign-flip t, n = 24))"
    assert "post vs pre in patient: paired sign-flip t, n = 24, adjusting for age" in text
    refs = cited(text)
    assert len(refs) == len(citations(text)) and len(set(refs)) == len(refs)


def test_reference_list_matches_citations(surface_study):
    from recouple.workflows.references import REFERENCES, citations

    html = surface_study.report.read_text()
    methods = re.search(r"<h2>Methods</h2><p>(.*?)</p>", html, re.S).group(1)
    refs = re.findall(r"<li>(.*?)</li>", re.search(r"<h2>References</h2><ol[^>]*>(.*?)</ol>", html, re.S).group(1))
    import html as H

    keys = citations(H.unescape(methods))
    assert {"Baum et al., 2020", "Váša et al., 2018", "Benjamini & Hochberg, 1995", "Phipson & Smyth, 2010",
            "de Jong, 1993"} <= set(keys)
    assert [H.unescape(r) for r in refs] == [REFERENCES[k] for k in keys]
    for key in keys:  # first author and year in the full reference
        ref = REFERENCES[key]
        assert key.split(",")[-1].strip() in ref
        assert ref.split()[0].lower() in key.lower().replace("&", " ").split()[0] + " " + key.lower()


def test_every_reference_is_complete():
    from recouple.workflows.references import REFERENCES

    for key, ref in REFERENCES.items():
        year = key[-4:]
        # authors. title. journal. year;volume...
        assert re.match(r"^[^.]+\. [^.].+\. .+\. " + year + r";\S", ref.replace("et al.", "etal.")), ref


def test_strongest_significant_sorted_by_p_then_t():
    from recouple.workflows.report import _strongest

    p = np.array([0.001, 0.0005, 0.001, 0.2, 0.0005, 0.001])
    t = np.array([4.0, 5.0, -6.0, 1.0, 7.0, 3.0])
    assert _strongest(p, t, p < 0.05).tolist() == [4, 1, 2, 0, 5]


def test_null_figure_wording(tmp_path):
    res = _study(tmp_path, null_method="permutation")
    html = res.report.read_text()
    caption = re.search(r"<h3>Null distributions</h3>.*?<figcaption>(.*?)</figcaption>", html, re.S).group(1)
    assert "random permutations of regions" in caption and "spatial" not in caption and "spin" not in caption
    methods = re.search(r"<h2>Methods</h2><p>(.*?)</p>", html, re.S).group(1)
    assert "spin" not in methods.lower()
    # the demo's target is a paired contrast: its null comes from sign flips, not permutations of scans
    assert "max |t| over regions from 200 sign flips" in caption and "permutations of scans" not in caption
    check_report_figures(html)
