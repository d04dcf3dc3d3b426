"""Finite differences, and checks of a claimed gradient against them.

Central differences :math:`(f(x + \\varepsilon e) - f(x - \\varepsilon e)) / 2\\varepsilon`
have an error of order :math:`\\varepsilon^2` from truncation and of order
:math:`u / \\varepsilon` from rounding (``u`` the unit round-off), so the default
step ``1e-6`` suits float64. Every function here works on a private copy of ``x``:
the caller's array is never written, also when ``f`` raises.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._validate import as_real_array, format_bytes, shape_str
from .jacobian import JacobianTooLarge

__all__ = [
    "GradientCheckResult",
    "assert_gradient_close",
    "check_gradient",
    "numerical_gradient",
    "numerical_jacobian",
]


def _scratch_copy(x, name="x") -> np.ndarray:
    """A private, contiguous, floating copy of ``x`` (float32 stays float32)."""
    arr = as_real_array(x, name)
    dtype = arr.dtype if arr.dtype.kind == "f" else np.dtype(np.float64)
    return np.array(arr, dtype=dtype, copy=True, order="C")


def _check_eps(eps) -> float:
    if isinstance(eps, (bool, np.bool_)) or not isinstance(eps, (int, float, np.integer, np.floating)):
        raise TypeError(f"eps must be a positive real number; got {eps!r}")
    eps = float(eps)
    if not np.isfinite(eps) or eps <= 0:
        raise ValueError(f"eps must be a positive finite number; got {eps!r}")
    return eps


def _as_scalar(value) -> float:
    """The real scalar ``f`` returned, as a Python float; anything else is a ValueError."""
    if isinstance(value, (bool, np.bool_)):
        raise ValueError(f"f must return a real scalar; it returned a boolean ({value!r})")
    if isinstance(value, (int, float, np.integer, np.floating)):
        return float(value)
    if isinstance(value, np.ndarray):
        if value.ndim == 0 and value.dtype.kind in "iuf":
            return float(value)
        raise ValueError(
            f"f must return a real scalar (a 0-d array or a number); it returned an ndarray of "
            f"shape {shape_str(value.shape)} and dtype {value.dtype}"
        )
    raise ValueError(f"f must return a real scalar (a 0-d array or a number); it returned {type(value).__name__}: {value!r:.80}")


def numerical_gradient(f, x, *, eps=1e-6):
    """Gradient of a scalar function by central differences, one entry at a time.

    Parameters
    ----------
    f : callable
        ``f(x)`` returns a real scalar (a Python or NumPy number, or a 0-d array).
        It is called with a private copy of ``x``, never with ``x`` itself.
    x : array_like, any shape
        Point at which to differentiate. Integer input is treated as float64;
        float32 input is perturbed in float32 (which is what a float32 check
        really measures).
    eps : float, optional
        Step of the central difference (default ``1e-6``, suited to float64).

    Returns
    -------
    ndarray of float64, shape x.shape
        ``(f(x + eps e_k) - f(x - eps e_k)) / (2 eps)`` for every entry ``k``,
        where the difference of the two evaluations is taken in float64.

    Raises
    ------
    TypeError
        If ``x`` is not a real numeric array or ``eps`` is not a number.
    ValueError
        If ``f`` returns anything but a real scalar, or ``eps`` is not positive.

    Notes
    -----
    Costs ``2 * x.size`` evaluations of ``f``. The error is
    :math:`O(\\varepsilon^2)` from truncation plus :math:`O(u|f|/\\varepsilon)`
    from rounding.

    Examples
    --------
    >>> X = np.array([[1.0, 2.0], [3.0, 4.0]])
    >>> np.round(numerical_gradient(lambda X: np.sum(X**2), X), 6)
    array([[2., 4.],
           [6., 8.]])
    """
    if not callable(f):
        raise TypeError(f"f must be callable; got {type(f).__name__}")
    eps = _check_eps(eps)
    work = _scratch_copy(x)
    flat = work.reshape(-1)  # a view of the private copy
    grad = np.empty(work.size, dtype=np.float64)
    for k in range(flat.size):
        original = flat[k]
        flat[k] = original + eps
        f_plus = _as_scalar(f(work))
        flat[k] = original - eps
        f_minus = _as_scalar(f(work))
        flat[k] = original
        grad[k] = (f_plus - f_minus) / (2.0 * eps)
    return grad.reshape(work.shape)


def numerical_jacobian(f, x, *, eps=1e-6, max_bytes=256 * 2**20):
    """Jacobian of an array-valued function by central differences.

    Parameters
    ----------
    f : callable
        ``f(x)`` returns a real array of a fixed shape ``out_shape``.
    x : array_like, shape in_shape
        Point at which to differentiate.
    eps : float, optional
        Step of the central difference (default ``1e-6``).
    max_bytes : int, optional
        Refuse a float64 Jacobian larger than this (default 256 MiB).

    Returns
    -------
    ndarray of float64, shape out_shape + in_shape
        ``J[..., k] = (f(x + eps e_k) - f(x - eps e_k)) / (2 eps)``: output axes
        first, then input axes (the book's layout).

    Raises
    ------
    TypeError
        If ``x`` or an output of ``f`` is not a real numeric array.
    ValueError
        If ``f`` changes the shape of its output between calls.
    JacobianTooLarge
        If the Jacobian would need more than ``max_bytes``.

    Examples
    --------
    >>> W = np.array([[1.0, 2.0], [3.0, 4.0]])
    >>> J = numerical_jacobian(lambda x: W @ x, np.array([1.0, -1.0]))
    >>> np.round(J, 6)
    array([[1., 2.],
           [3., 4.]])
    """
    if not callable(f):
        raise TypeError(f"f must be callable; got {type(f).__name__}")
    eps = _check_eps(eps)
    work = _scratch_copy(x)
    out_shape = np.shape(f(work.copy()))
    nbytes = int(np.prod(out_shape, dtype=object) * work.size * 8)
    if nbytes > max_bytes:
        raise JacobianTooLarge(
            f"the Jacobian would have shape {shape_str(tuple(out_shape) + work.shape)} and need "
            f"{format_bytes(nbytes)} ({nbytes:,} bytes of float64), more than max_bytes={format_bytes(max_bytes)}",
            nbytes,
            max_bytes,
        )
    flat = work.reshape(-1)
    J = np.empty(tuple(out_shape) + (work.size,), dtype=np.float64)
    for k in range(flat.size):
        original = flat[k]
        flat[k] = original + eps
        y_plus = as_real_array(f(work), "f(x)").astype(np.float64)
        flat[k] = original - eps
        y_minus = as_real_array(f(work), "f(x)").astype(np.float64)
        flat[k] = original
        if y_plus.shape != tuple(out_shape) or y_minus.shape != tuple(out_shape):
            raise ValueError(
                f"f changed the shape of its output: first {shape_str(out_shape)}, then "
                f"{shape_str(y_plus.shape)} and {shape_str(y_minus.shape)}"
            )
        J[..., k] = (y_plus - y_minus) / (2.0 * eps)
    return J.reshape(tuple(out_shape) + work.shape)


@dataclass(frozen=True)
class GradientCheckResult:
    """Outcome of :func:`check_gradient`; ``bool(result)`` is ``result.passed``.

    Attributes
    ----------
    passed : bool
        Whether every compared quantity satisfied ``|claimed - numerical| <=
        atol + rtol * |numerical|``.
    max_abs_error : float
        Largest ``|claimed - numerical|``.
    max_rel_error : float
        Largest ``|claimed - numerical| / max(|claimed|, |numerical|)`` (0 where
        both are 0).
    n_evaluations : int
        How many times ``f`` was called.
    method : str
        ``"full"`` (every entry) or ``"directional"`` (random directions).
    n_failed : int
        How many compared quantities failed the tolerance.
    worst_index : tuple of int
        Index of the worst entry (``"full"``) or ``(direction,)``.
    claimed : float
        The claimed value at ``worst_index`` (a directional derivative for
        ``"directional"``).
    numerical : float
        The finite-difference value at ``worst_index``.
    rtol : float
        The relative tolerance used.
    atol : float
        The absolute tolerance used.
    """

    passed: bool
    max_abs_error: float
    max_rel_error: float
    n_evaluations: int
    method: str
    n_failed: int
    worst_index: tuple
    claimed: float
    numerical: float
    rtol: float
    atol: float

    def __bool__(self) -> bool:
        return bool(self.passed)

    def report(self) -> str:
        """A readable one-paragraph summary of the check."""
        where = "entry" if self.method == "full" else "direction"
        verdict = "passed" if self.passed else f"FAILED: {self.n_failed} {where}(s) outside tolerance"
        return (
            f"gradient check ({self.method}, {self.n_evaluations} evaluations of f) {verdict}; "
            f"worst {where} {self.worst_index}: claimed {self.claimed:.10g}, finite differences "
            f"{self.numerical:.10g} (abs error {self.max_abs_error:.3g}, rel error {self.max_rel_error:.3g}; "
            f"rtol={self.rtol:g}, atol={self.atol:g})"
        )


def _compare(claimed, numerical, rtol, atol):
    claimed = np.asarray(claimed, dtype=np.float64)
    numerical = np.asarray(numerical, dtype=np.float64)
    abs_err = np.abs(claimed - numerical)
    scale = np.maximum(np.abs(claimed), np.abs(numerical))
    with np.errstate(invalid="ignore", divide="ignore"):
        rel_err = np.where(scale > 0, abs_err / np.where(scale > 0, scale, 1.0), 0.0)
    ok = abs_err <= atol + rtol * np.abs(numerical)
    ok &= np.isfinite(claimed) & np.isfinite(numerical)
    if abs_err.size == 0:
        return True, 0.0, 0.0, 0, (), 0.0, 0.0
    # worst: the entry that misses its tolerance by the most
    badness = np.where(np.isfinite(abs_err), abs_err - (atol + rtol * np.abs(numerical)), np.inf)
    worst = np.unravel_index(int(np.argmax(badness)), abs_err.shape)
    return (
        bool(ok.all()),
        float(np.nanmax(abs_err)) if np.isfinite(abs_err).any() else float("inf"),
        float(np.nanmax(rel_err)) if np.isfinite(rel_err).any() else float("inf"),
        int((~ok).sum()),
        tuple(int(i) for i in worst),
        float(claimed[worst]),
        float(numerical[worst]),
    )


def _check_tolerance(value, name):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a non-negative real number; got {value!r}")
    if not value >= 0:
        raise ValueError(f"{name} must be a non-negative real number; got {value!r}")
    return float(value)


def check_gradient(f, x, grad, *, rtol=1e-5, atol=1e-8, method="full", n_directions=8, seed=0, eps=1e-6):
    """Compare a claimed gradient of a scalar function with finite differences.

    Parameters
    ----------
    f : callable
        Scalar function of ``x`` (see :func:`numerical_gradient`).
    x : array_like, any shape
        Point at which the gradient was computed. Never modified.
    grad : array_like, shape x.shape
        The claimed gradient ``dL/dx``. A different shape is an error, never a
        broadcast.
    rtol, atol : float, optional
        An entry passes if ``|claimed - numerical| <= atol + rtol * |numerical|``.
        The defaults suit float64; a float32 computation needs looser ones.
    method : {"full", "directional"}, optional
        ``"full"`` compares every entry (``2 * x.size`` evaluations of ``f``).
        ``"directional"`` compares ``<grad, v>`` with a central difference of ``f``
        along ``n_directions`` random unit vectors ``v`` (``2 * n_directions``
        evaluations, whatever the size of ``x``).
    n_directions : int, optional
        Number of random directions for ``method="directional"`` (default 8).
    seed : int, optional
        Seed of ``np.random.default_rng`` for the directions (default 0).
    eps : float, optional
        Finite-difference step (default ``1e-6``).

    Returns
    -------
    GradientCheckResult
        With ``passed``, ``max_abs_error``, ``max_rel_error``, ``n_evaluations``
        and the worst entry; ``bool(result) == result.passed``.

    Raises
    ------
    TypeError
        If ``x`` or ``grad`` is not a real numeric array, or an option has the
        wrong type.
    ValueError
        If ``grad.shape != x.shape``, ``method`` is unknown, ``n_directions < 1``,
        or ``f`` does not return a real scalar.

    Notes
    -----
    The directional check rests on :math:`\\langle \\nabla f(x), v \\rangle =
    \\lim_{\\varepsilon \\to 0} (f(x + \\varepsilon v) - f(x - \\varepsilon v)) / 2\\varepsilon`.
    A wrong gradient ``g`` passes a direction only if ``<g - grad f, v>`` is tiny,
    which for a Gaussian direction happens with probability near zero.

    Examples
    --------
    >>> W = np.array([[1.0, 2.0], [3.0, 4.0]])
    >>> G = np.array([[1.0, -1.0], [0.5, 2.0]])
    >>> X = np.array([[0.1, 0.2], [0.3, 0.4]])
    >>> f = lambda X: np.sum(G * (X @ W))
    >>> bool(check_gradient(f, X, G @ W.T))
    True
    >>> bool(check_gradient(f, X, G @ W))          # transposed factor forgotten
    False
    >>> check_gradient(f, X, G @ W.T, method="directional", n_directions=3).n_evaluations
    6
    """
    if not callable(f):
        raise TypeError(f"f must be callable; got {type(f).__name__}")
    rtol = _check_tolerance(rtol, "rtol")
    atol = _check_tolerance(atol, "atol")
    eps = _check_eps(eps)
    x_arr = as_real_array(x, "x")
    g = as_real_array(grad, "grad")
    if g.shape != x_arr.shape:
        raise ValueError(
            f"grad must have the shape of x, {shape_str(x_arr.shape)}; got grad of shape "
            f"{shape_str(g.shape)} (a gradient of a scalar has the shape of its variable; "
            f"it is never broadcast)"
        )
    if method == "full":
        numerical = numerical_gradient(f, x_arr, eps=eps)
        passed, max_abs, max_rel, n_failed, worst, c, n = _compare(g, numerical, rtol, atol)
        n_eval = 2 * x_arr.size
    elif method == "directional":
        if isinstance(n_directions, (bool, np.bool_)) or not isinstance(n_directions, (int, np.integer)):
            raise TypeError(f"n_directions must be a positive integer; got {n_directions!r}")
        if n_directions < 1:
            raise ValueError(f"n_directions must be a positive integer; got {n_directions}")
        rng = np.random.default_rng(seed)
        work = _scratch_copy(x_arr)
        base = work.copy()
        g64 = g.astype(np.float64)
        claimed = np.empty(int(n_directions))
        numerical = np.empty(int(n_directions))
        for k in range(int(n_directions)):
            v = rng.standard_normal(work.shape)
            v /= np.linalg.norm(v) or 1.0
            step = (eps * v).astype(work.dtype)
            np.add(base, step, out=work)
            f_plus = _as_scalar(f(work))
            np.subtract(base, step, out=work)
            f_minus = _as_scalar(f(work))
            numerical[k] = (f_plus - f_minus) / (2.0 * eps)
            claimed[k] = float(np.sum(g64 * v))
        passed, max_abs, max_rel, n_failed, worst, c, n = _compare(claimed, numerical, rtol, atol)
        n_eval = 2 * int(n_directions)
    else:
        raise ValueError(f'method must be "full" or "directional"; got {method!r}')
    return GradientCheckResult(
        passed=passed,
        max_abs_error=max_abs,
        max_rel_error=max_rel,
        n_evaluations=n_eval,
        method=method,
        n_failed=n_failed,
        worst_index=worst,
        claimed=c,
        numerical=n,
        rtol=rtol,
        atol=atol,
    )


def assert_gradient_close(f, x, grad, **options):
    """Like :func:`check_gradient`, but raise ``AssertionError`` with a report on failure.

    Parameters
    ----------
    f, x, grad
        As in :func:`check_gradient`.
    **options
        ``rtol``, ``atol``, ``method``, ``n_directions``, ``seed``, ``eps``: as in
        :func:`check_gradient`.

    Returns
    -------
    GradientCheckResult
        The passing result.

    Raises
    ------
    AssertionError
        If the check fails; the message names the worst entry, its index and both
        values.

    Examples
    --------
    >>> assert_gradient_close(lambda x: np.sum(x**3), np.array([1.0, 2.0]), np.array([3.0, 12.0])).passed
    True
    >>> assert_gradient_close(lambda x: np.sum(x**3), np.array([1.0, 2.0]), np.array([3.0, 11.0]))
    Traceback (most recent call last):
    ...
    AssertionError: gradient check (full, 4 evaluations of f) FAILED: 1 entry(s) outside tolerance; worst entry (1,): claimed 11, finite differences 12 (abs error 1, rel error 0.0833; rtol=1e-05, atol=1e-08)
    """
    result = check_gradient(f, x, grad, **options)
    if not result.passed:
        raise AssertionError(result.report())
    return result
