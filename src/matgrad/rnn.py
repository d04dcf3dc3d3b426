"""A vanilla RNN cell and backpropagation through time, in the column convention.

One step of the cell (source note 004's notation; examples are the columns):

.. math::

    u_t = W_c c_{t-1} + W_x x_t + b, \\qquad c_t = \\tanh(u_t),

with ``x_t`` of shape ``(n_x, m)``, ``c_t`` of shape ``(n_c, m)``, ``W_c`` of shape
``(n_c, n_c)``, ``W_x`` of shape ``(n_c, n_x)`` and ``b`` of shape ``(n_c, 1)`` (added
to every column). ``rnn_step_forward`` / ``rnn_step_backward`` do one step;
``rnn_forward`` / ``rnn_backward`` run ``T`` steps and backpropagate through all
of them. The whole-sequence pair is written for speed: the input products
``W_x x_t`` of all steps are one matrix product, and so are ``dW_x``, ``dW_c`` and
``dx_t`` in the backward pass; only what truly depends on the previous step
(``W_c c_{t-1}`` forward, ``W_c^T du_{t+1}`` backward) stays inside the loop.

A cache never shares memory with the caller's arrays: the values the backward pass
needs are copied into it, so changing an argument afterwards cannot change the
gradients. Nothing here clips gradients (clipping is an optimizer's choice, and
it would make a gradient check fail by design).
"""

from __future__ import annotations

import numpy as np

from ._validate import as_real_array, float_dtype, shape_str

__all__ = ["rnn_backward", "rnn_forward", "rnn_step_backward", "rnn_step_forward"]


class _RNNCache:
    """What a backward pass needs, in private read-only arrays (opaque to users)."""

    __slots__ = ("kind", "dtype", "arrays", "sizes")

    def __init__(self, kind, dtype, arrays, sizes):
        for value in arrays.values():
            value.flags.writeable = False
        self.kind = kind
        self.dtype = dtype
        self.arrays = arrays
        self.sizes = sizes

    def __repr__(self):
        sizes = ", ".join(f"{k}={v}" for k, v in self.sizes.items())
        return f"<matgrad RNN {self.kind} cache: {sizes}, dtype={self.dtype.name}>"


def _ndim(arr, name, ndim, symbol):
    if arr.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-D with shape {symbol}; got {name} of shape {shape_str(arr.shape)}")


def _expect(arr, name, expected, symbol, source):
    if arr.shape != tuple(expected):
        raise ValueError(
            f"{name} must have shape {symbol} = {shape_str(expected)} ({source}); "
            f"got {name} of shape {shape_str(arr.shape)}"
        )


def _check_cell(x, c_prev, W_c, W_x, b, x_name, x_symbol, c_name, source):
    """Convert and check the five arguments of a step or a sequence; return arrays and sizes."""
    x = as_real_array(x, x_name)
    c_prev = as_real_array(c_prev, c_name)
    W_c = as_real_array(W_c, "W_c")
    W_x = as_real_array(W_x, "W_x")
    b = as_real_array(b, "b")
    _ndim(x, x_name, len(x_symbol.split(",")), x_symbol)
    _ndim(c_prev, c_name, 2, "(n_c, m)")
    n_x, m = x.shape[-2:]
    n_c = c_prev.shape[0]
    _expect(c_prev, c_name, (n_c, m), "(n_c, m)", source)
    _expect(W_c, "W_c", (n_c, n_c), "(n_c, n_c)", source)
    _expect(W_x, "W_x", (n_c, n_x), "(n_c, n_x)", source)
    _expect(b, "b", (n_c, 1), "(n_c, 1)", source)
    return x, c_prev, W_c, W_x, b, n_x, n_c, m


def _check_cache(cache, kind, caller):
    maker = {"step": "rnn_step_forward", "sequence": "rnn_forward"}
    if not isinstance(cache, _RNNCache) or cache.kind != kind:
        got = f"the cache of {maker[cache.kind]}" if isinstance(cache, _RNNCache) else type(cache).__name__
        raise TypeError(f"{caller} needs the cache returned by {maker[kind]}; got {got}")


