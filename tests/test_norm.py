"""Tests of matgrad.norm: LayerNorm and BatchNorm, forward and backward.

Oracles: PyTorch autograd in float64 (F.layer_norm with normalized_shape = X.shape[-1:],
F.batch_norm with training=True), central finite differences (check_gradient) for
every input, and a tiny BatchNorm differentiated exactly by sympy. The checker is tested:
a backward that treats the mean and the standard deviation as constants is rejected.
"""

import numpy as np
import pytest
import sympy as sp
import torch
import torch.nn.functional as F

from matgrad import (
    batch_norm_backward,
    batch_norm_forward,
    check_gradient,
    layer_norm_backward,
    layer_norm_forward,
)

LN_SHAPES = [(5,), (4, 6), (2, 3, 5), (7, 1), (1, 4), (200, 700)]  # (200, 700) spans several blocks
BN_SHAPES = [(2, 3), (8, 5), (16, 1), (300, 4)]


def make(rng, shape, dtype=np.float64):
    d = shape[-1]
    X = 3.0 * rng.standard_normal(shape) + 1.5
    gamma, beta = rng.standard_normal(d), rng.standard_normal(d)
    G = rng.standard_normal(shape)
    return [a.astype(dtype) for a in (X, gamma, beta, G)]


def torch_norm(kind, X, gamma, beta, G, eps):
    tX, tg, tb = (torch.tensor(a, requires_grad=True) for a in (X, gamma, beta))
    if kind == "layer":
        Y = F.layer_norm(tX, tX.shape[-1:], tg, tb, eps)
    else:
        Y = F.batch_norm(tX, None, None, tg, tb, training=True, eps=eps)
    Y.backward(torch.tensor(G))
    return Y.detach().numpy(), tX.grad.numpy(), tg.grad.numpy(), tb.grad.numpy()


FORWARD = {"layer": layer_norm_forward, "batch": batch_norm_forward}
BACKWARD = {"layer": layer_norm_backward, "batch": batch_norm_backward}
CASES = [("layer", s) for s in LN_SHAPES] + [("batch", s) for s in BN_SHAPES]


@pytest.mark.parametrize("kind, shape", CASES)
@pytest.mark.parametrize("eps", [1e-5, 0.5])
def test_matches_torch_autograd(rng, kind, shape, eps):
    X, gamma, beta, G = make(rng, shape)
    Y, cache = FORWARD[kind](X, gamma, beta, eps=eps)
    grads = BACKWARD[kind](G, cache)
    expected = torch_norm(kind, X, gamma, beta, G, eps)
    for ours, theirs, name in zip((Y, *grads), expected, ("Y", "dX", "dgamma", "dbeta")):
        assert ours.shape == theirs.shape, name
        np.testing.assert_allclose(ours, theirs, rtol=1e-10, atol=1e-12, err_msg=name)


@pytest.mark.parametrize("kind, shape", [("layer", (5,)), ("layer", (3, 4)), ("layer", (2, 2, 3)), ("batch", (4, 3)), ("batch", (2, 2))])
@pytest.mark.parametrize("wrt", [0, 1, 2])
def test_passes_finite_differences(rng, kind, shape, wrt):
    X, gamma, beta, G = make(rng, shape)
    args = [X, gamma, beta]
    _, cache = FORWARD[kind](*args)
    claimed = BACKWARD[kind](G, cache)[wrt]

    def loss(value):
        local = list(args)
        local[wrt] = value
        return np.sum(G * FORWARD[kind](*local)[0])

    result = check_gradient(loss, args[wrt], claimed)
    assert result.passed, result.report()


@pytest.mark.parametrize("kind, shape", [("layer", (3, 4)), ("batch", (4, 3))])
def test_checker_rejects_a_backward_that_treats_the_statistics_as_constants(rng, kind, shape):
    X, gamma, beta, G = make(rng, shape)
    Y, cache = FORWARD[kind](X, gamma, beta)
    axis = -1 if kind == "layer" else 0
    sigma = np.sqrt(X.var(axis=axis, keepdims=True) + 1e-5)
    wrong = G * gamma / sigma  # dXhat / sigma: forgets that mean and sigma depend on X
    result = check_gradient(lambda x: np.sum(G * FORWARD[kind](x, gamma, beta)[0]), X, wrong)
    assert not result.passed


