"""The Jacobian route against the closed form for the input gradient of Y = X @ W.

For X of shape (n, m) and W of shape (m, d), the gradient dX = G @ W.T of a loss
whose gradient with respect to Y is G can be computed two ways:

* the Jacobian route: build J = dY/dX, an (n, d, n, m) array
  (``matgrad.matmul_jacobian``), then contract it with G (``matgrad.vjp_from_jacobian``);
* the closed form: one product G @ W.T, which is what reverse-mode frameworks do.

With m and d fixed, the Jacobian route needs n^2 d m numbers and about 2 n^2 d m
flops, the closed form n m numbers and about 2 n d m flops, so their time ratio
should grow about linearly in n (exponent 1). The script times both as n grows by factors of about sqrt(2),
up to the largest size whose Jacobian stays within ``--max-gib`` (default 0.5 GiB,
comfortable on a 24 GiB machine shared with other jobs), prints the ratio per size
and the fitted exponent, and checks that every route gives the same dX (NumPy's
forward product X @ W and PyTorch's backward on the same CPU are the baselines).

Run:  .venv/bin/python benchmarks/bench_jacobian.py [--threads 2] [--repeats 5]
"""

from __future__ import annotations

import argparse
import math

from _timing import add_common_args, interleaved_min, machine_line, print_header, threads  # before torch

import numpy as np
import torch

from matgrad import format_bytes, jacobian_nbytes, matmul_jacobian, vjp_from_jacobian

try:  # the package's closed form, from the matrix-product chapter
    from matgrad import matmul_backward
except ImportError:  # pragma: no cover - older checkouts
    matmul_backward = None

MACHINE_BYTES = 24 * 2**30  # the book's build machines


def fitted_exponent(ns, values) -> float:
    """Slope of log(values) against log(ns), by least squares."""
    return float(np.polyfit(np.log(ns), np.log(values), 1)[0])