def rnn_step_forward(x, c_prev, W_c, W_x, b):
    """One step of the vanilla RNN cell, ``c = tanh(W_c c_prev + W_x x + b)``.

    Parameters
    ----------
    x : array_like, shape (n_x, m)
        Input of this step, one example per column.
    c_prev : array_like, shape (n_c, m)
        State of the previous step.
    W_c : array_like, shape (n_c, n_c)
        Recurrent weights.
    W_x : array_like, shape (n_c, n_x)
        Input weights.
    b : array_like, shape (n_c, 1)
        Bias, added to every column.

    Returns
    -------
    c : ndarray, shape (n_c, m)
        The new state, in the floating dtype of the inputs (NumPy promotion;
        integers give float64, float32 stays float32).
    cache : object
        Private copies of what :func:`rnn_step_backward` needs (``x``, ``c_prev``,
        ``W_c``, ``W_x`` and ``c``); later changes to the arguments do not affect it.

    Raises
    ------
    TypeError
        If an argument is not a real numeric array.
    ValueError
        If an argument has the wrong number of axes or a shape that does not fit
        the sizes read from ``x`` (``n_x``, ``m``) and ``c_prev`` (``n_c``); the
        message names the argument, its shape and the shape expected.

    Notes
    -----
    With :math:`u = W_c c_{prev} + W_x x + b 1^\\top` (the bias broadcast over the
    :math:`m` columns), :math:`c = \\tanh(u)` entry by entry.

    Examples
    --------
    >>> W_c = np.array([[0.5, 0.0], [0.0, 0.5]])
    >>> W_x = np.array([[1.0], [-1.0]])
    >>> b = np.zeros((2, 1))
    >>> x = np.array([[0.0, 1.0, 2.0]])          # n_x = 1, m = 3 examples
    >>> c, cache = rnn_step_forward(x, np.zeros((2, 3)), W_c, W_x, b)
    >>> np.round(c, 4)
    array([[ 0.    ,  0.7616,  0.964 ],
           [ 0.    , -0.7616, -0.964 ]])
    """
    x, c_prev, W_c, W_x, b, n_x, n_c, m = _check_cell(
        x, c_prev, W_c, W_x, b, "x", "(n_x, m)", "c_prev", "n_x and m from x, n_c from c_prev"
    )
    dtype = float_dtype(x, c_prev, W_c, W_x, b)
    x, c_prev, W_c, W_x, b = (np.array(a, dtype=dtype, copy=True) for a in (x, c_prev, W_c, W_x, b))
    u = W_c @ c_prev
    u += W_x @ x
    u += b
    c = np.tanh(u)
    cache = _RNNCache(
        "step",
        dtype,
        {"x": x, "c_prev": c_prev, "W_c": W_c, "W_x": W_x, "c": c.copy()},
        {"n_x": n_x, "n_c": n_c, "m": m},
    )
    return c, cache


