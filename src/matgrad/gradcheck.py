"""Finite differences, and checks of a claimed gradient against them.

Central differences :math:`(f(x + \\varepsilon e) - f(x - \\varepsilon e)) / 2\\varepsilon`
have an error of order :math:`\\varepsilon^2` from truncation and of order
:math:`u / \\varepsilon` from rounding (``u`` the unit round-off), so the default
step ``1e-6`` suits float64. Every function here works on a private copy of ``x``:
the caller's array is never written, also when ``f`` raises. The points are formed
in the dtype of ``x`` (float32 stays float32), and each difference is divided by the
step actually taken after rounding to that dtype, not by the nominal one.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field

import numpy as np

from ._validate import as_real_array, shape_str
from .jacobian import _check_max_bytes, _refuse_if_too_large

__all__ = [
    "GradientCheckResult",
    "assert_gradient_close",
    "check_gradient",
    "numerical_gradient",
    "numerical_jacobian",
    "random_directions",
]


def _scratch_copy(x, name="x") -> np.ndarray:
    """A private, contiguous, finite, floating copy of ``x`` (float32 stays float32)."""
    arr = as_real_array(x, name)
    dtype = arr.dtype if arr.dtype.kind == "f" else np.dtype(np.float64)
    work = np.array(arr, dtype=dtype, copy=True, order="C")
    if not np.isfinite(work).all():
        bad = tuple(int(i) for i in np.argwhere(~np.isfinite(work))[0])
        raise ValueError(
            f"{name} must be finite to be differentiated; {name}{list(bad) if bad else ''} is {float(work[bad])!r} "
            f"({name} has shape {shape_str(work.shape)})"
        )
    return work


def _check_eps(eps) -> float:
    if isinstance(eps, (bool, np.bool_)) or not isinstance(eps, numbers.Real):
        raise TypeError(f"eps must be a positive real number; got {type(eps).__name__}: {eps!r:.80}")
    eps = float(eps)
    if not np.isfinite(eps) or eps <= 0:
        raise ValueError(f"eps must be a positive finite number; got {eps!r}")
    return eps


def _as_scalar(value) -> float:
    """The real scalar ``f`` returned, as a Python float; anything else is a ValueError."""
    if isinstance(value, (bool, np.bool_)):
        raise ValueError(f"f must return a real scalar; it returned a boolean ({value!r})")
    if isinstance(value, numbers.Real):  # Python and NumPy integers and floats
        try:
            return float(value)
        except OverflowError:  # a Python integer beyond the float range
            raise ValueError(
                f"f must return a real scalar that fits in a float64; it returned an integer of "
                f"{len(str(abs(value)))} digits, too large for a float"
            ) from None
    if isinstance(value, np.ndarray):
        if value.ndim == 0 and value.dtype.kind in "iuf":
            return float(value)
        raise ValueError(
            f"f must return a real scalar (a 0-d array or a number); it returned an ndarray of "
            f"shape {shape_str(value.shape)} and dtype {value.dtype}"
        )
    if isinstance(value, numbers.Complex):
        raise ValueError(f"f must return a real scalar; it returned a complex number, {value!r}")
    raise ValueError(
        f"f must return a real scalar (a 0-d array or a number); it returned {type(value).__name__}: {value!r:.80}"
    )


def _step_too_small(eps, work, k) -> str:
    index = tuple(int(i) for i in np.unravel_index(k, work.shape))
    value = work.reshape(-1)[k]
    return (
        f"eps={eps:g} is too small for x of dtype {work.dtype}: at index {index}, x = {float(value)!r} and "
        f"x + eps, x - eps round to the same {work.dtype} number, so f cannot see the step; "
        f"use eps well above {float(np.spacing(np.abs(value))):.2e} (the spacing of {work.dtype} numbers there)"
    )


def _step_overflows(eps, work, index) -> str:
    index = tuple(int(i) for i in index)
    return (
        f"eps={eps:g} is too large for x of dtype {work.dtype}: at index {index}, x = {float(work[index])!r} and "
        f"x + eps or x - eps (or the step between them) overflow the {work.dtype} range "
        f"(largest {float(np.finfo(work.dtype).max):.4g}), so the differences would be inf or NaN; use a smaller eps"
    )


def _round_up_2_digits(value: float) -> float:
    scale = 10.0 ** (math.floor(math.log10(value)) - 1)
    return math.ceil(value / scale * (1 - 1e-12)) * scale


def _check_directional_step(eps, work) -> None:
    """Refuse, before any evaluation, a directional step that overflows or that some entry cannot take.

    Along a random unit direction ``v`` an entry moves by ``eps * v_i``, about ``eps / sqrt(N)``
    (the root-mean-square component of a unit vector of ``N`` entries). An entry at which even
    half of that, ``h = eps / (2 sqrt(N))``, rounds to nothing in the dtype of ``x`` is almost never
    moved, so a gradient wrong there would pass unseen: such a step is refused, as the full
    method refuses a step that rounds to nothing.
    """
    if work.size == 0:
        return
    dtype = work.dtype
    with np.errstate(over="ignore"):
        e = dtype.type(eps)
        ends_finite = np.isfinite(np.add(work, e)) & np.isfinite(np.subtract(work, e))
    if not (ends_finite.all() and math.isfinite(2.0 * eps)):
        bad = np.argwhere(~ends_finite)
        raise ValueError(_step_overflows(eps, work, bad[0] if len(bad) else np.unravel_index(0, work.shape)))
    n = work.size
    h = eps / (2.0 * math.sqrt(n))
    with np.errstate(under="ignore"):
        h_dtype = dtype.type(h)
    lost = np.add(work, h_dtype) == np.subtract(work, h_dtype)
    if lost.any():
        index = tuple(int(i) for i in np.argwhere(lost)[0])
        # x +- h differ wherever h is at least the spacing of the dtype at |x|
        need = _round_up_2_digits(2.0 * math.sqrt(n) * float(np.max(np.spacing(np.abs(work[lost])))))
        raise ValueError(
            f"eps={eps:g} is too small for x of dtype {dtype} in a directional check: at index {index}, "
            f"x = {float(work[index])!r} (and at {int(lost.sum()) - 1} other entries), x + h and x - h round to "
            f"the same {dtype} number for h = eps / (2 sqrt(N)) = {h:.3g}, half the typical move of an entry "
            f"along a random unit direction (N = {n} entries), so f would almost never see that entry move "
            f"and a gradient wrong there would pass; use eps >= {need:.2g}, or method=\"full\""
        )


def _central_pairs(f, work, eps, convert):
    """Yield ``(k, convert(f(x + eps e_k)), convert(f(x - eps e_k)), step)`` for every entry ``k``.

    ``work`` is the private copy of ``x``; each entry is moved and put back in place.
    ``convert`` runs on each value before ``work`` changes again (``f`` may return a
    view of its argument).
    The points are rounded to the dtype of ``work`` and ``step`` is the difference
    actually taken between them (a step that rounds to nothing is a ValueError).
    """
    flat = work.reshape(-1)  # a view of the private copy
    for k in range(flat.size):
        original = flat[k]
        with np.errstate(over="ignore"):
            x_plus = work.dtype.type(original + eps)  # rounded to the dtype of x
            x_minus = work.dtype.type(original - eps)
        step = float(x_plus) - float(x_minus)
        if not (np.isfinite(x_plus) and np.isfinite(x_minus) and np.isfinite(step)):
            raise ValueError(_step_overflows(eps, work, np.unravel_index(k, work.shape)))
        if not step > 0:
            raise ValueError(_step_too_small(eps, work, k))
        flat[k] = x_plus
        f_plus = convert(f(work))
        flat[k] = x_minus
        f_minus = convert(f(work))
        flat[k] = original
        yield k, f_plus, f_minus, step


def numerical_gradient(f, x, *, eps=1e-6):
    """Gradient of a scalar function by central differences, one entry at a time.

    Parameters
    ----------
    f : callable
        ``f(x)`` returns a real scalar: a Python or NumPy integer or float, or a
        0-d array of such. It is called with a private scratch copy of ``x``
        (same shape, floating dtype), never with ``x`` itself, and must not keep
        or modify that array.
    x : array_like, any shape
        Point at which to differentiate; finite. Never modified, also when ``f``
        raises. Integer input is treated as float64. Float32 (and float16) input
        is perturbed in its own dtype, so ``f`` sees the points a float32
        computation would really see.
    eps : float, optional
        Step of the central difference (default ``1e-6``, suited to float64; for
        float32 a step near the cube root of its machine epsilon, about ``5e-3``
        times the size of ``x``, and tolerances near ``1e-2``, or
        :func:`check_gradients`, which chooses the step and the tolerances from
        the dtype).

    Returns
    -------
    ndarray of float64, shape x.shape
        ``(f(x + eps e_k) - f(x - eps e_k)) / h_k`` for every entry ``k``, where
        ``h_k`` is the step actually taken (the difference of the two perturbed
        entries after rounding to the dtype of ``x``, about ``2 eps``), and the
        difference of the two values of ``f`` is taken in float64.

    Raises
    ------
    TypeError
        If ``f`` is not callable, ``x`` is not a real numeric array (booleans,
        complex numbers, strings and objects are refused) or ``eps`` is not a
        real number.
    ValueError
        If ``f`` returns anything but a real scalar (an array of another shape, a
        list, a string, ``None``, a complex number: the message says what came
        back); if ``eps`` is not positive and finite; if ``x`` has an infinite or
        NaN entry; if ``eps`` is so small that ``x + eps`` and ``x - eps``
        round to the same number in the dtype of ``x``; or if it is so large
        that they, or the step between them, overflow that dtype.

    Notes
    -----
    Costs ``2 * x.size`` evaluations of ``f``. The error is
    :math:`O(\\varepsilon^2)` from truncation plus :math:`O(u|f|/\\varepsilon)`
    from rounding, :math:`u` being the unit round-off of the computation in ``f``
    (about :math:`10^{-16}` in float64, :math:`6 \\cdot 10^{-8}` in float32).
    Dividing by the step actually taken removes a third error, that of rounding
    ``x + eps`` and ``x - eps`` to the dtype of ``x``, which is large in float32.

    Examples
    --------
    >>> X = np.array([[1.0, 2.0], [3.0, 4.0]])
    >>> np.round(numerical_gradient(lambda X: np.sum(X**2), X), 6)
    array([[2., 4.],
           [6., 8.]])

    Float32 input is differentiated in float32, with a larger step, and the
    result is float64 all the same:

    >>> x32 = np.array([0.5, -1.5], dtype=np.float32)
    >>> g = numerical_gradient(lambda x: np.sum(x**3), x32, eps=1e-3)
    >>> g.dtype, np.round(g, 2)
    (dtype('float64'), array([0.75, 6.75]))
    """
    if not callable(f):
        raise TypeError(f"f must be callable; got {type(f).__name__}")
    eps = _check_eps(eps)
    return _gradient_of_copy(f, _scratch_copy(x), eps)


def _gradient_of_copy(f, work, eps):
    """Central differences of ``f`` at ``work``, a private copy the caller validated once."""
    grad = np.empty(work.size, dtype=np.float64)
    for k, f_plus, f_minus, step in _central_pairs(f, work, eps, _as_scalar):
        grad[k] = (f_plus - f_minus) / step
    return grad.reshape(work.shape)


def numerical_jacobian(f, x, *, eps=1e-6, max_bytes=256 * 2**20):
    """Jacobian of an array-valued function by central differences.

    Parameters
    ----------
    f : callable
        ``f(x)`` returns a real array of a fixed shape ``out_shape``. It is
        called with a private scratch copy of ``x``, never with ``x`` itself.
    x : array_like, shape in_shape
        Point at which to differentiate; finite. Never modified.
    eps : float, optional
        Step of the central difference (default ``1e-6``).
    max_bytes : int or float, optional
        Refuse a float64 Jacobian larger than this (default 256 MiB).

    Returns
    -------
    ndarray of float64, shape out_shape + in_shape
        ``J[..., k] = (f(x + eps e_k) - f(x - eps e_k)) / h_k``: output axes
        first, then input axes (the book's layout); ``h_k`` is the step actually
        taken, as in :func:`numerical_gradient`.

    Raises
    ------
    TypeError
        If ``x`` or an output of ``f`` is not a real numeric array, or ``eps``
        or ``max_bytes`` is not a number.
    ValueError
        If ``f`` changes the shape of its output between calls, ``x`` is not
        finite, or ``eps`` or ``max_bytes`` is out of range (as in
        :func:`numerical_gradient`).
    JacobianTooLarge
        If the Jacobian would need more than ``max_bytes``; checked after one
        evaluation of ``f`` (to learn ``out_shape``) and before allocating it.

    Notes
    -----
    Costs ``2 * x.size + 1`` evaluations of ``f``. Column ``k`` of the
    flattened Jacobian is :math:`(f(x + \\varepsilon e_k) - f(x - \\varepsilon
    e_k)) / 2\\varepsilon`, up to the rounding of the step.

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
    max_bytes = _check_max_bytes(max_bytes)
    work = _scratch_copy(x)
    out_shape = as_real_array(f(work.copy()), "f(x)").shape
    _refuse_if_too_large(out_shape, work.shape, np.float64, max_bytes, "df/dx")
    J = np.empty(tuple(out_shape) + (work.size,), dtype=np.float64)
    def as_float64(y):
        return as_real_array(y, "f(x)").astype(np.float64)  # a copy, taken before x moves again

    for k, y_plus, y_minus, step in _central_pairs(f, work, eps, as_float64):
        if y_plus.shape != tuple(out_shape) or y_minus.shape != tuple(out_shape):
            raise ValueError(
                f"f changed the shape of its output: first {shape_str(out_shape)}, then "
                f"{shape_str(y_plus.shape)} and {shape_str(y_minus.shape)}"
            )
        J[..., k] = (y_plus - y_minus) / step
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
        Largest ``|claimed - numerical|`` (``inf`` if a compared value is not
        finite).
    max_rel_error : float
        Largest ``|claimed - numerical| / max(|claimed|, |numerical|)`` (0 where
        both are 0; ``inf`` if a compared value is not finite).
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
    name : ``str or int or None``
        The input's key in :func:`check_gradients` (``None`` from
        :func:`check_gradient`).
    finite_differences : ``ndarray or None``
        The finite-difference gradient, shape of the input, when every entry was
        differenced; ``None`` otherwise (directional or sampled checks).
    diagnosis : ``str or None``
        ``None`` when the check passed or no pattern fits; else a short text naming
        the kind of mistake (``"transposed"``, ``"scaled"``, ``"sign"``, ``"zero"``,
        ``"swapped"``; see :func:`diagnose_gradient`) or a hint about ``f``.

    Examples
    --------
    >>> result = check_gradient(lambda x: np.sum(x**2), np.array([1.0, 2.0]), np.array([2.0, 5.0]))
    >>> bool(result), result.n_failed, result.worst_index
    (False, 1, (1,))
    >>> round(result.numerical, 6)
    4.0
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
    name: object = None
    finite_differences: object = field(default=None, compare=False, repr=False)
    diagnosis: object = None

    def __bool__(self) -> bool:
        return bool(self.passed)

    def report(self) -> str:
        """A readable one-paragraph summary of the check."""
        where = "entry" if self.method == "full" else "direction"
        verdict = "passed" if self.passed else f"FAILED: {self.n_failed} {where}(s) outside tolerance"
        return (
            f"gradient check ({self.method}, {self.n_evaluations} evaluations of f) {verdict}; "
            f"worst {where} {self.worst_index}: claimed {self.claimed:.10g}, finite differences "
            f"{self.numerical:.10g}; over all {where.replace('y', 'ie')}s: max abs error {self.max_abs_error:.3g}, "
            f"max rel error {self.max_rel_error:.3g} (rtol={self.rtol:g}, atol={self.atol:g})"
            + (f"; diagnosis: {self.diagnosis}" if self.diagnosis else "")
        )


