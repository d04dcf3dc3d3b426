"""Check a whole backward pass in one call: every input's gradient, with a diagnosis.

:func:`check_gradients` takes the inputs of a scalar function ``f`` (a dict or a
tuple of arrays) and the gradients a backward pass claims for them, and compares each
with central differences of ``f``. The step is chosen per input from its dtype and
size alone, and the absolute tolerance from a measurement of the finite-difference error
of ``f`` at that point: the same differences taken again with twice the step on a few entries (or
directions). Rounding makes that error grow like :math:`u |f| / \\varepsilon`, not like
the gradient, so a fixed tolerance fails correct float32 gradients of realistic losses
or lets wrong float64 ones through; a measured one does neither.

Large inputs (more than 4,096 entries) are checked along random directions first; when
a direction fails, a seeded sample of entries is checked one by one, so that the report
can name entries. A failing input whose every entry was differenced is compared with
the patterns of :mod:`matgrad.diagnosis` (transposed, scaled, sign, zero, swapped); a
sampled one only with those a sample can show (scaled, sign, zero).
"""

from __future__ import annotations

import math
import numbers
import sys
import time
from collections.abc import Mapping

import numpy as np

from ._validate import as_real_array, shape_str
from .diagnosis import diagnose_gradient, scale_of, suggestion
from .gradcheck import (
    GradientCheckResult,
    _check_eps,
    _check_n_directions,
    _check_tolerance,
    _compare,
    _directions,
    _rng_from_seed,
    _scratch_copy,
)

__all__ = ["GradientCheckReport", "assert_gradients_close", "check_gradients", "check_vjp"]

FULL_LIMIT = 4096  # "auto": every entry up to this many, directions above
DEFAULT_SAMPLE = 256  # entries checked one by one after a failed direction
NOISE_SAMPLE = 8  # entries (or directions) differenced again with twice the step
SAFETY = 10.0  # the measured finite-difference error times this is the default atol
PROGRESS_AFTER = 3.0  # seconds: a check expected to take longer reports its progress on stderr
PROGRESS_START, PROGRESS_EVERY = 1.0, 2.0  # seconds: first estimate after, and lines at most this often


def _is_torch(x) -> bool:
    return type(x).__module__.split(".")[0] == "torch"


def _default_rtol(dtype) -> float:
    return {8: 1e-4, 4: 1e-2}.get(np.dtype(dtype).itemsize, 5e-2)


# --- the private state of all inputs -------------------------------------------------


class _Point:
    """Private copies of every input and the one way ``f`` is called on them."""

    def __init__(self, f, inputs, convert):
        if isinstance(inputs, Mapping):
            keys = list(inputs)
            bad = [k for k in keys if not isinstance(k, str)]
            if bad:
                raise TypeError(f"the keys of a dict of inputs are f's keyword names and must be strings; got {bad[0]!r}")
            self.by_name = True
        elif isinstance(inputs, (tuple, list)):
            keys = list(range(len(inputs)))
            self.by_name = False
        else:
            raise TypeError(
                f"inputs must be a dict name -> array (f is called as f(**inputs)) or a tuple/list of arrays "
                f"(f(*inputs)); got {type(inputs).__name__}. For one array, pass (x,) or use check_gradient"
            )
        if not keys:
            raise ValueError("inputs is empty: give at least one array to differentiate")
        self.f, self.keys, self.convert = f, keys, convert
        self.works, self.bases, self.args, self.dtypes = [], [], [], []
        for key in keys:
            value = inputs[key]
            work = _scratch_copy(_to_numpy(value, _label(key)), _label(key))
            self.works.append(work)
            self.bases.append(work.copy())
            self.dtypes.append(work.dtype)
            if _is_torch(value):
                torch = sys.modules["torch"]
                self.args.append(torch.from_numpy(work))  # shares memory with work: moving work moves it
            else:
                self.args.append(work)
        self.n_calls = 0
        self.out_dtype = None
        self.clock = None

    def __call__(self):
        self.n_calls += 1
        if self.by_name:
            value = self.f(**dict(zip(self.keys, self.args)))
        else:
            value = self.f(*self.args)
        out, dtype = self.convert(value)
        if self.out_dtype is None:
            self.out_dtype = dtype
        if self.clock is not None:
            self.clock.tick()
        return out

    def check_unmodified(self):
        for key, work, base in zip(self.keys, self.works, self.bases):
            if not np.array_equal(work, base):
                idx = tuple(int(i) for i in np.argwhere(work != base)[0])
                raise ValueError(
                    f"f modified its argument {key!r}: entry {list(idx)} was {float(base[idx])!r} and became "
                    f"{float(work[idx])!r}. f must not write into its inputs (use out-of-place operations, "
                    f"or copy first: x = x.copy()); a check of such an f would compare garbage"
                )


