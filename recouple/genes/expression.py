"""Regional gene expression: region x gene tables (abagen CSV, HDF5,
DataFrames, arrays, annotation maps), matched to a map's regions by label,
never by position; region and gene selection.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from ..exceptions import InputError, ShapeError
from ..io.surfaces import region_key
from ..io.tables import LabelledTable, read_expression_hdf5, read_labelled_table
from ..validation import as_array, check_choice, check_positive_int, frame_values

__all__ = ["Expression", "Alignment", "load_expression", "from_annotations", "region_key", "align",
           "select_regions", "filter_genes", "METHODS"]

METHODS = ("spearman", "pearson")


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
        values = frame_values("expression", source)
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
        _check_unique("genes", gen, "Pass duplicate_genes='drop', 'first' or 'mean' (on the command line: "
                      "--duplicate-genes drop, first or mean; in a study file: [association] duplicate_genes = "
                      "\"drop\"), or fix the gene names.")
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


def _as_expression(expression, duplicate_genes="error") -> Expression:
    if isinstance(expression, Expression):
        return expression
    if isinstance(expression, (str, Path)) or hasattr(expression, "columns"):
        return load_expression(expression, duplicate_genes=duplicate_genes)
    raise InputError(f"expression must be an Expression (rc.genes.load_expression), a table path or a DataFrame; "
                     f"got {type(expression).__name__}. Load it with rc.genes.load_expression.")


def _prepare(expression, maps, labels, missing, map_names=None, duplicate_genes="error"):
    """Validate and align: returns (expr (N, G), maps (M, N_map), kept index, names, Expression)."""
    expr = _as_expression(expression, duplicate_genes)
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


