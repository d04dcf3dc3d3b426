"""Forward plus backward of softmax, cross-entropy and LayerNorm: matgrad against PyTorch.

Three cases, float32, measured in the same run on the same thread count:

- softmax of (4096, 1000) along the last axis: ``softmax`` then ``softmax_backward``,
  against ``F.softmax`` and ``backward()`` with a random incoming gradient;
- cross-entropy of (4096, 1000) logits with integer labels, mean over the batch:
  ``cross_entropy`` then ``cross_entropy_backward``, against ``F.cross_entropy`` and
  ``backward()`` (goal from issue 13: at most 2.0 times PyTorch's time);
- LayerNorm of (4096, 1024): ``layer_norm_forward`` then ``layer_norm_backward``
  (dX, dgamma, dbeta), against ``F.layer_norm`` and ``backward()`` (goal: at most 3.0).

A further column times "numpy passes": the same sequence of whole-array NumPy calls
that the computation needs (listed in PASSES, counted in the output), on preallocated
arrays, with no checks and no blocking. It is what NumPy costs when every operation
is one pass over memory; matgrad divided by it says how much the checks and the
blocking cost (below 1: the blocks of rows, which stay in the cache, win). PyTorch
does each of forward and backward as one fused kernel on two threads. For softmax and
cross-entropy the last column times the ``np.exp`` passes alone (one and two), the part
of the work no NumPy implementation can avoid.

Before any time is reported the results are compared with PyTorch's (float32:
relative error below 1e-4), so a fast wrong answer fails the script.

Run:  python benchmarks/bench_softmax_norm.py [--threads N] [--repeat R]
"""

from __future__ import annotations

import argparse

from _timing import add_common_args, interleaved_min, machine_line, print_header, threads  # before torch

import numpy as np
import torch
import torch.nn.functional as F

from matgrad import (
    cross_entropy,
    cross_entropy_backward,
    layer_norm_backward,
    layer_norm_forward,
    softmax,
    softmax_backward,
)

#: the whole-array NumPy calls of each case, forward then backward (what "numpy passes" runs)
PASSES = {
    "softmax": ["max", "subtract", "exp", "sum", "multiply", "| rowdot", "subtract", "multiply"],
    "cross_entropy": ["max", "subtract", "exp", "sum", "| max", "subtract", "exp", "sum", "multiply"],
    "layer_norm": [
        "mean", "subtract", "rowdot", "multiply", "multiply", "add",
        "| colsum", "multiply", "colsum", "multiply", "rowdot", "matvec", "subtract", "multiply", "subtract", "multiply",
    ],
}
GOALS = {"softmax": None, "cross_entropy": 2.0, "layer_norm": 3.0}


def rowdot(A, B):
    return (A[:, None, :] @ B[:, :, None])[:, :, 0]


def softmax_case(rng):
    Z = rng.standard_normal((4096, 1000)).astype(np.float32)
    G = rng.standard_normal(Z.shape).astype(np.float32)
    tZ, tG = torch.from_numpy(Z).requires_grad_(True), torch.from_numpy(G)
    P_buf, dZ_buf = np.empty_like(Z), np.empty_like(Z)

    def ours():
        return softmax_backward(softmax(Z), G)

    def theirs():
        tZ.grad = None
        F.softmax(tZ, dim=-1).backward(tG)
        return tZ.grad

    def passes():
        m = Z.max(axis=1, keepdims=True)
        np.subtract(Z, m, out=P_buf)
        np.exp(P_buf, out=P_buf)
        s = P_buf.sum(axis=1, keepdims=True)
        np.multiply(P_buf, 1 / s, out=P_buf)
        s = rowdot(G, P_buf)
        np.subtract(G, s, out=dZ_buf)
        np.multiply(dZ_buf, P_buf, out=dZ_buf)
        return dZ_buf

    def exps():  # the one exp pass no implementation can avoid
        return np.exp(Z, out=dZ_buf)

    return ours, theirs, passes, exps, lambda a, b: [(a, b.numpy())]


def cross_entropy_case(rng):
    Z = (3 * rng.standard_normal((4096, 1000))).astype(np.float32)
    y = rng.integers(0, 1000, 4096)
    tZ, ty = torch.from_numpy(Z).requires_grad_(True), torch.from_numpy(y)
    E, dZ_buf = np.empty_like(Z), np.empty_like(Z)
    rows = np.arange(4096)

    def ours():
        return cross_entropy(Z, y), cross_entropy_backward(Z, y)

    def theirs():
        tZ.grad = None
        loss = F.cross_entropy(tZ, ty)
        loss.backward()
        return loss.item(), tZ.grad

    def passes():
        m = Z.max(axis=1, keepdims=True)
        np.subtract(Z, m, out=E)
        np.exp(E, out=E)
        loss = float(np.mean(np.log(E.sum(axis=1)) + m[:, 0] - Z[rows, y]))
        m = Z.max(axis=1, keepdims=True)
        np.subtract(Z, m, out=dZ_buf)
        np.exp(dZ_buf, out=dZ_buf)
        s = dZ_buf.sum(axis=1, keepdims=True)
        np.multiply(dZ_buf, 1 / (4096 * s), out=dZ_buf)
        dZ_buf[rows, y] -= np.float32(1 / 4096)
        return loss, dZ_buf

    def pairs(a, b):
        return [(np.float64(a[0]), np.float64(b[0])), (a[1], b[1].numpy())]

    def exps():  # forward and backward each need exp of every logit (the backward gets only Z and y)
        np.exp(Z, out=E)
        return np.exp(Z, out=dZ_buf)

    return ours, theirs, passes, exps, pairs


