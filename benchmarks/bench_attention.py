"""Attention forward + backward: matgrad.attention against PyTorch's scaled_dot_product_attention.

Two measurements, both in one run:

1. Time of ``attention_forward`` followed by ``attention_backward`` against
   ``torch.nn.functional.scaled_dot_product_attention`` followed by ``backward()``
   (autograd; on CPU PyTorch picks its own fused kernel), for Q, K, V of shape
   (8, 4, 256, 64) in float32 and float64, without and with ``causal`` / ``is_causal``.
   Times are the minimum over interleaved rounds (``_timing.interleaved_min``); the
   ratio is matgrad / torch (goal from issue 14: at most 1.0 in every case). The
   gradients are compared with PyTorch's, so a fast wrong answer fails.
2. Peak memory of ``attention_backward`` beyond its inputs (dO and the cache) and its
   outputs (dQ, dK, dV), measured with ``tracemalloc`` (NumPy reports its buffers to
   it), for one head of growing sequence length n (Q, K, V of shape (n, 64), float64),
   printed in units of one n x n array of the dtype, ``peak / (n_q * n_k * itemsize)``.
   The goal: at most one such array, never two. For reference the same is measured for
   a straightforward backward that materialises P and dP.

Run:  python benchmarks/bench_attention.py [--threads N] [--repeat R] [--max-n N]
"""

from __future__ import annotations

import argparse
import tracemalloc

from _timing import add_common_args, interleaved_min, machine_line, print_header, threads  # before torch

import numpy as np
import torch
import torch.nn.functional as F

from matgrad import attention_backward, attention_forward

SHAPE = (8, 4, 256, 64)


def max_relative_error(ours, theirs):
    worst = 0.0
    for a, b in zip(ours, theirs):
        ref = b.detach().numpy().astype(np.float64)
        worst = max(worst, np.max(np.abs(a.astype(np.float64) - ref)) / max(np.max(np.abs(ref)), 1e-300))
    return worst


def time_case(dtype, causal, repeat, rng):
    Q, K, V, dO = (rng.standard_normal(SHAPE).astype(dtype) for _ in range(4))
    leaves = [torch.from_numpy(x).requires_grad_(True) for x in (Q, K, V)]
    t_dO = torch.from_numpy(dO)

    def ours():
        _, cache = attention_forward(Q, K, V, causal=causal)
        return attention_backward(dO, cache)

    def theirs():
        for x in leaves:
            x.grad = None
        F.scaled_dot_product_attention(*leaves, is_causal=causal).backward(t_dO)
        return [x.grad for x in leaves]

    def ours_forward():
        return attention_forward(Q, K, V, causal=causal)

    def theirs_forward():
        with torch.no_grad():
            return F.scaled_dot_product_attention(*leaves, is_causal=causal)

    times = interleaved_min(
        {"ours": ours, "torch": theirs, "ours fwd": ours_forward, "torch fwd": theirs_forward},
        repeats=repeat,
        budget=4.0,
        max_rounds=4 * repeat,
    )
    err = max_relative_error(ours(), theirs())
    limit = 1e-10 if dtype == np.float64 else 1e-4
    if not err <= limit:
        raise SystemExit(f"gradients disagree with PyTorch: max relative error {err:.2e} > {limit:g}")
    return times, err


def peak_beyond(fn):
    """tracemalloc peak of fn() beyond what was allocated before it, minus the bytes of its results."""
    tracemalloc.start()
    try:
        start = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        result = fn()
        peak = tracemalloc.get_traced_memory()[1] - start
    finally:
        tracemalloc.stop()
    return peak - sum(r.nbytes for r in result)


def storing_backward(dO, Q, K, V):
    """The textbook backward that stores the weights P and dP at the same time (reference only)."""
    S = Q @ K.T / np.sqrt(Q.shape[-1])
    S -= S.max(axis=-1, keepdims=True)
    P = np.exp(S, out=S)
    P /= P.sum(axis=-1, keepdims=True)
    dV = P.T @ dO
    dS = dO @ V.T  # dP, a second n x n array
    dS -= np.sum(dO * (P @ V), axis=-1, keepdims=True)
    dS *= P
    dS /= np.sqrt(Q.shape[-1])
    return dS @ K, dS.T @ Q, dV


def memory_table(max_n, rng):
    print(f"peak memory of the backward beyond its inputs and outputs (tracemalloc), one head, Q, K, V of shape (n, 64), float64")
    print("unit: one n x n float64 array (n * n * 8 bytes); goal: ours <= 1 at every n")
    print_header(f"{'n':>6} {'n x n array':>12} {'ours':>8} {'storing P and dP':>17}")
    worst = 0.0
    n = 256
    while n <= max_n:
        Q, K, V, dO = (rng.standard_normal((n, 64)) for _ in range(4))
        _, cache = attention_forward(Q, K, V, max_bytes=float("inf"))
        unit = n * n * 8
        ours = peak_beyond(lambda: attention_backward(dO, cache)) / unit
        storing = peak_beyond(lambda: storing_backward(dO, Q, K, V)) / unit
        worst = max(worst, ours)
        print(f"{n:6d} {unit / 2**20:9.1f} MiB {ours:8.3f} {storing:17.3f}")
        n *= 2
    return worst


def main():
    parser = add_common_args(argparse.ArgumentParser(description=__doc__.splitlines()[0]))
    parser.add_argument("--repeat", type=int, default=7, help="least number of timed rounds; the best is kept")
    parser.add_argument("--max-n", type=int, default=8192, help="largest sequence length of the memory table")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    missed = []
    with threads(args.threads):
        print(machine_line())
        print(f"threads={args.threads} (numpy BLAS and torch); Q, K, V, dO of shape {SHAPE}; forward + backward per call")
        print_header(
            f"{'case':<18} {'dtype':<8} {'matgrad ms':>10} {'torch ms':>9} {'ratio':>6} | "
            f"{'fwd ms':>7} {'torch fwd':>9} {'ratio':>6} | {'max rel err':>11}"
        )
        for causal in (False, True):
            for dtype in (np.float32, np.float64):
                t, err = time_case(dtype, causal, args.repeat, rng)
                ratio = t["ours"] / t["torch"]
                label = "causal" if causal else "no mask"
                print(
                    f"{label:<18} {np.dtype(dtype).name:<8} {1e3 * t['ours']:10.2f} {1e3 * t['torch']:9.2f} {ratio:6.2f} | "
                    f"{1e3 * t['ours fwd']:7.2f} {1e3 * t['torch fwd']:9.2f} {t['ours fwd'] / t['torch fwd']:6.2f} | "
                    f"{err:11.1e}"
                )
                if ratio > 1.0:
                    missed.append(f"{label} {np.dtype(dtype).name}: ratio {ratio:.2f} > 1.0")
        print("ratio = matgrad time / torch time (below 1: matgrad is faster); goal: forward + backward ratio <= 1.0")
        print()
        worst = memory_table(args.max_n, rng)
    if worst > 1.0:
        missed.append(f"backward peak memory {worst:.3f} n x n arrays > 1")
    if missed:
        print("goal missed (timings on a busy machine are indicative):", "; ".join(missed))
    else:
        print("all goals met")


if __name__ == "__main__":
    main()
