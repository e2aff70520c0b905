"""Gene-wise association of brain maps with expression under spatial nulls."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..engine.dispatch import call_kernel
from ..exceptions import InputError
from ..io.tables import write_rnk
from ..kernels import pvalues as _kp
from ..kernels import stats as _ks
from ..nulls import spec as _spec
from ..nulls.association import compare_maps, resolution_note
from ..validation import check_choice
from .expression import METHODS, _prepare

__all__ = ["GeneAssociation", "associate"]


@dataclass(frozen=True)
class GeneAssociation:
    """Gene-wise association of maps with expression (:func:`associate`).

    Attributes
    ----------
    r : (M, G) float array
        Correlation of each map with each gene.
    pvalue, pvalue_fdr, pvalue_fwer : (M, G) float arrays or None
        Permutation p (+1 convention, floor ``1/(n_perm+1)``), BH-FDR across
        genes, and max-statistic FWER across genes; ``None`` without nulls.
    genes : (G,) str array
    maps : (M,) str array
    regions : (N,) str array
        Regions used, in the order of the analysis.
    n_perm : int
    params : dict
    tail_approximation : bool
        Whether ``pvalue``/``pvalue_fwer`` carry the generalised-Pareto tail
        approximation (see :func:`recouple.nulls.compare_maps`).
    pvalue_permutation : (M, G) float array or None
        With ``tail_approximation``, the plain permutation p-values.
    """

    r: np.ndarray
    pvalue: np.ndarray | None
    pvalue_fdr: np.ndarray | None
    pvalue_fwer: np.ndarray | None
    genes: np.ndarray
    maps: np.ndarray
    regions: np.ndarray
    n_perm: int = 0
    params: dict = field(default_factory=dict)
    tail_approximation: bool = False
    pvalue_permutation: np.ndarray | None = field(default=None, repr=False)

    def resolution_note(self, map=0, alpha=0.05) -> str:
        """One sentence explaining why FDR q-values of ``map`` stay above
        ``alpha`` when many genes sit at the smallest attainable p-value
        ``1/(n_perm+1)`` while FWER p-values are small (empty when that is
        not the case); see :func:`recouple.nulls.resolution_note`."""
        if self.pvalue is None:
            return ""
        return resolution_note(self.pvalue[_map_position(self.maps, map)], self.n_perm, alpha=alpha)

    def ranked(self, map=0) -> dict:
        """Genes ranked by r (highest first) for one map: dict of columns."""
        i = _map_position(self.maps, map)
        order = np.argsort(-np.nan_to_num(self.r[i], nan=-np.inf), kind="stable")
        cols = {"rank": np.arange(1, order.size + 1), "gene": self.genes[order], "r": self.r[i][order]}
        for key in ("pvalue", "pvalue_fdr", "pvalue_fwer", "pvalue_permutation"):
            val = getattr(self, key)
            if val is not None:
                cols[key] = val[i][order]
        return cols

    def write_rnk(self, path, map=0):
        """Write a GSEA pre-ranked list (gene, r) for one map."""
        i = _map_position(self.maps, map)
        return write_rnk(path, self.genes, self.r[i])


def _map_position(names, which):
    if isinstance(which, str):
        hits = np.flatnonzero(names == which)
        if hits.size == 0:
            raise InputError(f"map must be one of {list(names)}; got {which!r}. Pass a map name or index.")
        return int(hits[0])
    return int(which)


def associate(maps, expression, *, labels=None, nulls=None, method="spearman", alternative="two-sided",
              n_perm=1000, seed=0, coords=None, hemi=None, distance=None, missing="error",
              map_names=None, batch_size=None, progress=False, backend=None, tail_approximation=False,
              duplicate_genes="error", precision="float64") -> GeneAssociation:
    """Correlate every gene with one or more brain maps, with spatial nulls.

    Parameters
    ----------
    maps : (N,) or (M, N) array
        Brain maps over the map's regions.
    expression : Expression, path or DataFrame
        Regional expression (:func:`load_expression`).
    labels : (N,) sequence of str, optional
        The maps' region labels; expression is aligned to them by label.
        Without labels, maps must follow the expression's region order.
    nulls : see :mod:`recouple.nulls.spec`
        Nulls of the maps (not of the genes: correlating a spun map with the
        genes equals correlating the map with spun genes). Labelled nulls
        (``recouple nulls`` output with its ``.labels.txt``) are aligned to
        ``labels`` by label.
    method : {"spearman", "pearson"}
    alternative : {"two-sided", "greater", "less"}
    n_perm, seed, coords, hemi, distance
        For nulls drawn by name (``seed`` default 0: the same seed gives identical nulls).
    missing : {"error", "drop"}
        Map regions without expression (see :func:`align`).
    map_names : (M,) sequence of str, optional
    batch_size : int, optional
        Null maps per matrix product (planned from memory by default).
    tail_approximation : bool
        Generalised-Pareto tail p-values for small p (see
        :func:`recouple.nulls.compare_maps`); default False.
    duplicate_genes : {"error", "drop", "first", "mean"}
        For an expression given as a path or DataFrame: genes named twice
        (see :func:`load_expression`).
    precision : {"float64", "float32"}
        Arithmetic of the null correlations (see
        :func:`recouple.nulls.compare_maps`; float32 needs maps, expression
        and nulls without missing values).

    Returns
    -------
    GeneAssociation

    progress : bool
        Progress bar on stderr.

    Notes
    -----
    Runs :func:`recouple.nulls.compare_maps`: r for all genes is one product of
    standardised (ranked) rows and the null one (K x N) @ (N x G) product
    per batch of null maps (METHODS 5.2); p-values with the +1 convention
    (floor ``1/(n_perm+1)``), BH-FDR across genes, FWER by the maximum
    statistic across genes. Null maps with dropped entries (NaN) use
    pairwise-complete correlation.
    """
    check_choice("method", method, METHODS)
    check_choice("alternative", alternative, _kp.ALTERNATIVES)
    check_choice("precision", precision, _kp.PRECISIONS)
    vals, y, index, names, aligned, _ = _prepare(expression, maps, labels, missing, map_names, duplicate_genes)
    genes_t = np.ascontiguousarray(vals.T)
    y_used = y[:, index]
    source = _spec.resolve(nulls, y, n_perm=n_perm, seed=seed, coords=coords, hemi=hemi, distance=distance,
                           labels=None if labels is None else np.atleast_1d(labels))
    if source is None:
        r = call_kernel(_ks.correlate, y_used, genes_t, backend=backend, static={"method": method})
        return GeneAssociation(r=r, pvalue=None, pvalue_fdr=None, pvalue_fwer=None, genes=aligned.genes,
                               maps=names, regions=aligned.regions, params={"method": method})
    if source[0] == "index" and np.array_equal(index, np.arange(y.shape[1])):
        spec = source[1]  # spins over exactly the analysed regions: ranks are computed once
    else:
        spec = _spec.as_null_maps(source, y)[:, :, index]
    res = compare_maps(y_used, genes_t, nulls=spec, method=method, alternative=alternative,
                       batch_size=batch_size, progress=progress, backend=backend,
                       tail_approximation=tail_approximation, precision=precision)
    return GeneAssociation(r=res.r, pvalue=res.pvalue, pvalue_fdr=res.pvalue_fdr, pvalue_fwer=res.pvalue_fwer,
                           genes=aligned.genes, maps=names, regions=aligned.regions, n_perm=int(res.n_perm),
                           params={"method": method, "alternative": alternative, "seed": seed,
                                   "tail_approximation": bool(tail_approximation), "precision": precision},
                           tail_approximation=bool(tail_approximation), pvalue_permutation=res.pvalue_permutation)


