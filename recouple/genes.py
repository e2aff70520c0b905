"""Imaging transcriptomics: relate brain maps to regional gene expression.

* :func:`load_expression`, :func:`align`, :func:`select_regions`,
  :func:`filter_genes`: region x gene tables (abagen CSV, HDF5, arrays),
  matched to a map's regions by label, never by position.
* :func:`associate`: every gene against one or more maps with spatial nulls
  (r, permutation p, FDR, FWER) and a ranked gene table / ``.rnk`` file.
* :func:`pls`: SIMPLS PLS regression with variance-explained nulls and
  bootstrap Z-scores of gene weights, batched as matrix products.
* :func:`enrichment`: gene-category enrichment with ensemble spatial nulls
  (Fulcher et al. 2021) or random-gene nulls, from GMT gene sets.

Null arrays are ``(n_perm, N)``: integer resampling indices (spins,
permutations; -1 drops an entry) or float surrogate maps. They refer to the
map's own regions (``labels``) and are applied before alignment.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from .engine.dispatch import call_kernel
from .exceptions import InputError, ShapeError
from .kernels import genes as _kg
from .kernels import stats as _ks
from .validation import as_array, check_choice, check_positive_int

__all__ = [
    "Expression",
    "Alignment",
    "GeneAssociation",
    "PLSResult",
    "EnrichmentResult",
    "load_expression",
    "from_annotations",
    "region_key",
    "align",
    "select_regions",
    "filter_genes",
    "resolve_nulls",
    "associate",
    "pls",
    "enrichment",
    "load_gene_sets",
    "membership_matrix",
]

ALTERNATIVES = ("two-sided", "greater", "less")
METHODS = ("spearman", "pearson")


# --------------------------------------------------------------------------- expression


@dataclass(frozen=True)
class Expression:
    """Regional gene expression.

    Attributes
    ----------
    values : (N, G) float array
        Regions x genes; NaN marks a region without samples.
    regions : (N,) str array
        Region labels as read (e.g. ``L_bankssts``).
    genes : (G,) str array
        Gene symbols, unique.
    hemisphere : (N,) str array or None
        ``"L"``, ``"R"`` or ``"B"`` (both / midline) per region.
    structure : (N,) str array or None
        E.g. ``"cortex"``, ``"subcortex/brainstem"``.
    """

    values: np.ndarray
    regions: np.ndarray
    genes: np.ndarray
    hemisphere: np.ndarray | None = None
    structure: np.ndarray | None = None

    @property
    def shape(self) -> tuple[int, int]:
        return self.values.shape

    def take_regions(self, index) -> "Expression":
        """The regions at ``index`` (int array or bool mask), in that order."""
        index = np.asarray(index)
        return replace(
            self,
            values=self.values[index],
            regions=self.regions[index],
            hemisphere=None if self.hemisphere is None else self.hemisphere[index],
            structure=None if self.structure is None else self.structure[index],
        )

    def take_genes(self, index) -> "Expression":
        """The genes at ``index`` (int array or bool mask)."""
        index = np.asarray(index)
        return replace(self, values=self.values[:, index], genes=self.genes[index])


_HEMI_PATTERNS = (
    (re.compile(r"^(?:ctx[-_.])?(lh|rh|l|r|left|right)[-_.](.+)$", re.I), 1, 2),
    (re.compile(r"^(.+?)[-_.](lh|rh|l|r|left|right)$", re.I), 2, 1),
)


def region_key(label, hemisphere=None) -> str:
    """Canonical key of a region label, for matching labels across sources.

    Hemisphere prefixes and suffixes ``L_``/``R_``, ``lh_``/``rh_``,
    ``lh.``/``rh.``, ``ctx-lh-``, ``Left-``/``Right-``, ``_L``/``_R`` become
    ``l:``/``r:``; the name is lower-cased with spaces, dashes and dots
    removed. ``hemisphere`` ("L"/"R"/"lh"/"rh"), when given, names the
    hemisphere of a bare label. Labels without a hemisphere keep none
    (e.g. ``brainstem``).

    >>> region_key("L_bankssts") == region_key("ctx-lh-bankssts") == region_key("bankssts", "L")
    True
    """
    text = str(label).strip()
    hemi = None
    for pattern, h, n in _HEMI_PATTERNS:
        m = pattern.match(text)
        if m:
            hemi, text = m.group(h), m.group(n)
            break
    if hemi is None and hemisphere is not None and str(hemisphere).strip().upper() not in ("", "B", "NAN", "NONE"):
        hemi = str(hemisphere)
    name = re.sub(r"[\s\-_.]+", "", text).lower()
    if hemi is None:
        return name
    return f"{hemi.strip()[0].lower()}:{name}"


def _hemisphere_of(label) -> str:
    key = region_key(label)
    return key[0].upper() if ":" in key else "B"


def load_expression(source, *, regions=None, genes=None, label_column=None, info=None,
                    duplicate_genes="error") -> Expression:
    """Load a region x gene expression table.

    Parameters
    ----------
    source : path, LabelledTable, pandas.DataFrame or (N, G) array
        CSV/TSV as abagen (or imaging-transcriptomics) writes it, with a label
        column; HDF5 (``.h5``/``.hdf5``) with datasets ``values``, ``regions``,
        ``genes``; a DataFrame indexed by region with gene columns; or an
        array with ``regions`` and ``genes``.
    regions : (N,) sequence of str, optional
        Region labels for an array source (overrides the file's labels).
    genes : (G,) sequence of str, optional
        Gene names for an array source.
    label_column : str, optional
        Label column of a CSV table (see
        :func:`recouple.io.tables.read_labelled_table`).
    info : path or DataFrame, optional
        Region information with columns ``label`` (and/or ``id``),
        ``hemisphere`` and ``structure`` (abagen's atlas info), matched to the
        table by id or label. Without it, hemispheres come from label prefixes.
    duplicate_genes : {"error", "drop", "first", "mean"}
        Genes named more than once (e.g. spreadsheet-mangled symbols such as
        ``Mar-01`` in tables that went through Excel): raise, drop every copy,
        keep the first column, or average the columns.

    Returns
    -------
    Expression

    Raises
    ------
    InputError
        Duplicated genes or regions, a shape mismatch, non-numeric values.
    """
    from .io.tables import LabelledTable, read_expression_hdf5, read_labelled_table

    ids = None
    if isinstance(source, (str, Path)):
        path = Path(source)
        if path.suffix.lower() in (".h5", ".hdf5"):
            table = read_expression_hdf5(path)
        else:
            table = read_labelled_table(path, label_column=label_column)
        values, reg, gen, ids = table.values, table.labels, table.columns, table.ids
    elif isinstance(source, LabelledTable):
        values, reg, gen, ids = source.values, source.labels, source.columns, source.ids
    elif hasattr(source, "columns") and hasattr(source, "index"):
        values = source.to_numpy(dtype=np.float64)
        reg = np.asarray([str(i) for i in source.index], dtype=str)
        gen = np.asarray([str(c) for c in source.columns], dtype=str)
    else:
        values = as_array("expression", source, ndim=2)
        if regions is None or genes is None:
            raise InputError("expression given as an array must come with regions= and genes=; got "
                             f"regions={'None' if regions is None else 'given'}, genes={'None' if genes is None else 'given'}. "
                             "Pass the region labels and gene names.")
        reg, gen = regions, genes
    if regions is not None:
        reg = regions
    if genes is not None:
        gen = genes
    values = as_array("expression", values, ndim=2).copy()
    reg = np.asarray([str(r) for r in reg], dtype=str)
    gen = np.asarray([str(g) for g in gen], dtype=str)
    if values.shape != (reg.size, gen.size):
        raise ShapeError(f"expression must be (regions, genes) = ({reg.size}, {gen.size}); got {values.shape}. "
                         "Put regions in rows and genes in columns.")
    if np.isinf(values).any():
        raise InputError("expression must not contain infinite values; replace them with NaN (missing) or "
                         "finite numbers.")
    check_choice("duplicate_genes", duplicate_genes, ("error", "drop", "first", "mean"))
    if duplicate_genes == "error":
        _check_unique("genes", gen, "Pass duplicate_genes='drop', 'first' or 'mean', or fix the gene names.")
    else:
        values, gen = _merge_duplicate_genes(values, gen, duplicate_genes)
    keys = np.asarray([region_key(r) for r in reg])
    _check_unique("regions", keys, "Each region must appear once; average duplicated rows first.", shown=reg)
    hemi = np.asarray([_hemisphere_of(r) for r in reg], dtype=str)
    struct = None
    if info is not None:
        hemi, struct = _merge_info(info, reg, ids, hemi)
    return Expression(values=values, regions=reg, genes=gen, hemisphere=hemi, structure=struct)


def _merge_duplicate_genes(values, genes, how):
    uniq, first, inverse, counts = np.unique(genes, return_index=True, return_inverse=True, return_counts=True)
    if (counts == 1).all():
        return values, genes
    order = np.sort(first)  # keep the file's gene order
    if how == "drop":
        keep = order[counts[inverse[order]] == 1]
        return values[:, keep], genes[keep]
    if how == "first":
        return values[:, order], genes[order]
    sums = np.zeros((values.shape[0], uniq.size))
    np.add.at(sums.T, inverse, values.T)
    return (sums / counts)[:, inverse[order]], genes[order]


def from_annotations(maps) -> Expression:
    """Treat parcellated annotation maps (receptor densities, ...) as an
    expression-like table, so :func:`associate` and :func:`enrichment` run
    on them unchanged.

    Parameters
    ----------
    maps : recouple.io.annotations.AnnotationMaps
        From ``parcellate_volume``, ``parcellate_surface`` or
        ``load_annotation_table``.
    """
    return load_expression(np.asarray(maps.values, dtype=np.float64).T, regions=maps.regions, genes=maps.names)


def _check_unique(name, arr, fix, shown=None):
    _, first, counts = np.unique(arr, return_index=True, return_counts=True)
    if (counts > 1).any():
        shown = arr if shown is None else shown
        dup = [str(shown[i]) for i in first[counts > 1]][:5]
        raise InputError(f"expression {name} must be unique; {int((counts > 1).sum())} repeat, e.g. {dup}. {fix}")


def _merge_info(info, regions, ids, hemi):
    import pandas as pd

    df = pd.read_csv(info, encoding="utf-8-sig") if isinstance(info, (str, Path)) else info
    cols = {c.lower(): c for c in df.columns}
    by_id = ids is not None and "id" in cols
    if by_id:
        lookup = {str(v): i for i, v in enumerate(df[cols["id"]].astype(str))}
        keys = [str(v) for v in ids]
    elif "label" in cols:
        hemis = df[cols["hemisphere"]].astype(str) if "hemisphere" in cols else [None] * len(df)
        lookup = {region_key(lab, h): i for i, (lab, h) in enumerate(zip(df[cols["label"]].astype(str), hemis))}
        keys = [region_key(r) for r in regions]
    else:
        raise InputError(f"info must have an 'id' or 'label' column; got columns {list(df.columns)}. "
                         "Pass abagen's atlas info table.")
    rows = [lookup.get(k) for k in keys]
    missing = [str(regions[i]) for i, r in enumerate(rows) if r is None]
    if missing:
        raise InputError(f"info must describe every expression region; {len(missing)} are missing, e.g. "
                         f"{missing[:5]}. Pass the atlas info of the same parcellation.")
    rows = np.asarray(rows)
    if "hemisphere" in cols:
        hemi = df[cols["hemisphere"]].astype(str).str.upper().str[0].to_numpy(dtype=str)[rows]
    struct = df[cols["structure"]].astype(str).to_numpy(dtype=str)[rows] if "structure" in cols else None
    return hemi, struct


@dataclass(frozen=True)
class Alignment:
    """Expression aligned to a map's regions (:func:`align`).

    Attributes
    ----------
    expression : Expression
        Rows in the order of the map's matched regions.
    map_index : (N_kept,) int array
        Positions, in the map's label list, of the regions kept.
    unmatched_map : (U,) str array
        Map labels with no expression row (dropped or NaN-filled).
    unmatched_expression : (V,) str array
        Expression regions no map label names (left out).
    """

    expression: Expression
    map_index: np.ndarray
    unmatched_map: np.ndarray
    unmatched_expression: np.ndarray

    def report(self) -> str:
        """One-paragraph summary of the matching."""
        lines = [f"matched {self.map_index.size} region(s) by label"]
        if self.unmatched_map.size:
            lines.append(f"{self.unmatched_map.size} map region(s) without expression: "
                         f"{', '.join(self.unmatched_map[:8])}{' ...' if self.unmatched_map.size > 8 else ''}")
        if self.unmatched_expression.size:
            lines.append(f"{self.unmatched_expression.size} expression region(s) not in the map: "
                         f"{', '.join(self.unmatched_expression[:8])}"
                         f"{' ...' if self.unmatched_expression.size > 8 else ''}")
        return "; ".join(lines)


def align(expression: Expression, labels, *, hemisphere=None, missing="error") -> Alignment:
    """Match expression rows to a map's region labels (by label, not position).

    Parameters
    ----------
    expression : Expression
    labels : (N,) sequence of str
        The map's region labels, e.g. ENIGMA ``L_bankssts`` or ``bankssts``
        with ``hemisphere``. Matching uses :func:`region_key`, so ``L_``/``R_``
        prefixes, ``lh``/``rh`` forms and case differences are understood.
    hemisphere : (N,) sequence of str, optional
        Hemisphere of each label when labels carry none.
    missing : {"error", "drop"}
        Map regions without expression (or with NaN expression): raise, or
        leave them out (recorded in ``unmatched_map``).

    Returns
    -------
    Alignment
    """
    check_choice("missing", missing, ("error", "drop"))
    labels = np.asarray([str(v) for v in np.atleast_1d(labels)], dtype=str)
    hemis = [None] * labels.size if hemisphere is None else list(np.atleast_1d(hemisphere))
    if len(hemis) != labels.size:
        raise ShapeError(f"hemisphere must have one entry per label ({labels.size}); got {len(hemis)}. "
                         "Pass one hemisphere per region.")
    map_keys = [region_key(lab, h) for lab, h in zip(labels, hemis)]
    _check_unique_labels(labels, map_keys)
    expr_keys = {region_key(r): i for i, r in enumerate(expression.regions)}
    rows, kept, unmatched = [], [], []
    empty = np.isnan(expression.values).all(axis=1)
    for i, key in enumerate(map_keys):
        j = expr_keys.get(key)
        if j is None or empty[j]:
            unmatched.append(labels[i])
        else:
            rows.append(j)
            kept.append(i)
    if unmatched and missing == "error":
        raise InputError(
            f"labels must all have expression; {len(unmatched)} of {labels.size} map region(s) have no expression "
            f"row (or only NaN), e.g. {unmatched[:5]}. Expression regions look like {list(expression.regions[:3])}. "
            "Pass missing='drop' to leave them out, or fix the labels."
        )
    if not rows:
        raise InputError(f"labels must share regions with the expression table; none of {list(labels[:3])} ... matched "
                         f"{list(expression.regions[:3])} .... Check the parcellation and label format.")
    used = set(rows)
    unmatched_expr = np.asarray([r for j, r in enumerate(expression.regions) if j not in used], dtype=str)
    return Alignment(expression=expression.take_regions(np.asarray(rows)), map_index=np.asarray(kept, dtype=np.int64),
                     unmatched_map=np.asarray(unmatched, dtype=str), unmatched_expression=unmatched_expr)


def _check_unique_labels(labels, keys):
    seen = {}
    for lab, key in zip(labels, keys):
        if key in seen:
            raise InputError(f"labels must name each region once; {seen[key]!r} and {lab!r} are the same region. "
                             "Remove the duplicate or add hemisphere prefixes.")
        seen[key] = lab


def select_regions(expression: Expression, *, hemisphere=None, structure=None, drop_missing=False) -> Expression:
    """Keep regions by hemisphere (``"L"``, ``"R"``, ``"B"`` or a list), by
    structure (e.g. ``"cortex"``; needs ``info`` at load time) and, with
    ``drop_missing``, drop regions whose expression has any NaN."""
    keep = np.ones(expression.regions.size, dtype=bool)
    if hemisphere is not None:
        wanted = {str(h).upper()[0] for h in np.atleast_1d(hemisphere)}
        keep &= np.isin(expression.hemisphere, sorted(wanted))
    if structure is not None:
        if expression.structure is None:
            raise InputError("structure selection needs region structures; got an expression table without them. "
                             "Load it with info= (abagen atlas info with a 'structure' column).")
        keep &= np.isin(np.char.lower(expression.structure), [str(s).lower() for s in np.atleast_1d(structure)])
    if drop_missing:
        keep &= ~np.isnan(expression.values).any(axis=1)
    if not keep.any():
        raise InputError(f"the selection must keep at least one region; hemisphere={hemisphere!r}, "
                         f"structure={structure!r} keep none. Check the values.")
    return expression.take_regions(np.flatnonzero(keep))


def filter_genes(expression: Expression, *, stability=None, threshold=None, top_variance=None,
                 drop_constant=True, drop_missing=True) -> Expression:
    """Keep genes by a stability vector, by variance, and drop unusable genes.

    Parameters
    ----------
    stability : (G,) array, optional
        A per-gene score (e.g. abagen differential stability); genes with
        ``stability >= threshold`` are kept.
    threshold : float, optional
        Threshold for ``stability`` (required with it).
    top_variance : int, optional
        Keep the genes with the largest variance across regions.
    drop_constant : bool
        Drop genes with zero variance across regions (their correlation is
        undefined).
    drop_missing : bool
        Drop genes with any NaN across the regions.
    """
    vals = expression.values
    keep = np.ones(vals.shape[1], dtype=bool)
    if drop_missing:
        keep &= ~np.isnan(vals).any(axis=0)
    if drop_constant:
        keep &= ~_constant_columns(vals)
    if stability is not None:
        stab = as_array("stability", stability, ndim=1)
        if stab.size != vals.shape[1]:
            raise ShapeError(f"stability must have one value per gene ({vals.shape[1]}); got {stab.size}. "
                             "Compute it on the same gene list.")
        if threshold is None:
            raise InputError("threshold must be given with stability; got None. Pass e.g. threshold=0.5.")
        keep &= stab >= float(threshold)
    if top_variance is not None:
        top = check_positive_int("top_variance", top_variance)
        var = np.where(keep, np.nanvar(vals, axis=0), -np.inf)
        order = np.argsort(-var, kind="stable")[:top]
        top_mask = np.zeros_like(keep)
        top_mask[order] = True
        keep &= top_mask
    if not keep.any():
        raise InputError("the gene filter must keep at least one gene; every gene was removed. Relax the filter.")
    return expression.take_genes(np.flatnonzero(keep))


def _constant_columns(vals):
    with np.errstate(invalid="ignore"):
        span = np.nanmax(vals, axis=0) - np.nanmin(vals, axis=0)
        scale = np.maximum(np.nanmax(np.abs(vals), axis=0), 1.0)
    return ~(span > 64 * np.finfo(np.float64).eps * scale)


# --------------------------------------------------------------------------- inputs


def _as_expression(expression) -> Expression:
    if isinstance(expression, Expression):
        return expression
    if isinstance(expression, (str, Path)) or hasattr(expression, "columns"):
        return load_expression(expression)
    raise InputError(f"expression must be an Expression (rc.genes.load_expression), a table path or a DataFrame; "
                     f"got {type(expression).__name__}. Load it with rc.genes.load_expression.")


def _prepare(expression, maps, labels, missing, map_names=None):
    """Validate and align: returns (expr (N, G), maps (M, N_map), kept index, names, Expression)."""
    expr = _as_expression(expression)
    y = as_array("maps", maps)
    if y.ndim == 1:
        y = y[None, :]
    if y.ndim != 2:
        raise ShapeError(f"maps must be (N,) or (M, N); got shape {y.shape}. Put maps in rows.")
    if labels is None:
        if y.shape[1] != expr.values.shape[0]:
            raise ShapeError(
                f"maps must have one value per expression region ({expr.values.shape[0]}) when labels are not "
                f"given; got {y.shape[1]}. Pass labels= (the map's region names) to align by label."
            )
        index = np.arange(y.shape[1])
        aligned = expr
        al = None
    else:
        labels = np.atleast_1d(labels)
        if labels.size != y.shape[1]:
            raise ShapeError(f"labels must name each map region ({y.shape[1]}); got {labels.size}. "
                             "Pass the map's region labels in map order.")
        al = align(expr, labels, missing=missing)
        index, aligned = al.map_index, al.expression
    vals = aligned.values
    bad_regions = np.isnan(vals).any(axis=1)
    if bad_regions.any():
        raise InputError(
            f"expression must be complete in the analysed regions; {int(bad_regions.sum())} region(s) have NaN, "
            f"e.g. {list(aligned.regions[bad_regions][:5])}. Use rc.genes.select_regions(expr, drop_missing=True) "
            "or rc.genes.filter_genes(expr, drop_missing=True)."
        )
    const = _constant_columns(vals)
    if const.any():
        raise InputError(
            f"expression genes must vary across the analysed regions; {int(const.sum())} are constant, e.g. "
            f"{list(aligned.genes[const][:5])}. Drop them with rc.genes.filter_genes(expr, drop_constant=True)."
        )
    if np.isnan(y[:, index]).any():
        raise InputError("maps must be finite in the analysed regions; got NaN. Drop those regions from labels "
                         "or fill them.")
    names = np.asarray(map_names if map_names is not None else [f"map{i}" for i in range(y.shape[0])], dtype=str)
    if names.size != y.shape[0]:
        raise ShapeError(f"map_names must name each map ({y.shape[0]}); got {names.size}. Pass one name per map.")
    return vals, y, index, names, aligned, al


SPIN_METHODS = ("spin", "vasa", "hungarian", "alexander_bloch")


def _null_source(nulls, y, *, n_perm, seed, coords, hemi, distance):
    """('index', (K, N) int) | ('maps', (M, K, N) float) | (None, None)."""
    m, n = y.shape
    if nulls is None or (isinstance(nulls, str) and nulls.lower() == "none"):
        return None, None
    if isinstance(nulls, (str, Path)) and str(nulls).lower().endswith(".npy"):
        if not Path(nulls).is_file():
            raise InputError(f"nulls file must exist; got {str(nulls)!r}. Check the path.")
        nulls = np.load(nulls)
    if isinstance(nulls, str):
        kind = nulls.lower()
        check_choice("nulls", kind, ("none", "permutation", "variogram") + SPIN_METHODS)
        n_perm = check_positive_int("n_perm", n_perm)
        if kind == "permutation":
            from .engine.random import permutation_indices

            return "index", permutation_indices(seed, n_perm, n)
        from . import nulls as _nulls

        if kind == "variogram":
            if distance is None:
                raise InputError("nulls='variogram' needs distance; got None. Pass the (N, N) distance matrix, "
                                 "or precomputed surrogates as an array.")
            return "maps", np.stack([np.asarray(_nulls.variogram_surrogates(y[i], distance, n_perm=n_perm, seed=seed))
                                     for i in range(m)])
        if coords is None:
            raise InputError(f"nulls={nulls!r} needs coords; got None. Pass the regions' (N, 3) sphere coordinates "
                             "(and hemi), or precomputed spins as an array.")
        method = "vasa" if kind == "spin" else kind
        return "index", np.asarray(_nulls.spin_permutations(np.asarray(coords, dtype=np.float64), n_perm=n_perm,
                                                            method=method, hemi=hemi, seed=seed))
    arr = np.asarray(getattr(nulls, "indices", nulls))
    if np.issubdtype(arr.dtype, np.integer):
        if arr.ndim != 2 or arr.shape[1] != n:
            raise ShapeError(f"nulls index arrays must be (n_perm, N) with N = {n} (the maps' regions); got "
                             f"{arr.shape}. Transpose (N, n_perm) arrays from neuromaps.")
        if arr.size and (arr.min() < -1 or arr.max() >= n):
            raise InputError(f"nulls index arrays must hold indices in [-1, {n - 1}]; got {arr.min()}..{arr.max()}. "
                             "Use -1 for dropped regions.")
        return "index", arr.astype(np.int64, copy=False)
    arr = as_array("nulls", arr)
    if arr.ndim == 2:
        if m != 1:
            raise ShapeError(f"nulls given as surrogate maps must be (M, K, N) for {m} maps; got {arr.shape}. "
                             "Pass one stack of surrogates per map, or integer indices shared by all maps.")
        arr = arr[None]
    if arr.ndim != 3 or arr.shape[0] != m or arr.shape[2] != n:
        raise ShapeError(f"nulls must be (K, N) indices or surrogates, or (M, K, N) surrogates, with N = {n}, "
                         f"M = {m}; got {arr.shape}. Orient nulls one per row (transpose neuromaps' (N, K)).")
    return "maps", arr


def resolve_nulls(nulls, maps, *, n_perm=1000, seed=None, coords=None, hemi=None, distance=None):
    """Null maps for each map: ``(M, K, N)`` float array, or ``None``.

    Parameters
    ----------
    nulls : None, "none", "permutation", "spin", "vasa", "hungarian", "alexander_bloch", "variogram", ``.npy`` path or array
        Arrays are ``(K, N)`` integer indices (applied to every map; -1 drops
        an entry, giving NaN) or float surrogate maps ``(K, N)`` (one map) /
        ``(M, K, N)``. ``"permutation"`` draws spatially naive permutations
        (:func:`recouple.engine.random.permutation_indices`); spin names call
        :func:`recouple.nulls.spin_permutations` (``"spin"`` = Váša) and need
        ``coords`` (and ``hemi``); ``"variogram"`` calls
        :func:`recouple.nulls.variogram_surrogates` and needs ``distance``.
    maps : (M, N) array
        The maps the nulls belong to, in the maps' own region order.
    """
    y = np.atleast_2d(np.asarray(maps, dtype=np.float64))
    kind, arr = _null_source(nulls, y, n_perm=n_perm, seed=seed, coords=coords, hemi=hemi, distance=distance)
    if kind is None:
        return None
    if kind == "index":
        from .nulls import null_maps

        return np.stack([null_maps(y[i], arr) for i in range(y.shape[0])])
    return arr


# --------------------------------------------------------------------------- association


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

    def ranked(self, map=0) -> dict:
        """Genes ranked by r (highest first) for one map: dict of columns."""
        i = _map_position(self.maps, map)
        order = np.argsort(-np.nan_to_num(self.r[i], nan=-np.inf), kind="stable")
        cols = {"rank": np.arange(1, order.size + 1), "gene": self.genes[order], "r": self.r[i][order]}
        for key in ("pvalue", "pvalue_fdr", "pvalue_fwer"):
            val = getattr(self, key)
            if val is not None:
                cols[key] = val[i][order]
        return cols

    def write_rnk(self, path, map=0):
        """Write a GSEA pre-ranked list (gene, r) for one map."""
        from .io.tables import write_rnk

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
              n_perm=1000, seed=None, coords=None, hemi=None, distance=None, missing="error",
              map_names=None, batch_size=None, progress=False, backend=None) -> GeneAssociation:
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
    nulls : see :func:`resolve_nulls`
        Nulls of the maps (not of the genes: correlating a spun map with the
        genes equals correlating the map with spun genes).
    method : {"spearman", "pearson"}
    alternative : {"two-sided", "greater", "less"}
    n_perm, seed, coords, hemi, distance
        For nulls drawn by name.
    missing : {"error", "drop"}
        Map regions without expression (see :func:`align`).
    map_names : (M,) sequence of str, optional
    batch_size : int, optional
        Null maps per matrix product (planned from memory by default).

    Returns
    -------
    GeneAssociation

    progress : bool
        Progress bar on stderr.

    Notes
    -----
    Runs :func:`recouple.nulls.associate`: r for all genes is one product of
    standardised (ranked) rows and the null one (K x N) @ (N x G) product
    per batch of null maps (METHODS 5.2); p-values with the +1 convention
    (floor ``1/(n_perm+1)``), BH-FDR across genes, FWER by the maximum
    statistic across genes. Null maps with dropped entries (NaN) use
    pairwise-complete correlation.
    """
    check_choice("method", method, METHODS)
    check_choice("alternative", alternative, ALTERNATIVES)
    vals, y, index, names, aligned, _ = _prepare(expression, maps, labels, missing, map_names)
    genes_t = np.ascontiguousarray(vals.T)
    y_used = y[:, index]
    kind, source = _null_source(nulls, y, n_perm=n_perm, seed=seed, coords=coords, hemi=hemi, distance=distance)
    if kind is None:
        r = call_kernel(_ks.correlate, y_used, genes_t, backend=backend, static={"method": method})
        return GeneAssociation(r=r, pvalue=None, pvalue_fdr=None, pvalue_fwer=None, genes=aligned.genes,
                               maps=names, regions=aligned.regions, params={"method": method})
    from . import nulls as _nulls

    if kind == "index" and np.array_equal(index, np.arange(y.shape[1])):
        spec = source  # spins over exactly the analysed regions: ranks are computed once
    else:
        spec = resolve_nulls(source, y)[:, :, index]
    res = _nulls.associate(y_used, genes_t, nulls=spec, method=method, alternative=alternative,
                           batch_size=batch_size, progress=progress, backend=backend)
    return GeneAssociation(r=res.r, pvalue=res.pvalue, pvalue_fdr=res.pvalue_fdr, pvalue_fwer=res.pvalue_fwer,
                           genes=aligned.genes, maps=names, regions=aligned.regions, n_perm=int(res.n_perm),
                           params={"method": method, "alternative": alternative, "seed": seed})


# --------------------------------------------------------------------------- PLS


@dataclass(frozen=True)
class PLSResult:
    """SIMPLS PLS regression of maps on gene expression (:func:`pls`).

    Attributes
    ----------
    weights : (G, C) float array
        Gene weights (MATLAB ``stats.W``, pyls ``x_weights``): scores are
        z-scored expression (centred) times weights.
    scores : (N, C) float array
        Regional component scores (unit norm, mutually orthogonal).
    loadings : (G, C) float array
        x-loadings ``X0ᵀ T``.
    y_loadings : (M, C) float array
        ``Y0ᵀ T``.
    var_explained : (C,) float array
        Fraction of the (z-scored) maps' variance explained by each component.
    var_explained_x : (C,) float array
        Fraction of the expression variance explained by each component.
    pvalue : (C,) float array or None
        Permutation/spin p of the cumulative variance explained by components
        1..c (+1 convention), ``None`` without nulls.
    null_var_explained : (K, C) float array or None
        Cumulative variance explained of each null map.
    se, zscores : (G, C) float arrays or None
        Bootstrap standard errors (ddof=1) of the weights and ``weights / se``;
        ``None`` when ``n_boot == 0``.
    genes : (G,) str array
    regions : (N,) str array
    maps : (M,) str array
    params : dict

    Notes
    -----
    Sign convention: each component is oriented so that its scores correlate
    positively with the map (with several maps: the sum of ``y_loadings`` is
    non-negative), so genes with positive weights are expressed more where
    the map is high.
    """

    weights: np.ndarray
    scores: np.ndarray
    loadings: np.ndarray
    y_loadings: np.ndarray
    var_explained: np.ndarray
    var_explained_x: np.ndarray
    pvalue: np.ndarray | None
    null_var_explained: np.ndarray | None
    se: np.ndarray | None
    zscores: np.ndarray | None
    genes: np.ndarray
    regions: np.ndarray
    maps: np.ndarray
    params: dict = field(default_factory=dict)

    def ranked(self, component=0) -> dict:
        """Genes ranked by bootstrap Z (or by weight without bootstrap), highest first."""
        key = self.zscores if self.zscores is not None else self.weights
        order = np.argsort(-np.nan_to_num(key[:, component], nan=-np.inf), kind="stable")
        cols = {"rank": np.arange(1, order.size + 1), "gene": self.genes[order],
                "weight": self.weights[order, component]}
        if self.zscores is not None:
            from scipy.stats import norm

            z = self.zscores[order, component]
            p = 2 * norm.sf(np.abs(z))
            cols.update({"se": self.se[order, component], "z": z, "pvalue": p,
                         "pvalue_fdr": call_kernel(_ks.fdr_bh, p, static={"axis": -1})})
        return cols

    def write_rnk(self, path, component=0):
        """Write a GSEA pre-ranked list (gene, Z or weight) for one component."""
        from .io.tables import write_rnk

        key = self.zscores if self.zscores is not None else self.weights
        return write_rnk(path, self.genes, key[:, component])


def pls(expression, maps, *, n_components=1, n_boot=0, nulls=None, seed=None, bootstrap=None, labels=None,
        n_perm=1000, coords=None, hemi=None, distance=None, missing="error", map_names=None,
        batch_size=None, backend=None, progress=None) -> PLSResult:
    """PLS regression (SIMPLS) of brain maps on regional gene expression.

    Parameters
    ----------
    expression : Expression, path or DataFrame
        Regions x genes; z-scored per gene (ddof=1) before fitting.
    maps : (N,) or (M, N) array
        Response map(s), z-scored per map; several maps are fitted jointly.
    n_components : int
        Components to extract.
    n_boot : int
        Bootstrap resamples of regions (with replacement) for the standard
        errors of the gene weights; 0 skips the bootstrap.
    nulls : see :func:`resolve_nulls`
        Nulls of the maps for the variance-explained p-value; ``None`` skips it.
    seed : int, optional
        Seed of the bootstrap draws (and of nulls drawn by name).
    bootstrap : (n_boot, N) int array, optional
        Precomputed bootstrap indices (rows of regions drawn with
        replacement) over the analysed regions; overrides ``n_boot``/``seed``.
        Default: :func:`recouple.engine.random.bootstrap_indices`.
    labels, missing, map_names
        Alignment by label (see :func:`associate`).
    n_perm, coords, hemi, distance
        For nulls drawn by name.
    batch_size : int, optional
        Resamples (bootstrap) or null maps per batch.
    progress : callable, optional
        ``progress(done, total)`` called after each bootstrap batch.

    Returns
    -------
    PLSResult

    Notes
    -----
    SIMPLS as MATLAB ``plsregress``/pyls (Whitaker et al. 2016; Morgan et
    al. 2019). The bootstrap refits the model to resampled regions (data
    z-scored once, centred per resample) with resamples as count weights:
    each component costs two matrix products for the whole batch (METHODS
    5.3); each resample's component is sign-aligned with the original by
    the sign of their correlation; ``se`` is the standard deviation over
    resamples and ``zscores = weights / se``. Components are not reordered.
    The variance-explained null for one map uses the region Gram matrix
    (one product per component for all nulls); several maps refit SIMPLS
    per null, batched.

    References
    ----------
    de Jong S. SIMPLS. Chemometr Intell Lab Syst 1993;18:251-263.
    Whitaker KJ et al. PNAS 2016;113:9105-9110.
    """
    n_components = check_positive_int("n_components", n_components)
    n_boot = check_positive_int("n_boot", n_boot, minimum=0)
    vals, y, index, names, aligned, _ = _prepare(expression, maps, labels, missing, map_names)
    n, g = vals.shape
    if n_components > n - 1:
        raise InputError(f"n_components must be at most N - 1 = {n - 1} (regions); got {n_components}. "
                         "Ask for fewer components.")
    X = call_kernel(_ks.zscore, vals, backend=backend, static={"axis": 0, "ddof": 1})
    Y = call_kernel(_ks.zscore, y[:, index], backend=backend, static={"axis": -1, "ddof": 1})
    if np.isnan(Y).any():
        raise InputError("maps must vary across the analysed regions; got a constant map. Remove it.")
    Ycols = np.ascontiguousarray(Y.T)  # (N, M)
    A = call_kernel(_kg.gram, X, backend=backend)
    fit = call_kernel(_kg.simpls, X, Ycols[None], backend=backend, static={"n_components": n_components})
    fit = {k: v[0] for k, v in fit.items()}
    weights = fit["x_weights"]

    pvalue = null_ve = None
    null = resolve_nulls(nulls, y, n_perm=n_perm, seed=seed, coords=coords, hemi=hemi, distance=distance)
    if null is not None:
        null = null[:, :, index]
        null_ve = _pls_null(A, null, n_components, batch_size, backend)
        observed = np.cumsum(fit["varexp_y"])
        pvalue = call_kernel(_ks.permutation_pvalue, observed, null_ve, backend=backend,
                             static={"alternative": "greater", "axis": 0, "plus_one": True})

    se = z = None
    if bootstrap is not None or n_boot > 0:
        if bootstrap is None:
            from .engine.random import bootstrap_indices

            bootstrap = bootstrap_indices(seed, n_boot, n)
        boot = np.asarray(bootstrap)
        if boot.ndim != 2 or boot.shape[1] != n or not np.issubdtype(boot.dtype, np.integer):
            raise ShapeError(f"bootstrap must be (n_boot, N) integer indices with N = {n} regions; got "
                             f"{boot.shape} {boot.dtype}. Draw them with recouple.engine.random.bootstrap_indices.")
        if boot.shape[0] < 2 or boot.min() < 0 or boot.max() >= n:
            raise InputError(f"bootstrap must hold at least 2 resamples of indices in [0, {n - 1}]; got "
                             f"{boot.shape[0]} resample(s), values {boot.min()}..{boot.max()}. Redraw them.")
        se = _bootstrap_se(X, A, Ycols, boot, weights, n_components, batch_size, backend, progress)
        with np.errstate(divide="ignore", invalid="ignore"):
            z = weights / se
        n_boot = boot.shape[0]
    return PLSResult(
        weights=weights, scores=fit["x_scores"], loadings=fit["x_loadings"], y_loadings=fit["y_loadings"],
        var_explained=fit["varexp_y"], var_explained_x=fit["varexp_x"], pvalue=pvalue, null_var_explained=null_ve,
        se=se, zscores=z, genes=aligned.genes, regions=aligned.regions, maps=names,
        params={"n_components": n_components, "n_boot": n_boot, "seed": seed,
                "n_perm": 0 if null is None else int(null.shape[1])},
    )


def _pls_null(A, null, n_components, batch_size, backend):
    """(K, C) cumulative variance explained of null maps (NaN rows stay NaN)."""
    m, k, n = null.shape
    out = np.full((k, n_components), np.nan)
    rows = np.flatnonzero(~np.isnan(null).any(axis=(0, 2)))
    # each null map is standardised like the observed maps (matters with several maps)
    null = (null - null.mean(axis=2, keepdims=True)) / null.std(axis=2, ddof=1, keepdims=True)
    step = batch_size or 4096
    Yn = np.ascontiguousarray(np.transpose(null, (1, 2, 0)))  # (K, N, M)
    for s in range(0, rows.size, step):
        sel = rows[s:s + step]
        if m == 1:
            out[sel] = call_kernel(_kg.pls1_null_varexp, A, null[0, sel], backend=backend,
                                   static={"n_components": n_components})
        else:
            res = call_kernel(_kg.simpls_dual, A, Yn[sel], backend=backend, static={"n_components": n_components})
            out[sel] = np.cumsum(res["varexp_y"], axis=-1)
    return out


def _bootstrap_se(X, A, Ycols, boot, reference, n_components, batch_size, backend, progress):
    """Bootstrap SE of the weights (ddof=1). Resamples run in batches in the
    region representation; batch moments combine with Chan's formula."""
    nb, n = boot.shape
    counts = np.zeros((nb, n))
    np.add.at(counts, (np.repeat(np.arange(nb), n), boot.ravel()), 1.0)
    ref_proj = X @ (reference - reference.mean(axis=0))
    step = batch_size or 1000
    total, mean, scatter = 0, np.zeros((n, n_components)), np.zeros((n_components, n, n))
    for s in range(0, nb, step):
        c = counts[s:s + step]
        b_mean, b_scatter = call_kernel(_kg.pls_bootstrap_moments, A, Ycols, c, ref_proj, backend=backend,
                                        static={"n_components": n_components})
        nb_b = c.shape[0]
        delta = b_mean - mean
        tot = total + nb_b
        mean = mean + delta * (nb_b / tot)
        scatter = scatter + b_scatter + np.einsum("nc,mc->cnm", delta, delta) * (total * nb_b / tot)
        total = tot
        if progress is not None:
            progress(total, nb)
    m2 = call_kernel(_kg.gene_quadratic_form, X, scatter, backend=backend)
    return np.sqrt(np.maximum(m2, 0.0) / (total - 1))


# --------------------------------------------------------------------------- enrichment


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
        Categories left out, with the reason (size limits).
    null_type : str
    n_perm : int
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

    def ranked(self) -> dict:
        """Categories ordered by p-value, then by score (strongest first)."""
        order = np.lexsort((-self.score, self.pvalue))
        return {"rank": np.arange(1, order.size + 1), "category": self.categories[order],
                "size": self.sizes[order], "score": self.score[order], "zscore": self.zscore[order],
                "pvalue": self.pvalue[order], "pvalue_fdr": self.pvalue_fdr[order]}


def load_gene_sets(source) -> dict[str, list[str]]:
    """Gene sets from a GMT path or a ``{name: genes}`` mapping."""
    if isinstance(source, (str, Path)):
        from .io.tables import read_gmt

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
               aggregate="mean", alternative="greater", min_size=10, max_size=200, n_perm=1000, seed=None,
               coords=None, hemi=None, distance=None, missing="error", batch_size=None,
               backend=None) -> EnrichmentResult:
    """Gene-category enrichment of a brain map with ensemble nulls (Fulcher 2021).

    Parameters
    ----------
    map : (N,) array
        The phenotype map.
    expression : Expression, path or DataFrame
    gene_sets : GMT path or dict of name -> genes
    nulls : see :func:`resolve_nulls`
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
    min_size, max_size : int
        Category size limits after restricting to genes in the table.

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
    check_choice("alternative", alternative, ALTERNATIVES)
    check_choice("null_type", null_type, ("spatial", "random-genes"))
    y = as_array("map", map)
    if y.ndim != 1:
        raise ShapeError(f"map must be one map (N,); got shape {y.shape}. Run one enrichment per map.")
    min_size = check_positive_int("min_size", min_size)
    vals, y2, index, _, aligned, _ = _prepare(expression, y, labels, missing)
    mem, names, sizes, dropped = membership_matrix(gene_sets, aligned.genes, min_size=min_size, max_size=max_size)
    if names.size == 0:
        raise InputError(f"gene_sets must have at least one category with {min_size}..{max_size} genes present in "
                         f"the expression table; none has ({len(dropped)} dropped, e.g. "
                         f"{list(dropped.items())[:2]}). Check gene symbols or relax min_size/max_size.")
    genes_t = np.ascontiguousarray(vals.T)
    static = {"method": method}
    profiles = call_kernel(_kg.category_profiles, genes_t, mem, backend=backend, static=static)
    observed_map = y2[:, index]
    gene_scores = call_kernel(_ks.correlate, observed_map[0], genes_t, backend=backend, static=static)
    score = call_kernel(_kg.category_scores, observed_map, genes_t, mem, profiles, backend=backend,
                        static={**static, "aggregate": aggregate})[0]
    if null_type == "random-genes":
        from .engine.random import permutation_indices

        perms = permutation_indices(seed, check_positive_int("n_perm", n_perm), genes_t.shape[0],
                                    purpose="gene-permutation")
        null_scores = call_kernel(_kg.gene_label_null_scores, gene_scores, perms, mem, backend=backend,
                                  static={"aggregate": aggregate})
    else:
        if nulls is None or (isinstance(nulls, str) and nulls.lower() == "none"):
            raise InputError("nulls must be given for spatial enrichment; got None. Pass spins/surrogates "
                             "(an array or 'spin'), or null_type='random-genes'.")
        null = resolve_nulls(nulls, y2, n_perm=n_perm, seed=seed, coords=coords, hemi=hemi,
                             distance=distance)[0][:, index]
        null = null[~np.isnan(null).any(axis=1)]
        if null.shape[0] == 0:
            raise InputError("nulls must include complete null maps; every null map has NaN in the analysed "
                             "regions. Use nulls without dropped regions.")
        step = batch_size or (null.shape[0] if aggregate == "mean" else 256)
        null_scores = np.concatenate([
            call_kernel(_kg.category_scores, null[s:s + step], genes_t, mem, profiles, backend=backend,
                        static={**static, "aggregate": aggregate})
            for s in range(0, null.shape[0], step)])
    p = call_kernel(_ks.permutation_pvalue, score, null_scores, backend=backend,
                    static={"alternative": alternative, "axis": 0, "plus_one": True})
    q = call_kernel(_ks.fdr_bh, p, backend=backend, static={"axis": -1})
    mu = null_scores.mean(axis=0)
    sd = null_scores.std(axis=0, ddof=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = (score - mu) / sd
    return EnrichmentResult(categories=names, sizes=sizes, score=score, pvalue=p, pvalue_fdr=q, null_mean=mu,
                            null_std=sd, zscore=z, gene_scores=gene_scores, genes=aligned.genes, dropped=dropped,
                            null_type=null_type, n_perm=int(null_scores.shape[0]))
