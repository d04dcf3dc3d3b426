"""Tests of matgrad._validate: the input checks every public function relies on,
and the public ``format_bytes``."""

import inspect
import re
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import matgrad
from matgrad._validate import as_real_array, float_dtype, format_bytes, shape_str

UNITS = {"B": 1, "KiB": 2**10, "MiB": 2**20, "GiB": 2**30, "TiB": 2**40, "PiB": 2**50}


# --- shape_str -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("shape", "text"),
    [((3, 4), "(3, 4)"), ((5,), "(5,)"), ((), "()"), ((np.int64(2), np.int32(7)), "(2, 7)"), ([1, 2, 3], "(1, 2, 3)")],
)
def test_shape_str_prints_like_numpy(shape, text):
    assert shape_str(shape) == text


def test_shape_str_matches_numpys_own_printing(rng):
    for ndim in range(4):
        a = np.zeros(tuple(rng.integers(1, 5, size=ndim)))
        assert shape_str(a.shape) == str(a.shape)


# --- as_real_array ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        np.arange(6).reshape(2, 3),
        np.arange(6, dtype=np.uint8),
        np.ones((2, 2), dtype=np.float32),
        np.ones(3, dtype=np.float16),
        [[1.0, 2.0], [3.0, 4.0]],
        3,
        2.5,
        np.float32(1.5),
    ],
)
def test_as_real_array_accepts_integers_and_floats_and_keeps_their_dtype(value):
    arr = as_real_array(value, "X")
    assert isinstance(arr, np.ndarray)
    assert arr.dtype == np.asarray(value).dtype
    assert arr.shape == np.shape(value)
    np.testing.assert_array_equal(arr, np.asarray(value))


@pytest.mark.parametrize(
    ("value", "what"),
    [
        (np.array([True, False]), "booleans"),
        (True, "booleans"),
        (np.array([1 + 2j]), "complex numbers"),
        (1j, "complex numbers"),
        (np.array(["a", "b"]), "strings"),
        ("abc", "strings"),
        (np.array([b"a"]), "bytes"),
        (np.array([1.0, None], dtype=object), "Python objects"),
        (np.array([Fraction(1, 2)], dtype=object), "Python objects"),
        (np.array(["2024-01-01"], dtype="datetime64[D]"), "dtype datetime64"),
    ],
)
def test_as_real_array_refuses_non_real_data_naming_the_argument_and_what_it_got(value, what):
    with pytest.raises(TypeError, match=rf"^W must be a real numeric array .*got {re.escape(what)}"):
        as_real_array(value, "W")


def test_as_real_array_refuses_a_ragged_list_with_a_type_error():
    with pytest.raises(TypeError, match="G must be a real numeric array; could not convert it"):
        as_real_array([[1.0, 2.0], [3.0]], "G")


def test_as_real_array_message_gives_dtype_and_shape():
    with pytest.raises(TypeError, match=r"dtype complex128\) of shape \(2, 3\)"):
        as_real_array(np.zeros((2, 3), dtype=complex), "A")


def test_as_real_array_leaves_its_argument_unchanged():
    X = np.arange(6.0).reshape(2, 3)
    X_before = X.copy()
    as_real_array(X, "X")
    with pytest.raises(TypeError):
        as_real_array(X > 2, "X")
    np.testing.assert_array_equal(X, X_before)


# --- float_dtype -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("dtypes", "expected"),
    [
        ((np.int64,), np.float64),
        ((np.int8, np.uint16), np.float64),
        ((np.float32,), np.float32),
        ((np.float32, np.float32), np.float32),
        ((np.float32, np.float64), np.float64),
        ((np.float32, np.int64), np.float64),  # NumPy's promotion: int64 does not fit in float32
        ((np.float32, np.int8), np.float32),
        ((np.float16,), np.float16),
    ],
)
def test_float_dtype_is_numpys_promotion_with_integers_going_to_float64(dtypes, expected):
    arrays = [np.zeros(2, dtype=dt) for dt in dtypes]
    result = float_dtype(*arrays)
    assert isinstance(result, np.dtype)
    assert result == np.dtype(expected)


