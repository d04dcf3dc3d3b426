"""What a gradient check costs: matgrad's checks against torch.autograd.gradcheck.

The function is f(X) = sum(G * tanh(X @ W)) with X, W, G square of size 64 and 256
in float64; its gradient is dX = (G * (1 - tanh(X W)^2)) @ W.T. Four checks of that
gradient are compared, in evaluations of f (counted by wrapping f) and in time:

* ``matgrad.check_gradient(method="full")``: one central difference per entry,
  2 N evaluations for N = X.size;
* ``matgrad.check_gradient(method="directional", n_directions=k)``: one central
  difference along each of k random unit directions, 2 k evaluations;
* ``torch.autograd.gradcheck`` in its default mode: a numerical Jacobian, one
  central difference per input entry;
* ``torch.autograd.gradcheck(fast_mode=True)``: one random projection of the
  Jacobian, the same power as ``n_directions=1``.

The matgrad times include computing the claimed gradient by the closed form (torch
computes its claimed gradient by autograd inside gradcheck). A full check that would
take longer than ``--budget`` seconds is stopped after that long and its time is
extrapolated from the evaluations it made (rows marked "extrapolated"); its count of
evaluations is exact either way (2 N for matgrad; for torch, 2 N plus the few extra
calls counted on an 8 x 8 problem that runs in full). Every check must pass, and a
deliberately wrong gradient must fail the directional check, so that a fast check
that checks nothing is caught.

Run:  .venv/bin/python benchmarks/bench_gradcheck.py [--threads 2] [--budget 3]
"""

from __future__ import annotations

import argparse
import time

from _timing import add_common_args, interleaved_min, machine_line, print_header, threads  # before torch

import numpy as np
import torch

from matgrad import check_gradient


class _Stop(Exception):
    """Raised inside f to end a full check once its time budget is spent."""


class Counted:
    """Wrap f: count its calls, note when each happened, and stop after ``budget`` seconds if asked."""

    def __init__(self, f, budget=None):
        self.f = f
        self.budget = budget
        self.times = []

    def __call__(self, x):
        now = time.perf_counter()
        self.times.append(now)
        if self.budget is not None and now - self.start > self.budget and len(self.times) > 64:
            raise _Stop
        return self.f(x)

    def run(self, check):
        """Run ``check()``; return (seconds, evaluations, completed)."""
        self.times = []
        self.start = time.perf_counter()
        try:
            check()
            completed = True
        except _Stop:
            completed = False
        return time.perf_counter() - self.start, len(self.times), completed


def extrapolate(counted: Counted, elapsed: float, total_evaluations: int) -> float:
    """Time a stopped run would have taken: its time so far plus the remaining calls at the recent rate."""
    stamps = counted.times[16:-1]  # skip the start-up calls and the call that raised
    per_call = (stamps[-1] - stamps[0]) / (len(stamps) - 1)
    done = len(counted.times) - 1
    return elapsed + per_call * (total_evaluations - done)


