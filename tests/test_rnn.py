"""Tests of matgrad.rnn: the vanilla RNN cell and backpropagation through time.

Oracles: finite differences (check_gradient) in float64, PyTorch autograd in float64
(the same cell written with torch ops), and exact sympy derivatives of a tiny cell.
The checker itself is tested: a backward pass that forgets the path through
c_{t-1} must be rejected.
"""

import numpy as np
import pytest
import sympy as sp
import torch
from hypothesis import given
from hypothesis import strategies as st

from matgrad import (
    check_gradient,
    rnn_backward,
    rnn_forward,
    rnn_step_backward,
    rnn_step_forward,
)

NAMES = ("xs", "c0", "W_c", "W_x", "b")
GRAD_OF = {"xs": "dxs", "c0": "dc0", "W_c": "dW_c", "W_x": "dW_x", "b": "db"}
# (T, m, n_x, n_c): T = 1 and m = 1 included
SIZES = [(1, 1, 1, 1), (1, 3, 2, 4), (4, 1, 3, 2), (3, 2, 1, 3), (5, 3, 2, 4), (2, 4, 3, 1)]


def make_problem(rng, T, m, n_x, n_c, dtype=np.float64, loss="every"):
    """Random inputs of the right shapes and the incoming gradients G of the loss sum_t <G_t, c_t>."""
    args = {
        "xs": rng.standard_normal((T, n_x, m)),
        "c0": rng.standard_normal((n_c, m)),
        "W_c": rng.standard_normal((n_c, n_c)) / np.sqrt(n_c),
        "W_x": rng.standard_normal((n_c, n_x)) / np.sqrt(n_x),
        "b": 0.5 * rng.standard_normal((n_c, 1)),
    }
    G = rng.standard_normal((T, n_c, m))
    if loss == "last":
        G[:-1] = 0.0  # the loss sees only c_T
    args = {k: v.astype(dtype) for k, v in args.items()}
    return args, G.astype(dtype)


def loss_of(args, G, name):
    """The scalar loss L = sum_t <G_t, c_t> as a function of one argument, the others fixed."""

    def f(value):
        local = dict(args, **{name: value})
        cs, _ = rnn_forward(*(local[k] for k in NAMES))
        return np.sum(G * cs)

    return f


# A deliberately WRONG backward pass, kept here to test the test: it treats the
# gradient the loss hands to c_t directly as if it were the total gradient, i.e. it
# drops the path c_{t-1} -> c_t -> ... -> L (partial instead of total derivative).
def wrong_bptt_dropping_recurrent_path(dcs, args):
    cs, _ = rnn_forward(*(args[k] for k in NAMES))
    grads = {"dxs": np.zeros_like(args["xs"]), "dc0": None, "dW_c": 0.0, "dW_x": 0.0, "db": 0.0}
    c_prev = args["c0"]
    for t in range(cs.shape[0]):
        _, step_cache = rnn_step_forward(args["xs"][t], c_prev, args["W_c"], args["W_x"], args["b"])
        g = rnn_step_backward(dcs[t], step_cache)  # should be dcs[t] + (dc_prev from step t + 1)
        grads["dxs"][t] = g["dx"]
        grads["dW_c"] = grads["dW_c"] + g["dW_c"]
        grads["dW_x"] = grads["dW_x"] + g["dW_x"]
        grads["db"] = grads["db"] + g["db"]
        if t == 0:
            grads["dc0"] = g["dc_prev"]
        c_prev = cs[t]
    return grads


# ---------------------------------------------------------------- finite differences


@pytest.mark.parametrize("loss", ["every", "last"])
@pytest.mark.parametrize("T, m, n_x, n_c", SIZES)
def test_bptt_matches_finite_differences_for_every_argument(T, m, n_x, n_c, loss):
    rng = np.random.default_rng(100 * T + 10 * m + n_c)
    args, G = make_problem(rng, T, m, n_x, n_c, loss=loss)
    _, cache = rnn_forward(*(args[k] for k in NAMES))
    grads = rnn_backward(G, cache)
    for name in NAMES:
        result = check_gradient(loss_of(args, G, name), args[name], grads[GRAD_OF[name]], rtol=1e-6, atol=1e-9)
        assert result.passed, f"{name}: {result.report()}"


