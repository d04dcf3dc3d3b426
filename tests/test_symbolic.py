"""Tests of matgrad.symbolic: exact derivations of the matrix-product gradients.

Besides pinning the results, the last section pins the sympy behaviour the module
relies on or works around: if a sympy upgrade changes it, a test here fails
instead of the book changing silently.
"""

import dataclasses
import itertools

import pytest
import sympy as sp
from hypothesis import given
from hypothesis import strategies as st

from matgrad import (
    index_latex,
    index_matmul_gradient,
    reduce_kronecker_sum,
    symbol_matrix,
    trace_matmul_gradients,
    verify_matmul_gradients,
)

N, M, D = sp.symbols("n m d", integer=True, positive=True)
I, J, K = sp.Idx("i", N), sp.Idx("j", D), sp.Idx("k", M)
x = sp.IndexedBase("x", shape=(N, M))
w = sp.IndexedBase("w", shape=(M, D))
g = sp.IndexedBase("g", shape=(N, D))


# ---------------------------------------------------------------------------
# verify_matmul_gradients (concrete sizes, explicit entries)
# ---------------------------------------------------------------------------

SIZES = [(1, 1, 1), (2, 3, 4), (3, 1, 2), (4, 2, 1), (3, 3, 3)]


@pytest.mark.parametrize("convention", ["XW", "WX"])
@pytest.mark.parametrize("n,m,d", SIZES)
def test_verify_matches_closed_forms(n, m, d, convention):
    result = verify_matmul_gradients(n, m, d, convention=convention)
    assert bool(result) is True
    assert result.dX_matches is True and result.dW_matches is True
    assert result.dX.shape == result.X.shape and result.dW.shape == result.W.shape
    if convention == "XW":
        assert result.X.shape == (n, m) and result.W.shape == (m, d) and result.G.shape == (n, d)
    else:
        assert result.W.shape == (d, m) and result.X.shape == (m, n) and result.G.shape == (d, n)


def test_verify_derived_entries_are_the_textbook_sums():
    result = verify_matmul_gradients(2, 3, 2)
    X, W, G = result.X, result.W, result.G
    # dL/dx_pq = sum_j g_pj w_qj and dL/dw_pq = sum_i x_ip g_iq, written out here by hand
    for p, q in itertools.product(range(2), range(3)):
        assert sp.expand(result.dX[p, q] - sum(G[p, j] * W[q, j] for j in range(2))) == 0
    for p, q in itertools.product(range(3), range(2)):
        assert sp.expand(result.dW[p, q] - sum(X[i, p] * G[i, q] for i in range(2))) == 0


@pytest.mark.parametrize(
    "closed_forms, dX_ok, dW_ok",
    [
        (lambda X, W, G: (G * W, X.T * G), False, True),  # transpose forgotten (square sizes)
        (lambda X, W, G: (G * W.T, X * G.T), True, False),  # dW with the transposes misplaced
        (lambda X, W, G: (W.T * G, G * X.T), False, False),  # the formulas of the other convention
        (lambda X, W, G: (2 * G * W.T, X.T * G), False, True),  # a wrong factor
    ],
)
def test_verify_rejects_wrong_closed_forms(closed_forms, dX_ok, dW_ok):
    # test the test: a wrong formula must make the comparison fail
    result = verify_matmul_gradients(3, 3, 3, closed_forms=closed_forms)
    assert result.dX_matches is dX_ok and result.dW_matches is dW_ok
    assert bool(result) is False


def test_verify_rejects_wrong_shape_and_other_convention():
    # dW = X^T G has shape (m, d); its transpose (d, m) must not "match"
    result = verify_matmul_gradients(2, 3, 4, closed_forms=lambda X, W, G: (G * W.T, (X.T * G).T))
    assert result.dX_matches and not result.dW_matches
    # the XW formulas are wrong for Y = W X
    xw = lambda X, W, G: (G * W.T, X.T * G)  # noqa: E731
    assert not verify_matmul_gradients(3, 3, 3, convention="WX", closed_forms=xw)


