"""Tests of matgrad.gradcheck: finite differences and the checks built on them.

Oracles: functions whose gradients are known by hand, PyTorch autograd in float64, and
properties over random shapes. The checker itself is tested both ways: it must pass true
gradients and fail wrong ones ("test the test")."""

import dataclasses
import re
from fractions import Fraction

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from matgrad import (
    GradientCheckResult,
    JacobianTooLarge,
    assert_gradient_close,
    check_gradient,
    matmul_jacobian,
    numerical_gradient,
    numerical_jacobian,
    random_directions,
)

sizes = st.integers(min_value=1, max_value=4)
seeds = st.integers(min_value=0, max_value=2**32 - 1)


class Counting:
    """Wrap ``f``, count its calls, and optionally raise on call number ``raise_on``."""

    def __init__(self, f, raise_on=None):
        self.f, self.calls, self.raise_on = f, 0, raise_on
        self.seen = []  # (id, dtype, shape) of every argument

    def __call__(self, z):
        self.calls += 1
        self.seen.append(z)
        if self.raise_on is not None and self.calls == self.raise_on:
            raise RuntimeError(f"f failed on call {self.calls}")
        return self.f(z)


def tanh_problem(seed, n, m, d):
    """L(X) = <G, tanh(X W)> and its gradient dX = (G * (1 - tanh(XW)**2)) W^T (row convention)."""
    rng = np.random.default_rng(seed)
    X, W, G = rng.standard_normal((n, m)), rng.standard_normal((m, d)), rng.standard_normal((n, d))

    def f(X):
        return np.sum(G * np.tanh(X @ W))

    T = np.tanh(X @ W)
    return f, X, (G * (1.0 - T**2)) @ W.T


def quadratic_problem(seed, n, m):
    """L(X) = <X, Q X> / 2 + <B, X> with Q symmetric (n, n); dX = Q X + B."""
    rng = np.random.default_rng(seed)
    Q = rng.standard_normal((n, n))
    Q = Q + Q.T
    X, B = rng.standard_normal((n, m)), rng.standard_normal((n, m))

    def f(X):
        return 0.5 * np.sum(X * (Q @ X)) + np.sum(B * X)

    return f, X, Q @ X + B


def perturb_one_entry(grad, index, relative=1e-3):
    """A copy of ``grad`` with one entry wrong by ``relative * (1 + |entry|)``."""
    wrong = grad.copy()
    wrong[index] += relative * (1.0 + abs(wrong[index]))
    return wrong


# --- numerical_gradient: hand-computable cases -------------------------------------------


def test_numerical_gradient_of_sum_of_squares():
    X = np.array([[1.0, -2.0, 0.5], [3.0, 0.0, -4.0]])
    g = numerical_gradient(lambda X: np.sum(X**2), X)
    np.testing.assert_allclose(g, 2 * X, rtol=1e-8, atol=1e-8)


@pytest.mark.parametrize(
    ("x", "shape"),
    [(2.0, ()), (np.float64(2.0), ()), (np.array(2.0), ()), ([2.0, 3.0], (2,)), (np.full((2, 1, 3), 2.0), (2, 1, 3))],
)
def test_numerical_gradient_returns_float64_of_the_shape_of_x(x, shape):
    g = numerical_gradient(lambda z: np.sum(z**3), x)
    assert isinstance(g, np.ndarray) and g.dtype == np.float64 and g.shape == shape
    np.testing.assert_allclose(g, 3 * np.asarray(x) ** 2, rtol=1e-8)


def test_numerical_gradient_of_integer_input_is_taken_in_float64():
    x = np.array([1, 2, 3])
    f = Counting(lambda z: np.sum(z**2))
    g = numerical_gradient(f, x)
    assert g.dtype == np.float64
    assert all(z.dtype == np.float64 for z in f.seen)  # an integer x + eps would truncate
    np.testing.assert_allclose(g, [2.0, 4.0, 6.0], rtol=1e-8)


def test_numerical_gradient_of_a_non_contiguous_view_keeps_its_shape(rng):
    X = rng.standard_normal((3, 4)).T  # shape (4, 3), Fortran order
    np.testing.assert_allclose(numerical_gradient(lambda z: np.sum(z**2), X), 2 * X, rtol=1e-8, atol=1e-8)


@pytest.mark.parametrize("shape", [(), (1,), (3,), (2, 3), (2, 2, 2)])
def test_numerical_gradient_costs_two_evaluations_per_entry(shape):
    f = Counting(lambda z: np.sum(np.sin(z)))
    numerical_gradient(f, np.ones(shape))
    assert f.calls == 2 * int(np.prod(shape))


@pytest.mark.parametrize(
    "value", [3, 2.5, np.float32(2.5), np.int64(2), np.array(2.5), np.array(3), np.array(1.0, dtype=np.float32), Fraction(1, 3)]
)
def test_numerical_gradient_accepts_every_kind_of_real_scalar(value):
    assert np.all(numerical_gradient(lambda z: value, np.ones(2)) == 0.0)


@given(seeds, sizes, sizes)
def test_numerical_gradient_of_a_linear_function_is_its_coefficient(seed, n, m):
    rng = np.random.default_rng(seed)
    G, X = rng.standard_normal((n, m)), rng.standard_normal((n, m))
    np.testing.assert_allclose(numerical_gradient(lambda X: np.sum(G * X), X), G, rtol=1e-8, atol=1e-8)


