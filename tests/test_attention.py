"""Tests of matgrad.attention: scaled dot-product attention and its recomputing backward.

Oracles: PyTorch's ``torch.nn.functional.scaled_dot_product_attention`` with autograd in
float64 (its own ``is_causal`` for the causal triangle, and ``torch.ones(...).tril()``
where a mask and the triangle are combined, since PyTorch refuses both at once), and
central differences (``check_gradient``). The checks are tested too: a backward that
drops the rowsum term is rejected by the finite-difference check, the cache walker finds
a stored weight matrix, and a backward that stores two score-sized arrays exceeds the
memory bound.
"""

import math
import tracemalloc

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import matgrad
from matgrad import attention_backward, attention_forward, check_gradient
from matgrad.attention import _AttentionCache

# ---------------------------------------------------------------- oracle


def torch_attention(Q, K, V, dO, *, mask=None, causal=False, scale=None):
    """O and (dQ, dK, dV) from PyTorch in float64; leading axes are expanded (autograd sums them back)."""
    leaves = [torch.tensor(np.array(x, dtype=np.float64), requires_grad=True) for x in (Q, K, V)]
    batch = torch.broadcast_shapes(*(x.shape[:-2] for x in leaves))
    expanded = [x.expand(*batch, *x.shape[-2:]) for x in leaves]
    n_q, n_k = np.shape(Q)[-2], np.shape(K)[-2]
    attn_mask = None if mask is None else torch.from_numpy(np.array(mask, dtype=bool))
    is_causal = causal
    if causal and mask is not None:  # PyTorch refuses attn_mask with is_causal=True: combine them with its tril
        attn_mask = attn_mask & torch.ones(n_q, n_k, dtype=torch.bool).tril(diagonal=0)
        is_causal = False
    O = F.scaled_dot_product_attention(*expanded, attn_mask=attn_mask, is_causal=is_causal, scale=scale)
    O.backward(torch.from_numpy(np.array(dO, dtype=np.float64)))
    return O.detach().numpy(), tuple(x.grad.numpy() for x in leaves)


def mask_with_every_row(rng, shape, p=0.6):
    """A random boolean mask of ``shape`` with at least one True in every row (the last axis)."""
    mask = rng.random(shape) < p
    first = rng.integers(0, shape[-1], size=shape[:-1])
    np.put_along_axis(mask, first[..., None], True, axis=-1)
    return mask


def problem(rng, q_shape, k_shape, v_shape, dtype=np.float64):
    Q, K, V = (rng.standard_normal(s).astype(dtype) for s in (q_shape, k_shape, v_shape))
    batch = np.broadcast_shapes(q_shape[:-2], k_shape[:-2], v_shape[:-2])
    dO = rng.standard_normal(batch + (q_shape[-2], v_shape[-1])).astype(dtype)
    return Q, K, V, dO


# ---------------------------------------------------------------- against PyTorch