def main() -> None:
    parser = add_common_args(argparse.ArgumentParser(description=__doc__.split("\n\n")[0]))
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per measurement; the minimum is kept")
    parser.add_argument("--features", type=int, default=64, help="m = d, the feature sizes (default 64)")
    parser.add_argument("--max-gib", type=float, default=0.5, help="largest Jacobian to build, in GiB (default 0.5)")
    args = parser.parse_args()

    m = d = args.features
    dtype = np.float32  # the element type of source note 004's 16 GiB example
    rtol = 1e-4  # float32 products of different summation order
    ns = []  # n grows by about sqrt(2) per step, from 16 while the Jacobian fits in --max-gib
    k = 0
    while jacobian_nbytes((round(16 * 2 ** (k / 2)), d), (round(16 * 2 ** (k / 2)), m), dtype) <= args.max_gib * 2**30:
        ns.append(round(16 * 2 ** (k / 2)))
        k += 1

    with threads(args.threads):
        print(machine_line())
        print(f"Y = X @ W, X (n, {m}), W ({m}, {d}), float32; dX by the Jacobian route and by G @ W.T")
        print(f"times: the minimum over {args.repeats} interleaved runs (3 single calls when a call takes > 0.2 s)\n")
        print_header(
            f"{'n':>5} {'J size':>10} {'forward X@W':>12} {'closed G@W.T':>13} {'torch grad':>11} "
            f"{'build J':>10} {'contract':>10} {'J route':>10} {'J/closed':>9}"
        )
        rng = np.random.default_rng(0)
        W = rng.standard_normal((m, d)).astype(dtype)
        ratios, t_routes, t_closeds = [], [], []
        for n in ns:
            X = rng.standard_normal((n, m)).astype(dtype)
            G = rng.standard_normal((n, d)).astype(dtype)
            nbytes = jacobian_nbytes((n, d), (n, m), dtype)

            Xt = torch.from_numpy(X).requires_grad_(True)
            Wt, Gt = torch.from_numpy(W), torch.from_numpy(G)
            def torch_grad():
                Yt = Xt @ Wt
                return torch.autograd.grad(Yt, Xt, grad_outputs=Gt)

            t_forward, t_closed, t_torch = interleaved_min(
                [lambda: X @ W, lambda: G @ W.T, torch_grad], repeats=args.repeats, number="auto"
            )
            # Agreement: a fast wrong answer must not count. (After the cheap timings, so that
            # freeing a large J does not disturb them.)
            J = matmul_jacobian(X, W, "A", max_bytes=nbytes)
            dX_route = vjp_from_jacobian(J, G)
            dX_closed = G @ W.T
            (dX_torch,) = torch.autograd.grad(Xt @ Wt, Xt, grad_outputs=Gt)
            np.testing.assert_allclose(dX_route, dX_closed, rtol=rtol, atol=rtol * np.abs(dX_closed).max())
            np.testing.assert_allclose(dX_torch.numpy(), dX_closed, rtol=rtol, atol=rtol * np.abs(dX_closed).max())
            if matmul_backward is not None:
                dA, _ = matmul_backward(X, W, G)
                np.testing.assert_allclose(dA, dX_closed, rtol=rtol, atol=rtol * np.abs(dX_closed).max())
            del J, dX_route

            (t_build,) = interleaved_min(
                [lambda: matmul_jacobian(X, W, "A", max_bytes=nbytes)], repeats=args.repeats, number="auto"
            )
            J = matmul_jacobian(X, W, "A", max_bytes=nbytes)
            (t_contract,) = interleaved_min([lambda: vjp_from_jacobian(J, G)], repeats=args.repeats, number="auto")
            del J
            t_route = t_build + t_contract
            ratios.append(t_route / t_closed)
            t_routes.append(t_route)
            t_closeds.append(t_closed)
            print(
                f"{n:>5} {format_bytes(nbytes):>10} {t_forward * 1e6:>10.1f}us {t_closed * 1e6:>11.1f}us "
                f"{t_torch * 1e6:>9.1f}us {t_build * 1e3:>8.2f}ms {t_contract * 1e3:>8.2f}ms "
                f"{t_route * 1e3:>8.2f}ms {t_route / t_closed:>9.0f}"
            )

        # The closed form alone, on to sizes whose Jacobian could never be built, to see its own exponent
        # once fixed per-call costs no longer dominate.
        ns_long = [2**k for k in range(10, 17)]
        Gs = [rng.standard_normal((n, d)).astype(dtype) for n in ns_long]
        t_long = interleaved_min([lambda G=G: G @ W.T for G in Gs], repeats=args.repeats, number="auto")
        print(
            "\nclosed form G @ W.T alone for n = "
            + ", ".join(f"{n}: {t * 1e6:.0f}us" for n, t in zip(ns_long, t_long))
            + f"\n  (the Jacobian at n = {ns_long[-1]} would need "
            f"{format_bytes(jacobian_nbytes((ns_long[-1], d), (ns_long[-1], m), dtype))})"
        )

    print()
    print(
        f"fitted exponent of the ratio J route / closed form against n: {fitted_exponent(ns, ratios):.2f} "
        f"(operation counts predict 1: (2nd - 1) / (2d - 1) times the flops, n d times the memory)"
    )
    print(
        f"fitted exponent of the J route alone: {fitted_exponent(ns, t_routes):.2f} (predicted 2); "
        f"of the closed form alone over the same n: {fitted_exponent(ns, t_closeds):.2f} (predicted 1, but "
        f"at these small sizes a call's fixed overhead dominates, which also steepens the ratio)"
    )
    print(
        f"fitted exponent of the closed form for n = {ns_long[0]} ... {ns_long[-1]}: "
        f"{fitted_exponent(ns_long, t_long):.2f} (predicted 1)"
    )
    n_max = math.isqrt(MACHINE_BYTES // jacobian_nbytes((1, d), (1, m), dtype))
    print(
        f"largest n whose float32 Jacobian fits in 24 GiB at all (m = d = {m}): {n_max} "
        f"({format_bytes(jacobian_nbytes((n_max, d), (n_max, m), dtype))}); n = 1024 needs "
        f"{format_bytes(jacobian_nbytes((1024, d), (1024, m), dtype))}"
    )
    print("all routes agree (Jacobian route, closed form, torch autograd" + (", matmul_backward)" if matmul_backward else ")"))


if __name__ == "__main__":
    main()