@given(seeds, sizes, sizes, sizes)
def test_numerical_gradient_of_tanh_loss_matches_the_closed_form(seed, n, m, d):
    f, X, dX = tanh_problem(seed, n, m, d)
    np.testing.assert_allclose(numerical_gradient(f, X), dX, rtol=1e-6, atol=1e-8)


# --- numerical_gradient: against PyTorch autograd -------------------------------------------


def _logsumexp_rows(Y, xp):
    M = Y.max(axis=1, keepdims=True) if xp is np else Y.max(dim=1, keepdim=True).values
    return xp.log(xp.exp(Y - M).sum(1)) + M[:, 0]


SCALAR_FUNCTIONS = {
    # name: (function written for numpy or torch, shape of the variable)
    "tanh layer": (lambda X, C, xp: (C["G"] * xp.tanh(X @ C["W"])).sum(), (4, 3)),
    "logsumexp of scores": (lambda X, C, xp: _logsumexp_rows(X @ C["W"], xp).sum(), (4, 3)),
    "mean squared error in W": (lambda W, C, xp: ((C["X"] @ W - C["T"]) ** 2).mean(), (3, 2)),
    "sin times square, 3-D": (lambda Z, C, xp: (xp.sin(Z) * Z**2).sum(), (2, 3, 2)),
    "softplus of a quadratic form": (lambda v, C, xp: xp.log(1 + xp.exp(v @ C["S"] @ v)), (3,)),
}


@pytest.mark.parametrize("name", sorted(SCALAR_FUNCTIONS))
def test_numerical_gradient_matches_torch_autograd_in_float64(name, rng):
    fn, shape = SCALAR_FUNCTIONS[name]
    consts = {
        "W": rng.standard_normal((3, 2)),
        "G": rng.standard_normal((4, 2)),
        "X": rng.standard_normal((5, 3)),
        "T": rng.standard_normal((5, 2)),
        "S": 0.3 * rng.standard_normal((3, 3)),
    }
    if name == "tanh layer" or name == "logsumexp of scores":
        consts["W"] = rng.standard_normal((3, 2))
    x = rng.standard_normal(shape)
    tx = torch.tensor(x, requires_grad=True)
    (expected,) = torch.autograd.grad(fn(tx, {k: torch.from_numpy(v) for k, v in consts.items()}, torch), tx)
    assert expected.dtype == torch.float64
    got = numerical_gradient(lambda z: fn(z, consts, np), x)
    torch.testing.assert_close(torch.from_numpy(got), expected, rtol=1e-6, atol=1e-8)
    assert check_gradient(lambda z: fn(z, consts, np), x, expected.numpy())


# --- numerical_gradient: what f gets, and the caller's x ---------------------------------------


def test_f_gets_a_private_copy_never_x_itself(rng):
    x = rng.standard_normal((2, 3))
    f = Counting(lambda z: np.sum(z))
    numerical_gradient(f, x)
    assert f.seen and all(z is not x and not np.shares_memory(z, x) for z in f.seen)


def test_x_is_unchanged_also_when_f_raises_on_its_third_call(rng):
    # the third call is the "+ eps" evaluation of the second entry: x would then be perturbed
    x = rng.standard_normal((2, 3))
    x_before = x.copy()
    f = Counting(lambda z: np.sum(z**2), raise_on=3)
    with pytest.raises(RuntimeError, match="f failed on call 3"):
        numerical_gradient(f, x)
    assert f.calls == 3
    np.testing.assert_array_equal(x, x_before)


def test_an_f_that_writes_into_its_argument_cannot_reach_x(rng):
    x = rng.standard_normal(4)
    x_before = x.copy()

    def vandal(z):
        z += 100.0
        return float(np.sum(z))

    numerical_gradient(vandal, x)
    np.testing.assert_array_equal(x, x_before)


def test_numerical_gradient_leaves_every_argument_unchanged(rng):
    x32 = rng.standard_normal((3, 2)).astype(np.float32)
    xint = np.arange(4)
    copies = (x32.copy(), xint.copy())
    numerical_gradient(lambda z: np.sum(z**2), x32, eps=1e-3)
    numerical_gradient(lambda z: np.sum(z**2), xint)
    np.testing.assert_array_equal(x32, copies[0])
    np.testing.assert_array_equal(xint, copies[1])
    assert x32.dtype == np.float32 and xint.dtype == copies[1].dtype


# --- numerical_gradient: bad input ------------------------------------------------------------


@pytest.mark.parametrize(
    ("returned", "message"),
    [
        (np.zeros(2), r"it returned an ndarray of shape \(2,\) and dtype float64"),
        (np.zeros(1), r"it returned an ndarray of shape \(1,\)"),
        (np.zeros((1, 1)), r"it returned an ndarray of shape \(1, 1\)"),
        ([1.0], r"it returned list: \[1\.0\]"),
        ((1.0,), r"it returned tuple: \(1\.0,\)"),
        ("1.0", r"it returned str: '1\.0'"),
        (None, r"it returned NoneType: None"),
        (1 + 2j, r"it returned a complex number, \(1\+2j\)"),
        (np.complex128(3.0), r"it returned a complex number"),
        (np.array(1j), r"ndarray of shape \(\) and dtype complex128"),
        (True, r"it returned a boolean \(True\)"),
        (np.bool_(False), r"it returned a boolean"),
        (np.array(True), r"ndarray of shape \(\) and dtype bool"),
    ],
)
def test_f_returning_anything_but_a_real_scalar_is_a_value_error_saying_what_came_back(returned, message):
    with pytest.raises(ValueError, match=r"f must return a real scalar.*" + message):
        numerical_gradient(lambda z: returned, np.ones(3))