# (name, Q shape, K shape, V shape, mask shape or None, causal, scale)
CASES = [
    ("plain", (5, 4), (5, 4), (5, 4), None, False, None),
    ("n_q < n_k", (3, 4), (7, 4), (7, 4), None, False, None),
    ("n_q > n_k", (8, 4), (3, 4), (3, 4), None, False, None),
    ("e != e_v", (5, 3), (6, 3), (6, 7), None, False, None),
    ("single key", (4, 2), (1, 2), (1, 3), None, False, None),
    ("heads", (2, 3, 5, 4), (2, 3, 6, 4), (2, 3, 6, 2), None, False, None),
    ("broadcast K, V", (2, 3, 5, 4), (3, 6, 4), (1, 6, 2), None, False, None),
    ("broadcast Q", (5, 4), (2, 3, 6, 4), (2, 1, 6, 2), None, False, None),
    ("stretched axes", (2, 1, 5, 4), (1, 3, 6, 4), (2, 3, 6, 2), None, False, None),
    ("mask (n_q, n_k)", (5, 4), (6, 4), (6, 3), (5, 6), False, None),
    ("mask per head", (2, 3, 5, 4), (2, 3, 6, 4), (2, 3, 6, 2), (2, 3, 5, 6), False, None),
    ("key-padding mask", (2, 3, 5, 4), (2, 3, 6, 4), (2, 3, 6, 2), (2, 1, 1, 6), False, None),
    ("mask broadcast over rows", (2, 5, 4), (2, 6, 4), (2, 6, 3), (6,), False, None),
    ("causal square", (6, 4), (6, 4), (6, 3), None, True, None),
    ("causal n_q < n_k", (4, 3), (7, 3), (7, 2), None, True, None),
    ("causal n_q > n_k", (7, 3), (4, 3), (4, 2), None, True, None),
    ("causal heads", (2, 3, 6, 4), (2, 3, 6, 4), (2, 3, 6, 5), None, True, None),
    ("mask and causal", (2, 6, 4), (2, 6, 4), (2, 6, 3), (2, 6, 6), True, None),
    ("mask and causal n_q > n_k", (7, 3), (5, 3), (5, 2), (7, 5), True, None),
    ("explicit scale", (5, 4), (6, 4), (6, 3), None, False, 0.3),
    ("scale, mask, causal, broadcast", (2, 1, 6, 4), (3, 6, 4), (3, 6, 2), (3, 6, 6), True, -1.7),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_forward_and_gradients_equal_pytorch(case, rng):
    _, q_shape, k_shape, v_shape, mask_shape, causal, scale = case
    Q, K, V, dO = problem(rng, q_shape, k_shape, v_shape)
    mask = None
    if mask_shape is not None:
        # every row keeps a key, also after the causal triangle: key 0 is always allowed
        mask = mask_with_every_row(rng, mask_shape)
        mask[..., 0] = True
    O, cache = attention_forward(Q, K, V, mask=mask, causal=causal, scale=scale)
    grads = attention_backward(dO, cache)
    O_ref, grads_ref = torch_attention(Q, K, V, dO, mask=mask, causal=causal, scale=scale)
    assert O.shape == O_ref.shape and O.dtype == np.float64
    np.testing.assert_allclose(O, O_ref, rtol=1e-12, atol=1e-13)
    for name, ours, ref, arg in zip("QKV", grads, grads_ref, (Q, K, V)):
        assert ours.shape == arg.shape, name
        np.testing.assert_allclose(ours, ref, rtol=1e-11, atol=1e-12, err_msg=f"d{name}")


def test_causal_is_the_lower_triangle_of_torch_ones(rng):
    """causal=True is the mask torch.ones(n_q, n_k).tril(); for n_q != n_k too."""
    for n_q, n_k in [(4, 7), (7, 4), (5, 5)]:
        Q, K, V, dO = problem(rng, (n_q, 3), (n_k, 3), (n_k, 2))
        tril = torch.ones(n_q, n_k, dtype=torch.bool).tril(diagonal=0).numpy()
        O_c, cache_c = attention_forward(Q, K, V, causal=True)
        O_m, cache_m = attention_forward(Q, K, V, mask=tril)
        # not bit-equal: causal blocks multiply only the keys their rows can see (other product sizes)
        np.testing.assert_allclose(O_c, O_m, rtol=1e-13, atol=1e-14)
        for a, b in zip(attention_backward(dO, cache_c), attention_backward(dO, cache_m)):
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-13)


def test_masked_entries_get_no_weight_and_no_gradient(rng):
    """A key that no query may attend to has dK = dV = 0 and does not change O."""
    Q, K, V, dO = problem(rng, (2, 5, 3), (2, 6, 3), (2, 6, 4))
    mask = np.ones((5, 6), dtype=bool)
    mask[:, 2] = False
    O, cache = attention_forward(Q, K, V, mask=mask)
    _, dK, dV = attention_backward(dO, cache)
    assert np.all(dK[:, 2] == 0) and np.all(dV[:, 2] == 0)
    assert np.any(dK[:, 1] != 0) and np.any(dV[:, 1] != 0)
    K2, V2 = K.copy(), V.copy()
    K2[:, 2] += 100.0
    V2[:, 2] -= 50.0
    O2, _ = attention_forward(Q, K2, V2, mask=mask)
    np.testing.assert_array_equal(O, O2)


def test_large_scores_do_not_overflow(rng):
    """Scores of size 1e4 (exp would overflow) still give PyTorch's result."""
    Q, K, V, dO = problem(rng, (4, 3), (5, 3), (5, 2))
    Q *= 100.0
    K *= 100.0
    O, cache = attention_forward(Q, K, V)
    grads = attention_backward(dO, cache)
    O_ref, grads_ref = torch_attention(Q, K, V, dO)
    assert np.all(np.isfinite(O))
    np.testing.assert_allclose(O, O_ref, rtol=1e-12, atol=1e-12)
    for ours, ref in zip(grads, grads_ref):
        np.testing.assert_allclose(ours, ref, rtol=1e-9, atol=1e-9)


