"""Gradients of any ``np.einsum`` expression, and the einsum that computes each one.

An einsum multiplies its operands entry by entry over every assignment of its
index letters and sums out the letters missing from the output. Differentiating
a loss ``L = sum(G * Y)`` with respect to one factor removes that factor from
the product, so the gradient with respect to an operand is again an einsum: the
incoming gradient ``G`` (indexed like the output) times the *other* operands,
with the operand's own letters as the output. Two cases need more than that
single einsum, and :func:`einsum_backward` handles both:

* a letter that only the operand carries (summed out inside it, as in
  ``"ij->i"``): nothing else depends on it, so the gradient is constant along
  it and is broadcast back;
* a letter repeated inside the operand (``"ii->i"``, ``"ii->"``): only the
  diagonal entries take part, so the gradient is written onto the diagonal of a
  zero array.

Broadcasting through ``...`` adds a third: an axis of size 1 that was stretched
to the broadcast size has the sum of the gradient along that axis.

The subscripts are parsed here, not by NumPy, so that a bad expression or an
operand that does not fit it is reported with the index or operand at fault.
The arithmetic itself is ``np.einsum(..., optimize=...)`` with NumPy's
contraction-order optimization (the path is computed once per expression and
shapes, then reused).
"""

from __future__ import annotations

import functools
import string
from dataclasses import dataclass

import numpy as np

from ._validate import as_real_array, float_dtype, shape_str

__all__ = ["einsum_backward", "einsum_grad_subscripts"]

# NumPy's implicit output sorts letters by character code: capitals first.
_LETTERS = string.ascii_uppercase + string.ascii_lowercase
_ALLOWED = set(_LETTERS) | set(",.->")

# Below this many multiply-adds a path search costs more than it can save.
_SMALL_WORK = 4096


# --------------------------------------------------------------------------- parsing


@dataclass(frozen=True)
class _Term:
    """One subscript: letters before ``...``, letters after it, and whether it has ``...``."""

    pre: str
    post: str
    ellipsis: bool

    @property
    def letters(self) -> str:
        return self.pre + self.post

    def spelled(self) -> str:
        return self.pre + ("..." if self.ellipsis else "") + self.post


@dataclass(frozen=True)
class _Parsed:
    inputs: tuple  # of _Term, one per operand
    output: _Term  # explicit, or the implicit output made explicit
    explicit: bool


def _parse_term(term: str, where: str) -> _Term:
    if term.count("...") > 1:
        raise ValueError(f"{where} has '...' more than once: {term!r} (at most one '...' per subscript)")
    pre, sep, post = term.partition("...")
    if "." in pre or "." in post:
        raise ValueError(f"{where} has a '.' that is not part of '...': {term!r}")
    return _Term("".join(pre.split()), "".join(post.split()), bool(sep))


@functools.lru_cache(maxsize=256)
def _parse(subscripts: str) -> _Parsed:
    """Check the grammar of ``subscripts`` (no shapes needed) and make the output explicit."""
    for ch in subscripts:
        if ch not in _ALLOWED and not ch.isspace():
            raise ValueError(
                f"subscripts {subscripts!r} contain the invalid character {ch!r}; allowed are the "
                f"letters a-z and A-Z, ',', '->', '...' and spaces"
            )
    # spaces are ignored, as NumPy does, except inside '->' and '...'
    if subscripts.count("->") > 1:
        raise ValueError(f"subscripts {subscripts!r} contain '->' more than once")
    lhs, arrow, rhs = subscripts.partition("->")
    if "-" in lhs + rhs or ">" in lhs + rhs:
        raise ValueError(f"subscripts {subscripts!r} contain a '-' or '>' that is not part of '->'")
    if "," in rhs:
        raise ValueError(f"the output of subscripts {subscripts!r} (after '->') cannot contain ','")
    inputs = tuple(_parse_term(t, f"the subscript of operand {k}") for k, t in enumerate(lhs.split(",")))
    seen = "".join(t.letters for t in inputs)
    if arrow:
        output = _parse_term(rhs, "the output subscript")
        for pos, c in enumerate(output.letters):
            if c in output.letters[:pos]:
                raise ValueError(
                    f"output index {c!r} appears more than once in the output {output.spelled()!r}; "
                    f"an einsum output can name each index only once"
                )
            if c not in seen:
                raise ValueError(
                    f"output index {c!r} does not appear in any input subscript of {subscripts!r}"
                )
    else:
        once = "".join(sorted(c for c in set(seen) if seen.count(c) == 1))
        output = _Term("", once, any(t.ellipsis for t in inputs))
    return _Parsed(inputs, output, bool(arrow))