def test_batch_norm_exactly_by_sympy():
    # n = 3 examples, d = 1 feature: dX from sympy's derivative of sum(G * Y) equals the formula
    n = 3
    x = sp.symbols("x0:3", real=True)
    g = sp.symbols("g0:3", real=True)
    gamma, beta, eps = sp.symbols("gamma beta epsilon", positive=True)
    mu = sum(x) / n
    var = sum((xi - mu) ** 2 for xi in x) / n
    sigma = sp.sqrt(var + eps)
    xhat = [(xi - mu) / sigma for xi in x]
    L = sum(gi * (gamma * xh + beta) for gi, xh in zip(g, xhat))
    dxhat = [gi * gamma for gi in g]
    m1 = sum(dxhat) / n
    m2 = sum(a * b for a, b in zip(dxhat, xhat)) / n
    formula = [(dxhat[i] - m1 - xhat[i] * m2) / sigma for i in range(n)]
    for i in range(n):
        assert sp.simplify(sp.diff(L, x[i]) - formula[i]) == 0
    # and the numbers of batch_norm_backward at one rational point
    point = {x[0]: 1, x[1]: -2, x[2]: sp.Rational(1, 2), g[0]: 3, g[1]: -1, g[2]: 2, gamma: 2, beta: 1, eps: sp.Rational(1, 10)}
    exact = np.array([float(sp.diff(L, xi).subs(point)) for xi in x])
    _, cache = batch_norm_forward(np.array([[1.0], [-2.0], [0.5]]), np.array([2.0]), np.array([1.0]), eps=0.1)
    dX, _, _ = batch_norm_backward(np.array([[3.0], [-1.0], [2.0]]), cache)
    np.testing.assert_allclose(dX[:, 0], exact, rtol=1e-13)


def test_layer_norm_of_one_feature_is_beta(rng):
    X, gamma, beta, G = make(rng, (4, 1))
    Y, cache = layer_norm_forward(X, gamma, beta)
    np.testing.assert_array_equal(Y, np.broadcast_to(beta, (4, 1)))
    dX, dgamma, dbeta = layer_norm_backward(G, cache)
    np.testing.assert_array_equal(dX, 0.0)
    np.testing.assert_allclose(dbeta, G.sum(axis=0), rtol=1e-15)


@pytest.mark.parametrize("kind, shape", [("layer", (3, 4)), ("layer", (200, 700)), ("batch", (5, 3))])
def test_a_second_backward_from_the_same_cache_is_equal_and_arguments_unchanged(rng, kind, shape):
    X, gamma, beta, G = make(rng, shape)
    saved = [a.copy() for a in (X, gamma, beta, G)]
    Y, cache = FORWARD[kind](X, gamma, beta)
    first = BACKWARD[kind](G, cache)
    for a, b in zip((X, gamma, beta, G), saved):
        np.testing.assert_array_equal(a, b)
    X[0] += 5.0  # changing the arguments afterwards must not change the cache
    gamma[0] = 100.0
    second = BACKWARD[kind](G, cache)
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)
    for a in (Y, *first):
        assert not any(np.shares_memory(a, b) for b in (X, gamma, beta, G))
    for value in (cache.Xhat, cache.rstd, cache.gamma):
        assert not value.flags.writeable


def test_forward_never_writes_its_arguments(rng):
    X, gamma, beta, G = make(rng, (6, 4))
    for a in (X, gamma, beta, G):
        a.flags.writeable = False  # any write would raise
    for kind in ("layer", "batch"):
        _, cache = FORWARD[kind](X, gamma, beta)
        BACKWARD[kind](G, cache)


@pytest.mark.parametrize("kind", ["layer", "batch"])
def test_dtypes_kept(rng, kind):
    X, gamma, beta, G = make(rng, (6, 4), dtype=np.float32)
    Y, cache = FORWARD[kind](X, gamma, beta)
    assert Y.dtype == np.float32
    assert all(a.dtype == np.float32 for a in BACKWARD[kind](G, cache))
    ref_Y, ref_cache = FORWARD[kind](*(a.astype(np.float64) for a in (X, gamma, beta)))
    np.testing.assert_allclose(Y, ref_Y, rtol=1e-4, atol=1e-5)
    for a, b in zip(BACKWARD[kind](G, cache), BACKWARD[kind](G.astype(np.float64), ref_cache)):
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-4)
    assert all(a.dtype == np.float64 for a in BACKWARD[kind](G.astype(np.float64), cache))  # promotion
    Yi, _ = FORWARD[kind](np.arange(12).reshape(6, 2) % 5, np.ones(2, int), np.zeros(2, int))
    assert Yi.dtype == np.float64