def test_many_blocks_give_the_same_result(rng, monkeypatch):
    """The row-block loop of both passes: tiny blocks (one row each) agree with PyTorch."""
    import matgrad.attention as module

    monkeypatch.setattr(module, "_BLOCK_BYTES", 1)
    for causal, mask_shape in [(False, None), (True, None), (True, (2, 9, 7))]:
        Q, K, V, dO = problem(rng, (2, 9, 4), (2, 7, 4), (2, 7, 3))
        mask = None
        if mask_shape is not None:
            mask = mask_with_every_row(rng, mask_shape)
            mask[..., 0] = True
        O, cache = attention_forward(Q, K, V, mask=mask, causal=causal)
        grads = attention_backward(dO, cache)
        O_ref, grads_ref = torch_attention(Q, K, V, dO, mask=mask, causal=causal)
        np.testing.assert_allclose(O, O_ref, rtol=1e-12, atol=1e-13)
        for ours, ref in zip(grads, grads_ref):
            np.testing.assert_allclose(ours, ref, rtol=1e-11, atol=1e-12)


def test_pytorch_returns_zeros_where_matgrad_refuses(rng):
    """The behaviour the docstring states: PyTorch gives a row with no key zeros (and zero gradients)."""
    Q, K, V, dO = problem(rng, (4, 3), (5, 3), (5, 2))
    mask = np.ones((4, 5), dtype=bool)
    mask[2] = False
    O_ref, (dQ_ref, _, _) = torch_attention(Q, K, V, dO, mask=mask)
    assert np.all(O_ref[2] == 0) and np.all(dQ_ref[2] == 0)
    assert np.all(O_ref[[0, 1, 3]] != 0)
    with pytest.raises(ValueError, match=r"query row 2 with no key to attend to"):
        attention_forward(Q, K, V, mask=mask)


def test_pytorch_refuses_a_mask_with_is_causal_where_matgrad_combines_them(rng):
    """The other difference the docstring states, and what matgrad does instead (mask AND triangle)."""
    Q, K, V, dO = problem(rng, (4, 3), (4, 3), (4, 2))
    mask = np.ones((4, 4), dtype=bool)
    mask[3, 0] = False
    tensors = [torch.from_numpy(x) for x in (Q, K, V)]
    with pytest.raises(RuntimeError, match="attn_mask"):
        F.scaled_dot_product_attention(*tensors, attn_mask=torch.from_numpy(mask), is_causal=True)
    O, _ = attention_forward(Q, K, V, mask=mask, causal=True)
    O_ref, _ = attention_forward(Q, K, V, mask=mask & np.tri(4, 4, dtype=bool))
    np.testing.assert_allclose(O, O_ref, rtol=1e-14, atol=1e-15)
    assert not np.allclose(O, attention_forward(Q, K, V, causal=True)[0])  # the mask did change row 3


# ---------------------------------------------------------------- finite differences


def loss_of(Q, K, V, G, which, **kwargs):
    """L = <G, O> as a function of one of Q, K, V, the others fixed."""

    def f(x):
        args = {"Q": Q, "K": K, "V": V, which: x}
        O, _ = attention_forward(args["Q"], args["K"], args["V"], **kwargs)
        return float(np.sum(G * O))

    return f


@pytest.mark.parametrize(
    "kwargs", [{}, {"causal": True}, {"mask": "random"}, {"mask": "random", "causal": True, "scale": 0.8}]
)
def test_gradients_match_finite_differences(kwargs, rng):
    Q, K, V, G = problem(rng, (2, 1, 4, 3), (3, 5, 3), (2, 3, 5, 2))  # broadcast leading axes
    if kwargs.get("mask") == "random":
        mask = mask_with_every_row(rng, (3, 4, 5))
        mask[..., 0] = True
        kwargs = dict(kwargs, mask=mask)
    _, cache = attention_forward(Q, K, V, **kwargs)
    grads = attention_backward(G, cache)
    for name, x, grad in zip("QKV", (Q, K, V), grads):
        result = check_gradient(loss_of(Q, K, V, G, name, **kwargs), x, grad)
        assert result.passed, f"d{name}: {result.report()}"


