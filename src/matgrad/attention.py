"""Scaled dot-product attention and its backward pass, without storing the weights.

For queries ``Q`` (n_q, e), keys ``K`` (n_k, e) and values ``V`` (n_k, e_v), in the
rows-are-examples convention (one query, key or value per row):

.. math::

    S = s\\, Q K^\\top, \\qquad P = \\operatorname{softmax}_{\\text{rows}}(S), \\qquad O = P V,

with the scale :math:`s = 1/\\sqrt{e}` unless given, and masked scores set to
:math:`-\\infty` before the softmax (their weights are exactly 0). Leading axes of
``Q``, ``K`` and ``V`` (batches, heads) broadcast against each other.

The weights ``P`` are one ``(n_q, n_k)`` array per matrix of the stack, the largest
object of the computation. The forward pass does not keep them: its cache holds the
inputs, ``O`` and one number per query row, the log-sum-exp of the scores
:math:`\\ell_i = \\log \\sum_j e^{S_{ij}}`. With a mask or ``causal=True`` it also keeps the
boolean array of the entries that may not be attended, one byte per score (of one
``(n_q, n_k)`` matrix, or of as many matrices as the mask has): an eighth of the size of
float64 weights. The backward pass recomputes
:math:`P = \\exp(S - \\ell)` and uses the identity
:math:`\\operatorname{rowsum}(dP \\odot P) = \\operatorname{rowsum}(dO \\odot O)`, so that
:math:`dS = P \\odot (dP - \\operatorname{rowsum}(dO \\odot O))` needs neither ``P`` nor
``dP`` stored.

Both passes work through the score stack ``(..., n_q, n_k)`` in blocks: as many whole
matrices of the stack as fit, or, when one matrix does not fit, runs of query rows of one
matrix. With ``causal=True`` the rows of each matrix are split into runs of a quarter of
its rows (rounded up; more runs where the 8 MiB cap below binds), and a run of rows ending
at row ``r`` uses only the keys ``j < r``. A block's floating buffer holds at most a
quarter of the rows of the whole stack, rounded up, and at most 8 MiB, but at least one
row; the backward needs two such buffers, and, when a matrix is split into runs of rows,
a scratch array of ``n_k * max(e, e_v)`` numbers. For a stack of four rows or more whose
rows are longer than ``e`` and ``e_v`` (the usual case), this stays within about half a
stack; for very short stacks the rounding and the scratch can take more. The cached
copies of ``s Q``, ``K`` and ``V`` carry one more column each (the log-sum-exp, -1 and 1), so that
one matrix product gives :math:`S - \\ell`, another :math:`dP - D`, and the forward's
product with ``V`` gives the row sums of the weights as well.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from ._validate import as_real_array, float_dtype, format_bytes, shape_str
from .jacobian import _check_max_bytes
from .matmul import _unbroadcast

__all__ = ["attention_backward", "attention_forward"]

_DEFAULT_MAX_BYTES = 2**30
#: a block's floating buffer is at most this large (the backward's two buffers are also each at most a quarter of the
#: score stack)
_BLOCK_BYTES = 8 * 2**20
#: with causal=True each matrix's query rows are split in this many runs, each skipping the keys it cannot see
_CAUSAL_SPLITS = 4


class _AttentionCache:
    """What :func:`attention_backward` needs, in private read-only arrays (opaque to users).

    ``arrays`` holds ``Qs`` (``scale * Q``), ``K``, ``V``, ``O`` and ``lse``. ``fused``, if not None, holds the
    arrays that ``Qs``, ``K``, ``V`` and ``lse`` are views of: ``Qs`` with ``lse`` as one more column, ``K`` with a
    column of -1 and ``V`` with a column of 1, so that one product gives ``S - lse`` (and ``dP - D``).
    """

    __slots__ = ("arrays", "blocked", "scale", "causal", "dtype", "batch", "shapes", "fused", "general")

    def __init__(self, arrays, blocked, scale, causal, dtype, batch, shapes, fused=None, general=None):
        for value in arrays.values():
            value.flags.writeable = False
        if fused is not None:
            for value in fused.values():
                value.flags.writeable = False
        if blocked is not None:
            blocked.flags.writeable = False
        self.arrays = arrays
        self.blocked = blocked
        self.scale = scale
        self.causal = causal
        self.dtype = dtype
        self.batch = batch
        self.shapes = shapes
        self.fused = fused
        # whether blocked is more than the causal triangle (then every entry of a block is checked)
        self.general = (blocked is not None) if general is None else general

    def __repr__(self):
        q, k, v = (shape_str(self.shapes[name]) for name in ("Q", "K", "V"))
        return (
            f"<matgrad attention cache: Q {q}, K {k}, V {v}, causal={self.causal}, "
            f"mask={self.blocked is not None and not self.causal}, dtype={self.dtype.name}>"
        )


def _check_scale(scale, e):
    if scale is None:
        return 1.0 / math.sqrt(e)
    if isinstance(scale, (bool, np.bool_)) or not isinstance(scale, numbers.Real):
        raise TypeError(f"scale must be a real number or None (for 1/sqrt(e)); got {type(scale).__name__}: {scale!r:.80}")
    if not math.isfinite(scale):
        raise ValueError(f"scale must be finite; got {scale!r}")
    return float(scale)


def _blocked_entries(mask, causal, n_q, n_k, score_shape):
    """The boolean array of entries that may NOT be attended (None: all may), checked row by row.

    Its shape is that of ``mask`` broadcast against ``(n_q, n_k)`` (not the whole stack).
    Raises ValueError if some query row may attend to no key.
    """
    allowed = None
    if mask is not None:
        try:
            arr = np.asarray(mask)
        except Exception as exc:
            raise TypeError(f"mask must be a boolean array; could not convert it: {exc}") from None
        if arr.dtype != np.bool_:
            raise TypeError(
                f"mask must be a boolean array (True where a query may attend to a key); got dtype {arr.dtype} "
                f"of shape {shape_str(arr.shape)} (an additive float mask is not supported)"
            )
        try:
            fits = np.broadcast_shapes(arr.shape, score_shape) == tuple(score_shape)
        except ValueError:
            fits = False
        if not fits:
            raise ValueError(
                f"mask of shape {shape_str(arr.shape)} does not broadcast to the scores' shape (..., n_q, n_k) = "
                f"{shape_str(score_shape)}"
            )
        allowed = np.broadcast_to(arr, np.broadcast_shapes(arr.shape, (n_q, n_k)))
    if causal:
        triangle = np.tri(n_q, n_k, dtype=bool)  # query i may attend to keys j <= i
        allowed = triangle if allowed is None else allowed & triangle
    if allowed is None:
        return None
    empty = ~allowed.any(axis=-1)
    if empty.any():
        index = tuple(int(i) for i in np.argwhere(empty)[0])
        what = "mask and causal=True together leave" if (mask is not None and causal) else "mask leaves"
        raise ValueError(
            f"{what} query row {index[-1]} with no key to attend to (at index {index} of the mask broadcast to "
            f"{shape_str(allowed.shape)}); softmax over no scores is undefined (PyTorch returns zeros there)"
        )
    return ~allowed  # a new array, never a view of the caller's mask


def _block_shape(batch, n_q, n_k, dtype, *, quarter, causal=False):
    """``(matrices, rows)`` of a block: whole matrices of the stack, or a run of rows of one matrix.

    A block's floating ``(matrices, rows, n_k)`` buffer holds at most ``_BLOCK_BYTES`` (at least one row) and, with
    ``quarter`` (the backward, which needs two such buffers), at most a quarter of the rows of the whole
    ``(..., n_q, n_k)`` stack (rounded up). When whole matrices fit, a block holds as many as it can, so that
    every matrix product is one full-size product per matrix; with ``causal`` the rows of each matrix are split in
    ``_CAUSAL_SPLITS`` parts, so that the keys a part cannot see are skipped.
    """
    count = math.prod(batch)
    limit = -(-(count * n_q) // 4) if quarter else count * n_q
    cap = max(1, min(limit, _BLOCK_BYTES // max(n_k * dtype.itemsize, 1)))
    rows = n_q
    if causal and n_q > 1:
        rows = -(-n_q // _CAUSAL_SPLITS)
    if cap >= rows:
        return max(1, min(count, cap // rows)), rows
    return 1, cap


def _batch_blocks(batch, matrices):
    """Yield indices into the batch axes, each selecting at most ``matrices`` matrices (at least one).

    An index is a tuple of ints (outer axes), then one slice (a run along one axis), then whole axes.
    """
    if not batch:
        yield ()
        return
    axis = 0
    while math.prod(batch[axis + 1 :]) > matrices:
        axis += 1
    run = max(1, matrices // math.prod(batch[axis + 1 :]))
    tail = (slice(None),) * (len(batch) - axis - 1)
    for outer in np.ndindex(*batch[:axis]):
        for j in range(0, batch[axis], run):
            yield outer + (slice(j, min(batch[axis], j + run)),) + tail


def _take(arr, index, core):
    """``arr`` at the batch ``index`` of the broadcast batch; ``arr`` has its own leading axes (``core`` trailing ones)."""
    lead = arr.ndim - core
    sub = tuple(
        (0 if isinstance(ix, int) else slice(None)) if size == 1 else ix
        for size, ix in zip(arr.shape[:lead], index[len(index) - lead :])
    )
    return arr[sub]


def _rows(n_q, n_k, rows, causal):
    """Yield ``(r0, r1, keys)`` for each run of query rows ``r0:r1``, the one with the most keys first.

    ``keys`` is how many leading keys the rows can attend to: all ``n_k``, or with ``causal`` only the keys
    ``j < r1`` (row ``r1 - 1`` attends to keys ``0 .. r1 - 1``).
    """
    for r0 in reversed(range(0, n_q, rows)):
        r1 = min(n_q, r0 + rows)
        yield r0, r1, (min(n_k, r1) if causal else n_k)


def _mask_block(S, blocked, general, index, r0, r1, keys, transposed):
    """Set the masked entries of the scores ``S`` of rows ``r0:r1`` (keys ``:keys``) to -inf, in place.

    ``S`` is ``(..., rows, keys)``, or ``(..., keys, rows)`` if ``transposed``. With only the causal triangle
    (``general`` False), only the keys ``r0 <= j < keys`` can be masked, so only they are visited.
    """
    if general:
        where = _take(blocked, index, 2)[..., r0:r1, :keys]
        lo = 0
    else:
        lo = r0
        if keys - lo <= 1:
            return
        where = blocked[r0:r1, lo:keys]
    if transposed:
        np.copyto(S[..., lo:keys, :], -np.inf, where=np.swapaxes(where, -1, -2))
    else:
        np.copyto(S[..., lo:keys], -np.inf, where=where)


def attention_forward(Q, K, V, *, mask=None, causal=False, scale=None, max_bytes=_DEFAULT_MAX_BYTES):
    """Scaled dot-product attention, ``O = softmax(scale * Q @ K^T) @ V``, with a cache for the backward.

    Parameters
    ----------
    Q : array_like, shape (..., n_q, e)
        Queries, one per row; real numeric.
    K : array_like, shape (..., n_k, e)
        Keys, one per row, with the same ``e`` as ``Q``.
    V : array_like, shape (..., n_k, e_v)
        Values, one per key. The leading axes ``...`` of ``Q``, ``K`` and ``V``
        (batches, heads) broadcast against each other.
    mask : array_like of bool, optional
        Broadcastable to the scores' shape ``(..., n_q, n_k)``; True where a query
        may attend to a key (the meaning of a boolean ``attn_mask`` in
        ``torch.nn.functional.scaled_dot_product_attention``).
    causal : bool, optional
        If True, query ``i`` attends only to keys ``j <= i``: the lower triangle
        of an ``(n_q, n_k)`` array of ones, ``np.tri(n_q, n_k)`` (PyTorch's
        ``is_causal``). May be combined with ``mask``.
    scale : float, optional
        Factor of the scores; default ``1 / sqrt(e)``.
    max_bytes : int or float, optional
        Refuse a computation whose score stack ``(..., n_q, n_k)`` would need more
        than this many bytes (default 1 GiB; ``float("inf")`` removes the limit).

    Returns
    -------
    O : ndarray, shape (..., n_q, e_v)
        The attention output, in the floating dtype NumPy gives ``Q``, ``K`` and
        ``V`` together (integers become float64; float32 stays float32).
    cache : object
        Private, read-only copies of what :func:`attention_backward` needs:
        ``scale * Q``, ``K``, ``V``, ``O`` and the log-sum-exp of every row of
        scores. With a ``mask`` or ``causal=True``
        it also keeps the boolean array of the entries that may not be attended
        (the mask combined with the causal triangle), one byte per score: shape
        ``(n_q, n_k)``, or the mask's shape broadcast against ``(n_q, n_k)`` when
        the mask has leading axes. No floating ``(n_q, n_k)`` array is kept.

    Raises
    ------
    TypeError
        If ``Q``, ``K`` or ``V`` is not a real numeric array, ``mask`` is not
        boolean, ``causal`` is not a bool, or ``scale`` is not a real number.
    ValueError
        If an operand has fewer than two axes; ``Q`` and ``K`` differ in ``e`` or
        ``K`` and ``V`` in ``n_k`` (the message names both shapes); ``e`` or
        ``n_k`` is 0; the leading axes do not broadcast; ``mask`` does not
        broadcast to ``(..., n_q, n_k)``; some query row may attend to no key;
        ``scale`` is not finite; or the score stack would exceed ``max_bytes``.

    See Also
    --------
    attention_backward : the gradients with respect to ``Q``, ``K`` and ``V``.

    Notes
    -----
    With :math:`S = s\\,QK^\\top` (masked entries :math:`-\\infty`) and the row
    maximum :math:`m_i = \\max_j S_{ij}`, the weights are computed as
    :math:`P_{ij} = e^{S_{ij} - m_i} / \\sum_k e^{S_{ik} - m_i}`, which cannot
    overflow, and the cache keeps :math:`\\ell_i = m_i + \\log \\sum_k e^{S_{ik} -
    m_i}`, so that :math:`P_{ij} = e^{S_{ij} - \\ell_i}`. Two differences from
    PyTorch 2.13 on CPU: for a query row with no key to attend it returns zeros
    (and zero gradients), where this function refuses the row; and it refuses an
    ``attn_mask`` together with ``is_causal=True``, where this function attends
    where both allow.

    Examples
    --------
    >>> Q = np.array([[1.0, 0.0], [0.0, 1.0]])
    >>> K = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    >>> V = np.array([[1.0], [2.0], [3.0]])
    >>> O, cache = attention_forward(Q, K, V, scale=0.0)   # equal weights: the mean of V
    >>> O
    array([[2.],
           [2.]])
    >>> O, cache = attention_forward(Q, K, V, causal=True, scale=0.0)  # query i sees keys 0..i
    >>> O
    array([[1. ],
           [1.5]])
    >>> attention_forward(Q, K.T, V)
    Traceback (most recent call last):
    ...
    ValueError: Q and K must have the same number of features e (last axis): Q of shape (2, 2) has e = 2, K of shape (2, 3) has 3
    """
    Q = as_real_array(Q, "Q")
    K = as_real_array(K, "K")
    V = as_real_array(V, "V")
    for arr, name, symbol in ((Q, "Q", "(..., n_q, e)"), (K, "K", "(..., n_k, e)"), (V, "V", "(..., n_k, e_v)")):
        if arr.ndim < 2:
            raise ValueError(f"{name} must have at least two axes, shape {symbol}; got {name} of shape {shape_str(arr.shape)}")
    if Q.shape[-1] != K.shape[-1]:
        raise ValueError(
            f"Q and K must have the same number of features e (last axis): Q of shape {shape_str(Q.shape)} has "
            f"e = {Q.shape[-1]}, K of shape {shape_str(K.shape)} has {K.shape[-1]}"
        )
    if K.shape[-2] != V.shape[-2]:
        raise ValueError(
            f"K and V must have the same number of keys n_k (second-to-last axis): K of shape {shape_str(K.shape)} "
            f"has n_k = {K.shape[-2]}, V of shape {shape_str(V.shape)} has {V.shape[-2]}"
        )
    n_q, e = Q.shape[-2:]
    n_k, e_v = V.shape[-2:]
    if e == 0 or n_k == 0:
        raise ValueError(
            f"attention needs at least one feature and one key (e >= 1, n_k >= 1); got Q of shape {shape_str(Q.shape)}, "
            f"K of shape {shape_str(K.shape)}"
        )
    try:
        batch = tuple(np.broadcast_shapes(Q.shape[:-2], K.shape[:-2], V.shape[:-2]))
    except ValueError:
        raise ValueError(
            f"the leading axes of Q, K and V do not broadcast: Q of shape {shape_str(Q.shape)}, K of shape "
            f"{shape_str(K.shape)}, V of shape {shape_str(V.shape)}"
        ) from None
    if not isinstance(causal, (bool, np.bool_)):
        raise TypeError(f"causal must be True or False; got {type(causal).__name__}: {causal!r:.80}")
    causal = bool(causal)
    scale = _check_scale(scale, e)
    max_bytes = _check_max_bytes(max_bytes)
    dtype = float_dtype(Q, K, V)
    score_shape = batch + (n_q, n_k)
    nbytes = math.prod(score_shape) * dtype.itemsize
    if nbytes > max_bytes:
        raise ValueError(
            f"the scores of Q of shape {shape_str(Q.shape)} against K of shape {shape_str(K.shape)} have shape "
            f"{shape_str(score_shape)} and would need {format_bytes(nbytes)} ({nbytes:,} bytes of {dtype.name}), "
            f"more than max_bytes={format_bytes(max_bytes)}; split the batch or raise max_bytes"
        )
    blocked = _blocked_entries(mask, causal, n_q, n_k, score_shape)

    general = mask is not None

    # private copies in the working dtype, each with one more column (see _AttentionCache): the caller's arrays are
    # never written, and later changes to them cannot reach the cache
    kf = np.empty(K.shape[:-1] + (e + 1,), dtype=dtype)
    kf[..., :e] = K
    kf[..., e] = -1.0
    vf = np.empty(V.shape[:-1] + (e_v + 1,), dtype=dtype)
    vf[..., :e_v] = V
    vf[..., e_v] = 1.0
    k, v = kf[..., :e], vf[..., :e_v]
    if Q.shape[:-2] == batch:  # lse fits as a column of qs
        qf = np.empty(Q.shape[:-1] + (e + 1,), dtype=dtype)
        qs, lse = qf[..., :e], qf[..., e]
    else:
        qf = None
        qs = np.empty(Q.shape, dtype=dtype)
        lse = np.empty(batch + (n_q,), dtype=dtype)
    np.multiply(Q, dtype.type(scale), out=qs, casting="unsafe")  # the scale folded into the smallest operand
    O = np.empty(batch + (n_q, e_v), dtype=dtype)
    matrices, rows = _block_shape(batch, n_q, n_k, dtype, quarter=True, causal=causal)
    buf = np.empty(matrices * rows * n_k, dtype=dtype)
    obuf = np.empty(matrices * rows * (e_v + 1), dtype=dtype)
    for index in _batch_blocks(batch, matrices):
        O_b, lse_b = O[index], lse[index]
        lead = O_b.shape[:-2]
        q_b, k_b, v_b = _take(qs, index, 2), _take(k, index, 2), _take(vf, index, 2)
        for r0, r1, keys in _rows(n_q, n_k, rows, causal):
            n = r1 - r0
            # the scores transposed, (keys, rows): the row maximum and its subtraction then run along contiguous rows
            St = buf[: math.prod(lead) * keys * n].reshape(lead + (keys, n))
            np.matmul(k_b[..., :keys, :], np.swapaxes(q_b[..., r0:r1, :], -1, -2), out=St)
            if blocked is not None:
                _mask_block(St, blocked, general, index, r0, r1, keys, transposed=True)
            row_max = St.max(axis=-2, keepdims=True)
            St -= row_max
            np.exp(St, out=St)  # unnormalised weights, at most 1
            # (P V, row sums of P) in one product, through the column of ones of vf
            out = obuf[: math.prod(lead) * n * (e_v + 1)].reshape(lead + (n, e_v + 1))
            np.matmul(np.swapaxes(St, -1, -2), v_b[..., :keys, :], out=out)
            row_sum = out[..., e_v]
            # normalise the rows of O (n_q * e_v divisions) instead of P (n_q * n_k)
            np.divide(out[..., :e_v], out[..., e_v:], out=O_b[..., r0:r1, :])
            np.log(row_sum, out=lse_b[..., r0:r1])
            lse_b[..., r0:r1] += row_max[..., 0, :]
    del buf, obuf
    fused = None if qf is None else {"Q": qf, "K": kf, "V": vf}
    cache = _AttentionCache(
        {"Qs": qs, "K": k, "V": v, "O": O.copy(), "lse": lse},
        blocked,
        scale,
        causal,
        dtype,
        batch,
        {"Q": Q.shape, "K": K.shape, "V": V.shape},
        fused,
        general,
    )
    return O, cache


def attention_backward(dO, cache):
    """Gradients of a scalar loss with respect to ``Q``, ``K`` and ``V`` of :func:`attention_forward`.

    Parameters
    ----------
    dO : array_like, shape (..., n_q, e_v)
        The gradient ``dL/dO`` arriving from above; exactly the shape of ``O``
        (never broadcast).
    cache : object
        The cache returned by :func:`attention_forward`. It is not changed, so a
        second backward pass from the same cache gives the same gradients.

    Returns
    -------
    dQ : ndarray, shape Q.shape
    dK : ndarray, shape K.shape
    dV : ndarray, shape V.shape
        Each summed over the leading axes that broadcasting added to or stretched
        in its operand; new arrays in the floating dtype NumPy gives the cache's
        dtype and ``dO`` together (float32 stays float32).

    Raises
    ------
    TypeError
        If ``cache`` did not come from :func:`attention_forward`, or ``dO`` is not
        a real numeric array.
    ValueError
        If ``dO`` does not have the shape of ``O``.

    Notes
    -----
    With :math:`P = \\exp(S - \\ell)` recomputed from ``Q``, ``K`` and the cached
    log-sum-exp :math:`\\ell`, and :math:`D = \\operatorname{rowsum}(dO \\odot O)`:

    .. math::

        dV = P^\\top dO, \\quad dP = dO\\,V^\\top, \\quad dS = P \\odot (dP - D), \\quad
        dQ = s\\, dS\\,K, \\quad dK = s\\, dS^\\top Q.

    :math:`D` equals :math:`\\operatorname{rowsum}(dP \\odot P)`, the term of the
    softmax's backward, because :math:`\\sum_j dP_{ij} P_{ij} = \\sum_j \\sum_c
    dO_{ic} V_{jc} P_{ij} = \\sum_c dO_{ic} O_{ic}`. Masked entries have
    :math:`P = 0`, hence :math:`dS = 0`. The stack is processed in blocks of whole
    matrices or of query rows of one matrix; each block needs two floating buffers
    (the weights and :math:`dP`, which becomes :math:`dS` in place), each at most a
    quarter of the rows of the ``(..., n_q, n_k)`` stack (rounded up, at least one
    row) and at most 8 MiB, plus, when a matrix is split into runs of rows, a scratch
    array of ``n_k * max(e, e_v)`` numbers. For four or more query rows longer than
    ``e`` and ``e_v`` the backward's peak memory beyond its inputs and outputs
    therefore stays below one such stack (measured in ``benchmarks/bench_attention.py``);
    for very short stacks it can be larger. With ``causal=True`` a block of rows
    ending at row ``r`` uses only the keys ``j < r``.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> Q, K, V = rng.standard_normal((3, 2)), rng.standard_normal((4, 2)), rng.standard_normal((4, 5))
    >>> O, cache = attention_forward(Q, K, V)
    >>> dQ, dK, dV = attention_backward(np.ones_like(O), cache)   # loss = sum of O
    >>> dQ.shape, dK.shape, dV.shape
    ((3, 2), (4, 2), (4, 5))
    >>> np.allclose(dV.sum(axis=0), 3.0)        # each query's weights sum to 1
    True
    >>> attention_backward(np.ones((3, 4)), cache)
    Traceback (most recent call last):
    ...
    ValueError: dO must have the shape of O, (3, 5), for Q of shape (3, 2), K of shape (4, 2) and V of shape (4, 5); got dO of shape (3, 4)
    """
    if not isinstance(cache, _AttentionCache):
        raise TypeError(f"attention_backward needs the cache returned by attention_forward; got {type(cache).__name__}")
    dO = as_real_array(dO, "dO")
    arrays = cache.arrays
    qs, k, v, O, lse = (arrays[name] for name in ("Qs", "K", "V", "O", "lse"))
    if dO.shape != O.shape:
        shapes = cache.shapes
        raise ValueError(
            f"dO must have the shape of O, {shape_str(O.shape)}, for Q of shape {shape_str(shapes['Q'])}, K of shape "
            f"{shape_str(shapes['K'])} and V of shape {shape_str(shapes['V'])}; got dO of shape {shape_str(dO.shape)}"
        )
    dtype = np.result_type(cache.dtype, float_dtype(dO))
    g = dO.astype(dtype, copy=False)  # never written
    fused = cache.fused
    if dtype != cache.dtype:  # promoted (a float64 dO on a float32 cache): new arrays, without the extra columns
        qs, k, v, O, lse = (a.astype(dtype) for a in (qs, k, v, O, lse))
        fused = None
    batch = cache.batch
    n_q, e = qs.shape[-2:]
    n_k, e_v = v.shape[-2:]
    scale = dtype.type(cache.scale)
    blocked, general, causal = cache.blocked, cache.general, cache.causal

    # D_i = rowsum(dO * O)_i: one number per query row, = rowsum(dP * P)_i
    D = np.einsum("...i,...i->...", g, O)

    dQ = np.empty(batch + (n_q, e), dtype=dtype)
    dK = np.empty(batch + (n_k, e), dtype=dtype)
    dV = np.empty(batch + (n_k, e_v), dtype=dtype)
    # Blocks of whole matrices or of query rows: two buffers (the weights, and dP turned into dS), each at most a
    # quarter of the score stack's rows (rounded up, at least one) and at most _BLOCK_BYTES, so that for stacks of
    # four rows or more they stay within about half a stack, plus the (n_k, max(e, e_v)) scratch of the dK and dV
    # products when a matrix takes several blocks.
    matrices, rows = _block_shape(batch, n_q, n_k, dtype, quarter=True, causal=causal)
    split = rows < n_q
    # dP - D in one product, [dO, -D] [V, 1]^T, when the block of [dO, -D] fits in the scratch
    fuse_d = fused is not None and rows * (e_v + 1) <= n_k * max(e, e_v)
    buf_p = np.empty(matrices * rows * n_k, dtype=dtype)
    buf_d = np.empty_like(buf_p)
    scratch = None
    if split or fuse_d:
        scratch = np.empty(matrices * max(n_k * max(e, e_v) if split else 0, rows * (e_v + 1) if fuse_d else 0), dtype)
    if fused is not None:
        qf, kf, vf = fused["Q"], fused["K"], fused["V"]
    for index in _batch_blocks(batch, matrices):
        dQ_b, dK_b, dV_b, D_b, g_b = dQ[index], dK[index], dV[index], D[index], _take(g, index, 2)
        lead = dQ_b.shape[:-2]
        count = math.prod(lead)
        q_b, k_b, v_b = _take(qs, index, 2), _take(k, index, 2), _take(v, index, 2)
        if fused is not None:
            qf_b, kf_b, vf_b = _take(qf, index, 2), _take(kf, index, 2), _take(vf, index, 2)
        else:
            lse_b = lse[index]
        first = True
        for r0, r1, keys in _rows(n_q, n_k, rows, causal):
            shape = lead + (r1 - r0, keys)
            P = buf_p[: math.prod(shape)].reshape(shape)
            dS = buf_d[: math.prod(shape)].reshape(shape)
            if fused is not None:  # S - lse in one product: [sQ, lse] [K, -1]^T
                np.matmul(qf_b[..., r0:r1, :], np.swapaxes(kf_b[..., :keys, :], -1, -2), out=P)
            else:
                np.matmul(q_b[..., r0:r1, :], np.swapaxes(k_b[..., :keys, :], -1, -2), out=P)
                P -= lse_b[..., r0:r1, None]
            if blocked is not None:
                _mask_block(P, blocked, general, index, r0, r1, keys, transposed=False)
            np.exp(P, out=P)  # the weights, recomputed: exp(S - lse)
            g_rows = g_b[..., r0:r1, :]
            # the first run of a matrix writes dK and dV, later ones (split rows) add to them
            if first:
                np.matmul(np.swapaxes(P, -1, -2), g_rows, out=dV_b[..., :keys, :])
            else:
                part = scratch[: count * keys * e_v].reshape(lead + (keys, e_v))
                dV_b[..., :keys, :] += np.matmul(np.swapaxes(P, -1, -2), g_rows, out=part)
            if fuse_d:
                ga = scratch[: count * (r1 - r0) * (e_v + 1)].reshape(lead + (r1 - r0, e_v + 1))
                ga[..., :e_v] = g_rows
                np.negative(D_b[..., r0:r1], out=ga[..., e_v])
                np.matmul(ga, np.swapaxes(_take(vf, index, 2)[..., :keys, :], -1, -2), out=dS)  # dP - D
            else:
                np.matmul(g_rows, np.swapaxes(v_b[..., :keys, :], -1, -2), out=dS)  # dP
                dS -= D_b[..., r0:r1, None]
            dS *= P  # dS = P * (dP - D), in place
            np.matmul(dS, k_b[..., :keys, :], out=dQ_b[..., r0:r1, :])
            if first:
                np.matmul(np.swapaxes(dS, -1, -2), q_b[..., r0:r1, :], out=dK_b[..., :keys, :])
                dK_b[..., keys:, :] = 0.0  # keys that no query of this matrix may attend to
                dV_b[..., keys:, :] = 0.0
                first = False
            else:
                part = scratch[: count * keys * e].reshape(lead + (keys, e))
                dK_b[..., :keys, :] += np.matmul(np.swapaxes(dS, -1, -2), q_b[..., r0:r1, :], out=part)
    dQ *= scale
    # qs carries the scale, so dK = dS^T (s Q) is already complete
    return (
        _unbroadcast(dQ, cache.shapes["Q"]),
        _unbroadcast(dK, cache.shapes["K"]),
        _unbroadcast(dV, cache.shapes["V"]),
    )