@pytest.mark.parametrize(
    "kind, X, gamma, beta, kwargs, error, match",
    [
        ("layer", np.ones((2, 3)), np.ones((1, 3)), np.zeros(3), {}, ValueError, r"gamma must have shape \(d,\) = \(3,\).*got gamma of shape \(1, 3\) for X of shape \(2, 3\)"),
        ("layer", np.ones((2, 3)), np.ones(3), np.zeros((3, 1)), {}, ValueError, r"got beta of shape \(3, 1\)"),
        ("layer", np.ones((2, 3)), np.ones(2), np.zeros(3), {}, ValueError, r"got gamma of shape \(2,\)"),
        ("layer", np.float64(1.0), np.ones(1), np.zeros(1), {}, ValueError, "0-d"),
        ("layer", np.ones((2, 0)), np.ones(0), np.zeros(0), {}, ValueError, "no features"),
        ("layer", np.ones((2, 3), bool), np.ones(3), np.zeros(3), {}, TypeError, "X must be a real numeric array"),
        ("layer", np.ones((2, 3)), np.ones(3), np.zeros(3), {"eps": -1.0}, ValueError, "eps must be positive"),
        ("layer", np.ones((2, 3)), np.ones(3), np.zeros(3), {"eps": 0.0}, ValueError, "eps must be positive"),
        ("layer", np.ones((2, 3)), np.ones(3), np.zeros(3), {"eps": np.nan}, ValueError, "eps must be positive"),
        ("layer", np.ones((2, 3)), np.ones(3), np.zeros(3), {"eps": True}, TypeError, "eps must be a positive real"),
        ("layer", np.ones((2, 3)), np.ones(3), np.zeros(3), {"eps": "1e-5"}, TypeError, "eps must be a positive real"),
        ("batch", np.ones((1, 3)), np.ones(3), np.zeros(3), {}, ValueError, r"at least 2 examples.*X of shape \(1, 3\)"),
        ("batch", np.ones(3), np.ones(3), np.zeros(3), {}, ValueError, r"2-D of shape \(n, d\).*\(3,\)"),
        ("batch", np.ones((2, 3, 4)), np.ones(4), np.zeros(4), {}, ValueError, r"2-D of shape \(n, d\).*\(2, 3, 4\)"),
        ("batch", np.ones((4, 3)), np.ones((1, 3)), np.zeros(3), {}, ValueError, r"got gamma of shape \(1, 3\) for X of shape \(4, 3\)"),
        ("batch", np.ones((4, 3)), np.ones(3), np.zeros(3, complex), {}, TypeError, "beta must be a real numeric array"),
    ],
)
def test_bad_inputs(kind, X, gamma, beta, kwargs, error, match):
    with pytest.raises(error, match=match):
        FORWARD[kind](X, gamma, beta, **kwargs)


def test_bad_backward_inputs(rng):
    X, gamma, beta, G = make(rng, (4, 3))
    _, ln_cache = layer_norm_forward(X, gamma, beta)
    _, bn_cache = batch_norm_forward(X, gamma, beta)
    with pytest.raises(ValueError, match=r"dY of shape \(3, 4\) for X of shape \(4, 3\)"):
        layer_norm_backward(G.T, ln_cache)
    with pytest.raises(ValueError, match=r"dY of shape \(3,\) for X of shape \(4, 3\)"):
        batch_norm_backward(G[0], bn_cache)  # would broadcast: refused
    with pytest.raises(TypeError, match="needs the cache returned by layer_norm_forward; got the cache of batch_norm_forward"):
        layer_norm_backward(G, bn_cache)
    with pytest.raises(TypeError, match="needs the cache returned by batch_norm_forward; got dict"):
        batch_norm_backward(G, {})
    with pytest.raises(TypeError, match="dY must be a real numeric array"):
        layer_norm_backward(G.astype(bool), ln_cache)
