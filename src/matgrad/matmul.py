"""Backward rules of the matrix product, with NumPy's ``matmul`` semantics.

For ``C = A @ B`` and a scalar loss ``L`` whose gradient with respect to ``C`` is
``dC``, the chain rule gives ``dA = dC @ B^T`` and ``dB = A^T @ dC``. The functions
here apply that rule to everything ``np.matmul`` accepts (vectors on either side,
stacks of matrices with broadcast batch axes) and to PyTorch's ``nn.Linear``
layer, ``Y = X W^T + b``. Every gradient has exactly the shape of its variable: a
batch axis that the forward product broadcast is summed back by one helper,
``_unbroadcast``.
"""

from __future__ import annotations

import numpy as np

from ._validate import as_real_array, float_dtype, shape_str

__all__ = ["linear_backward", "matmul_backward"]


def _unbroadcast(grad: np.ndarray, shape: tuple) -> np.ndarray:
    """Sum ``grad`` over the axes that broadcasting added or stretched, to get ``shape``.

    The adjoint of broadcasting ``x`` of ``shape`` to ``grad.shape``: leading axes
    that ``x`` did not have are summed away, and axes where ``x`` had size 1 are
    summed with ``keepdims``. Returns ``grad`` itself when nothing is to be summed.
    """
    shape = tuple(shape)
    extra = grad.ndim - len(shape)
    if extra > 0:
        grad = grad.sum(axis=tuple(range(extra)))
    stretched = tuple(i for i, (g, s) in enumerate(zip(grad.shape, shape)) if s == 1 and g != 1)
    if stretched:
        grad = grad.sum(axis=stretched, keepdims=True)
    # an axis of size 0 broadcast to size 0 needs no sum; reshape covers the rest
    return grad.reshape(shape)


def _matmul_shape(A: np.ndarray, B: np.ndarray) -> tuple:
    """Shape of ``np.matmul(A, B)``, or a ValueError that names both shapes."""
    for arr, name in ((A, "A"), (B, "B")):
        if arr.ndim == 0:
            raise ValueError(
                f"{name} must have at least one axis (np.matmul does not accept scalars); got a 0-d array "
                f"(A of shape {shape_str(A.shape)}, B of shape {shape_str(B.shape)})"
            )
    k_a = A.shape[-1]
    k_b = B.shape[0] if B.ndim == 1 else B.shape[-2]
    if k_a != k_b:
        b_axis = "its only axis" if B.ndim == 1 else "its second-to-last axis"
        raise ValueError(
            f"inner sizes of A @ B disagree: A of shape {shape_str(A.shape)} has {k_a} columns (last axis) "
            f"but B of shape {shape_str(B.shape)} has {k_b} rows ({b_axis})"
        )
    batch_a = A.shape[:-2]
    batch_b = B.shape[:-2]
    try:
        batch = np.broadcast_shapes(batch_a, batch_b)
    except ValueError:
        raise ValueError(
            f"batch axes of A @ B do not broadcast: A of shape {shape_str(A.shape)} has batch shape "
            f"{shape_str(batch_a)}, B of shape {shape_str(B.shape)} has batch shape {shape_str(batch_b)}"
        ) from None
    rows = () if A.ndim == 1 else (A.shape[-2],)
    cols = () if B.ndim == 1 else (B.shape[-1],)
    return tuple(batch) + rows + cols


