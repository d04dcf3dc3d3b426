"""Softmax and cross-entropy on logits, forward and backward (chapter 9).

For a vector of logits :math:`z` the softmax is :math:`p_i = e^{z_i} / \\sum_k e^{z_k}`.
Its Jacobian is :math:`\\operatorname{diag}(p) - p p^\\top`; :func:`softmax_backward`
never builds it and computes the vector-Jacobian product

.. math::

    dz = p \\odot (g - \\langle g, p \\rangle \\mathbf{1})

directly, with :math:`g` the gradient arriving at :math:`p`. The cross-entropy of
logits :math:`Z` (rows are examples, classes along the last axis) with integer labels
:math:`y` has the gradient :math:`(\\operatorname{softmax}(Z) - \\operatorname{onehot}(y)) / N`
for the mean over the :math:`N` examples (without the :math:`1/N` for the sum).

Every function works in the floating dtype of its input (float32 stays float32,
integers become float64), never writes into an argument, and subtracts the largest
logit before exponentiating, so logits of any finite size give finite results. Along
the last axis of a large array the work is done in blocks of rows that fit in the
processor's cache, so that each number is read from memory about once per function
(see ``benchmarks/README.md``).
"""

from __future__ import annotations

import operator

import numpy as np

from ._validate import as_real_array, float_dtype, shape_str

__all__ = ["cross_entropy", "cross_entropy_backward", "softmax", "softmax_backward"]

#: number of entries in one block of rows (64 Ki entries: 256 KiB of float32)
_BLOCK = 2**16