def _check_subscripts(subscripts) -> _Parsed:
    if not isinstance(subscripts, str):
        raise TypeError(f"subscripts must be a string such as 'ik,kj->ij'; got {type(subscripts).__name__}")
    return _parse(subscripts)


# ------------------------------------------------------------------ shapes -> a plan


@dataclass(frozen=True)
class _Plan:
    """The expression in internal letters, with '...' spelled out and size-1 broadcast axes removed."""

    terms: tuple  # str per operand (after removing broadcast axes)
    output: str
    sizes: dict  # letter -> size
    squeezed_shapes: tuple  # operand shapes after removing broadcast axes
    out_shape: tuple


def _describe(k: int, term: _Term) -> str:
    return f"operand {k} (subscript {term.spelled()!r})"


@functools.lru_cache(maxsize=256)
def _plan(subscripts: str, shapes: tuple) -> _Plan:
    parsed = _parse(subscripts)
    inputs = parsed.inputs
    if len(shapes) != len(inputs):
        raise ValueError(
            f"subscripts {subscripts!r} name {len(inputs)} operand(s) but {len(shapes)} operand(s) were given"
        )
    # how many axes each '...' stands for
    n_ell = []
    for k, (term, shape) in enumerate(zip(inputs, shapes)):
        n = len(term.letters)
        if term.ellipsis:
            if len(shape) < n:
                raise ValueError(
                    f"{_describe(k, term)} names at least {n} axes but the operand has {len(shape)} "
                    f"(shape {shape_str(shape)})"
                )
            n_ell.append(len(shape) - n)
        else:
            if len(shape) != n:
                raise ValueError(
                    f"{_describe(k, term)} names {n} axes but the operand has {len(shape)} "
                    f"(shape {shape_str(shape)})"
                )
            n_ell.append(0)
    # every letter has one size
    sizes: dict = {}
    first: dict = {}
    for k, (term, shape, e) in enumerate(zip(inputs, shapes, n_ell)):
        axes = list(range(len(term.pre))) + [len(term.pre) + e + j for j in range(len(term.post))]
        for c, ax in zip(term.letters, axes):
            if c not in sizes:
                sizes[c] = shape[ax]
                first[c] = (k, ax)
            elif sizes[c] != shape[ax]:
                k0, ax0 = first[c]
                raise ValueError(
                    f"index {c!r} has inconsistent sizes: {sizes[c]} at axis {ax0} of operand {k0} "
                    f"(shape {shape_str(shapes[k0])}) but {shape[ax]} at axis {ax} of operand {k} "
                    f"(shape {shape_str(shape)})"
                )
    # '...' axes broadcast like NumPy arrays (aligned on the right)
    E = max(n_ell, default=0)
    bshape = [1] * E
    setter = [None] * E
    for k, (term, shape, e) in enumerate(zip(inputs, shapes, n_ell)):
        for j in range(e):
            size, pos = shape[len(term.pre) + j], E - e + j
            if size == 1 or size == bshape[pos]:
                continue
            if bshape[pos] != 1:
                k0 = setter[pos]
                raise ValueError(
                    f"the '...' axes of operand {k0} (shape {shape_str(shapes[k0])}) and operand {k} "
                    f"(shape {shape_str(shape)}) do not broadcast: size {bshape[pos]} against {size}"
                )
            bshape[pos], setter[pos] = size, k
    if parsed.explicit and not parsed.output.ellipsis and E > 0:
        raise ValueError(
            f"the inputs of {subscripts!r} have '...' standing for {E} axes, but the output has no '...' "
            f"to put them in (NumPy requires one; sum them out explicitly if that is meant)"
        )
    used = set(subscripts)
    free = [c for c in _LETTERS if c not in used]
    if len(free) < E:
        raise ValueError(
            f"subscripts {subscripts!r} need {E} letters for the '...' axes but only {len(free)} are unused"
        )
    ell = free[:E]
    for c, size in zip(ell, bshape):
        sizes[c] = size
    terms, squeezed = [], []
    for term, shape, e in zip(inputs, shapes, n_ell):
        mid, mid_shape = "", []
        for j in range(e):
            size, pos = shape[len(term.pre) + j], E - e + j
            if size == 1 and bshape[pos] != 1:
                continue  # stretched by broadcasting: drop the axis, its gradient is summed
            mid += ell[pos]
            mid_shape.append(size)
        terms.append(term.pre + mid + term.post)
        squeezed.append(
            tuple(shape[: len(term.pre)]) + tuple(mid_shape) + tuple(shape[len(term.pre) + e :])
        )
    out = parsed.output
    out_letters = out.pre + ("".join(ell) if out.ellipsis else "") + out.post
    return _Plan(
        tuple(terms),
        out_letters,
        sizes,
        tuple(squeezed),
        tuple(sizes[c] for c in out_letters),
    )


