"""Tests of matgrad.checks: a whole backward pass checked in one call.

Oracle: PyTorch autograd, run in the inputs' own dtype on the realistic layers of
``realistic_layers.py`` (linear + softmax cross-entropy, LayerNorm, attention, conv1d by
im2col, a tanh MLP). The defaults must pass those correct gradients in float32 and
float64 and reject a gradient 1 % off in float64 and 5 % off in float32 ("test the test").
"""

import re

import numpy as np
import pytest
import torch

import matgrad.checks as checks
from matgrad import (
    GradientCheckReport,
    assert_gradients_close,
    check_gradient,
    check_gradients,
    check_vjp,
    matmul_jacobian,
)
from realistic_layers import LAYERS

IDS = [layer.name for layer in LAYERS]
ERROR = {np.float64: 0.01, np.float32: 0.05}


# --- the defaults against the oracle ---------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("layer", LAYERS, ids=IDS)
def test_defaults_pass_correct_gradients_of_realistic_layers(layer, dtype):
    for seed in range(3):
        inputs = layer.inputs(seed, dtype)
        grads = layer.oracle_grads(inputs)
        report = check_gradients(layer.numpy_loss, inputs, grads)
        assert report.passed, report.report()
        assert list(report) == list(inputs)
        for key, result in report.items():
            assert result.name == key and result.method == "full" and result.diagnosis is None
            assert result.finite_differences.shape == inputs[key].shape


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("layer", LAYERS, ids=IDS)
def test_defaults_reject_a_gradient_off_by_1_percent_f64_and_5_percent_f32(layer, dtype):
    inputs = layer.inputs(0, dtype)
    grads = layer.oracle_grads(inputs)
    r = ERROR[dtype]
    signs = np.random.default_rng(0)
    for key, g in grads.items():
        for wrong in (g * (1 + r), g * (1 + r * signs.choice([-1.0, 1.0], g.shape))):
            report = check_gradients(layer.numpy_loss, inputs, {**grads, key: wrong.astype(dtype)})
            assert report.failed == (key,), report.report()


def test_explicit_tolerances_and_step_are_used_as_given():
    layer = LAYERS[0]
    inputs = layer.inputs(0, np.float64)
    report = check_gradients(layer.numpy_loss, inputs, layer.oracle_grads(inputs), rtol=1e-3, atol=1e-7, eps=1e-5)
    assert all(r.rtol == 1e-3 and r.atol == 1e-7 for r in report.values())
    # an absurd explicit tolerance is obeyed too: a wrong gradient passes it
    wrong = {k: 2 * g for k, g in layer.oracle_grads(inputs).items()}
    assert check_gradients(layer.numpy_loss, inputs, wrong, rtol=10.0).passed
    assert not check_gradients(layer.numpy_loss, inputs, wrong).passed


# --- inputs, outputs, torch --------------------------------------------------------------


def test_tuple_inputs_have_integer_keys():
    x, y = np.array([1.0, 2.0]), np.array([3.0, -1.0])
    report = check_gradients(lambda a, b: np.sum(a * b**2), (x, y), [y**2, 2 * x * y])
    assert report.passed and list(report) == [0, 1]
    bad = check_gradients(lambda a, b: np.sum(a * b**2), (x, y), (y**2, x * y))
    assert bad.failed == (1,)


def test_torch_tensors_in_and_0d_tensor_out_are_left_untouched():
    layer = LAYERS[2]
    arrays = layer.inputs(1, np.float32)
    tensors = {k: torch.tensor(v, requires_grad=(k != "V")) for k, v in arrays.items()}
    grads = {k: torch.tensor(g) for k, g in layer.oracle_grads(arrays).items()}
    seen = []

    def f(Q, K, V):
        seen.append((type(Q), Q.dtype, Q.requires_grad))
        return layer.torch_loss(Q, K, V)  # a 0-d tensor

    report = check_gradients(f, tensors, grads)
    assert report.passed, report.report()
    assert seen[0] == (torch.Tensor, torch.float32, False)
    for k, t in tensors.items():
        assert np.array_equal(t.detach().numpy(), arrays[k]) and t.grad is None
        assert t.requires_grad == (k != "V")