def test_verify_result_is_frozen():
    result = verify_matmul_gradients(1, 1, 1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.dX_matches = False


@pytest.mark.parametrize("bad", [0, -2, 2.0, 2.5, True, "3", None])
@pytest.mark.parametrize("position", [0, 1, 2])
def test_verify_bad_sizes(bad, position):
    sizes = [2, 2, 2]
    sizes[position] = bad
    name = "nmd"[position]
    with pytest.raises(ValueError, match=f"{name} must be a positive integer"):
        verify_matmul_gradients(*sizes)


@pytest.mark.parametrize("bad", ["xw", "XWT", "", None, 1])
def test_verify_bad_convention(bad):
    with pytest.raises(ValueError, match="convention must be 'XW'"):
        verify_matmul_gradients(2, 2, 2, convention=bad)


def test_verify_bad_closed_forms():
    with pytest.raises(TypeError, match="closed_forms must be callable"):
        verify_matmul_gradients(2, 2, 2, closed_forms="G*W.T")


@pytest.mark.parametrize(
    "closed_forms, match",
    [
        (lambda X, W, G: G * W.T, "must return a pair"),
        (lambda X, W, G: (G * W.T, X.T * G, G), "must return a pair"),
        (lambda X, W, G: (G * W.T, 0), "its dW is int"),
        (lambda X, W, G: ([[1]], X.T * G), "its dX is list"),
    ],
)
def test_verify_bad_closed_forms_return(closed_forms, match):
    with pytest.raises(TypeError, match=match):
        verify_matmul_gradients(1, 1, 1, closed_forms=closed_forms)


def test_verify_accepts_numpy_integers():
    import numpy as np

    assert verify_matmul_gradients(np.int64(2), np.int32(1), np.uint8(2))


def test_symbol_matrix_names_are_unique_and_real():
    A = symbol_matrix("a", 11, 2)
    assert A.shape == (11, 2)
    assert len(set(A)) == 22
    assert all(s.is_real for s in A)
    assert symbol_matrix("x", 2, 2)[1, 0] == sp.Symbol("x_10", real=True)


@pytest.mark.parametrize("bad", ["", None, 3])
def test_symbol_matrix_bad_name(bad):
    with pytest.raises(ValueError, match="name must be a non-empty string"):
        symbol_matrix(bad, 2, 2)


def test_symbol_matrix_bad_size():
    with pytest.raises(ValueError, match="cols must be a positive integer"):
        symbol_matrix("x", 2, 0)


# ---------------------------------------------------------------------------
# index_matmul_gradient (symbolic sizes)
# ---------------------------------------------------------------------------


def test_index_gradient_wrt_X():
    der = index_matmul_gradient("X")
    p, q = sp.Idx("p", N), sp.Idx("q", M)
    assert der.variable == x[p, q]
    assert der.result == sp.Sum(g[p, J] * w[q, J], (J, 0, D - 1))
    assert der.dy == sp.KroneckerDelta(I, p) * w[q, J]  # dy_ij/dx_pq = w_qj delta_ip
    assert der.matrix_form == sp.MatrixSymbol("G", N, D) * sp.MatrixSymbol("W", M, D).T
    assert der.matrix_entry == der.result  # the transpose step
    assert der.sizes == (N, M, D)


def test_index_gradient_wrt_W():
    der = index_matmul_gradient("W")
    p, q = sp.Idx("p", M), sp.Idx("q", D)
    assert der.variable == w[p, q]
    assert der.result == sp.Sum(x[I, p] * g[I, q], (I, 0, N - 1))
    assert der.dy == x[I, p] * sp.KroneckerDelta(J, q)  # dy_ij/dw_pq = x_ip delta_jq
    assert der.matrix_form == sp.MatrixSymbol("X", N, M).T * sp.MatrixSymbol("G", N, D)
    assert der.matrix_entry == der.result


@pytest.mark.parametrize("wrt", ["X", "W"])
def test_index_gradient_steps(wrt):
    der = index_matmul_gradient(wrt)
    assert der.loss == sp.Sum(g[I, J] * sp.Sum(x[I, K] * w[K, J], (K, 0, M - 1)), (I, 0, N - 1), (J, 0, D - 1))
    assert [step.expr for step in der.steps][0] == der.raw
    assert der.steps[-1].expr == der.result
    assert len(der.steps) == 3
    # every step removes exactly one Kronecker delta and one summation index
    deltas = [len(step.expr.atoms(sp.KroneckerDelta)) for step in der.steps]
    assert deltas == [2, 1, 0]
    assert not der.result.has(sp.Piecewise)
    latex = der.latex()
    assert latex.startswith(r"\begin{aligned}") and latex.count("&=") == 4
    assert r"0\mathrel{..}" not in latex  # indices printed by name only


@pytest.mark.parametrize("wrt", ["X", "W"])
@pytest.mark.parametrize("sizes", [(2, 3, 2), (1, 2, 3), (3, 1, 1)])
def test_index_gradient_agrees_with_explicit_entries(wrt, sizes):
    """The symbolic-size result, evaluated at concrete sizes, equals the entry-by-entry derivative."""
    der = index_matmul_gradient(wrt)
    explicit = verify_matmul_gradients(*sizes)
    concrete = dict(zip((N, M, D), sizes))
    bases = {"x": explicit.X, "w": explicit.W, "g": explicit.G}
    target = explicit.dX if wrt == "X" else explicit.dW
    p, q = der.variable.indices
    for a, b in itertools.product(*(range(s) for s in target.shape)):
        entry = der.result.xreplace({p: sp.Integer(a), q: sp.Integer(b)}).xreplace(concrete).doit()
        entry = entry.replace(lambda e: isinstance(e, sp.Indexed), lambda e: bases[str(e.base)][e.indices])
        assert sp.expand(entry - target[a, b]) == 0


@pytest.mark.parametrize("bad", ["x", "Y", "", None, 0])
def test_index_gradient_bad_wrt(bad):
    with pytest.raises(ValueError, match="wrt must be 'X' or 'W'"):
        index_matmul_gradient(bad)


def test_index_latex_prints_indices_by_name():
    der = index_matmul_gradient("X")
    assert r"0\mathrel{..}" in sp.latex(der.raw)  # what sympy does on its own
    tex = index_latex(der.raw)
    assert r"0\mathrel{..}" not in tex and r"\delta_{i p}" in tex
    assert index_latex(der.result) == r"\sum_{j=0}^{d - 1} {g}_{p,j} {w}_{q,j}"
    with pytest.raises(TypeError, match="expr must be a sympy expression"):
        index_latex("x")


# ---------------------------------------------------------------------------
# reduce_kronecker_sum
# ---------------------------------------------------------------------------


def test_reduce_symbolic_range():
    k, q = sp.Idx("k", M), sp.Idx("q", M)
    f = sp.Function("f")
    assert reduce_kronecker_sum(sp.Sum(f(k) * sp.KroneckerDelta(q, k), (k, 0, M - 1)), k) == f(q)
    # a multi-index Sum keeps its other limits
    expr = sp.Sum(f(k) * g[I, k] * sp.KroneckerDelta(k, q), (I, 0, N - 1), (k, 0, M - 1))
    assert reduce_kronecker_sum(expr, k) == sp.Sum(f(q) * g[I, q], (I, 0, N - 1))


@given(upper=st.integers(0, 5), c=st.integers(0, 5), coeffs=st.lists(st.integers(-9, 9), min_size=6, max_size=6))
def test_reduce_matches_brute_force(upper, c, coeffs):
    """On concrete ranges the rule agrees with sympy's explicit summation, or refuses."""
    k = sp.Symbol("k", integer=True)
    a = sp.IndexedBase("a")
    expr = sp.Sum(a[k] * sp.KroneckerDelta(k, c), (k, 0, upper))
    explicit = expr.doit().xreplace({a[t]: coeffs[t] for t in range(6)})
    if c <= upper:
        reduced = reduce_kronecker_sum(expr, k).xreplace({a[t]: coeffs[t] for t in range(6)})
        assert reduced == explicit == coeffs[c]
    else:
        assert explicit == 0
        with pytest.raises(ValueError, match="not provably in the range"):
            reduce_kronecker_sum(expr, k)


def test_reduce_refuses_unprovable_range():
    # q runs over 0..m-1, the sum over 0..n-1: the rule would be wrong when q >= n
    k, q = sp.Idx("k", N), sp.Idx("q", M)
    with pytest.raises(ValueError, match=r"q is not provably in the range \[0, n - 1\]"):
        reduce_kronecker_sum(sp.Sum(w[k, J] * sp.KroneckerDelta(k, q), (k, 0, N - 1)), k)
    # a plain symbol has no known range
    s = sp.Symbol("s", integer=True)
    with pytest.raises(ValueError, match="s is not provably in the range"):
        reduce_kronecker_sum(sp.Sum(w[k, J] * sp.KroneckerDelta(k, s), (k, 0, N - 1)), k)
    # an integer that may exceed a symbolic upper bound (m could be 1)
    k2 = sp.Idx("k2", M)
    with pytest.raises(ValueError, match="1 is not provably"):
        reduce_kronecker_sum(sp.Sum(w[k2, J] * sp.KroneckerDelta(k2, 1), (k2, 0, M - 1)), k2)


def test_reduce_refuses_wrong_shapes_of_input():
    k, q = sp.Idx("k", M), sp.Idx("q", M)
    with pytest.raises(ValueError, match="no Sum over k"):
        reduce_kronecker_sum(w[k, J] * sp.KroneckerDelta(k, q), k)
    with pytest.raises(ValueError, match="not a product with a KroneckerDelta"):
        reduce_kronecker_sum(sp.Sum(w[k, J], (k, 0, M - 1)), k)
    with pytest.raises(ValueError, match="not a product with a KroneckerDelta"):
        reduce_kronecker_sum(sp.Sum(w[k, J] + sp.KroneckerDelta(k, q), (k, 0, M - 1)), k)
    with pytest.raises(TypeError, match="expr must be a sympy expression"):
        reduce_kronecker_sum("Sum(w[k])", k)
    with pytest.raises(TypeError, match="index must be a sympy Symbol or Idx"):
        reduce_kronecker_sum(sp.Sum(w[k, J], (k, 0, M - 1)), "k")


# ---------------------------------------------------------------------------
# trace_matmul_gradients (matrix expressions)
# ---------------------------------------------------------------------------


def test_trace_gradients_exact_output():
    t = trace_matmul_gradients()
    assert (str(t.loss), str(t.dX), str(t.dW)) == ("Trace(G.T*X*W)", "G*W.T", "X.T*G")
    assert t.dX == t.G * t.W.T and t.dW == t.X.T * t.G
    assert t.dX.shape == t.X.shape and t.dW.shape == t.W.shape
    c = trace_matmul_gradients(convention="WX")
    assert (str(c.dX), str(c.dW)) == ("W.T*G", "G*X.T")
    assert c.dX.shape == c.X.shape == (M, N) and c.dW.shape == c.W.shape == (D, M)


@pytest.mark.parametrize("convention", ["XW", "WX"])
def test_trace_gradients_agree_with_explicit_entries(convention):
    t = trace_matmul_gradients(convention=convention)
    explicit = verify_matmul_gradients(2, 3, 4, convention=convention)
    concrete = {N: 2, M: 3, D: 4}
    swap = {s.xreplace(concrete): e for s, e in ((t.X, explicit.X), (t.W, explicit.W), (t.G, explicit.G))}
    for derived, target in ((t.dX, explicit.dX), (t.dW, explicit.dW)):
        assert sp.Matrix(derived.xreplace(concrete).xreplace(swap)) == target


def test_trace_gradients_bad_convention():
    with pytest.raises(ValueError, match="convention must be"):
        trace_matmul_gradients(convention="XWT")


# ---------------------------------------------------------------------------
# sympy behaviour the module relies on (regression tests)
# ---------------------------------------------------------------------------


def test_sympy_diff_of_indexed_sum_gives_products_of_deltas():
    """reduce_kronecker_sum expects exactly this form from sympy's diff."""
    p, q = sp.Idx("p", N), sp.Idx("q", M)
    y = sp.Sum(x[I, K] * w[K, J], (K, 0, M - 1))
    raw = sp.diff(sp.Sum(g[I, J] * y, (I, 0, N - 1), (J, 0, D - 1)), x[p, q])
    inner = sp.Sum(sp.KroneckerDelta(I, p) * sp.KroneckerDelta(K, q) * w[K, J], (K, 0, M - 1))
    assert raw == sp.Sum(g[I, J] * inner, (I, 0, N - 1), (J, 0, D - 1))
    assert index_matmul_gradient("X").raw == raw


@pytest.mark.parametrize("wrt", ["X", "W"])
def test_sympy_alone_does_not_finish_the_reduction(wrt):
    """If sympy learns to reduce these sums itself, this fails: revisit chapter 4's narrative."""
    der = index_matmul_gradient(wrt)
    done = der.sympy_doit
    assert done == der.raw.doit()
    assert done.has(sp.Piecewise) and done.has(sp.KroneckerDelta) and isinstance(done, sp.Sum)
    assert len(done.limits) == 2  # both outer sums survive
    assert sp.simplify(done).has(sp.Piecewise)
    if wrt == "X":
        p, q = der.variable.indices
        piece = sp.Piecewise((sp.KroneckerDelta(I, p) * g[I, J] * w[q, J], M >= q + 1), (0, True))
        assert done == sp.Sum(piece, (I, 0, N - 1), (J, 0, D - 1))


def test_sympy_derive_by_array_puts_the_variable_axes_first():
    X = symbol_matrix("x", 2, 3)
    W = symbol_matrix("w", 3, 4)
    Y = X * W  # (2, 4)
    J_sympy = sp.derive_by_array(sp.Array(Y), sp.Array(X))
    assert J_sympy.shape == (2, 3, 2, 4)  # X's axes, then Y's: the reverse of the book's layout
    # entry [p, q, i, j] = dy_ij/dx_pq = w_qj delta_ip
    assert J_sympy[1, 2, 1, 3] == W[2, 3] and J_sympy[1, 2, 0, 3] == 0


def test_sympy_matrix_symbol_derivative_output():
    X, W, G = sp.MatrixSymbol("X", N, M), sp.MatrixSymbol("W", M, D), sp.MatrixSymbol("G", N, D)
    loss = sp.Trace(G.T * X * W)
    assert sp.diff(loss, X) == sp.MatMul(G, sp.Transpose(W))
    assert sp.diff(loss, W) == sp.MatMul(sp.Transpose(X), G)
    assert sp.srepr(sp.diff(loss, X)) == sp.srepr(G * W.T)


def test_sympy_matrix_entry_is_a_sum_over_a_dummy():
    """IndexDerivation.matrix_entry renames this dummy; pin the form it has."""
    G, W = sp.MatrixSymbol("G", N, D), sp.MatrixSymbol("W", M, D)
    p, q = sp.Idx("p", N), sp.Idx("q", M)
    entry = (G * W.T)[p, q]
    assert isinstance(entry, sp.Sum) and len(entry.limits) == 1
    dummy, lower, upper = entry.limits[0]
    assert isinstance(dummy, sp.Dummy) and (lower, upper) == (0, D - 1)
    assert entry.function == G[p, dummy] * W[q, dummy]


# ---------------------------------------------------------------------------
# regressions of issue 12
# ---------------------------------------------------------------------------


def test_reduce_substitutes_into_the_limits_of_inner_sums():
    """Issue 12, defect 3: sum_k sum_{j<=k} delta_kq x_j is sum_{j<=q} x_j; the limit j <= k kept a free k."""
    k, q = sp.Idx("k", M), sp.Idx("q", M)
    j = sp.Symbol("j", integer=True)
    a = sp.IndexedBase("a")
    expr = sp.Sum(sp.KroneckerDelta(k, q) * a[j], (j, 0, k), (k, 0, M - 1))
    reduced = reduce_kronecker_sum(expr, k)
    assert reduced == sp.Sum(a[j], (j, 0, q))
    assert k not in reduced.free_symbols
    # on concrete sizes it agrees with the double sum written out term by term
    for size, value in itertools.product(range(1, 4), range(3)):
        if value < size:
            terms = [sp.KroneckerDelta(kk, value) * a[jj] for kk in range(size) for jj in range(kk + 1)]
            assert sp.expand(sp.Add(*terms) - reduced.xreplace({q: value}).doit()) == 0


def test_reduce_refuses_a_partner_summed_inside_the_sum():
    """delta_kj with j summed inside the sum over k: setting k = j would leave j free outside its sum."""
    k, j = sp.Idx("k", M), sp.Idx("j", M)
    a = sp.IndexedBase("a")
    with pytest.raises(ValueError, match="j is summed inside the sum over k"):
        reduce_kronecker_sum(sp.Sum(sp.KroneckerDelta(k, j) * a[j], (j, 0, M - 1), (k, 0, M - 1)), k)


def test_verify_closed_forms_of_symbolic_shape_are_a_type_error():
    """Issue 12, defect 7: a closed form of symbolic shape raised sympy's ValueError."""
    symbolic = sp.MatrixSymbol("A", sp.Symbol("n"), 2)
    with pytest.raises(TypeError, match=r"closed_forms must return matrices of concrete shape; its dX has shape \(n, 2\)"):
        verify_matmul_gradients(2, 2, 2, closed_forms=lambda X, W, G: (symbolic, X.T * G))
