"""Exact, symbolic derivations of the matrix-product gradients with sympy.

Three routes to the same two formulas, each exact:

* :func:`verify_matmul_gradients` writes out every entry of ``X``, ``W`` and
  ``G`` as a sympy symbol for concrete sizes, differentiates the scalar
  :math:`L = \\sum_{ij} g_{ij} y_{ij}` entry by entry and compares the result
  with the closed forms exactly (no rounding anywhere).
* :func:`index_matmul_gradient` works in index notation for *symbolic* sizes
  ``n, m, d``: ``y_ij = sum_k x_ik w_kj`` built from sympy ``IndexedBase`` and
  ``Sum``, differentiated with respect to one entry ``x_pq`` (or ``w_pq``). sympy
  answers with sums of Kronecker deltas that it cannot finish (``doit`` leaves
  ``Piecewise`` range conditions), so the deltas are summed out here, one
  index at a time, by :func:`reduce_kronecker_sum`, with the range of every
  index checked.
* :func:`trace_matmul_gradients` takes the matrix-expression route: sympy
  ``MatrixSymbol`` objects of symbolic shapes, and the derivative of
  :math:`\\operatorname{tr}(G^\\top X W)`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import sympy as sp

__all__ = [
    "IndexDerivation",
    "MatmulGradientVerification",
    "ReductionStep",
    "TraceGradients",
    "index_latex",
    "index_matmul_gradient",
    "reduce_kronecker_sum",
    "symbol_matrix",
    "trace_matmul_gradients",
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
    X : ``sympy.ImmutableMatrix``
        The matrix of symbols standing for ``X``.
    W : ``sympy.ImmutableMatrix``
        The matrix of symbols standing for ``W``.
    G : ``sympy.ImmutableMatrix``
        The matrix of symbols standing for ``G`` (the shape of ``Y``).
    dX : ``sympy.ImmutableMatrix``
        Derived entry by entry: ``dX[i, j] = diff(L, X[i, j])``.
    dW : ``sympy.ImmutableMatrix``
        Derived entry by entry: ``dW[i, j] = diff(L, W[i, j])``.
    dX_closed : ``sympy.ImmutableMatrix``
        The closed form ``dX`` was compared with.
    dW_closed : ``sympy.ImmutableMatrix``
        The closed form ``dW`` was compared with.
    dX_matches : bool
        Whether ``dX`` and ``dX_closed`` are exactly equal: same shape, and
        every entry's difference expands to zero.
    dW_matches : bool
        The same for ``dW`` and ``dW_closed``.

    Examples
    --------
    >>> v = verify_matmul_gradients(1, 2, 1)
    >>> bool(v), v.convention, v.dX, v.dX_closed
    (True, 'XW', Matrix([[g_00*w_00, g_00*w_10]]), Matrix([[g_00*w_00, g_00*w_10]]))
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
        If ``closed_forms`` is given but not callable, or does not return a
        pair of sympy matrices of concrete (integer) shape.

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
    claimed = closed_forms(X, W, G)
    if not isinstance(claimed, (tuple, list)) or len(claimed) != 2:
        raise TypeError(f"closed_forms must return a pair (dX, dW); it returned {type(claimed).__name__}: {claimed!r:.80}")
    for name, M in zip(("dX", "dW"), claimed):
        if not isinstance(M, (sp.MatrixBase, sp.MatrixExpr)):
            raise TypeError(f"closed_forms must return sympy matrices; its {name} is {type(M).__name__}: {M!r:.80}")
        if not all(isinstance(size, int) or getattr(size, "is_Integer", False) for size in M.shape):
            raise TypeError(
                f"closed_forms must return matrices of concrete shape; its {name} has shape "
                f"({', '.join(str(size) for size in M.shape)}), which cannot be compared entry by entry"
            )
    dX_closed, dW_closed = (sp.ImmutableMatrix(M) for M in claimed)
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


# ---------------------------------------------------------------------------
# Index notation for symbolic sizes
# ---------------------------------------------------------------------------


def _index_range(value):
    """The (lower, upper) bounds of an index-like value, or None if unknown."""
    if isinstance(value, sp.Idx):
        if value.lower is None or value.upper is None:
            return None
        return value.lower, value.upper
    if getattr(value, "is_Integer", False):
        return value, value
    return None


def _provably(relation) -> bool:
    return relation is sp.true or relation is True


def reduce_kronecker_sum(expr, index):
    """Sum out ``index`` against a Kronecker delta: the rule Σ_k f(k) δ_kq = f(q).

    Every ``Sum`` in ``expr`` that runs over ``index`` must have a summand that
    is a product containing a factor ``KroneckerDelta(index, a)``; that sum is
    replaced by the summand with ``index`` set to ``a`` (the delta becomes
    ``δ_aa = 1``), and the limit over ``index`` is removed; the limits of the
    sums inside it that depend on ``index`` get ``a`` too.

    Parameters
    ----------
    expr : sympy.Expr
        An expression containing ``Sum(..., (index, lower, upper), ...)``.
    index : sympy.Symbol or sympy.Idx
        The summation index to sum out.

    Returns
    -------
    sympy.Expr
        ``expr`` with every such sum reduced.

    Raises
    ------
    TypeError
        If ``expr`` is not a sympy expression or ``index`` not a sympy symbol.
    ValueError
        If no sum over ``index`` occurs in ``expr``; if a summand over ``index``
        is not a product with a ``KroneckerDelta(index, a)`` factor; or if the
        range of ``a`` is not provably inside the summation range (``a`` must
        be an integer or an ``Idx`` with bounds), or if ``a`` is itself summed
        inside the sum over ``index``.

    Notes
    -----
    The rule is only correct when ``a`` lies in the range of the sum:
    :math:`\\sum_{k=l}^{u} f(k)\\,\\delta_{ka} = f(a)` if :math:`l \\le a \\le u`,
    and 0 otherwise. sympy's own ``doit`` keeps that condition as a
    ``Piecewise``; here it is proved from the bounds of ``a`` (for example
    ``q = Idx("q", m)`` has bounds 0 and ``m - 1``) or the reduction refuses.

    Examples
    --------
    >>> m = sp.Symbol("m", integer=True, positive=True)
    >>> k, q = sp.Idx("k", m), sp.Idx("q", m)
    >>> w = sp.IndexedBase("w")
    >>> reduce_kronecker_sum(sp.Sum(sp.KroneckerDelta(k, q) * w[k], (k, 0, m - 1)), k)
    w[q]
    """
    if not isinstance(expr, sp.Basic):
        raise TypeError(f"expr must be a sympy expression; got {type(expr).__name__}")
    if not isinstance(index, sp.Symbol) and not isinstance(index, sp.Idx):
        raise TypeError(f"index must be a sympy Symbol or Idx; got {type(index).__name__} {index!r}")
    found = []

    def runs_over_index(node):
        return isinstance(node, sp.Sum) and any(limit[0] == index for limit in node.limits)

    def reduce(node):
        position = [limit[0] for limit in node.limits].index(index)
        _, lower, upper = node.limits[position]
        summand = node.function
        factors = sp.Mul.make_args(summand)
        deltas = [
            f for f in factors if isinstance(f, sp.KroneckerDelta) and index in f.args and f.args[0] != f.args[1]
        ]
        if not deltas:
            raise ValueError(
                f"cannot sum out {index}: the summand {summand} is not a product with a "
                f"KroneckerDelta({index}, ...) factor"
            )
        delta = deltas[0]
        partner = delta.args[1] if delta.args[0] == index else delta.args[0]
        if index in partner.free_symbols:
            raise ValueError(f"cannot sum out {index}: the delta {delta} has {index} on both sides")
        bounds = _index_range(partner)
        if bounds is None or not (_provably(sp.Le(lower, bounds[0])) and _provably(sp.Le(bounds[1], upper))):
            raise ValueError(
                f"cannot sum out {index} against {delta}: {partner} is not provably in the range "
                f"[{lower}, {upper}] of the sum (give it as an integer or as an Idx with bounds)"
            )
        inner = node.limits[:position]  # sympy lists the innermost limit first
        summed_inside = partner.free_symbols & {limit[0] for limit in inner}
        if summed_inside:
            raise ValueError(
                f"cannot sum out {index} against {delta}: {', '.join(sorted(map(str, summed_inside)))} is summed "
                f"inside the sum over {index}, so setting {index} = {partner} would take it out of its own sum"
            )
        found.append(node)
        reduced = summand.subs(index, partner)
        # the limits of the sums inside may depend on the index: they get the partner too
        inner = tuple((var, lower_.subs(index, partner), upper_.subs(index, partner)) for var, lower_, upper_ in inner)
        rest = inner + node.limits[position + 1 :]
        return sp.Sum(reduced, *rest) if rest else reduced

    result = expr.replace(runs_over_index, reduce)
    if not found:
        raise ValueError(f"no Sum over {index} in {expr}")
    return result


@dataclass(frozen=True)
class ReductionStep:
    """One step of an index-notation derivation.

    Attributes
    ----------
    description : str
        What the step does, in words.
    expr : ``sympy.Expr``
        The expression after the step.

    Examples
    --------
    >>> step = index_matmul_gradient("X").steps[-1]
    >>> step.expr
    Sum(g[p, j]*w[q, j], (j, 0, d - 1))
    """

    description: str
    expr: sp.Expr


@dataclass(frozen=True)
class IndexDerivation:
    """The steps of :func:`index_matmul_gradient`, from the loss to the closed form.

    Attributes
    ----------
    wrt : str
        ``"X"`` or ``"W"``.
    sizes : ``tuple of sympy.Symbol``
        The symbolic sizes ``(n, m, d)``: ``X`` is n×m, ``W`` is m×d, ``G`` n×d.
    y : ``sympy.Expr``
        One entry of the product, ``y_ij = Sum(x_ik w_kj, k)``.
    loss : ``sympy.Expr``
        ``L = Sum(g_ij y_ij, i, j)``, so that ``∂L/∂y_ij = g_ij``.
    variable : ``sympy.Indexed``
        The entry differentiated by, ``x[p, q]`` or ``w[p, q]`` (``p`` and
        ``q`` are ``Idx`` objects with the ranges of the variable's axes).
    dy_raw : ``sympy.Expr``
        ``∂y_ij/∂variable`` as sympy returns it: a sum with Kronecker deltas.
    dy : ``sympy.Expr``
        The same after summing out ``k``: ``δ_ip w_qj`` or ``x_ip δ_jq``.
    raw : ``sympy.Expr``
        ``∂L/∂variable`` as sympy's ``diff`` returns it.
    sympy_doit : ``sympy.Expr``
        What ``raw.doit()`` gives: sympy alone stops at a ``Piecewise``.
    steps : ``tuple of ReductionStep``
        The raw derivative, then one step per index summed out.
    result : ``sympy.Expr``
        The final entry: ``Sum(g_pj w_qj, j)`` or ``Sum(x_ip g_iq, i)``.
    matrix_form : ``sympy.MatrixExpr``
        The same in matrix form, ``G*W.T`` or ``X.T*G``, of symbolic shape.
    matrix_entry : ``sympy.Expr``
        Entry ``(p, q)`` of ``matrix_form`` written with the same bases and
        summation index as ``result``; equal to it (the transpose step).

    Examples
    --------
    >>> der = index_matmul_gradient("W")
    >>> der.wrt, der.result, der.matrix_form, len(der.steps)
    ('W', Sum(g[i, q]*x[i, p], (i, 0, n - 1)), X.T*G, 3)
    """

    wrt: str
    sizes: tuple
    y: sp.Expr
    loss: sp.Expr
    variable: sp.Expr
    dy_raw: sp.Expr
    dy: sp.Expr
    raw: sp.Expr
    sympy_doit: sp.Expr
    steps: tuple
    result: sp.Expr
    matrix_form: sp.Expr
    matrix_entry: sp.Expr

    def latex(self) -> str:
        """The derivation as one LaTeX ``aligned`` block: each step on its own line.

        Indices are printed by name only (sympy would print their ranges too).
        """

        tex = index_latex
        lhs = rf"\frac{{\partial L}}{{\partial {tex(self.variable)}}}"
        lines = [rf"{lhs} &= {tex(self.steps[0].expr)}"]
        lines += [rf"&= {tex(step.expr)}" for step in self.steps[1:]]
        lines.append(rf"&= \left({sp.latex(self.matrix_form)}\right)_{{pq}}")
        return r"\begin{aligned}" + r" \\ ".join(lines) + r"\end{aligned}"


def index_latex(expr):
    """LaTeX of a sympy expression with every ``Idx`` printed by its name only.

    sympy prints an index with a range as ``i`` subscripted by its range
    (``0..n-1``), which buries a formula in ranges; the sums already show them.

    Parameters
    ----------
    expr : sympy.Basic
        Any sympy expression, e.g. a step of an :class:`IndexDerivation`.

    Returns
    -------
    str
        The LaTeX code, without surrounding ``$``.

    Raises
    ------
    TypeError
        If ``expr`` is not a sympy expression.

    Examples
    --------
    >>> n = sp.Symbol("n", integer=True, positive=True)
    >>> i = sp.Idx("i", n)
    >>> print(index_latex(sp.Sum(sp.IndexedBase("x")[i], (i, 0, n - 1))))
    \\sum_{i=0}^{n - 1} {x}_{i}
    """
    if not isinstance(expr, sp.Basic):
        raise TypeError(f"expr must be a sympy expression; got {type(expr).__name__}")
    plain = {idx: sp.Symbol(idx.name) for idx in expr.atoms(sp.Idx)}
    return sp.latex(expr.xreplace(plain))


def _matmul_symbols():
    n, m, d = sp.symbols("n m d", integer=True, positive=True)
    i, j, k = sp.Idx("i", n), sp.Idx("j", d), sp.Idx("k", m)
    x = sp.IndexedBase("x", shape=(n, m))
    w = sp.IndexedBase("w", shape=(m, d))
    g = sp.IndexedBase("g", shape=(n, d))
    return (n, m, d), (i, j, k), (x, w, g)


def _as_indexed(entry, bases, index):
    """Entry of a matrix expression with MatrixElements as Indexed and its dummy renamed."""
    entry = entry.replace(
        lambda e: isinstance(e, sp.matrices.expressions.matexpr.MatrixElement),
        lambda e: bases[e.parent.name][e.i, e.j],
    )
    if isinstance(entry, sp.Sum) and len(entry.limits) == 1:
        dummy, lower, upper = entry.limits[0]
        entry = sp.Sum(entry.function.xreplace({dummy: index}), (index, lower, upper))
    return entry


def index_matmul_gradient(wrt):
    """Derive ∂L/∂x_pq or ∂L/∂w_pq of ``L = Σ_ij g_ij (XW)_ij`` in index notation, symbolic sizes.

    Parameters
    ----------
    wrt : {"X", "W"}
        The factor to differentiate with respect to (row convention, Y = XW).

    Returns
    -------
    IndexDerivation
        The loss, sympy's raw derivative (sums of Kronecker deltas), each
        reduction step, and the result ``Sum(g_pj w_qj, j)`` (for ``"X"``) or
        ``Sum(x_ip g_iq, i)`` (for ``"W"``), with its matrix form
        ``G*W.T`` or ``X.T*G``.

    Raises
    ------
    ValueError
        If ``wrt`` is not ``"X"`` or ``"W"``.

    Notes
    -----
    With :math:`y_{ij} = \\sum_k x_{ik} w_{kj}` and
    :math:`\\partial x_{ik} / \\partial x_{pq} = \\delta_{ip}\\delta_{kq}`,

    .. math::

        \\frac{\\partial L}{\\partial x_{pq}}
        = \\sum_{ij} g_{ij} \\sum_k \\delta_{ip}\\delta_{kq} w_{kj}
        = \\sum_{ij} g_{ij} \\delta_{ip} w_{qj}
        = \\sum_j g_{pj} w_{qj} = (G W^\\top)_{pq},

    and in the same way :math:`\\partial L/\\partial w_{pq} = \\sum_i x_{ip} g_{iq}
    = (X^\\top G)_{pq}`. The indices ``p, q`` are ``Idx`` objects with the ranges
    of the variable's axes, which is what allows each delta to be summed out
    (:func:`reduce_kronecker_sum`).

    Examples
    --------
    >>> der = index_matmul_gradient("X")
    >>> der.raw
    Sum(g[i, j]*Sum(KroneckerDelta(i, p)*KroneckerDelta(k, q)*w[k, j], (k, 0, m - 1)), (i, 0, n - 1), (j, 0, d - 1))
    >>> for step in der.steps[1:]:
    ...     print(step.expr)
    Sum(KroneckerDelta(i, p)*g[i, j]*w[q, j], (i, 0, n - 1), (j, 0, d - 1))
    Sum(g[p, j]*w[q, j], (j, 0, d - 1))
    >>> der.matrix_form
    G*W.T
    >>> der.result == der.matrix_entry
    True
    """
    if not isinstance(wrt, str) or wrt not in ("X", "W"):
        raise ValueError(f"wrt must be 'X' or 'W' (the factors of Y = X W); got {wrt!r}")
    (n, m, d), (i, j, k), (x, w, g) = _matmul_symbols()
    y = sp.Sum(x[i, k] * w[k, j], (k, 0, m - 1))
    loss = sp.Sum(g[i, j] * y, (i, 0, n - 1), (j, 0, d - 1))
    Xm, Wm, Gm = sp.MatrixSymbol("X", n, m), sp.MatrixSymbol("W", m, d), sp.MatrixSymbol("G", n, d)
    if wrt == "X":
        p, q = sp.Idx("p", n), sp.Idx("q", m)
        variable = x[p, q]
        order = ((k, "sum over k against δ_kq (q lies in 0..m-1): set k = q"),
                 (i, "sum over i against δ_ip (p lies in 0..n-1): set i = p"))
        matrix_form, remaining = Gm * Wm.T, j
    else:
        p, q = sp.Idx("p", m), sp.Idx("q", d)
        variable = w[p, q]
        order = ((k, "sum over k against δ_kp (p lies in 0..m-1): set k = p"),
                 (j, "sum over j against δ_jq (q lies in 0..d-1): set j = q"))
        matrix_form, remaining = Xm.T * Gm, i
    dy_raw = sp.diff(y, variable)
    dy = reduce_kronecker_sum(dy_raw, k)
    raw = sp.diff(loss, variable)
    rule = "∂x_ik/∂x_pq = δ_ip δ_kq" if wrt == "X" else "∂w_kj/∂w_pq = δ_kp δ_jq"
    steps = [ReductionStep(f"sympy's derivative: the sums differentiated term by term, {rule}", raw)]
    expr = raw
    for index, text in order:
        expr = reduce_kronecker_sum(expr, index)
        steps.append(ReductionStep(text, expr))
    bases = {"X": x, "W": w, "G": g}
    matrix_entry = _as_indexed(matrix_form[p, q], bases, remaining)
    return IndexDerivation(
        wrt=wrt,
        sizes=(n, m, d),
        y=y,
        loss=loss,
        variable=variable,
        dy_raw=dy_raw,
        dy=dy,
        raw=raw,
        sympy_doit=raw.doit(),
        steps=tuple(steps),
        result=expr,
        matrix_form=matrix_form,
        matrix_entry=matrix_entry,
    )


# ---------------------------------------------------------------------------
# Matrix expressions of symbolic shape
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class TraceGradients:
    """Result of :func:`trace_matmul_gradients`.

    Attributes
    ----------
    convention : str
        ``"XW"`` or ``"WX"``.
    X : ``sympy.MatrixSymbol``
        ``X``, of symbolic shape.
    W : ``sympy.MatrixSymbol``
        ``W``, of symbolic shape.
    G : ``sympy.MatrixSymbol``
        ``G``, of the symbolic shape of ``Y``.
    loss : ``sympy.Trace``
        :math:`\\operatorname{tr}(G^\\top Y)`, equal to :math:`\\sum_{ij} g_{ij} y_{ij}`.
    dX : ``sympy.MatrixExpr``
        sympy's derivative of ``loss`` with respect to ``X``.
    dW : ``sympy.MatrixExpr``
        sympy's derivative of ``loss`` with respect to ``W``.

    Examples
    --------
    >>> grads = trace_matmul_gradients(convention="WX")
    >>> grads.convention, grads.loss, grads.dW
    ('WX', Trace(G.T*W*X), G*X.T)
    """

    convention: str
    X: sp.MatrixSymbol
    W: sp.MatrixSymbol
    G: sp.MatrixSymbol
    loss: sp.Expr
    dX: sp.Expr
    dW: sp.Expr


def trace_matmul_gradients(*, convention="XW"):
    """Differentiate ``Trace(G.T * Y)`` with sympy matrix expressions of symbolic shape.

    Parameters
    ----------
    convention : {"XW", "WX"}, optional
        ``"XW"`` (default): ``X`` is n×m, ``W`` is m×d, ``Y = X W``, ``G`` n×d.
        ``"WX"``: ``W`` is d×m, ``X`` is m×n, ``Y = W X``, ``G`` d×n.

    Returns
    -------
    TraceGradients
        The symbols, the loss and sympy's ``dX`` and ``dW``.

    Raises
    ------
    ValueError
        If ``convention`` is unknown.

    Notes
    -----
    :math:`\\operatorname{tr}(G^\\top Y) = \\sum_{ij} g_{ij} y_{ij} = \\langle G, Y\\rangle`,
    so its gradient with respect to ``Y`` is ``G`` and the derivatives with
    respect to ``X`` and ``W`` are the backward pass of the product:
    ``G*W.T`` and ``X.T*G`` for ``Y = X W``; ``W.T*G`` and ``G*X.T`` for ``Y = W X``.

    Examples
    --------
    >>> grads = trace_matmul_gradients()
    >>> grads.loss
    Trace(G.T*X*W)
    >>> grads.dX, grads.dW
    (G*W.T, X.T*G)
    >>> trace_matmul_gradients(convention="WX").dX
    W.T*G
    """
    convention = _check_convention(convention)
    n, m, d = sp.symbols("n m d", integer=True, positive=True)
    if convention == "XW":
        X, W, G = sp.MatrixSymbol("X", n, m), sp.MatrixSymbol("W", m, d), sp.MatrixSymbol("G", n, d)
        Y = X * W
    else:
        X, W, G = sp.MatrixSymbol("X", m, n), sp.MatrixSymbol("W", d, m), sp.MatrixSymbol("G", d, n)
        Y = W * X
    loss = sp.Trace(G.T * Y)
    return TraceGradients(convention, X, W, G, loss, sp.diff(loss, X), sp.diff(loss, W))
