"""Tests of matgrad.einsum: gradients of any einsum, and the single-einsum gradient rule.

Oracles: PyTorch autograd on ``torch.einsum`` in float64 (an independent
implementation, ``torch.testing.assert_close``), central differences
(``matgrad.check_gradient``), and NumPy evaluating the expression that
``einsum_grad_subscripts`` writes.
"""

import re
import string

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from matgrad import check_gradient, einsum_backward, einsum_grad_subscripts

# ---------------------------------------------------------------- helpers


def torch_grads(subscripts, operands, G):
    """Gradients of sum(G * einsum(subscripts, *operands)) from PyTorch autograd, float64."""
    leaves = [torch.tensor(np.array(a, dtype=np.float64), requires_grad=True) for a in operands]
    Y = torch.einsum(subscripts.replace(" ", ""), *leaves)
    grads = torch.autograd.grad(Y, leaves, torch.tensor(np.array(G, dtype=np.float64)), allow_unused=True)
    return [torch.zeros_like(x) if g is None else g for x, g in zip(leaves, grads)]


def draw(rng, subscripts, shapes):
    operands = [rng.standard_normal(s) for s in shapes]
    G = rng.standard_normal(np.shape(np.einsum(subscripts, *operands)))
    return operands, G


def assert_matches_torch(subscripts, operands, G):
    grads = einsum_backward(subscripts, *operands, grad_out=G)
    assert isinstance(grads, tuple) and len(grads) == len(operands)
    for k, (ours, theirs, A) in enumerate(zip(grads, torch_grads(subscripts, operands, G), operands)):
        assert isinstance(ours, np.ndarray)
        assert ours.shape == np.shape(A), f"gradient {k}: shape {ours.shape}, operand {np.shape(A)}"
        assert ours.dtype == np.float64
        torch.testing.assert_close(torch.tensor(ours), theirs, msg=lambda m, k=k: f"gradient {k}: {m}")
    return grads


def other_operands(operands, wrt):
    return [a for j, a in enumerate(operands) if j != wrt]


# ---------------------------------------------------------------- every case of the issue, against PyTorch