def test_finite_differences_reject_a_backward_without_the_rowsum_term(rng):
    """Test the test: dS = P * dP (forgetting - rowsum(dO * O)) gives a wrong dQ that check_gradient rejects."""
    Q, K, V, G = problem(rng, (4, 3), (5, 3), (5, 2))
    O, _ = attention_forward(Q, K, V)
    S = Q @ K.T / np.sqrt(3)
    P = np.exp(S - S.max(axis=1, keepdims=True))
    P /= P.sum(axis=1, keepdims=True)
    dP = G @ V.T
    D = np.sum(G * O, axis=1, keepdims=True)
    right = (P * (dP - D)) @ K / np.sqrt(3)
    wrong = (P * dP) @ K / np.sqrt(3)
    f = loss_of(Q, K, V, G, "Q")
    assert check_gradient(f, Q, right).passed
    assert not check_gradient(f, Q, wrong).passed


def test_rowsum_identity(rng):
    """rowsum(dP * P) = rowsum(dO * O), with P the weights (from PyTorch's softmax) and dP = dO V^T."""
    Q, K, V, dO = problem(rng, (2, 3, 6, 4), (2, 3, 8, 4), (2, 3, 8, 5))
    O, _ = attention_forward(Q, K, V)
    P = torch.softmax(torch.from_numpy(Q @ np.swapaxes(K, -1, -2) / 2.0), dim=-1).numpy()
    dP = dO @ np.swapaxes(V, -1, -2)
    lhs = np.sum(dP * P, axis=-1)
    rhs = np.sum(dO * O, axis=-1)
    np.testing.assert_allclose(lhs, rhs, rtol=1e-12, atol=1e-12)
    assert np.max(np.abs(rhs)) > 0.1  # not trivially zero
    # and the identity is specific: it fails for a different dP
    assert not np.allclose(np.sum((dP + 1.0) * P * np.arange(8), axis=-1), rhs)


# ---------------------------------------------------------------- the cache


def arrays_in(obj, seen=None):
    """Every ndarray reachable from obj through slots, __dict__, dicts, lists and tuples."""
    seen = set() if seen is None else seen
    if id(obj) in seen:
        return []
    seen.add(id(obj))
    if isinstance(obj, np.ndarray):
        return [obj]
    found = []
    if isinstance(obj, dict):
        children = list(obj.values())
    elif isinstance(obj, (list, tuple, set)):
        children = list(obj)
    else:
        children = [getattr(obj, name) for name in getattr(type(obj), "__slots__", ()) if hasattr(obj, name)]
        children += list(getattr(obj, "__dict__", {}).values())
    for child in children:
        found += arrays_in(child, seen)
    return found


def score_sized_floats(cache, n_q, n_k):
    return [a for a in arrays_in(cache) if a.dtype.kind == "f" and a.ndim >= 2 and a.shape[-2:] == (n_q, n_k)]


@pytest.mark.parametrize("kwargs", [{}, {"causal": True}, {"mask": True}, {"mask": True, "causal": True}])
def test_cache_holds_no_floating_score_sized_array(kwargs, rng):
    n_q, n_k = 5, 7  # distinct from e = 3, e_v = 2 and the batch sizes, so no input has this shape by chance
    Q, K, V, dO = problem(rng, (2, 4, n_q, 3), (2, 4, n_k, 3), (2, 4, n_k, 2))
    if kwargs.get("mask"):
        kwargs = dict(kwargs, mask=mask_with_every_row(rng, (2, 4, n_q, n_k)))
        kwargs["mask"][..., 0] = True
    _, cache = attention_forward(Q, K, V, **kwargs)
    found = arrays_in(cache)
    assert len(found) >= 5  # Q, K, V, O, lse at least: the walker does reach the arrays
    assert score_sized_floats(cache, n_q, n_k) == []
    assert any(a.shape == (2, 4, n_q) for a in found)  # the row log-sum-exp
    if kwargs:
        blocked = [a for a in found if a.dtype == bool]
        assert blocked and all(a.shape[-2:] == (n_q, n_k) for a in blocked)


