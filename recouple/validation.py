"""Input checks shared by the public API. Each raises a recouple exception
whose message names the argument, the expectation, what came, and the fix.
Inputs are never modified: checks copy when they must convert."""

from __future__ import annotations

import numpy as np

from ._arrays import to_host
from .exceptions import InputError, ShapeError, describe


def as_array(name: str, x, *, ndim_min: int | None = None, ndim: int | None = None, dtype=np.float64) -> np.ndarray:
    """Host array of ``x`` (a copy only if conversion is needed), with dimension checks."""
    try:
        arr = np.asarray(to_host(x))
    except Exception as exc:
        raise InputError(f"{name} must be array-like; got {describe(x)} ({exc}). Pass a NumPy array.") from exc
    check_real(name, arr)
    if dtype is not None:
        if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
            raise InputError(
                f"{name} must hold numbers; got dtype {arr.dtype}. Convert it with np.asarray({name}, dtype=float)."
            )
        arr = arr.astype(dtype, copy=False)
    if ndim is not None and arr.ndim != ndim:
        raise ShapeError(f"{name} must have {ndim} dimension(s); got {describe(arr)}. Reshape it.")
    if ndim_min is not None and arr.ndim < ndim_min:
        raise ShapeError(
            f"{name} must have at least {ndim_min} dimensions; got {describe(arr)}. "
            "Stack subjects along the first axis."
        )
    return arr


def check_real(name: str, x) -> None:
    """Refuse complex input: converting it to float would drop the imaginary part silently."""
    dtype = getattr(x, "dtype", None)
    try:
        kind = np.dtype(dtype).kind if dtype is not None else np.asarray(x).dtype.kind
    except TypeError:  # a dtype NumPy does not know: not complex as far as NumPy is concerned
        return
    if kind == "c":
        raise InputError(
            f"{name} must hold real numbers; got a complex array ({describe(x)}). Pass its real part "
            "(np.real) or its magnitude (np.abs) explicitly."
        )


def frame_values(name: str, frame) -> np.ndarray:
    """Float64 values of a table (a pandas DataFrame, duck-typed: ``columns``,
    ``index``, ``frame[column]``); a cell that is not a number is named by its
    row and column instead of failing inside pandas."""
    for col in frame.columns:
        check_real(f"{name} column {col!r}", frame[col])
    try:
        return np.asarray(frame.to_numpy(dtype=np.float64))
    except (ValueError, TypeError):
        pass
    for col in frame.columns:
        cells = np.asarray(frame[col].to_numpy(), dtype=object)
        for i, cell in enumerate(cells):
            try:
                float(cell)
            except (ValueError, TypeError):
                raise InputError(
                    f"{name} must hold only numbers; the cell in row {frame.index[i]!r}, column {col!r} is "
                    f"{cell!r}. Fix or blank it (a blank cell is read as missing) and load the table again."
                ) from None
    return np.asarray(frame.to_numpy(dtype=np.float64))  # pragma: no cover - a failure no cell explains


def check_square(name: str, x: np.ndarray) -> None:
    if x.ndim < 2 or x.shape[-1] != x.shape[-2]:
        raise ShapeError(
            f"{name} must be square matrices of shape (..., N, N); got {describe(x)}. "
            "Pass one connectivity matrix per subject, regions x regions."
        )


def check_same_shape(name_a: str, a: np.ndarray, name_b: str, b: np.ndarray) -> None:
    if a.shape != b.shape:
        raise ShapeError(
            f"{name_a} and {name_b} must have the same shape; got {a.shape} and {b.shape}. "
            "Use the same parcellation, region order and subject order for both."
        )


def check_finite(name: str, x: np.ndarray, *, allow_nan: bool = False) -> None:
    if x.dtype.kind in "biu" or (x.dtype.kind == "f" and np.isfinite(np.sum(x))):
        # a finite sum means every entry is finite (NaN and inf propagate; an
        # overflow only sends us to the exact check): one pass, no temporaries
        return
    bad = ~np.isfinite(x)
    if allow_nan:
        bad &= ~np.isnan(x)
    if bad.any():
        where = tuple(int(i) for i in np.argwhere(bad)[0])
        kind = "NaN or infinite" if not allow_nan else "infinite"
        raise InputError(
            f"{name} must contain only finite values; found {int(bad.sum())} {kind} value(s), "
            f"the first at index {where}. Replace them (e.g. np.nan_to_num) or mask those entries."
        )


def check_symmetric(name: str, x: np.ndarray, *, atol: float = 1e-8) -> None:
    # one matrix at a time: a transposed read of a cache-sized block is cheap,
    # of a whole stack it is not
    flat = x.reshape((-1,) + x.shape[-2:])
    if all(np.array_equal(m, m.T) for m in flat):
        return
    dev = np.abs(x - np.swapaxes(x, -1, -2))
    worst = float(dev.max()) if dev.size else 0.0
    scale = max(float(np.abs(x).max()) if x.size else 0.0, 1.0)
    if worst > atol * scale:
        raise InputError(
            f"{name} must be symmetric; got max |{name} - {name}.T| = {worst:.3g}. "
            "Pass symmetrize=True to average it with its transpose."
        )


