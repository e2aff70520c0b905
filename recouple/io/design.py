"""Design matrices and contrasts: FSL ``design.mat`` / ``design.con`` files and
a small formula-like spec over a scans table (``"coupling ~ group + age + sex"``).

Categorical columns (strings, booleans, pandas categoricals, or terms written
``C(name)``) get treatment coding with the first level (sorted) as reference;
the column for level ``L`` of ``name`` is called ``name[T.L]`` (as in
patsy/statsmodels). An intercept is added unless the spec has ``- 1`` or ``0 +``.
``a:b`` adds the product of the coded columns of ``a`` and ``b``; ``a*b`` adds
``a + b + a:b``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..exceptions import InputError, ShapeError


@dataclass(frozen=True)
class DesignMatrix:
    """A design matrix with named columns.

    Attributes
    ----------
    matrix : (n, p) float64
    columns : tuple of p column names
    response : name of the left-hand side of the spec, or None
    """

    matrix: np.ndarray
    columns: tuple
    response: str | None = None

    def contrast(self, spec) -> np.ndarray:
        """Contrast vector ``(p,)`` from a column name or ``{name: weight}``.

        >>> dm = DesignMatrix(np.ones((3, 2)), ("Intercept", "age"))
        >>> dm.contrast("age").tolist()
        [0.0, 1.0]
        """
        weights = {spec: 1.0} if isinstance(spec, str) else dict(spec)
        c = np.zeros(len(self.columns))
        for name, w in weights.items():
            if name not in self.columns:
                raise InputError(
                    f"contrast names must be design columns {list(self.columns)}; got {name!r}. "
                    "Use one of those names (categorical levels read name[T.level])."
                )
            c[self.columns.index(name)] = float(w)
        return c


def _read_vest(path: Path, what: str) -> tuple[np.ndarray, dict]:
    """FSL VEST text: ``/Key value`` header lines, then ``/Matrix`` rows."""
    try:
        lines = Path(path).read_text().splitlines()
    except OSError as exc:
        raise InputError(f"{what} must be a readable FSL file; got {str(path)!r} ({exc}). Check the path.") from exc
    header = {}
    rows = []
    in_matrix = False
    for line in lines:
        text = line.strip()
        if not text:
            continue
        if text.startswith("/"):
            if text.lower().startswith("/matrix"):
                in_matrix = True
                continue
            parts = text[1:].split(None, 1)
            header[parts[0]] = parts[1] if len(parts) > 1 else ""
            continue
        if in_matrix or not header:
            try:
                rows.append([float(v) for v in text.split()])
            except ValueError as exc:
                raise InputError(
                    f"{what} must hold numbers after /Matrix; got line {text!r} in {path}. Fix or regenerate the "
                    "file (e.g. with FSL Text2Vest)."
                ) from exc
    if not rows:
        raise InputError(f"{what} must contain a /Matrix block with at least one row; found none in {path}.")
    widths = {len(r) for r in rows}
    if len(widths) != 1:
        raise ShapeError(f"{what} must have the same number of values on every row; got widths {sorted(widths)} in "
                         f"{path}.")
    return np.array(rows, dtype=np.float64), header


def read_fsl_design(path) -> np.ndarray:
    """Read an FSL ``design.mat`` (VEST) file: ``(n_scans, n_regressors)``.

    Checks ``/NumPoints`` and ``/NumWaves`` when present. A file of bare
    numbers (no header) is read as the matrix.
    """
    mat, header = _read_vest(path, "design")
    for key, axis in (("NumPoints", 0), ("NumWaves", 1)):
        if key in header and int(float(header[key])) != mat.shape[axis]:
            raise ShapeError(f"design /{key} says {header[key]} but the matrix has {mat.shape[axis]} "
                             f"{'rows' if axis == 0 else 'columns'} in {path}. Fix the header or the matrix.")
    return mat


def read_fsl_contrasts(path) -> tuple[list[str], np.ndarray]:
    """Read an FSL ``design.con`` file: contrast names and ``(n_contrasts, n_regressors)`` weights."""
    mat, header = _read_vest(path, "contrast")
    names = []
    for i in range(mat.shape[0]):
        names.append(header.get(f"ContrastName{i + 1}", f"c{i + 1}").strip())
    if "NumContrasts" in header and int(float(header["NumContrasts"])) != mat.shape[0]:
        raise ShapeError(f"contrast /NumContrasts says {header['NumContrasts']} but there are {mat.shape[0]} rows in "
                         f"{path}.")
    return names, mat


def write_fsl_design(path, matrix) -> None:
    """Write ``matrix`` (n, p) as an FSL ``design.mat``."""
    m = np.atleast_2d(np.asarray(matrix, dtype=np.float64))
    body = "\n".join(" ".join(f"{v:.10g}" for v in row) for row in m)
    Path(path).write_text(f"/NumWaves\t{m.shape[1]}\n/NumPoints\t{m.shape[0]}\n/Matrix\n{body}\n")


def write_fsl_contrasts(path, contrasts, names=None) -> None:
    """Write contrasts (c, p) as an FSL ``design.con``."""
    c = np.atleast_2d(np.asarray(contrasts, dtype=np.float64))
    names = names or [f"c{i + 1}" for i in range(c.shape[0])]
    head = "".join(f"/ContrastName{i + 1}\t{nm}\n" for i, nm in enumerate(names))
    body = "\n".join(" ".join(f"{v:.10g}" for v in row) for row in c)
    Path(path).write_text(f"{head}/NumWaves\t{c.shape[1]}\n/NumContrasts\t{c.shape[0]}\n/Matrix\n{body}\n")


def read_contrast_text(text: str, n_columns: int) -> np.ndarray:
    """Contrast(s) from text ``"1 0 -1"`` or ``"1,0,0;0,1,0"`` (rows split by ``;``)."""
    rows = []
    for part in text.split(";"):
        vals = [v for v in re.split(r"[,\s]+", part.strip()) if v]
        try:
            rows.append([float(v) for v in vals])
        except ValueError as exc:
            raise InputError(f"contrast must be numbers like '1 0 -1' or '1,0;0,1'; got {text!r}.") from exc
    c = np.array(rows)
    if c.shape[1] != n_columns:
        raise ShapeError(f"contrast must have one weight per design column ({n_columns}); got {c.shape[1]} in "
                         f"{text!r}. Match the design columns.")
    return c


def _table(scans):
    if isinstance(scans, pd.DataFrame):
        return scans
    try:
        return pd.DataFrame(dict(scans))
    except Exception as exc:
        raise InputError(f"scans must be a pandas DataFrame or a dict of equal-length columns; got "
                         f"{type(scans).__name__} ({exc}).") from exc


def _code(table, term: str):
    """Coded columns (list of (name, values)) of one term."""
    forced = False
    m = re.fullmatch(r"C\((\w+)\)", term)
    if m:
        term, forced = m.group(1), True
    if term not in table.columns:
        raise InputError(f"formula terms must be columns of scans {list(table.columns)}; got {term!r}. "
                         "Fix the spelling or add the column.")
    col = table[term]
    if col.isna().any():
        bad = int(col.isna().sum())
        raise InputError(f"column {term!r} has {bad} missing value(s); the design must be complete. "
                         "Drop or impute those scans first.")
    categorical = forced or not pd.api.types.is_numeric_dtype(col) or pd.api.types.is_bool_dtype(col)
    if not categorical:
        return [(term, col.to_numpy(dtype=np.float64))]
    levels = sorted(pd.unique(col), key=str)
    if len(levels) < 2:
        raise InputError(f"categorical column {term!r} must have at least two levels; got {levels}. "
                         "Drop the term.")
    values = col.to_numpy()
    return [(f"{term}[T.{lvl}]", (values == lvl).astype(np.float64)) for lvl in levels[1:]]


def design_from_table(scans, spec=None, *, columns=None, intercept=True) -> DesignMatrix:
    """Design matrix from a scans table.

    Parameters
    ----------
    scans : pandas.DataFrame or dict of columns
        One row per scan (e.g. ``scan_id, subject, session, group, age, sex``).
    spec : str, optional
        ``"coupling ~ group + age + sex"`` (the left side is optional and only
        recorded). Terms: column names, ``C(name)``, ``a:b``, ``a*b``; ``- 1`` or
        ``0 +`` removes the intercept.
    columns : list of str, optional
        Explicit columns instead of a spec (categoricals coded the same way).
    intercept : bool
        Add an intercept when ``columns`` is used.

    Returns
    -------
    :class:`DesignMatrix`

    Examples
    --------
    >>> dm = design_from_table({"group": ["hc", "mdd", "mdd"], "age": [30., 40., 50.]}, "y ~ group + age")
    >>> dm.columns
    ('Intercept', 'group[T.mdd]', 'age')
    """
    table = _table(scans)
    response = None
    if spec is not None and columns is not None:
        raise InputError("pass either spec= or columns=, not both; got both. Use one way to describe the design.")
    if spec is None and columns is None:
        raise InputError("design_from_table needs spec='y ~ a + b' or columns=[...]; got neither.")
    if spec is not None:
        if not isinstance(spec, str):
            raise InputError(f"spec must be a string like 'y ~ group + age'; got {type(spec).__name__}.")
        if "~" in spec:
            lhs, rhs = spec.split("~", 1)
            response = lhs.strip() or None
        else:
            rhs = spec
        rhs = rhs.replace(" ", "")
        if re.search(r"(^|\+)0(\+|$)", rhs) or "-1" in rhs:
            intercept = False
            rhs = re.sub(r"-1", "", rhs)
            rhs = re.sub(r"(^|\+)0(?=\+|$)", "", rhs)
        else:
            intercept = True
        terms = []
        for raw in [t for t in rhs.split("+") if t and t != "1"]:
            if "*" in raw:
                parts = raw.split("*")
                terms.extend(parts)
                terms.append(":".join(parts))
            else:
                terms.append(raw)
    else:
        terms = list(columns)
    names, cols = [], []
    if intercept:
        names.append("Intercept")
        cols.append(np.ones(len(table)))
    for term in dict.fromkeys(terms):
        if ":" in term:
            coded = [_code(table, t) for t in term.split(":")]
            prod = [("", np.ones(len(table)))]
            for group in coded:
                prod = [(f"{a}:{b}" if a else b, va * vb) for a, va in prod for b, vb in group]
            pairs = prod
        else:
            pairs = _code(table, term)
        for name, values in pairs:
            if name not in names:
                names.append(name)
                cols.append(values)
    matrix = np.column_stack(cols) if cols else np.zeros((len(table), 0))
    return DesignMatrix(matrix=matrix, columns=tuple(names), response=response)