def test_cache_walker_finds_a_stored_weight_matrix():
    """Test the test: a cache-like object that kept P is caught, also nested in a dict."""
    _, cache = attention_forward(np.ones((5, 3)), np.ones((7, 3)), np.ones((7, 2)))
    assert score_sized_floats(cache, 5, 7) == []
    fake = _AttentionCache(dict(cache.arrays, P=np.zeros((5, 7))), None, 1.0, False, cache.dtype, (), {})
    assert len(score_sized_floats(fake, 5, 7)) == 1
    nested = {"cache": [cache, ("weights", np.zeros((1, 5, 7), dtype=np.float32))]}
    assert len(score_sized_floats(nested, 5, 7)) == 1


def test_cache_is_read_only_and_a_second_backward_is_identical(rng):
    Q, K, V, dO = problem(rng, (2, 5, 3), (2, 6, 3), (2, 6, 4))
    mask = mask_with_every_row(rng, (5, 6))
    _, cache = attention_forward(Q, K, V, mask=mask, causal=False)
    for a in arrays_in(cache):
        with pytest.raises(ValueError, match="read-only"):
            a[...] = 0
    before = [a.copy() for a in arrays_in(cache)]
    first = attention_backward(dO, cache)
    second = attention_backward(dO, cache)
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)
        assert not np.shares_memory(a, b)
    for a, b in zip(before, arrays_in(cache)):
        np.testing.assert_array_equal(a, b)
    assert "attention cache" in repr(cache)


def test_arguments_are_never_modified_and_later_changes_do_not_reach_the_cache(rng):
    Q, K, V, dO = problem(rng, (2, 5, 3), (2, 6, 3), (2, 6, 4))
    mask = mask_with_every_row(rng, (5, 6))
    mask[:, 0] = True
    copies = [x.copy() for x in (Q, K, V, dO, mask)]
    O, cache = attention_forward(Q, K, V, mask=mask, causal=True)
    grads = attention_backward(dO, cache)
    for x, c in zip((Q, K, V, dO, mask), copies):
        np.testing.assert_array_equal(x, c)
    for arr in (Q, K, V, O):
        arr += 1.0
    mask[...] = ~mask
    for a, b in zip(attention_backward(dO, cache), grads):
        np.testing.assert_array_equal(a, b)
    for g in grads:
        assert not any(np.shares_memory(g, x) for x in (Q, K, V, dO))


# ---------------------------------------------------------------- dtypes


def test_float32_stays_float32_and_is_accurate(rng):
    Q, K, V, dO = problem(rng, (2, 6, 4), (2, 7, 4), (2, 7, 3))
    O64, c64 = attention_forward(Q, K, V, causal=True)
    g64 = attention_backward(dO, c64)
    args32 = [x.astype(np.float32) for x in (Q, K, V, dO)]
    O32, c32 = attention_forward(*args32[:3], causal=True)
    g32 = attention_backward(args32[3], c32)
    assert O32.dtype == np.float32 and all(g.dtype == np.float32 for g in g32)
    assert all(a.dtype == np.float32 for a in arrays_in(c32) if a.dtype.kind == "f")
    np.testing.assert_allclose(O32, O64, rtol=1e-5, atol=1e-5)
    for a, b in zip(g32, g64):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_integers_become_float64(rng):
    Q = rng.integers(-2, 3, (4, 3))
    K = rng.integers(-2, 3, (5, 3))
    V = rng.integers(-2, 3, (5, 2))
    O, cache = attention_forward(Q, K, V)
    assert O.dtype == np.float64
    assert all(g.dtype == np.float64 for g in attention_backward(np.ones((4, 2), dtype=np.int64), cache))
    O_ref, _ = torch_attention(Q, K, V, np.ones((4, 2)))
    np.testing.assert_allclose(O, O_ref, rtol=1e-12)


def test_float64_gradient_on_a_float32_cache_is_promoted(rng):
    Q, K, V, dO = problem(rng, (4, 3), (5, 3), (5, 2), dtype=np.float32)
    _, cache = attention_forward(Q, K, V)
    promoted = attention_backward(dO.astype(np.float64), cache)
    assert all(g.dtype == np.float64 for g in promoted)
    # the promoted backward takes the path without the cache's extra columns; its values must agree with a
    # float64 computation on the same (float32-valued) inputs, up to the float32 rounding of the cache
    _, cache64 = attention_forward(*(x.astype(np.float64) for x in (Q, K, V)))
    for mine, ref in zip(promoted, attention_backward(dO.astype(np.float64), cache64)):
        np.testing.assert_allclose(mine, ref, rtol=1e-4, atol=1e-5)