CASES = {
    # explicit output
    "matmul": ("ik,kj->ij", [(3, 4), (4, 5)]),
    "transposed output": ("ik,kj->ji", [(3, 4), (4, 5)]),
    # implicit output (NumPy's rule: letters seen once, sorted, capitals first)
    "implicit matmul": ("ij,jk", [(3, 4), (4, 2)]),
    "implicit order": ("ba,ac", [(2, 3), (3, 4)]),
    "implicit capitals": ("bA,a", [(2, 3), (2,)]),
    "implicit trace of product": ("Ab,bA", [(3, 2), (2, 3)]),
    # batch indices
    "batched matmul": ("bij,bjk->bik", [(2, 3, 4), (2, 4, 5)]),
    "attention scores": ("bhqd,bhkd->bhqk", [(2, 3, 4, 5), (2, 3, 6, 5)]),
    # an index summed inside one operand: the gradient broadcasts back
    "row sum": ("ij->i", [(3, 4)]),
    "sum then product": ("ij,jk->k", [(3, 4), (4, 2)]),
    "summed in both": ("ij,kl->jk", [(2, 3), (4, 5)]),
    # repeated indices in one operand: zero off the diagonal
    "diagonal": ("ii->i", [(4, 4)]),
    "trace": ("ii->", [(4, 4)]),
    "implicit trace": ("ii", [(3, 3)]),
    "diagonal then sum": ("iij->j", [(3, 3, 2)]),
    "split diagonal": ("iji->j", [(3, 2, 3)]),
    "keep the diagonal axis": ("iij->ij", [(3, 3, 2)]),
    "triple diagonal": ("iii->", [(2, 2, 2)]),
    "two diagonals": ("iijj->ij", [(2, 2, 3, 3)]),
    "diagonal against a vector": ("ii,i->", [(3, 3), (3,)]),
    "repeated in the other operand": ("ij,jj->i", [(2, 3), (3, 3)]),
    # scalar outputs and scalar operands
    "inner product": ("i,i->", [(5,), (5,)]),
    "frobenius product": ("ij,ij->", [(3, 4), (3, 4)]),
    "total sum": ("ijk->", [(2, 3, 4)]),
    "scalar operand": ("i,->i", [(4,), ()]),
    "scalar only": ("", [()]),
    "scalar to scalar": ("->", [()]),
    "bilinear form": ("i,ij,j->", [(3,), (3, 4), (4,)]),
    # outer products
    "outer": ("i,j->ij", [(3,), (4,)]),
    "outer transposed": ("i,j->ji", [(3,), (4,)]),
    "outer of matrices": ("ij,kl->ijkl", [(2, 3), (2, 2)]),
    # three or more operands
    "matrix chain": ("ij,jk,kl->il", [(2, 3), (3, 4), (4, 2)]),
    "three elementwise": ("ij,ij,ij->ij", [(2, 3)] * 3),
    "four operands": ("ab,bc,cd,da->", [(2, 3), (3, 4), (4, 2), (2, 2)]),
    "four with batch": ("bi,bij,bjk,k->b", [(2, 3), (2, 3, 4), (2, 4, 2), (2,)]),
    "same operand letters": ("ij,ij->i", [(3, 2), (3, 2)]),
    "five operands": ("ab,bc,cd,de,ea->", [(2, 3), (3, 2), (2, 4), (4, 3), (3, 2)]),
    "chain with a trace inside": ("ii,ij,jk->k", [(3, 3), (3, 2), (2, 4)]),
    "chain with a summed-out letter": ("ab,bc,cd->a", [(2, 3), (3, 4), (4, 5)]),
    "three with a scalar": ("ij,,jk->ki", [(2, 3), (), (3, 2)]),
    "three with an outer factor": ("ij,jk,l->ilk", [(2, 3), (3, 2), (4,)]),
    "three with '...'": ("...ij,jk,...k->...i", [(2, 1, 3, 4), (4, 2), (5, 2)]),
    # '...' with broadcasting
    "ellipsis batch": ("...ij,...jk->...ik", [(2, 3, 4), (2, 4, 5)]),
    "ellipsis size-1 broadcast": ("...ij,...jk->...ik", [(2, 1, 3, 4), (1, 5, 4, 2)]),
    "ellipsis rank broadcast": ("...ij,...jk->...ik", [(2, 3, 3, 4), (4, 2)]),
    "ellipsis implicit": ("...ij,...jk", [(2, 1, 3, 4), (5, 4, 2)]),
    "ellipsis in the middle": ("i...j,j->i...", [(2, 3, 1, 4), (4,)]),
    "ellipsis only": ("...,...->...", [(2, 1), (1, 3)]),
    "ellipsis summed out later": ("...i,...i->...", [(2, 1, 3), (5, 3)]),
    "ellipsis with no axes": ("...ij->...ji", [(3, 4)]),
    "ellipsis in output only": ("ij->...ij", [(3, 4)]),
    "ellipsis and diagonal": ("...ii->...i", [(2, 1, 3, 3)]),
    # spaces
    "spaces": (" i k , k j -> i j ", [(3, 4), (4, 5)]),
    # zero-size axes
    "empty axis": ("ik,kj->ij", [(0, 4), (4, 5)]),
    "empty contraction": ("ik,kj->ij", [(3, 0), (0, 5)]),
    "empty in a chain": ("ij,jk,kl->il", [(2, 3), (3, 0), (0, 2)]),
    "empty diagonal": ("ii,ij,jk->k", [(0, 0), (0, 2), (2, 3)]),
}


@pytest.mark.parametrize("name", list(CASES))
def test_matches_torch(name, rng):
    subscripts, shapes = CASES[name]
    operands, G = draw(rng, subscripts, shapes)
    assert_matches_torch(subscripts, operands, G)


@pytest.mark.parametrize(
    "subscripts, shapes",
    [
        ("ik,kj->ij", [(3, 4), (4, 2)]),
        ("ij->i", [(2, 3)]),
        ("ii->", [(3, 3)]),
        ("iij->j", [(2, 2, 3)]),
        ("...ij,...jk->...ik", [(2, 1, 2, 3), (3, 3, 2)]),
        ("ij,jk,kl->il", [(2, 3), (3, 2), (2, 2)]),
    ],
)
def test_matches_finite_differences(subscripts, shapes, rng):
    """A second, fully independent oracle: central differences of L = sum(G * Y)."""
    operands, G = draw(rng, subscripts, shapes)
    grads = einsum_backward(subscripts, *operands, grad_out=G)
    for k in range(len(operands)):

        def loss(A, k=k):
            ops = list(operands)
            ops[k] = A
            return np.sum(G * np.einsum(subscripts, *ops))

        result = check_gradient(loss, operands[k], grads[k])
        assert result, result.report()


