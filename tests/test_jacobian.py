"""Tests of matgrad.jacobian: the explicit 4-D Jacobians of C = A @ B, their size, and the
naive chain rule. Oracles: the formula entry by entry, finite differences, PyTorch autograd
in float64."""

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from matgrad import (
    JacobianTooLarge,
    format_bytes,
    jacobian_nbytes,
    matmul_jacobian,
    numerical_jacobian,
    vjp_from_jacobian,
)

sizes = st.integers(min_value=1, max_value=4)
seeds = st.integers(min_value=0, max_value=2**32 - 1)


def random_factors(seed, n, m, d, dtype=np.float64):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, m)).astype(dtype), rng.standard_normal((m, d)).astype(dtype)


# --- matmul_jacobian: hand-computable cases ------------------------------------------


def test_matmul_jacobian_2x2_written_out():
    A = np.array([[1.0, 2.0], [3.0, 4.0]])
    B = np.array([[5.0, 6.0], [7.0, 8.0]])
    JA = matmul_jacobian(A, B, "A")
    # C[0, 1] = A[0, 0] B[0, 1] + A[0, 1] B[1, 1] = 6 A[0, 0] + 8 A[0, 1]
    np.testing.assert_allclose(JA[0, 1], [[6.0, 8.0], [0.0, 0.0]], rtol=0, atol=0)
    # C[1, 0] = 5 A[1, 0] + 7 A[1, 1]
    np.testing.assert_allclose(JA[1, 0], [[0.0, 0.0], [5.0, 7.0]], rtol=0, atol=0)
    JB = matmul_jacobian(A, B, "B")
    # C[0, 1] = A[0, 0] B[0, 1] + A[0, 1] B[1, 1] = 1 B[0, 1] + 2 B[1, 1]
    np.testing.assert_allclose(JB[0, 1], [[0.0, 1.0], [0.0, 2.0]], rtol=0, atol=0)
    # C[1, 1] = 3 B[0, 1] + 4 B[1, 1]
    np.testing.assert_allclose(JB[1, 1], [[0.0, 3.0], [0.0, 4.0]], rtol=0, atol=0)


@pytest.mark.parametrize(("n", "m", "d"), [(1, 1, 1), (2, 3, 4), (4, 1, 3), (3, 5, 1), (1, 4, 2)])
def test_matmul_jacobian_entry_by_entry_formula_and_shapes(n, m, d, rng):
    A = rng.standard_normal((n, m))
    B = rng.standard_normal((m, d))
    JA = matmul_jacobian(A, B, "A")
    JB = matmul_jacobian(A, B, "B")
    assert JA.shape == (n, d, n, m)  # output axes, then input axes
    assert JB.shape == (n, d, m, d)
    for i in range(n):
        for j in range(d):
            for p in range(n):
                for q in range(m):  # dC[i, j] / dA[p, q] = delta_ip B[q, j]
                    assert JA[i, j, p, q] == pytest.approx(B[q, j] if i == p else 0.0, abs=0)
            for p in range(m):
                for q in range(d):  # dC[i, j] / dB[p, q] = A[i, p] delta_jq
                    assert JB[i, j, p, q] == pytest.approx(A[i, p] if j == q else 0.0, abs=0)