def _compare(claimed, numerical, rtol, atol):
    """Entry-wise comparison; a non-finite value on either side fails with infinite error."""
    claimed = np.asarray(claimed, dtype=np.float64)
    numerical = np.asarray(numerical, dtype=np.float64)
    if claimed.size == 0:
        return True, 0.0, 0.0, 0, (), 0.0, 0.0
    finite = np.isfinite(claimed) & np.isfinite(numerical)
    with np.errstate(invalid="ignore", over="ignore"):
        abs_err = np.where(finite, np.abs(claimed - numerical), np.inf)
        scale = np.maximum(np.abs(claimed), np.abs(numerical))
        rel_err = np.where(finite, abs_err / np.where(scale > 0, scale, 1.0), np.inf)
    tol = atol + rtol * np.abs(numerical)
    ok = finite & (abs_err <= tol)
    # worst: the entry that misses its tolerance by the most
    badness = np.where(finite, abs_err - tol, np.inf)
    worst = np.unravel_index(int(np.argmax(badness)), abs_err.shape)
    return (
        bool(ok.all()),
        float(abs_err.max()),
        float(rel_err.max()),
        int((~ok).sum()),
        tuple(int(i) for i in worst),
        float(claimed[worst]),
        float(numerical[worst]),
    )


def _check_tolerance(value, name):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a non-negative real number; got {type(value).__name__}: {value!r:.80}")
    if not value >= 0:
        raise ValueError(f"{name} must be a non-negative real number; got {value!r}")
    return float(value)