@pytest.mark.parametrize("eps", [0, 0.0, -1e-6, float("nan"), float("inf")])
def test_bad_eps_is_a_value_error(eps):
    with pytest.raises(ValueError, match="eps must be a positive finite number"):
        numerical_gradient(lambda z: np.sum(z), np.ones(2), eps=eps)


@pytest.mark.parametrize("eps", ["1e-6", None, True, 1e-6j, [1e-6]])
def test_non_numeric_eps_is_a_type_error(eps):
    with pytest.raises(TypeError, match="eps must be a positive real number"):
        numerical_gradient(lambda z: np.sum(z), np.ones(2), eps=eps)


@pytest.mark.parametrize(
    ("x", "what"),
    [
        (np.array([True, False]), "booleans"),
        (np.array([1 + 1j]), "complex numbers"),
        (np.array(["1.0"]), "strings"),
        (np.array([1.0, None], dtype=object), "Python objects"),
        ([[1.0], [2.0, 3.0]], "could not convert"),
    ],
)
def test_non_real_x_is_a_type_error(x, what):
    with pytest.raises(TypeError, match=f"x must be a real numeric array.*{what}"):
        numerical_gradient(lambda z: 0.0, x)


def test_non_callable_f_is_a_type_error():
    with pytest.raises(TypeError, match="f must be callable; got ndarray"):
        numerical_gradient(np.ones(2), np.ones(2))
    with pytest.raises(TypeError, match="f must be callable; got str"):
        check_gradient("loss", np.ones(2), np.ones(2))
    with pytest.raises(TypeError, match="f must be callable; got NoneType"):
        assert_gradient_close(None, np.ones(2), np.ones(2))


@pytest.mark.parametrize("bad", [np.inf, -np.inf, np.nan])
def test_non_finite_x_is_a_value_error_naming_the_entry(bad):
    x = np.zeros((2, 3))
    x[1, 2] = bad
    with pytest.raises(ValueError, match=r"x must be finite to be differentiated; x\[1, 2\] is"):
        numerical_gradient(lambda z: 0.0, x)


@pytest.mark.parametrize(
    ("x", "eps", "dtype"),
    [(np.float32([1.0, 40.0]), 1e-6, "float32"), (np.array([1.0]), 1e-17, "float64"), (np.array([1e10]), 1e-7, "float64")],
)
def test_a_step_that_rounds_to_nothing_is_a_value_error_not_a_silent_zero(x, eps, dtype):
    with pytest.raises(ValueError, match=rf"eps={eps:g} is too small for x of dtype {dtype}: at index"):
        numerical_gradient(lambda z: np.sum(z**2), x, eps=eps)


# --- float32 input --------------------------------------------------------------------------


def test_float32_x_is_perturbed_in_float32_and_the_result_is_float64(rng):
    x = rng.standard_normal((2, 3)).astype(np.float32)
    f = Counting(lambda z: np.sum(z**3))
    g = numerical_gradient(f, x, eps=1e-3)
    assert {z.dtype for z in f.seen} == {np.dtype(np.float32)}
    assert g.dtype == np.float64 and g.shape == x.shape
    np.testing.assert_allclose(g, 3 * x.astype(np.float64) ** 2, rtol=1e-2, atol=1e-3)


def test_float32_difference_is_divided_by_the_step_actually_taken():
    # In float32, 16 - 1e-6 and 16 + 1e-6 round to 16 - 9.5e-7 and 16 + 1.9e-6: a step of
    # 2.86e-6, not 2e-6. Dividing by the nominal step would report 45.8 instead of 32.
    x = np.float32([16.0, 1.0])
    g = numerical_gradient(lambda z: float(np.sum(z.astype(np.float64) ** 2)), x)
    np.testing.assert_allclose(g, [32.0, 2.0], rtol=1e-7)


def test_float32_check_needs_a_larger_step_and_looser_tolerances(rng):
    x = rng.standard_normal(20).astype(np.float32)
    f = lambda z: np.sum(z**3)  # computed in float32  # noqa: E731
    true = 3 * x.astype(np.float64) ** 2
    # float64 settings on a float32 computation reject a correct gradient (rounding ~ u|f|/eps)
    assert not check_gradient(f, x, true)
    # a float32 step and float32 tolerances accept it, and still reject a wrong one
    assert check_gradient(f, x, true, eps=1e-3, rtol=1e-2, atol=1e-3)
    assert not check_gradient(f, x, perturb_one_entry(true, 7, relative=0.1), eps=1e-3, rtol=1e-2, atol=1e-3)
    assert check_gradient(f, x, true, method="directional", eps=1e-3, rtol=1e-2, atol=1e-3)


# --- check_gradient: results, counts, the test of the test ----------------------------------


@pytest.mark.parametrize("shape", [(), (1,), (4,), (2, 3), (3, 1, 2)])
def test_full_check_costs_two_evaluations_per_entry(shape, rng):
    x = rng.standard_normal(shape)
    f = Counting(lambda z: np.sum(np.cos(z)))
    result = check_gradient(f, x, -np.sin(x))
    assert result.passed and result.method == "full"
    assert f.calls == result.n_evaluations == 2 * x.size


