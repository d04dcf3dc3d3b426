"""Tests of matgrad.matmul: the backward rules of np.matmul and of nn.Linear.

Oracles: PyTorch autograd in float64 (``torch.testing.assert_close``), central
differences (``matgrad.numerical_gradient`` / ``check_gradient``), and the exact
entry-by-entry sympy check for the 2-D rule.
"""

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from matgrad import check_gradient, linear_backward, matmul_backward, numerical_gradient
from matgrad._validate import shape_str
from matgrad.matmul import _unbroadcast

# ---------------------------------------------------------------- oracles


def torch_matmul_grads(A, B, dC):
    """dA, dB from PyTorch autograd in float64, as numpy arrays."""
    tA = torch.tensor(np.array(A, dtype=np.float64), requires_grad=True)  # a copy: torch refuses negative strides
    tB = torch.tensor(np.array(B, dtype=np.float64), requires_grad=True)
    (tA @ tB).backward(torch.tensor(np.array(dC, dtype=np.float64)))
    return tA.grad, tB.grad


def assert_matches_torch(A, B, dC):
    dA, dB = matmul_backward(A, B, dC)
    tdA, tdB = torch_matmul_grads(A, B, dC)
    assert dA.shape == np.shape(A) and dB.shape == np.shape(B)
    torch.testing.assert_close(torch.from_numpy(np.ascontiguousarray(dA)), tdA)
    torch.testing.assert_close(torch.from_numpy(np.ascontiguousarray(dB)), tdB)


def draw(rng, A_shape, B_shape):
    A = rng.standard_normal(A_shape)
    B = rng.standard_normal(B_shape)
    dC = rng.standard_normal(np.matmul(A, B).shape)
    return A, B, dC


# ---------------------------------------------------------------- against PyTorch

SHAPES = [
    # 2-D
    ((3, 4), (4, 5)),
    ((1, 1), (1, 1)),
    ((1, 4), (4, 1)),
    ((5, 1), (1, 3)),
    ((4, 4), (4, 4)),
    # 1-D on either side and on both (vector . vector is a 0-d result)
    ((4,), (4, 5)),
    ((3, 4), (4,)),
    ((4,), (4,)),
    ((1,), (1,)),
    ((1,), (1, 3)),
    # 1-D against a stack
    ((4,), (2, 4, 5)),
    ((2, 3, 4), (4,)),
    ((4,), (2, 3, 4, 5)),
    # stacks against a shared matrix, and a shared matrix against stacks
    ((2, 3, 4), (4, 5)),
    ((2, 3, 3, 4), (4, 5)),
    ((3, 4), (2, 4, 5)),
    ((3, 4), (2, 3, 4, 5)),
    # stacks on both sides, equal and broadcast batch axes
    ((2, 3, 4), (2, 4, 5)),
    ((8, 1, 4, 5), (3, 5, 6)),
    ((1, 3, 4), (2, 4, 5)),
    ((2, 1, 3, 4), (1, 5, 4, 2)),
    ((1, 1, 3, 4), (4, 2)),
    ((3, 1, 2, 4), (1, 4, 2)),
    # batch axes that are all of size 1 (a shared matrix in disguise)
    ((2, 3, 4), (1, 4, 5)),
    ((1, 1, 3, 4), (2, 4, 5)),
    ((3, 4), (1, 1, 4, 5)),
    ((1, 3, 4), (1, 1, 4, 5)),
    ((4,), (1, 4, 5)),
    ((1, 3, 4), (4,)),
    # empty axes
    ((0, 3, 4), (4, 5)),
    ((3, 0), (0, 5)),
    ((2, 3, 0), (0, 5)),
    ((3, 0), (2, 0, 5)),
    ((0, 4), (4, 2)),
    ((2, 0, 3, 4), (1, 4, 5)),
    ((1, 3, 4), (2, 0, 4, 5)),
]


@pytest.mark.parametrize("A_shape, B_shape", SHAPES)
def test_matches_torch(A_shape, B_shape, rng):
    assert_matches_torch(*draw(rng, A_shape, B_shape))


def test_vector_dot_vector_takes_0d_gradient(rng):
    x, y = rng.standard_normal(5), rng.standard_normal(5)
    dx, dy = matmul_backward(x, y, np.array(3.0))
    np.testing.assert_allclose(dx, 3.0 * y)
    np.testing.assert_allclose(dy, 3.0 * x)
    # a Python float is a 0-d array as well
    dx2, _ = matmul_backward(x, y, 3.0)
    np.testing.assert_allclose(dx2, dx)


