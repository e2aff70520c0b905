"""Gene-category enrichment of a brain map with ensemble spatial nulls
(Fulcher et al. 2021) or random-gene nulls, from GMT gene sets."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..engine.dispatch import call_kernel
from ..engine.random import permutation_indices
from ..exceptions import InputError, ShapeError
from ..io.tables import read_gmt
from ..kernels import genes as _kg
from ..kernels import pvalues as _kp
from ..kernels import stats as _ks
from ..nulls import spec as _spec
from ..validation import as_array, check_choice, check_positive_int
from .expression import METHODS, _prepare

__all__ = ["EnrichmentResult", "load_gene_sets", "membership_matrix", "enrichment", "dropped_message"]


def dropped_message(dropped, n_sets, min_size, max_size, *, unbounded="pass max_size=None (--max-size none)") -> str:
    """One line naming the gene sets left out by the size bounds, and why;
    ``unbounded`` says how the caller's user lifts the upper bound."""
    if not dropped:
        return ""
    big = [n for n, why in dropped.items() if "max_size" in why]
    small = [n for n, why in dropped.items() if "min_size" in why]
    parts = []
    if big:
        parts.append(f"{len(big)} larger than max_size={max_size} ({', '.join(big[:12])}{' ...' if len(big) > 12 else ''})")
    if small:
        parts.append(f"{len(small)} smaller than min_size={min_size} "
                     f"({', '.join(small[:12])}{' ...' if len(small) > 12 else ''})")
    hint = (f" Cell-type sets (LAKE, Pooled) hold 50-1100 genes: {unbounded} to keep them."
            if big else "")
    return (f"{len(dropped)} of {n_sets} gene sets left out by the size bounds [{min_size}, "
            f"{'none' if max_size is None else max_size}] on genes present in the expression table: "
            f"{'; '.join(parts)}.{hint}")


@dataclass(frozen=True)
class EnrichmentResult:
    """Gene-category enrichment (:func:`enrichment`).

    Attributes
    ----------
    categories : (C,) str array
        Categories kept (within the size limits), in input order.
    sizes : (C,) int array
        Genes of each category present in the expression table.
    score : (C,) float array
        Category score: mean (or mean absolute) gene score over its genes.
    pvalue : (C,) float array
        Permutation p (+1 convention) of ``score`` against the null scores.
    pvalue_fdr : (C,) float array
        BH-FDR across categories.
    null_mean, null_std : (C,) float arrays
        Mean and standard deviation of the null scores.
    zscore : (C,) float array
        ``(score - null_mean) / null_std``.
    gene_scores : (G,) float array
        Observed gene scores.
    genes : (G,) str array
    dropped : dict
        Categories left out, ``{name: reason}``: outside the size bounds
        ``[min_size, max_size]`` (genes of the set present in the table).
    null_type : str
    n_perm : int
    min_size, max_size : int, int or None
        The size bounds used (``max_size=None``: no upper bound).
    n_sets : int
        Gene sets read, kept or dropped.
    """

    categories: np.ndarray
    sizes: np.ndarray
    score: np.ndarray
    pvalue: np.ndarray
    pvalue_fdr: np.ndarray
    null_mean: np.ndarray
    null_std: np.ndarray
    zscore: np.ndarray
    gene_scores: np.ndarray
    genes: np.ndarray
    dropped: dict
    null_type: str
    n_perm: int
    min_size: int = 10
    max_size: int | None = 200
    n_sets: int = 0

    @property
    def dropped_message(self) -> str:
        """One line: how many gene sets the size bounds left out, which, and why (empty when none)."""
        return dropped_message(self.dropped, self.n_sets or len(self.dropped) + self.categories.size,
                               self.min_size, self.max_size)

    def ranked(self) -> dict:
        """Categories ordered by p-value, then by score (strongest first)."""
        order = np.lexsort((-self.score, self.pvalue))
        return {"rank": np.arange(1, order.size + 1), "category": self.categories[order],
                "size": self.sizes[order], "score": self.score[order], "zscore": self.zscore[order],
                "pvalue": self.pvalue[order], "pvalue_fdr": self.pvalue_fdr[order]}


