"""Plain-text tables used by imaging transcriptomics: region x gene expression
as abagen writes it (CSV with a label column), label-indexed map tables, GMT
gene sets, and ranked gene lists (``.rnk``) for external enrichment tools.

Readers return plain NumPy arrays and string arrays; nothing here knows about
backends or statistics.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import pandas as pd

from ..exceptions import InputError

__all__ = [
    "LabelledTable",
    "read_labelled_table",
    "read_expression_hdf5",
    "read_gmt",
    "write_gmt",
    "write_rnk",
    "write_table",
]

# Column names that hold region names (strings) or numeric region ids.
NAME_COLUMNS = ("region", "name", "label_name", "structure_name", "regions")
ID_COLUMNS = ("label", "id", "label_id", "index", "parcel", "unnamed: 0")


@dataclass(frozen=True)
class LabelledTable:
    """A numeric table indexed by region labels.

    Attributes
    ----------
    values : (N, P) float array
        One row per region, one column per gene or map.
    labels : (N,) str array
        Region labels (names when the file has a name column, else ids).
    columns : (P,) str array
        Column names (genes or maps) as written, repeats included.
    ids : (N,) str array or None
        Numeric region ids when the file has both an id and a name column.
    """

    values: np.ndarray
    labels: np.ndarray
    columns: np.ndarray
    ids: np.ndarray | None = None


def _sep_for(path: Path) -> str:
    return "\t" if path.suffix.lower() in (".tsv", ".txt") else ","


def read_labelled_table(path, *, label_column: str | None = None) -> LabelledTable:
    """Read a CSV/TSV table with a region-label column and numeric columns.

    Parameters
    ----------
    path : str or Path
        abagen ``get_expression_data(...).to_csv()`` output (first column
        ``label``), the imaging-transcriptomics table (``label, Region,
        <genes>``), or any table with one label column and numeric columns.
    label_column : str, optional
        Column holding region labels. By default a name column (``Region``,
        ``name``, ...) is preferred over an id column (``label``, ``id``);
        the other one is kept in ``ids``.

    Returns
    -------
    LabelledTable
        Empty cells become NaN.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"table path must be an existing file; got {str(path)!r}. Check the path.")
    try:
        df = pd.read_csv(path, sep=_sep_for(path), encoding="utf-8-sig", low_memory=False)
    except Exception as exc:
        raise InputError(f"{path.name} must be a readable CSV/TSV table; reading failed with {exc}. "
                         "Write it with pandas DataFrame.to_csv.") from exc
    header = _raw_header(path)
    if len(header) == df.shape[1]:
        df.columns = range(df.shape[1])
        names = dict(zip(range(df.shape[1]), header))
    else:
        names = {c: str(c) for c in df.columns}
    lower = {}
    for c in df.columns:
        lower.setdefault(names[c].lower(), c)
    if label_column is not None:
        by_name = {v: k for k, v in reversed(list(names.items()))}
        if label_column not in by_name:
            raise InputError(f"label_column must name a column of {path.name}; got {label_column!r}, "
                             f"columns start with {header[:5]}. Pass one of those.")
        name_col = by_name[label_column]
    else:
        name_col = next((lower[k] for k in NAME_COLUMNS if k in lower), None)
        if name_col is None:
            name_col = next((lower[k] for k in ID_COLUMNS if k in lower), df.columns[0])
    id_col = next((lower[k] for k in ID_COLUMNS if k in lower and lower[k] != name_col), None)
    non_numeric = [names[c] for c in df.columns
                   if c not in (name_col, id_col) and not pd.api.types.is_numeric_dtype(df[c])]
    if non_numeric:
        raise InputError(
            f"{path.name} must hold one label column and numeric columns; columns {non_numeric[:5]} are not "
            f"numeric. Pass label_column= or remove the extra text columns."
        )
    value_cols = [c for c in df.columns if c not in (name_col, id_col)]
    labels = df[name_col].astype(str).str.strip().to_numpy(dtype=str)
    ids = None if id_col is None else df[id_col].astype(str).to_numpy(dtype=str)
    values = df[value_cols].to_numpy(dtype=np.float64)
    return LabelledTable(values=values, labels=labels, columns=np.asarray([names[c] for c in value_cols], dtype=str),
                         ids=ids)