def test_broadcast_batch_axis_is_summed_back(rng):
    A, B, dC = draw(rng, (8, 1, 4, 5), (3, 5, 6))
    dA, dB = matmul_backward(A, B, dC)
    assert dA.shape == (8, 1, 4, 5) and dB.shape == (3, 5, 6)
    # by hand: dA is dC @ B^T summed over the axis of size 3, dB is A^T @ dC summed over 8
    np.testing.assert_allclose(dA, (dC @ np.swapaxes(B, -1, -2)).sum(axis=1, keepdims=True))
    np.testing.assert_allclose(dB, (np.swapaxes(A, -1, -2) @ dC).sum(axis=0))


NONCONTIGUOUS = {
    "transposed A": lambda rng: (rng.standard_normal((4, 3)).T, rng.standard_normal((4, 5))),
    "transposed B": lambda rng: (rng.standard_normal((3, 4)), rng.standard_normal((5, 4)).T),
    "both transposed": lambda rng: (rng.standard_normal((4, 3)).T, rng.standard_normal((5, 4)).T),
    "strided A": lambda rng: (rng.standard_normal((6, 8))[::2, ::2], rng.standard_normal((4, 5))),
    "strided vector": lambda rng: (rng.standard_normal(8)[::2], rng.standard_normal((4, 5))[:, ::-1]),
    "stack of transposes": lambda rng: (
        np.swapaxes(rng.standard_normal((2, 4, 3)), -1, -2),
        rng.standard_normal((4, 5)),
    ),
    "shared transposed against stack": lambda rng: (
        rng.standard_normal((4, 3)).T,
        np.swapaxes(rng.standard_normal((2, 5, 4)), -1, -2),
    ),
    "fortran-ordered stack": lambda rng: (
        np.asfortranarray(rng.standard_normal((2, 3, 4))),
        rng.standard_normal((2, 4, 5))[:, :, ::2],
    ),
}


@pytest.mark.parametrize("case", sorted(NONCONTIGUOUS))
def test_noncontiguous_inputs(case, rng):
    A, B = NONCONTIGUOUS[case](rng)
    dC = rng.standard_normal(np.matmul(A, B).shape)
    assert_matches_torch(A, B, dC)
    # a non-contiguous dC too
    dC_view = np.asfortranarray(dC) if dC.ndim >= 2 else dC
    assert_matches_torch(A, B, dC_view)


@st.composite
def broadcastable_shapes(draw):
    """Random shapes that np.matmul accepts: vectors, matrices and broadcast stacks."""
    n, m, d = (draw(st.integers(1, 4)) for _ in range(3))
    batch_ndim = draw(st.integers(0, 3))
    batch = [draw(st.integers(1, 3)) for _ in range(batch_ndim)]
    a_batch = [s if draw(st.booleans()) else 1 for s in batch]
    b_batch = [s if draw(st.booleans()) else 1 for s in batch]
    a_batch = a_batch[draw(st.integers(0, batch_ndim)) :]  # drop some leading axes
    b_batch = b_batch[draw(st.integers(0, batch_ndim)) :]
    a_vec = not a_batch and draw(st.booleans())
    b_vec = not b_batch and draw(st.booleans())
    A_shape = (m,) if a_vec else tuple(a_batch) + (n, m)
    B_shape = (m,) if b_vec else tuple(b_batch) + (m, d)
    return A_shape, B_shape


@given(shapes=broadcastable_shapes(), seed=st.integers(0, 2**16))
def test_matches_torch_random_shapes(shapes, seed):
    A_shape, B_shape = shapes
    assert_matches_torch(*draw(np.random.default_rng(seed), A_shape, B_shape))


# ---------------------------------------------------------------- against finite differences


