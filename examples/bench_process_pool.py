#!/usr/bin/env python3
"""What a Python programmer would use instead of snakepit:
``concurrent.futures.ProcessPoolExecutor``, doing the work the Rust bench
gives the pool.

Standard library only. The two tools are defined here with the same
behaviour as the showcase adapter's ``ping`` (returns ``"pong"``) and
``cpu_burn`` (busy-loops until the calling thread has used ``ms`` of CPU).

For each tool it measures, after a warm-up that starts every worker process:

- sequential latency: ``executor.submit(tool).result()`` in a loop;
- calls/s with ``--threads`` caller threads each doing the same, which is
  how the Rust bench drives the pool;
- calls/s with ``executor.map(..., chunksize=1)``, the idiomatic batch form;
- for each, this process's own CPU time (user + system, all threads) per
  call.

It prints one JSON line. Run by ``cargo run --release --example bench --
python``; by hand::

    python3 examples/bench_process_pool.py --workers 2 --calls 1000
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from typing import Any


def ping() -> str:
    """Answers 'pong', like the showcase tool."""
    return "pong"


def cpu_burn(ms: int) -> int:
    """Spins until this thread has used ``ms`` milliseconds of CPU (the clock
    read every 100 spins, as the showcase adapter's ``cpu_burn`` does)."""
    until = time.thread_time() + ms / 1000.0
    spins = 0
    while time.thread_time() < until:
        for _ in range(100):
            spins += 1
    return spins


def die_with_parent() -> None:
    """Runs in each worker process: asks Linux to kill it when this script
    dies, so no worker outlives an interrupted bench. Costs nothing per call."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes
    import signal

    pr_set_pdeathsig = 1
    ctypes.CDLL(None).prctl(pr_set_pdeathsig, int(signal.SIGKILL), 0, 0, 0)


def cpu_seconds() -> float:
    """CPU time this process has used so far, all its threads included."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def quantile(values: list[float], q: float) -> float:
    """The ``q``-quantile by nearest rank."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), math.ceil(q * len(ordered))))
    return ordered[rank - 1]


def sequential(executor: ProcessPoolExecutor, call: Callable[[], Any], n: int) -> dict[str, float]:
    """``n`` calls one after another; latency quantiles and CPU per call."""
    latencies = []
    cpu = cpu_seconds()
    for _ in range(n):
        started = time.perf_counter()
        call()
        latencies.append((time.perf_counter() - started) * 1e6)
    return {
        "p50_us": quantile(latencies, 0.50),
        "p99_us": quantile(latencies, 0.99),
        "cpu_per_call_us": (cpu_seconds() - cpu) * 1e6 / n,
    }


def threaded(call: Callable[[], Any], threads: int, n: int) -> dict[str, float]:
    """``n`` calls shared by ``threads`` blocking caller threads."""
    per_thread = n // threads
    gate = threading.Barrier(threads + 1)

    def caller() -> None:
        gate.wait()
        for _ in range(per_thread):
            call()

    pool = [threading.Thread(target=caller) for _ in range(threads)]
    for thread in pool:
        thread.start()
    gate.wait()
    cpu, started = cpu_seconds(), time.perf_counter()
    for thread in pool:
        thread.join()
    wall, calls = time.perf_counter() - started, per_thread * threads
    return {"calls_per_sec": calls / wall, "cpu_per_call_us": (cpu_seconds() - cpu) * 1e6 / calls}


def mapped(executor: ProcessPoolExecutor, fn: Callable[..., Any], args: list[Any], n: int) -> dict[str, float]:
    """``n`` calls through ``executor.map``, one task per call."""
    cpu, started = cpu_seconds(), time.perf_counter()
    if args:
        results = list(executor.map(fn, *[[a] * n for a in args], chunksize=1))
    else:
        results = list(executor.map(_call_without_arguments, [fn] * n, chunksize=1))
    wall = time.perf_counter() - started
    assert len(results) == n
    return {"calls_per_sec": n / wall, "cpu_per_call_us": (cpu_seconds() - cpu) * 1e6 / n}


def _call_without_arguments(fn: Callable[[], Any]) -> Any:
    return fn()


def measure(workers: int, calls: int, threads: int, batch: int) -> dict[str, Any]:
    """Every figure for both tools, on one executor."""
    tools: dict[str, tuple[Callable[..., Any], list[Any]]] = {
        "ping": (ping, []),
        "cpu_burn_1ms": (cpu_burn, [1]),
    }
    figures: dict[str, Any] = {}
    with ProcessPoolExecutor(max_workers=workers, initializer=die_with_parent) as executor:
        # Start every worker and let the first calls pay their set-up.
        warm = [executor.submit(cpu_burn, 5) for _ in range(workers * 4)]
        for future in warm:
            future.result()
        for name, (fn, args) in tools.items():

            def call(fn: Callable[..., Any] = fn, args: list[Any] = args) -> Any:
                return executor.submit(fn, *args).result()

            sequential(executor, call, max(10, calls // 10))
            figures[name] = {
                "sequential": sequential(executor, call, calls),
                "threads": threaded(call, threads, batch),
                "map": mapped(executor, fn, args, batch),
            }
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    parser.add_argument("--calls", type=int, default=1000, help="sequential calls per tool (default 1000)")
    parser.add_argument("--threads", type=int, default=16, help="caller threads (default 16)")
    parser.add_argument("--batch", type=int, default=2000, help="calls per throughput run (default 2000)")
    args = parser.parse_args()
    figures = measure(args.workers, args.calls, args.threads, args.batch)
    line = {
        "python": sys.version.split()[0],
        "workers": args.workers,
        "threads": args.threads,
        **figures,
    }
    print(json.dumps(line))


if __name__ == "__main__":
    main()
