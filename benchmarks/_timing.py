"""What the benchmark scripts share: thread setup, an interleaved timer, a machine line.

Every ``bench_*.py`` script imports this module *before* it imports torch (directly
or through another module), because of the first thing it does:

NumPy's OpenBLAS and PyTorch's OpenMP keep separate thread pools in one process. By
default OpenMP threads spin for a while after each parallel region; on a 2-core
machine they then hold the cores that OpenBLAS's threads need, and a 10-microsecond
product can wait milliseconds. Sleeping instead of spinning keeps the two pools from
starving each other, and it has to be asked for before torch is imported. An explicit
``OMP_WAIT_POLICY`` in the environment wins.

The scripts run as ``python benchmarks/bench_X.py``, so this folder is on
``sys.path`` and ``from _timing import ...`` finds this file.
"""

from __future__ import annotations

import os
import sys
import warnings

if "torch" in sys.modules and "OMP_WAIT_POLICY" not in os.environ:
    warnings.warn("torch was imported before _timing: OMP_WAIT_POLICY=PASSIVE comes too late", stacklevel=2)
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import contextlib  # noqa: E402
import math  # noqa: E402
import platform  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
from threadpoolctl import threadpool_info, threadpool_limits  # noqa: E402

#: with ``number="auto"``: calls per timed run are chosen to last about this long (seconds)
AUTO_TARGET = 0.02
#: with ``number="auto"``: a function slower than this per call is timed by its three single calls only
AUTO_SLOW = 0.2


def add_common_args(parser):
    """Add the options every script has (``--threads``) to an ``argparse`` parser; return it."""
    parser.add_argument("--threads", type=int, default=2, help="threads for NumPy's BLAS and for torch (default 2)")
    return parser


@contextlib.contextmanager
def threads(n: int):
    """Within the block, NumPy's BLAS (threadpoolctl) and torch both use ``n`` threads."""
    previous = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        with threadpool_limits(limits=n):
            yield
    finally:
        torch.set_num_threads(previous)


def machine_line() -> str:
    """One line naming the CPU, the BLAS/OpenMP libraries with their thread counts, and the versions."""
    pools = "; ".join(f"{i['internal_api']} {i.get('version')} ({i['num_threads']} threads)" for i in threadpool_info())
    return (
        f"machine: {platform.machine()}, {platform.processor() or 'cpu'}; BLAS/OpenMP: {pools}; "
        f"numpy {np.__version__}, torch {torch.__version__} ({torch.get_num_threads()} threads), "
        f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')}"
    )


def print_header(header: str, width: int | None = None) -> None:
    """Print a table's header line and a rule of dashes under it (``width`` defaults to its length)."""
    print(header)
    print("-" * (len(header) if width is None else width))


def _per_call(fn, number: int, clock) -> float:
    start = clock()
    for _ in range(number):
        fn()
    return (clock() - start) / number


def interleaved_min(fns, *, repeats: int, clock=time.perf_counter, budget=None, max_rounds=None, number=1):
    """Smallest time of one call of each function, the calls of all functions interleaved.

    Every round runs each function in turn (``number`` calls, time divided by
    ``number``), so that a burst of load from other jobs hits all of them alike; the
    minimum over the rounds is the least disturbed run.

    Parameters
    ----------
    fns : list of callables, or dict of name -> callable
        Called without arguments; their results are ignored.
    repeats : int
        Least number of timed rounds.
    clock : callable
        Returns seconds: ``time.perf_counter`` (wall, default) or ``time.process_time``.
    budget : float, optional
        Wall seconds: after ``repeats`` rounds, more rounds run while the timed rounds
        together took less than this, so that fast cases get more samples.
    max_rounds : int, optional
        With ``budget``: no more rounds than this (default: no limit but the budget).
    number : int or "auto"
        Calls per timed run. Before the rounds, every function is called once untimed
        (warm-up). With ``"auto"``, three timed single calls replace the warm-up, count
        as samples, and set each function's calls per run so that a run lasts about
        ``AUTO_TARGET`` seconds; a function slower than ``AUTO_SLOW`` per call is
        timed by those three calls alone.

    Returns
    -------
    list of float, or dict of name -> float
        Seconds per call, in the form of ``fns``.
    """
    calls = list(fns.values()) if isinstance(fns, dict) else list(fns)
    best = [math.inf] * len(calls)
    if number == "auto":
        loops = []
        for i, fn in enumerate(calls):
            best[i] = min(_per_call(fn, 1, clock) for _ in range(3))
            loops.append(0 if best[i] > AUTO_SLOW else max(1, math.ceil(AUTO_TARGET / max(best[i], 1e-9))))
    else:
        for fn in calls:
            fn()
        loops = [number] * len(calls)
    start = time.perf_counter()
    rounds = 0
    while rounds < repeats or (
        budget is not None
        and rounds < (math.inf if max_rounds is None else max_rounds)
        and time.perf_counter() - start < budget
    ):
        for i, fn in enumerate(calls):
            if loops[i]:
                best[i] = min(best[i], _per_call(fn, loops[i], clock))
        rounds += 1
    return dict(zip(fns, best)) if isinstance(fns, dict) else best
