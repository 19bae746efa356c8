#!/usr/bin/env python3
"""The Python worker's own share of a call, with no transport and no host.

Two measurements the README's performance notes rest on:

- the worker's servicer running a tool call in-process (decode the request,
  open the adapter, bind the arguments, run the tool, encode the result):
  wall time and thread CPU per call, for the showcase adapter's ``ping`` and
  ``cpu_burn(ms=1)``;
- what memory costs on first touch: making a new 64 MiB ``bytearray``
  against copying 64 MiB into one already touched (the reason the socket
  transport receives large segments into memory it used before).

Each figure is the median of several rounds. Run from the repository root::

    python3 examples/bench_python_worker.py
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from typing import Callable

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))

from snakepit_bridge import protocol, serialization  # noqa: E402 - needs the path set above
from snakepit_bridge.adapter_provider import AdapterProvider  # noqa: E402
from snakepit_bridge.servicer import BridgeServicer  # noqa: E402
from snakepit_showcase.adapter import ShowcaseAdapter  # noqa: E402

ROUNDS = 5
MIB64 = 64 << 20


def per_call(run: Callable[[], object], calls: int) -> tuple[float, float]:
    """Median over rounds of (wall µs, thread CPU µs) per call of ``run``."""
    walls, cpus = [], []
    for _ in range(calls // 10):
        run()
    for _ in range(ROUNDS):
        wall, cpu = time.perf_counter(), time.thread_time()
        for _ in range(calls):
            run()
        walls.append((time.perf_counter() - wall) / calls * 1e6)
        cpus.append((time.thread_time() - cpu) / calls * 1e6)
    return statistics.median(walls), statistics.median(cpus)


def servicer_calls() -> None:
    adapters = AdapterProvider(ShowcaseAdapter, per_worker=False)
    servicer = BridgeServicer(adapters, "bench", None, serialize_calls=True, capacity=1)
    for tool, arguments, calls in (("ping", {}, 20_000), ("cpu_burn", {"ms": 1}, 1_000)):
        request = protocol.ExecuteToolRequest(tool_name=tool)
        for name, value in arguments.items():
            request.parameters[name].CopyFrom(serialization.parameter_any(value))
        wire = request.SerializeToString()

        def call(wire: bytes = wire) -> None:
            response, _ = servicer.execute(protocol.ExecuteToolRequest.FromString(wire), {})
            assert response.success, response.error_message
            response.SerializeToString()

        wall, cpu = per_call(call, calls)
        label = f"{tool}({', '.join(f'{k}={v}' for k, v in arguments.items())})"
        print(f"servicer, in-process, {label:<14} {wall:8.1f} µs wall  {cpu:8.1f} µs thread CPU per call")


def memory() -> None:
    source = bytearray(os.urandom(1 << 20)) * 64
    touched = bytearray(MIB64)
    touched[:] = source

    def timed(run: Callable[[], object]) -> float:
        times = []
        for _ in range(7):
            started = time.perf_counter()
            run()
            times.append(time.perf_counter() - started)
        return statistics.median(times) * 1e3

    fresh = timed(lambda: bytearray(MIB64))
    reused = timed(lambda: touched.__setitem__(slice(None), source))
    print(f"new 64 MiB bytearray (first touch of its pages) {fresh:8.1f} ms")
    print(f"copy 64 MiB into memory already touched         {reused:8.1f} ms")


if __name__ == "__main__":
    servicer_calls()
    memory()