def _label(key) -> str:
    return f"inputs[{key!r}]"


def _to_numpy(value, name):
    """A numpy view or copy of ``value``; CPU torch tensors via ``detach()`` (never modified)."""
    if _is_torch(value) and hasattr(value, "detach"):
        if value.device.type != "cpu":
            raise ValueError(f"{name} is a torch tensor on {value.device}; give a CPU tensor (tensor.cpu())")
        return value.detach().numpy()
    return value


def _scalar_output(value):
    """``f``'s value as a float, and the dtype it was computed in."""
    if _is_torch(value) and hasattr(value, "detach"):
        if value.ndim != 0:
            raise ValueError(
                f"f must return a real scalar; it returned a torch tensor of shape {tuple(value.shape)} "
                f"(reduce it, e.g. .sum(), or use check_vjp for a non-scalar output)"
            )
        value = value.detach().cpu().numpy()
    if isinstance(value, (bool, np.bool_)) or value is None or isinstance(value, (str, bytes)):
        hint = " (a missing return?)" if value is None else ""
        raise ValueError(f"f must return a real scalar; it returned {value!r}{hint}")
    if isinstance(value, np.ndarray) and value.ndim != 0:
        raise ValueError(
            f"f must return a real scalar; it returned an array of shape {shape_str(value.shape)} "
            f"(reduce it, e.g. .sum(), or use check_vjp for a non-scalar output)"
        )
    if isinstance(value, (np.ndarray, np.generic)):
        if value.dtype.kind not in "iuf":
            raise ValueError(f"f must return a real scalar; it returned dtype {value.dtype}")
        return float(value), (value.dtype if value.dtype.kind == "f" else np.dtype(np.float64))
    if isinstance(value, numbers.Real):
        try:
            return float(value), np.dtype(np.float64)
        except OverflowError:
            raise ValueError(f"f returned an integer too large for a float64: {value!r:.40}") from None
    raise ValueError(f"f must return a real scalar (a number, 0-d array or 0-d tensor); got {type(value).__name__}")


def _vjp_output(cotangent):
    """A converter that turns ``f``'s array value ``y`` into ``<cotangent, y>``."""
    cot = cotangent.reshape(-1)

    def convert(value):
        arr = as_real_array(_to_numpy(value, "f(...)"), "the value of f")
        if arr.shape != cotangent.shape:
            raise ValueError(
                f"f returned an array of shape {shape_str(arr.shape)}; the cotangent has shape "
                f"{shape_str(cotangent.shape)} (check_vjp needs them equal)"
            )
        dtype = arr.dtype if arr.dtype.kind == "f" else np.dtype(np.float64)
        return float(cot @ arr.reshape(-1).astype(np.float64)), dtype

    return convert