def layer_norm_case(rng):
    n, d = 4096, 1024
    X = (2 * rng.standard_normal((n, d)) + 1).astype(np.float32)
    gamma, beta = rng.standard_normal(d).astype(np.float32), rng.standard_normal(d).astype(np.float32)
    G = rng.standard_normal((n, d)).astype(np.float32)
    tX, tg, tb = (torch.from_numpy(a).requires_grad_(True) for a in (X, gamma, beta))
    tG = torch.from_numpy(G)
    Xhat, Y, dX, T = (np.empty_like(X) for _ in range(4))

    def ours():
        _, cache = layer_norm_forward(X, gamma, beta)
        return layer_norm_backward(G, cache)

    def theirs():
        for t in (tX, tg, tb):
            t.grad = None
        F.layer_norm(tX, (d,), tg, tb).backward(tG)
        return tX.grad, tg.grad, tb.grad

    def passes():
        np.subtract(X, X.mean(axis=1, keepdims=True), out=Xhat)
        r = 1 / np.sqrt(rowdot(Xhat, Xhat) / d + np.float32(1e-5))
        np.multiply(Xhat, r, out=Xhat)
        np.multiply(Xhat, gamma, out=Y)
        np.add(Y, beta, out=Y)
        dbeta = G.sum(axis=0)
        np.multiply(G, Xhat, out=T)
        dgamma = T.sum(axis=0)
        np.multiply(G, gamma, out=dX)
        a = rowdot(dX, Xhat) / d
        b = (G @ gamma)[:, None] / d
        np.subtract(dX, b, out=dX)
        np.multiply(Xhat, a, out=T)
        np.subtract(dX, T, out=dX)
        np.multiply(dX, r, out=dX)
        return dX, dgamma, dbeta

    return ours, theirs, passes, None, lambda a, b: [(x, t.numpy()) for x, t in zip(a, b)]


CASES = {"softmax": softmax_case, "cross_entropy": cross_entropy_case, "layer_norm": layer_norm_case}


def max_relative_error(pairs):
    worst = 0.0
    for ours, ref in pairs:
        ours, ref = np.asarray(ours, np.float64), np.asarray(ref, np.float64)
        worst = max(worst, float(np.max(np.abs(ours - ref)) / max(np.max(np.abs(ref)), 1e-30)))
    return worst


def main():
    parser = add_common_args(argparse.ArgumentParser(description=__doc__.splitlines()[0]))
    parser.add_argument("--repeat", type=int, default=10, help="timed rounds per measurement; the best is kept")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    missed = []
    with threads(args.threads):
        print(machine_line())
        print(f"threads={args.threads} (numpy BLAS and torch), best of {args.repeat} interleaved rounds; forward + backward per call")
        print_header(
            f"{'case (float32)':<26} {'matgrad ms':>10} {'torch ms':>9} {'ratio':>6} {'goal':>5} | "
            f"{'numpy passes':>12} {'ms':>6} {'matgrad/passes':>14} | {'exp alone ms':>12} | {'max rel err':>11}"
        )
        for name, make in CASES.items():
            ours, theirs, passes, exps, pairs = make(rng)
            err = max(max_relative_error(pairs(ours(), theirs())), max_relative_error(pairs(passes(), theirs())))
            if not err <= 1e-4:
                raise SystemExit(f"{name}: results disagree with PyTorch: max relative error {err:.2e} > 1e-4")
            fns = [ours, theirs, passes] + ([exps] if exps else [])
            times = interleaved_min(fns, repeats=args.repeat)
            t_ours, t_torch, t_passes = times[:3]
            t_exp = f"{1e3 * times[3]:12.2f}" if exps else f"{'-':>12}"
            ratio, goal = t_ours / t_torch, GOALS[name]
            shape = "(4096, 1024)" if name == "layer_norm" else "(4096, 1000)"
            n_passes = len(PASSES[name])
            print(
                f"{name + ' ' + shape:<26} {1e3 * t_ours:10.2f} {1e3 * t_torch:9.2f} {ratio:6.2f} "
                f"{'-' if goal is None else f'{goal:.1f}':>5} | {n_passes:>12} {1e3 * t_passes:6.2f} "
                f"{t_ours / t_passes:14.2f} | {t_exp} | {err:11.1e}"
            )
            if goal is not None and ratio > goal:
                missed.append(f"{name}: ratio {ratio:.2f} > goal {goal}")
    print("ratio = matgrad / torch (forward + backward); numpy passes = the same whole-array NumPy calls, unblocked;")
    print("exp alone = only the np.exp passes over the logits (one for softmax, two for cross-entropy)")
    for name, seq in PASSES.items():
        print(f"  {name}: {' '.join(seq)}  (| separates forward from backward)")
    if missed:
        print("goal missed (timings on a busy machine are indicative):", "; ".join(missed))
    else:
        print("all goals met")


if __name__ == "__main__":
    main()