def _row_blocks(n_rows: int, n_cols: int):
    """Slices of consecutive rows, each about ``_BLOCK`` entries (at least one row)."""
    step = max(1, _BLOCK // max(1, n_cols))
    for start in range(0, n_rows, step):
        yield slice(start, min(n_rows, start + step))


def _check_axis(axis, ndim: int, name: str) -> int:
    if isinstance(axis, (bool, np.bool_)):
        raise TypeError(f"axis must be an integer; got a boolean ({axis!r})")
    try:
        axis = operator.index(axis)
    except TypeError:
        raise TypeError(f"axis must be an integer; got {type(axis).__name__}: {axis!r:.40}") from None
    if not -ndim <= axis < ndim:
        raise ValueError(f"axis {axis} is out of range for {name} with {ndim} axes (allowed: {-ndim} to {ndim - 1})")
    return axis % ndim


def _check_logits(Z, name: str, axis) -> tuple[np.ndarray, int]:
    Z = as_real_array(Z, name)
    if Z.ndim == 0:
        raise ValueError(f"{name} must have at least one axis (the one softmax runs along); got a 0-d array")
    axis = _check_axis(axis, Z.ndim, f"{name} of shape {shape_str(Z.shape)}")
    if Z.shape[axis] == 0:
        raise ValueError(f"axis {axis} of {name} of shape {shape_str(Z.shape)} is empty; softmax needs at least one entry")
    return Z, axis


def _softmax_into(z, out, axis):
    """``out = softmax(z)`` along ``axis`` (``out`` may not share memory with ``z``)."""
    m = z.max(axis=axis, keepdims=True)
    np.subtract(z, m, out=out)
    np.exp(out, out=out)
    s = out.sum(axis=axis, keepdims=True)
    np.reciprocal(s, out=s)
    out *= s


def _softmax_backward_into(p, g, out, axis):
    """``out = p * (g - <g, p>)`` along ``axis``."""
    if axis == -1:  # rows: <g, p> of every row as a stack of (1, C) @ (C, 1) products, no temporary
        s = (g[:, None, :] @ p[:, :, None])[:, :, 0]
    else:
        np.multiply(g, p, out=out)
        s = out.sum(axis=axis, keepdims=True)
    np.subtract(g, s, out=out)
    out *= p


def softmax(Z, axis=-1):
    """The softmax of ``Z`` along one axis, computed stably.

    Parameters
    ----------
    Z : array_like, any shape with at least one axis
        Logits (real numbers).
    axis : int, optional
        The axis along which the entries sum to one (default: the last).

    Returns
    -------
    P : ndarray, shape Z.shape
        ``exp(Z - max) / sum(exp(Z - max))`` along ``axis``: every slice along
        ``axis`` is a probability vector. A new array in the floating dtype of
        ``Z`` (float32 stays float32, integers give float64).

    Raises
    ------
    TypeError
        If ``Z`` is not a real numeric array (booleans, complex numbers, strings
        are refused) or ``axis`` is not an integer.
    ValueError
        If ``Z`` is 0-d, ``axis`` is out of range, or the axis is empty.

    Notes
    -----
    Subtracting the largest logit of each slice changes nothing mathematically
    (softmax is unchanged by adding a constant to every logit) and keeps every
    exponent at most 0, so logits of ``1e4`` or ``-1e4`` give finite results.
    Entries of ``-inf`` give probability 0 (a mask); a slice that is all
    ``-inf``, or that contains ``+inf`` or NaN, gives NaN, as in PyTorch.

    Examples
    --------
    >>> softmax(np.array([0.0, np.log(3.0)]))
    array([0.25, 0.75])
    >>> softmax(np.array([1e4, 0.0, -1e4]))           # no overflow
    array([1., 0., 0.])
    >>> softmax(np.array([[1.0, 1.0], [0.0, 0.0]]), axis=0)
    array([[0.73105858, 0.73105858],
           [0.26894142, 0.26894142]])
    """
    Z, axis = _check_logits(Z, "Z", axis)
    dtype = float_dtype(Z)
    Z = Z.astype(dtype, copy=False)
    P = np.empty(Z.shape, dtype=dtype)
    if axis == Z.ndim - 1:
        Z2, P2 = np.ascontiguousarray(Z).reshape(-1, Z.shape[-1]), P.reshape(-1, Z.shape[-1])
        for rows in _row_blocks(*Z2.shape):
            _softmax_into(Z2[rows], P2[rows], -1)
    else:
        _softmax_into(Z, P, axis)
    return P


def softmax_backward(P, dP, axis=-1):
    """The gradient with respect to the logits, given the softmax output and its gradient.

    Parameters
    ----------
    P : array_like, any shape with at least one axis
        The output of :func:`softmax` along ``axis`` (not checked to be one).
    dP : array_like, shape P.shape
        The gradient ``dL/dP`` arriving from above.
    axis : int, optional
        The axis the softmax ran along (default: the last).

    Returns
    -------
    dZ : ndarray, shape P.shape
        ``dL/dZ = P * (dP - sum(dP * P, axis))``: the vector-Jacobian product with
        the softmax Jacobian of every slice, which is never built. A new array in
        the promoted floating dtype of ``P`` and ``dP``.

    Raises
    ------
    TypeError
        If ``P`` or ``dP`` is not a real numeric array, or ``axis`` not an integer.
    ValueError
        If ``P`` is 0-d, the shapes of ``P`` and ``dP`` differ (no broadcasting),
        ``axis`` is out of range, or the axis is empty.

    Notes
    -----
    For one slice :math:`p` with incoming gradient :math:`g`, the Jacobian is
    :math:`J = \\operatorname{diag}(p) - p p^\\top` (symmetric), and
    :math:`dz = J^\\top g = p \\odot g - p \\langle p, g \\rangle`. This costs
    about :math:`4C` operations per slice instead of the :math:`2C^2` of the
    product with :math:`J`.

    Examples
    --------
    >>> P = softmax(np.array([0.0, np.log(3.0)]))
    >>> softmax_backward(P, np.array([1.0, 0.0]))     # the gradient of p_0
    array([ 0.1875, -0.1875])
    >>> dz = softmax_backward(P, np.array([5.0, 5.0]))  # a constant gradient: nothing
    >>> bool(np.abs(dz).max() < 1e-12)                   # zero up to rounding
    True
    """
    P, axis = _check_logits(P, "P", axis)
    dP = as_real_array(dP, "dP")
    if dP.shape != P.shape:
        raise ValueError(f"dP must have the shape of P; got dP of shape {shape_str(dP.shape)} and P of shape {shape_str(P.shape)}")
    dtype = float_dtype(P, dP)
    P, dP = P.astype(dtype, copy=False), dP.astype(dtype, copy=False)
    dZ = np.empty(P.shape, dtype=dtype)
    if axis == P.ndim - 1:
        C = P.shape[-1]
        P2, dP2, dZ2 = np.ascontiguousarray(P).reshape(-1, C), np.ascontiguousarray(dP).reshape(-1, C), dZ.reshape(-1, C)
        for rows in _row_blocks(*P2.shape):
            _softmax_backward_into(P2[rows], dP2[rows], dZ2[rows], -1)
    else:
        _softmax_backward_into(P, dP, dZ, axis)
    return dZ


def _check_cross_entropy(Z, y, reduction):
    Z = as_real_array(Z, "Z")
    if Z.ndim == 0:
        raise ValueError("Z must have shape (..., C) with the classes along the last axis; got a 0-d array")
    C = Z.shape[-1]
    if C == 0:
        raise ValueError(f"Z of shape {shape_str(Z.shape)} has no classes (its last axis is empty)")
    if not isinstance(reduction, str) or reduction not in ("mean", "sum"):
        raise ValueError(f'reduction must be "mean" or "sum"; got {reduction!r:.40}')
    try:
        y = np.asarray(y)
    except Exception as exc:
        raise TypeError(f"y must be an array of integer labels; could not convert it: {exc}") from None
    if y.dtype.kind not in "iu":
        what = {"b": "booleans", "f": "floating-point numbers", "c": "complex numbers"}.get(y.dtype.kind, f"dtype {y.dtype}")
        raise TypeError(f"y must hold integer class labels; got {what} (dtype {y.dtype}) of shape {shape_str(y.shape)}")
    if y.shape != Z.shape[:-1]:
        raise ValueError(
            f"y must have shape Z.shape[:-1] = {shape_str(Z.shape[:-1])} (one label per row of Z); "
            f"got y of shape {shape_str(y.shape)} and Z of shape {shape_str(Z.shape)}"
        )
    if y.size == 0:
        raise ValueError(f"Z of shape {shape_str(Z.shape)} holds no examples")
    bad = np.flatnonzero((y < 0) | (y >= C))
    if bad.size:
        where = np.unravel_index(bad[0], y.shape)
        raise ValueError(
            f"label {int(y.flat[bad[0]])} at index {tuple(int(i) for i in where)} of y is out of range "
            f"for C = {C} classes (labels must be in [0, {C}))"
        )
    dtype = float_dtype(Z)
    return np.ascontiguousarray(Z, dtype=dtype).reshape(-1, C), y.reshape(-1).astype(np.intp), dtype


def cross_entropy(Z, y, *, reduction="mean"):
    """The cross-entropy loss of logits ``Z`` with integer labels ``y``.

    Parameters
    ----------
    Z : array_like, shape (..., C)
        Logits, the classes along the last axis (a single example: shape (C,)).
    y : array_like of int, shape Z.shape[:-1]
        One class label in ``[0, C)`` per row of ``Z`` (a 0-d label for a single
        example).
    reduction : {"mean", "sum"}, keyword-only
        Average over the ``N = y.size`` examples (default) or add them up.

    Returns
    -------
    float
        ``sum_r (logsumexp(Z_r) - Z_r[y_r])``, divided by ``N`` for ``"mean"``;
        equal to ``torch.nn.functional.cross_entropy(Z.reshape(-1, C),
        y.reshape(-1), reduction=reduction)``. Computed in the floating dtype of
        ``Z``, added up over blocks in float64.

    Raises
    ------
    TypeError
        If ``Z`` is not a real numeric array, or ``y`` does not hold integers
        (floating-point labels such as ``2.0`` and booleans are refused).
    ValueError
        If ``Z`` is 0-d or has no classes, ``y.shape != Z.shape[:-1]`` (both
        shapes are named), there are no examples, a label is outside ``[0, C)``
        (the label and ``C`` are named), or ``reduction`` is unknown.

    Notes
    -----
    With :math:`P = \\operatorname{softmax}(Z)` along the classes, the loss of
    one example is :math:`-\\log P_{r, y_r} = \\log \\sum_c e^{Z_{rc}} - Z_{r, y_r}`.
    The second form is the one computed: it never takes the logarithm of a
    probability that has rounded to zero.

    Examples
    --------
    >>> Z = np.array([[0.0, 0.0], [0.0, np.log(3.0)]])
    >>> round(cross_entropy(Z, np.array([0, 1])), 6)   # (log 2 + log(4/3)) / 2
    0.490415
    >>> cross_entropy(np.array([1e3, 0.0]), 1)         # log(1 + e^1000) - 0, no overflow
    1000.0
    >>> cross_entropy(Z, np.array([0.0, 1.0]))
    Traceback (most recent call last):
    ...
    TypeError: y must hold integer class labels; got floating-point numbers (dtype float64) of shape (2,)
    """
    Z2, y, _ = _check_cross_entropy(Z, y, reduction)
    total = 0.0
    scratch = np.empty((max(1, _BLOCK // Z2.shape[1]), Z2.shape[1]), dtype=Z2.dtype)
    for rows in _row_blocks(*Z2.shape):
        z = Z2[rows]
        e = scratch[: z.shape[0]]
        m = z.max(axis=1, keepdims=True)
        np.subtract(z, m, out=e)
        np.exp(e, out=e)
        lse = np.log(e.sum(axis=1)) + m[:, 0]
        total += float(np.sum(lse, dtype=np.float64)) - float(np.sum(z[np.arange(z.shape[0]), y[rows]], dtype=np.float64))
    return total / y.size if reduction == "mean" else total


def cross_entropy_backward(Z, y, *, reduction="mean"):
    """The gradient of :func:`cross_entropy` with respect to the logits.

    Parameters
    ----------
    Z : array_like, shape (..., C)
        Logits, the classes along the last axis.
    y : array_like of int, shape Z.shape[:-1]
        Class labels in ``[0, C)``.
    reduction : {"mean", "sum"}, keyword-only
        The reduction of the loss (default ``"mean"``).

    Returns
    -------
    dZ : ndarray, shape Z.shape
        ``(softmax(Z) - onehot(y)) / N`` for ``"mean"`` (``N = y.size``), without
        the ``1 / N`` for ``"sum"``. A new array in the floating dtype of ``Z``.

    Raises
    ------
    TypeError, ValueError
        As :func:`cross_entropy`, for the same inputs.

    Notes
    -----
    Softmax and logarithm are differentiated together: the Jacobian of the
    softmax meets the :math:`-1/P_{r,y_r}` of the logarithm and the product
    simplifies to :math:`P_{rc} - \\delta_{c, y_r}`, which is computed without
    ever dividing by a probability.

    Examples
    --------
    >>> Z = np.array([[0.0, 0.0], [0.0, np.log(3.0)]])
    >>> cross_entropy_backward(Z, np.array([0, 1]))
    array([[-0.25 ,  0.25 ],
           [ 0.125, -0.125]])
    >>> cross_entropy_backward(Z, np.array([0, 1]), reduction="sum")
    array([[-0.5 ,  0.5 ],
           [ 0.25, -0.25]])
    """
    Z2, y, dtype = _check_cross_entropy(Z, y, reduction)
    scale = 1.0 / y.size if reduction == "mean" else 1.0
    dZ = np.empty(Z2.shape, dtype=dtype)
    for rows in _row_blocks(*Z2.shape):
        z, e = Z2[rows], dZ[rows]
        m = z.max(axis=1, keepdims=True)
        np.subtract(z, m, out=e)
        np.exp(e, out=e)
        s = e.sum(axis=1, keepdims=True)
        np.divide(scale, s, out=s)
        e *= s
        e[np.arange(e.shape[0]), y[rows]] -= dtype.type(scale)
    return dZ.reshape(np.shape(Z))