def _claimed_gradients(point, grads):
    """The claimed gradients as private float64 arrays, one per input, in input order."""
    what = "dict" if point.by_name else "tuple or list"
    if point.by_name and not isinstance(grads, Mapping) or not point.by_name and not isinstance(grads, (tuple, list)):
        raise TypeError(f"grads must be a {what} like inputs, with the same keys; got {type(grads).__name__}")
    given = list(grads) if point.by_name else list(range(len(grads)))
    missing = [k for k in point.keys if k not in given]
    extra = [k for k in given if k not in point.keys]
    if missing or extra:
        parts = [f"no gradient for {', '.join(map(repr, missing))}" if missing else "",
                 f"a gradient for {', '.join(map(repr, extra))}, which is not an input" if extra else ""]
        raise ValueError(f"grads must have the keys of inputs, {point.keys}; " + " and ".join(p for p in parts if p))
    claimed = []
    for key, work in zip(point.keys, point.works):
        value = grads[key]
        if value is None:
            raise ValueError(
                f"grads[{key!r}] is None: the backward pass returned no gradient for {key!r} "
                f"(a forgotten `return`, or a torch tensor whose .grad was never filled?)"
            )
        g = as_real_array(_to_numpy(value, f"grads[{key!r}]"), f"grads[{key!r}]")
        if g.shape != work.shape:
            hint = " (the shape of its transpose: a missing .T?)" if work.ndim == 2 and g.shape == work.shape[::-1] else ""
            raise ValueError(
                f"grads[{key!r}] has shape {shape_str(g.shape)}; input {key!r} has shape {shape_str(work.shape)}"
                f"{hint}. A gradient has the shape of its input and is never broadcast"
            )
        claimed.append(np.array(g, dtype=np.float64, copy=True))
    return claimed


# --- progress ------------------------------------------------------------------------


class _Clock:
    """Prints progress on stderr once a check has run a second and looks set to take a few more."""

    def __init__(self, planned):
        self.planned, self.done = planned, 0
        self.start = self.last = time.perf_counter()

    def tick(self):
        self.done += 1
        now = time.perf_counter()
        if now - self.start < PROGRESS_START or now - self.last < PROGRESS_EVERY:
            return
        rate = (now - self.start) / self.done
        if self.planned * rate < PROGRESS_AFTER:
            return
        self.last = now
        left = max(self.planned - self.done, 0) * rate
        print(f"matgrad: gradient check, {self.done:,} of about {self.planned:,} evaluations of f, "
              f"about {left:.0f} s left", file=sys.stderr, flush=True)


# --- finite differences --------------------------------------------------------------


def _entry_differences(point, i, entries, h):
    """Central differences of ``f`` along the flat ``entries`` of input ``i``, step ``h``."""
    flat = point.works[i].reshape(-1)
    dtype = flat.dtype.type
    out = np.empty(len(entries))
    for j, k in enumerate(entries):
        original = flat[k]
        with np.errstate(over="ignore"):
            x_plus, x_minus = dtype(original + h), dtype(original - h)
        step = float(x_plus) - float(x_minus)
        if not (step > 0 and math.isfinite(step)):
            raise ValueError(
                f"the step eps={h:g} cannot move entry {list(np.unravel_index(k, point.works[i].shape))} of "
                f"{point.keys[i]!r} (value {float(original)!r}, dtype {flat.dtype}); use an eps suited to it"
            )
        flat[k] = x_plus
        f_plus = point()
        flat[k] = x_minus
        f_minus = point()
        flat[k] = original
        out[j] = (f_plus - f_minus) / step
    return out


def _direction_differences(point, i, claimed, v, h):
    """``(numerical, claimed)`` directional derivatives along ``v``, over the step actually made."""
    work, base = point.works[i], point.bases[i]
    step = (h * v).astype(work.dtype)
    np.add(base, step, out=work)
    moved = work.astype(np.float64)
    f_plus = point()
    np.subtract(base, step, out=work)
    moved -= work
    f_minus = point()
    work[...] = base
    if not moved.any():
        raise ValueError(f"the step eps={h:g} rounds to nothing along a direction of {point.keys[i]!r}; use a larger eps")
    return (f_plus - f_minus) / (2.0 * h), float(claimed.reshape(-1) @ moved.reshape(-1)) / (2.0 * h)


def _default_eps(work) -> float:
    u = float(np.finfo(work.dtype).eps)
    scale = max(1.0, float(np.sqrt(np.mean(np.square(work, dtype=np.float64))))) if work.size else 1.0
    return u ** (1.0 / 3.0) * scale