def test_custom_autograd_function_is_checked_and_its_bug_named():
    class Scale(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x, w):
            ctx.save_for_backward(x, w)
            return x @ w

        @staticmethod
        def backward(ctx, g):
            x, w = ctx.saved_tensors
            return g @ w.T, g.T @ x  # bug: dW transposed (w is square)

    rng = np.random.default_rng(3)
    x = torch.tensor(rng.standard_normal((5, 4)), requires_grad=True)
    w = torch.tensor(rng.standard_normal((4, 4)), requires_grad=True)
    G = torch.tensor(rng.standard_normal((5, 4)))
    loss = torch.sum(G * Scale.apply(x, w))
    dx, dw = torch.autograd.grad(loss, (x, w))
    report = check_gradients(lambda x, w: torch.sum(G * Scale.apply(x, w)), {"x": x, "w": w}, {"x": dx, "w": dw})
    assert report.failed == ("w",)
    assert report["w"].diagnosis.startswith("transposed:")


def test_f_returning_python_and_numpy_scalars():
    x = np.array([0.5, -1.0])
    for f in (lambda x: float(np.sum(x**2)), lambda x: np.float64(np.sum(x**2)), lambda x: np.array(np.sum(x**2))):
        assert check_gradients(f, (x,), (2 * x,)).passed


# --- large inputs: auto, directions, sampled entries ----------------------------------


def _big_problem(dtype=np.float64):
    rng = np.random.default_rng(5)
    X = rng.standard_normal((8, 80)).astype(dtype)
    W = (rng.standard_normal((80, 64)) / 9).astype(dtype)  # 5,120 entries: above the full limit
    G = rng.standard_normal((8, 64)).astype(dtype)

    def f(X, W):
        return np.sum(G * np.tanh(X @ W))

    T = 1 - np.tanh(X @ W) ** 2
    return f, {"X": X, "W": W}, {"X": (G * T) @ W.T, "W": X.T @ (G * T)}


def test_auto_checks_a_large_input_along_directions():
    f, inputs, grads = _big_problem()
    report = check_gradients(f, inputs, grads)
    assert report.passed and report["W"].method == "directional" and report["X"].method == "full"
    assert report["W"].finite_differences is None
    # 8 directions, each differenced at two steps: 32 evaluations for W
    assert report["W"].n_evaluations == 32
    assert report.n_evaluations < 0.02 * 2 * inputs["W"].size + 2 * inputs["X"].size + 20


def test_a_failed_direction_is_followed_by_named_entries():
    f, inputs, grads = _big_problem()
    report = check_gradients(f, inputs, {**grads, "W": 0.5 * grads["W"]}, max_entries=40)
    r = report["W"]
    assert report.failed == ("W",) and r.method == "directional+entries"
    assert 0 < r.n_failed <= 40 and len(r.worst_index) == 2
    assert r.diagnosis.startswith("scaled: the claim is 0.5")
    assert "worst entry" in report.report()


def test_max_entries_samples_entries_with_the_seed():
    f, inputs, grads = _big_problem()
    wrong = {**grads, "X": grads["X"] + 1.0}
    a = check_gradients(f, inputs, wrong, method="full", max_entries=10, seed=4)
    b = check_gradients(f, inputs, wrong, method="full", max_entries=10, seed=4)
    assert a["X"].method == "entries" and a["X"].n_failed == 10 and a["X"].finite_differences is None
    assert a["X"].worst_index == b["X"].worst_index


def test_directional_method_on_a_small_input_catches_a_wrong_gradient():
    layer = LAYERS[0]
    inputs = layer.inputs(0, np.float64)
    grads = layer.oracle_grads(inputs)
    assert check_gradients(layer.numpy_loss, inputs, grads, method="directional").passed
    bad = check_gradients(layer.numpy_loss, inputs, {**grads, "b": grads["b"] / 16}, method="directional")
    assert bad.failed == ("b",) and bad["b"].method == "directional+entries"


def test_a_long_check_reports_progress_on_stderr(monkeypatch, capsys):
    monkeypatch.setattr(checks, "PROGRESS_AFTER", 0.0)
    monkeypatch.setattr(checks, "PROGRESS_START", 0.0)
    monkeypatch.setattr(checks, "PROGRESS_EVERY", 0.0)
    x = np.linspace(-1, 1, 20)
    check_gradients(lambda x: np.sum(x**3), (x,), (3 * x**2,))
    err = capsys.readouterr().err
    assert re.search(r"matgrad: gradient check, \d+ of about \d+ evaluations of f", err)


def test_a_quick_check_prints_nothing(capsys):
    x = np.linspace(-1, 1, 20)
    check_gradients(lambda x: np.sum(x**3), (x,), (3 * x**2,))
    assert capsys.readouterr().err == ""