def _check_n_directions(n_directions) -> int:
    if isinstance(n_directions, (bool, np.bool_)) or not isinstance(n_directions, numbers.Integral):
        raise TypeError(f"n_directions must be a positive integer; got {type(n_directions).__name__}: {n_directions!r:.80}")
    if n_directions < 1:
        raise ValueError(f"n_directions must be a positive integer (at least 1); got {n_directions}")
    return int(n_directions)


def _rng_from_seed(seed):
    """``np.random.default_rng(seed)``, with an error that says what ``seed`` may be."""
    try:
        return np.random.default_rng(seed)  # checks the seed, draws nothing yet
    except (TypeError, ValueError) as exc:
        raise type(exc)(
            f"seed must be what np.random.default_rng accepts (a non-negative integer, by default 0); "
            f"got {type(seed).__name__}: {seed!r:.80} ({exc})"
        ) from None


def _directions(rng, shape, n_directions):
    """Yield ``n_directions`` unit vectors of shape ``shape``, drawn one after the other from ``rng``.

    Each is a standard Gaussian array divided by its norm (left as it is if the norm is 0,
    which happens only for an empty shape). The directional check draws its directions here,
    one at a time, so it never holds more than one of them.
    """
    for _ in range(n_directions):
        v = rng.standard_normal(shape)
        norm = np.linalg.norm(v)
        if norm > 0:
            v /= norm
        yield v