def _floor_atol(point, f0, h, numerical) -> float:
    """The smallest atol the rounding of ``f`` allows: ``2 e |f| / h`` (``e`` the dtype's eps), and a hair of the largest value."""
    u = float(np.finfo(point.out_dtype).eps)
    biggest = float(np.max(np.abs(numerical))) if np.size(numerical) else 0.0
    return 2.0 * u * abs(f0) / h + 1e-6 * biggest


class _Settings:
    def __init__(self, rtol, atol, eps, method, max_entries, n_directions):
        self.rtol = None if rtol is None else _check_tolerance(rtol, "rtol")
        self.atol = None if atol is None else _check_tolerance(atol, "atol")
        self.eps = None if eps is None else _check_eps(eps)
        if not (isinstance(method, str) and method in ("auto", "full", "directional")):
            raise ValueError(f'method must be "auto", "full" or "directional"; got {method!r}')
        self.method = method
        if max_entries is not None:
            if isinstance(max_entries, (bool, np.bool_)) or not isinstance(max_entries, numbers.Integral):
                raise TypeError(f"max_entries must be a positive integer or None; got {type(max_entries).__name__}")
            if max_entries < 1:
                raise ValueError(f"max_entries must be a positive integer or None; got {max_entries}")
        self.max_entries = max_entries
        self.n_directions = _check_n_directions(n_directions)


def _check_entries(point, i, entries, s, rng, f0):
    """Differences of ``entries`` of input ``i``, and the rtol, atol and step to judge them by."""
    work = point.works[i]
    h = s.eps if s.eps is not None else _default_eps(work)
    numerical = _entry_differences(point, i, entries, h)
    rtol = s.rtol if s.rtol is not None else _default_rtol(work.dtype)
    if s.atol is not None:
        atol = s.atol
    else:
        sample = np.arange(len(entries)) if len(entries) <= NOISE_SAMPLE else np.sort(
            rng.choice(len(entries), NOISE_SAMPLE, replace=False))
        again = _entry_differences(point, i, entries[sample], 2.0 * h)
        measured = float(np.max(np.abs(again - numerical[sample]))) if len(sample) else 0.0
        atol = max(SAFETY * measured, _floor_atol(point, f0, h, numerical))
    return numerical, rtol, atol, h


def _check_one(point, i, claimed, s, rng, f0):
    """Check input ``i``; returns a dict of what the result and report need."""
    work = point.works[i]
    n = work.size
    start = point.n_calls
    method = s.method
    if method == "auto":
        method = "full" if n <= FULL_LIMIT else "directional"
    info = {"directions": None}
    if method == "full":
        if s.max_entries is not None and s.max_entries < n:
            entries = np.sort(rng.choice(n, s.max_entries, replace=False))
            method = "entries"
        else:
            entries = np.arange(n)
        numerical, rtol, atol, h = _check_entries(point, i, entries, s, rng, f0)
        info.update(entries=entries, numerical=numerical, rtol=rtol, atol=atol, eps=h, method=method)
    else:
        h = s.eps if s.eps is not None else _default_eps(work)
        num, cla, again = [], [], []
        for d, v in enumerate(_directions(rng, work.shape, s.n_directions)):  # as check_gradient draws them
            a, b = _direction_differences(point, i, claimed, v, h)
            num.append(a)
            cla.append(b)
            if s.atol is None and d < NOISE_SAMPLE:
                a2, b2 = _direction_differences(point, i, claimed, v, 2.0 * h)
                again.append(abs((a - b) - (a2 - b2)))
        num, cla = np.array(num), np.array(cla)
        rtol = s.rtol if s.rtol is not None else _default_rtol(work.dtype)
        atol = s.atol if s.atol is not None else max(SAFETY * max(again), _floor_atol(point, f0, h, num))
        ok = np.abs(cla - num) <= atol + rtol * np.abs(num)
        info.update(directions=(cla, num, ok), rtol=rtol, atol=atol, eps=h, method="directional")
        if not ok.all():  # name entries: check a seeded sample one by one
            k = min(n, s.max_entries or DEFAULT_SAMPLE)
            if point.clock is not None:
                point.clock.planned += 2 * (k + NOISE_SAMPLE)
            entries = np.sort(rng.choice(n, k, replace=False))
            numerical, _, atol_e, _ = _check_entries(point, i, entries, s, rng, f0)
            info.update(entries=entries, numerical=numerical, atol=atol_e, method="directional+entries")
    info["n_evaluations"] = point.n_calls - start
    return info


