"""Tests of matgrad.softmax: softmax, its vector-Jacobian product, and cross-entropy on logits.

Oracles: PyTorch autograd in float64 (torch.softmax, F.cross_entropy), central finite
differences (check_gradient), and the explicit Jacobian diag(p) - p p^T. The checker is
tested too: a softmax backward that drops the <g, p> term, and a cross-entropy
backward that forgets the 1/N of the mean, must be rejected.
"""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from matgrad import check_gradient, cross_entropy, cross_entropy_backward, softmax, softmax_backward
from matgrad.softmax import _BLOCK

# shapes and every valid axis of each (negative ones included); (300, 500) spans
# several blocks of rows, the last one partial
SHAPE_AXES = [
    ((5,), 0),
    ((5,), -1),
    ((3, 4), 0),
    ((3, 4), 1),
    ((3, 4), -2),
    ((2, 3, 5), 0),
    ((2, 3, 5), 1),
    ((2, 3, 5), 2),
    ((4, 1), 1),
    ((1, 7), 0),
    ((300, 500), -1),
    ((3, 300, 70), -1),
    ((300, 500), 0),
]
CE_SHAPES = [(6,), (1, 4), (5, 3), (2, 3, 7), (300, 500), (4, 1)]


def torch_softmax_and_grad(Z, G, axis):
    tZ = torch.tensor(Z, dtype=torch.float64, requires_grad=True)
    P = torch.softmax(tZ, dim=axis)
    P.backward(torch.tensor(G, dtype=torch.float64))
    return P.detach().numpy(), tZ.grad.numpy()


def torch_cross_entropy_and_grad(Z, y, reduction):
    C = Z.shape[-1]
    tZ = torch.tensor(Z, dtype=torch.float64, requires_grad=True)
    loss = F.cross_entropy(tZ.reshape(-1, C), torch.tensor(np.asarray(y)).reshape(-1), reduction=reduction)
    loss.backward()
    return loss.item(), tZ.grad.numpy()


