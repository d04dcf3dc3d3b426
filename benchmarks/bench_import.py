"""What ``import matgrad`` costs: whole processes, against ``import numpy``.

matgrad needs NumPy, so ``python -c "import numpy"`` is the floor of any process that
uses it. The question is what matgrad adds on top: its own modules, and, before issue
12, sympy, which only the symbolic functions need and which is now imported on their
first use. Each timed run is a fresh interpreter (``subprocess.run``), so the cost of
starting Python and of reading the modules from the disk cache is included, as a user
meets it. The three commands are run in turn, round after round (``interleaved_min``),
so that a burst of load from other jobs hits all of them alike; the minimum over the
rounds and the median are reported, with the ratio matgrad / numpy (goal: at most 1.5).

Before timing, the script checks what it measures: the child imports the ``matgrad``
of this checkout (``src/`` is put first on ``PYTHONPATH``), ``import matgrad`` leaves
sympy out of ``sys.modules``, and the first use of a symbolic name brings it in.

Run:  .venv/bin/python benchmarks/bench_import.py [--threads 2] [--repeats 21]
"""

from __future__ import annotations

import argparse
import os
import pathlib
import statistics
import subprocess
import sys
import time

from _timing import add_common_args, interleaved_min, machine_line, print_header  # before torch

ROOT = pathlib.Path(__file__).resolve().parent.parent
GOAL = 1.5
COMMANDS = {
    "python -c pass": "pass",
    "import numpy": "import numpy",
    "import matgrad": "import matgrad",
}


def child_env(threads: int) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src")] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        env[var] = str(threads)
    return env


def run(code: str, env: dict) -> str:
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return done.stdout.strip()


def check_what_is_measured(env: dict) -> None:
    where = run("import matgrad; print(matgrad.__file__)", env)
    if not pathlib.Path(where).resolve().is_relative_to(ROOT / "src"):
        sys.exit(f"the child imported matgrad from {where}, not from this checkout's src/")
    light = run("import sys, matgrad; print(sorted(m for m in sys.modules if m.split('.')[0] == 'sympy'))", env)
    if light != "[]":
        sys.exit(f"import matgrad imported sympy: {light[:200]}")
    lazy = run("import sys, matgrad; matgrad.index_matmul_gradient; print('sympy' in sys.modules)", env)
    if lazy != "True":
        sys.exit("the first use of matgrad.index_matmul_gradient did not import sympy")


def main() -> None:
    parser = add_common_args(argparse.ArgumentParser(description=__doc__.split("\n")[0]))
    parser.add_argument("--repeats", type=int, default=21, help="rounds of the three processes (default 21)")
    args = parser.parse_args()
    env = child_env(args.threads)
    check_what_is_measured(env)
    print(machine_line())
    print(f"whole processes: python -c CODE (this interpreter), {args.repeats} interleaved rounds; "
          f"BLAS threads of the children: {args.threads}")

    samples = {name: [] for name in COMMANDS}

    def timed(name):
        def call():
            start = time.perf_counter()
            run(COMMANDS[name], env)
            samples[name].append(time.perf_counter() - start)
        return call

    best = interleaved_min({name: timed(name) for name in COMMANDS}, repeats=args.repeats)
    median = {name: statistics.median(values[1:]) for name, values in samples.items()}  # [0]: the warm-up run
    print()
    print_header(f"{'process':<16} {'min ms':>8} {'median ms':>10} {'min / numpy':>12} {'median / numpy':>15}")
    for name in COMMANDS:
        print(f"{name:<16} {best[name] * 1e3:8.1f} {median[name] * 1e3:10.1f} "
              f"{best[name] / best['import numpy']:12.2f} {median[name] / median['import numpy']:15.2f}")
    ratio = best["import matgrad"] / best["import numpy"]
    added = (best["import matgrad"] - best["import numpy"]) * 1e3
    print(f"\nimport matgrad / import numpy (minimum, whole processes): {ratio:.2f}; goal <= {GOAL}: "
          f"{'met' if ratio <= GOAL else 'MISSED'}")
    print(f"matgrad adds {added:.0f} ms to a process that imports numpy; sympy is not imported "
          f"(checked above) until a symbolic function is used")


if __name__ == "__main__":
    main()