def _result(key, claimed, info, others_true, sizes=()):
    """The :class:`GradientCheckResult` of one input, with its diagnosis."""
    rtol, atol = info["rtol"], info["atol"]
    if "entries" in info:
        entries, numerical = info["entries"], info["numerical"]
        g = claimed.reshape(-1)[entries]
        passed, max_abs, max_rel, n_failed, worst, c, num = _compare(g, numerical, rtol, atol)
        worst = tuple(int(j) for j in np.unravel_index(entries[worst[0]], claimed.shape)) if entries.size else ()
        full = None
        if entries.size == claimed.size:
            full = numerical.reshape(claimed.shape)
    if info["directions"] is not None:
        cla, num_d, ok = info["directions"]
        d_passed, d_abs, d_rel, d_failed, d_worst, d_c, d_num = _compare(cla, num_d, rtol, atol)
        if "entries" not in info:
            passed, max_abs, max_rel, n_failed, worst, c, num, full = d_passed, d_abs, d_rel, d_failed, d_worst, d_c, d_num, None
        else:
            passed = False  # a direction failed, whatever the sample shows
    diagnosis = None
    if not passed:
        if "entries" in info:  # a pattern fits when it explains the claim to within the differences' noise
            t_norm = float(np.linalg.norm(info["numerical"]))
            noise = info["atol"] * math.sqrt(info["numerical"].size) / t_norm if t_norm > 0 else 1.0
            tol = min(0.2, max(1e-3, 3.0 * noise))
        if full is not None:
            diagnosis = diagnose_gradient(claimed, full, others=others_true, tol=tol, sizes=sizes)
        elif "entries" in info:  # a sample: only the patterns that survive sampling
            sample_true = info["numerical"]
            sample_claim = claimed.reshape(-1)[info["entries"]]
            diagnosis = diagnose_gradient(sample_claim, sample_true, tol=tol, sizes=sizes)
            if diagnosis and not diagnosis.startswith(("scaled", "sign", "zero")):
                diagnosis = None
            if diagnosis and not claimed.any():
                diagnosis = "zero: the claimed gradient is zero everywhere"
    return GradientCheckResult(
        passed=bool(passed), max_abs_error=max_abs, max_rel_error=max_rel, n_evaluations=info["n_evaluations"],
        method=info["method"], n_failed=n_failed, worst_index=worst, claimed=c, numerical=num,
        rtol=rtol, atol=atol, name=key, finite_differences=full, diagnosis=diagnosis,
    )