@pytest.mark.parametrize("A_shape, B_shape", [((2, 3), (3, 2)), ((3,), (3, 2)), ((2, 1, 2, 3), (3, 3, 2)), ((3,), (3,))])
def test_matches_numerical_gradient(A_shape, B_shape, rng):
    A, B, G = draw(rng, A_shape, B_shape)
    dA, dB = matmul_backward(A, B, G)
    loss_A = lambda A_: np.sum(G * np.matmul(A_, B))  # noqa: E731
    loss_B = lambda B_: np.sum(G * np.matmul(A, B_))  # noqa: E731
    np.testing.assert_allclose(dA, numerical_gradient(loss_A, A), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(dB, numerical_gradient(loss_B, B), rtol=1e-6, atol=1e-8)
    assert check_gradient(loss_A, A, dA) and check_gradient(loss_B, B, dB)


def test_matches_exact_sympy_rule():
    """The 2-D rule on integer matrices equals sympy's exact entry-by-entry derivative."""
    import sympy as sp

    from matgrad import symbol_matrix

    X, W, G = symbol_matrix("x", 2, 3), symbol_matrix("w", 3, 2), symbol_matrix("g", 2, 2)
    L = sum((G.multiply_elementwise(X * W)))
    values = {s: v for s, v in zip(X.free_symbols | W.free_symbols | G.free_symbols, range(1, 100))}
    num = lambda M: np.array(M.subs(values), dtype=np.int64)  # noqa: E731
    dX_exact = num(sp.Matrix(2, 3, lambda i, j: sp.diff(L, X[i, j])))
    dW_exact = num(sp.Matrix(3, 2, lambda i, j: sp.diff(L, W[i, j])))
    dX, dW = matmul_backward(num(X), num(W), num(G))
    np.testing.assert_array_equal(dX, dX_exact)  # small integers: exact in float64
    np.testing.assert_array_equal(dW, dW_exact)


# ---------------------------------------------------------------- test the test


def test_wrong_backward_is_rejected_by_check_gradient(rng):
    """Forgetting the transpose on square matrices gives the right shape but a wrong value."""
    A, B, G = draw(rng, (3, 3), (3, 3))
    loss_A = lambda A_: np.sum(G * (A_ @ B))  # noqa: E731
    loss_B = lambda B_: np.sum(G * (A @ B_))  # noqa: E731
    dA, dB = matmul_backward(A, B, G)
    assert check_gradient(loss_A, A, dA) and check_gradient(loss_B, B, dB)
    assert not check_gradient(loss_A, A, G @ B)  # transpose forgotten, shapes agree
    assert not check_gradient(loss_B, B, A @ G)
    assert not check_gradient(loss_B, B, G.T @ A)  # wrong order, transposed


def test_wrong_unbroadcast_is_rejected_by_torch_comparison(rng):
    """Averaging instead of summing over a broadcast batch axis fails the PyTorch oracle."""
    A, B, dC = draw(rng, (4, 2, 3), (3, 2))
    _, tdB = torch_matmul_grads(A, B, dC)
    wrong = (np.swapaxes(A, -1, -2) @ dC).mean(axis=0)
    with pytest.raises(AssertionError):
        torch.testing.assert_close(torch.from_numpy(wrong), tdB)


# ---------------------------------------------------------------- dtypes


def test_float32_stays_float32(rng):
    A, B, dC = (x.astype(np.float32) for x in draw(rng, (2, 3, 4), (4, 5)))
    dA, dB = matmul_backward(A, B, dC)
    assert dA.dtype == np.float32 and dB.dtype == np.float32
    tdA, tdB = torch_matmul_grads(A, B, dC)
    np.testing.assert_allclose(dA, tdA.numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(dB, tdB.numpy(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("A_shape, B_shape", [((2, 3), (3, 4)), ((3,), (3,)), ((2, 2, 3), (3, 4)), ((3, 2), (2, 2, 4))])
def test_integers_give_float64(A_shape, B_shape, rng):
    A = rng.integers(-5, 5, A_shape)
    B = rng.integers(-5, 5, B_shape)
    dC = rng.integers(-5, 5, np.matmul(A, B).shape)
    dA, dB = matmul_backward(A, B, dC)
    assert dA.dtype == np.float64 and dB.dtype == np.float64
    assert_matches_torch(A, B, dC)


def test_mixed_precision_promotes(rng):
    A, B, dC = draw(rng, (2, 3), (3, 4))
    dA, dB = matmul_backward(A.astype(np.float32), B, dC.astype(np.float32))
    assert dA.dtype == np.float64 and dB.dtype == np.float64


def test_nested_lists_are_accepted():
    dA, dB = matmul_backward([[1, 2]], [[3], [4]], [[1]])
    np.testing.assert_array_equal(dA, [[3.0, 4.0]])
    np.testing.assert_array_equal(dB, [[1.0], [2.0]])


# ---------------------------------------------------------------- bad input

BAD_DC = [
    # (A shape, B shape, dC shape, what dC should be)
    ((2, 3), (3, 4), (4, 2), r"\(2, 4\)"),
    ((2, 3), (3, 4), (1, 4), r"\(2, 4\)"),  # broadcastable to (2, 4), still wrong
    ((2, 3), (3, 4), (4,), r"\(2, 4\)"),  # broadcastable, still wrong
    ((2, 3), (3, 4), (), r"\(2, 4\)"),
    ((3,), (3,), (1,), r"\(\)"),  # vector . vector is 0-d
    ((3,), (3, 4), (1, 4), r"\(4,\)"),  # the promoted axis is removed again
    ((2, 3), (3,), (2, 1), r"\(2,\)"),
    ((8, 1, 4, 5), (3, 5, 6), (8, 1, 4, 6), r"\(8, 3, 4, 6\)"),  # A's batch, not the broadcast one
    ((2, 3, 4), (4, 5), (3, 5), r"\(2, 3, 5\)"),
]


@pytest.mark.parametrize("A_shape, B_shape, dC_shape, expected", BAD_DC)
def test_wrong_dC_shape(A_shape, B_shape, dC_shape, expected):
    A, B, dC = np.ones(A_shape), np.ones(B_shape), np.ones(dC_shape)
    with pytest.raises(ValueError, match=r"dC must have the shape of A @ B, " + expected) as info:
        matmul_backward(A, B, dC)
    message = str(info.value)
    assert f"A of shape {shape_str(A_shape)}" in message
    assert f"B of shape {shape_str(B_shape)}" in message
    assert f"dC of shape {shape_str(dC_shape)}" in message


@pytest.mark.parametrize(
    "A_shape, B_shape, match",
    [
        ((2, 3), (4, 5), r"inner sizes.*A of shape \(2, 3\) has 3 columns.*B of shape \(4, 5\) has 4 rows"),
        ((3,), (4,), r"inner sizes.*A of shape \(3,\).*B of shape \(4,\) has 4 rows \(its only axis\)"),
        ((2, 3, 4), (5, 6), r"inner sizes"),
        ((2, 3, 4), (3, 4, 5), r"batch axes of A @ B do not broadcast.*\(2,\).*\(3,\)"),
        ((), (3, 4), r"A must have at least one axis"),
        ((3, 4), (), r"B must have at least one axis"),
    ],
)
def test_incompatible_factors(A_shape, B_shape, match):
    with pytest.raises(ValueError, match=match):
        matmul_backward(np.ones(A_shape), np.ones(B_shape), np.ones(1))


def test_0d_operands_are_rejected_like_numpy():
    with pytest.raises(ValueError):
        np.matmul(np.float64(2.0), np.ones(3))
    with pytest.raises(ValueError, match="at least one axis"):
        matmul_backward(2.0, np.ones(3), np.ones(3))


BAD_TYPES = {
    "bool": np.array([[True, False]]),
    "complex": np.array([[1 + 1j, 2.0]]),
    "string": np.array([["a", "b"]]),
    "object": np.array([[1.0, None]], dtype=object),
}


@pytest.mark.parametrize("kind", sorted(BAD_TYPES))
@pytest.mark.parametrize("position", ["A", "B", "dC"])
def test_non_numeric_input(kind, position):
    args = {"A": np.ones((1, 2)), "B": np.ones((2, 2)), "dC": np.ones((1, 2))}
    args[position] = np.resize(BAD_TYPES[kind], args[position].shape)
    with pytest.raises(TypeError, match=rf"{position} must be a real numeric array"):
        matmul_backward(args["A"], args["B"], args["dC"])


def test_ragged_input_is_a_type_error():
    with pytest.raises(TypeError, match="A must be a real numeric array"):
        matmul_backward([[1.0, 2.0], [3.0]], np.ones((2, 2)), np.ones((2, 2)))


# ---------------------------------------------------------------- arguments unchanged


@pytest.mark.parametrize("A_shape, B_shape", [((2, 3), (3, 4)), ((3,), (3,)), ((4, 2, 3), (3, 2)), ((2, 3), (4, 3, 2)), ((2, 1, 2, 3), (2, 3, 2))])
def test_arguments_unchanged_and_results_are_new(A_shape, B_shape, rng):
    A, B, dC = draw(rng, A_shape, B_shape)
    copies = [A.copy(), B.copy(), dC.copy()]
    dA, dB = matmul_backward(A, B, dC)
    for before, after in zip(copies, (A, B, dC)):
        np.testing.assert_array_equal(before, after)
    dA[...] = 7.0  # writing into a result never reaches an argument
    dB[...] = 7.0
    for before, after in zip(copies, (A, B, dC)):
        np.testing.assert_array_equal(before, after)


def test_read_only_inputs_are_fine(rng):
    A, B, dC = draw(rng, (3, 2, 3), (3, 4))
    for x in (A, B, dC):
        x.setflags(write=False)
    dA, dB = matmul_backward(A, B, dC)
    assert dA.flags.writeable and dB.flags.writeable


# ---------------------------------------------------------------- the unbroadcast helper


@pytest.mark.parametrize(
    "grad_shape, shape",
    [((2, 3), (2, 3)), ((4, 2, 3), (2, 3)), ((4, 2, 3), (1, 2, 3)), ((8, 3, 4, 5), (8, 1, 4, 5)), ((2, 3), (1, 1)), ((5, 2, 3), ())],
)
def test_unbroadcast_is_the_adjoint_of_broadcasting(grad_shape, shape, rng):
    """<broadcast_to(x), g> == <x, unbroadcast(g)> for all x, g."""
    g = rng.standard_normal(grad_shape)
    x = rng.standard_normal(shape)
    u = _unbroadcast(g, shape)
    assert u.shape == shape
    np.testing.assert_allclose(np.sum(np.broadcast_to(x, grad_shape) * g), np.sum(x * u))


# ---------------------------------------------------------------- linear_backward


def torch_linear_grads(X, W, b, dY):
    tX = torch.tensor(X, requires_grad=True)
    tW = torch.tensor(W, requires_grad=True)
    tb = None if b is None else torch.tensor(b, requires_grad=True)
    torch.nn.functional.linear(tX, tW, tb).backward(torch.tensor(dY))
    return tX.grad, tW.grad, (None if b is None else tb.grad)


@pytest.mark.parametrize("X_shape", [(3,), (5, 3), (2, 4, 3), (1, 3), (0, 3)])
@pytest.mark.parametrize("with_bias", [True, False])
def test_linear_matches_torch(X_shape, with_bias, rng):
    out_features = 4
    X = rng.standard_normal(X_shape)
    W = rng.standard_normal((out_features, X_shape[-1]))
    b = rng.standard_normal(out_features) if with_bias else None
    dY = rng.standard_normal(X_shape[:-1] + (out_features,))
    dX, dW, db = linear_backward(X, W, b, dY)
    tdX, tdW, tdb = torch_linear_grads(X, W, b, dY)
    assert dX.shape == X.shape and dW.shape == W.shape
    torch.testing.assert_close(torch.from_numpy(dX), tdX)
    torch.testing.assert_close(torch.from_numpy(dW), tdW)
    if with_bias:
        assert db.shape == (out_features,)
        torch.testing.assert_close(torch.from_numpy(db), tdb)
    else:
        assert db is None


def test_linear_noncontiguous_and_float32(rng):
    X = rng.standard_normal((3, 5)).T  # (5, 3), transposed view
    W = rng.standard_normal((3, 4)).T  # (4, 3), transposed view
    b = rng.standard_normal(8)[::2]
    dY = rng.standard_normal((4, 5)).T
    dX, dW, db = linear_backward(X, W, b, dY)
    tdX, tdW, tdb = torch_linear_grads(*(np.ascontiguousarray(a) for a in (X, W, b, dY)))
    torch.testing.assert_close(torch.from_numpy(dX), tdX)
    torch.testing.assert_close(torch.from_numpy(dW), tdW)
    torch.testing.assert_close(torch.from_numpy(db), tdb)
    out = linear_backward(*(a.astype(np.float32) for a in (X, W, b, dY)))
    assert all(r.dtype == np.float32 for r in out)
    ints = linear_backward(np.ones((2, 3), int), np.ones((4, 3), int), np.ones(4, int), np.ones((2, 4), int))
    assert all(r.dtype == np.float64 for r in ints)


def test_linear_matches_numerical_gradient(rng):
    X, W, b = rng.standard_normal((2, 2, 3)), rng.standard_normal((2, 3)), rng.standard_normal(2)
    G = rng.standard_normal((2, 2, 2))
    dX, dW, db = linear_backward(X, W, b, G)
    assert check_gradient(lambda X_: np.sum(G * (X_ @ W.T + b)), X, dX)
    assert check_gradient(lambda W_: np.sum(G * (X @ W_.T + b)), W, dW)
    assert check_gradient(lambda b_: np.sum(G * (X @ W.T + b_)), b, db)
    # test the test: an unsummed (averaged) bias gradient is caught
    assert not check_gradient(lambda b_: np.sum(G * (X @ W.T + b_)), b, G.reshape(-1, 2).mean(axis=0))


def test_linear_is_matmul_with_transposed_weight(rng):
    X, W, dY = rng.standard_normal((2, 5, 3)), rng.standard_normal((4, 3)), rng.standard_normal((2, 5, 4))
    dX, dW, _ = linear_backward(X, W, None, dY)
    dX2, dWT = matmul_backward(X, W.T, dY)
    np.testing.assert_allclose(dX, dX2)
    np.testing.assert_allclose(dW, dWT.T)


def test_linear_weight_stored_in_out_by_mistake(rng):
    X = rng.standard_normal((5, 3))
    W_in_out = rng.standard_normal((3, 4))  # should be (4, 3)
    with pytest.raises(ValueError, match=r"X has 3 input features.*X of shape \(5, 3\).*W of shape \(3, 4\) has 4") as info:
        linear_backward(X, W_in_out, None, np.ones((5, 4)))
    assert "(out_features, in_features)" in str(info.value)


@pytest.mark.parametrize(
    "X_shape, W_shape, b_shape, dY_shape, match",
    [
        ((5, 3), (4, 3), (3,), (5, 4), r"b must have shape \(out_features,\) = \(4,\).*got b of shape \(3,\)"),
        ((5, 3), (4, 3), (1, 4), (5, 4), r"b must have shape"),
        ((5, 3), (4, 3), None, (4, 5), r"dY must have the shape.*\(5, 4\).*got dY of shape \(4, 5\)"),
        ((5, 3), (4, 3), None, (4,), r"dY must have the shape.*\(5, 4\)"),
        ((3,), (4, 3), None, (1, 4), r"dY must have the shape.*\(4,\)"),
        ((5, 3), (3,), None, (5,), r"W must be 2-D"),
        ((5, 3), (1, 4, 3), None, (5, 4), r"W must be 2-D"),
        ((), (4, 3), None, (4,), r"X must have at least one axis"),
    ],
)
def test_linear_bad_shapes(X_shape, W_shape, b_shape, dY_shape, match):
    b = None if b_shape is None else np.ones(b_shape)
    with pytest.raises(ValueError, match=match):
        linear_backward(np.ones(X_shape), np.ones(W_shape), b, np.ones(dY_shape))


@pytest.mark.parametrize("kind", sorted(BAD_TYPES))
@pytest.mark.parametrize("position", ["X", "W", "b", "dY"])
def test_linear_non_numeric_input(kind, position):
    args = {"X": np.ones((1, 2)), "W": np.ones((2, 2)), "b": np.ones(2), "dY": np.ones((1, 2))}
    args[position] = np.resize(BAD_TYPES[kind], args[position].shape)
    with pytest.raises(TypeError, match=rf"{position} must be a real numeric array"):
        linear_backward(args["X"], args["W"], args["b"], args["dY"])


def test_linear_arguments_unchanged(rng):
    X, W, b, dY = rng.standard_normal((2, 3, 4)), rng.standard_normal((5, 4)), rng.standard_normal(5), rng.standard_normal((2, 3, 5))
    copies = [a.copy() for a in (X, W, b, dY)]
    results = linear_backward(X, W, b, dY)
    for r in results:
        r[...] = 7.0
    for before, after in zip(copies, (X, W, b, dY)):
        np.testing.assert_array_equal(before, after)


@given(
    batch=st.lists(st.integers(0, 3), min_size=0, max_size=3),
    in_features=st.integers(1, 4),
    out_features=st.integers(1, 4),
    with_bias=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_linear_matches_torch_random_shapes(batch, in_features, out_features, with_bias, seed):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal(tuple(batch) + (in_features,))
    W = rng.standard_normal((out_features, in_features))
    b = rng.standard_normal(out_features) if with_bias else None
    dY = rng.standard_normal(tuple(batch) + (out_features,))
    dX, dW, db = linear_backward(X, W, b, dY)
    tdX, tdW, tdb = torch_linear_grads(X, W, b, dY)
    torch.testing.assert_close(torch.from_numpy(dX), tdX)
    torch.testing.assert_close(torch.from_numpy(dW), tdW)
    if with_bias:
        torch.testing.assert_close(torch.from_numpy(db), tdb)
    else:
        assert db is None