@pytest.mark.parametrize("n_directions", [1, 3, 8])
@pytest.mark.parametrize("shape", [(3,), (20, 50)])
def test_directional_check_costs_two_evaluations_per_direction_whatever_the_size(shape, n_directions, rng):
    x = rng.standard_normal(shape)
    f = Counting(lambda z: np.sum(np.cos(z)))
    result = check_gradient(f, x, -np.sin(x), method="directional", n_directions=n_directions)
    assert result.passed and result.method == "directional"
    assert f.calls == result.n_evaluations == 2 * n_directions


def test_bool_of_the_result_is_passed(rng):
    f, X, dX = tanh_problem(0, 3, 4, 2)
    good, bad = check_gradient(f, X, dX), check_gradient(f, X, 2 * dX)
    assert isinstance(good, GradientCheckResult)
    assert bool(good) is True and good.passed is True
    assert bool(bad) is False and bad.passed is False
    for r in (good, bad, check_gradient(f, X, 2 * dX, method="directional")):
        assert bool(r) == r.passed


def test_result_names_the_worst_entry_its_index_and_both_values():
    f, X, dX = tanh_problem(1, 3, 4, 2)
    wrong = dX.copy()
    wrong[2, 1] += 0.5
    wrong[0, 3] += 1e-3  # also wrong, but less so
    r = check_gradient(f, X, wrong)
    assert not r.passed and r.n_failed == 2
    assert r.worst_index == (2, 1)
    assert r.claimed == pytest.approx(wrong[2, 1], rel=1e-15)
    assert r.numerical == pytest.approx(dX[2, 1], rel=1e-7, abs=1e-9)
    assert r.max_abs_error == pytest.approx(0.5, rel=1e-6)
    assert r.max_rel_error == pytest.approx(0.5 / max(abs(wrong[2, 1]), abs(dX[2, 1])), rel=1e-6)


def test_a_correct_gradient_reports_tiny_errors():
    f, X, dX = tanh_problem(2, 3, 3, 3)
    r = check_gradient(f, X, dX)
    assert r.passed and r.n_failed == 0
    assert r.max_abs_error < 1e-8 and r.max_rel_error < 1e-6


def test_a_nan_or_inf_in_the_claimed_gradient_fails_with_infinite_error():
    x = np.array([1.0, 2.0, 3.0])
    for bad in (np.nan, np.inf):
        g = 2 * x
        g[1] = bad
        r = check_gradient(lambda z: np.sum(z**2), x, g)
        assert not r.passed and r.worst_index == (1,)
        assert r.max_abs_error == np.inf and r.max_rel_error == np.inf


def test_an_empty_x_passes_trivially_with_no_evaluations():
    r = check_gradient(lambda z: 0.0, np.zeros((0, 3)), np.zeros((0, 3)))
    assert r.passed and r.n_evaluations == 0


def test_tolerances_are_used_as_documented():
    x = np.array([1.0])  # f = x**2, numerical 2; claimed 2.1 misses by 0.1
    f = lambda z: np.sum(z**2)  # noqa: E731
    assert not check_gradient(f, x, np.array([2.1]))
    assert check_gradient(f, x, np.array([2.1]), atol=0.11, rtol=0)
    assert check_gradient(f, x, np.array([2.1]), atol=0, rtol=0.051)
    assert not check_gradient(f, x, np.array([2.1]), atol=0, rtol=0.049)


@given(seeds, sizes, sizes, st.sampled_from(["full", "directional"]))
def test_check_passes_the_true_gradient_of_random_quadratic_losses(seed, n, m, method):
    f, X, dX = quadratic_problem(seed, n, m)
    assert check_gradient(f, X, dX, method=method, seed=seed)


@given(seeds, sizes, sizes, sizes, st.sampled_from(["full", "directional"]))
def test_check_passes_the_true_gradient_of_random_tanh_losses(seed, n, m, d, method):
    f, X, dX = tanh_problem(seed, n, m, d)
    assert check_gradient(f, X, dX, method=method, seed=seed)


@given(seeds, sizes, sizes, st.data())
def test_full_check_fails_every_perturbed_gradient_of_quadratic_losses(seed, n, m, data):
    f, X, dX = quadratic_problem(seed, n, m)
    index = (data.draw(st.integers(0, n - 1)), data.draw(st.integers(0, m - 1)))
    r = check_gradient(f, X, perturb_one_entry(dX, index))
    assert not r and r.worst_index == index and r.n_failed == 1


@given(seeds, sizes, sizes, sizes, st.data())
def test_full_check_fails_every_perturbed_gradient_of_tanh_losses(seed, n, m, d, data):
    f, X, dX = tanh_problem(seed, n, m, d)
    index = (data.draw(st.integers(0, n - 1)), data.draw(st.integers(0, m - 1)))
    r = check_gradient(f, X, perturb_one_entry(dX, index))
    assert not r and r.worst_index == index and r.n_failed == 1