def test_larger_sizes_use_the_optimized_path(rng):
    """Sizes big enough that NumPy's contraction-order search is used (and cached)."""
    for subscripts, shapes in [
        ("ij,jk,kl->il", [(30, 4), (4, 40), (40, 20)]),
        ("bij,bjk->bik", [(4, 20, 30), (4, 30, 10)]),
        ("ab,bc,cd,de->ae", [(10, 20), (20, 5), (5, 30), (30, 10)]),
    ]:
        operands, G = draw(rng, subscripts, shapes)
        assert_matches_torch(subscripts, operands, G)
        assert_matches_torch(subscripts, operands, G)  # second call: cached path


# ---------------------------------------------------------------- hand-computed results


def test_matmul_closed_form(rng):
    X, W = rng.standard_normal((3, 4)), rng.standard_normal((4, 2))
    G = rng.standard_normal((3, 2))
    dX, dW = einsum_backward("ik,kj->ij", X, W, grad_out=G)
    np.testing.assert_allclose(dX, G @ W.T, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(dW, X.T @ G, rtol=1e-12, atol=1e-12)


def test_diagonal_and_trace_are_zero_off_the_diagonal(rng):
    A = rng.standard_normal((3, 3))
    (dA,) = einsum_backward("ii->", A, grad_out=2.5)
    np.testing.assert_array_equal(dA, 2.5 * np.eye(3))
    g = np.array([1.0, -2.0, 3.0])
    (dA,) = einsum_backward("ii->i", A, grad_out=g)
    np.testing.assert_array_equal(dA, np.diag(g))


def test_summed_index_broadcasts_back():
    g = np.array([1.0, -1.0])
    (dA,) = einsum_backward("ij->i", np.zeros((2, 3)), grad_out=g)
    np.testing.assert_array_equal(dA, np.array([[1.0] * 3, [-1.0] * 3]))


def test_size_one_broadcast_axis_gets_the_sum():
    a = np.ones((1, 3))
    b = np.ones((4, 3))
    G = np.arange(12.0).reshape(4, 3)
    da, db = einsum_backward("...,...->...", a, b, grad_out=G)
    np.testing.assert_allclose(da, G.sum(axis=0, keepdims=True))
    np.testing.assert_allclose(db, G)


# ---------------------------------------------------------------- dtypes, arguments, results


def test_dtypes():
    A = np.arange(6).reshape(2, 3)  # integers
    B = np.arange(3)
    dA, dB = einsum_backward("ij,j->i", A, B, grad_out=np.ones(2, dtype=np.int64))
    assert dA.dtype == np.float64 and dB.dtype == np.float64
    A32, B32, G32 = (x.astype(np.float32) for x in (A, B, np.ones(2)))
    dA, dB = einsum_backward("ij,j->i", A32, B32, grad_out=G32)
    assert dA.dtype == np.float32 and dB.dtype == np.float32
    dA, dB = einsum_backward("ij,j->i", A32, B32, grad_out=np.ones(2))  # float64 grad_out wins
    assert dA.dtype == np.float64 and dB.dtype == np.float64
    (d,) = einsum_backward("->", 3, grad_out=2)  # Python scalars
    assert d.shape == () and d.dtype == np.float64 and float(d) == 2.0


def test_lists_are_accepted():
    dA, dB = einsum_backward("i,i->", [1.0, 2.0], [3.0, 4.0], grad_out=1.0)
    np.testing.assert_allclose(dA, [3.0, 4.0])
    np.testing.assert_allclose(dB, [1.0, 2.0])


@pytest.mark.parametrize(
    "subscripts, shapes",
    [
        ("ij->ij", [(2, 3)]),
        ("ij->ji", [(2, 3)]),
        ("ij->i", [(2, 3)]),
        ("ii->i", [(3, 3)]),
        ("...->...", [(2, 1)]),
        ("i,j->ij", [(2,), (3,)]),
        ("ij,ij->ij", [(2, 3), (2, 3)]),
    ],
)
def test_arguments_unchanged_and_results_are_new_arrays(subscripts, shapes, rng):
    operands, G = draw(rng, subscripts, shapes)
    before = [a.copy() for a in operands]
    G_before = G.copy()
    grads = einsum_backward(subscripts, *operands, grad_out=G)
    for a, b in zip(operands, before):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(G, G_before)
    for g in grads:
        assert g.flags.writeable
        assert not any(np.may_share_memory(g, x) for x in [G, *operands])
        g[...] = 7.0  # writing into a result must not reach an argument
    np.testing.assert_array_equal(G, G_before)
    for a, b in zip(operands, before):
        np.testing.assert_array_equal(a, b)


def test_non_contiguous_operands(rng):
    A = rng.standard_normal((4, 6))[:, ::2]
    B = rng.standard_normal((5, 3)).T
    G = rng.standard_normal((4, 5))
    assert_matches_torch("ik,kj->ij", [A, B], G)


# ---------------------------------------------------------------- einsum_grad_subscripts

@pytest.mark.parametrize(
    "subscripts, wrt, expected",
    [
        ("ik,kj->ij", 0, "ij,kj->ik"),
        ("ik,kj->ij", 1, "ij,ik->kj"),
        ("ij,jk", 0, "ik,jk->ij"),
        ("ij,jk", 1, "ik,ij->jk"),
        ("bij,bjk->bik", 0, "bik,bjk->bij"),
        ("bhqd,bhkd->bhqk", 1, "bhqk,bhqd->bhkd"),
        ("i,i->", 0, ",i->i"),
        ("i,j->ij", 1, "ij,i->j"),
        ("ij,jk,kl->il", 1, "il,ij,kl->jk"),
        (" i k , k j -> i j ", 0, "ij,kj->ik"),
        ("Ab,bA", 0, ",bA->Ab"),
        ("...ij,...jk->...ik", 0, "...ik,...jk->...ij"),
        ("ij,jj->i", 0, "i,jj->ij"),  # the repeat is in the *other* operand: fine
    ],
)
def test_grad_subscripts_examples(subscripts, wrt, expected):
    assert einsum_grad_subscripts(subscripts, wrt) == expected


@pytest.mark.parametrize("name", list(CASES))
def test_grad_subscripts_agree_with_backward(name, rng):
    subscripts, shapes = CASES[name]
    operands, G = draw(rng, subscripts, shapes)
    grads = einsum_backward(subscripts, *operands, grad_out=G)
    for k in range(len(operands)):
        try:
            expr = einsum_grad_subscripts(subscripts, k, shapes=shapes)
        except ValueError as err:
            assert "einsum_backward handles it" in str(err)
            continue
        value = np.einsum(expr, G, *other_operands(operands, k))
        np.testing.assert_allclose(value, grads[k], rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize(
    "subscripts, wrt, shapes, match",
    [
        ("ij->i", 0, None, "index 'j' of its subscript 'ij' appears in no other operand"),
        ("ij,jk->k", 0, None, "index 'i'"),
        ("ii->i", 0, None, "index 'i' appears more than once"),
        ("ii->", 0, None, "diagonal"),
        ("iij->j", 0, None, "more than once"),
        ("ii", 0, None, "more than once"),
        ("...ij,...jk->...ik", 0, [(2, 1, 3, 4), (1, 5, 4, 2)], "'...' axes"),
        ("...ij,...jk->...ik", 1, [(2, 3, 3, 4), (4, 2)], "'...' axes"),
        ("...ij,jk->...ik", 1, None, "has no '...'"),
        ("...,...->...", 0, [(2, 1), (1, 3)], "summed"),
    ],
)
def test_grad_subscripts_refuses_what_one_einsum_cannot_do(subscripts, wrt, shapes, match):
    with pytest.raises(ValueError, match="cannot write the gradient") as info:
        einsum_grad_subscripts(subscripts, wrt, shapes=shapes)
    assert match in str(info.value)


def test_grad_subscripts_with_shapes_where_ellipsis_is_harmless():
    assert einsum_grad_subscripts("...ij,jk->...ik", 1, shapes=[(3, 4), (4, 2)]) == "...ik,...ij->jk"
    assert einsum_grad_subscripts("...ij,...jk->...ik", 0, shapes=[(5, 3, 4), (5, 4, 2)]) == "...ik,...jk->...ij"
    assert einsum_grad_subscripts("ij->...ij", 0, shapes=[(3, 4)]) == "...ij->ij"  # '...' stands for no axes


def test_grad_subscripts_bad_arguments():
    with pytest.raises(TypeError, match="wrt must be an integer"):
        einsum_grad_subscripts("ij,jk", 1.0)
    with pytest.raises(TypeError, match="wrt must be an integer"):
        einsum_grad_subscripts("ij,jk", True)
    with pytest.raises(ValueError, match="from 0 to 1 .*got 2"):
        einsum_grad_subscripts("ij,jk", 2)
    with pytest.raises(ValueError, match="from 0 to 1 .*got -1"):
        einsum_grad_subscripts("ij,jk", -1)
    with pytest.raises(TypeError, match="subscripts must be a string"):
        einsum_grad_subscripts(["ij"], 0)
    with pytest.raises(TypeError, match="shapes must be a sequence"):
        einsum_grad_subscripts("ij,jk", 0, shapes=[3, 4])
    with pytest.raises(ValueError, match="names 2 axes but the operand has 3"):
        einsum_grad_subscripts("ij,jk", 0, shapes=[(2, 3, 4), (3, 4)])
    with pytest.raises(ValueError, match="index 'j' has inconsistent sizes"):
        einsum_grad_subscripts("ij,jk", 0, shapes=[(2, 3), (4, 5)])


# ---------------------------------------------------------------- errors

ONE = np.ones(3)
M = np.ones((2, 3))


@pytest.mark.parametrize(
    "subscripts, operands, grad_out, match",
    [
        # the expression
        ("ij,j1", [M, ONE], np.ones(2), r"invalid character '1'"),
        ("ij->i!", [M], np.ones(2), r"invalid character '!'"),
        ("ij->i->j", [M], np.ones(2), r"'->' more than once"),
        ("ij-i", [M], np.ones(2), r"'-' or '>' that is not part of '->'"),
        ("ij- >i", [M], np.ones(2), r"'-' or '>' that is not part of '->'"),
        ("ij. . .->i", [M], np.ones(2), r"'.' that is not part of '...'"),
        ("ij>i", [M], np.ones(2), r"'-' or '>' that is not part of '->'"),
        ("ij->i,j", [M], np.ones(2), r"output .* cannot contain ','"),
        ("..ij", [M], np.ones(2), r"operand 0 has a '.' that is not part of '...'"),
        ("....ij", [M], np.ones(2), r"operand 0 has a '.' that is not part of '...'"),
        ("i.j", [M], np.ones(2), r"'.' that is not part of '...'"),
        ("ij,...i...", [M, ONE], np.ones(2), r"operand 1 has '...' more than once"),
        ("ij->..i", [M], np.ones(2), r"output subscript has a '.'"),
        ("ij->k", [M], np.ones(2), r"output index 'k' does not appear in any input"),
        ("ij->ii", [M], np.ones(2), r"output index 'i' appears more than once"),
        # the operands against the expression
        ("ij,jk", [M], np.ones(2), r"name 2 operand\(s\) but 1 operand\(s\) were given"),
        ("ij", [M, M], np.ones(2), r"name 1 operand\(s\) but 2 operand\(s\) were given"),
        ("ij,j", [M, M], np.ones(2),
         r"operand 1 \(subscript 'j'\) names 1 axes but the operand has 2 \(shape \(2, 3\)\)"),
        ("ijk", [M], np.ones(2), r"operand 0 \(subscript 'ijk'\) names 3 axes but the operand has 2"),
        ("ijk...", [M], np.ones(2), r"names at least 3 axes but the operand has 2"),
        ("ij,i->j", [M, ONE], np.ones(3), r"index 'i' has inconsistent sizes: 2 at axis 0 of operand 0 .* "
         r"but 3 at axis 0 of operand 1"),
        ("ii->i", [M], np.ones(2), r"index 'i' has inconsistent sizes: 2 at axis 0 of operand 0 .* "
         r"but 3 at axis 1 of operand 0"),
        ("i,i->", [np.ones(1), ONE], 1.0, r"index 'i' has inconsistent sizes"),  # no broadcasting of named axes
        ("...i,...i->...", [np.ones((2, 3)), np.ones((4, 3))], np.ones(2),
         r"'...' axes of operand 0 .* and operand 1 .* do not broadcast: size 2 against 4"),
        ("...ij->ij", [np.ones((4, 2, 3))], np.ones((2, 3)), r"output has no '...'"),
        # grad_out
        ("ij->i", [M], np.ones(3), r"grad_out must have the shape .* \(2,\); got shape \(3,\)"),
        ("ij->i", [M], np.ones((1, 2)), r"got shape \(1, 2\) \(it is never broadcast\)"),
        ("ij,j->", [M, ONE], np.ones(1), r"grad_out must have the shape .* \(\); got shape \(1,\)"),
    ],
)
def test_errors(subscripts, operands, grad_out, match):
    copies = [np.copy(a) for a in operands]
    with pytest.raises(ValueError, match=match):
        einsum_backward(subscripts, *operands, grad_out=grad_out)
    for a, c in zip(operands, copies):
        np.testing.assert_array_equal(a, c)


def test_too_many_letters_for_the_ellipsis():
    # 51 of the 52 letters spread over two operands of at most 32 axes (NumPy 1's limit; NumPy 2 allows 64)
    lower, upper = string.ascii_lowercase, string.ascii_uppercase[:25]
    A, B = np.ones((1, 1) + (1,) * 26), np.ones((1,) * 25)
    with pytest.raises(ValueError, match="need 2 letters for the '...' axes but only 1 are unused"):
        einsum_backward(f"...{lower},{upper}->...", A, B, grad_out=np.ones((1, 1)))


def test_type_errors():
    with pytest.raises(TypeError, match="subscripts must be a string"):
        einsum_backward(None, M, grad_out=M)
    with pytest.raises(TypeError, match=r"operands\[1\] must be a real numeric array .*got complex numbers"):
        einsum_backward("ij,j->i", M, ONE + 1j, grad_out=np.ones(2))
    with pytest.raises(TypeError, match=r"operands\[0\] must be a real numeric array .*got booleans"):
        einsum_backward("ij->i", M > 0, grad_out=np.ones(2))
    with pytest.raises(TypeError, match="grad_out must be a real numeric array"):
        einsum_backward("ij->i", M, grad_out=np.array(["a", "b"]))
    with pytest.raises(TypeError, match="grad_out"):
        einsum_backward("ij->i", M)  # grad_out is required and keyword-only


def test_positional_grad_out_is_read_as_an_operand():
    with pytest.raises(TypeError, match="grad_out"):
        einsum_backward("ij->i", M, np.ones(2))


# ---------------------------------------------------------------- test the test


def test_wrong_gradients_are_rejected(rng):
    """The checks used above catch plausible mistakes: swapped operands, a missing transpose."""
    X, W = rng.standard_normal((3, 3)), rng.standard_normal((3, 3))
    G = rng.standard_normal((3, 3))
    loss = lambda X: np.sum(G * np.einsum("ik,kj->ij", X, W))  # noqa: E731
    (dX, _) = einsum_backward("ik,kj->ij", X, W, grad_out=G)
    assert check_gradient(loss, X, dX)
    swapped = np.einsum("ij,kj->ik", G, X)  # the other operand in place of W
    assert not check_gradient(loss, X, swapped)
    untransposed = np.einsum("ij,jk->ik", G, W)  # G @ W instead of G @ W.T
    assert not check_gradient(loss, X, untransposed)
    # the trace: the full matrix instead of the diagonal is caught as well
    A = rng.standard_normal((3, 3))
    assert not check_gradient(lambda A: np.einsum("ii->", A), A, np.ones((3, 3)))
    assert check_gradient(lambda A: np.einsum("ii->", A), A, einsum_backward("ii->", A, grad_out=1.0)[0])


def test_torch_comparison_rejects_a_wrong_gradient(rng):
    operands, G = draw(rng, "ik,kj->ij", [(3, 3), (3, 3)])
    theirs = torch_grads("ik,kj->ij", operands, G)
    wrong = np.einsum("ij,kj->ik", G, operands[0])
    with pytest.raises(AssertionError):
        torch.testing.assert_close(torch.from_numpy(wrong), theirs[0])


# ---------------------------------------------------------------- hypothesis: random valid expressions


@st.composite
def expressions(draw_):
    """A random valid einsum: subscripts, operand shapes, and how it was built."""
    letters = draw_(st.lists(st.sampled_from(string.ascii_letters), min_size=1, max_size=5, unique=True))
    sizes = {c: draw_(st.integers(1, 3)) for c in letters}
    n_ops = draw_(st.integers(1, 3))
    use_ellipsis = draw_(st.booleans())
    E = draw_(st.integers(0, 2)) if use_ellipsis else 0
    ell_shape = [draw_(st.integers(2, 3)) for _ in range(E)]
    terms, shapes = [], []
    for k in range(n_ops):
        term = draw_(st.lists(st.sampled_from(letters), min_size=0, max_size=4))  # repeats allowed
        shape = [sizes[c] for c in term]
        text = "".join(term)
        if use_ellipsis and (k == 0 or draw_(st.booleans())):
            e = draw_(st.integers(0, E))  # fewer axes than the broadcast: rank broadcasting
            dims = [draw_(st.sampled_from([1, n])) for n in ell_shape[E - e :]]  # size 1: stretched
            cut = draw_(st.integers(0, len(term)))
            text = "".join(term[:cut]) + "..." + "".join(term[cut:])
            shape = shape[:cut] + dims + shape[cut:]
        terms.append(text)
        shapes.append(tuple(shape))
    lhs = ",".join(terms)
    seen = sorted(set("".join(terms).replace(".", "")))
    if draw_(st.booleans()):
        subscripts = lhs  # implicit output
    else:
        out = draw_(st.permutations(seen))
        out = out[: draw_(st.integers(0, len(out)))]
        ell_out = "..." if "..." in lhs else ""
        cut = draw_(st.integers(0, len(out)))
        subscripts = lhs + "->" + "".join(out[:cut]) + ell_out + "".join(out[cut:])
    if draw_(st.booleans()):
        subscripts = " ".join(re.findall(r"->|[.]{3}|.", subscripts))  # spaces between the tokens
    return subscripts, shapes


@given(expressions(), st.integers(0, 2**32 - 1))
def test_random_expressions_match_torch(expression, seed):
    subscripts, shapes = expression
    rng = np.random.default_rng(seed)
    operands, G = draw(rng, subscripts, shapes)
    before = [a.copy() for a in operands]
    G_before = G.copy()
    grads = assert_matches_torch(subscripts, operands, G)
    for a, b in zip(operands, before):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(G, G_before)
    for g in grads:
        assert not any(np.may_share_memory(g, x) for x in [G, *operands])
    compact = "".join(subscripts.split())
    lhs = compact.split("->")[0].split(",")
    out = compact.split("->")[1] if "->" in compact else None
    for k, term in enumerate(lhs):
        letters = term.replace(".", "")
        repeated = len(set(letters)) != len(letters)
        elsewhere = set("".join(t for j, t in enumerate(lhs) if j != k))
        if out is None:
            everywhere = "".join(t.replace(".", "") for t in lhs)
            elsewhere |= {c for c in everywhere if everywhere.count(c) == 1}
        else:
            elsewhere |= set(out)
        alone = any(c not in elsewhere for c in letters)
        try:
            expr = einsum_grad_subscripts(subscripts, k, shapes=shapes)
        except ValueError as err:
            assert "einsum_backward handles it" in str(err)
            assert repeated or alone or "..." in compact, f"refused without reason: {err}"
            continue
        assert not repeated and not alone
        value = np.einsum(expr, G, *other_operands(operands, k))
        np.testing.assert_allclose(value, grads[k], rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize(
    "shapes, error, match",
    [
        ([(2, "a"), (3, 4)], TypeError, r"shapes\[0\] must be a tuple of integers; got \(2, 'a'\)"),
        ([(2, 3.5), (3, 4)], TypeError, r"shapes\[0\] must be a tuple of integers; got \(2, 3.5\)"),
        ([(2, 3), (3, True)], TypeError, r"shapes\[1\] must be a tuple of integers"),
        ([(2, -3), (3, 4)], ValueError, r"shapes\[0\] must be a tuple of non-negative sizes; got \(2, -3\)"),
    ],
)
def test_grad_subscripts_bad_shapes_name_shapes_and_what_was_expected(shapes, error, match):
    """Issue 12, defect 6: int('a') raised its own ValueError, and negative sizes were accepted."""
    with pytest.raises(error, match=match):
        einsum_grad_subscripts("ij,jk", 0, shapes=shapes)
