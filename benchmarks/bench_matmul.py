"""How long matgrad.matmul_backward takes, relative to the forward product A @ B.

A backward pass through C = A @ B is two products of the size of the forward one
(dA = dC @ B^T and dB = A^T @ dC), so its time divided by the forward time should
be close to 2.0. The same ratio is measured for PyTorch autograd on the same CPU
and thread count. Cases: square float32 and float64 products of size 1024, and a
stack (64, 128, 256) @ (256, 128) whose weight gradient must be one large product.

Run:  python benchmarks/bench_matmul.py [--threads N] [--repeat R]
"""

from __future__ import annotations

import argparse

from _timing import add_common_args, interleaved_min, machine_line, print_header, threads  # before torch

import numpy as np
import torch

from matgrad import matmul_backward

CASES = [
    ("1024x1024 @ 1024x1024", (1024, 1024), (1024, 1024), np.float32),
    ("1024x1024 @ 1024x1024", (1024, 1024), (1024, 1024), np.float64),
    ("(64,128,256) @ (256,128)", (64, 128, 256), (256, 128), np.float32),
    ("(64,128,256) @ (256,128)", (64, 128, 256), (256, 128), np.float64),
]


def run_case(shape_a, shape_b, dtype, repeat, rng):
    A = rng.standard_normal(shape_a).astype(dtype)
    B = rng.standard_normal(shape_b).astype(dtype)
    dC = rng.standard_normal(np.matmul(A, B).shape).astype(dtype)

    tA = torch.from_numpy(A).requires_grad_(True)
    tB = torch.from_numpy(B).requires_grad_(True)
    tdC = torch.from_numpy(dC)

    C = tA @ tB  # one graph, kept, so that only the backward pass is timed

    def torch_backward():
        tA.grad = None  # with no stored grad, autograd assigns instead of accumulating
        tB.grad = None
        C.backward(tdC, retain_graph=True)

    def torch_forward():
        with torch.no_grad():
            tA @ tB

    m = A.shape[-1]
    t_fwd, t_fwd_rows, t_bwd, t_tfwd, t_tbwd = interleaved_min(
        [
            lambda: A @ B,
            lambda: A.reshape(-1, m) @ B,  # the same forward product as one large one (B is shared)
            lambda: matmul_backward(A, B, dC),
            torch_forward,
            torch_backward,
        ],
        repeats=repeat,
        budget=2.0,  # more rounds while the case has taken under 2 s, so fast cases get more samples
        max_rounds=50,
    )
    # the stricter baseline: numpy's stacked A @ B loops over the stack, one product per matrix
    t_fwd = min(t_fwd, t_fwd_rows)

    # a fast wrong answer must not pass: compare with PyTorch (float64 tolerances scaled for float32)
    dA, dB = matmul_backward(A, B, dC)
    torch_backward()
    tol = {"rtol": 1e-4, "atol": 1e-3} if dtype == np.float32 else {"rtol": 1e-10, "atol": 1e-9}
    torch.testing.assert_close(torch.from_numpy(dA), tA.grad, **tol)
    torch.testing.assert_close(torch.from_numpy(dB), tB.grad, **tol)
    return t_fwd, t_bwd, t_tfwd, t_tbwd


def main():
    parser = add_common_args(argparse.ArgumentParser(description=__doc__.splitlines()[0]))
    parser.add_argument("--repeat", type=int, default=5, help="least number of timed rounds per case (more while a case took under 2 s); the minimum is kept")
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    with threads(args.threads):
        print(machine_line())
        print(f"threads={args.threads} (numpy BLAS and torch), best of at least {args.repeat} interleaved runs; ratio = backward / forward")
        print_header(
            f"{'case':<26} {'dtype':<8} {'fwd ms':>8} {'bwd ms':>8} {'ratio':>6} | "
            f"{'torch fwd':>9} {'torch bwd':>9} {'ratio':>6} | {'bwd/torch bwd':>13}"
        )
        for name, shape_a, shape_b, dtype in CASES:
            t_fwd, t_bwd, t_tfwd, t_tbwd = run_case(shape_a, shape_b, dtype, args.repeat, rng)
            print(
                f"{name:<26} {np.dtype(dtype).name:<8} {1e3 * t_fwd:8.1f} {1e3 * t_bwd:8.1f} {t_bwd / t_fwd:6.2f} | "
                f"{1e3 * t_tfwd:9.1f} {1e3 * t_tbwd:9.1f} {t_tbwd / t_tfwd:6.2f} | {t_bwd / t_tbwd:13.2f}"
            )
    print("fwd = the faster of A @ B and A.reshape(-1, m) @ B (numpy's stacked matmul can be much slower)")
    print("goal: matgrad ratio <= 2.2 and <= torch ratio (a backward pass is two forward-sized products);")
    print("the last column compares the two backward passes directly (below 1: matgrad is faster)")


if __name__ == "__main__":
    main()