def matmul_backward(A, B, dC):
    """Gradients of a scalar loss with respect to both factors of ``C = A @ B``.

    Parameters
    ----------
    A : array_like, shape (..., n, m) or (m,)
        Left factor, real numeric. A 1-D ``A`` is a row vector, as in ``np.matmul``.
    B : array_like, shape (..., m, d) or (m,)
        Right factor, real numeric. A 1-D ``B`` is a column vector. The batch axes
        ``...`` of ``A`` and ``B`` broadcast against each other.
    dC : array_like, shape of ``A @ B``
        The gradient ``dL/dC`` arriving from above. Its shape must be exactly that
        of ``np.matmul(A, B)``; it is never broadcast.

    Returns
    -------
    dA : ndarray, shape A.shape
        ``dL/dA``.
    dB : ndarray, shape B.shape
        ``dL/dB``.
        Both are new arrays in the floating dtype NumPy gives ``A``, ``B`` and ``dC``
        together (integers become float64; float32 stays float32).

    Raises
    ------
    TypeError
        If ``A``, ``B`` or ``dC`` is not a real numeric array (booleans, complex
        numbers, strings and objects are refused).
    ValueError
        If ``A`` or ``B`` is 0-d, their inner sizes differ, their batch axes do not
        broadcast, or ``dC`` does not have the shape of ``A @ B`` (the message names
        the shapes of ``A``, ``B`` and ``dC`` and the shape ``dC`` should have).

    Notes
    -----
    For 2-D factors, :math:`dA = dC\\,B^\\top` and :math:`dB = A^\\top dC`. A 1-D
    factor is promoted to a matrix (a row for ``A``, a column for ``B``), the rule is
    applied, and the added axis is removed again. For stacks, the rule is applied to
    every matrix of the broadcast stack, and each gradient is then summed over the
    batch axes that broadcasting added to or stretched in its factor. When ``B`` is
    one matrix shared by a stack of ``A`` (its batch axes, if any, all of size 1),
    ``dB`` is computed as one product over all the rows of the stack,
    ``A.reshape(-1, m).T @ dC.reshape(-1, d)``, never as a stack of products
    followed by a sum; likewise ``dA`` for one ``A`` shared by a stack of ``B``.

    Examples
    --------
    >>> A = np.array([[1.0, 2.0], [3.0, 4.0]])
    >>> B = np.array([[1.0, 0.0, -1.0], [2.0, 1.0, 0.0]])
    >>> dC = np.ones((2, 3))
    >>> dA, dB = matmul_backward(A, B, dC)
    >>> dA                                   # dC @ B.T
    array([[0., 3.],
           [0., 3.]])
    >>> dB                                   # A.T @ dC
    array([[4., 4., 4.],
           [6., 6., 6.]])

    A stack against one shared matrix: the gradient of the shared matrix is summed
    over the stack, and every gradient keeps the shape of its variable.

    >>> A = np.ones((5, 2, 3))
    >>> dA, dB = matmul_backward(A, np.ones((3, 4)), np.ones((5, 2, 4)))
    >>> dA.shape, dB.shape, float(dB[0, 0])
    ((5, 2, 3), (3, 4), 10.0)

    Vectors: ``x @ y`` is a scalar, so ``dC`` is 0-d.

    >>> matmul_backward(np.array([1.0, 2.0]), np.array([3.0, 4.0]), np.array(2.0))
    (array([6., 8.]), array([2., 4.]))
    >>> matmul_backward(np.ones((2, 3)), np.ones((3, 4)), np.ones((4, 2)))
    Traceback (most recent call last):
    ...
    ValueError: dC must have the shape of A @ B, (2, 4), for A of shape (2, 3) and B of shape (3, 4); got dC of shape (4, 2) (a gradient has exactly the shape of the output; it is never broadcast)
    """
    A = as_real_array(A, "A")
    B = as_real_array(B, "B")
    dC = as_real_array(dC, "dC")
    c_shape = _matmul_shape(A, B)
    if dC.shape != c_shape:
        raise ValueError(
            f"dC must have the shape of A @ B, {shape_str(c_shape)}, for A of shape {shape_str(A.shape)} and "
            f"B of shape {shape_str(B.shape)}; got dC of shape {shape_str(dC.shape)} (a gradient has exactly "
            f"the shape of the output; it is never broadcast)"
        )
    dtype = float_dtype(A, B, dC)
    # astype(copy=False) copies only when the dtype changes; views below never write
    a = A.astype(dtype, copy=False)
    b = B.astype(dtype, copy=False)
    g = dC.astype(dtype, copy=False)
    # promote vectors to matrices: A (m,) -> (1, m), B (m,) -> (m, 1); dC gets the axes back
    if B.ndim == 1:
        b = b[:, None]
        g = g[..., None]
    if A.ndim == 1:
        a = a[None, :]
        g = g[..., None, :]
    n, m = a.shape[-2:]
    d = b.shape[-1]
    batch = g.shape[:-2]
    size = int(np.prod(batch))  # number of matrices in the broadcast stack (explicit: empty axes reshape too)

    if np.prod(b.shape[:-2]) == 1:
        # B is one matrix shared by the whole stack (also: the plain 2-D case). Every row of
        # every matrix of A meets the same B, so both products run on all rows at once.
        g_rows = g.reshape(size * n, d)
        dA = _unbroadcast((g_rows @ b.reshape(m, d).T).reshape(batch + (n, m)), a.shape)
        dB = (a.reshape(size * n, m).T @ g_rows).reshape(b.shape)
    elif np.prod(a.shape[:-2]) == 1:
        # one A shared by a stack of B: contract dC and B over the stack and d in one product
        dA = np.tensordot(g.reshape(size, n, d), b.reshape(size, m, d), axes=([0, 2], [0, 2])).reshape(a.shape)
        dB = _unbroadcast(a.reshape(n, m).T @ g, b.shape)
    else:
        dA = _unbroadcast(g @ np.swapaxes(b, -1, -2), a.shape)
        dB = _unbroadcast(np.swapaxes(a, -1, -2) @ g, b.shape)

    if A.ndim == 1:
        dA = dA.reshape(A.shape)
    if B.ndim == 1:
        dB = dB.reshape(B.shape)
    return dA, dB