def _check_shape(shape) -> tuple:
    if isinstance(shape, numbers.Integral) and not isinstance(shape, (bool, np.bool_)):
        shape = (shape,)
    if not isinstance(shape, (tuple, list)) or not all(
        isinstance(n, numbers.Integral) and not isinstance(n, (bool, np.bool_)) for n in shape
    ):
        raise TypeError(f"shape must be a tuple of non-negative integers (the shape of x); got {shape!r:.80}")
    if any(n < 0 for n in shape):
        raise ValueError(f"shape must be a tuple of non-negative integers (the shape of x); got {tuple(shape)}")
    return tuple(int(n) for n in shape)


def random_directions(shape, n_directions=8, seed=0):
    """The random unit directions of a directional gradient check, as an array.

    ``check_gradient(f, x, grad, method="directional", n_directions=k, seed=s)``
    compares ``<grad, v>`` with a central difference of ``f`` along each of
    ``random_directions(x.shape, k, s)``; the two draw their directions with the
    same code, so this function shows which directions a check used.

    Parameters
    ----------
    shape : int or tuple of int
        The shape of ``x``, the point of the check.
    n_directions : int, optional
        How many directions (default 8, as in :func:`check_gradient`); at least 1.
    seed : int, optional
        Seed of ``np.random.default_rng`` (default 0, as in
        :func:`check_gradient`); anything that function accepts.

    Returns
    -------
    ndarray of float64, shape (n_directions,) + shape
        ``out[k]`` is direction number ``k`` (from 0, the number that a check's
        ``worst_index`` gives): a standard Gaussian array divided by its norm, so
        of norm 1 (unless ``shape`` has no entries). The first ``k`` directions do
        not depend on ``n_directions``.

    Raises
    ------
    TypeError
        If ``shape`` is not an integer or a tuple of integers, ``n_directions``
        is not an integer, or ``seed`` has a type ``np.random.default_rng``
        refuses.
    ValueError
        If a dimension of ``shape`` is negative, ``n_directions < 1``, or
        ``seed`` is a negative integer.

    Examples
    --------
    >>> V = random_directions((2, 3), n_directions=4)
    >>> V.shape, np.round(np.linalg.norm(V.reshape(4, -1), axis=1), 12)
    ((4, 2, 3), array([1., 1., 1., 1.]))
    >>> bool(np.array_equal(random_directions((2, 3), 2), V[:2]))
    True

    The worst direction of a directional check is one of them:

    >>> x, g = np.array([1.0, 2.0, 3.0]), np.array([2.0, 4.0, 7.0])
    >>> r = check_gradient(lambda x: np.sum(x**2), x, g, method="directional", n_directions=3)
    >>> v = random_directions(x.shape, 3)[r.worst_index]
    >>> bool(np.isclose(r.claimed, g @ v)), bool(np.isclose(r.numerical, 2 * x @ v))
    (True, True)
    """
    shape = _check_shape(shape)
    n_directions = _check_n_directions(n_directions)
    rng = _rng_from_seed(seed)
    out = np.empty((n_directions,) + shape, dtype=np.float64)
    for k, v in enumerate(_directions(rng, shape, n_directions)):
        out[k] = v
    return out


