"""Input checks shared by every public function of matgrad.

Each helper either returns a new array (never a view that the caller could see
change) or raises ``TypeError`` / ``ValueError`` with a message that names the
argument, what it got and what was expected.
"""

from __future__ import annotations

import math
import numbers

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


def format_bytes(nbytes) -> str:
    """Write a number of bytes in binary units, the way the book quotes memory.

    Parameters
    ----------
    nbytes : int or float
        A non-negative number of bytes, e.g. from :func:`jacobian_nbytes` or
        ``ndarray.nbytes``. Python and NumPy integers are exact at any size.

    Returns
    -------
    str
        ``"<k> B"`` (a whole number) below 1 KiB; otherwise the value in the
        largest unit that keeps it below 1024, with one decimal:
        ``"1.5 KiB"``, ``"16.0 GiB"``. Units are KiB, MiB, GiB, TiB and PiB
        (powers of 1024); above 1024 PiB the value stays in PiB.

    Raises
    ------
    TypeError
        If ``nbytes`` is a boolean or not a real number.
    ValueError
        If ``nbytes`` is negative or not finite.

    Notes
    -----
    One KiB is :math:`2^{10}` bytes, one MiB :math:`2^{20}`, one GiB
    :math:`2^{30}`. A value is never printed as ``1024.0`` of a unit: one that
    would round to that is given in the next unit (``1.0 MiB``). An integer is
    divided and rounded (half to even) in exact integer arithmetic, so a size
    beyond the float range, such as ``2**1034``, is written exactly too.

    Examples
    --------
    >>> format_bytes(2**34)                         # a float32 Jacobian of (1024, 64) by (1024, 64)
    '16.0 GiB'
    >>> format_bytes(1536)
    '1.5 KiB'
    >>> format_bytes(1000)
    '1000 B'
    >>> format_bytes(2**20 - 1)                     # 1023.999 KiB rounds up to the next unit
    '1.0 MiB'
    """
    if isinstance(nbytes, (bool, np.bool_)) or not isinstance(nbytes, numbers.Real):
        raise TypeError(f"nbytes must be a non-negative real number of bytes; got {type(nbytes).__name__}: {nbytes!r:.80}")
    finite = isinstance(nbytes, numbers.Integral) or math.isfinite(nbytes)
    if not (finite and nbytes >= 0):
        raise ValueError(f"nbytes must be a non-negative finite number of bytes; got {nbytes!r}")
    if nbytes < 1024:
        return f"{int(nbytes)} B"
    if isinstance(nbytes, numbers.Integral):  # exact integer arithmetic: no float, no overflow
        n = int(nbytes)
        for k, unit in enumerate(("KiB", "MiB", "GiB", "TiB", "PiB"), start=1):
            tenths, rest = divmod(10 * n, 1024**k)
            if 2 * rest > 1024**k or (2 * rest == 1024**k and tenths % 2):  # round half to even, like f"{:.1f}"
                tenths += 1
            if tenths < 10240 or unit == "PiB":
                return f"{tenths // 10}.{tenths % 10} {unit}"
    value = nbytes / 1024
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        if round(value, 1) < 1024:
            return f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} PiB"
