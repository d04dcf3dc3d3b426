"""Tests of matgrad.diagnosis: each diagnosis fires on its pattern and stays silent otherwise.

The patterns are made the way a user's bug makes them, on the realistic layers of
``realistic_layers.py`` checked by ``check_gradients`` (true gradients from PyTorch
autograd): ``db`` a mean instead of a sum (1/16 with a batch of 16), attention's ``dK``
without its ``1/sqrt(d)`` (``√8``), a conv1d weight gradient reshaped without its
transpose, a flipped sign, a gradient never written, and ``dQ``/``dK`` returned in the
wrong order. A random error of the same size must get no diagnosis.
"""

import numpy as np
import pytest

from matgrad import check_gradients, diagnose_gradient
from matgrad.diagnosis import _name_constant
from realistic_layers import C_IN, C_OUT, D_ATT, KW, LAYERS, N_CE

CE, LN, ATT, CONV, MLP = LAYERS


def _checked(layer, dtype, change, seed=0):
    inputs = layer.inputs(seed, dtype)
    grads = layer.oracle_grads(inputs)
    return check_gradients(layer.numpy_loss, inputs, change(grads))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_mean_instead_of_sum_is_scaled_by_1_over_16(dtype):
    report = _checked(CE, dtype, lambda g: {**g, "b": g["b"] / N_CE})
    assert report.failed == ("b",)
    assert report["b"].diagnosis == "scaled: the claim is 0.0625 = 1/16 times the true gradient"


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_missing_inverse_square_root_is_scaled_by_root_d(dtype):
    report = _checked(ATT, dtype, lambda g: {**g, "K": g["K"] * np.sqrt(D_ATT)})
    assert report.failed == ("K",)
    assert report["K"].diagnosis == "scaled: the claim is 2.828 = √8 times the true gradient"


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_conv_weight_reshaped_without_transpose(dtype):
    def bug(g):  # the (C_in K, C_out) matrix gradient reshaped straight into W's shape
        return {**g, "W": g["W"].reshape(C_OUT, C_IN * KW).T.reshape(C_OUT, C_IN, KW)}

    report = _checked(CONV, dtype, bug)
    assert report.failed == ("W",)
    assert report["W"].diagnosis.startswith("transposed before a reshape: ")
    assert "viewed as (4, 9)" in report["W"].diagnosis


def test_plain_transpose_sign_zero_and_swap():
    report = _checked(MLP, np.float64, lambda g: {**g, "W1": -g["W1"], "b1": np.zeros_like(g["b1"])})
    assert report.failed == ("W1", "b1")
    assert report["W1"].diagnosis.startswith("sign:")
    assert report["b1"].diagnosis.startswith("zero:")
    swapped = _checked(ATT, np.float64, lambda g: {**g, "Q": g["K"], "K": g["Q"]})
    assert swapped.failed == ("Q", "K")
    assert swapped["Q"].diagnosis == "swapped: the claim is the true gradient of 'K'"
    assert swapped["K"].diagnosis == "swapped: the claim is the true gradient of 'Q'"
    rng = np.random.default_rng(0)
    t = rng.standard_normal((5, 5))
    assert diagnose_gradient(t.T, t) == "transposed: the claim is the true gradient transposed"


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("layer", LAYERS, ids=[layer.name for layer in LAYERS])
def test_a_random_error_gets_no_diagnosis(layer, dtype):
    rng = np.random.default_rng(1)

    def noisy(g):
        return {k: (v + 0.3 * np.abs(v).max() * rng.standard_normal(v.shape)).astype(dtype) for k, v in g.items()}

    report = _checked(layer, dtype, noisy)
    assert report.failed == tuple(report)
    assert all(r.diagnosis is None for r in report.values()), report.report()
    assert "no simple pattern fits" in report.report()


def test_diagnoses_stay_silent_near_their_patterns():
    rng = np.random.default_rng(2)
    t = rng.standard_normal((6, 4))
    noise = 0.2 * np.linalg.norm(t) / np.sqrt(t.size) * rng.standard_normal(t.shape)
    for near in (t / 16 + noise / 16, -t + noise, t.T.reshape(6, 4) + noise, 0 * t + noise * 1e-3):
        assert diagnose_gradient(near, t) is None
    assert diagnose_gradient(t, t) is None  # a correct gradient has nothing to diagnose
    assert diagnose_gradient(t + noise, t, others={"other": t * 3}) is None


@pytest.mark.parametrize(
    "c, text",
    [(0.0625, "0.0625 = 1/16"), (4.0, "4"), (2 ** 0.5 * 2, "2.828 = √8"), (1 / 8 ** 0.5, "0.3536 = 1/√8"),
     (-3.0, "-3"), (1.37, "1.37"), (0.0012345, "0.001234"), (0.01 / 8 ** 0.5, "0.003536"), (1 / 810, "0.001235 = 1/810")],
)
def test_constants_are_named_to_4_significant_digits(c, text):
    assert _name_constant(c) == text


def test_diagnose_gradient_checks_its_arguments():
    with pytest.raises(ValueError, match=r"same shape; got \(2,\) and \(3,\)"):
        diagnose_gradient(np.ones(2), np.ones(3))
    with pytest.raises(TypeError, match="real numeric"):
        diagnose_gradient(np.array(["a"]), np.ones(1))


@pytest.mark.parametrize("n", [1024, 4096])
def test_float32_mean_for_a_sum_is_named_after_the_batch_size(n):
    # a float32 mean cross-entropy: its finite differences give the scale of db only to
    # ~1e-4, so 1/c is not within 0.02 of n; n is an axis length of X, the one size that close
    rng = np.random.default_rng(0)
    m, C = 8, 5
    X, W, b = (rng.standard_normal(s).astype(np.float32) for s in [(n, m), (m, C), (C,)])
    Y = np.eye(C, dtype=np.float32)[rng.integers(0, C, size=n)]

    def probabilities(X, W, b):
        Z = X @ W + b
        P = np.exp(Z - Z.max(axis=1, keepdims=True))
        return P / P.sum(axis=1, keepdims=True)

    loss = lambda X, W, b: -np.sum(Y * np.log(probabilities(X, W, b))) / np.float32(n)
    dZ = (probabilities(X, W, b) - Y) / np.float32(n)
    report = check_gradients(loss, {"X": X, "W": W, "b": b}, {"X": dZ @ W.T, "W": X.T @ dZ, "b": dZ.mean(axis=0)})
    assert report.failed == ("b",)
    assert report["b"].diagnosis.endswith(f"= 1/{n} times the true gradient"), report["b"].diagnosis

def test_sizes_name_a_scale_only_when_one_fits():
    true = np.arange(1.0, 7.0).reshape(2, 3)
    noisy = true / 4000 * (1 + 1e-4 * np.array([[1, -2, 1], [3, -1, 0]]))
    assert "= 1/4000" in diagnose_gradient(noisy, true, sizes=(4000, 3))
    assert "= 1/" not in diagnose_gradient(noisy, true, sizes=(4096, 3))   # no size near it
    assert "= 1/" not in diagnose_gradient(noisy, true, sizes=(4000, 4001))  # two sizes fit