def problem(N: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((N, N))
    W = rng.standard_normal((N, N)) / np.sqrt(N)  # keeps X @ W of order 1, so tanh is not saturated
    G = rng.standard_normal((N, N))
    return X, W, G


def main() -> None:
    parser = add_common_args(argparse.ArgumentParser(description=__doc__.split("\n\n")[0]))
    parser.add_argument("--repeats", type=int, default=7, help="timed runs of the cheap checks; the minimum is kept")
    parser.add_argument("--budget", type=float, default=3.0, help="seconds before a full check is extrapolated")
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 256])
    args = parser.parse_args()

    with threads(args.threads):
        print(machine_line())
        print("f(X) = sum(G * tanh(X @ W)), float64; time: minimum of "
              f"{args.repeats} interleaved runs for the cheap checks, one run (or extrapolated) for the full ones\n")

        # torch's default mode calls f 2N times plus a few extra calls: count them on a size that runs in full.
        X8, W8, G8 = problem(8)
        W8t, G8t = torch.from_numpy(W8), torch.from_numpy(G8)
        probe = Counted(lambda Xt: torch.sum(G8t * torch.tanh(Xt @ W8t)))
        probe.run(lambda: torch.autograd.gradcheck(probe, (torch.from_numpy(X8.copy()).requires_grad_(True),)))
        torch_extra = len(probe.times) - 2 * X8.size

        header = f"{'size':>7} {'check':<34} {'evals of f':>11} {'time':>12}  note"
        print_header(header, width=len(header) + 14)
        for N in args.sizes:
            X, W, G = problem(N)
            Wt, Gt = torch.from_numpy(W), torch.from_numpy(G)
            f_np = Counted(lambda X: float(np.sum(G * np.tanh(X @ W))))
            f_torch = Counted(lambda Xt: torch.sum(Gt * torch.tanh(Xt @ Wt)))

            def grad(X):
                T = np.tanh(X @ W)
                return (G * (1.0 - T * T)) @ W.T

            # The claimed gradient agrees with torch autograd (an independent oracle).
            Xt = torch.from_numpy(X.copy()).requires_grad_(True)
            (dX_torch,) = torch.autograd.grad(f_torch.f(Xt), Xt)
            np.testing.assert_allclose(grad(X), dX_torch.numpy(), rtol=1e-10, atol=1e-12)

            rows = []

            # The cheap checks, timed in interleaved rounds (after one warm-up run of each); every
            # run counts the evaluations of f and must pass on the correct gradient.
            cheap = [
                (
                    f"matgrad directional, {k} direction" + ("s" if k > 1 else ""),
                    lambda k=k: check_gradient(f_np, X, grad(X), method="directional", n_directions=k, seed=0),
                    f_np,
                )
                for k in (1, 8)
            ]
            cheap.append((
                "torch gradcheck fast_mode=True",
                lambda: torch.autograd.gradcheck(
                    f_torch, (torch.from_numpy(X.copy()).requires_grad_(True),), fast_mode=True
                ),
                f_torch,
            ))
            counts = {}

            def run_checked(name, make_check, f):
                outcome = []
                _, counts[name], _ = f.run(lambda: outcome.append(make_check()))
                if not bool(outcome[0]):
                    raise SystemExit(f"{name} failed on the correct gradient at size {N}")

            best = interleaved_min({c[0]: (lambda c=c: run_checked(*c)) for c in cheap}, repeats=args.repeats)
            rows.extend((name, counts[name], best[name], "") for name, _, _ in cheap)

            # The full checks, stopped after the budget and extrapolated if they take too long.
            total = 2 * X.size
            f_np.budget = args.budget
            result = []
            seconds, evaluations, completed = f_np.run(lambda: result.append(check_gradient(f_np, X, grad(X))))
            if completed:
                assert result[0].passed and result[0].n_evaluations == evaluations == total
                rows.append(("matgrad full", evaluations, seconds, ""))
            else:
                rows.append(("matgrad full", total, extrapolate(f_np, seconds, total),
                             f"extrapolated from {evaluations - 1} evaluations"))
            f_np.budget = None

            total_torch = 2 * X.size + torch_extra
            f_torch.budget = args.budget
            Xt = torch.from_numpy(X.copy()).requires_grad_(True)  # gradcheck perturbs its input in place
            seconds, evaluations, completed = f_torch.run(lambda: result.append(torch.autograd.gradcheck(f_torch, (Xt,))))
            if completed:
                assert result[-1] is True and evaluations == total_torch
                rows.append(("torch gradcheck (default)", evaluations, seconds, ""))
            else:
                rows.append(("torch gradcheck (default)", total_torch,
                             extrapolate(f_torch, seconds, total_torch),
                             f"extrapolated from {evaluations - 1} evaluations"))
            f_torch.budget = None

            for name, evaluations, seconds, note in rows:
                shown = f"{seconds * 1e3:.2f} ms" if seconds < 1 else f"{seconds:.1f} s"
                print(f"{N:>3}x{N:<3} {name:<34} {evaluations:>11,} {shown:>12}  {note}")

            by_name = {name: (evaluations, seconds) for name, evaluations, seconds, _ in rows}
            ours, theirs = by_name["matgrad directional, 1 direction"], by_name["torch gradcheck fast_mode=True"]
            print(
                f"        goal (1 direction vs torch fast mode): fewer evaluations {ours[0] < theirs[0]} "
                f"({ours[0]} vs {theirs[0]}), less time {ours[1] < theirs[1]} "
                f"(ratio {theirs[1] / ours[1]:.1f}x)"
            )

            # Test the test: a gradient with one wrong entry fails the cheap check.
            wrong = grad(X)
            wrong[N // 2, N // 3] += 1.0
            caught = not check_gradient(f_np, X, wrong, method="directional", n_directions=8, seed=0)
            print(f"        a gradient with one entry off by 1 fails the 8-direction check: {caught}\n")
            if not caught:
                raise SystemExit("the directional check missed a wrong gradient")

    print(
        "Evaluations of f: full checks 2 N (N = X.size), directional checks 2 k. A wrong gradient g passes one\n"
        "random direction v only if <g - grad f, v> falls inside the tolerance, so k independent directions\n"
        "miss it with probability p**k (p for one direction); chapter 7 (ch-cost) measures p and p**k."
    )


if __name__ == "__main__":
    main()