@functools.lru_cache(maxsize=512)
def _path(expr: str, shapes: tuple):
    """The ``optimize`` argument for ``np.einsum(expr, ...)`` on operands of these shapes (cached).

    NumPy's greedy contraction order, computed once; ``False`` (no search) for a
    single operand or a tiny problem, where the search would cost more than it saves.
    """
    work = 1
    for size in _letter_sizes(expr, shapes).values():
        work *= size
    if len(shapes) < 2 or work <= _SMALL_WORK:
        return False
    dummies = [np.broadcast_to(np.empty((), dtype=np.float64), s) for s in shapes]
    path, _ = np.einsum_path(expr, *dummies, optimize="greedy")
    return path


def _letter_sizes(expr: str, shapes: tuple) -> dict:
    sizes = {}
    for term, shape in zip(expr.split("->")[0].split(","), shapes):
        sizes.update(zip(term, shape))
    return sizes


def _einsum(expr: str, *arrays):
    return np.einsum(expr, *arrays, optimize=_path(expr, tuple(a.shape for a in arrays)))


def _operand_grad(terms, output, arrays, G, k, sizes):
    """Gradient of ``sum(G * einsum(terms -> output))`` with respect to ``arrays[k]`` (the rule of the Notes)."""
    term = terms[k]
    others = [j for j in range(len(arrays)) if j != k]
    elsewhere = set(output).union(*(terms[j] for j in others))
    distinct = "".join(dict.fromkeys(term))
    keep = "".join(c for c in distinct if c in elsewhere)
    ins = [output] + [terms[j] for j in others]
    arrs = [G] + [arrays[j] for j in others]
    if len(ins) == 1 and ins[0] == keep:
        g = G
    else:
        g = _einsum(",".join(ins) + "->" + keep, *arrs)
    if keep != distinct:  # letters only this operand has: the gradient is constant along them
        g = np.broadcast_to(
            np.reshape(g, [sizes[c] if c in keep else 1 for c in distinct]), [sizes[c] for c in distinct]
        )
    if distinct != term:  # repeated letters: the gradient lives on the diagonal
        dA = np.zeros(arrays[k].shape, dtype=G.dtype)
        np.einsum(term + "->" + distinct, dA)[...] = g  # a writeable view of the diagonal
        return dA
    if g is G or keep != distinct or any(np.may_share_memory(g, a) for a in arrs):
        return np.array(g, dtype=G.dtype, copy=True)
    return g


def _backward_along_path(plan, arrays, G):
    """Reverse mode through NumPy's pairwise contraction order (three or more operands).

    The forward intermediates are recomputed (all but the last), then each pairwise
    step is differentiated with :func:`_operand_grad`. This costs about three
    forward passes whatever the number of operands, where one full einsum per
    operand would cost about one forward pass each.
    """
    n = len(arrays)
    expr = ",".join(plan.terms) + "->" + plan.output
    path = _greedy_path(expr, tuple(a.shape for a in arrays))
    terms = dict(enumerate(plan.terms))
    values = dict(enumerate(arrays))
    live = list(range(n))  # node ids in NumPy's list order
    steps = []
    for i, positions in enumerate(path):
        ids = [live.pop(x) for x in sorted(positions, reverse=True)]
        node = n + i
        if i == len(path) - 1:
            result = plan.output
        else:
            needed = set(plan.output).union(*(terms[j] for j in live))
            result = "".join(c for c in dict.fromkeys("".join(terms[j] for j in ids)) if c in needed)
            values[node] = _einsum(",".join(terms[j] for j in ids) + "->" + result, *(values[j] for j in ids))
        terms[node] = result
        steps.append((ids, node))
        live.append(node)
    grad_of = {steps[-1][1]: G}
    for ids, node in reversed(steps):
        g = grad_of.pop(node)
        step_terms = [terms[j] for j in ids]
        step_values = [values[j] for j in ids]
        for m, j in enumerate(ids):
            grad_of[j] = _operand_grad(step_terms, terms[node], step_values, g, m, plan.sizes)
    return [grad_of[k] for k in range(n)]


