"""Name the kind of mistake a wrong gradient makes, by comparing it with the true one.

A wrong backward pass is rarely wrong at random: a forgotten transpose, a mean where a
sum belongs, a factor such as ``1/sqrt(d)`` left out, a flipped sign, a gradient never
written, two returned gradients in the wrong order. Each leaves a pattern that the
claimed gradient ``g`` and the finite-difference gradient ``t`` show at once: ``g`` is
``t.T``, or ``c * t`` for one constant ``c``, or the gradient of another input.
:func:`diagnose_gradient` tests these patterns in turn and describes the first that fits.
"""

from __future__ import annotations

import math

import numpy as np

from ._validate import as_real_array, shape_str

__all__ = ["diagnose_gradient"]

#: what to look at in the code, for each kind of diagnosis
SUGGESTIONS = {
    "zero": "a gradient that is never written or returned (a missing `return`, an accumulation into a copy, a detached branch)",
    "sign": "a difference taken the wrong way round (y - t against t - y) or a minus sign lost in the chain rule",
    "scaled": "a mean where the forward pass sums (or the reverse), a constant factor such as 1/sqrt(d) or 2 "
    "missing or applied twice",
    "transposed": "a missing or extra .T: dW has the shape of W and is the product of the layer's input and G "
    "in the order that gives that shape, so check which operand is transposed (it depends on how W is stored); "
    "or a reshape applied to a transposed matrix without transposing back",
    "swapped": "two gradients returned in the wrong order, or one input's gradient stored under another's name",
}


def _matches(a, b, tol):
    """Whether ``a`` equals ``b`` up to a relative residual ``tol`` (in the 2-norm)."""
    nb = np.linalg.norm(b)
    return nb > 0 and np.linalg.norm(a - b) <= tol * nb


def _name_constant(c: float, sizes=(), rel=1e-2) -> str:
    """``c`` to 4 significant digits, named when ``c`` or ``1/c`` is an integer or its square root.

    From its digits alone, "is" means within 0.1 % and 0.02, and square roots only of
    integers up to 1024 (beyond, nearly every number is that close to the square root of
    one). An estimate of ``c`` from float32 finite differences is rarely that close to
    ``1/n`` for a large ``n``; it is still named after one of ``sizes`` (for example the
    axis lengths of the inputs) when that size, or its square root, is within the relative
    uncertainty ``rel`` of ``c`` or ``1/c`` and no other size is.
    """
    text = f"{c:.4g}"
    sign = "-" if c < 0 else ""
    a = abs(c)
    for value, prefix in ((a, ""), (1.0 / a, "1/")):
        for n, form in ((round(value), "{}"), (round(value * value), "√{}")):
            near = abs((value if form == "{}" else value * value) - n) <= min(1e-3 * n, 0.02)
            if n >= 2 and near and (form == "{}" or n <= 1024):
                name = f"{sign}{prefix}{form.format(n)}"
                return text if name == text else f"{text} = {name}"
    candidates = {(f"{prefix}{form.format(n)}", abs(value / root - 1.0))
                  for n in {int(n) for n in sizes if int(n) >= 2}
                  for form, root in (("{}", float(n)), ("√{}", math.sqrt(n)))
                  for value, prefix in ((a, ""), (1.0 / a, "1/"))}
    close = [name for name, off in candidates if off <= rel]
    if len(close) == 1:
        return f"{text} = {sign}{close[0]}"
    return text


