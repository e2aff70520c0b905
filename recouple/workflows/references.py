"""What the study report's methods paragraph says about spatial nulls, and
the full reference of every work it cites.

The paragraph cites works as ``(Author et al., YEAR)``; :func:`cited`
returns the full references of exactly the works a text cites, in order of
first citation, so the reference list and the text cannot disagree.
"""

from __future__ import annotations

import re

__all__ = ["REFERENCES", "NULL_METHODS", "null_description", "null_short", "cited"]

# in-text citation -> full reference (authors, year, title, journal, volume, pages)
REFERENCES: dict[str, str] = {
    "Baum et al., 2020": (
        "Baum GL, Cui Z, Roalf DR, et al. Development of structure-function coupling in human brain networks "
        "during youth. Proc Natl Acad Sci USA. 2020;117(1):771-778."),
    "Gu et al., 2021": (
        "Gu Z, Jamison KW, Sabuncu MR, Kuceyeski A. Heritability and interindividual variability of regional "
        "structure-function coupling. Nat Commun. 2021;12:4894."),
    "Fotiadis et al., 2023": (
        "Fotiadis P, Cieslak M, He X, et al. Myelination and excitation-inhibition balance synergistically "
        "shape structure-function coupling across the human cortex. Nat Commun. 2023;14:6115."),
    "Freedman & Lane, 1983": (
        "Freedman D, Lane D. A nonstochastic interpretation of reported significance levels. J Bus Econ Stat. "
        "1983;1(4):292-298."),
    "Winkler et al., 2014": (
        "Winkler AM, Ridgway GR, Webster MA, Smith SM, Nichols TE. Permutation inference for the general "
        "linear model. NeuroImage. 2014;92:381-397."),
    "Nichols & Holmes, 2002": (
        "Nichols TE, Holmes AP. Nonparametric permutation tests for functional neuroimaging: a primer with "
        "examples. Hum Brain Mapp. 2002;15(1):1-25."),
    "Benjamini & Hochberg, 1995": (
        "Benjamini Y, Hochberg Y. Controlling the false discovery rate: a practical and powerful approach to "
        "multiple testing. J R Stat Soc Series B. 1995;57(1):289-300."),
    "Phipson & Smyth, 2010": (
        "Phipson B, Smyth GK. Permutation p-values should never be zero: calculating exact p-values when "
        "permutations are randomly drawn. Stat Appl Genet Mol Biol. 2010;9(1):Article 39."),
    "Alexander-Bloch et al., 2018": (
        "Alexander-Bloch AF, Shou H, Liu S, et al. On testing for spatial correspondence between maps of human "
        "brain structure and function. NeuroImage. 2018;178:540-551."),
    "Vázquez-Rodríguez et al., 2019": (
        "Vázquez-Rodríguez B, Suárez LE, Markello RD, et al. Gradients of structure-function tethering across "
        "neocortex. Proc Natl Acad Sci USA. 2019;116(42):21219-21227."),
    "Váša et al., 2018": (
        "Váša F, Seidlitz J, Romero-Garcia R, et al. Adolescent tuning of association cortex in human "
        "structural brain networks. Cereb Cortex. 2018;28(1):281-294."),
    "Markello & Misic, 2021": (
        "Markello RD, Mišić B. Comparing spatial null models for brain maps. NeuroImage. 2021;236:118052."),
    "Cornblath et al., 2020": (
        "Cornblath EJ, Ashourvan A, Kim JZ, et al. Temporal sequences of brain activity at rest are constrained "
        "by white matter structure and modulated by cognitive demands. Commun Biol. 2020;3:261."),
    "Burt et al., 2018": (
        "Burt JB, Demirtaş M, Eckner WJ, et al. Hierarchy of transcriptomic specialization across human cortex "
        "captured by structural neuroimaging topography. Nat Neurosci. 2018;21(9):1251-1259."),
    "Burt et al., 2020": (
        "Burt JB, Helmer M, Shinn M, Anticevic A, Murray JD. Generative modeling of brain maps with spatial "
        "autocorrelation. NeuroImage. 2020;220:117038."),
    "Wagner & Dray, 2015": (
        "Wagner HH, Dray S. Generating spatially constrained null models for irregularly spaced data using "
        "Moran spectral randomization methods. Methods Ecol Evol. 2015;6(10):1169-1178."),
    "Hawrylycz et al., 2012": (
        "Hawrylycz MJ, Lein ES, Guillozet-Bongaarts AL, et al. An anatomically comprehensive atlas of the adult "
        "human brain transcriptome. Nature. 2012;489(7416):391-399."),
    "Markello et al., 2021": (
        "Markello RD, Arnatkevičiūtė A, Poline J-B, Fulcher BD, Fornito A, Mišić B. Standardizing workflows in "
        "imaging transcriptomics with the abagen toolbox. eLife. 2021;10:e72129."),
    "de Jong, 1993": (
        "de Jong S. SIMPLS: an alternative approach to partial least squares regression. Chemometr Intell Lab "
        "Syst. 1993;18(3):251-263."),
    "Abdi, 2010": (
        "Abdi H. Partial least squares regression and projection on latent structure regression (PLS "
        "Regression). WIREs Comput Stat. 2010;2(1):97-106."),
    "Fulcher et al., 2021": (
        "Fulcher BD, Arnatkevičiūtė A, Fornito A. Overcoming false-positive gene-category enrichment in the "
        "analysis of spatially resolved transcriptomic brain atlas data. Nat Commun. 2021;12:2669."),
}