def load_gene_sets(source) -> dict[str, list[str]]:
    """Gene sets from a GMT path or a ``{name: genes}`` mapping."""
    if isinstance(source, (str, Path)):
        return read_gmt(source)
    if isinstance(source, dict):
        return {str(k): list(dict.fromkeys(map(str, v))) for k, v in source.items()}
    raise InputError(f"gene_sets must be a GMT path or a dict of name -> genes; got {type(source).__name__}. "
                     "Pass e.g. '../shared/data/ahba/geneset_LAKE.gmt'.")


def membership_matrix(gene_sets, genes, *, min_size=10, max_size=200):
    """0/1 membership of ``genes`` in each gene set within the size limits.

    Returns
    -------
    membership : (G, C) float array
    names : (C,) str array
    sizes : (C,) int array
    dropped : dict
        ``{name: reason}`` for sets outside ``[min_size, max_size]`` after
        restricting to ``genes`` (case-insensitive symbol match).
    """
    sets = load_gene_sets(gene_sets)
    lookup = {str(g).upper(): i for i, g in enumerate(genes)}
    cols, names, sizes, dropped = [], [], [], {}
    for name, members in sets.items():
        idx = sorted({lookup[m.upper()] for m in members if m.upper() in lookup})
        if len(idx) < min_size:
            dropped[name] = f"{len(idx)} of {len(members)} genes present, fewer than min_size={min_size}"
            continue
        if max_size is not None and len(idx) > max_size:
            dropped[name] = f"{len(idx)} genes present, more than max_size={max_size}"
            continue
        cols.append(idx)
        names.append(name)
        sizes.append(len(idx))
    mem = np.zeros((len(genes), len(cols)))
    for c, idx in enumerate(cols):
        mem[idx, c] = 1.0
    return mem, np.asarray(names, dtype=str), np.asarray(sizes, dtype=np.int64), dropped