@functools.lru_cache(maxsize=256)
def _greedy_path(expr: str, shapes: tuple) -> tuple:
    """NumPy's greedy pairwise contraction order, as a tuple of position tuples (cached)."""
    dummies = [np.broadcast_to(np.empty((), dtype=np.float64), s) for s in shapes]
    path, _ = np.einsum_path(expr, *dummies, optimize="greedy")
    return tuple(tuple(p) for p in path[1:])


# ------------------------------------------------------------------- public functions


def einsum_backward(subscripts, *operands, grad_out):
    """Gradients of a loss through ``Y = np.einsum(subscripts, *operands)``.

    Parameters
    ----------
    subscripts : str
        An einsum expression as NumPy reads it: letters ``a-z``/``A-Z``, one
        subscript per operand separated by ``,``, an optional ``->`` and output,
        optional ``...`` for broadcast axes; spaces are ignored. Without ``->``
        the output is NumPy's implicit one (the letters that occur exactly once,
        in alphabetical order, capitals first, after any ``...``).
    *operands : array_like
        The operands, one per input subscript; operand ``k`` has as many axes as
        its subscript names (plus those ``...`` stands for). A letter must have
        the same size everywhere it occurs (no broadcasting of named axes).
    grad_out : array_like, shape of Y
        The incoming gradient ``G = dL/dY``, keyword-only. It must have the
        output's shape exactly.

    Returns
    -------
    tuple of ndarray
        ``(dA_0, dA_1, ...)`` with ``dA_k.shape == operands[k].shape``, all in
        the floating dtype of the inputs (integers become float64, float32
        stays float32 if everything is float32). New arrays; the arguments are
        never modified.

    Raises
    ------
    TypeError
        If ``subscripts`` is not a string or an operand or ``grad_out`` is not a
        real numeric array.
    ValueError
        If the expression is malformed (invalid character, misplaced ``-``,
        ``>`` or ``.``, an output index that no input has or that is repeated)
        or the arrays do not fit it (wrong number of operands, an operand whose
        number of axes differs from its subscript, an index with two different
        sizes, ``...`` axes that do not broadcast, ``grad_out`` of the wrong
        shape). The message names the index or operand at fault.

    Notes
    -----
    With ``o`` the output's letters and ``t_j`` operand ``j``'s, the einsum is

    .. math::

        Y[o] = \\sum_{\\text{letters not in } o} \\; \\prod_j A_j[t_j],

    and for the loss ``L = sum(G * Y)``

    .. math::

        \\frac{\\partial L}{\\partial A_k[t_k]} = \\sum_{\\text{letters not in } t_k}
        G[o] \\prod_{j \\ne k} A_j[t_j],

    an einsum of ``G`` with the other operands whose output subscript is
    ``t_k``: see :func:`einsum_grad_subscripts`. Letters of ``t_k`` that occur
    nowhere else are absent from that product, so the gradient is computed
    without them and broadcast along them. If a letter is repeated in ``t_k``,
    only the entries on that diagonal reach ``Y``: the gradient is computed on
    the distinct letters and written onto the diagonal of a zero array. A
    ``...`` axis of size 1 that broadcasting stretched is dropped from the
    operand, which sums the gradient along it.

    One such einsum per operand costs about one forward pass each. With three
    or more operands the function instead follows NumPy's greedy pairwise
    contraction order: it recomputes the forward intermediates and applies the
    rule to each pairwise step in reverse, about three forward passes in all
    however many operands there are. Every einsum is evaluated with NumPy's
    contraction-order optimization, the path cached per expression and shapes.

    Examples
    --------
    >>> X = np.array([[1.0, 2.0], [3.0, 4.0]])
    >>> W = np.array([[1.0, 0.0, 2.0], [0.0, 1.0, 1.0]])
    >>> G = np.ones((2, 3))
    >>> dX, dW = einsum_backward("ik,kj->ij", X, W, grad_out=G)
    >>> bool(np.allclose(dX, G @ W.T)), bool(np.allclose(dW, X.T @ G))
    (True, True)

    The gradient of a trace is the identity times the incoming scalar:

    >>> (dA,) = einsum_backward("ii->", np.arange(9.0).reshape(3, 3), grad_out=2.0)
    >>> dA
    array([[2., 0., 0.],
           [0., 2., 0.],
           [0., 0., 2.]])

    A row sum sends each row's gradient back to every entry of the row:

    >>> einsum_backward("ij->i", np.ones((2, 3)), grad_out=np.array([1.0, -1.0]))[0]
    array([[ 1.,  1.,  1.],
           [-1., -1., -1.]])
    """
    parsed = _check_subscripts(subscripts)
    arrays = [as_real_array(a, f"operands[{k}]") for k, a in enumerate(operands)]
    G = as_real_array(grad_out, "grad_out")
    if len(arrays) != len(parsed.inputs):
        raise ValueError(
            f"subscripts {subscripts!r} name {len(parsed.inputs)} operand(s) but {len(arrays)} operand(s) were given"
        )
    plan = _plan(subscripts, tuple(tuple(int(s) for s in a.shape) for a in arrays))
    if G.shape != plan.out_shape:
        raise ValueError(
            f"grad_out must have the shape of the output of np.einsum({subscripts!r}, ...), "
            f"{shape_str(plan.out_shape)}; got shape {shape_str(G.shape)} (it is never broadcast)"
        )
    dtype = float_dtype(G, *arrays)
    G = G.astype(dtype, copy=False)
    squeezed = [a.astype(dtype, copy=False).reshape(s) for a, s in zip(arrays, plan.squeezed_shapes)]
    if len(squeezed) <= 2:
        grads = [_operand_grad(plan.terms, plan.output, squeezed, G, k, plan.sizes) for k in range(len(squeezed))]
    else:
        grads = _backward_along_path(plan, squeezed, G)
    # np.einsum gives a NumPy scalar for a 0-d result; reshape restores stretched size-1 axes
    return tuple(np.asarray(g).reshape(A.shape) for g, A in zip(grads, arrays))


