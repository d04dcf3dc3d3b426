"""What check_gradients costs on a large float32 layer, and how well its defaults judge.

Part 1. A float32 linear layer + softmax cross-entropy (mean over a batch of 64), with
X of shape (64, 512), W of shape (512, 256) and b of shape (256,), checked with
``check_gradients`` at its defaults (``method="auto"``): the evaluations of f (counted
by wrapping f) and the time, against the 2 * 131,072 = 262,144 evaluations a full
check of W alone makes (its time estimated from the median time of one evaluation of
f). Goal: under 2 % of those evaluations. Then two wrong gradients of W (the mean over
the batch forgotten, and a transpose before a reshape) must fail, and the report must
name entries of W.

Part 2. The defaults on correct gradients (PyTorch autograd, in the inputs' dtype) of
the five realistic layers of ``tests/realistic_layers.py``, in float32 and float64, over
``--seeds`` seeds: the fraction that fails (goal 0), and the smallest relative error
they reject (a gradient scaled by 1 + r, r found by bisection, smallest over layers and
inputs, seed 0).

Run:  .venv/bin/python benchmarks/bench_checks.py [--threads 2] [--seeds 10]
"""

from __future__ import annotations

import argparse
import pathlib
import sys
import time

from _timing import add_common_args, machine_line, threads  # before torch

import numpy as np

from matgrad import check_gradients

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent / "tests"))
from realistic_layers import LAYERS  # noqa: E402


def softmax_ce(n, labels):
    def loss(X, W, b):
        Z = X @ W + b
        Z = Z - Z.max(axis=1, keepdims=True)
        logp = Z - np.log(np.exp(Z).sum(axis=1, keepdims=True))
        return -np.mean(logp[np.arange(n), labels])

    def backward(X, W, b):
        Z = X @ W + b
        P = np.exp(Z - Z.max(axis=1, keepdims=True))
        P /= P.sum(axis=1, keepdims=True)
        P[np.arange(n), labels] -= 1
        G = P / P.dtype.type(n)
        return {"X": G @ W.T, "W": X.T @ G, "b": G.sum(axis=0)}

    return loss, backward


def part1():
    rng = np.random.default_rng(0)
    n, m, k = 64, 512, 256
    inputs = {"X": rng.standard_normal((n, m)).astype(np.float32),
              "W": (rng.standard_normal((m, k)) / np.sqrt(m)).astype(np.float32),
              "b": (0.1 * rng.standard_normal(k)).astype(np.float32)}
    loss, backward = softmax_ce(n, rng.integers(0, k, n))
    grads = backward(**inputs)
    calls = [0]

    def counted(**kw):
        calls[0] += 1
        return loss(**kw)

    one = []
    for _ in range(50):
        t = time.perf_counter()
        loss(**inputs)
        one.append(time.perf_counter() - t)
    t_one = float(np.median(one))
    full_evals = 2 * inputs["W"].size
    t = time.perf_counter()
    report = check_gradients(counted, inputs, grads)
    elapsed = time.perf_counter() - t
    print("Part 1: float32 linear + softmax cross-entropy, X (64, 512), W (512, 256), b (256,)")
    print(f"  full check of W alone: {full_evals:,} evaluations of f, about {full_evals * t_one:.0f} s "
          f"(estimated: {t_one * 1e3:.3f} ms per evaluation, median of 50)")
    print(f"  check_gradients, defaults (auto), correct gradients of X, W, b: passed={report.passed}, "
          f"{calls[0]:,} evaluations of f ({100 * calls[0] / full_evals:.2f} % of the full check of W), "
          f"{elapsed:.2f} s")
    ok = report.passed and calls[0] < 0.02 * full_evals
    wrong = {"mean forgotten (dW times 64)": grads["W"] * 64,
             "transposed before a reshape": (grads["W"].T).reshape(m, k)}
    for what, dW in wrong.items():
        calls[0] = 0
        t = time.perf_counter()
        bad = check_gradients(counted, inputs, {**grads, "W": dW})
        elapsed = time.perf_counter() - t
        r = bad["W"]
        named = (not bad.passed) and bad.failed == ("W",) and r.method == "directional+entries" and r.n_failed > 0
        print(f"  wrong dW, {what}: failed={not bad.passed}, {calls[0]:,} evaluations ({100 * calls[0] / full_evals:.2f} %), "
              f"{elapsed:.2f} s; {r.n_failed} of the sampled entries fail, worst entry {list(r.worst_index)}; "
              f"diagnosis: {r.diagnosis}")
        ok = ok and named and calls[0] < 0.02 * full_evals
    print(f"  goal (< 2 % of the evaluations, wrong gradients named by entry): {'met' if ok else 'MISSED'}")
    return ok


def smallest_rejected(layer, dtype):
    inputs = layer.inputs(0, dtype)
    grads = layer.oracle_grads(inputs)
    worst = 0.0
    for key in inputs:
        lo, hi = 0.0, 0.2
        for _ in range(14):
            r = 0.5 * (lo + hi)
            if check_gradients(layer.numpy_loss, inputs, {**grads, key: (grads[key] * (1 + r)).astype(dtype)}).passed:
                lo = r
            else:
                hi = r
        worst = max(worst, hi)  # the error this input's check needs before it fails
    return worst


def part2(seeds):
    print(f"\nPart 2: the defaults on correct gradients (PyTorch autograd), {len(LAYERS)} layers x {seeds} seeds")
    print(f"  {'layer':34s} {'dtype':8s} {'false failures':>15s} {'worst error/tol':>16s} {'smallest rejected r':>20s}")
    ok = True
    for dtype, goal in ((np.float64, 0.01), (np.float32, 0.05)):
        total_false = 0
        for layer in LAYERS:
            false, margin = 0, 0.0
            for seed in range(seeds):
                inputs = layer.inputs(seed, dtype)
                grads = layer.oracle_grads(inputs)
                report = check_gradients(layer.numpy_loss, inputs, grads)
                false += not report.passed
                for key, res in report.items():
                    fd = res.finite_differences
                    margin = max(margin, float(np.max(np.abs(grads[key] - fd) / (res.atol + res.rtol * np.abs(fd)))))
            r = smallest_rejected(layer, dtype)
            total_false += false
            ok = ok and false == 0 and r < goal
            print(f"  {layer.name:34s} {np.dtype(dtype).name:8s} {false:>8d} of {seeds:<4d} {margin:>16.2e} {r:>20.2e}")
        print(f"  {np.dtype(dtype).name}: {total_false} false failures in {len(LAYERS) * seeds} checks; "
              f"goal: 0, and every error of {goal:.0%} rejected")
    print(f"  goal: {'met' if ok else 'MISSED'}")
    return ok


def main():
    parser = add_common_args(argparse.ArgumentParser(description=__doc__.split("\n")[0]))
    parser.add_argument("--seeds", type=int, default=10, help="seeds per layer and dtype in part 2 (default 10)")
    args = parser.parse_args()
    print(machine_line())
    with threads(args.threads):
        ok = part1()
        ok = part2(args.seeds) and ok
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