def _refuse_misused_grad(grad, x_shape) -> None:
    """Clear errors for two common misuses: ``None`` (a forgotten return) and a tuple ``(g,)``."""
    if grad is None:
        raise ValueError(
            "grad is None: the backward function returned nothing (a forgotten `return`?); "
            f"pass the claimed gradient, an array of the shape of x, {shape_str(x_shape)}"
        )
    if isinstance(grad, (tuple, list)) and len(grad) >= 1 and np.shape(grad[0]) == tuple(x_shape) \
            and np.shape(grad) != tuple(x_shape):
        raise ValueError(
            f"grad is a {type(grad).__name__} of {len(grad)} array(s) of the shape of x, {shape_str(x_shape)} "
            f"(as torch.autograd.gradcheck takes them); check_gradient takes one array: pass grad[0], "
            f"or use check_gradients for several inputs"
        )


def check_gradient(f, x, grad, *, rtol=1e-5, atol=1e-8, method="full", n_directions=8, seed=0, eps=1e-6):
    """Compare a claimed gradient of a scalar function with finite differences.

    Parameters
    ----------
    f : callable
        Scalar function of ``x`` (see :func:`numerical_gradient`); called with a
        private scratch copy of ``x``.
    x : array_like, any shape
        Point at which the gradient was computed; finite. Never modified, also
        when ``f`` raises.
    grad : array_like, shape x.shape
        The claimed gradient ``dL/dx``. A different shape is an error, never a
        broadcast. Never modified.
    rtol, atol : float, optional
        A compared quantity passes if ``|claimed - numerical| <= atol + rtol *
        |numerical|``. The defaults suit float64; a float32 computation needs
        looser ones (about ``rtol=1e-2`` with a step near ``5e-3`` times the size
        of ``x``; :func:`check_gradients` chooses both from the dtype).
    method : {"full", "directional"}, optional
        ``"full"`` compares every entry (``2 * x.size`` evaluations of ``f``).
        ``"directional"`` compares ``<grad, v>`` with a central difference of ``f``
        along ``n_directions`` random unit vectors ``v`` (``2 * n_directions``
        evaluations, whatever the size of ``x``).
    n_directions : int, optional
        Number of random directions for ``method="directional"`` (default 8).
        Checked whatever the method.
    seed : int, optional
        Seed of ``np.random.default_rng`` for the directions (default 0); anything
        that function accepts. The same seed gives the same directions, and the
        first ``k`` directions do not depend on ``n_directions``;
        :func:`random_directions` returns them.
    eps : float, optional
        Finite-difference step (default ``1e-6``).

    Returns
    -------
    GradientCheckResult
        With ``passed``, ``max_abs_error``, ``max_rel_error``, ``n_evaluations``
        (the number of calls of ``f``) and the worst entry or direction, its
        index, and both values; ``bool(result) == result.passed``.

    Raises
    ------
    TypeError
        If ``f`` is not callable; if ``x`` or ``grad`` is not a real numeric
        array (booleans, complex numbers, strings and objects are refused); or if
        ``rtol``, ``atol``, ``eps``, ``n_directions`` or ``seed`` has the wrong
        type.
    ValueError
        If ``grad.shape != x.shape``; if ``method`` is unknown; if
        ``n_directions < 1``; if ``eps`` is not positive and finite, or
        ``rtol`` or ``atol`` is negative; if ``seed`` is a negative integer; if ``x`` is not finite; if ``f`` does
        not return a real scalar (or returns an integer too large for a
        float); if the step vanishes when rounded to the dtype of ``x`` (for
        ``"directional"``: at any entry, for half the typical move
        ``eps / sqrt(x.size)`` of an entry along a unit direction, see Notes);
        if ``x + eps`` or ``x - eps`` overflows that dtype; if ``grad`` is
        ``None`` or a tuple ``(g,)``; or if ``f`` modifies its argument.

    Notes
    -----
    The directional check rests on :math:`\\langle \\nabla f(x), v \\rangle =
    \\lim_{\\varepsilon \\to 0} (f(x + \\varepsilon v) - f(x - \\varepsilon v)) / 2\\varepsilon`.
    A wrong gradient ``g`` passes direction ``v`` only if :math:`|\\langle g -
    \\nabla f(x), v \\rangle|` is within the tolerance. For a Gaussian direction
    the inner product with a fixed nonzero error is zero with probability zero,
    so a wrong gradient is caught with a probability that tends to one as the
    error grows against the tolerance; it is not a certainty. Each
    ``<grad, v>`` is taken along the step actually made (after rounding ``x +
    eps v`` to the dtype of ``x``), divided by ``2 eps``. An entry ``i`` moves by
    ``eps * v_i``, about ``eps / sqrt(N)`` for ``N = x.size``; where even half of
    that rounds to nothing (a float32 entry of 5000 with ``eps=1e-3`` and
    ``N = 400``), the entry would almost never move and a gradient wrong there
    would pass unseen, so such a step is refused before ``f`` is called, with the
    smallest ``eps`` that every entry can take.

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
    if not (isinstance(method, str) and method in ("full", "directional")):
        raise ValueError(f'method must be "full" or "directional"; got {method!r}')
    n_directions = _check_n_directions(n_directions)
    rng = _rng_from_seed(seed)
    work = _scratch_copy(x)  # x validated once, here; only this private copy goes inward
    _refuse_misused_grad(grad, work.shape)
    g = as_real_array(grad, "grad")
    if g.shape != work.shape:
        raise ValueError(
            f"grad must have the shape of x, {shape_str(work.shape)}; got grad of shape "
            f"{shape_str(g.shape)} (a gradient of a scalar has the shape of its variable; "
            f"it is never broadcast)"
        )
    n_calls = 0
    out_dtypes = []

    def counted_f(z):
        nonlocal n_calls
        n_calls += 1
        if n_calls > 1:
            return f(z)
        before = np.array(z, copy=True)  # the first call also checks that f leaves its argument alone
        value = f(z)
        if not np.array_equal(before, z):
            raise ValueError(
                "f modified its argument: check_gradient calls f with a private copy of x, and an f that writes "
                "into it (x += ..., x[...] = ..., an in-place ufunc) sees a different point on every call; "
                "use out-of-place operations or copy first (x = x.copy())"
            )
        out_dtypes.append(getattr(value, "dtype", None))
        return value

    if method == "full":
        numerical = _gradient_of_copy(counted_f, work, eps)
        passed, max_abs, max_rel, n_failed, worst, c, n = _compare(g, numerical, rtol, atol)
    else:
        _check_directional_step(eps, work)
        base = work.copy()
        g64 = np.asarray(g, dtype=np.float64).reshape(-1)
        claimed = np.empty(n_directions)
        numerical = np.empty(n_directions)
        for k, v in enumerate(_directions(rng, work.shape, n_directions)):  # as random_directions draws them
            step = (eps * v).astype(work.dtype)
            # the displacement actually made, x_plus - x_minus, after rounding
            np.add(base, step, out=work)
            moved = work.astype(np.float64)
            np.subtract(base, step, out=work)
            moved -= work
            if work.size and not moved.any():
                raise ValueError(
                    f"eps={eps:g} is too small for x of dtype {work.dtype}: x + eps v and x - eps v round "
                    f"to the same point, so f cannot see the step; use a larger eps"
                )
            np.add(base, step, out=work)
            f_plus = _as_scalar(counted_f(work))
            np.subtract(base, step, out=work)
            f_minus = _as_scalar(counted_f(work))
            numerical[k] = (f_plus - f_minus) / (2.0 * eps)
            claimed[k] = float(g64 @ moved.reshape(-1)) / (2.0 * eps)
        passed, max_abs, max_rel, n_failed, worst, c, n = _compare(claimed, numerical, rtol, atol)
    diagnosis = None
    x_dtype = work.dtype
    if not passed and out_dtypes and out_dtypes[0] is not None and np.dtype(out_dtypes[0]).kind == "f" \
            and np.dtype(out_dtypes[0]).itemsize < x_dtype.itemsize:
        diagnosis = (
            f"f returned {np.dtype(out_dtypes[0])} for {x_dtype} x: its rounding hides steps as small as "
            f"eps={eps:g}; compute f in {x_dtype}, or check in {np.dtype(out_dtypes[0])} with a larger eps"
        )
    return GradientCheckResult(
        diagnosis=diagnosis,
        passed=passed,
        max_abs_error=max_abs,
        max_rel_error=max_rel,
        n_evaluations=n_calls,
        method=method,
        n_failed=n_failed,
        worst_index=worst,
        claimed=c,
        numerical=n,
        rtol=rtol,
        atol=atol,
    )


def assert_gradient_close(f, x, grad, *, rtol=1e-5, atol=1e-8, method="full", n_directions=8, seed=0, eps=1e-6):
    """Like :func:`check_gradient`, but raise ``AssertionError`` with a report on failure.

    Parameters
    ----------
    f, x, grad
        As in :func:`check_gradient`: a scalar function, the point (any shape)
        and the claimed gradient (shape ``x.shape``).
    rtol, atol, method, n_directions, seed, eps
        As in :func:`check_gradient`, with the same defaults.

    Returns
    -------
    GradientCheckResult
        The passing result.

    Raises
    ------
    AssertionError
        If the check fails; the message (``result.report()``) names the worst entry (or direction), its index, the claimed and the
        finite-difference values, and the errors.
    TypeError, ValueError
        For bad arguments, as in :func:`check_gradient`.

    Notes
    -----
    The test of each entry is the one of :func:`check_gradient`,
    :math:`|g - \\hat g| \\le \\mathrm{atol} + \\mathrm{rtol}\\,|\\hat g|` with
    :math:`\\hat g` the finite difference.

    Examples
    --------
    >>> assert_gradient_close(lambda x: np.sum(x**3), np.array([1.0, 2.0]), np.array([3.0, 12.0])).passed
    True
    >>> assert_gradient_close(lambda x: np.sum(x**3), np.array([1.0, 2.0]), np.array([3.0, 11.0]))
    Traceback (most recent call last):
    ...
    AssertionError: gradient check (full, 4 evaluations of f) FAILED: 1 entry(s) outside tolerance; worst entry (1,): claimed 11, finite differences 12; over all entries: max abs error 1, max rel error 0.0833 (rtol=1e-05, atol=1e-08)
    """
    result = check_gradient(
        f, x, grad, rtol=rtol, atol=atol, method=method, n_directions=n_directions, seed=seed, eps=eps
    )
    if not result.passed:
        raise AssertionError(result.report())
    return result