def _check_shapes(shapes) -> tuple:
    """``shapes`` as a tuple of tuples of Python ints, or an error naming the entry and what was expected."""
    try:
        entries = list(shapes)
    except TypeError:
        raise TypeError(f"shapes must be a sequence of tuples of integers; got {shapes!r:.80}") from None
    checked = []
    for k, shape in enumerate(entries):
        try:
            sizes = list(shape)
        except TypeError:
            raise TypeError(f"shapes must be a sequence of tuples of integers; shapes[{k}] is {shape!r:.80}") from None
        if any(isinstance(s, (bool, np.bool_)) or not isinstance(s, (int, np.integer)) for s in sizes):
            raise TypeError(f"shapes[{k}] must be a tuple of integers; got {tuple(sizes)!r:.80}")
        if any(s < 0 for s in sizes):
            raise ValueError(f"shapes[{k}] must be a tuple of non-negative sizes; got {tuple(int(s) for s in sizes)!r:.80}")
        checked.append(tuple(int(s) for s in sizes))
    return tuple(checked)


def einsum_grad_subscripts(subscripts, wrt, *, shapes=None):
    """The einsum expression whose value is the gradient with respect to one operand.

    Parameters
    ----------
    subscripts : str
        An einsum expression (see :func:`einsum_backward`; implicit output allowed).
    wrt : int
        Which operand, ``0 <= wrt < number of operands``.
    shapes : sequence of tuple of int, optional
        The operands' shapes. Needed only to decide expressions with ``...``:
        with them, ``...`` axes that broadcasting stretched on operand ``wrt``
        (which need a sum) are detected; without them, operand ``wrt``'s ``...``
        is assumed to have the full broadcast shape.

    Returns
    -------
    str
        An expression ``"o,t_j,...->t_wrt"``: the output's subscript (with
        implicit output made explicit), the other operands' subscripts in their
        order, and operand ``wrt``'s subscript as output. Then
        ``np.einsum(result, grad_out, *other_operands)`` is the gradient.

    Raises
    ------
    TypeError
        If ``subscripts`` is not a string, ``wrt`` not an integer, or
        ``shapes`` not a sequence of tuples of integers.
    ValueError
        If ``subscripts`` is malformed or ``wrt`` out of range (as in
        :func:`einsum_backward`), if a size in ``shapes`` is negative, or when one einsum cannot express the
        gradient: an index of operand ``wrt`` that occurs nowhere else (its
        gradient is a broadcast), an index repeated within operand ``wrt`` (its
        gradient lives on a diagonal), or ``...`` axes that need a sum (stretched
        size-1 axes of operand ``wrt``, or ``...`` axes absent from operand
        ``wrt``). :func:`einsum_backward` handles all of these.

    Notes
    -----
    The rule: the gradient with respect to operand ``k`` is the einsum of the
    incoming gradient with every other operand, the output subscript taking the
    place of operand ``k``'s and operand ``k``'s becoming the output.

    Examples
    --------
    >>> einsum_grad_subscripts("ik,kj->ij", 0)
    'ij,kj->ik'
    >>> einsum_grad_subscripts("ik,kj->ij", 1)
    'ij,ik->kj'
    >>> einsum_grad_subscripts("bij,bjk->bik", 1)
    'bik,bij->bjk'
    >>> einsum_grad_subscripts("ij,jk", 0)            # implicit output 'ik'
    'ik,jk->ij'

    With ``...``, the shapes decide whether a sum over stretched axes is needed:

    >>> einsum_grad_subscripts("...ij,...jk->...ik", 0, shapes=[(5, 2, 3), (5, 3, 4)])
    '...ik,...jk->...ij'
    >>> einsum_grad_subscripts("...ij,...jk->...ik", 0, shapes=[(1, 2, 3), (5, 3, 4)])  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: cannot write the gradient ... its '...' axes (shape (1, 2, 3)) are broadcast ...

    >>> einsum_grad_subscripts("ij->i", 0)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: cannot write the gradient ... index 'j' of its subscript 'ij' appears in no other operand ...
    """
    parsed = _check_subscripts(subscripts)
    if isinstance(wrt, (bool, np.bool_)) or not isinstance(wrt, (int, np.integer)):
        raise TypeError(f"wrt must be an integer operand number; got {wrt!r}")
    n = len(parsed.inputs)
    if not 0 <= wrt < n:
        raise ValueError(f"wrt must be an operand number from 0 to {n - 1} for {subscripts!r}; got {wrt}")
    wrt = int(wrt)
    plan = None
    if shapes is not None:
        shapes = _check_shapes(shapes)
        plan = _plan(subscripts, shapes)
    term = parsed.inputs[wrt]
    others = [t for j, t in enumerate(parsed.inputs) if j != wrt]
    why = f"cannot write the gradient of {subscripts!r} with respect to operand {wrt} as one einsum: "
    for pos, c in enumerate(term.letters):
        if c in term.letters[:pos]:
            raise ValueError(
                why + f"index {c!r} appears more than once in its subscript {term.spelled()!r}, so only a "
                f"diagonal takes part and the gradient is zero off it; einsum_backward handles it"
            )
    elsewhere = set(parsed.output.letters).union(*(t.letters for t in others))
    for c in term.letters:
        if c not in elsewhere:
            raise ValueError(
                why + f"index {c!r} of its subscript {term.spelled()!r} appears in no other operand and not in "
                f"the output, so the gradient is constant along it (a broadcast, which einsum cannot "
                f"create); einsum_backward handles it"
            )
    ell_elsewhere = parsed.output.ellipsis or any(t.ellipsis for t in others)
    if ell_elsewhere and not term.ellipsis:
        E = len(plan.output) - len(parsed.output.letters) if plan is not None else None
        if E != 0:
            raise ValueError(
                why + f"its subscript {term.spelled()!r} has no '...', so the gradient sums over the '...' "
                f"axes, and NumPy's einsum refuses an output without '...' when its inputs have '...' axes; "
                f"einsum_backward handles it"
            )
    if term.ellipsis and plan is not None:
        n_ell = len(shapes[wrt]) - len(term.letters)
        E = len(plan.output) - len(parsed.output.letters) if parsed.output.ellipsis else None
        if E is None:  # output without '...': the '...' axes are empty everywhere
            E = 0
        squeezed_ndim = len(plan.squeezed_shapes[wrt])
        if n_ell < E or squeezed_ndim != len(shapes[wrt]):
            raise ValueError(
                why + f"its '...' axes (shape {shape_str(shapes[wrt])}) are broadcast to the other operands' "
                f"(size-1 axes stretched, or fewer axes), so the gradient must be summed over them; "
                f"einsum_backward handles it"
            )
    spelled = ",".join([parsed.output.spelled()] + [t.spelled() for t in others])
    return spelled + "->" + term.spelled()
