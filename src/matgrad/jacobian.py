"""Explicit Jacobians of matrix products, what they cost, and the naive chain rule.

Layout, used everywhere in the book: the Jacobian of an output ``C`` with respect
to an input ``A`` has the axes of ``C`` followed by the axes of ``A``, so
``J[i, j, p, q] = dC[i, j] / dA[p, q]``.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from ._validate import as_real_array, float_dtype, format_bytes, shape_str

__all__ = [
    "JacobianTooLarge",
    "jacobian_nbytes",
    "matmul_jacobian",
    "vjp_from_jacobian",
]

_DEFAULT_MAX_BYTES = 256 * 2**20


class JacobianTooLarge(ValueError):
    """A full Jacobian was refused because it would need more memory than allowed.

    Attributes
    ----------
    nbytes : int
        The number of bytes the Jacobian would have needed.
    max_bytes : int or float
        The limit that was in force.

    Examples
    --------
    >>> try:
    ...     matmul_jacobian(np.ones((64, 32)), np.ones((32, 16)), "A", max_bytes=2**20)
    ... except JacobianTooLarge as err:
    ...     print(isinstance(err, ValueError), format_bytes(err.nbytes), format_bytes(err.max_bytes))
    True 16.0 MiB 1.0 MiB
    """

    def __init__(self, message: str, nbytes: int, max_bytes: int):
        super().__init__(message)
        self.nbytes = nbytes
        self.max_bytes = max_bytes


def _check_shape(shape, name: str) -> tuple[int, ...]:
    try:
        dims = tuple(shape)
    except TypeError:
        raise TypeError(f"{name} must be a tuple of non-negative integers; got {shape!r}") from None
    for s in dims:
        if isinstance(s, (bool, np.bool_)) or not isinstance(s, (int, np.integer)) or s < 0:
            raise TypeError(f"{name} must be a tuple of non-negative integers; got {shape!r}")
    return tuple(int(s) for s in dims)


def jacobian_nbytes(out_shape, in_shape, dtype=np.float32) -> int:
    """Bytes needed to store the full Jacobian of an output with respect to an input.

    Parameters
    ----------
    out_shape : tuple of int
        Shape of the output, e.g. ``(n, d)`` for ``Y = X @ W``.
    in_shape : tuple of int
        Shape of the input, e.g. ``(n, m)`` for ``X``.
    dtype : numpy dtype, optional
        Element type of the Jacobian (default ``float32``, as in source note 004).

    Returns
    -------
    int
        ``prod(out_shape) * prod(in_shape) * itemsize``, computed exactly with
        Python integers (no overflow).

    Raises
    ------
    TypeError
        If a shape is not a tuple of non-negative integers.

    Notes
    -----
    The Jacobian has shape ``out_shape + in_shape``, so its size is the product of
    both sizes. For ``Y = X @ W`` with ``X`` of shape (1024, 64) and ``W`` of shape
    (64, 64), ``Y`` has shape (1024, 64) too, so the Jacobian of ``Y`` with respect
    to ``X`` has :math:`(1024 \\cdot 64)^2 = 2^{32}` entries: :math:`2^{34}` bytes,
    16 GiB, in float32 (the first example below).

    Examples
    --------
    >>> jacobian_nbytes((1024, 64), (1024, 64))
    17179869184
    >>> jacobian_nbytes((1024, 64), (1024, 64)) == 2**34
    True
    >>> jacobian_nbytes((2, 3), (2, 5), dtype=np.float64)
    480
    """
    out_dims = _check_shape(out_shape, "out_shape")
    in_dims = _check_shape(in_shape, "in_shape")
    itemsize = np.dtype(dtype).itemsize
    return math.prod(out_dims) * math.prod(in_dims) * itemsize


def _check_max_bytes(max_bytes):
    """``max_bytes`` as given, after checking it is a non-negative number (``inf`` allowed)."""
    if isinstance(max_bytes, (bool, np.bool_)) or not isinstance(max_bytes, numbers.Real):
        raise TypeError(f"max_bytes must be a non-negative number of bytes; got {type(max_bytes).__name__}: {max_bytes!r:.80}")
    if not max_bytes >= 0:  # also catches NaN
        raise ValueError(f"max_bytes must be a non-negative number of bytes; got {max_bytes!r}")
    return max_bytes


def _refuse_if_too_large(out_shape, in_shape, dtype, max_bytes, what: str) -> None:
    nbytes = jacobian_nbytes(out_shape, in_shape, dtype)
    if nbytes > max_bytes:
        raise JacobianTooLarge(
            f"the Jacobian {what} would have shape {shape_str(tuple(out_shape) + tuple(in_shape))} "
            f"and need {format_bytes(nbytes)} ({nbytes:,} bytes of {np.dtype(dtype).name}), "
            f"more than max_bytes={format_bytes(max_bytes)}; use the closed-form gradient "
            f"(a vector-Jacobian product) instead, or raise max_bytes",
            nbytes,
            max_bytes,
        )


def matmul_jacobian(A, B, wrt, *, max_bytes=_DEFAULT_MAX_BYTES):
    """Full Jacobian of ``C = A @ B`` with respect to ``A`` or ``B``.

    Parameters
    ----------
    A : array_like, shape (n, m)
        Left factor.
    B : array_like, shape (m, d)
        Right factor.
    wrt : {"A", "B", "X", "W"}
        The input to differentiate with respect to; ``"X"`` and ``"W"`` (the
        book's names for ``Y = X @ W``, as in :func:`index_matmul_gradient`) mean
        ``"A"`` and ``"B"``.
    max_bytes : int or float, optional
        Refuse (before allocating anything) a Jacobian larger than this;
        default 256 MiB. ``float("inf")`` removes the limit.

    Returns
    -------
    J : ndarray, shape (n, d, n, m) if ``wrt="A"``, (n, d, m, d) if ``wrt="B"``
        ``J[i, j, p, q] = dC[i, j] / dA[p, q]`` (or ``/ dB[p, q]``): output axes
        first, then input axes. Floating dtype of ``A`` and ``B`` (integers give
        float64).

    Raises
    ------
    TypeError
        If ``A`` or ``B`` is not a real numeric array (booleans, complex numbers,
        strings and objects are refused), or ``max_bytes`` is not a number.
    ValueError
        If ``A`` or ``B`` is not 2-D, their inner sizes differ, ``wrt`` is not
        one of ``"A"``, ``"B"``, ``"X"``, ``"W"``, or ``max_bytes`` is negative.
    JacobianTooLarge
        If the Jacobian needs more than ``max_bytes`` (a ``ValueError`` subclass
        whose message gives the size in binary units, e.g. ``16.0 GiB``). The
        size is computed from the shapes alone, so nothing is allocated.

    Notes
    -----
    Differentiating :math:`C_{ij} = \\sum_k A_{ik} B_{kj}` entry by entry gives

    .. math::

        \\frac{\\partial C_{ij}}{\\partial A_{pq}} = \\delta_{ip} B_{qj}, \\qquad
        \\frac{\\partial C_{ij}}{\\partial B_{pq}} = A_{ip} \\delta_{jq},

    so almost every entry of either Jacobian is zero.

    Examples
    --------
    >>> A = np.array([[1.0, 2.0], [3.0, 4.0]])
    >>> B = np.array([[5.0, 6.0], [7.0, 8.0]])
    >>> J = matmul_jacobian(A, B, "A")
    >>> J.shape
    (2, 2, 2, 2)
    >>> J[0, 1]           # dC[0, 1] / dA: only row 0 of A matters, through column 1 of B
    array([[6., 8.],
           [0., 0.]])

    The float32 Jacobian of source note 004's sizes is refused from its shape alone:

    >>> X = np.zeros((1024, 64), dtype=np.float32)
    >>> W = np.zeros((64, 64), dtype=np.float32)
    >>> try:
    ...     matmul_jacobian(X, W, "A")
    ... except JacobianTooLarge as err:
    ...     print(format_bytes(err.nbytes))
    16.0 GiB
    """
    A = as_real_array(A, "A")
    B = as_real_array(B, "B")
    max_bytes = _check_max_bytes(max_bytes)
    if A.ndim != 2 or B.ndim != 2:
        raise ValueError(
            f"matmul_jacobian needs 2-D A (n, m) and B (m, d); got A of shape {shape_str(A.shape)} "
            f"and B of shape {shape_str(B.shape)}"
        )
    if A.shape[1] != B.shape[0]:
        raise ValueError(
            f"A @ B needs A.shape[1] == B.shape[0]; got A of shape {shape_str(A.shape)} "
            f"and B of shape {shape_str(B.shape)}"
        )
    if not isinstance(wrt, str) or wrt not in ("A", "B", "X", "W"):
        raise ValueError(f'wrt must be "A" or "B" (or the book\'s names for Y = X @ W, "X" or "W"); got {wrt!r}')
    wrt = {"X": "A", "W": "B"}.get(wrt, wrt)
    dtype = float_dtype(A, B)
    n, m = A.shape
    d = B.shape[1]
    if wrt == "A":
        _refuse_if_too_large((n, d), (n, m), dtype, max_bytes, "dC/dA")
        # J[i, j, p, q] = delta_ip * B[q, j]
        return np.einsum("ip,qj->ijpq", np.eye(n, dtype=dtype), B.astype(dtype, copy=False), order="C")
    _refuse_if_too_large((n, d), (m, d), dtype, max_bytes, "dC/dB")
    # J[i, j, p, q] = A[i, p] * delta_jq
    return np.einsum("ip,jq->ijpq", A.astype(dtype, copy=False), np.eye(d, dtype=dtype), order="C")


def vjp_from_jacobian(J, dC):
    """The naive chain rule: contract the gradient of the output with a full Jacobian.

    Parameters
    ----------
    J : array_like, shape dC.shape + in_shape
        Jacobian of the output ``C`` with respect to an input, output axes first
        (the layout of :func:`matmul_jacobian`).
    dC : array_like, shape out_shape
        Gradient of a scalar loss with respect to ``C``.

    Returns
    -------
    ndarray, shape in_shape
        ``dIn[p, q] = sum_ij dC[i, j] * J[i, j, p, q]``: the gradient of the loss
        with respect to the input, in floating point.

    Raises
    ------
    TypeError
        If ``J`` or ``dC`` is not a real numeric array.
    ValueError
        If the leading axes of ``J`` do not have the shape of ``dC``.

    Notes
    -----
    This is the chain rule :math:`\\partial L / \\partial A_{pq} = \\sum_{ij}
    (\\partial L / \\partial C_{ij}) (\\partial C_{ij} / \\partial A_{pq})`,
    a vector-Jacobian product computed the expensive way.

    Examples
    --------
    >>> A = np.array([[1.0, 2.0], [3.0, 4.0]])
    >>> B = np.array([[5.0, 6.0], [7.0, 8.0]])
    >>> dC = np.array([[1.0, 0.0], [0.0, 1.0]])
    >>> vjp_from_jacobian(matmul_jacobian(A, B, "A"), dC)   # equals dC @ B.T
    array([[5., 7.],
           [6., 8.]])
    """
    J = as_real_array(J, "J")
    dC = as_real_array(dC, "dC")
    k = dC.ndim
    if J.ndim < k or J.shape[:k] != dC.shape:
        raise ValueError(
            f"J must have the axes of dC first: J.shape[:{k}] should be {shape_str(dC.shape)}; "
            f"got J of shape {shape_str(J.shape)} and dC of shape {shape_str(dC.shape)}"
        )
    dtype = float_dtype(J, dC)
    return np.tensordot(dC.astype(dtype, copy=False), J.astype(dtype, copy=False), axes=k)