class GradientCheckReport(Mapping):
    """Outcome of :func:`check_gradients`: a read-only mapping ``key -> GradientCheckResult``.

    Attributes
    ----------
    passed : bool
        Whether every input's gradient passed; ``bool(report)`` is the same.
    failed : tuple
        The keys whose gradient failed, in the order of the inputs.
    n_evaluations : int
        How many times ``f`` was called in all.
    shapes : dict
        Each input's shape, by key.
    dtypes : dict
        The dtype ``f`` was called with for each input, by key.
    notes : tuple of str
        Remarks that apply to the whole check (for example that ``f`` returned
        float32 for a float64 input).

    Examples
    --------
    >>> r = check_gradients(lambda x, y: np.sum(x * y), {"x": np.ones(2), "y": np.full(2, 3.0)},
    ...                     {"x": np.full(2, 3.0), "y": np.zeros(2)})
    >>> bool(r), r.failed, list(r)
    (False, ('y',), ['x', 'y'])
    >>> r["y"].diagnosis
    'zero: the claimed gradient is zero everywhere'
    """

    def __init__(self, results, shapes, dtypes, n_evaluations, notes=()):
        self._results = dict(results)
        self.shapes, self.dtypes = dict(shapes), dict(dtypes)
        self.n_evaluations = int(n_evaluations)
        self.notes = tuple(notes)

    def __getitem__(self, key):
        return self._results[key]

    def __iter__(self):
        return iter(self._results)

    def __len__(self):
        return len(self._results)

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self._results.values())

    def __bool__(self) -> bool:
        return self.passed

    @property
    def failed(self) -> tuple:
        return tuple(k for k, r in self._results.items() if not r.passed)

    def __repr__(self):
        verdict = "passed" if self.passed else f"failed: {list(self.failed)}"
        return f"<GradientCheckReport of {len(self)} input(s), {verdict}>"

    def report(self) -> str:
        """A text table, one row per input, and what to look at when a check failed."""
        rows = [("input", "shape", "dtype", "passed", "max abs err", "max rel err", "method", "diagnosis")]
        for key, r in self._results.items():
            rows.append((str(key), shape_str(self.shapes[key]), str(self.dtypes[key]), "yes" if r.passed else "NO",
                         f"{r.max_abs_error:.2e}", f"{r.max_rel_error:.2e}", r.method, r.diagnosis or "-"))
        widths = [max(len(row[j]) for row in rows) for j in range(len(rows[0]) - 1)]
        lines = ["  ".join(cell.ljust(w) for cell, w in zip(row[:-1], widths)) + "  " + row[-1] for row in rows]
        verdict = "passed" if self.passed else f"FAILED for {', '.join(map(repr, self.failed))}"
        out = [f"gradient check ({self.n_evaluations:,} evaluations of f): {verdict}", *lines]
        for key in self.failed:
            r = self._results[key]
            where = "entry" if r.method != "directional" else "direction"
            out.append(f"- {key!r}: worst {where} {list(r.worst_index)}: claimed {r.claimed:.6g}, finite "
                       f"differences {r.numerical:.6g} (rtol={r.rtol:.1e}, atol={r.atol:.1e}); "
                       f"{r.n_failed} {where}(s) outside tolerance")
            if r.method == "directional+entries" and r.n_failed == 0:
                out.append("  a random direction failed, but no sampled entry did: the error is in entries not "
                           "sampled; raise max_entries or use method='full'")
            out.append(f"  look at: {suggestion(r.diagnosis)}")
        out += [f"note: {n}" for n in self.notes]
        return "\n".join(out)


def _run(f, inputs, grads, convert, *, method, rtol, atol, eps, max_entries, n_directions, seed):
    if not callable(f):
        raise TypeError(f"f must be callable; got {type(f).__name__}")
    s = _Settings(rtol, atol, eps, method, max_entries, n_directions)
    rng = _rng_from_seed(seed)
    point = _Point(f, inputs, convert)
    claimed = _claimed_gradients(point, grads)
    f0 = point()
    point.check_unmodified()
    planned = sum(2 * (w.size if (s.method == "full" or s.method == "auto" and w.size <= FULL_LIMIT) else 2 * s.n_directions)
                  + 4 * NOISE_SAMPLE for w in point.works)
    point.clock = _Clock(planned)
    infos = [_check_one(point, i, claimed[i], s, rng, f0) for i in range(len(point.keys))]
    point.check_unmodified()
    notes = []
    out_dtype = np.dtype(point.out_dtype)
    low = [k for k, d in zip(point.keys, point.dtypes) if d.itemsize > out_dtype.itemsize]
    if low:
        notes.append(f"f returned {out_dtype} for the {point.dtypes[point.keys.index(low[0])]} input(s) "
                     f"{', '.join(map(repr, low))}: its rounding limits the finite differences; compute f in the "
                     f"dtype of the inputs")
    trues = {k: info["numerical"].reshape(c.shape) for k, info, c in zip(point.keys, infos, claimed)
             if "entries" in info and info["entries"].size == c.size}
    # a scale known only roughly (float32) may still be named after an axis length of an input
    sizes = {n for w in point.works for n in (*w.shape, w.size)}
    results = {}
    for key, c, info in zip(point.keys, claimed, infos):
        others = {k: t for k, t in trues.items() if k != key}
        results[key] = _result(key, c, info, others, sizes)
    return GradientCheckReport(results, {k: w.shape for k, w in zip(point.keys, point.works)},
                               dict(zip(point.keys, point.dtypes)), point.n_calls, notes)


