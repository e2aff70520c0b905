"""Exceptions raised by recouple.

Every input check raises one of these with a message that names the argument,
states what was expected, echoes what was received and says how to fix it.
"""

from __future__ import annotations


class RecoupleError(Exception):
    """Base class of every error recouple raises on purpose."""


class InputError(RecoupleError, ValueError):
    """An argument does not meet the documented expectations."""


class ShapeError(InputError):
    """An array argument has the wrong shape or number of dimensions."""


class BackendUnavailable(RecoupleError, ImportError):
    """The requested array backend cannot be used on this machine."""


class StoreError(RecoupleError):
    """The cohort store is missing, malformed or inconsistent."""


class ConfigError(InputError):
    """A study file or command-line configuration is invalid."""


class OutputError(RecoupleError):
    """Results cannot be written: the output folder is in use by another run,
    is not a folder, or cannot be written. Nothing is wrong with the inputs;
    finished results are kept."""


def describe(value) -> str:
    """Short description of a received value for error messages."""
    shape = getattr(value, "shape", None)
    if shape is not None:
        dtype = getattr(value, "dtype", "?")
        return f"an array of shape {tuple(shape)} and dtype {dtype}"
    text = repr(value)
    if len(text) > 80:
        text = text[:77] + "..."
    return f"{type(value).__name__} {text}"