def check_nonnegative(name: str, x: np.ndarray) -> None:
    if x.size == 0:
        return
    lowest = np.min(x)  # one pass; NaN (if any) makes it NaN: then count exactly
    if lowest >= 0:
        return
    if (x < 0).any():
        raise InputError(
            f"{name} must be non-negative (structural weights); got {int((x < 0).sum())} negative value(s), "
            f"minimum {float(x.min()):.4g}. Pass allow_negative=True to use them as they are, or shift/clip "
            "the weights first."
        )


def check_choice(name: str, value, choices) -> None:
    if value not in choices:
        raise InputError(f"{name} must be one of {', '.join(map(repr, choices))}; got {value!r}. Pick one of those.")


def check_positive_int(name: str, value, *, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise InputError(f"{name} must be an integer >= {minimum}; got {value!r}. Pass e.g. {name}={max(minimum, 1)}.")
    return int(value)


def _weight_stack_ok(a: np.ndarray, *, nonnegative: bool, mapper=None) -> bool:
    """True when every matrix of ``a`` is finite, symmetric and (if asked)
    non-negative. One matrix at a time, so that the three tests read it
    from cache rather than the whole stack from memory three times; large
    stacks through ``mapper`` (the caller's threads). False sends the caller
    to the exact checks and their messages."""
    if a.dtype.kind != "f" or a.size == 0:
        return False
    flat = a.reshape((-1,) + a.shape[-2:])

    def ok(m):
        return (np.isfinite(np.sum(m)) and (not nonnegative or np.min(m) >= 0)
                and np.array_equal(m, m.T))

    if mapper is not None and flat.shape[0] >= 8 and a.nbytes >= 16e6:
        return all(mapper(ok, flat))
    return all(ok(m) for m in flat)


def weight_stack(name: str, w, *, symmetrize: bool = False, allow_negative: bool = False, mapper=None) -> np.ndarray:
    """Validated float64 host copy of a weight stack ``(..., N, N)`` (e.g. SC):
    square, finite, symmetric (or averaged with its transpose when
    ``symmetrize``), non-negative unless ``allow_negative``. ``mapper``:
    ``mapper(fn, items) -> list`` checking the matrices of a large stack on
    several threads (the public API passes
    :func:`recouple.engine.dispatch.host_map`); default one thread."""
    a = as_array(name, w, ndim_min=2)
    check_square(name, a)
    if not symmetrize and _weight_stack_ok(a, nonnegative=not allow_negative, mapper=mapper):
        return a
    check_finite(name, a)
    if symmetrize:
        a = (a + np.swapaxes(a, -1, -2)) / 2
    else:
        check_symmetric(name, a)
    if not allow_negative:
        check_nonnegative(name, a)
    return a


SAFE_NAME_MAX = 200
_SAFE_NAME_FIX = ("Rename it: one name of at most 200 characters, e.g. letters, digits, '-', '_' and '.', "
                  "not starting with '.'")


def safe_name(value, what: str) -> str:
    """``value`` as a ``str`` that is safe as one file (or dataset) name.

    The one rule for every name derived from data that ends up in a path
    (scan ids, map names, contrast and result names, labels used in file
    names): a non-empty string of at most 200 characters without a path
    separator ('/' or '\\\\'), a drive prefix ('C:'), a NUL or other control
    character, and not starting with '.' (so neither '.', '..' nor a hidden
    file). Such a name joined to a folder always stays inside it.

    Raises :class:`InputError` naming ``what`` (e.g. ``"scan_id"``), the
    value, why it is refused and how to fix it.
    """
    if isinstance(value, np.str_):
        value = str(value)
    if not isinstance(value, str):
        raise InputError(f"{what} must be a string usable as a file name; got {describe(value)}. {_SAFE_NAME_FIX}.")
    why = None
    if not value:
        why = "it is empty"
    elif len(value) > SAFE_NAME_MAX:
        why = f"it has {len(value)} characters (more than {SAFE_NAME_MAX})"
    elif "/" in value or "\\" in value:
        why = "it contains a path separator ('/' or '\\'), so it could name a file outside the output folder"
    elif any(ord(c) < 32 or 127 <= ord(c) < 160 for c in value):
        why = "it contains a NUL or other control character"
    elif value.startswith("."):
        why = "it starts with '.' ('.', '..' and hidden files are refused)"
    elif len(value) >= 2 and value[1] == ":" and value[0].isascii() and value[0].isalpha():
        why = "it starts with a drive prefix such as 'C:'"
    if why is not None:
        shown = value if len(value) <= 80 else value[:77] + "..."
        raise InputError(f"{what} must be usable as a file name; got {shown!r}: {why}. {_SAFE_NAME_FIX}.")
    return value