_SHARED_DOC = """
    method : {"auto", "full", "directional"}, optional
        ``"full"`` differences every entry (2 evaluations of ``f`` each);
        ``"directional"`` compares ``<grad, v>`` along ``n_directions`` random unit
        directions, and when one fails checks a seeded sample of entries one by one
        so that the report names entries; ``"auto"`` (default) is ``"full"`` for an
        input of at most 4,096 entries and ``"directional"`` above.
    rtol, atol, eps : float or None, optional
        An entry passes when ``|claimed - numerical| <= atol + rtol * |numerical|``.
        ``None`` (default) chooses them per input: ``eps`` is ``e**(1/3)`` times
        ``max(1, rms(x))`` (``e = np.finfo(dtype).eps`` of the input, twice its unit
        round-off; the step does not depend on ``f``), ``rtol``
        is ``1e-4`` for float64 and ``1e-2`` for float32, and ``atol`` is ten times
        the finite-difference error measured by repeating the differences of a few
        entries (or directions) with twice the step (at least the rounding floor
        ``2 e |f| / eps`` plus ``1e-6`` of the largest difference). Explicit values are
        used as given. The patterns *transposed* and *swapped* are diagnosed only when
        every entry of the input was differenced (``"full"``, or ``"auto"`` up to 4,096
        entries); a sample of entries can show only *scaled*, *sign* and *zero*.
    max_entries : int or None, optional
        Check only this many entries of each input (drawn with ``seed``), instead of
        all (``"full"``) or the default 256 after a failed direction.
    n_directions : int, optional
        Random directions per input for the directional check (default 8).
    seed : int, optional
        Seed of ``np.random.default_rng`` for directions and samples (default 0).
"""


def check_gradients(f, inputs, grads, *, method="auto", rtol=None, atol=None, eps=None, max_entries=None,
                    n_directions=8, seed=0):
    """Check the gradients of a scalar function with respect to all its inputs at once.

    Parameters
    ----------
    f : callable
        ``f(**inputs)`` (a dict) or ``f(*inputs)`` (a tuple or list) returns a real
        scalar: a number, a 0-d array or a 0-d torch tensor. Called with private
        copies of the inputs, in their dtypes (torch tensors for torch inputs); it
        must not modify them.
    inputs : dict or tuple or list of array_like
        The point: name -> array, or arrays by position (keys ``0, 1, ...``). NumPy
        arrays, anything ``np.asarray`` converts, or CPU torch tensors (with or
        without ``requires_grad``). Never modified; a tensor's ``.grad`` is untouched.
    grads : dict or tuple or list of array_like
        The claimed gradients, with the keys of ``inputs``, each of its input's shape.
{shared}    Returns
    -------
    GradientCheckReport
        A mapping key -> :class:`GradientCheckResult` (with ``name``,
        ``finite_differences`` and ``diagnosis``), ``passed``, ``failed`` and
        ``report()``, a table with one row per input.

    Raises
    ------
    TypeError
        If ``f`` is not callable, ``inputs`` or ``grads`` is not a dict/tuple/list,
        or an array is not real and numeric.
    ValueError
        If a gradient is missing, extra, ``None`` or of the wrong shape (the message
        names the key), if ``f`` modifies an argument or does not return a real
        scalar, if an input is not finite, or if an option is out of range.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X, W = rng.standard_normal((4, 3)), rng.standard_normal((3, 2))
    >>> G = rng.standard_normal((4, 2))
    >>> f = lambda X, W: np.sum(G * (X @ W))
    >>> bool(check_gradients(f, {{"X": X, "W": W}}, {{"X": G @ W.T, "W": X.T @ G}}))
    True
    >>> report = check_gradients(f, {{"X": X, "W": W}}, {{"X": G @ W.T, "W": (X.T @ G) / 4}})
    >>> report.failed, report["W"].diagnosis
    (('W',), 'scaled: the claim is 0.25 = 1/4 times the true gradient')
    """
    return _run(f, inputs, grads, _scalar_output, method=method, rtol=rtol, atol=atol, eps=eps,
                max_entries=max_entries, n_directions=n_directions, seed=seed)