def enrichment(map, expression, gene_sets, *, nulls=None, null_type="spatial", labels=None, method="spearman",
               aggregate="mean", alternative="greater", min_size=10, max_size=200, n_perm=1000, seed=0,
               coords=None, hemi=None, distance=None, missing="error", batch_size=None,
               backend=None, duplicate_genes="error") -> EnrichmentResult:
    """Gene-category enrichment of a brain map with ensemble nulls (Fulcher 2021).

    Parameters
    ----------
    map : (N,) array
        The phenotype map.
    expression : Expression, path or DataFrame
    gene_sets : GMT path or dict of name -> genes
    nulls : see :mod:`recouple.nulls.spec`
        Null maps for ``null_type="spatial"`` (spins, surrogates; Fulcher's
        "SBP-spatial" ensemble); ``"permutation"`` gives spatially naive
        random maps ("SBP-random").
    null_type : {"spatial", "random-genes"}
        ``"spatial"``: category scores of the null maps. ``"random-genes"``:
        classic gene-label permutation (random gene sets of the same sizes,
        ``n_perm`` of them); kept for comparison, it ignores co-expression and
        spatial autocorrelation and inflates false positives.
    method : {"spearman", "pearson"}
        Gene score = correlation of the map with each gene.
    aggregate : {"mean", "absmean"}
        Category score from its gene scores.
    alternative : {"greater", "less", "two-sided"}
        Tail of the category-score test ("greater" = Fulcher's right tail).
    min_size, max_size : int, int or None
        Category size limits after restricting to genes in the table
        (``max_size=None``: no upper bound). The default 200 follows GO
        practice (Fulcher et al. 2021); cell-type sets such as LAKE or
        Pooled hold 50-1100 genes and need ``max_size=None`` (or larger).
        Sets left out are listed in ``dropped`` (``dropped_message``).
    labels : (N,) sequence of str, optional
        The map's region labels (expression and labelled nulls are aligned to them).
    duplicate_genes : {"error", "drop", "first", "mean"}
        For an expression given as a path or DataFrame (see :func:`load_expression`).

    Returns
    -------
    EnrichmentResult

    Notes
    -----
    With ``aggregate="mean"`` the category score is linear in the
    standardised map, so K null maps cost one (K x N) @ (N x C) product
    against the mean standardised gene profile of each category (identical
    to averaging K x G gene scores through the membership matrix).
    Null maps with NaN are left out of the null (K counts complete maps).

    References
    ----------
    Fulcher BD, Arnatkevičiūtė A, Fornito A. Nat Commun 2021;12:2669.
    """
    check_choice("method", method, METHODS)
    check_choice("aggregate", aggregate, ("mean", "absmean"))
    check_choice("alternative", alternative, _kp.ALTERNATIVES)
    check_choice("null_type", null_type, ("spatial", "random-genes"))
    y = as_array("map", map)
    if y.ndim != 1:
        raise ShapeError(f"map must be one map (N,); got shape {y.shape}. Run one enrichment per map.")
    min_size = check_positive_int("min_size", min_size)
    if max_size is not None:
        max_size = check_positive_int("max_size", max_size)
    vals, y2, index, _, aligned, _ = _prepare(expression, y, labels, missing, None, duplicate_genes)
    mem, names, sizes, dropped = membership_matrix(gene_sets, aligned.genes, min_size=min_size, max_size=max_size)
    n_sets = len(dropped) + names.size
    if names.size == 0:
        raise InputError(f"gene_sets must have at least one category with {min_size}..{max_size} genes present in "
                         f"the expression table; none has. {dropped_message(dropped, n_sets, min_size, max_size)} "
                         "Check gene symbols or relax min_size/max_size.")
    genes_t = np.ascontiguousarray(vals.T)
    static = {"method": method}
    # the kernels read 0/1 membership as bool (an eighth of the bytes to move to a device);
    # category_scores reads the expression and membership only for aggregate="absmean"
    member = mem != 0
    score_inputs = (genes_t, member) if aggregate != "mean" else (None, None)
    profiles = call_kernel(_kg.category_profiles, genes_t, member, backend=backend, static=static)
    observed_map = y2[:, index]
    gene_scores = call_kernel(_ks.correlate, observed_map[0], genes_t, backend=backend, static=static)
    score = call_kernel(_kg.category_scores, observed_map, *score_inputs, profiles, backend=backend,
                        static={**static, "aggregate": aggregate})[0]
    if null_type == "random-genes":
        perms = permutation_indices(seed, check_positive_int("n_perm", n_perm), genes_t.shape[0],
                                    purpose="gene-permutation")
        null_scores = call_kernel(_kg.gene_label_null_scores, gene_scores, perms, member, backend=backend,
                                  static={"aggregate": aggregate})
    else:
        if nulls is None or (isinstance(nulls, str) and nulls.lower() == "none"):
            raise InputError("nulls must be given for spatial enrichment; got None. Pass spins/surrogates "
                             "(an array or 'spin'), or null_type='random-genes'.")
        null = _spec.resolve_nulls(nulls, y2, n_perm=n_perm, seed=seed, coords=coords, hemi=hemi,
                                   distance=distance,
                                   labels=None if labels is None else np.atleast_1d(labels))[0][:, index]
        null = null[~np.isnan(null).any(axis=1)]
        if null.shape[0] == 0:
            raise InputError("nulls must include complete null maps; every null map has NaN in the analysed "
                             "regions. Use nulls without dropped regions.")
        step = batch_size or (null.shape[0] if aggregate == "mean" else 256)
        null_scores = np.concatenate([
            call_kernel(_kg.category_scores, null[s:s + step], *score_inputs, profiles, backend=backend,
                        static={**static, "aggregate": aggregate})
            for s in range(0, null.shape[0], step)])
    p = call_kernel(_kp.permutation_pvalue, score, null_scores, backend=backend,
                    static={"alternative": alternative, "axis": 0, "plus_one": True})
    q = call_kernel(_ks.fdr_bh, p, backend=backend, static={"axis": -1})
    mu = null_scores.mean(axis=0)
    sd = null_scores.std(axis=0, ddof=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = (score - mu) / sd
    return EnrichmentResult(categories=names, sizes=sizes, score=score, pvalue=p, pvalue_fdr=q, null_mean=mu,
                            null_std=sd, zscore=z, gene_scores=gene_scores, genes=aligned.genes, dropped=dropped,
                            null_type=null_type, n_perm=int(null_scores.shape[0]), min_size=min_size,
                            max_size=max_size, n_sets=n_sets)

