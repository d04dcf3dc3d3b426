"""Input checks shared by every public function of matgrad.

Each helper either returns a new array (never a view that the caller could see
change) or raises ``TypeError`` / ``ValueError`` with a message that names the
argument, what it got and what was expected.
"""

from __future__ import annotations

import numpy as np

__all__ = ["as_real_array", "float_dtype", "format_bytes", "shape_str"]


def shape_str(shape) -> str:
    """Format a shape tuple the way NumPy prints it: ``(3, 4)``, ``(5,)``, ``()``."""
    return str(tuple(int(s) for s in shape))


def as_real_array(value, name: str) -> np.ndarray:
    """Return ``value`` as a real numeric ndarray, without copying more than needed.

    Booleans, complex numbers, strings and objects raise ``TypeError``.
    The caller must not write into the result (it may share memory with
    ``value``); use ``np.array(..., copy=True)`` for a scratch copy.
    """
    try:
        arr = np.asarray(value)
    except Exception as exc:  # e.g. ragged nested lists
        raise TypeError(f"{name} must be a real numeric array; could not convert it: {exc}") from None
    kind = arr.dtype.kind
    if kind not in "iuf":
        what = {"b": "booleans", "c": "complex numbers", "U": "strings", "S": "bytes", "O": "Python objects"}.get(
            kind, f"dtype {arr.dtype}"
        )
        raise TypeError(
            f"{name} must be a real numeric array (integer or floating dtype); got {what} "
            f"(dtype {arr.dtype}) of shape {shape_str(arr.shape)}"
        )
    return arr


def float_dtype(*arrays: np.ndarray) -> np.dtype:
    """The floating dtype a result should have: NumPy's promotion, integers to float64."""
    dtype = np.result_type(*arrays)
    if dtype.kind != "f":
        dtype = np.result_type(dtype, np.float64)
    return np.dtype(dtype)


def format_bytes(nbytes: int) -> str:
    """Human-readable binary size: ``format_bytes(2**34) == '16.0 GiB'``."""
    value = float(nbytes)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if value < 1024 or unit == "PiB":
            return f"{int(value)} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")  # pragma: no cover