_SPIN = ("rotations of the sphere, the same random rotation for the left hemisphere and its mirror image for "
         "the right (spin test; Alexander-Bloch et al., 2018)")

# method -> (what the nulls are, for the methods paragraph; short name for figure titles)
NULL_METHODS: dict[str, tuple[str, str]] = {
    "alexander_bloch": (
        f"spatially constrained spin nulls: region centroids on the sphere were moved by {_SPIN}, and each region "
        "took the value of the region whose rotated centroid lies nearest, so a region's value may be used twice "
        "or not at all (Vázquez-Rodríguez et al., 2019; Markello & Misic, 2021)",
        "spin nulls (nearest rotated centroid)"),
    "vasa": (
        f"spatially constrained spin nulls: region centroids on the sphere were moved by {_SPIN} and reassigned "
        "to regions one to one by the greedy rule of Váša et al. (Váša et al., 2018; Markello & Misic, 2021)",
        "spin nulls (Váša)"),
    "hungarian": (
        f"spatially constrained spin nulls: region centroids on the sphere were moved by {_SPIN} and reassigned "
        "to regions one to one by the Hungarian algorithm minimising the total distance (Markello & Misic, 2021)",
        "spin nulls (Hungarian)"),
    "baum": (
        f"spatially constrained spin nulls: the vertices of the surface parcellation were moved by {_SPIN}, and "
        "each region took the value of the region most of its rotated vertices fell in (Baum et al., 2020; "
        "Markello & Misic, 2021)",
        "spin nulls (Baum)"),
    "cornblath": (
        f"spatially constrained spin nulls: regional values were projected to the vertices of the surface "
        f"parcellation, the vertices moved by {_SPIN}, and the rotated values averaged within each region "
        "(Cornblath et al., 2020; Markello & Misic, 2021)",
        "spin nulls (Cornblath)"),
    "variogram": (
        "spatially constrained surrogate maps that preserve the map's spatial autocorrelation by matching its "
        "variogram (Burt et al., 2020)",
        "variogram-matched surrogates"),
    "burt2018": (
        "spatially constrained surrogate maps from a spatial autoregressive model fitted to the map "
        "(Burt et al., 2018)",
        "spatial-lag surrogates"),
    "moran": (
        "spatially constrained surrogate maps from Moran spectral randomization, which preserves the map's "
        "spatial autocorrelation (Wagner & Dray, 2015)",
        "Moran spectral randomization"),
    "permutation": (
        "random permutations of the regions, which do not preserve spatial autocorrelation, so p-values are "
        "not corrected for it",
        "random permutations of regions"),
}
NULL_ALIASES = {"vazquez_rodriguez": "alexander_bloch", "burt2020": "variogram", "naive": "permutation",
                "spin": "alexander_bloch"}


def _method(method: str) -> str:
    key = str(method).lower()
    return NULL_ALIASES.get(key, key)


def null_description(method: str) -> str:
    """What the nulls of ``method`` are, in words, with citations (for the methods paragraph)."""
    key = _method(method)
    if key not in NULL_METHODS:
        return f"nulls of method {method!r}"
    return NULL_METHODS[key][0]


def null_short(method: str) -> str:
    """A short name of the nulls of ``method`` (for figure titles)."""
    key = _method(method)
    return NULL_METHODS[key][1] if key in NULL_METHODS else f"{method} nulls"


def is_spatial(method: str) -> bool:
    """False for plain permutations, which ignore spatial autocorrelation."""
    return _method(method) != "permutation"


_CITATION = re.compile(r"((?:de )?[A-Z][^\s(),;]*(?: (?:et al\.|& [A-Z][^\s(),;]*))?), (\d{4})")


def citations(text: str) -> list[str]:
    """Every ``Author[ et al.| & Author], YEAR`` citation in ``text``, in order, once each."""
    out: list[str] = []
    for m in _CITATION.finditer(text):
        key = f"{m.group(1)}, {m.group(2)}"
        if key not in out:
            out.append(key)
    return out


def cited(text: str) -> list[str]:
    """Full references of the works ``text`` cites, in order of first citation.

    A citation without an entry in :data:`REFERENCES` is an error (a
    reference list must never miss a cited work).
    """
    keys = citations(text)
    missing = [k for k in keys if k not in REFERENCES]
    if missing:
        raise KeyError(f"no full reference for citation(s) {missing}; add them to REFERENCES")
    return [REFERENCES[k] for k in keys]