def assert_gradients_close(f, inputs, grads, **options):
    """Like :func:`check_gradients`, but raise ``AssertionError`` carrying the table on failure.

    Parameters
    ----------
    f, inputs, grads
        As in :func:`check_gradients`.
    **options
        ``method``, ``rtol``, ``atol``, ``eps``, ``max_entries``, ``n_directions``,
        ``seed``, as in :func:`check_gradients`.

    Returns
    -------
    GradientCheckReport
        The passing report.

    Raises
    ------
    AssertionError
        If any gradient fails; the message is ``report.report()``.
    TypeError, ValueError
        For bad arguments, as in :func:`check_gradients`.

    Examples
    --------
    >>> x = np.array([1.0, 2.0])
    >>> assert_gradients_close(lambda x: np.sum(x**3), (x,), (3 * x**2,)).passed
    True
    >>> assert_gradients_close(lambda x: np.sum(x**3), (x,), (-3 * x**2,))
    Traceback (most recent call last):
    ...
    AssertionError: gradient check (9 evaluations of f): FAILED for 0
    ...
    """
    report = check_gradients(f, inputs, grads, **options)
    if not report.passed:
        raise AssertionError(report.report())
    return report


def check_vjp(f, inputs, cotangent, grads, *, method="auto", rtol=None, atol=None, eps=None, max_entries=None,
              n_directions=8, seed=0):
    """Check that ``grads`` are the vector-Jacobian products of an array-valued ``f``.

    What a framework's backward really receives is an incoming gradient (the
    cotangent ``G``, of the output's shape) and must return ``G`` contracted with the
    Jacobian of each input: the gradient of the scalar ``sum(G * f(inputs))``. This
    checks exactly that.

    Parameters
    ----------
    f : callable
        ``f(**inputs)`` or ``f(*inputs)`` returns an array (or tensor) of the shape
        of ``cotangent``.
    inputs : dict or tuple or list of array_like
        As in :func:`check_gradients`.
    cotangent : array_like, shape of f's output
        The incoming gradient ``G = dL/dY``.
    grads : dict or tuple or list of array_like
        The claimed vector-Jacobian products, with the keys and shapes of ``inputs``.
{shared}    Returns
    -------
    GradientCheckReport
        As in :func:`check_gradients`.

    Raises
    ------
    TypeError, ValueError
        As in :func:`check_gradients`; also a ValueError if ``f`` returns an array
        of another shape than ``cotangent``.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X, W, G = rng.standard_normal((4, 3)), rng.standard_normal((3, 2)), rng.standard_normal((4, 2))
    >>> bool(check_vjp(lambda X, W: X @ W, {{"X": X, "W": W}}, G, {{"X": G @ W.T, "W": X.T @ G}}))
    True
    >>> check_vjp(lambda X, W: X @ W, {{"X": X, "W": W}}, G, {{"X": G @ W.T, "W": G.T @ X}})["W"].diagnosis
    Traceback (most recent call last):
    ...
    ValueError: grads['W'] has shape (2, 3); input 'W' has shape (3, 2) (the shape of its transpose: a missing .T?). A gradient has the shape of its input and is never broadcast
    """
    if _is_torch(cotangent) and hasattr(cotangent, "detach"):
        cotangent = cotangent.detach().cpu().numpy()
    cot = np.array(as_real_array(cotangent, "cotangent"), dtype=np.float64, copy=True)
    return _run(f, inputs, grads, _vjp_output(cot), method=method, rtol=rtol, atol=atol, eps=eps,
                max_entries=max_entries, n_directions=n_directions, seed=seed)


for _function in (check_gradients, check_vjp):
    if _function.__doc__:  # None under python -OO
        _function.__doc__ = _function.__doc__.format(shared=_SHARED_DOC.lstrip("\n") + "\n")