def rnn_step_backward(dc, cache):
    """Gradients of one RNN step, given the gradient ``dc`` of the loss with respect to ``c``.

    Parameters
    ----------
    dc : array_like, shape (n_c, m)
        ``dL/dc`` for the state this step produced (its *total* gradient: the
        loss's direct use of ``c`` plus everything arriving from later steps).
    cache : object
        The cache returned by :func:`rnn_step_forward`.

    Returns
    -------
    dict of ndarray
        ``"dx"`` (n_x, m), ``"dc_prev"`` (n_c, m), ``"dW_c"`` (n_c, n_c),
        ``"dW_x"`` (n_c, n_x), ``"db"`` (n_c, 1): each the gradient of the loss
        with the shape of its variable, in the promoted dtype of the cache and
        ``dc``.

    Raises
    ------
    TypeError
        If ``cache`` did not come from :func:`rnn_step_forward`, or ``dc`` is not a
        real numeric array.
    ValueError
        If ``dc`` does not have the shape (n_c, m) of ``c``.

    Notes
    -----
    Since :math:`\\tanh' = 1 - \\tanh^2`, the gradient of the pre-activation is
    :math:`du = dc \\odot (1 - c \\odot c)`, and then

    .. math::

        dW_x = du\\, x^\\top, \\quad dW_c = du\\, c_{prev}^\\top, \\quad
        db = du\\, 1_m, \\quad dx = W_x^\\top du, \\quad dc_{prev} = W_c^\\top du.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> x, c_prev = rng.standard_normal((3, 4)), rng.standard_normal((2, 4))
    >>> W_c, W_x, b = rng.standard_normal((2, 2)), rng.standard_normal((2, 3)), np.zeros((2, 1))
    >>> c, cache = rnn_step_forward(x, c_prev, W_c, W_x, b)
    >>> grads = rnn_step_backward(np.ones_like(c), cache)       # loss = sum of c
    >>> {k: v.shape for k, v in grads.items()}
    {'dx': (3, 4), 'dc_prev': (2, 4), 'dW_c': (2, 2), 'dW_x': (2, 3), 'db': (2, 1)}
    >>> f = lambda W_x: np.sum(rnn_step_forward(x, c_prev, W_c, W_x, b)[0])
    >>> from matgrad import check_gradient
    >>> bool(check_gradient(f, W_x, grads["dW_x"]))
    True
    """
    _check_cache(cache, "step", "rnn_step_backward")
    dc = as_real_array(dc, "dc")
    n_c, m = cache.sizes["n_c"], cache.sizes["m"]
    _ndim(dc, "dc", 2, "(n_c, m)")
    _expect(dc, "dc", (n_c, m), "(n_c, m)", "the shape of c in the cache")
    dtype = float_dtype(np.empty(0, cache.dtype), dc)
    a = {k: v.astype(dtype, copy=False) for k, v in cache.arrays.items()}
    c = a["c"]
    du = dc.astype(dtype, copy=True)
    du *= 1 - c * c
    return {
        "dx": a["W_x"].T @ du,
        "dc_prev": a["W_c"].T @ du,
        "dW_c": du @ a["c_prev"].T,
        "dW_x": du @ a["x"].T,
        "db": du.sum(axis=1, keepdims=True),
    }