@pytest.mark.parametrize(
    "mistake",
    [
        "transposed factor",  # G @ W instead of G @ W.T, on square matrices where both fit
        "missing activation derivative",
        "scaled by the batch size",
    ],
)
@pytest.mark.parametrize("method", ["full", "directional"])
def test_check_catches_the_classic_mistakes(mistake, method):
    rng = np.random.default_rng(3)
    X, W, G = rng.standard_normal((3, 3)), rng.standard_normal((3, 3)), rng.standard_normal((3, 3))
    f = lambda X: np.sum(G * np.tanh(X @ W))  # noqa: E731
    D = G * (1 - np.tanh(X @ W) ** 2)
    wrong = {"transposed factor": D @ W, "missing activation derivative": G @ W.T, "scaled by the batch size": 3 * D @ W.T}
    assert check_gradient(f, X, D @ W.T, method=method)
    assert not check_gradient(f, X, wrong[mistake], method=method)


# --- the directional check: what is guaranteed, what is probable ---------------------------


def directional_problem():
    f, X, dX = tanh_problem(11, 6, 5, 4)  # 30 entries
    return f, X, dX, perturb_one_entry(dX, (2, 3), relative=1e-3)


def test_directional_check_is_deterministic_given_the_seed():
    f, X, dX, wrong = directional_problem()
    a = check_gradient(f, X, wrong, method="directional", seed=5)
    b = check_gradient(f, X, wrong, method="directional", seed=5)
    c = check_gradient(f, X, wrong, method="directional", seed=6)
    assert a == b
    assert (a.claimed, a.numerical) != (c.claimed, c.numerical)


def test_more_directions_never_catch_less_with_the_same_seed():
    # Guaranteed by construction: with a fixed seed the first k directions do not depend on
    # n_directions, and a check passes only if every direction passes.
    f, X, dX, _ = directional_problem()
    small = perturb_one_entry(dX, (2, 3), relative=1e-5)  # an error near the tolerance
    caught = {n: [not check_gradient(f, X, small, method="directional", n_directions=n, seed=s) for s in range(30)]
              for n in (1, 2, 8)}
    for s in range(30):
        assert caught[1][s] <= caught[2][s] <= caught[8][s]
    assert sum(caught[1]) < 30  # one direction does miss this small error for some seeds...
    assert sum(caught[8]) > sum(caught[1])  # ...and more directions catch more of them


def test_directional_check_catches_one_wrong_entry_for_almost_every_seed():
    """The probabilistic guarantee, made deterministic by fixing the seeds.

    Entry (2, 3) of a 30-entry gradient is off by delta ~ 1e-3. Along a unit direction
    v = z / |z|, z standard normal, the claimed directional derivative is off by delta v_k,
    and the check misses only if |delta v_k| is below the tolerance atol + rtol |<g, v>|
    (about 1e-5 here), that is if |z_k| < ~1e-5 sqrt(30) / 1e-3 ~ 0.05: probability about
    0.04 per direction. Directions are independent, so 8 directions all miss with
    probability about 0.04**8 ~ 1e-11: for 50 seeds the expected number of misses is far
    below 1, and the spec's bound (at least 49 of 50) holds with room to spare. Nothing is
    certain for an unlucky direction (an error orthogonal to every v would pass); with the
    seeds fixed the outcome below is the same on every run.
    """
    f, X, dX, wrong = directional_problem()
    caught1 = sum(not check_gradient(f, X, wrong, method="directional", n_directions=1, seed=s) for s in range(50))
    caught8 = sum(not check_gradient(f, X, wrong, method="directional", n_directions=8, seed=s) for s in range(50))
    assert caught8 >= 49  # all 50 on the machines tried; one direction alone catches 48
    assert caught1 <= caught8
    # the correct gradient is never rejected (no false alarms) with the same seeds
    assert all(check_gradient(f, X, dX, method="directional", n_directions=8, seed=s) for s in range(50))


def test_directional_check_accepts_a_gradient_whose_error_is_orthogonal_to_its_directions():
    # What is NOT guaranteed: with one direction along x's only axis of change, an error in
    # another entry is invisible. Here x has two entries and f depends on both, but the claimed
    # gradient is wrong only in a way orthogonal to the single direction the seed draws.
    x = np.array([0.3, -0.7])
    f = lambda z: np.sum(z**2)  # noqa: E731
    v = np.random.default_rng(0).standard_normal(2)  # the direction seed 0 draws first
    v /= np.linalg.norm(v)
    error = np.array([-v[1], v[0]])  # orthogonal to v
    wrong = 2 * x + error
    assert check_gradient(f, x, wrong, method="directional", n_directions=1, seed=0)
    assert not check_gradient(f, x, wrong, method="full")


@pytest.mark.parametrize("shape", [(), (3,), (2, 3), (2, 1, 4), (0, 3)])
def test_random_directions_are_unit_float64_arrays_and_their_prefix_does_not_depend_on_the_count(shape):
    V = random_directions(shape, 5, seed=3)
    assert V.shape == (5,) + shape and V.dtype == np.float64
    norms = np.linalg.norm(V.reshape(5, -1), axis=1)
    assert np.allclose(norms, 0.0 if 0 in shape else 1.0, rtol=1e-14, atol=0)
    assert np.array_equal(random_directions(shape, 2, seed=3), V[:2])
    assert np.array_equal(random_directions(shape, 5, seed=3), V)  # the same seed, the same directions
    assert not np.array_equal(random_directions(shape, 5, seed=4), V) or 0 in shape