def test_blocks_are_exercised():
    # the block-wise path must really be split for the large cases above
    assert 300 * 500 > 2 * _BLOCK and (300 * 500) % (_BLOCK // 500 * 500) != 0


# ---------------------------------------------------------------- softmax


@pytest.mark.parametrize("shape, axis", SHAPE_AXES)
@pytest.mark.parametrize("scale", [1.0, 1e4])
def test_softmax_and_backward_match_torch(rng, shape, axis, scale):
    Z = scale * rng.standard_normal(shape)
    G = rng.standard_normal(shape)
    P_torch, dZ_torch = torch_softmax_and_grad(Z, G, axis)
    P = softmax(Z, axis=axis)
    dZ = softmax_backward(P, G, axis=axis)
    assert np.all(np.isfinite(P)) and np.all(np.isfinite(dZ))
    np.testing.assert_allclose(P, P_torch, rtol=1e-12, atol=1e-300)
    np.testing.assert_allclose(dZ, dZ_torch, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(P.sum(axis=axis), 1.0, rtol=1e-13)


def test_softmax_of_plus_minus_1e4_is_one_hot():
    Z = np.array([[1e4, -1e4, 0.0], [-1e4, -1e4, -1e4]])
    P = softmax(Z)
    np.testing.assert_array_equal(P[0], [1.0, 0.0, 0.0])
    np.testing.assert_allclose(P[1], 1 / 3, rtol=1e-15)
    np.testing.assert_allclose(P, torch.softmax(torch.tensor(Z), dim=-1).numpy(), rtol=1e-15)


def test_minus_inf_is_a_mask_as_in_torch():
    Z = np.array([[0.0, -np.inf, 1.0], [-np.inf, 2.0, -np.inf]])
    P = softmax(Z)
    np.testing.assert_allclose(P, torch.softmax(torch.tensor(Z), dim=-1).numpy(), rtol=1e-15)
    assert P[0, 1] == 0.0 and P[1, 1] == 1.0


@pytest.mark.parametrize("shape, axis", [((5,), 0), ((3, 4), 0), ((3, 4), 1), ((2, 3, 4), 1)])
def test_softmax_backward_passes_finite_differences(rng, shape, axis):
    Z, G = rng.standard_normal(shape), rng.standard_normal(shape)
    dZ = softmax_backward(softmax(Z, axis), G, axis)
    result = check_gradient(lambda z: np.sum(G * softmax(z, axis)), Z, dZ)
    assert result.passed, result.report()


def test_softmax_backward_is_the_product_with_the_jacobian(rng):
    z, g = rng.standard_normal(6), rng.standard_normal(6)
    p = softmax(z)
    J = np.diag(p) - np.outer(p, p)
    np.testing.assert_allclose(softmax_backward(p, g), J.T @ g, rtol=1e-12, atol=1e-15)
    # the Jacobian is singular: the all-ones vector is in its null space
    np.testing.assert_allclose(J @ np.ones(6), 0.0, atol=1e-15)


def test_checker_rejects_backward_without_the_inner_product_term(rng):
    Z, G = rng.standard_normal((3, 5)), rng.standard_normal((3, 5))
    wrong = softmax(Z) * G  # only the diagonal of the Jacobian
    result = check_gradient(lambda z: np.sum(G * softmax(z)), Z, wrong)
    assert not result.passed


def test_softmax_is_unchanged_by_a_constant_per_slice(rng):
    Z = rng.standard_normal((4, 6))
    np.testing.assert_allclose(softmax(Z + rng.standard_normal((4, 1)) * 100), softmax(Z), rtol=1e-12)
    np.testing.assert_allclose(softmax(Z + rng.standard_normal((1, 6)) * 100, axis=0), softmax(Z, axis=0), rtol=1e-12)


def test_softmax_dtypes(rng):
    Z32 = rng.standard_normal((3, 4)).astype(np.float32)
    P32 = softmax(Z32)
    assert P32.dtype == np.float32
    assert softmax_backward(P32, np.ones((3, 4), np.float32)).dtype == np.float32
    assert softmax_backward(P32, np.ones((3, 4))).dtype == np.float64  # promotion
    assert softmax(np.array([1, 2, 3])).dtype == np.float64
    np.testing.assert_allclose(P32, softmax(Z32.astype(np.float64)), rtol=1e-6)
    assert softmax(np.float32(1e4) * np.ones(3, np.float32)).dtype == np.float32


def test_softmax_leaves_arguments_unchanged_and_accepts_views(rng):
    Z = rng.standard_normal((6, 5))
    G = rng.standard_normal((5, 6))
    Z0, G0 = Z.copy(), G.copy()
    P = softmax(Z.T)  # a non-contiguous view
    dZ = softmax_backward(P, G)
    np.testing.assert_array_equal(Z, Z0)
    np.testing.assert_array_equal(G, G0)
    np.testing.assert_allclose(P, softmax(np.ascontiguousarray(Z.T)), rtol=1e-15)
    P_copy = P.copy()
    softmax_backward(P, G)
    np.testing.assert_array_equal(P, P_copy)
    assert not np.shares_memory(dZ, G) and not np.shares_memory(dZ, P)
    assert softmax(Z.tolist()).shape == (6, 5)


@pytest.mark.parametrize(
    "Z, kwargs, error, match",
    [
        (np.float64(1.0), {}, ValueError, "at least one axis"),
        (np.ones((2, 3)), {"axis": 2}, ValueError, r"axis 2 is out of range for Z of shape \(2, 3\)"),
        (np.ones((2, 3)), {"axis": -3}, ValueError, "out of range"),
        (np.ones((2, 3)), {"axis": 1.0}, TypeError, "axis must be an integer"),
        (np.ones((2, 3)), {"axis": True}, TypeError, "boolean"),
        (np.ones((2, 0)), {}, ValueError, r"axis 1 of Z of shape \(2, 0\) is empty"),
        (np.ones((2, 3), dtype=bool), {}, TypeError, "booleans"),
        (np.ones((2, 3), dtype=complex), {}, TypeError, "complex"),
        (np.array(["a", "b"]), {}, TypeError, "strings"),
    ],
)
def test_softmax_bad_inputs(Z, kwargs, error, match):
    with pytest.raises(error, match=match):
        softmax(Z, **kwargs)


def test_softmax_backward_bad_inputs():
    P = softmax(np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"dP of shape \(3,\) and P of shape \(2, 3\)"):
        softmax_backward(P, np.ones(3))  # would broadcast: refused
    with pytest.raises(ValueError, match=r"dP of shape \(3, 2\) and P of shape \(2, 3\)"):
        softmax_backward(P, np.ones((3, 2)))
    with pytest.raises(TypeError, match="dP must be a real numeric array"):
        softmax_backward(P, np.ones((2, 3), dtype=bool))
    with pytest.raises(ValueError, match="out of range"):
        softmax_backward(P, np.ones((2, 3)), axis=5)
    with pytest.raises(ValueError, match="at least one axis"):
        softmax_backward(np.float64(1.0), np.float64(1.0))


# ---------------------------------------------------------------- cross-entropy


@pytest.mark.parametrize("shape", CE_SHAPES)
@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("scale", [1.0, 1e4])
def test_cross_entropy_and_backward_match_torch(rng, shape, reduction, scale):
    Z = scale * rng.standard_normal(shape)
    y = rng.integers(0, shape[-1], size=shape[:-1])
    loss_torch, dZ_torch = torch_cross_entropy_and_grad(Z, y, reduction)
    loss = cross_entropy(Z, y, reduction=reduction)
    dZ = cross_entropy_backward(Z, y, reduction=reduction)
    assert isinstance(loss, float) and np.isfinite(loss)
    assert dZ.shape == Z.shape
    np.testing.assert_allclose(loss, loss_torch, rtol=1e-12)
    np.testing.assert_allclose(dZ, dZ_torch, rtol=1e-10, atol=1e-15)


def test_cross_entropy_default_is_mean(rng):
    Z, y = rng.standard_normal((4, 3)), np.array([0, 2, 1, 1])
    assert cross_entropy(Z, y) == cross_entropy(Z, y, reduction="mean")
    np.testing.assert_allclose(cross_entropy(Z, y, reduction="sum"), 4 * cross_entropy(Z, y), rtol=1e-14)
    np.testing.assert_array_equal(cross_entropy_backward(Z, y), cross_entropy_backward(Z, y, reduction="mean"))


def test_cross_entropy_gradient_is_softmax_minus_onehot_over_n(rng):
    Z, y = rng.standard_normal((5, 4)), np.array([3, 0, 0, 2, 1])
    expected = (softmax(Z) - np.eye(4)[y]) / 5
    np.testing.assert_allclose(cross_entropy_backward(Z, y), expected, rtol=1e-13, atol=1e-16)


@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("shape", [(5,), (4, 3), (2, 3, 4)])
def test_cross_entropy_backward_passes_finite_differences(rng, shape, reduction):
    Z = rng.standard_normal(shape)
    y = rng.integers(0, shape[-1], size=shape[:-1])
    dZ = cross_entropy_backward(Z, y, reduction=reduction)
    result = check_gradient(lambda z: cross_entropy(z, y, reduction=reduction), Z, dZ)
    assert result.passed, result.report()


def test_checker_rejects_a_backward_that_forgets_the_mean(rng):
    N = 8
    Z, y = rng.standard_normal((N, 5)), rng.integers(0, 5, N)
    forgot = cross_entropy_backward(Z, y, reduction="sum")  # no 1/N
    result = check_gradient(lambda z: cross_entropy(z, y), Z, forgot)
    assert not result.passed
    np.testing.assert_allclose(result.claimed / result.numerical, N, rtol=1e-6)


def test_cross_entropy_at_1e3_logits_is_exact_where_log_of_softmax_is_not():
    Z = np.array([[1e3, 0.0]])
    with np.errstate(divide="ignore"):
        naive = -np.log(softmax(Z)[0, 1])  # softmax rounds p_1 = e^-1000 to 0
    assert naive == np.inf
    assert cross_entropy(Z, np.array([1])) == 1000.0


def test_cross_entropy_single_example_and_label_types(rng):
    z = rng.standard_normal(4)
    ref = cross_entropy(z[None, :], np.array([2]))
    assert cross_entropy(z, 2) == ref
    assert cross_entropy(z, np.int64(2)) == ref
    assert cross_entropy(z, np.array(2, dtype=np.uint8)) == ref
    np.testing.assert_array_equal(cross_entropy_backward(z, 2), cross_entropy_backward(z[None, :], [2])[0])


def test_cross_entropy_dtypes(rng):
    Z = rng.standard_normal((300, 500)).astype(np.float32)
    y = rng.integers(0, 500, 300)
    dZ = cross_entropy_backward(Z, y)
    assert dZ.dtype == np.float32
    assert isinstance(cross_entropy(Z, y), float)
    np.testing.assert_allclose(cross_entropy(Z, y), cross_entropy(Z.astype(np.float64), y), rtol=1e-5)
    np.testing.assert_allclose(dZ, cross_entropy_backward(Z.astype(np.float64), y), rtol=1e-4, atol=1e-9)
    assert cross_entropy_backward(np.array([[1, 2]]), [0]).dtype == np.float64


def test_cross_entropy_leaves_arguments_unchanged(rng):
    Z, y = rng.standard_normal((5, 4)), np.array([3, 0, 0, 2, 1])
    Z0, y0 = Z.copy(), y.copy()
    cross_entropy(Z, y)
    dZ = cross_entropy_backward(Z, y)
    np.testing.assert_array_equal(Z, Z0)
    np.testing.assert_array_equal(y, y0)
    assert not np.shares_memory(dZ, Z)


@pytest.mark.parametrize("fn", [cross_entropy, cross_entropy_backward])
@pytest.mark.parametrize(
    "Z, y, kwargs, error, match",
    [
        (np.zeros((2, 3)), [0, 3], {}, ValueError, r"label 3 at index \(1,\) of y is out of range for C = 3"),
        (np.zeros((2, 3)), [-1, 0], {}, ValueError, r"label -1 at index \(0,\) of y is out of range for C = 3"),
        (np.zeros((2, 3)), [0, -100], {}, ValueError, "label -100"),  # no ignore_index
        (np.zeros((2, 3)), np.array([0.0, 2.0]), {}, TypeError, "floating-point"),
        (np.zeros(3), 2.0, {}, TypeError, "floating-point"),
        (np.zeros((2, 3)), np.array([True, False]), {}, TypeError, "booleans"),
        (np.zeros((2, 3)), np.array(["a", "b"]), {}, TypeError, "integer class labels"),
        (np.zeros((2, 3)), [0, 1, 2], {}, ValueError, r"Z.shape\[:-1\] = \(2,\).*y of shape \(3,\) and Z of shape \(2, 3\)"),
        (np.zeros((2, 3)), [[0, 1]], {}, ValueError, r"y of shape \(1, 2\) and Z of shape \(2, 3\)"),
        (np.zeros((2, 3)), [0, 1], {"reduction": "none"}, ValueError, "reduction must be"),
        (np.zeros((2, 3)), [0, 1], {"reduction": None}, ValueError, "reduction must be"),
        (np.float64(1.0), 0, {}, ValueError, "0-d"),
        (np.zeros((2, 0)), [0, 0], {}, ValueError, "no classes"),
        (np.zeros((0, 3)), np.zeros(0, int), {}, ValueError, "no examples"),
        (np.ones((2, 3), dtype=bool), [0, 1], {}, TypeError, "Z must be a real numeric array"),
    ],
)
def test_cross_entropy_bad_inputs(fn, Z, y, kwargs, error, match):
    with pytest.raises(error, match=match):
        fn(Z, y, **kwargs)
