"""Forward pass plus backpropagation through time: matgrad.rnn against PyTorch autograd.

The cell c_t = tanh(W_c c_{t-1} + W_x x_t + b) in the column convention, run over T
steps and differentiated through the loss L = sum_t <G_t, c_t>. Measured in the same
run, on the same thread count:

- matgrad: ``rnn_forward`` then ``rnn_backward`` (NumPy);
- torch: the same cell written step by step with torch ops, eager, ``backward()``
  by autograd (what one writes without thinking about speed);
- torch, batched input: the same, but with the input products W_x x_t of all steps
  computed as one product before the loop (the trick matgrad uses), for reference.

The ratio column is matgrad / torch (below 1: matgrad is faster); goals from issue 5:
at most 0.75 for the large case (T=50, m=64, n_x=128, n_c=256) and 0.3 for the small
one (T=20, m=8, n_x=16, n_c=32). The gradients of all five arguments are compared
with torch's (float64: relative error below 1e-10), so a fast wrong answer fails.

Run:  python benchmarks/bench_rnn.py [--threads N] [--repeat R]
"""

from __future__ import annotations

import argparse

from _timing import add_common_args, interleaved_min, machine_line, print_header, threads  # before torch

import numpy as np
import torch

from matgrad import rnn_backward, rnn_forward

CASES = [  # (name, T, m, n_x, n_c, goal)
    ("large", 50, 64, 128, 256, 0.75),
    ("small", 20, 8, 16, 32, 0.3),
]
NAMES = ("xs", "c0", "W_c", "W_x", "b")
GRAD_OF = {"xs": "dxs", "c0": "dc0", "W_c": "dW_c", "W_x": "dW_x", "b": "db"}


def make_problem(T, m, n_x, n_c, dtype, rng):
    args = {
        "xs": rng.standard_normal((T, n_x, m)),
        "c0": rng.standard_normal((n_c, m)),
        "W_c": rng.standard_normal((n_c, n_c)) / np.sqrt(n_c),
        "W_x": rng.standard_normal((n_c, n_x)) / np.sqrt(n_x),
        "b": 0.1 * rng.standard_normal((n_c, 1)),
    }
    G = rng.standard_normal((T, n_c, m))
    return {k: v.astype(dtype) for k, v in args.items()}, G.astype(dtype)


def torch_functions(args, G):
    """Two eager PyTorch versions of forward + BPTT; each returns the five gradients."""
    leaves = {k: torch.from_numpy(v).requires_grad_(True) for k, v in args.items()}
    tG = torch.from_numpy(G)
    T = G.shape[0]

    def per_step():
        for v in leaves.values():
            v.grad = None
        xs, c, W_c, W_x, b = (leaves[k] for k in NAMES)
        cs = []
        for t in range(T):
            c = torch.tanh(W_c @ c + W_x @ xs[t] + b)
            cs.append(c)
        torch.stack(cs).backward(tG)
        return {GRAD_OF[k]: v.grad for k, v in leaves.items()}

    def batched_input():
        for v in leaves.values():
            v.grad = None
        xs, c, W_c, W_x, b = (leaves[k] for k in NAMES)
        n_x, m = xs.shape[1], xs.shape[2]
        U = W_x @ xs.permute(1, 0, 2).reshape(n_x, T * m) + b  # (n_c, T*m)
        U = U.reshape(-1, T, m)
        cs = []
        for t in range(T):
            c = torch.tanh(torch.addmm(U[:, t, :], W_c, c))
            cs.append(c)
        torch.stack(cs).backward(tG)
        return {GRAD_OF[k]: v.grad for k, v in leaves.items()}

    return per_step, batched_input


def max_relative_error(ours, theirs):
    """Largest over the five gradients of max|ours - theirs| / max|theirs|."""
    worst = 0.0
    for key, value in theirs.items():
        ref = value.detach().numpy().astype(np.float64)
        diff = np.max(np.abs(ours[key].astype(np.float64) - ref))
        worst = max(worst, diff / max(np.max(np.abs(ref)), np.finfo(np.float64).tiny))
    return worst


def run_case(T, m, n_x, n_c, dtype, repeat, rng):
    args, G = make_problem(T, m, n_x, n_c, dtype, rng)

    def matgrad_fn():
        _, cache = rnn_forward(*(args[k] for k in NAMES))
        return rnn_backward(G, cache)

    torch_step, torch_batched = torch_functions(args, G)
    number = max(1, int(2e6 // (T * m * n_c * (n_c + n_x))))  # about equal work per round
    t_ours, t_torch, t_torch_b = interleaved_min(
        [matgrad_fn, torch_step, torch_batched], repeats=repeat, number=number
    )

    ours = matgrad_fn()
    err = max(max_relative_error(ours, torch_step()), max_relative_error(ours, torch_batched()))
    limit = 1e-10 if dtype == np.float64 else 1e-4
    if not err <= limit:
        raise SystemExit(f"gradients disagree with PyTorch: max relative error {err:.2e} > {limit:g}")
    return t_ours, t_torch, t_torch_b, err


def main():
    parser = add_common_args(argparse.ArgumentParser(description=__doc__.splitlines()[0]))
    parser.add_argument("--repeat", type=int, default=5, help="timed rounds per measurement; the best is kept")
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    missed = []
    with threads(args.threads):
        print(machine_line())
        print(f"threads={args.threads} (numpy BLAS and torch), best of {args.repeat} rounds; forward + BPTT per call")
        print_header(
            f"{'case':<28} {'dtype':<8} {'matgrad ms':>10} {'torch ms':>9} {'ratio':>6} {'goal':>5} | "
            f"{'torch batched ms':>16} {'ratio':>6} | {'max rel err':>11}"
        )
        for name, T, m, n_x, n_c, goal in CASES:
            for dtype in (np.float32, np.float64):
                t_ours, t_torch, t_torch_b, err = run_case(T, m, n_x, n_c, dtype, args.repeat, rng)
                ratio = t_ours / t_torch
                label = f"{name} T={T} m={m} nx={n_x} nc={n_c}"
                print(
                    f"{label:<28} {np.dtype(dtype).name:<8} {1e3 * t_ours:10.3f} {1e3 * t_torch:9.3f} {ratio:6.2f} "
                    f"{goal:5.2f} | {1e3 * t_torch_b:16.3f} {t_ours / t_torch_b:6.2f} | {err:11.1e}"
                )
                if ratio > goal:
                    missed.append(f"{label} {np.dtype(dtype).name}: ratio {ratio:.2f} > goal {goal}")
    print("ratio = matgrad time / torch time (below 1: matgrad is faster); gradients checked against both torch versions")
    if missed:
        print("goal missed (timings on a busy machine are indicative):", "; ".join(missed))
    else:
        print("all goals met")


if __name__ == "__main__":
    main()
