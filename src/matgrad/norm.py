"""LayerNorm and BatchNorm, forward and backward: one normalisation over two axes (chapter 9).

Both layers standardise :math:`X` and then scale and shift every feature:

.. math::

    \\hat X = (X - \\mu) / \\sigma, \\qquad Y = \\hat X \\odot \\gamma + \\beta,
    \\qquad \\sigma = \\sqrt{\\operatorname{var}(X) + \\epsilon},

with the biased variance (divided by the number of values averaged). LayerNorm
averages over the features of one example (the last axis, as
``torch.nn.functional.layer_norm`` with ``normalized_shape = X.shape[-1:]``);
BatchNorm averages one feature over the examples of a batch (axis 0 of an
``(n, d)`` array, as ``torch.nn.functional.batch_norm(..., training=True)``). The
backward pass of either is, over the axis that was averaged,

.. math::

    dX = \\frac{1}{\\sigma}\\left(d\\hat X - \\operatorname{mean}(d\\hat X)
    - \\hat X \\odot \\operatorname{mean}(d\\hat X \\odot \\hat X)\\right),
    \\qquad d\\hat X = dY \\odot \\gamma,

and :math:`d\\gamma`, :math:`d\\beta` are sums over every axis but the last (the
scale and shift are broadcast over the examples, as a bias is).

A layer is a pair: ``*_forward(X, gamma, beta) -> (Y, cache)`` and
``*_backward(dY, cache) -> (dX, dgamma, dbeta)``. The cache holds private read-only
copies of :math:`\\hat X`, :math:`1/\\sigma` and :math:`\\gamma`, so a backward pass can
be repeated and gives the same result. Everything is computed in the floating dtype of
the inputs (float32 stays float32). LayerNorm works on blocks of rows that fit in the
processor's cache (see ``benchmarks/README.md``).
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from ._validate import as_real_array, float_dtype, shape_str

__all__ = ["batch_norm_backward", "batch_norm_forward", "layer_norm_backward", "layer_norm_forward"]

#: number of entries in one block of rows (64 Ki entries: 256 KiB of float32)
_BLOCK = 2**16


def _row_blocks(n_rows: int, n_cols: int):
    step = max(1, _BLOCK // max(1, n_cols))
    for start in range(0, n_rows, step):
        yield slice(start, min(n_rows, start + step))


def _rowdot(A, B):
    """``sum(A * B, axis=1, keepdims=True)`` for 2-D ``A``, ``B``, as a stack of (1, d) @ (d, 1) products."""
    return (A[:, None, :] @ B[:, :, None])[:, :, 0]


class _NormCache:
    """What a backward pass needs, in private read-only arrays (opaque to users)."""

    __slots__ = ("kind", "dtype", "shape", "Xhat", "rstd", "gamma")

    def __init__(self, kind, dtype, shape, Xhat, rstd, gamma):
        for value in (Xhat, rstd, gamma):
            value.flags.writeable = False
        self.kind, self.dtype, self.shape = kind, dtype, shape
        self.Xhat, self.rstd, self.gamma = Xhat, rstd, gamma

    def __repr__(self):
        return f"<matgrad {self.kind} norm cache: X of shape {shape_str(self.shape)}, dtype={self.dtype.name}>"


def _check_eps(eps) -> float:
    if isinstance(eps, (bool, np.bool_)) or not isinstance(eps, numbers.Real):
        raise TypeError(f"eps must be a positive real number; got {type(eps).__name__}: {eps!r:.40}")
    if not (math.isfinite(eps) and eps > 0):
        raise ValueError(f"eps must be positive and finite; got {eps!r}")
    return float(eps)


def _check_inputs(X, gamma, beta, eps, what):
    X = as_real_array(X, "X")
    gamma = as_real_array(gamma, "gamma")
    beta = as_real_array(beta, "beta")
    eps = _check_eps(eps)
    if what == "layer":
        if X.ndim == 0:
            raise ValueError("X must have shape (..., d), the features along the last axis; got a 0-d array")
    elif X.ndim != 2:
        raise ValueError(f"X must be 2-D of shape (n, d), one example per row; got X of shape {shape_str(X.shape)}")
    d = X.shape[-1]
    if d == 0:
        raise ValueError(f"X of shape {shape_str(X.shape)} has no features (its last axis is empty)")
    if what == "batch" and X.shape[0] < 2:
        raise ValueError(
            f"batch_norm_forward needs at least 2 examples to estimate a mean and a variance; got X of shape "
            f"{shape_str(X.shape)} (with n = 1 every normalised value would be 0)"
        )
    for name, value in (("gamma", gamma), ("beta", beta)):
        if value.shape != (d,):
            raise ValueError(
                f"{name} must have shape (d,) = {shape_str((d,))} (d = X.shape[-1], no broadcasting); "
                f"got {name} of shape {shape_str(value.shape)} for X of shape {shape_str(X.shape)}"
            )
    dtype = float_dtype(X, gamma, beta)
    return X.astype(dtype, copy=False), gamma.astype(dtype, copy=True), beta.astype(dtype, copy=False), eps, dtype


def _check_backward(dY, cache, kind):
    maker = {"layer": "layer_norm_forward", "batch": "batch_norm_forward"}
    caller = {"layer": "layer_norm_backward", "batch": "batch_norm_backward"}[kind]
    if not isinstance(cache, _NormCache) or cache.kind != kind:
        got = f"the cache of {maker[cache.kind]}" if isinstance(cache, _NormCache) else type(cache).__name__
        raise TypeError(f"{caller} needs the cache returned by {maker[kind]}; got {got}")
    dY = as_real_array(dY, "dY")
    if dY.shape != cache.shape:
        raise ValueError(
            f"dY must have the shape of X (and Y); got dY of shape {shape_str(dY.shape)} for X of shape {shape_str(cache.shape)}"
        )
    dtype = float_dtype(dY, np.empty(0, cache.dtype))
    return dY.astype(dtype, copy=False), dtype


def layer_norm_forward(X, gamma, beta, *, eps=1e-5):
    """LayerNorm over the last axis: normalise each example's features, then scale and shift.

    Parameters
    ----------
    X : array_like, shape (..., d)
        Input, the ``d`` features along the last axis; any leading shape (a single
        example of shape ``(d,)`` too).
    gamma, beta : array_like, shape (d,)
        Scale and shift of every feature; exactly ``(d,)`` (a ``(1, d)`` array that
        would broadcast is refused).
    eps : float, keyword-only
        Added to the variance before the square root (default ``1e-5``, PyTorch's).

    Returns
    -------
    Y : ndarray, shape X.shape
        ``(X - mean) / sqrt(var + eps) * gamma + beta``, mean and biased variance
        over the last axis; equal to ``torch.nn.functional.layer_norm(X, X.shape[-1:],
        gamma, beta, eps)``. In the promoted floating dtype of the inputs.
    cache : object
        Private read-only copies of what :func:`layer_norm_backward` needs.

    Raises
    ------
    TypeError
        If an argument is not a real numeric array, or ``eps`` not a real number.
    ValueError
        If ``X`` is 0-d or has an empty last axis, ``gamma`` or ``beta`` is not of
        shape ``(d,)`` (the shapes are named), or ``eps`` is not positive and finite.

    Examples
    --------
    >>> Y, cache = layer_norm_forward(np.array([[1.0, 2.0, 3.0]]), np.ones(3), np.zeros(3), eps=1e-12)
    >>> np.round(Y, 4)                                # (x - 2) / sqrt(2/3)
    array([[-1.2247,  0.    ,  1.2247]])
    >>> layer_norm_forward(np.ones((2, 3)), np.ones((1, 3)), np.zeros(3))
    Traceback (most recent call last):
    ...
    ValueError: gamma must have shape (d,) = (3,) (d = X.shape[-1], no broadcasting); got gamma of shape (1, 3) for X of shape (2, 3)
    """
    X, gamma, beta, eps, dtype = _check_inputs(X, gamma, beta, eps, "layer")
    d = X.shape[-1]
    X2 = np.ascontiguousarray(X).reshape(-1, d)
    Xhat = np.empty(X2.shape, dtype=dtype)
    rstd = np.empty((X2.shape[0], 1), dtype=dtype)
    Y = np.empty(X2.shape, dtype=dtype)
    for rows in _row_blocks(*X2.shape):
        x, xh, y, r = X2[rows], Xhat[rows], Y[rows], rstd[rows]
        np.subtract(x, x.mean(axis=1, keepdims=True), out=xh)
        np.divide(_rowdot(xh, xh), d, out=r)  # the biased variance
        r += dtype.type(eps)
        np.sqrt(r, out=r)
        np.reciprocal(r, out=r)
        xh *= r
        np.multiply(xh, gamma, out=y)
        y += beta
    cache = _NormCache("layer", dtype, X.shape, Xhat, rstd, gamma)
    return Y.reshape(X.shape), cache


def layer_norm_backward(dY, cache):
    """Gradients of LayerNorm, given the gradient ``dY`` of the loss with respect to its output.

    Parameters
    ----------
    dY : array_like, shape X.shape
        ``dL/dY`` arriving from above.
    cache : object
        The cache returned by :func:`layer_norm_forward` (read, never changed).

    Returns
    -------
    dX : ndarray, shape X.shape
        ``(1/sigma) * (dXhat - mean(dXhat) - Xhat * mean(dXhat * Xhat))`` with
        ``dXhat = dY * gamma``, the means over the last axis.
    dgamma : ndarray, shape (d,)
        ``sum(dY * Xhat)`` over every axis but the last.
    dbeta : ndarray, shape (d,)
        ``sum(dY)`` over every axis but the last.
        All in the promoted floating dtype of ``dY`` and the cache.

    Raises
    ------
    TypeError
        If ``cache`` did not come from :func:`layer_norm_forward`, or ``dY`` is not
        a real numeric array.
    ValueError
        If ``dY`` does not have the shape of ``X`` (both shapes are named).

    Notes
    -----
    Per row, :math:`\\operatorname{mean}(d\\hat X) = dY\\,\\gamma / d` and
    :math:`\\operatorname{mean}(d\\hat X \\odot \\hat X) = (dY \\odot \\hat X)\\,\\gamma / d`
    are matrix-vector products, so no second copy of :math:`d\\hat X` is needed.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X = rng.standard_normal((4, 3))
    >>> Y, cache = layer_norm_forward(X, np.ones(3), np.zeros(3))
    >>> dX, dgamma, dbeta = layer_norm_backward(np.ones((4, 3)), cache)   # loss = sum(Y)
    >>> bool(np.allclose(dX, 0.0)), dbeta                # sum(Y) = sum(beta) for any X
    (True, array([4., 4., 4.]))
    """
    dY, dtype = _check_backward(dY, cache, "layer")
    d = cache.shape[-1]
    dY2 = np.ascontiguousarray(dY).reshape(-1, d)
    gamma = cache.gamma.astype(dtype, copy=False)
    dX = np.empty(dY2.shape, dtype=dtype)
    dgamma = np.zeros(d, dtype=dtype)
    dbeta = np.zeros(d, dtype=dtype)
    for rows in _row_blocks(*dY2.shape):
        g, xh, r, out = dY2[rows], cache.Xhat[rows], cache.rstd[rows], dX[rows]
        dbeta += g.sum(axis=0)
        gx = g * xh
        dgamma += gx.sum(axis=0)
        np.multiply(g, gamma, out=out)  # dXhat
        a = _rowdot(out, xh) / d  # mean(dXhat * Xhat) of every row
        b = (g @ gamma)[:, None] / d  # mean(dXhat) of every row
        out -= b
        np.multiply(xh, a, out=gx)
        out -= gx
        out *= r
    return dX.reshape(cache.shape), dgamma, dbeta


def batch_norm_forward(X, gamma, beta, *, eps=1e-5):
    """BatchNorm in training mode: normalise each feature over the examples of the batch.

    Parameters
    ----------
    X : array_like, shape (n, d)
        A batch of ``n >= 2`` examples, one per row.
    gamma, beta : array_like, shape (d,)
        Scale and shift of every feature; exactly ``(d,)``.
    eps : float, keyword-only
        Added to the variance before the square root (default ``1e-5``).

    Returns
    -------
    Y : ndarray, shape (n, d)
        ``(X - mean) / sqrt(var + eps) * gamma + beta`` with the mean and the
        biased variance of every column (over axis 0); equal to
        ``torch.nn.functional.batch_norm(X, None, None, gamma, beta,
        training=True, eps=eps)``. In the promoted floating dtype of the inputs.
    cache : object
        Private read-only copies of what :func:`batch_norm_backward` needs.

    Raises
    ------
    TypeError
        If an argument is not a real numeric array, or ``eps`` not a real number.
    ValueError
        If ``X`` is not 2-D, has no columns, or has a single row (``n = 1``: there
        is no batch to take statistics over); if ``gamma`` or ``beta`` is not of
        shape ``(d,)``; or if ``eps`` is not positive and finite.

    Examples
    --------
    >>> Y, cache = batch_norm_forward(np.array([[1.0, 10.0], [3.0, 10.0]]), np.ones(2), np.zeros(2))
    >>> np.round(Y, 4)                               # the second column is constant
    array([[-1.,  0.],
           [ 1.,  0.]])
    >>> batch_norm_forward(np.ones((1, 2)), np.ones(2), np.zeros(2))
    Traceback (most recent call last):
    ...
    ValueError: batch_norm_forward needs at least 2 examples to estimate a mean and a variance; got X of shape (1, 2) (with n = 1 every normalised value would be 0)
    """
    X, gamma, beta, eps, dtype = _check_inputs(X, gamma, beta, eps, "batch")
    Xhat = X - X.mean(axis=0)
    rstd = 1.0 / np.sqrt((Xhat * Xhat).mean(axis=0) + dtype.type(eps))
    Xhat *= rstd
    Y = Xhat * gamma + beta
    return Y, _NormCache("batch", dtype, X.shape, Xhat, rstd, gamma)


def batch_norm_backward(dY, cache):
    """Gradients of BatchNorm (training mode), given ``dY = dL/dY``.

    Parameters
    ----------
    dY : array_like, shape (n, d)
        ``dL/dY`` arriving from above.
    cache : object
        The cache returned by :func:`batch_norm_forward` (read, never changed).

    Returns
    -------
    dX : ndarray, shape (n, d)
        ``(1/sigma) * (dXhat - mean(dXhat) - Xhat * mean(dXhat * Xhat))`` with
        ``dXhat = dY * gamma``, the means over the batch (axis 0).
    dgamma : ndarray, shape (d,)
        ``sum(dY * Xhat)`` over the batch.
    dbeta : ndarray, shape (d,)
        ``sum(dY)`` over the batch.

    Raises
    ------
    TypeError
        If ``cache`` did not come from :func:`batch_norm_forward`, or ``dY`` is not
        a real numeric array.
    ValueError
        If ``dY`` does not have the shape of ``X``.

    Notes
    -----
    Since :math:`\\gamma` is constant along the batch,
    :math:`\\operatorname{mean}(d\\hat X) = \\gamma \\odot d\\beta / n` and
    :math:`\\operatorname{mean}(d\\hat X \\odot \\hat X) = \\gamma \\odot d\\gamma / n`:
    the two parameter gradients are the two means the input gradient needs.

    Examples
    --------
    >>> X = np.array([[1.0, 0.0], [2.0, 1.0], [4.0, 5.0]])
    >>> Y, cache = batch_norm_forward(X, np.ones(2), np.zeros(2))
    >>> dX, dgamma, dbeta = batch_norm_backward(np.ones((3, 2)), cache)   # loss = sum(Y)
    >>> bool(np.allclose(dX, 0.0)), dbeta
    (True, array([3., 3.]))
    """
    dY, dtype = _check_backward(dY, cache, "batch")
    n = cache.shape[0]
    dbeta = dY.sum(axis=0)
    dgamma = (dY * cache.Xhat).sum(axis=0)
    dX = dY - dbeta / n
    dX -= cache.Xhat * (dgamma / n)
    dX *= cache.gamma * cache.rstd
    return dX.astype(dtype, copy=False), dgamma.astype(dtype, copy=False), dbeta.astype(dtype, copy=False)