# --- the report -----------------------------------------------------------------------


def test_report_is_a_read_only_mapping_with_a_table():
    layer = LAYERS[0]
    inputs = layer.inputs(0, np.float64)
    grads = layer.oracle_grads(inputs)
    report = check_gradients(layer.numpy_loss, inputs, {**grads, "b": grads["b"] / 16, "X": -grads["X"]})
    assert isinstance(report, GradientCheckReport) and not report and not report.passed
    assert report.failed == ("X", "b")  # input order
    with pytest.raises(TypeError):
        report["W"] = None
    text = report.report()
    lines = text.splitlines()
    assert lines[0].startswith("gradient check") and "FAILED" in lines[0]
    assert lines[1].split()[:6] == ["input", "shape", "dtype", "passed", "max", "abs"]
    row_b = next(line for line in lines if line.startswith("b "))
    assert "(6,)" in row_b and "float64" in row_b and "NO" in row_b and "1/16" in row_b
    assert sum("look at:" in line for line in lines) == 2


def test_assert_gradients_close_carries_the_table():
    layer = LAYERS[1]
    inputs = layer.inputs(0, np.float64)
    grads = layer.oracle_grads(inputs)
    assert assert_gradients_close(layer.numpy_loss, inputs, grads).passed
    with pytest.raises(AssertionError) as info:
        assert_gradients_close(layer.numpy_loss, inputs, {**grads, "gamma": np.zeros(12)})
    message = str(info.value)
    assert "gamma" in message and "zero" in message and "input  shape" in message


# --- check_vjp ------------------------------------------------------------------------


def test_check_vjp_against_torch():
    rng = np.random.default_rng(7)
    X, W = rng.standard_normal((5, 4)), rng.standard_normal((4, 4))
    G = rng.standard_normal((5, 4))
    Xt, Wt = torch.tensor(X, requires_grad=True), torch.tensor(W, requires_grad=True)
    torch.tanh(Xt @ Wt).backward(torch.tensor(G))
    grads = {"X": Xt.grad.numpy(), "W": Wt.grad.numpy()}
    f = lambda X, W: np.tanh(X @ W)  # noqa: E731
    assert check_vjp(f, {"X": X, "W": W}, G, grads).passed
    bad = check_vjp(f, {"X": X, "W": W}, G, {**grads, "W": grads["W"].T})
    assert bad.failed == ("W",) and bad["W"].diagnosis.startswith("transposed")
    with pytest.raises(ValueError, match=r"shape \(5, 4\).*cotangent has shape \(4, 5\)"):
        check_vjp(f, {"X": X, "W": W}, G.T, grads)


# --- misuse: every message --------------------------------------------------------------


def _linear():
    x, w = np.array([1.0, 2.0]), np.array([[1.0, 0.5], [0.0, -1.0]])
    return (lambda x, w: np.sum(w @ x)), {"x": x, "w": w}, {"x": w.sum(axis=0), "w": np.outer(np.ones(2), x)}


@pytest.mark.parametrize(
    "change, pattern",
    [
        (lambda g: {**g, "w": None}, r"grads\['w'\] is None.*forgotten `return`"),
        (lambda g: {"x": g["x"]}, r"no gradient for 'w'"),
        (lambda g: {**g, "z": g["x"]}, r"a gradient for 'z', which is not an input"),
        (lambda g: {**g, "x": np.ones(3)}, r"grads\['x'\] has shape \(3,\); input 'x' has shape \(2,\)"),
        (lambda g: {**g, "w": np.ones((2, 3))}, r"grads\['w'\] has shape \(2, 3\)"),
    ],
)
def test_bad_grads_are_value_errors_naming_the_key(change, pattern):
    f, inputs, grads = _linear()
    with pytest.raises(ValueError, match=pattern):
        check_gradients(f, inputs, change(grads))


def test_transposed_shape_gets_a_hint():
    f = lambda w: np.sum(w)  # noqa: E731
    with pytest.raises(ValueError, match=r"transpose: a missing \.T\?"):
        check_gradients(f, {"w": np.ones((2, 3))}, {"w": np.ones((3, 2))})