# ---------------------------------------------------------------- bad inputs

GOOD = {"Q": np.ones((2, 4, 3)), "K": np.ones((2, 5, 3)), "V": np.ones((2, 5, 6))}


def call(**changes):
    args = dict(GOOD)
    kwargs = {k: changes.pop(k) for k in list(changes) if k not in args}
    args.update(changes)
    return attention_forward(args["Q"], args["K"], args["V"], **kwargs)


@pytest.mark.parametrize(
    ("changes", "error", "pattern"),
    [
        ({"Q": "abc"}, TypeError, r"Q must be a real numeric array"),
        ({"K": np.ones((2, 5, 3), dtype=bool)}, TypeError, r"K must be a real numeric array.*booleans"),
        ({"V": np.ones((2, 5, 6), dtype=complex)}, TypeError, r"V must be a real numeric array.*complex"),
        ({"Q": np.ones(3)}, ValueError, r"Q must have at least two axes.*\(3,\)"),
        ({"V": np.float64(1.0)}, ValueError, r"V must have at least two axes.*\(\)"),
        (
            {"K": np.ones((2, 5, 4))},
            ValueError,
            r"Q and K must have the same number of features e.*Q of shape \(2, 4, 3\) has e = 3, K of shape \(2, 5, 4\) has 4",
        ),
        (
            {"V": np.ones((2, 6, 6))},
            ValueError,
            r"K and V must have the same number of keys n_k.*K of shape \(2, 5, 3\) has n_k = 5, V of shape \(2, 6, 6\) has 6",
        ),
        ({"K": np.ones((3, 5, 3)), "V": np.ones((3, 5, 6))}, ValueError, r"leading axes of Q, K and V do not broadcast.*\(2, 4, 3\).*\(3, 5, 3\)"),
        ({"Q": np.ones((2, 4, 0)), "K": np.ones((2, 5, 0))}, ValueError, r"at least one feature and one key"),
        ({"K": np.ones((2, 0, 3)), "V": np.ones((2, 0, 6))}, ValueError, r"at least one feature and one key"),
        ({"mask": np.ones((4, 5))}, TypeError, r"mask must be a boolean array.*float64.*\(4, 5\)"),
        ({"mask": [[1, 0]]}, TypeError, r"mask must be a boolean array.*int"),
        ({"mask": np.ones((4, 6), dtype=bool)}, ValueError, r"mask of shape \(4, 6\) does not broadcast to .*\(2, 4, 5\)"),
        ({"mask": np.ones((3, 4, 5), dtype=bool)}, ValueError, r"mask of shape \(3, 4, 5\) does not broadcast"),
        ({"mask": np.ones((5, 2, 4, 5), dtype=bool)}, ValueError, r"mask of shape \(5, 2, 4, 5\) does not broadcast"),
        ({"mask": np.zeros((4, 5), dtype=bool)}, ValueError, r"mask leaves query row 0 with no key"),
        ({"mask": np.eye(4, 5, k=1, dtype=bool), "causal": True}, ValueError, r"mask and causal=True together leave query row 0"),
        ({"causal": 1}, TypeError, r"causal must be True or False; got int"),
        ({"causal": "yes"}, TypeError, r"causal must be True or False"),
        ({"scale": True}, TypeError, r"scale must be a real number or None"),
        ({"scale": "0.5"}, TypeError, r"scale must be a real number or None"),
        ({"scale": np.inf}, ValueError, r"scale must be finite"),
        ({"scale": np.nan}, ValueError, r"scale must be finite"),
        ({"max_bytes": 100}, ValueError, r"scores .* have shape \(2, 4, 5\) and would need 320 B .*max_bytes=100 B"),
        ({"max_bytes": "1e9"}, TypeError, r"max_bytes must be a non-negative number"),
        ({"max_bytes": -1}, ValueError, r"max_bytes must be a non-negative number"),
    ],
)
def test_bad_inputs_are_refused_with_clear_messages(changes, error, pattern):
    with pytest.raises(error, match=pattern):
        call(**changes)


def test_empty_row_error_names_the_batch_index():
    mask = np.ones((2, 1, 4, 5), dtype=bool)
    mask[1, 0, 3] = False
    with pytest.raises(ValueError, match=r"query row 3 .*at index \(1, 0, 3\).*PyTorch returns zeros"):
        attention_forward(np.ones((2, 3, 4, 2)), np.ones((5, 2)), np.ones((5, 2)), mask=mask)