def test_random_directions_are_the_directions_check_gradient_uses():
    """Along each direction the check's claimed value is <grad, v> and its difference <grad f, v>."""
    f, X, dX, wrong = directional_problem()
    V = random_directions(X.shape, 6, seed=11)
    for k in range(6):
        # a gradient wrong only along direction k: that direction is the worst, and the only failure
        bad = dX + 1e-2 * V[k]
        r = check_gradient(f, X, bad, method="directional", n_directions=6, seed=11)
        assert r.worst_index == (k,)
        assert np.isclose(r.claimed, np.sum(bad * V[k]), rtol=1e-9, atol=1e-12)
        assert np.isclose(r.numerical, np.sum(dX * V[k]), rtol=1e-6, atol=1e-9)
    # the integer and the tuple forms of a 1-d shape are the same
    assert np.array_equal(random_directions(4, 2), random_directions((4,), 2))


@pytest.mark.parametrize(
    ("shape", "n_directions", "seed", "error", "message"),
    [
        ((2, -1), 8, 0, ValueError, "non-negative integers"),
        ((2.0, 3), 8, 0, TypeError, "tuple of non-negative integers"),
        ("23", 8, 0, TypeError, "tuple of non-negative integers"),
        ((True, 3), 8, 0, TypeError, "tuple of non-negative integers"),
        ((2, 3), 0, 0, ValueError, "at least 1"),
        ((2, 3), 2.5, 0, TypeError, "n_directions must be a positive integer"),
        ((2, 3), 8, -1, ValueError, "seed must be"),
        ((2, 3), 8, "zero", TypeError, "seed must be"),
    ],
)
def test_random_directions_bad_arguments(shape, n_directions, seed, error, message):
    with pytest.raises(error, match=message):
        random_directions(shape, n_directions, seed)


# --- check_gradient: bad input ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("x_shape", "grad_shape"),
    [((3, 1), (3,)), ((3,), ()), ((3,), (1, 3)), ((2, 3), (3, 2)), ((2, 3), (1, 3)), ((), (1,))],
)
def test_grad_of_another_shape_is_a_value_error_never_a_broadcast(x_shape, grad_shape):
    f = Counting(lambda z: np.sum(z))
    with pytest.raises(ValueError, match=r"grad must have the shape of x.*never broadcast"):
        check_gradient(f, np.ones(x_shape), np.ones(grad_shape))
    assert f.calls == 0


@pytest.mark.parametrize("method", ["Full", "directions", "", None, 1])
def test_unknown_method_is_a_value_error_before_any_evaluation(method):
    f = Counting(lambda z: np.sum(z))
    with pytest.raises(ValueError, match='method must be "full" or "directional"'):
        check_gradient(f, np.ones(2), np.ones(2), method=method)
    assert f.calls == 0


@pytest.mark.parametrize("method", ["full", "directional"])
@pytest.mark.parametrize(("n_directions", "error"), [(0, ValueError), (-3, ValueError), (2.0, TypeError), (True, TypeError), ("8", TypeError)])
def test_bad_n_directions_is_refused_whatever_the_method(n_directions, error, method):
    with pytest.raises(error, match="n_directions must be a positive integer"):
        check_gradient(lambda z: np.sum(z), np.ones(2), np.ones(2), method=method, n_directions=n_directions)


@pytest.mark.parametrize(
    ("option", "value", "error", "match"),
    [
        ("rtol", -1e-5, ValueError, "rtol must be a non-negative real number"),
        ("atol", float("nan"), ValueError, "atol must be a non-negative real number"),
        ("rtol", "1e-5", TypeError, "rtol must be a non-negative real number"),
        ("atol", None, TypeError, "atol must be a non-negative real number"),
        ("eps", 0.0, ValueError, "eps must be a positive finite number"),
        ("eps", "small", TypeError, "eps must be a positive real number"),
        ("seed", -1, ValueError, "seed must be what np.random.default_rng accepts.*got int: -1"),
        ("seed", "zero", TypeError, "seed must be what np.random.default_rng accepts.*got str: 'zero'"),
        ("seed", 1.5, TypeError, "seed must be what np.random.default_rng accepts"),
    ],
)
def test_bad_options_are_refused(option, value, error, match):
    with pytest.raises(error, match=match):
        check_gradient(lambda z: np.sum(z), np.ones(2), np.ones(2), **{option: value})


@pytest.mark.parametrize(
    ("x", "grad", "name", "what"),
    [
        (np.array([True]), np.ones(1), "x", "booleans"),
        (np.ones(1), np.array([True]), "grad", "booleans"),
        (np.ones(1), np.array([1j]), "grad", "complex numbers"),
        (np.array(["a"]), np.ones(1), "x", "strings"),
        (np.ones(1), np.array([None], dtype=object), "grad", "Python objects"),
    ],
)
def test_non_real_x_or_grad_is_a_type_error(x, grad, name, what):
    with pytest.raises(TypeError, match=f"{name} must be a real numeric array.*{what}"):
        check_gradient(lambda z: 0.0, x, grad)


@pytest.mark.parametrize("method", ["full", "directional"])
def test_check_gradient_reports_f_returning_a_non_scalar(method):
    with pytest.raises(ValueError, match=r"it returned an ndarray of shape \(2,\)"):
        check_gradient(lambda z: z * 2, np.ones(2), np.ones(2), method=method)


def test_directional_step_that_rounds_to_nothing_is_a_value_error():
    with pytest.raises(ValueError, match="eps=1e-20 is too small for x of dtype float64"):
        check_gradient(lambda z: np.sum(z**2), np.ones(3), 2 * np.ones(3), method="directional", eps=1e-20)