# --- format_bytes ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("nbytes", "text"),
    [
        (0, "0 B"),
        (1, "1 B"),
        (1023, "1023 B"),
        (1024, "1.0 KiB"),
        (1536, "1.5 KiB"),
        (2**20 - 1, "1.0 MiB"),  # 1023.999 KiB would print as "1024.0 KiB"
        (2**20, "1.0 MiB"),
        (256 * 2**20, "256.0 MiB"),
        (2**34, "16.0 GiB"),
        (17_179_869_184, "16.0 GiB"),  # source note 004's Jacobian
        (5 * 2**40, "5.0 TiB"),
        (2**50, "1.0 PiB"),
        (2**60, "1024.0 PiB"),  # the largest unit stays
        (np.int64(3 * 2**30), "3.0 GiB"),
        (np.uint64(2**10), "1.0 KiB"),
        (2048.0, "2.0 KiB"),
        (np.float32(512), "512 B"),
        (10**30, "888178419700125.2 PiB"),  # Python integers of any size
    ],
)
def test_format_bytes_hand_computed_values(nbytes, text):
    assert format_bytes(nbytes) == text


def test_format_bytes_is_public_and_documented():
    assert matgrad.format_bytes is format_bytes
    doc = inspect.cleandoc(format_bytes.__doc__)  # Python 3.13 strips the indentation itself; older ones keep it
    for section in ("Parameters", "Returns", "Raises", "Notes", "Examples"):
        assert f"\n{section}\n---" in doc


@pytest.mark.parametrize("bad", [True, np.bool_(False), "1024", None, 1 + 0j, [1024], np.array([1024])])
def test_format_bytes_refuses_non_numbers(bad):
    with pytest.raises(TypeError, match="nbytes must be a non-negative real number"):
        format_bytes(bad)


@pytest.mark.parametrize("bad", [-1, -0.5, float("nan"), float("inf"), -np.inf, np.int64(-3)])
def test_format_bytes_refuses_negative_and_non_finite_sizes(bad):
    with pytest.raises(ValueError, match="nbytes must be a non-negative finite number"):
        format_bytes(bad)


@given(st.integers(min_value=0, max_value=2**62))
def test_format_bytes_round_trips_within_its_printed_precision(nbytes):
    text = format_bytes(nbytes)
    match = re.fullmatch(r"(\d+(?:\.\d)?) (B|KiB|MiB|GiB|TiB|PiB)", text)
    assert match, text
    number, unit = float(match.group(1)), match.group(2)
    if unit == "B":
        assert number == nbytes
    else:
        # one decimal: off by at most 0.05 of the unit; and never "1024.0" below PiB
        assert abs(number * UNITS[unit] - nbytes) <= 0.05 * UNITS[unit] * (1 + 1e-12)
        assert number >= 1.0
        assert unit == "PiB" or number < 1024


@given(st.integers(min_value=0, max_value=2**55), st.integers(min_value=0, max_value=2**55))
def test_format_bytes_is_monotone(a, b):
    lo, hi = sorted((a, b))
    to_bytes = lambda t: float(t.split()[0]) * UNITS[t.split()[1]]  # noqa: E731
    assert to_bytes(format_bytes(lo)) <= to_bytes(format_bytes(hi))


def test_shape_str_and_float_dtype_leave_their_arguments_unchanged():
    shape = [2, 3]
    a, b = np.arange(3), np.ones(2, dtype=np.float32)
    a_before, b_before = a.copy(), b.copy()
    shape_str(shape)
    float_dtype(a, b)
    assert shape == [2, 3]
    np.testing.assert_array_equal(a, a_before)
    np.testing.assert_array_equal(b, b_before)
    assert a.dtype == a_before.dtype and b.dtype == np.float32


def test_format_bytes_is_exact_for_integers_too_large_for_a_float():
    """Issue 12, defect 4: format_bytes(2**1034) raised OverflowError (int / int beyond float range)."""
    assert format_bytes(2**1034) == f"{2**984}.0 PiB"
    assert format_bytes(2**1034 + 2**49) == f"{2**984}.5 PiB"  # exact tenths: half a PiB more, no float between
    assert format_bytes(np.uint64(2**64 - 1)) == "16384.0 PiB"