@pytest.mark.parametrize("T, m, n_x, n_c", SIZES)
def test_step_backward_matches_finite_differences(T, m, n_x, n_c):
    rng = np.random.default_rng(7 + T + m)
    args, G = make_problem(rng, 1, m, n_x, n_c)
    step_args = {"x": args["xs"][0], "c_prev": args["c0"], "W_c": args["W_c"], "W_x": args["W_x"], "b": args["b"]}
    order = ("x", "c_prev", "W_c", "W_x", "b")
    _, cache = rnn_step_forward(*(step_args[k] for k in order))
    grads = rnn_step_backward(G[0], cache)
    for name in order:

        def f(value, name=name):
            local = dict(step_args, **{name: value})
            return np.sum(G[0] * rnn_step_forward(*(local[k] for k in order))[0])

        result = check_gradient(f, step_args[name], grads["d" + name], rtol=1e-6, atol=1e-9)
        assert result.passed, f"{name}: {result.report()}"


def test_forward_and_backward_equal_the_step_functions_chained(rng):
    args, G = make_problem(rng, 6, 3, 2, 4)
    cs, cache = rnn_forward(*(args[k] for k in NAMES))
    grads = rnn_backward(G, cache)
    # forward, one step at a time
    c, caches = args["c0"], []
    for t in range(6):
        c, step_cache = rnn_step_forward(args["xs"][t], c, args["W_c"], args["W_x"], args["b"])
        np.testing.assert_allclose(c, cs[t], rtol=1e-13, atol=1e-14)
        caches.append(step_cache)
    # backward, one step at a time, carrying the total gradient into c_{t-1}
    carry = np.zeros_like(args["c0"])
    dW_c = np.zeros_like(args["W_c"])
    for t in range(5, -1, -1):
        g = rnn_step_backward(G[t] + carry, caches[t])
        np.testing.assert_allclose(g["dx"], grads["dxs"][t], rtol=1e-12, atol=1e-13)
        dW_c += g["dW_c"]
        carry = g["dc_prev"]
    np.testing.assert_allclose(carry, grads["dc0"], rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(dW_c, grads["dW_c"], rtol=1e-12, atol=1e-13)


@given(
    T=st.integers(1, 4),
    m=st.integers(1, 3),
    n_x=st.integers(1, 3),
    n_c=st.integers(1, 3),
    seed=st.integers(0, 2**16),
)
def test_random_sizes_pass_a_directional_check(T, m, n_x, n_c, seed):
    rng = np.random.default_rng(seed)
    args, G = make_problem(rng, T, m, n_x, n_c)
    _, cache = rnn_forward(*(args[k] for k in NAMES))
    grads = rnn_backward(G, cache)
    for name in NAMES:
        result = check_gradient(
            loss_of(args, G, name), args[name], grads[GRAD_OF[name]], method="directional", n_directions=3,
            rtol=1e-6, atol=1e-9,
        )
        assert result.passed, f"{name}: {result.report()}"


# ---------------------------------------------------------------- test the test


@pytest.mark.parametrize("loss", ["every", "last"])
def test_checker_rejects_backward_that_drops_the_path_through_c_prev(rng, loss):
    args, G = make_problem(rng, 4, 2, 3, 3, loss=loss)
    wrong = wrong_bptt_dropping_recurrent_path(G, args)
    for name in ("c0", "W_c", "W_x", "b"):
        result = check_gradient(loss_of(args, G, name), args[name], wrong[GRAD_OF[name]], rtol=1e-6, atol=1e-9)
        assert not result.passed, f"the wrong {GRAD_OF[name]} slipped through: {result.report()}"
    # the same checker, same tolerances, accepts the correct gradients at the same point
    _, cache = rnn_forward(*(args[k] for k in NAMES))
    right = rnn_backward(G, cache)
    assert check_gradient(loss_of(args, G, "W_c"), args["W_c"], right["dW_c"], rtol=1e-6, atol=1e-9).passed


def test_the_wrong_variant_is_only_wrong_through_time(rng):
    # With a single step there is no later step to forget: the variant coincides with BPTT,
    # so the failure above is due to the dropped path and nothing else.
    args, G = make_problem(rng, 1, 3, 2, 4)
    wrong = wrong_bptt_dropping_recurrent_path(G, args)
    _, cache = rnn_forward(*(args[k] for k in NAMES))
    right = rnn_backward(G, cache)
    for key in GRAD_OF.values():
        np.testing.assert_allclose(wrong[key], right[key], rtol=1e-12, atol=1e-14)


# ---------------------------------------------------------------- PyTorch


def torch_rnn_grads(args, G):
    """The same cell written with torch ops, differentiated by autograd in float64."""
    t = {k: torch.tensor(v, dtype=torch.float64, requires_grad=True) for k, v in args.items()}
    c, cs = t["c0"], []
    for step in range(args["xs"].shape[0]):
        c = torch.tanh(t["W_c"] @ c + t["W_x"] @ t["xs"][step] + t["b"])
        cs.append(c)
    loss = torch.sum(torch.tensor(G, dtype=torch.float64) * torch.stack(cs))
    loss.backward()
    return torch.stack(cs).detach(), {GRAD_OF[k]: t[k].grad for k in NAMES}


@pytest.mark.parametrize("loss", ["every", "last"])
@pytest.mark.parametrize("T, m, n_x, n_c", SIZES + [(12, 5, 6, 7)])
def test_bptt_matches_pytorch_autograd(T, m, n_x, n_c, loss):
    rng = np.random.default_rng(3 * T + m)
    args, G = make_problem(rng, T, m, n_x, n_c, loss=loss)
    cs, cache = rnn_forward(*(args[k] for k in NAMES))
    grads = rnn_backward(G, cache)
    cs_torch, grads_torch = torch_rnn_grads(args, G)
    torch.testing.assert_close(torch.from_numpy(cs), cs_torch, rtol=1e-12, atol=1e-13)
    for key, value in grads_torch.items():
        torch.testing.assert_close(torch.from_numpy(grads[key]), value, rtol=1e-10, atol=1e-12, msg=key)


# ---------------------------------------------------------------- sympy


def test_bptt_equals_exact_sympy_derivatives_of_a_tiny_cell():
    # n_c = 2, n_x = 1, m = 1, T = 2: every derivative of L = g1 . c1 + g2 . c2 exactly
    Wc = sp.Matrix(2, 2, sp.symbols("w11 w12 w21 w22"))
    Wx = sp.Matrix(2, 1, sp.symbols("v1 v2"))
    b = sp.Matrix(2, 1, sp.symbols("b1 b2"))
    c0 = sp.Matrix(2, 1, sp.symbols("h1 h2"))
    x1, x2 = sp.symbols("x1 x2")
    c1 = (Wc * c0 + Wx * x1 + b).applyfunc(sp.tanh)
    c2 = (Wc * c1 + Wx * x2 + b).applyfunc(sp.tanh)
    g1 = sp.Matrix([sp.Rational(1, 2), -1])
    g2 = sp.Matrix([sp.Rational(3, 4), sp.Rational(1, 3)])
    L = (g1.T * c1 + g2.T * c2)[0, 0]
    point = {
        **dict(zip(Wc, [sp.Rational(1, 2), sp.Rational(-1, 3), sp.Rational(1, 4), sp.Rational(2, 3)])),
        **dict(zip(Wx, [sp.Rational(3, 2), sp.Rational(-1, 2)])),
        **dict(zip(b, [sp.Rational(1, 10), sp.Rational(-1, 5)])),
        **dict(zip(c0, [sp.Rational(1, 3), sp.Rational(-2, 3)])),
        x1: sp.Rational(1, 2),
        x2: sp.Rational(-3, 4),
    }

    def exact(symbols):
        return np.array([float(sp.diff(L, s).subs(point).evalf(30)) for s in symbols])

    def num(matrix):
        return np.array([float(point[s]) for s in matrix], dtype=np.float64).reshape(matrix.shape)

    xs = np.array([[[float(point[x1])]], [[float(point[x2])]]])
    cs, cache = rnn_forward(xs, num(c0), num(Wc), num(Wx), num(b))
    G = np.array([[[float(g)] for g in g1], [[float(g)] for g in g2]])
    grads = rnn_backward(G, cache)
    np.testing.assert_allclose(cs[1].ravel(), [float(e.subs(point).evalf(30)) for e in c2], rtol=1e-14)
    np.testing.assert_allclose(grads["dW_c"].ravel(), exact(Wc), rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(grads["dW_x"].ravel(), exact(Wx), rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(grads["db"].ravel(), exact(b), rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(grads["dc0"].ravel(), exact(c0), rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(grads["dxs"].ravel(), exact([x1, x2]), rtol=1e-13, atol=1e-15)


# ---------------------------------------------------------------- dtypes


def test_float32_stays_float32_and_agrees_with_float64(rng):
    args64, G64 = make_problem(rng, 8, 4, 3, 5)
    args32 = {k: v.astype(np.float32) for k, v in args64.items()}
    cs32, cache32 = rnn_forward(*(args32[k] for k in NAMES))
    grads32 = rnn_backward(G64.astype(np.float32), cache32)
    cs64, cache64 = rnn_forward(*(args64[k] for k in NAMES))
    grads64 = rnn_backward(G64, cache64)
    assert cs32.dtype == np.float32
    np.testing.assert_allclose(cs32, cs64, rtol=1e-5, atol=1e-6)
    for key in GRAD_OF.values():
        assert grads32[key].dtype == np.float32, key
        np.testing.assert_allclose(grads32[key], grads64[key], rtol=1e-4, atol=1e-5, err_msg=key)


def test_float32_step_stays_float32(rng):
    args, G = make_problem(rng, 1, 3, 2, 4, dtype=np.float32)
    c, cache = rnn_step_forward(args["xs"][0], args["c0"], args["W_c"], args["W_x"], args["b"])
    assert c.dtype == np.float32
    assert all(v.dtype == np.float32 for v in rnn_step_backward(G[0], cache).values())


def test_mixed_and_integer_dtypes_are_promoted(rng):
    args, G = make_problem(rng, 3, 2, 2, 2, dtype=np.float32)
    mixed = dict(args, W_c=args["W_c"].astype(np.float64))
    cs, cache = rnn_forward(*(mixed[k] for k in NAMES))
    assert cs.dtype == np.float64
    assert all(v.dtype == np.float64 for v in rnn_backward(G, cache).values())
    ints = {"xs": np.ones((2, 1, 3), dtype=np.int32), "c0": np.zeros((2, 3), dtype=np.int64),
            "W_c": np.eye(2, dtype=np.int64), "W_x": np.ones((2, 1), dtype=np.int8), "b": np.zeros((2, 1), dtype=int)}
    cs, cache = rnn_forward(*(ints[k] for k in NAMES))
    assert cs.dtype == np.float64
    np.testing.assert_allclose(cs[0], np.tanh(1.0))
    # float32 cache, float64 incoming gradient: the result is float64
    _, cache32 = rnn_forward(*(args[k] for k in NAMES))
    assert rnn_backward(G.astype(np.float64), cache32)["dW_c"].dtype == np.float64


# ---------------------------------------------------------------- arguments and the cache


def test_arguments_are_not_modified(rng):
    args, G = make_problem(rng, 4, 3, 2, 3)
    before = {k: v.copy() for k, v in args.items()}
    G_before = G.copy()
    cs, cache = rnn_forward(*(args[k] for k in NAMES))
    rnn_backward(G, cache)
    c, step_cache = rnn_step_forward(args["xs"][0], args["c0"], args["W_c"], args["W_x"], args["b"])
    rnn_step_backward(G[0], step_cache)
    for k in NAMES:
        np.testing.assert_array_equal(args[k], before[k], err_msg=k)
    np.testing.assert_array_equal(G, G_before)


def test_cache_is_not_corrupted_when_the_caller_changes_arguments_or_outputs(rng):
    args, G = make_problem(rng, 4, 3, 2, 3)
    cs, cache = rnn_forward(*(args[k] for k in NAMES))
    expected = {k: v.copy() for k, v in rnn_backward(G, cache).items()}
    c, step_cache = rnn_step_forward(args["xs"][0], args["c0"], args["W_c"], args["W_x"], args["b"])
    step_expected = {k: v.copy() for k, v in rnn_step_backward(G[0], step_cache).items()}
    for v in args.values():
        v += 1.0  # in place: the caller reuses its buffers
    cs *= 2.0
    c *= 2.0
    for k, v in rnn_backward(G, cache).items():
        np.testing.assert_allclose(v, expected[k], rtol=1e-12, atol=1e-14, err_msg=k)
    for k, v in rnn_step_backward(G[0], step_cache).items():
        np.testing.assert_allclose(v, step_expected[k], rtol=1e-12, atol=1e-14, err_msg=k)


def test_results_do_not_share_memory_with_the_cache(rng):
    args, G = make_problem(rng, 3, 2, 2, 2)
    cs, cache = rnn_forward(*(args[k] for k in NAMES))
    first = rnn_backward(G, cache)
    for v in first.values():
        v[...] = 0.0
    second = rnn_backward(G, cache)
    assert all(np.any(v != 0) for v in second.values())


# ---------------------------------------------------------------- bad input


def good_args(rng, T=3, m=2, n_x=4, n_c=5):
    args, _ = make_problem(rng, T, m, n_x, n_c)
    return args


@pytest.mark.parametrize(
    "name, bad, message",
    [
        ("xs", np.zeros((3, 4)), r"xs must be 3-D with shape \(T, n_x, m\); got xs of shape \(3, 4\)"),
        ("c0", np.zeros(5), r"c0 must be 2-D with shape \(n_c, m\); got c0 of shape \(5,\)"),
        ("c0", np.zeros((5, 3)), r"c0 must have shape \(n_c, m\) = \(5, 2\) .*got c0 of shape \(5, 3\)"),
        ("W_c", np.zeros((5, 4)), r"W_c must have shape \(n_c, n_c\) = \(5, 5\) .*got W_c of shape \(5, 4\)"),
        ("W_x", np.zeros((4, 5)), r"W_x must have shape \(n_c, n_x\) = \(5, 4\) .*got W_x of shape \(4, 5\)"),
        ("W_x", np.zeros((5, 4, 1)), r"W_x must have shape \(n_c, n_x\) = \(5, 4\) .*got W_x of shape \(5, 4, 1\)"),
        ("b", np.zeros(5), r"b must have shape \(n_c, 1\) = \(5, 1\) .*got b of shape \(5,\)"),
        ("b", np.zeros((1, 5)), r"b must have shape \(n_c, 1\) = \(5, 1\) .*got b of shape \(1, 5\)"),
        ("xs", np.zeros((0, 4, 2)), r"xs must hold at least one step; got xs of shape \(0, 4, 2\)"),
    ],
)
def test_rnn_forward_rejects_bad_shapes(rng, name, bad, message):
    args = dict(good_args(rng), **{name: bad})
    with pytest.raises(ValueError, match=message):
        rnn_forward(*(args[k] for k in NAMES))


@pytest.mark.parametrize(
    "name, bad, message",
    [
        ("x", np.zeros((3, 4, 2)), r"x must be 2-D with shape \(n_x, m\); got x of shape \(3, 4, 2\)"),
        ("c_prev", np.zeros((5, 3)), r"c_prev must have shape \(n_c, m\) = \(5, 2\) .*got c_prev of shape \(5, 3\)"),
        ("c_prev", np.zeros((2, 5, 2)), r"c_prev must be 2-D with shape \(n_c, m\); got c_prev of shape \(2, 5, 2\)"),
        ("W_c", np.zeros((4, 4)), r"W_c must have shape \(n_c, n_c\) = \(5, 5\) .*got W_c of shape \(4, 4\)"),
        ("W_x", np.zeros((5, 3)), r"W_x must have shape \(n_c, n_x\) = \(5, 4\) .*got W_x of shape \(5, 3\)"),
        ("b", np.zeros((5, 2)), r"b must have shape \(n_c, 1\) = \(5, 1\) .*got b of shape \(5, 2\)"),
    ],
)
def test_rnn_step_forward_rejects_bad_shapes(rng, name, bad, message):
    a = good_args(rng)
    args = {"x": a["xs"][0], "c_prev": a["c0"], "W_c": a["W_c"], "W_x": a["W_x"], "b": a["b"]}
    args[name] = bad
    with pytest.raises(ValueError, match=message):
        rnn_step_forward(*(args[k] for k in ("x", "c_prev", "W_c", "W_x", "b")))


@pytest.mark.parametrize(
    "bad, message",
    [
        (np.zeros((3, 5)), r"dcs must be 3-D with shape \(T, n_c, m\); got dcs of shape \(3, 5\)"),
        (np.zeros((2, 5, 2)), r"dcs must have shape \(T, n_c, m\) = \(3, 5, 2\) .*got dcs of shape \(2, 5, 2\)"),
        (np.zeros((3, 2, 5)), r"dcs must have shape \(T, n_c, m\) = \(3, 5, 2\) .*got dcs of shape \(3, 2, 5\)"),
    ],
)
def test_rnn_backward_rejects_bad_shapes(rng, bad, message):
    _, cache = rnn_forward(*(good_args(rng)[k] for k in NAMES))
    with pytest.raises(ValueError, match=message):
        rnn_backward(bad, cache)


@pytest.mark.parametrize(
    "bad, message",
    [
        (np.zeros(5), r"dc must be 2-D with shape \(n_c, m\); got dc of shape \(5,\)"),
        (np.zeros((2, 5)), r"dc must have shape \(n_c, m\) = \(5, 2\) .*got dc of shape \(2, 5\)"),
    ],
)
def test_rnn_step_backward_rejects_bad_shapes(rng, bad, message):
    a = good_args(rng)
    _, cache = rnn_step_forward(a["xs"][0], a["c0"], a["W_c"], a["W_x"], a["b"])
    with pytest.raises(ValueError, match=message):
        rnn_step_backward(bad, cache)


def test_backward_functions_reject_the_wrong_cache(rng):
    a = good_args(rng)
    _, seq_cache = rnn_forward(*(a[k] for k in NAMES))
    _, step_cache = rnn_step_forward(a["xs"][0], a["c0"], a["W_c"], a["W_x"], a["b"])
    with pytest.raises(TypeError, match="rnn_backward needs the cache returned by rnn_forward; got the cache of rnn_step_forward"):
        rnn_backward(np.zeros((3, 5, 2)), step_cache)
    with pytest.raises(TypeError, match="rnn_step_backward needs the cache returned by rnn_step_forward"):
        rnn_step_backward(np.zeros((5, 2)), seq_cache)
    with pytest.raises(TypeError, match="got dict"):
        rnn_backward(np.zeros((3, 5, 2)), {"cs": 0})


@pytest.mark.parametrize("name", NAMES)
def test_non_numeric_arguments_raise_type_error(rng, name):
    args = dict(good_args(rng), **{name: np.array([["a"]])})
    with pytest.raises(TypeError, match=f"{name} must be a real numeric array"):
        rnn_forward(*(args[k] for k in NAMES))