def rnn_forward(xs, c0, W_c, W_x, b):
    """Run the RNN cell over ``T`` steps, ``c_t = tanh(W_c c_{t-1} + W_x x_t + b)``.

    Parameters
    ----------
    xs : array_like, shape (T, n_x, m)
        The inputs ``x_1 ... x_T``, each (n_x, m) with one example per column;
        ``T >= 1``.
    c0 : array_like, shape (n_c, m)
        Initial state.
    W_c : array_like, shape (n_c, n_c)
        Recurrent weights, shared by every step.
    W_x : array_like, shape (n_c, n_x)
        Input weights, shared by every step.
    b : array_like, shape (n_c, 1)
        Bias, added to every column at every step.

    Returns
    -------
    cs : ndarray, shape (T, n_c, m)
        The states ``c_1 ... c_T`` (``cs[t - 1]`` is ``c_t``), in the floating
        dtype of the inputs (NumPy promotion; integers give float64).
    cache : object
        Private copies of what :func:`rnn_backward` needs; changing the arguments
        or ``cs`` afterwards does not affect it.

    Raises
    ------
    TypeError
        If an argument is not a real numeric array.
    ValueError
        If an argument has the wrong number of axes, ``T == 0``, or a shape does
        not fit the sizes read from ``xs`` (``T``, ``n_x``, ``m``) and ``c0``
        (``n_c``); the message names the argument, its shape and the shape
        expected.

    Notes
    -----
    The input products of all steps do not depend on the state, so they are one
    product: with :math:`X = [x_1, \\dots, x_T]` of shape :math:`(n_x, Tm)`,
    :math:`W_x X + b` gives every :math:`W_x x_t + b` at once. Only
    :math:`W_c c_{t-1}` and the tanh remain in the loop over :math:`t`.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> T, n_x, n_c, m = 4, 3, 2, 5
    >>> xs, c0 = rng.standard_normal((T, n_x, m)), np.zeros((n_c, m))
    >>> W_c, W_x, b = 0.5 * rng.standard_normal((n_c, n_c)), rng.standard_normal((n_c, n_x)), np.zeros((n_c, 1))
    >>> cs, cache = rnn_forward(xs, c0, W_c, W_x, b)
    >>> cs.shape
    (4, 2, 5)
    >>> c, _ = rnn_step_forward(xs[0], c0, W_c, W_x, b)        # the first step by hand
    >>> bool(np.allclose(cs[0], c))
    True
    """
    xs, c0, W_c, W_x, b, n_x, n_c, m = _check_cell(
        xs, c0, W_c, W_x, b, "xs", "(T, n_x, m)", "c0", "T, n_x and m from xs, n_c from c0"
    )
    T = xs.shape[0]
    if T == 0:
        raise ValueError(f"xs must hold at least one step; got xs of shape {shape_str(xs.shape)} (T = 0)")
    dtype = float_dtype(xs, c0, W_c, W_x, b)
    # X = [x_1, ..., x_T], shape (n_x, T*m): a private copy laid out for one big product
    X = np.empty((n_x, T, m), dtype=dtype)
    X[...] = xs.transpose(1, 0, 2)
    X = X.reshape(n_x, T * m)
    W_c = np.array(W_c, dtype=dtype, copy=True)
    W_x = np.array(W_x, dtype=dtype, copy=True)
    # W_x x_t + b of every step in one product, then stored step-major: U[t] is contiguous
    U_cols = W_x @ X
    U_cols += b.astype(dtype, copy=False)
    U = np.empty((T, n_c, m), dtype=dtype)
    U[...] = U_cols.reshape(n_c, T, m).transpose(1, 0, 2)
    # C[t] = c_t for t = 0..T (c_0 included); each step reads and writes contiguous blocks
    C = np.empty((T + 1, n_c, m), dtype=dtype)
    C[0] = c0
    for t in range(T):
        c = C[t + 1]
        np.matmul(W_c, C[t], out=c)
        c += U[t]
        np.tanh(c, out=c)
    cs = C[1:].copy()
    cache = _RNNCache(
        "sequence", dtype, {"X": X, "C": C, "W_c": W_c, "W_x": W_x}, {"T": T, "n_x": n_x, "n_c": n_c, "m": m}
    )
    return cs, cache