def test_bad_containers_and_options():
    f, inputs, grads = _linear()
    with pytest.raises(TypeError, match="dict name -> array"):
        check_gradients(f, np.ones(2), grads)
    with pytest.raises(TypeError, match="grads must be a dict like inputs"):
        check_gradients(f, inputs, [grads["x"], grads["w"]])
    with pytest.raises(ValueError, match='method must be "auto", "full" or "directional"'):
        check_gradients(f, inputs, grads, method="fast")
    with pytest.raises(ValueError, match="max_entries must be a positive integer"):
        check_gradients(f, inputs, grads, max_entries=0)
    with pytest.raises(TypeError, match="f must be callable"):
        check_gradients(None, inputs, grads)
    with pytest.raises(ValueError, match="inputs is empty"):
        check_gradients(f, {}, {})


@pytest.mark.parametrize(
    "f, pattern",
    [
        (lambda x: x**2, r"array of shape \(2,\).*check_vjp"),
        (lambda x: None, r"missing return"),
        (lambda x: torch.tensor([1.0, 2.0]), r"torch tensor of shape \(2,\)"),
        (lambda x: "a", r"returned 'a'"),
        (lambda x: 10**400, r"integer too large for a float64"),
    ],
)
def test_f_returning_a_non_scalar(f, pattern):
    with pytest.raises(ValueError, match=pattern):
        check_gradients(f, (np.ones(2),), (np.ones(2),))


def test_f_that_modifies_its_argument_is_refused_and_inputs_stay_unchanged():
    x = np.array([1.0, 2.0, 3.0])

    def f(a, b):
        a *= 2
        return np.sum(a * b)

    with pytest.raises(ValueError, match=r"f modified its argument 'a'"):
        check_gradients(f, {"a": x, "b": x.copy()}, {"a": x, "b": x})
    assert np.array_equal(x, [1.0, 2.0, 3.0])


def test_arguments_unchanged_when_f_raises():
    x = np.array([1.0, 2.0])
    t = torch.tensor([0.5, 0.25], requires_grad=True)
    g = np.array([1.0, 1.0])
    calls = []

    def f(a, b):
        calls.append(1)
        if len(calls) == 4:
            raise RuntimeError("boom")
        return np.sum(a) + float(b.sum())

    with pytest.raises(RuntimeError, match="boom"):
        check_gradients(f, (x, t), (g, g))
    assert np.array_equal(x, [1.0, 2.0]) and t.tolist() == [0.5, 0.25] and t.grad is None
    assert np.array_equal(g, [1.0, 1.0])


def test_float32_result_for_float64_input_is_noted():
    x = np.array([0.3, -0.7, 1.1])
    report = check_gradients(lambda x: np.sum(x**2).astype(np.float32), (x,), (2 * x,))
    assert any("f returned float32 for the float64 input" in n for n in report.notes)
    assert "note: f returned float32" in report.report()


# --- clearer messages of the one-array checker, and matmul_jacobian's names ---------------


def test_check_gradient_messages_for_common_misuses():
    x = np.array([[1.0, 2.0]])
    f = lambda x: np.sum(x**2)  # noqa: E731
    with pytest.raises(ValueError, match=r"grad is None.*forgotten `return`"):
        check_gradient(f, x, None)
    with pytest.raises(ValueError, match=r"grad is a tuple of 1 array.*pass grad\[0\]"):
        check_gradient(f, x, (2 * x,))

    def g(x):
        x[0, 0] = 5.0
        return np.sum(x)

    with pytest.raises(ValueError, match="f modified its argument"):
        check_gradient(g, x, x)
    assert x[0, 0] == 1.0
    result = check_gradient(lambda x: np.float32(np.sum(x**2)), x, 2 * x)
    assert not result.passed and "f returned float32 for float64 x" in result.diagnosis
    assert "diagnosis: f returned float32" in result.report()
    assert check_gradient(f, x, 2 * x).diagnosis is None


def test_matmul_jacobian_accepts_the_book_names():
    A, B = np.arange(6.0).reshape(2, 3), np.arange(12.0).reshape(3, 4)
    assert np.array_equal(matmul_jacobian(A, B, "X"), matmul_jacobian(A, B, "A"))
    assert np.array_equal(matmul_jacobian(A, B, "W"), matmul_jacobian(A, B, "B"))


def test_torch_is_never_imported_for_numpy_inputs():
    import subprocess
    import sys

    code = (
        "import sys, numpy as np, matgrad\n"
        "x = np.array([1.0, 2.0])\n"
        "r = matgrad.check_gradients(lambda x: np.sum(x**2), {'x': x}, {'x': 2 * x})\n"
        "r.report(); matgrad.check_vjp(lambda x: x**2, (x,), x, (2 * x * x,))\n"
        "print(r.passed, 'torch' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["True", "False"]