@pytest.mark.parametrize("method", ["full", "directional"])
def test_check_gradient_leaves_x_and_grad_unchanged_also_when_f_raises(method, rng):
    f0, X, dX = tanh_problem(4, 3, 2, 2)
    X32 = X.astype(np.float32)
    X_before, dX_before, X32_before = X.copy(), dX.copy(), X32.copy()
    check_gradient(f0, X, dX, method=method)
    check_gradient(f0, X32, dX, method=method, eps=1e-3, rtol=1e-2, atol=1e-3)
    assert_gradient_close(f0, X, dX, method=method)
    for call in (check_gradient, assert_gradient_close):
        f = Counting(f0, raise_on=3)
        with pytest.raises(RuntimeError, match="f failed on call 3"):
            call(f, X, dX, method=method)
        assert all(not np.shares_memory(z, X) for z in f.seen)
    np.testing.assert_array_equal(X, X_before)
    np.testing.assert_array_equal(dX, dX_before)
    np.testing.assert_array_equal(X32, X32_before)


def test_check_gradient_does_not_consume_a_callers_generator_when_given_an_int_seed():
    rng = np.random.default_rng(7)
    state = rng.bit_generator.state
    check_gradient(lambda z: np.sum(z), np.ones(3), np.ones(3), method="directional", seed=7)
    assert rng.bit_generator.state == state


# --- assert_gradient_close ------------------------------------------------------------------


def test_assert_gradient_close_returns_the_passing_result():
    f, X, dX = tanh_problem(5, 2, 3, 2)
    r = assert_gradient_close(f, X, dX)
    assert isinstance(r, GradientCheckResult) and r.passed
    assert assert_gradient_close(f, X, dX, method="directional", n_directions=2).n_evaluations == 4


def test_assert_gradient_close_report_names_worst_entry_index_and_both_values():
    f, X, dX = tanh_problem(6, 3, 4, 2)
    wrong = dX.copy()
    wrong[1, 2] = 7.5
    with pytest.raises(AssertionError) as info:
        assert_gradient_close(f, X, wrong)
    message = str(info.value)
    assert "FAILED: 1 entry(s) outside tolerance" in message
    assert "worst entry (1, 2)" in message
    assert "claimed 7.5," in message
    numerical = float(re.search(r"finite differences (\S+);", message).group(1))
    assert numerical == pytest.approx(dX[1, 2], rel=1e-7, abs=1e-9)
    assert "over all entries: max abs error" in message
    assert "rtol=1e-05, atol=1e-08" in message


def test_assert_gradient_close_directional_report_names_the_direction():
    f, X, dX = tanh_problem(6, 3, 4, 2)
    with pytest.raises(AssertionError, match=r"gradient check \(directional, 6 evaluations of f\) FAILED.*worst direction \(\d,\)"):
        assert_gradient_close(f, X, -dX, method="directional", n_directions=3)


def test_assert_gradient_close_takes_the_options_of_check_gradient():
    x = np.array([1.0])
    assert_gradient_close(lambda z: np.sum(z**2), x, np.array([2.1]), atol=0.2)
    with pytest.raises(TypeError):
        assert_gradient_close(lambda z: np.sum(z**2), x, np.array([2.0]), tolerance=0.1)
    with pytest.raises(ValueError, match="grad must have the shape of x"):
        assert_gradient_close(lambda z: np.sum(z**2), x, np.array([2.0, 2.0]))


def test_result_is_immutable_and_its_report_says_passed():
    r = check_gradient(lambda z: np.sum(z**2), np.ones(2), 2 * np.ones(2))
    with pytest.raises(dataclasses.FrozenInstanceError):
        r.passed = False
    assert "passed" in r.report() and "FAILED" not in r.report()


# --- numerical_jacobian -------------------------------------------------------------------------


@given(seeds, sizes, sizes, sizes)
def test_numerical_jacobian_of_a_product_is_the_explicit_jacobian(seed, n, m, d):
    rng = np.random.default_rng(seed)
    A, B = rng.standard_normal((n, m)), rng.standard_normal((m, d))
    J = numerical_jacobian(lambda a: a @ B, A)
    assert J.shape == (n, d, n, m) and J.dtype == np.float64
    np.testing.assert_allclose(J, matmul_jacobian(A, B, "A"), rtol=1e-7, atol=1e-8)


def test_numerical_jacobian_of_tanh_is_diagonal(rng):
    x = rng.standard_normal(4)
    np.testing.assert_allclose(numerical_jacobian(np.tanh, x), np.diag(1 - np.tanh(x) ** 2), rtol=1e-7, atol=1e-9)


def test_numerical_jacobian_matches_torch(rng):
    W = rng.standard_normal((3, 2))
    x = rng.standard_normal((4, 3))
    expected = torch.autograd.functional.jacobian(lambda t: torch.sin(t @ torch.from_numpy(W)), torch.from_numpy(x))
    got = numerical_jacobian(lambda z: np.sin(z @ W), x)
    torch.testing.assert_close(torch.from_numpy(got), expected, rtol=1e-6, atol=1e-8)