def _raw_header(path: Path) -> list[str]:
    # pandas renames repeated columns ("A", "A.1"); keep the names as written so
    # that repeated genes can be reported and handled by the caller
    with open(path, encoding="utf-8-sig", newline="") as fh:
        return [h.strip() for h in next(csv.reader(fh, delimiter=_sep_for(path)), [])]


def read_expression_hdf5(path, *, group: str = "/") -> LabelledTable:
    """Read expression from HDF5: datasets ``values`` (N, G), ``regions`` (N,)
    and ``genes`` (G,) under ``group``."""
    path = Path(path)
    with h5py.File(path, "r") as fh:
        grp = fh[group]
        missing = [k for k in ("values", "regions", "genes") if k not in grp]
        if missing:
            raise InputError(f"{path.name}:{group} must hold datasets values, regions and genes; missing "
                             f"{missing}. Write them with h5py (strings as UTF-8).")
        values = np.asarray(grp["values"][()], dtype=np.float64)
        regions = np.asarray([_decode(v) for v in grp["regions"][()]], dtype=str)
        genes = np.asarray([_decode(v) for v in grp["genes"][()]], dtype=str)
    return LabelledTable(values=values, labels=regions, columns=genes)


def _decode(v):
    return v.decode() if isinstance(v, bytes) else str(v)


def read_gmt(path) -> dict[str, list[str]]:
    """Gene sets from a GMT file: ``name <TAB> description <TAB> gene <TAB> gene ...``.

    Returns ``{name: [genes]}`` in file order; empty fields and duplicate genes
    within a set are dropped; a repeated set name is an error.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"gene_sets path must be an existing GMT file; got {str(path)!r}. Check the path.")
    sets: dict[str, list[str]] = {}
    with open(path, encoding="utf-8-sig") as fh:
        for lineno, line in enumerate(fh, 1):
            line = line.rstrip("\r\n")
            if not line.strip():
                continue
            fields = line.split("\t")
            if len(fields) < 3:
                raise InputError(f"{path.name} line {lineno} must have a name, a description and genes separated "
                                 f"by tabs; got {len(fields)} field(s). Use tabs, not spaces.")
            name = fields[0].strip()
            if name in sets:
                raise InputError(f"{path.name} must name each gene set once; {name!r} repeats at line {lineno}. "
                                 "Rename or merge the sets.")
            genes = list(dict.fromkeys(g.strip() for g in fields[2:] if g.strip()))
            sets[name] = genes
    return sets


def write_gmt(path, gene_sets: dict, *, description: str = "NA") -> Path:
    """Write ``{name: genes}`` as a GMT file."""
    path = Path(path)
    with open(path, "w", encoding="utf-8") as fh:
        for name, genes in gene_sets.items():
            fh.write("\t".join([str(name), description, *map(str, genes)]) + "\n")
    return path


def write_rnk(path, genes, scores) -> Path:
    """Write a pre-ranked gene list (GSEA ``.rnk``): ``gene <TAB> score``,
    highest score first, genes with NaN scores left out."""
    genes = np.asarray(genes, dtype=str)
    scores = np.asarray(scores, dtype=np.float64)
    if genes.shape != scores.shape:
        raise InputError(f"genes and scores must have the same length; got {genes.shape} and {scores.shape}. "
                         "Pass one score per gene.")
    ok = ~np.isnan(scores)
    order = np.argsort(-scores[ok], kind="stable")
    path = Path(path)
    with open(path, "w", encoding="utf-8") as fh:
        for g, s in zip(genes[ok][order], scores[ok][order]):
            fh.write(f"{g}\t{s:.10g}\n")
    return path


def write_table(path, columns: dict) -> Path:
    """Write named columns of equal length as CSV (TSV for ``.tsv``), atomically."""
    path = Path(path)
    tmp = path.with_name(path.name + ".part")
    pd.DataFrame(columns).to_csv(tmp, sep=_sep_for(path), index=False, float_format="%.10g")
    os.replace(tmp, path)
    return path
