"""Exact, symbolic derivations of the matrix-product gradients with sympy.

Three routes to the same two formulas, each exact:

* :func:`verify_matmul_gradients` writes out every entry of ``X``, ``W`` and
  ``G`` as a sympy symbol for concrete sizes, differentiates the scalar
  :math:`L = \\sum_{ij} g_{ij} y_{ij}` entry by entry and compares the result
  with the closed forms exactly (no rounding anywhere).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import sympy as sp

__all__ = [
    "MatmulGradientVerification",
    "symbol_matrix",
    "verify_matmul_gradients",
]

_CONVENTIONS = ("XW", "WX")


def _check_size(value, name: str) -> int:
    """A positive Python int, or a ValueError naming the argument."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be a positive integer; got {type(value).__name__} {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be a positive integer; got {value!r}")
    return int(value)


def _check_convention(convention) -> str:
    if not isinstance(convention, str) or convention not in _CONVENTIONS:
        raise ValueError(f"convention must be 'XW' (Y = X W) or 'WX' (Y = W X); got {convention!r}")
    return convention


def symbol_matrix(name, rows, cols):
    """A sympy matrix whose entries are distinct real symbols ``name_ij``.

    Parameters
    ----------
    name : str
        Base name of the symbols, e.g. ``"x"`` gives ``x_00, x_01, ...``.
    rows, cols : int
        Positive sizes of the matrix.

    Returns
    -------
    sympy.ImmutableMatrix, shape (rows, cols)
        Entry ``(i, j)`` is the real symbol ``name_ij`` (zero-based indices;
        written ``name_i,j`` when a size exceeds 10, so names stay unique).

    Raises
    ------
    ValueError
        If ``name`` is not a non-empty string or a size is not a positive integer.

    Examples
    --------
    >>> symbol_matrix("x", 2, 3)
    Matrix([
    [x_00, x_01, x_02],
    [x_10, x_11, x_12]])
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"name must be a non-empty string; got {name!r}")
    rows = _check_size(rows, "rows")
    cols = _check_size(cols, "cols")
    sep = "" if max(rows, cols) <= 10 else ","
    return sp.ImmutableMatrix(rows, cols, lambda i, j: sp.Symbol(f"{name}_{i}{sep}{j}", real=True))


def _default_closed_forms(convention: str):
    if convention == "XW":  # Y = X W:  dX = G W^T,  dW = X^T G
        return lambda X, W, G: (G * W.T, X.T * G)
    return lambda X, W, G: (W.T * G, G * X.T)  # Y = W X:  dX = W^T G,  dW = G X^T


def _exactly_equal(A, B) -> bool:
    """Exact equality of two sympy matrices of polynomials (shape, then every entry)."""
    if A.shape != B.shape:
        return False
    return all(sp.expand(a - b) == 0 for a, b in zip(A, B))


@dataclass(frozen=True)
class MatmulGradientVerification:
    """Result of :func:`verify_matmul_gradients`; true iff both gradients match.

    Attributes
    ----------
    convention : str
        ``"XW"`` (``Y = X W``) or ``"WX"`` (``Y = W X``).
    X, W, G : sympy.ImmutableMatrix
        The symbol matrices used (``G`` has the shape of ``Y``).
    dX, dW : sympy.ImmutableMatrix
        Derived entry by entry: ``dX[i, j] = diff(L, X[i, j])``.
    dX_closed, dW_closed : sympy.ImmutableMatrix
        The closed forms the derivation was compared with.
    dX_matches, dW_matches : bool
        Whether derived and closed form are exactly equal (same shape and
        every entry's difference expands to zero).
    """

    convention: str
    X: sp.ImmutableMatrix
    W: sp.ImmutableMatrix
    G: sp.ImmutableMatrix
    dX: sp.ImmutableMatrix
    dW: sp.ImmutableMatrix
    dX_closed: sp.ImmutableMatrix
    dW_closed: sp.ImmutableMatrix
    dX_matches: bool
    dW_matches: bool

    def __bool__(self) -> bool:
        return bool(self.dX_matches and self.dW_matches)


def verify_matmul_gradients(n, m, d, *, convention="XW", closed_forms=None):
    """Derive the gradients of a matrix product entry by entry and compare them exactly.

    Parameters
    ----------
    n, m, d : int
        Positive sizes. For ``convention="XW"``: ``X`` is (n, m), ``W`` is
        (m, d), ``Y = X W`` and ``G`` are (n, d). For ``convention="WX"``:
        ``W`` is (d, m), ``X`` is (m, n), ``Y = W X`` and ``G`` are (d, n).
    convention : {"XW", "WX"}, optional
        Which side the weight multiplies from (default ``"XW"``).
    closed_forms : callable, optional
        ``closed_forms(X, W, G)`` returns the claimed ``(dX, dW)`` as sympy
        matrices. Default: the book's formulas for the convention (see Notes).
        Pass a wrong formula to see the comparison fail.

    Returns
    -------
    MatmulGradientVerification
        Derived and closed-form gradients, ``dX_matches`` and ``dW_matches``;
        the object is true iff both match.

    Raises
    ------
    ValueError
        If a size is not a positive integer or ``convention`` is unknown.
    TypeError
        If ``closed_forms`` is given but not callable.

    Notes
    -----
    The loss is :math:`L = \\sum_{ij} g_{ij} y_{ij}`, whose gradient with
    respect to ``Y`` is exactly ``G``. The closed forms are
    :math:`dX = G W^\\top,\\ dW = X^\\top G` for ``Y = X W`` and
    :math:`dX = W^\\top G,\\ dW = G X^\\top` for ``Y = W X``. Every entry is a
    polynomial in the symbols, so "equal" means the difference expands to 0.
    The cost grows like ``(n m + m d) * n m d``; sizes up to about 6 take
    well under a second.

    Examples
    --------
    >>> result = verify_matmul_gradients(2, 3, 2)
    >>> bool(result), result.dX_matches, result.dW_matches
    (True, True, True)
    >>> result.dX[0, 0]
    g_00*w_00 + g_01*w_01
    >>> wrong = verify_matmul_gradients(2, 2, 2, closed_forms=lambda X, W, G: (G * W, X.T * G))
    >>> bool(wrong), wrong.dX_matches, wrong.dW_matches
    (False, False, True)
    """
    n = _check_size(n, "n")
    m = _check_size(m, "m")
    d = _check_size(d, "d")
    convention = _check_convention(convention)
    if closed_forms is None:
        closed_forms = _default_closed_forms(convention)
    elif not callable(closed_forms):
        raise TypeError(f"closed_forms must be callable as closed_forms(X, W, G); got {type(closed_forms).__name__}")

    if convention == "XW":
        X, W, G = symbol_matrix("x", n, m), symbol_matrix("w", m, d), symbol_matrix("g", n, d)
        Y = X * W
    else:
        W, X, G = symbol_matrix("w", d, m), symbol_matrix("x", m, n), symbol_matrix("g", d, n)
        Y = W * X
    L = sp.expand(sum(g * y for g, y in zip(G, Y)))
    dX = X.applyfunc(lambda x: sp.diff(L, x))
    dW = W.applyfunc(lambda w: sp.diff(L, w))
    dX_closed, dW_closed = (sp.ImmutableMatrix(M) for M in closed_forms(X, W, G))
    return MatmulGradientVerification(
        convention=convention,
        X=X,
        W=W,
        G=G,
        dX=sp.ImmutableMatrix(dX),
        dW=sp.ImmutableMatrix(dW),
        dX_closed=dX_closed,
        dW_closed=dW_closed,
        dX_matches=_exactly_equal(dX, dX_closed),
        dW_matches=_exactly_equal(dW, dW_closed),
    )