def test_numerical_jacobian_refuses_a_large_jacobian_after_one_evaluation():
    f = Counting(lambda z: np.concatenate([z, z]))
    with pytest.raises(JacobianTooLarge, match=r"shape \(2000, 1000\) and need 15\.3 MiB"):
        numerical_jacobian(f, np.ones(1000), max_bytes=2**20)
    assert f.calls == 1


def test_numerical_jacobian_refuses_an_output_that_changes_shape():
    calls = {"n": 0}

    def f(z):
        calls["n"] += 1
        return np.ones(2 if calls["n"] < 3 else 3)

    with pytest.raises(ValueError, match=r"f changed the shape of its output: first \(2,\)"):
        numerical_jacobian(f, np.ones(2))


def test_numerical_jacobian_bad_input():
    with pytest.raises(TypeError, match=r"f\(x\) must be a real numeric array.*complex"):
        numerical_jacobian(lambda z: z * 1j, np.ones(2))
    with pytest.raises(TypeError, match="f must be callable"):
        numerical_jacobian("f", np.ones(2))
    with pytest.raises(ValueError, match="eps must be a positive finite number"):
        numerical_jacobian(np.sin, np.ones(2), eps=-1.0)
    with pytest.raises(ValueError, match="max_bytes must be a non-negative number"):
        numerical_jacobian(np.sin, np.ones(2), max_bytes=-1)
    with pytest.raises(TypeError, match="x must be a real numeric array"):
        numerical_jacobian(np.sin, np.ones(2, dtype=bool))


def test_numerical_jacobian_leaves_x_unchanged_also_when_f_raises(rng):
    x = rng.standard_normal(3)
    x_before = x.copy()
    numerical_jacobian(np.sin, x)
    f = Counting(np.sin, raise_on=3)
    with pytest.raises(RuntimeError):
        numerical_jacobian(f, x)
    np.testing.assert_array_equal(x, x_before)


# --- regressions of issue 12: steps the dtype cannot take, returns that do not fit a float ---


def _one_large_float32_entry():
    """A float32 x of 400 entries near 1 and one entry of 5000, with f taken in float64."""
    x = np.ones((20, 20), dtype=np.float32)
    x[2, 1] = 5000
    grad = 2 * x.astype(np.float64)

    def f(z):
        return np.sum(z.astype(np.float64) ** 2)

    return f, x, grad


def test_directional_check_refuses_an_entry_whose_step_is_lost_to_rounding():
    """Issue 12, defect 1: eps * v_i at the entry 5000 rounds to nothing in float32, so that
    entry was never moved and a gradient wrong there by any amount passed."""
    f, x, grad = _one_large_float32_entry()
    wrong = grad.copy()
    wrong[2, 1] += 1e3
    for claimed in (grad, wrong):
        with pytest.raises(ValueError, match=r"eps=0.001 is too small .* at index \(2, 1\), x = 5000.0"):
            check_gradient(f, x, claimed, method="directional", eps=1e-3, rtol=1e-2, atol=1e-3)
    # with a step large enough for every entry the check runs, and catches the wrong entry
    assert check_gradient(f, x, grad, method="directional", eps=0.1, rtol=1e-2, atol=1e-3)
    assert not check_gradient(f, x, wrong, method="directional", eps=0.1, rtol=1e-2, atol=1e-3)


def test_directional_step_rule_does_not_refuse_ordinary_float32_checks(rng):
    """The rule of defect 1 stays silent on a large float32 x of ordinary size, even with one direction."""
    W = rng.standard_normal((256, 8))
    X = rng.standard_normal((256, 256)).astype(np.float32)

    def f(z):
        return np.sum(np.tanh(z.astype(np.float64) @ W))

    dX = (1 - np.tanh(X.astype(np.float64) @ W) ** 2) @ W.T
    assert check_gradient(f, X, dX, method="directional", n_directions=1, eps=1e-3, rtol=1e-2, atol=1e-4)


@pytest.mark.parametrize("method", ["full", "directional"])
@pytest.mark.parametrize("eps, dtype", [(1e308, np.float64), (1e39, np.float32), (1e5, np.float16)])
def test_a_step_that_overflows_is_a_value_error_not_a_silent_pass(eps, dtype, method):
    """Issue 12, defect 2: x +- eps overflowed to inf (or 2 eps did), the differences became 0 or NaN
    and a wrong gradient passed."""
    x = np.array([1.0, 2.0], dtype=dtype)
    wrong = np.array([0.0, 0.0])
    with pytest.raises(ValueError, match=re.escape(f"eps={eps:g} is too large for x of dtype {np.dtype(dtype)}") + ".*overflow"):
        check_gradient(lambda z: np.sum(z.astype(np.float64) ** 2), x, wrong, method=method, eps=eps)
    with pytest.raises(ValueError, match=re.escape(f"eps={eps:g} is too large")):
        numerical_gradient(lambda z: np.sum(z.astype(np.float64)), x, eps=eps)


@pytest.mark.parametrize("method", ["full", "directional"])
def test_f_returning_an_integer_too_large_for_a_float_is_a_value_error_naming_f(method):
    """Issue 12, defect 5: float(10**400) raised OverflowError instead of the ValueError of bad returns."""
    with pytest.raises(ValueError, match="f must return a real scalar that fits in a float64"):
        check_gradient(lambda z: 10**400, np.ones(2), np.ones(2), method=method)
    with pytest.raises(ValueError, match="f must return a real scalar that fits in a float64"):
        numerical_gradient(lambda z: 10**400, np.ones(2))