def linear_backward(X, W, b, dY):
    """Gradients of a scalar loss through PyTorch's linear layer ``Y = X @ W.T + b``.

    Parameters
    ----------
    X : array_like, shape (..., in_features)
        Input; any number of leading batch axes (also none: a single example of
        shape ``(in_features,)``).
    W : array_like, shape (out_features, in_features)
        Weight, stored as ``torch.nn.Linear`` stores it: one row per output.
    b : array_like of shape (out_features,), or None
        Bias, added to every example; ``None`` for a layer without bias.
    dY : array_like, shape (..., out_features)
        The gradient ``dL/dY`` arriving from above; its shape must be exactly
        ``X.shape[:-1] + (out_features,)``.

    Returns
    -------
    dX : ndarray, shape X.shape
        ``dL/dX = dY @ W``.
    dW : ndarray, shape (out_features, in_features)
        ``dL/dW = dY^T X``, summed over every batch axis.
    db : ndarray of shape (out_features,), or None
        ``dL/db``: ``dY`` summed over every batch axis; ``None`` when ``b`` is.
        All are new arrays in a floating dtype (integers become float64; float32
        stays float32).

    Raises
    ------
    TypeError
        If ``X``, ``W``, ``b`` (when given) or ``dY`` is not a real numeric array.
    ValueError
        If ``X`` is 0-d, ``W`` is not 2-D, the last axis of ``X`` is not
        ``W.shape[1]`` (e.g. a weight stored ``(in, out)`` by mistake), ``b`` is not
        of shape ``(W.shape[0],)``, or ``dY`` is not of shape
        ``X.shape[:-1] + (W.shape[0],)``. The message says which shapes disagree.

    Notes
    -----
    With the batch axes flattened into rows, :math:`X` of shape ``(N, in)`` and
    :math:`dY` of shape ``(N, out)``: :math:`dX = dY\\,W`, :math:`dW = dY^\\top X`
    and :math:`db = \\sum_r dY_{r,:}`. The bias is broadcast over the batch in the
    forward pass, so its gradient is the sum over the batch.

    Examples
    --------
    >>> X = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])   # 2 examples, 3 features in
    >>> W = np.array([[1.0, 0.0, -1.0], [0.5, 0.5, 0.5]])  # 2 features out
    >>> dY = np.array([[1.0, 0.0], [0.0, 2.0]])
    >>> dX, dW, db = linear_backward(X, W, np.zeros(2), dY)
    >>> dX
    array([[ 1.,  0., -1.],
           [ 1.,  1.,  1.]])
    >>> dW
    array([[ 1.,  2.,  3.],
           [ 8., 10., 12.]])
    >>> db
    array([1., 2.])
    >>> linear_backward(X, W.T, None, dY)
    Traceback (most recent call last):
    ...
    ValueError: X has 3 input features (last axis of X of shape (2, 3)) but W of shape (3, 2) has 2 (W.shape[1]); W is stored (out_features, in_features) as in torch.nn.Linear
    """
    X = as_real_array(X, "X")
    W = as_real_array(W, "W")
    dY = as_real_array(dY, "dY")
    if b is not None:
        b = as_real_array(b, "b")
    if X.ndim == 0:
        raise ValueError("X must have at least one axis, shape (..., in_features); got a 0-d array")
    if W.ndim != 2:
        raise ValueError(f"W must be 2-D, shape (out_features, in_features); got W of shape {shape_str(W.shape)}")
    out_features, in_features = W.shape
    if X.shape[-1] != in_features:
        raise ValueError(
            f"X has {X.shape[-1]} input features (last axis of X of shape {shape_str(X.shape)}) but W of shape "
            f"{shape_str(W.shape)} has {in_features} (W.shape[1]); W is stored (out_features, in_features) "
            f"as in torch.nn.Linear"
        )
    if b is not None and b.shape != (out_features,):
        raise ValueError(
            f"b must have shape (out_features,) = {shape_str((out_features,))} for W of shape "
            f"{shape_str(W.shape)}; got b of shape {shape_str(b.shape)}"
        )
    y_shape = X.shape[:-1] + (out_features,)
    if dY.shape != y_shape:
        raise ValueError(
            f"dY must have the shape of Y = X @ W.T + b, {shape_str(y_shape)}, for X of shape {shape_str(X.shape)} "
            f"and W of shape {shape_str(W.shape)}; got dY of shape {shape_str(dY.shape)}"
        )
    dtype = float_dtype(X, W, dY) if b is None else float_dtype(X, W, dY, b)
    rows = int(np.prod(X.shape[:-1]))  # explicit, so that empty axes reshape too
    x_rows = X.astype(dtype, copy=False).reshape(rows, in_features)
    g_rows = dY.astype(dtype, copy=False).reshape(rows, out_features)
    w = W.astype(dtype, copy=False)
    dX = (g_rows @ w).reshape(X.shape)
    dW = g_rows.T @ x_rows
    db = None if b is None else g_rows.sum(axis=0)
    return dX, dW, db