def test_gigabyte_stacks_are_refused_before_any_allocation():
    big = np.broadcast_to(np.ones((1, 1)), (65536, 1))  # a view: no memory for the inputs either
    with pytest.raises(ValueError, match=r"would need 32\.0 GiB"):
        attention_forward(big, big, big)


def test_backward_refuses_a_wrong_cache_or_gradient_shape():
    O, cache = attention_forward(GOOD["Q"], GOOD["K"], GOOD["V"])
    with pytest.raises(TypeError, match="needs the cache returned by attention_forward; got dict"):
        attention_backward(O, {"Q": GOOD["Q"]})
    with pytest.raises(
        ValueError, match=r"dO must have the shape of O, \(2, 4, 6\), .*got dO of shape \(4, 6\)"
    ):
        attention_backward(O[0], cache)
    with pytest.raises(TypeError, match="dO must be a real numeric array"):
        attention_backward(O.astype(complex), cache)


# ---------------------------------------------------------------- memory of the backward


def peak_beyond_outputs(fn):
    """tracemalloc peak of fn() minus the bytes of what it returns (NumPy reports its buffers to tracemalloc)."""
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        start = tracemalloc.get_traced_memory()[0]
        result = fn()
        peak = tracemalloc.get_traced_memory()[1] - start
    finally:
        tracemalloc.stop()
    return peak - sum(r.nbytes for r in result)


def storing_backward(dO, Q, K, V):
    """A backward that materialises P and dP at once: two score stacks (the thing the bound excludes)."""
    S = Q @ np.swapaxes(K, -1, -2) / np.sqrt(Q.shape[-1])
    P = np.exp(S - S.max(axis=-1, keepdims=True))
    del S
    P /= P.sum(axis=-1, keepdims=True)
    dP = dO @ np.swapaxes(V, -1, -2)
    D = np.sum(dP * P, axis=-1, keepdims=True)
    dS = P * (dP - D)
    return dS @ K, np.swapaxes(dS, -1, -2) @ Q, np.swapaxes(P, -1, -2) @ dO


@pytest.mark.parametrize("causal", [False, True])
def test_backward_peak_memory_is_at_most_one_score_stack(causal, rng):
    n = 512
    Q, K, V, dO = problem(rng, (2, n, 16), (2, n, 16), (2, n, 16))
    _, cache = attention_forward(Q, K, V, causal=causal)
    stack = 2 * n * n * 8
    ours = peak_beyond_outputs(lambda: attention_backward(dO, cache))
    assert ours <= stack, ours / stack
    # test the test: a backward holding P and dP together goes well over one stack
    theirs = peak_beyond_outputs(lambda: storing_backward(dO, Q, K, V))
    assert theirs >= 1.9 * stack, theirs / stack


def test_public_names():
    assert {"attention_forward", "attention_backward"} <= set(matgrad.__all__)


@pytest.mark.parametrize("mask_shape", [None, (5, 7), (2, 4, 5, 7), (4, 1, 7)])
@pytest.mark.parametrize("causal", [False, True])
def test_cache_keeps_one_byte_per_blocked_score(mask_shape, causal, rng):
    """As documented: with a mask or causal=True the cache keeps one boolean per score of the mask broadcast
    against (n_q, n_k) (n_q * n_k bytes for causal=True alone or a 2-D mask), and nothing boolean otherwise."""
    n_q, n_k = 5, 7
    Q, K, V, _ = problem(rng, (2, 4, n_q, 3), (2, 4, n_k, 3), (2, 4, n_k, 2))
    kwargs = {"causal": causal}
    if mask_shape is not None:
        mask = rng.random(mask_shape) < 0.5
        mask[..., 0] = True  # every query row may attend to key 0 (also under causal=True)
        kwargs["mask"] = mask
    _, cache = attention_forward(Q, K, V, **kwargs)
    booleans = [a for a in arrays_in(cache) if a.dtype == bool]
    if mask_shape is None and not causal:
        assert booleans == []
        return
    expected = np.broadcast_shapes(mask_shape or (), (n_q, n_k))
    assert [a.shape for a in booleans] == [expected]
    assert booleans[0].nbytes == math.prod(expected)
    assert booleans[0].base is None  # its own array, not a view of the caller's mask
