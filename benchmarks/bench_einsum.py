"""What a backward pass through ``np.einsum`` costs, relative to the forward einsum.

For three expressions that matter in practice,

* a batched matrix product ``bij,bjk->bik``,
* a three-operand contraction, the matrix chain ``ij,jk,kl->il`` (the order of
  the two products decides the cost),
* attention scores ``bhqd,bhkd->bhqk`` (queries against keys, per batch and head),

the script times the forward ``np.einsum(..., optimize=True)`` and
``matgrad.einsum_backward`` (the gradients with respect to every operand) on the
same operands, and prints their ratio. As the baseline it does the same with
PyTorch on the same CPU: ``torch.einsum`` forward, and the backward alone
(``torch.autograd.grad`` on a recorded graph). Backward needs one contraction
per operand, each about as costly as the forward, so a ratio near the number of
operands is what a good implementation gets. Goal: ``einsum_backward`` no worse
than PyTorch's ratio, and within 2.5x of the forward for two operands.

Every gradient is checked against PyTorch's (float64), so a fast wrong answer
fails the script. Times are the minimum over ``--repeats`` runs, the runs of the
different candidates interleaved so a burst of load from other jobs hits all of
them alike. The sizes make one forward take roughly 10 to 50 ms on a 2-thread CPU;
``--scale`` shrinks or grows the batch dimensions.

Run:  .venv/bin/python benchmarks/bench_einsum.py [--threads 2] [--repeats 7] [--scale 1.0] [--clock wall]
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np
import torch
from threadpoolctl import threadpool_limits

from matgrad import einsum_backward


def cases(scale: float):
    """(name, subscripts, shapes) of the benchmarked expressions."""
    b = max(1, round(48 * scale))
    n = max(1, round(8 * scale))
    return [
        ("batched matmul", "bij,bjk->bik", [(b, 192, 192), (b, 192, 192)]),
        ("matrix chain (3 operands)", "ij,jk,kl->il", [(1200, 100), (100, 1200), (1200, 800)]),
        ("attention scores QK^T", "bhqd,bhkd->bhqk", [(n, 8, 256, 64), (n, 8, 256, 64)]),
    ]


def interleaved_min(fns: dict, repeats: int, clock) -> dict:
    """Minimum time of one call of each function, the calls interleaved over ``repeats`` rounds."""
    for fn in fns.values():  # warm up (caches, thread pools, lazy imports)
        fn()
    best = {name: float("inf") for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = clock()
            fn()
            best[name] = min(best[name], clock() - start)
    return best


def run_case(subscripts, shapes, repeats, rng, clock):
    operands = [rng.standard_normal(s) for s in shapes]
    Y = np.einsum(subscripts, *operands, optimize=True)
    G = rng.standard_normal(Y.shape)

    leaves = [torch.tensor(a, requires_grad=True) for a in operands]
    G_t = torch.tensor(G)
    Y_t = torch.einsum(subscripts, *leaves)  # one recorded graph, reused by every backward

    def torch_backward():
        return torch.autograd.grad(Y_t, leaves, G_t, retain_graph=True)

    # correctness first: forward values and every gradient against PyTorch
    torch.testing.assert_close(torch.from_numpy(Y), Y_t.detach(), rtol=1e-10, atol=1e-9)
    for k, (ours, theirs) in enumerate(zip(einsum_backward(subscripts, *operands, grad_out=G), torch_backward())):
        torch.testing.assert_close(torch.from_numpy(ours), theirs, rtol=1e-10, atol=1e-8, msg=f"gradient {k} differs")

    t = interleaved_min(
        {
            "np_forward": lambda: np.einsum(subscripts, *operands, optimize=True),
            "np_backward": lambda: einsum_backward(subscripts, *operands, grad_out=G),
            "torch_forward": lambda: torch.einsum(subscripts, *leaves),
            "torch_backward": torch_backward,
        },
        repeats,
        clock,
    )
    return t


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2, help="threads for NumPy's BLAS and for torch (default 2)")
    parser.add_argument("--repeats", type=int, default=7, help="timed rounds; the minimum is kept (default 7)")
    parser.add_argument("--scale", type=float, default=1.0, help="multiplies the batch sizes (default 1.0)")
    parser.add_argument(
        "--clock",
        choices=["wall", "cpu"],
        default="wall",
        help="wall time (default) or the process's CPU time, steadier on a machine shared with other jobs",
    )
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    clock = time.perf_counter if args.clock == "wall" else time.process_time
    rng = np.random.default_rng(0)
    print(f"numpy {np.__version__}, torch {torch.__version__}, {platform.machine()}, {args.threads} thread(s), {args.clock} clock")
    header = (
        f"{'expression':<28}{'subscripts':<18}{'np fwd ms':>10}{'ours bwd ms':>12}{'ratio':>7}"
        f"{'torch fwd ms':>13}{'torch bwd ms':>13}{'ratio':>7}  goal"
    )
    print(header)
    print("-" * len(header))
    all_ok = True
    with threadpool_limits(limits=args.threads):
        for name, subscripts, shapes in cases(args.scale):
            t = run_case(subscripts, shapes, args.repeats, rng, clock)
            ours = t["np_backward"] / t["np_forward"]
            theirs = t["torch_backward"] / t["torch_forward"]
            ok = ours <= theirs * 1.05 and (len(shapes) != 2 or ours <= 2.5)
            all_ok &= ok
            print(
                f"{name:<28}{subscripts:<18}{t['np_forward'] * 1e3:>10.1f}{t['np_backward'] * 1e3:>12.1f}{ours:>7.2f}"
                f"{t['torch_forward'] * 1e3:>13.1f}{t['torch_backward'] * 1e3:>13.1f}{theirs:>7.2f}  {'met' if ok else 'MISSED'}"
            )
    print("gradients agree with PyTorch (float64) in every case")
    print(
        "goal: backward/forward no worse than PyTorch's (5% slack for timing noise), and <= 2.5 for two operands: "
        + ("met" if all_ok else "MISSED (on a busy machine, re-run before concluding)")
    )


if __name__ == "__main__":
    main()
