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
(``torch.autograd.grad`` on a recorded graph). For two operands the backward is
two contractions, each about as costly as the forward, so a ratio near 2 is what
a good implementation gets. Goal: ``einsum_backward`` no worse
than PyTorch's ratio, and within 2.5x of the forward for two operands.

The column "floor" is the multiply-add count of the backward divided by the
forward's, for a backward that receives only the operands and ``G``: with NumPy's
greedy pairwise path, each step of k operands costs k times its forward share in
the backward, and every step but the last must be recomputed (its result is an
intermediate that nobody kept). For two operands that is 2; for the matrix chain
it is 2.5, while PyTorch's backward reuses the intermediate its forward saved
(floor 2). So on three operands ``einsum_backward`` can miss PyTorch's *ratio*
while being faster in absolute terms (PyTorch contracts left to right unless
opt_einsum is installed, which here costs it several times more work).

The column "bwd/torch" compares the two backward passes directly (below 1: ours
is faster). A ratio to the forward also rewards a slow forward: where NumPy's
forward is the more efficient of the two, PyTorch's ratio can come out below
the floor of 2 while its backward is the slower one.

Every gradient is checked against PyTorch's (float64), so a fast wrong answer
fails the script. Times are the minimum over ``--repeats`` runs, the runs of the
different candidates interleaved so a burst of load from other jobs hits all of
them alike. The sizes make one forward take roughly 10 to 50 ms on a 2-thread CPU;
``--scale`` shrinks or grows the batch dimensions.

Run:  .venv/bin/python benchmarks/bench_einsum.py [--threads 2] [--repeats 10] [--scale 1.0] [--clock wall]
"""

from __future__ import annotations

import argparse
import time

from _timing import add_common_args, interleaved_min, machine_line, print_header, threads  # before torch

import numpy as np
import torch

from matgrad import einsum_backward


def cases(scale: float):
    """(name, subscripts, shapes) of the benchmarked expressions."""
    b = max(1, round(96 * scale))
    n = max(1, round(16 * scale))
    return [
        ("batched matmul", "bij,bjk->bik", [(b, 192, 192), (b, 192, 192)]),
        ("matrix chain (3 operands)", "ij,jk,kl->il", [(1600, 128), (128, 1600), (1600, 1200)]),
        ("attention scores QK^T", "bhqd,bhkd->bhqk", [(n, 8, 256, 64), (n, 8, 256, 64)]),
    ]


def flop_floor(subscripts: str, shapes) -> float:
    """Multiply-adds of a stateless backward along NumPy's greedy path, over the forward's."""
    dummies = [np.broadcast_to(np.empty(()), s) for s in shapes]
    path, _ = np.einsum_path(subscripts, *dummies, optimize="greedy")
    lhs, out = subscripts.split("->")
    sizes = {}
    for term, shape in zip(lhs.split(","), shapes):
        sizes.update(zip(term, shape))
    live = lhs.split(",")
    forward = backward = 0.0
    for i, positions in enumerate(path[1:]):
        step = [live.pop(x) for x in sorted(positions, reverse=True)]
        cost = float(np.prod([sizes[c] for c in set("".join(step))]))
        needed = set(out).union(*live)
        result = out if i == len(path) - 2 else "".join(c for c in dict.fromkeys("".join(step)) if c in needed)
        live.append(result)
        forward += cost
        backward += len(step) * cost + (cost if i < len(path) - 2 else 0.0)
    return backward / forward


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
        repeats=repeats,
        clock=clock,
    )
    return t


def main() -> None:
    parser = add_common_args(argparse.ArgumentParser(description=__doc__.split("\n\n")[0]))
    parser.add_argument("--repeats", type=int, default=10, help="timed rounds; the minimum is kept (default 10)")
    parser.add_argument("--scale", type=float, default=1.0, help="multiplies the batch sizes (default 1.0)")
    parser.add_argument(
        "--clock",
        choices=["wall", "cpu"],
        default="wall",
        help="wall time (default) or the process's CPU time, steadier on a machine shared with other jobs",
    )
    args = parser.parse_args()

    clock = time.perf_counter if args.clock == "wall" else time.process_time
    rng = np.random.default_rng(0)
    all_ok = True
    with threads(args.threads):
        print(f"{machine_line()}; {args.clock} clock")
        print_header(
            f"{'expression':<28}{'subscripts':<18}{'np fwd ms':>10}{'ours bwd ms':>12}{'ratio':>7}"
            f"{'torch fwd ms':>13}{'torch bwd ms':>13}{'ratio':>7}{'floor':>7}{'bwd/torch':>10}  goal"
        )
        for name, subscripts, shapes in cases(args.scale):
            t = run_case(subscripts, shapes, args.repeats, rng, clock)
            ours = t["np_backward"] / t["np_forward"]
            theirs = t["torch_backward"] / t["torch_forward"]
            ok = ours <= theirs * 1.05 and (len(shapes) != 2 or ours <= 2.5)
            all_ok &= ok
            print(
                f"{name:<28}{subscripts:<18}{t['np_forward'] * 1e3:>10.1f}{t['np_backward'] * 1e3:>12.1f}{ours:>7.2f}"
                f"{t['torch_forward'] * 1e3:>13.1f}{t['torch_backward'] * 1e3:>13.1f}{theirs:>7.2f}"
                f"{flop_floor(subscripts, shapes):>7.2f}{t['np_backward'] / t['torch_backward']:>10.2f}"
                f"  {'met' if ok else 'MISSED'}"
            )
    print("gradients agree with PyTorch (float64) in every case")
    print(
        "goal: backward/forward no worse than PyTorch's (5% slack for timing noise), and <= 2.5 for two operands: "
        + ("met" if all_ok else "MISSED (on a busy machine, re-run before concluding; see 'floor' for 3+ operands)")
    )


if __name__ == "__main__":
    main()