def _transposes(true, shape):
    """Candidates ``(description, array of shape shape)`` made by transposing ``true``."""
    if true.ndim == 2 and true.shape[::-1] == shape:
        yield "transposed", true.T
    size = true.size
    for a in range(2, size // 2 + 1):
        if size % a:
            continue
        b = size // a
        candidate = true.reshape(a, b).T.reshape(shape)
        if true.ndim == 2 and true.shape == (a, b) and shape == (b, a):
            continue  # the plain transpose, already tried
        yield "transposed before a reshape", candidate


def diagnose_gradient(claimed, true, *, others=None, tol=1e-2, sizes=()):
    """Describe the pattern of a wrong gradient, or return ``None`` if none fits.

    Parameters
    ----------
    claimed : array_like, any shape
        The gradient a backward pass returned.
    true : array_like, shape claimed.shape
        The true gradient (for example from finite differences).
    others : dict, optional
        Other inputs' true gradients, ``name -> array``; a claim equal to one of them
        is diagnosed as *swapped* with that name.
    tol : float, optional
        Relative residual (in the 2-norm, against the pattern) under which a pattern
        counts as fitting (default ``1e-2``). Use a larger value when ``true`` is noisy.
    sizes : iterable of int, optional
        Sizes a scale may be named after (``1/n``, ``n``, ``√n``) when its estimate is
        too noisy for its digits to identify the integer, as from float32 finite
        differences: named only when exactly one size (or its square root) lies within
        twice the fit's relative residual (at most ``tol``) of it. Without them a scale is
        named only when its digits identify the integer (``1/c`` within 0.02 of ``n``).

    Returns
    -------
    str or None
        A short text starting with the kind of mistake, one of ``"zero"``,
        ``"sign"``, ``"swapped"``, ``"transposed"`` (also ``"transposed before a
        reshape"``) and ``"scaled"``, followed by the detail (the constant to 4
        significant digits, named when it or its inverse is an integer or the square
        root of one: ``1/16``, ``√16``); ``None`` if ``claimed`` matches ``true``
        within ``tol`` or no pattern fits.

    Raises
    ------
    TypeError
        If an array is not real and numeric.
    ValueError
        If ``claimed`` and ``true`` have different shapes.

    Examples
    --------
    >>> true = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    >>> diagnose_gradient(true / 16, true)
    'scaled: the claim is 0.0625 = 1/16 times the true gradient'
    >>> diagnose_gradient(true / 4096 + [[3e-7, 0, 0], [0, 0, -2e-7]], true, sizes=(4096, 7))
    'scaled: the claim is 0.0002441 = 1/4096 times the true gradient'
    >>> diagnose_gradient(true.T.reshape(2, 3), true)
    'transposed before a reshape: the claim is the true gradient viewed as (2, 3), transposed, then reshaped to (2, 3)'
    >>> diagnose_gradient(true + np.array([[0.3, -0.2, 0.1], [0.0, 0.4, -0.3]]), true) is None
    True
    """
    g = np.asarray(as_real_array(claimed, "claimed"), dtype=np.float64)
    t = np.asarray(as_real_array(true, "true"), dtype=np.float64)
    if g.shape != t.shape:
        raise ValueError(f"claimed and true must have the same shape; got {shape_str(g.shape)} and {shape_str(t.shape)}")
    if g.size == 0 or not (np.isfinite(g).all() and np.isfinite(t).all()):
        return None
    if _matches(g, t, tol):
        return None
    if not g.any():
        return "zero: the claimed gradient is zero everywhere"
    if _matches(g, -t, tol):
        return "sign: the claim is the true gradient with the opposite sign (scaled by -1)"
    for name, other in (others or {}).items():
        other = np.asarray(other, dtype=np.float64)
        if other.shape == g.shape and _matches(g, other, tol):
            return f"swapped: the claim is the true gradient of {name!r}"
    for what, candidate in _transposes(t, g.shape):
        if _matches(g, candidate, tol):
            if what == "transposed":
                return "transposed: the claim is the true gradient transposed"
            return _describe_reshape(t, g, tol)
    tt = float(t.reshape(-1) @ t.reshape(-1))
    if tt > 0:
        c = float(g.reshape(-1) @ t.reshape(-1)) / tt
        if c != 0 and _matches(g, c * t, tol):
            # the error of c is at most about the fit's relative residual (the noise of t)
            residual = float(np.linalg.norm(g - c * t) / np.linalg.norm(c * t))
            return f"scaled: the claim is {_name_constant(c, sizes, min(tol, 2 * residual))} times the true gradient"
    return None


def _describe_reshape(t, g, tol):
    size = t.size
    for a in range(2, size // 2 + 1):
        if size % a == 0 and _matches(g, t.reshape(a, size // a).T.reshape(g.shape), tol):
            return (
                f"transposed before a reshape: the claim is the true gradient viewed as "
                f"{shape_str((a, size // a))}, transposed, then reshaped to {shape_str(g.shape)}"
            )
    return "transposed before a reshape"


def _kind(diagnosis):
    """The kind of a diagnosis text: its first word (``"transposed"`` ...), or ``None``."""
    if not diagnosis:
        return None
    head = diagnosis.split(":", 1)[0]
    return "transposed" if head.startswith("transposed") else head


def suggestion(diagnosis) -> str:
    """What to look at in the code for a diagnosis (a generic hint when there is none)."""
    kind = _kind(diagnosis)
    if kind in SUGGESTIONS:
        return SUGGESTIONS[kind]
    return ("no simple pattern fits: compare the worst entries with the finite differences, and check each "
            "term of the backward pass on its own")


def scale_of(claimed, true) -> float | None:
    """Best-fit ``c`` in ``claimed ≈ c * true`` (``None`` if ``true`` is zero)."""
    t = np.asarray(true, dtype=np.float64).reshape(-1)
    tt = float(t @ t)
    if not tt > 0 or not math.isfinite(tt):
        return None
    return float(np.asarray(claimed, dtype=np.float64).reshape(-1) @ t) / tt