def test_matmul_jacobian_is_linear_map_from_input_change_to_output_change(rng):
    A, B = rng.standard_normal((3, 4)), rng.standard_normal((4, 2))
    dA, dB = rng.standard_normal((3, 4)), rng.standard_normal((4, 2))
    # C is linear in each factor, so J applied to a change is exactly the change of C
    np.testing.assert_allclose(np.tensordot(matmul_jacobian(A, B, "A"), dA, axes=2), dA @ B, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(np.tensordot(matmul_jacobian(A, B, "B"), dB, axes=2), A @ dB, rtol=1e-12, atol=1e-12)


# --- matmul_jacobian: against PyTorch autograd and finite differences -------------------


@pytest.mark.parametrize(("n", "m", "d"), [(1, 1, 1), (2, 3, 4), (3, 2, 2), (4, 1, 3), (2, 5, 1)])
def test_matmul_jacobian_matches_torch_autograd_jacobian_in_float64(n, m, d, rng):
    A, B = rng.standard_normal((n, m)), rng.standard_normal((m, d))
    tA, tB = torch.from_numpy(A.copy()), torch.from_numpy(B.copy())
    # torch.autograd.functional.jacobian uses the same layout: output axes, then input axes
    JA_torch = torch.autograd.functional.jacobian(lambda a: a @ tB, tA)
    JB_torch = torch.autograd.functional.jacobian(lambda b: tA @ b, tB)
    assert JA_torch.dtype == torch.float64
    torch.testing.assert_close(torch.from_numpy(matmul_jacobian(A, B, "A")), JA_torch, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(torch.from_numpy(matmul_jacobian(A, B, "B")), JB_torch, rtol=1e-12, atol=1e-12)


@given(seeds, sizes, sizes, sizes)
def test_matmul_jacobian_matches_finite_differences(seed, n, m, d):
    A, B = random_factors(seed, n, m, d)
    np.testing.assert_allclose(
        matmul_jacobian(A, B, "A"), numerical_jacobian(lambda a: a @ B, A), rtol=1e-7, atol=1e-8
    )
    np.testing.assert_allclose(
        matmul_jacobian(A, B, "B"), numerical_jacobian(lambda b: A @ b, B), rtol=1e-7, atol=1e-8
    )


# --- matmul_jacobian: dtypes, memory, refusals --------------------------------------------


@pytest.mark.parametrize(
    ("dtype_a", "dtype_b", "expected"),
    [
        (np.float64, np.float64, np.float64),
        (np.float32, np.float32, np.float32),
        (np.float32, np.float64, np.float64),
        (np.int64, np.int64, np.float64),
        (np.int32, np.float32, np.float64),
    ],
)
def test_matmul_jacobian_dtype(dtype_a, dtype_b, expected):
    A = np.arange(6).reshape(2, 3).astype(dtype_a)
    B = np.arange(12).reshape(3, 4).astype(dtype_b)
    for wrt in ("A", "B"):
        J = matmul_jacobian(A, B, wrt)
        assert J.dtype == expected
        np.testing.assert_allclose(J, matmul_jacobian(A.astype(float), B.astype(float), wrt), rtol=1e-6)


def test_matmul_jacobian_accepts_nested_lists_and_non_contiguous_views(rng):
    A, B = rng.standard_normal((3, 2)), rng.standard_normal((4, 2)).T  # B is a transposed view
    J = matmul_jacobian(A.tolist(), B, "B")
    np.testing.assert_allclose(J, matmul_jacobian(A, np.ascontiguousarray(B), "B"), rtol=0, atol=0)


def test_matmul_jacobian_result_does_not_share_memory_with_the_inputs(rng):
    A, B = rng.standard_normal((2, 3)), rng.standard_normal((3, 2))
    A_before, B_before = A.copy(), B.copy()
    for wrt in ("A", "B"):
        J = matmul_jacobian(A, B, wrt)
        assert not np.shares_memory(J, A) and not np.shares_memory(J, B)
        J[...] = 99.0
    np.testing.assert_array_equal(A, A_before)
    np.testing.assert_array_equal(B, B_before)


def test_source_note_size_is_refused_with_16_gib_in_the_message():
    X = np.zeros((1024, 64), dtype=np.float32)
    W = np.zeros((64, 64), dtype=np.float32)
    with pytest.raises(JacobianTooLarge, match=r"16\.0 GiB") as info:
        matmul_jacobian(X, W, "A")
    err = info.value
    assert isinstance(err, ValueError)
    assert err.nbytes == 17_179_869_184
    assert err.max_bytes == 256 * 2**20
    assert "(1024, 64, 1024, 64)" in str(err)
    assert "256.0 MiB" in str(err)


@pytest.mark.parametrize("wrt", ["A", "B"])
def test_terabyte_jacobian_is_refused_before_anything_is_allocated(wrt, monkeypatch):
    # A (2**14, 1) and B (1, 2**14) are 128 KiB each; either Jacobian is 2**42 float64 = 32 TiB.
    A = np.ones((2**14, 1))
    B = np.ones((1, 2**14))

    def no_allocation(*args, **kwargs):
        raise AssertionError("the Jacobian was about to be built")

    import matgrad.jacobian as module

    monkeypatch.setattr(module.np, "einsum", no_allocation)
    monkeypatch.setattr(module.np, "eye", no_allocation)
    with pytest.raises(JacobianTooLarge, match=r"need 32\.0 TiB \(35,184,372,088,832 bytes of float64\)"):
        matmul_jacobian(A, B, wrt)


def test_zettabyte_jacobian_of_broadcast_inputs_is_refused_without_memory_error():
    # read-only broadcast views: huge shapes, one element of storage each
    A = np.broadcast_to(np.float32(1.0), (2**20, 2**10))
    B = np.broadcast_to(np.float32(1.0), (2**10, 2**20))
    with pytest.raises(JacobianTooLarge) as info:
        matmul_jacobian(A, B, "A")
    assert info.value.nbytes == 2**20 * 2**20 * 2**20 * 2**10 * 4
    assert format_bytes(info.value.nbytes) in str(info.value)


def test_max_bytes_is_inclusive_and_can_be_raised_or_removed(rng):
    A, B = rng.standard_normal((2, 2)), rng.standard_normal((2, 2))
    nbytes = jacobian_nbytes((2, 2), (2, 2), np.float64)  # 128
    assert matmul_jacobian(A, B, "A", max_bytes=nbytes).nbytes == nbytes
    with pytest.raises(JacobianTooLarge, match="128 B"):
        matmul_jacobian(A, B, "A", max_bytes=nbytes - 1)
    assert matmul_jacobian(A, B, "B", max_bytes=float("inf")).shape == (2, 2, 2, 2)
    A, B = np.ones((100, 1)), np.ones((1, 100))  # either Jacobian: 10**6 float64, 8,000,000 bytes
    assert matmul_jacobian(A, B, "B", max_bytes=8_000_000).shape == (100, 100, 1, 100)
    with pytest.raises(JacobianTooLarge, match=r"7\.6 MiB"):
        matmul_jacobian(A, B, "A", max_bytes=7_999_999)


@given(seeds, sizes, sizes, sizes, st.sampled_from([np.float32, np.float64]), st.sampled_from("AB"))
def test_jacobian_nbytes_is_the_size_of_what_matmul_jacobian_returns(seed, n, m, d, dtype, wrt):
    A, B = random_factors(seed, n, m, d, dtype)
    J = matmul_jacobian(A, B, wrt)
    in_shape = A.shape if wrt == "A" else B.shape
    assert J.nbytes == jacobian_nbytes((n, d), in_shape, dtype)


# --- matmul_jacobian: bad input ----------------------------------------------------------


@pytest.mark.parametrize(
    ("A", "B", "match"),
    [
        (np.ones(3), np.ones((3, 2)), r"2-D A \(n, m\) and B \(m, d\); got A of shape \(3,\)"),
        (np.ones((2, 3)), np.ones(3), r"got A of shape \(2, 3\) and B of shape \(3,\)"),
        (np.ones((1, 2, 3)), np.ones((3, 2)), r"got A of shape \(1, 2, 3\)"),
        (np.float64(2.0), np.ones((1, 1)), r"got A of shape \(\)"),
        (np.ones((2, 3)), np.ones((4, 2)), r"A.shape\[1\] == B.shape\[0\]; got A of shape \(2, 3\) and B of shape \(4, 2\)"),
    ],
)
def test_matmul_jacobian_refuses_bad_shapes(A, B, match):
    with pytest.raises(ValueError, match=match):
        matmul_jacobian(A, B, "A")


@pytest.mark.parametrize("wrt", ["a", "C", "AB", "", None, 0, ("A",), ["B"]])
def test_matmul_jacobian_refuses_bad_wrt(wrt):
    with pytest.raises(ValueError, match='wrt must be "A" or "B"'):
        matmul_jacobian(np.ones((2, 2)), np.ones((2, 2)), wrt)


@pytest.mark.parametrize(
    ("bad", "what"),
    [
        (np.ones((2, 2), dtype=bool), "booleans"),
        (np.ones((2, 2), dtype=complex), "complex numbers"),
        (np.array([["a", "b"], ["c", "d"]]), "strings"),
        (np.array([[1.0, None], [2.0, 3.0]], dtype=object), "Python objects"),
    ],
)
def test_matmul_jacobian_refuses_non_real_arrays(bad, what):
    with pytest.raises(TypeError, match=f"A must be a real numeric array.*{what}"):
        matmul_jacobian(bad, np.ones((2, 2)), "A")
    with pytest.raises(TypeError, match=f"B must be a real numeric array.*{what}"):
        matmul_jacobian(np.ones((2, 2)), bad, "B")


@pytest.mark.parametrize(
    ("max_bytes", "error"),
    [(-1, ValueError), (float("nan"), ValueError), ("1 GiB", TypeError), (True, TypeError), (None, TypeError)],
)
def test_matmul_jacobian_refuses_bad_max_bytes(max_bytes, error):
    with pytest.raises(error, match="max_bytes must be a non-negative number of bytes"):
        matmul_jacobian(np.ones((2, 2)), np.ones((2, 2)), "A", max_bytes=max_bytes)


def test_matmul_jacobian_leaves_its_arguments_unchanged_also_when_it_raises(rng):
    A, B = rng.standard_normal((3, 2)), rng.standard_normal((2, 4)).astype(np.float32)
    A_before, B_before = A.copy(), B.copy()
    matmul_jacobian(A, B, "A")
    matmul_jacobian(A, B, "B")
    for kwargs in ({"wrt": "C"}, {"wrt": "A", "max_bytes": 8}, {"wrt": "B", "max_bytes": -1}):
        with pytest.raises(ValueError):
            matmul_jacobian(A, B, **kwargs)
    np.testing.assert_array_equal(A, A_before)
    np.testing.assert_array_equal(B, B_before)
    assert B.dtype == np.float32


# --- jacobian_nbytes -----------------------------------------------------------------------


def test_jacobian_nbytes_source_note_case():
    assert jacobian_nbytes((1024, 64), (1024, 64)) == 17_179_869_184
    assert format_bytes(jacobian_nbytes((1024, 64), (1024, 64))) == "16.0 GiB"


@pytest.mark.parametrize(
    ("out_shape", "in_shape", "dtype", "nbytes"),
    [
        ((2, 3), (2, 5), np.float64, 480),
        ((2, 3), (2, 5), np.float32, 240),
        ((2, 3), (2, 5), np.float16, 120),
        ((), (), np.float64, 8),
        ((4,), (), np.float32, 16),
        ((0, 3), (5, 5), np.float64, 0),
        ([2, 2], np.array([3]), np.float64, 96),
        ((np.int64(7),), (np.int32(3),), "float32", 84),
    ],
)
def test_jacobian_nbytes_hand_computed(out_shape, in_shape, dtype, nbytes):
    assert jacobian_nbytes(out_shape, in_shape, dtype) == nbytes


def test_jacobian_nbytes_default_dtype_is_float32():
    assert jacobian_nbytes((3,), (5,)) == 60


def test_jacobian_nbytes_is_exact_for_astronomical_sizes():
    nbytes = jacobian_nbytes((2**40, 2**20), (2**40,), np.float64)
    assert type(nbytes) is int
    assert nbytes == 2**103  # no int64 overflow


@given(st.lists(sizes, max_size=3), st.lists(sizes, max_size=3), st.sampled_from([np.float16, np.float32, np.float64]))
def test_jacobian_nbytes_equals_the_nbytes_of_such_an_array(out_shape, in_shape, dtype):
    expected = np.empty(tuple(out_shape) + tuple(in_shape), dtype=dtype).nbytes
    assert jacobian_nbytes(tuple(out_shape), tuple(in_shape), dtype) == expected


@pytest.mark.parametrize(
    ("out_shape", "in_shape", "name"),
    [
        (5, (2,), "out_shape"),
        ((2,), 3.0, "in_shape"),
        ((2, -1), (2,), "out_shape"),
        ((2.0, 3), (2,), "out_shape"),
        ((True, 3), (2,), "out_shape"),
        ((2,), ("a",), "in_shape"),
        ((2,), None, "in_shape"),
    ],
)
def test_jacobian_nbytes_refuses_bad_shapes(out_shape, in_shape, name):
    with pytest.raises(TypeError, match=f"{name} must be a tuple of non-negative integers"):
        jacobian_nbytes(out_shape, in_shape)


def test_jacobian_nbytes_leaves_its_arguments_unchanged():
    out_shape, in_shape = [3, 4], np.array([2, 5])
    jacobian_nbytes(out_shape, in_shape)
    assert out_shape == [3, 4]
    np.testing.assert_array_equal(in_shape, [2, 5])


# --- vjp_from_jacobian -------------------------------------------------------------------


def test_vjp_from_jacobian_hand_computed():
    A = np.array([[1.0, 2.0], [3.0, 4.0]])
    B = np.array([[5.0, 6.0], [7.0, 8.0]])
    dC = np.array([[1.0, 0.0], [0.0, 0.0]])  # L = C[0, 0] = A[0, 0] B[0, 0] + A[0, 1] B[1, 0]
    np.testing.assert_allclose(vjp_from_jacobian(matmul_jacobian(A, B, "A"), dC), [[5.0, 7.0], [0.0, 0.0]])
    np.testing.assert_allclose(vjp_from_jacobian(matmul_jacobian(A, B, "B"), dC), [[1.0, 0.0], [2.0, 0.0]])


@given(seeds, sizes, sizes, sizes)
def test_vjp_through_the_full_jacobian_is_the_closed_form(seed, n, m, d):
    A, B = random_factors(seed, n, m, d)
    G = np.random.default_rng(seed + 1).standard_normal((n, d))
    dA = vjp_from_jacobian(matmul_jacobian(A, B, "A"), G)
    dB = vjp_from_jacobian(matmul_jacobian(A, B, "B"), G)
    assert dA.shape == A.shape and dB.shape == B.shape
    np.testing.assert_allclose(dA, G @ B.T, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(dB, A.T @ G, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(("n", "m", "d"), [(1, 1, 1), (3, 2, 4), (2, 4, 3)])
def test_vjp_from_jacobian_matches_torch_backward(n, m, d, rng):
    A, B, G = rng.standard_normal((n, m)), rng.standard_normal((m, d)), rng.standard_normal((n, d))
    tA = torch.tensor(A, requires_grad=True)
    tB = torch.tensor(B, requires_grad=True)
    (tA @ tB).backward(torch.from_numpy(G))
    torch.testing.assert_close(torch.from_numpy(vjp_from_jacobian(matmul_jacobian(A, B, "A"), G)), tA.grad)
    torch.testing.assert_close(torch.from_numpy(vjp_from_jacobian(matmul_jacobian(A, B, "B"), G)), tB.grad)


def test_vjp_from_jacobian_general_shapes_and_scalar_output(rng):
    J = rng.standard_normal((3, 2, 5))  # output (3,), input (2, 5)
    dC = rng.standard_normal(3)
    np.testing.assert_allclose(vjp_from_jacobian(J, dC), np.einsum("i,ipq->pq", dC, J), rtol=1e-12)
    # a scalar output: dC is 0-d and J has only input axes
    np.testing.assert_allclose(vjp_from_jacobian(J[0], np.float64(2.0)), 2.0 * J[0], rtol=1e-15)


@pytest.mark.parametrize(
    ("J_dtype", "dC_dtype", "expected"),
    [(np.float32, np.float32, np.float32), (np.float32, np.float64, np.float64), (np.int64, np.int64, np.float64)],
)
def test_vjp_from_jacobian_dtype(J_dtype, dC_dtype, expected):
    J = np.arange(24).reshape(2, 3, 4).astype(J_dtype)
    dC = np.arange(6).reshape(2, 3).astype(dC_dtype)
    out = vjp_from_jacobian(J, dC)
    assert out.dtype == expected and out.shape == (4,)
    np.testing.assert_allclose(out, np.tensordot(dC.astype(float), J.astype(float), axes=2), rtol=1e-6)


@pytest.mark.parametrize(
    ("J_shape", "dC_shape"),
    [((2, 3, 2, 4), (3, 2)), ((2, 3, 2, 4), (2, 4)), ((2, 3), (2, 3, 1)), ((4,), (2, 2)), ((2, 2, 2), (2, 3))],
)
def test_vjp_from_jacobian_refuses_mismatched_shapes(J_shape, dC_shape):
    with pytest.raises(ValueError, match=r"J must have the axes of dC first.*got J of shape"):
        vjp_from_jacobian(np.ones(J_shape), np.ones(dC_shape))


def test_vjp_from_jacobian_refuses_non_real_arrays():
    with pytest.raises(TypeError, match="J must be a real numeric array.*booleans"):
        vjp_from_jacobian(np.ones((2, 2, 2), dtype=bool), np.ones(2))
    with pytest.raises(TypeError, match="dC must be a real numeric array.*complex"):
        vjp_from_jacobian(np.ones((2, 2, 2)), np.ones(2, dtype=complex))
    with pytest.raises(TypeError, match="dC must be a real numeric array.*strings"):
        vjp_from_jacobian(np.ones((2, 2)), "ab")


def test_vjp_from_jacobian_leaves_its_arguments_unchanged_also_when_it_raises(rng):
    J = rng.standard_normal((2, 3, 4)).astype(np.float32)
    dC = rng.standard_normal((2, 3))
    J_before, dC_before = J.copy(), dC.copy()
    out = vjp_from_jacobian(J, dC)
    assert not np.shares_memory(out, J) and not np.shares_memory(out, dC)
    with pytest.raises(ValueError):
        vjp_from_jacobian(J, dC.T)
    np.testing.assert_array_equal(J, J_before)
    np.testing.assert_array_equal(dC, dC_before)


@pytest.mark.parametrize("wrt", ["A", "B"])
def test_jacobian_is_c_contiguous(wrt):
    """A C-ordered Jacobian lets vjp_from_jacobian contract it without a copy of J."""
    J = matmul_jacobian(np.ones((3, 4)), np.ones((4, 2)), wrt)
    assert J.flags["C_CONTIGUOUS"]