def rnn_backward(dcs, cache):
    """Backpropagation through time: the full gradients of a loss on the states ``c_1 ... c_T``.

    Parameters
    ----------
    dcs : array_like, shape (T, n_c, m)
        ``dcs[t - 1]`` is the gradient of the loss with respect to ``c_t`` through
        the loss's *direct* use of ``c_t`` only (for a loss on the last state alone,
        every slice but the last is zero). The paths through later states are
        added here.
    cache : object
        The cache returned by :func:`rnn_forward`.

    Returns
    -------
    dict of ndarray
        ``"dxs"`` (T, n_x, m), ``"dc0"`` (n_c, m), ``"dW_c"`` (n_c, n_c),
        ``"dW_x"`` (n_c, n_x), ``"db"`` (n_c, 1): the total gradients, including
        every path through later steps, each with the shape of its variable, in
        the promoted dtype of the cache and ``dcs``.

    Raises
    ------
    TypeError
        If ``cache`` did not come from :func:`rnn_forward`, or ``dcs`` is not a
        real numeric array.
    ValueError
        If ``dcs`` does not have the shape (T, n_c, m) of the states.

    Notes
    -----
    Let :math:`g_t` be the total gradient reaching :math:`c_t` and :math:`du_t`
    that of the pre-activation. Going backwards from :math:`t = T`, with
    :math:`du_{T+1} = 0`,

    .. math::

        g_t = dcs_t + W_c^\\top du_{t+1}, \\qquad du_t = g_t \\odot (1 - c_t \\odot c_t),

    and :math:`dc_0 = W_c^\\top du_1`. The shared weights collect one term per
    step: :math:`dW_c = \\sum_t du_t c_{t-1}^\\top`, :math:`dW_x = \\sum_t du_t
    x_t^\\top`, :math:`db = \\sum_t du_t 1_m`, and :math:`dx_t = W_x^\\top du_t`.
    The three sums and all :math:`dx_t` are computed as single matrix products
    over the :math:`Tm` columns. Dropping :math:`W_c^\\top du_{t+1}` from
    :math:`g_t` (using the partial instead of the total derivative) is the classic
    mistake; a gradient check catches it.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> T, n_x, n_c, m = 3, 2, 2, 4
    >>> xs, c0 = rng.standard_normal((T, n_x, m)), rng.standard_normal((n_c, m))
    >>> W_c, W_x, b = rng.standard_normal((n_c, n_c)), rng.standard_normal((n_c, n_x)), np.zeros((n_c, 1))
    >>> G = rng.standard_normal((T, n_c, m))                 # loss = sum_t <G_t, c_t>
    >>> cs, cache = rnn_forward(xs, c0, W_c, W_x, b)
    >>> grads = rnn_backward(G, cache)
    >>> loss = lambda W_c: np.sum(G * rnn_forward(xs, c0, W_c, W_x, b)[0])
    >>> from matgrad import check_gradient
    >>> bool(check_gradient(loss, W_c, grads["dW_c"]))
    True
    """
    _check_cache(cache, "sequence", "rnn_backward")
    dcs = as_real_array(dcs, "dcs")
    T, n_x, n_c, m = (cache.sizes[k] for k in ("T", "n_x", "n_c", "m"))
    _ndim(dcs, "dcs", 3, "(T, n_c, m)")
    _expect(dcs, "dcs", (T, n_c, m), "(T, n_c, m)", "the shape of cs in the cache")
    dtype = float_dtype(np.empty(0, cache.dtype), dcs)
    X, C, W_c, W_x = (cache.arrays[k].astype(dtype, copy=False) for k in ("X", "C", "W_c", "W_x"))
    dcs = dcs.astype(dtype, copy=False)
    # D[t] = 1 - c_{t+1}^2 for all steps at once
    D = C[1:] * C[1:]
    np.subtract(1, D, out=D)
    dU = np.empty((T, n_c, m), dtype=dtype)  # dU[t] = du_{t+1}
    W_cT = W_c.T
    g = np.array(dcs[T - 1], copy=True)  # total gradient reaching c_T: only the direct part
    for t in range(T - 1, -1, -1):
        if t < T - 1:
            np.matmul(W_cT, dU[t + 1], out=g)  # the part arriving from c_{t+2}
            g += dcs[t]  # plus the direct part
        np.multiply(g, D[t], out=dU[t])
    dc0 = W_cT @ dU[0]
    # the sums over steps as single products over T*m columns
    dU_cols = np.ascontiguousarray(dU.transpose(1, 0, 2)).reshape(n_c, T * m)
    C_prev = np.ascontiguousarray(C[:T].transpose(1, 0, 2)).reshape(n_c, T * m)  # c_0 ... c_{T-1}
    dxs = (W_x.T @ dU_cols).reshape(n_x, T, m).transpose(1, 0, 2)
    return {
        "dxs": np.ascontiguousarray(dxs),
        "dc0": dc0,
        "dW_c": dU_cols @ C_prev.T,
        "dW_x": dU_cols @ X.T,
        "db": dU_cols.sum(axis=1, keepdims=True),
    }
