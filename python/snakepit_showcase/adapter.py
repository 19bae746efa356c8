"""Showcase adapters: the tools the Rust tests and examples call.

:class:`ShowcaseAdapter` runs in the process profile (one call at a time per
process); :class:`ThreadedShowcaseAdapter` has the same tools and runs in the
thread profile (``--max-workers N``). The tools exercise the value encoding,
errors, concurrency, crashes, memory, streaming and sessions.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any, Optional

from snakepit_bridge import BaseAdapter, SessionContext, ThreadSafeAdapter, telemetry, tool

_POLL_S = 0.002

# Memory held on purpose by allocate_mb, and children kept by spawn_child
# (so they are not reaped or warned about when the Popen is dropped).
_HELD: list[bytearray] = []
_CHILDREN: list[subprocess.Popen[bytes]] = []
_COUNTER_LOCK = threading.Lock()

_EXCEPTIONS: dict[str, type[BaseException]] = {
    cls.__name__: cls
    for cls in (
        ValueError,
        KeyError,
        RuntimeError,
        TypeError,
        ZeroDivisionError,
        IndexError,
        AttributeError,
        LookupError,
        ArithmeticError,
        OSError,
        FileNotFoundError,
        PermissionError,
        TimeoutError,
        NotImplementedError,
        AssertionError,
        MemoryError,
        OverflowError,
        UnicodeError,
        Exception,
    )
}


def _count_lines(path: str) -> int:
    with open(path, encoding="utf-8") as handle:
        return sum(1 for _ in handle)


class ShowcaseTools:
    """The showcase tools, shared by both adapters."""

    # Provided by the adapter base class these tools are mixed into.
    session_context: SessionContext | None

    def _call_context(self) -> SessionContext:
        context = self.session_context
        if context is None:
            raise RuntimeError("no session context: this tool only runs in a worker's call")
        return context

    @tool(description="Answers 'pong'")
    def ping(self) -> str:
        """Answers 'pong'."""
        return "pong"

    @tool(description="Whether this worker process has imported the module")
    def imported(self, module: str) -> bool:
        """True when ``module`` is in ``sys.modules`` (e.g. ``grpc``, which a
        worker on the socket transport never imports)."""
        return module in sys.modules

    @tool(description="Returns its argument unchanged")
    def echo(self, value: Any) -> Any:
        """Returns ``value`` unchanged.

        Args:
            value: any JSON value.
        """
        return value

    @tool(description="Adds two numbers")
    def add(self, a: float, b: float) -> float:
        """Adds two numbers (ints stay ints).

        Args:
            a: first addend.
            b: second addend.
        """
        return a + b

    @tool(description="Sleeps ms milliseconds and returns ms")
    def sleep(self, ms: int) -> int:
        """Sleeps ``ms`` milliseconds."""
        time.sleep(ms / 1000.0)
        return ms

    @tool(description="Raises the builtin exception named by kind")
    def raise_error(self, kind: str = "ValueError", message: str = "boom") -> None:
        """Raises ``kind(message)``; ``kind="chained"`` raises a ValueError
        caused by a KeyError; an unknown kind raises RuntimeError."""
        if kind == "chained":
            try:
                raise KeyError("inner cause")
            except KeyError as cause:
                raise ValueError(message) from cause
        raise _EXCEPTIONS.get(kind, RuntimeError)(message)

    @tool(description="Burns ms milliseconds of CPU in Python")
    def cpu_burn(self, ms: int) -> int:
        """Busy-loops for ``ms`` of this thread's CPU time; returns the iterations.
        The clock is read every 100 iterations (a few microseconds), so a
        call overshoots ``ms`` by about that much."""
        end = time.thread_time() + ms / 1000.0
        iterations = 0
        while time.thread_time() < end:
            for _ in range(100):
                iterations += 1
        return iterations

    @tool(description="Waits until `parties` calls have arrived in dir")
    def barrier(self, dir: str, parties: int, timeout_s: float = 10.0) -> int:
        """A barrier across threads and processes: drops a file in ``dir``,
        then waits until ``dir`` holds ``parties`` files. Returns the count."""
        os.makedirs(dir, exist_ok=True)
        name = f"arrived-{os.getpid()}-{threading.get_ident()}-{uuid.uuid4().hex}"
        with open(os.path.join(dir, name), "x", encoding="utf-8"):
            pass
        deadline = time.monotonic() + timeout_s
        while True:
            count = len(os.listdir(dir))
            if count >= parties:
                return count
            if time.monotonic() >= deadline:
                raise TimeoutError(f"barrier: {count} of {parties} parties arrived within {timeout_s}s")
            time.sleep(_POLL_S)

    @tool(description="Appends a line to a file; returns its line count")
    def record(self, path: str, value: str = "") -> int:
        """Appends ``value`` and a newline to ``path``; returns the lines now in it."""
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(value + "\n")
            handle.flush()
        return _count_lines(path)

    @tool(description="Blocks until a file exists")
    def wait_for_file(self, path: str, timeout_s: float = 30.0) -> bool:
        """Polls until ``path`` exists; TimeoutError after ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        while not os.path.exists(path):
            if time.monotonic() >= deadline:
                raise TimeoutError(f"{path} did not appear within {timeout_s}s")
            time.sleep(_POLL_S)
        return True

    @tool(description="record(), then wait_for_file()")
    def record_then_wait(self, record_path: str, wait_path: str, value: str = "", timeout_s: float = 30.0) -> bool:
        """Records that the call started, then waits to be released."""
        self.record(record_path, value)
        return self.wait_for_file(wait_path, timeout_s)

    @tool(description="The worker's process id")
    def pid(self) -> int:
        """``os.getpid()``."""
        return os.getpid()

    @tool(description="Writes message to stderr and exits the process at once")
    def crash(self, code: int = 1, message: str = "") -> None:
        """``os._exit(code)`` after writing ``message`` to stderr."""
        sys.stderr.write(message + "\n")
        sys.stderr.flush()
        os._exit(code)

    @tool(description="Sends a signal to the worker itself")
    def kill_self(self, signal: int = 9) -> None:
        """``os.kill(os.getpid(), signal)``."""
        os.kill(os.getpid(), signal)
        time.sleep(5)  # a caught signal must not look like a normal return

    @tool(description="Starts `sleep seconds` as a child and returns its pid")
    def spawn_child(self, seconds: int = 600) -> int:
        """Starts a grandchild of the host that does not end by itself."""
        child = subprocess.Popen(["sleep", str(seconds)])
        _CHILDREN.append(child)
        return child.pid

    @tool(description="Holds mb more MiB of resident memory; returns the total held")
    def allocate_mb(self, mb: int) -> int:
        """Allocates and touches ``mb`` MiB, kept until the process ends."""
        size = mb * 1024 * 1024
        block = bytearray(size)
        block[::4096] = b"\x01" * len(range(0, size, 4096))
        _HELD.append(block)
        return sum(len(b) for b in _HELD) // (1024 * 1024)

    @tool(description="Resident memory of this process in KiB")
    def rss_kb(self) -> int:
        """VmRSS from /proc/self/status."""
        with open("/proc/self/status", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise RuntimeError("VmRSS not found in /proc/self/status")

    @tool(description="Returns the bytes it was given")
    def binary_echo(self, data: bytes) -> bytes:
        """Returns ``data`` itself (travels raw in binary_result; no copy)."""
        return data

    @tool(description="The bytes it was given, repeated or cut to n bytes")
    def binary_resize(self, data: bytes, n: int) -> bytes:
        """``n`` bytes: ``data`` repeated as often as needed, then cut."""
        if not data:
            return bytes(n)
        return (bytes(data) * (n // len(data) + 1))[:n]

    @tool(description="Length of the bytes it was given")
    def binary_len(self, data: bytes) -> int:
        """``len(data)``."""
        return len(data)

    @tool(description="n bytes of the pattern 0, 1, ..., 255, 0, ...")
    def make_bytes(self, n: int) -> bytes:
        """Bytes of length ``n``: byte i is ``i % 256``."""
        pattern = bytes(range(256))
        return (pattern * (n // 256 + 1))[:n]

    @tool(description="A map with every JSON kind")
    def types(self) -> dict[str, Any]:
        """Every JSON kind, 64-bit integer extremes and non-ASCII text."""
        return {
            "int": 42,
            "negative": -7,
            "zero": 0,
            "i64_max": 2**63 - 1,
            "i64_min": -(2**63),
            "float": 0.1,
            "float_whole": 2.0,
            "string": "plain",
            "unicode": "héllo ✓ 🐍",
            "empty_string": "",
            "true": True,
            "false": False,
            "null": None,
            "list": [1, "two", 3.0, None, [4, [5]]],
            "empty_list": [],
            "map": {"nested": {"deeper": [1, {"x": "y"}]}},
            "empty_map": {},
        }

    @tool(description="Returns NaN, which has no JSON form (the call fails)")
    def nan(self) -> float:
        """``float('nan')``: the call fails with a ValueError saying why."""
        return float("nan")

    @tool(description="Returns an object with no JSON form (becomes a marker)")
    def unserializable(self) -> Any:
        """An instance of a local class; arrives as ``__ffi_unserializable__``."""

        class Opaque:
            pass

        return Opaque()

    @tool(description="Streams {'i': i} for i in range(n)", supports_streaming=True)
    def count_stream(self, n: int, delay_ms: int = 0) -> Iterator[dict[str, int]]:
        """Yields ``{"i": i}`` n times, sleeping ``delay_ms`` between items."""
        for i in range(n):
            if delay_ms and i:
                time.sleep(delay_ms / 1000.0)
            yield {"i": i}

    @tool(description="Yields 'first', waits for release_path to exist, then yields 'second'", supports_streaming=True)
    def stream_gated(self, release_path: str, timeout_s: float = 30.0) -> Iterator[str]:
        """Proves chunks travel while the generator runs: the second item
        waits for a file the reader creates after it got the first."""
        yield "first"
        self.wait_for_file(release_path, timeout_s)
        yield "second"

    @tool(description="Yields n chunks of raw bytes of the given size", supports_streaming=True)
    def bytes_stream(self, n: int, size: int = 4) -> Iterator[bytes]:
        """Yields ``bytes([i % 256]) * size`` for i in range(n)."""
        for i in range(n):
            yield bytes([i % 256]) * size

    @tool(description="Streams n items, then raises", supports_streaming=True)
    def stream_then_fail(self, n: int, message: str = "stream failed") -> Iterator[dict[str, int]]:
        """Yields ``{"i": i}`` n times, then raises RuntimeError(message)."""
        for i in range(n):
            yield {"i": i}
        raise RuntimeError(message)

    @tool(description="Streams until cancelled; appends 'closed' to closed_path when it ends", supports_streaming=True)
    def stream_until_cancelled(self, closed_path: str, interval_ms: int = 10) -> Iterator[dict[str, int]]:
        """Yields forever; its ``finally`` records that it was closed."""
        i = 0
        try:
            while True:
                yield {"i": i}
                i += 1
                time.sleep(interval_ms / 1000.0)
        finally:
            self.record(closed_path, "closed")

    @tool(description="Increments the session's counter and returns it")
    def session_counter(self) -> int:
        """Counts calls per session in this process (the session store)."""
        context = self._call_context()
        with _COUNTER_LOCK:
            count: int = context.store.get("counter", 0) + 1
            context.store["counter"] = count
            return count

    @tool(description="Prints `message` and logs it at WARNING: both reach the host's log")
    def say(self, message: str) -> bool:
        """Writes to stdout and to the ``logging`` module."""
        print(f"printed: {message}")
        logging.getLogger("showcase").warning("logged: %s", message)
        return True

    @tool(description="Logs `message` and returns the call's correlation id")
    def correlation(self, message: str) -> Optional[str]:
        """What the tool sees of the host's correlation id; the log line carries it."""
        logging.getLogger("showcase").warning("correlated: %s", message)
        return telemetry.get_correlation_id()

    @tool(description="Emits `n` telemetry events `name` with measurement `i` = 0..n-1")
    def emit_events(self, n: int, name: str = "showcase.tick") -> int:
        """Emits as fast as it can: telemetry must never slow a tool down much."""
        for i in range(n):
            telemetry.emit(name, {"i": i}, {"source": "emit_events"})
        return n

    @tool(description="Whether this worker records telemetry, and its sampling rate")
    def telemetry_settings(self) -> dict[str, Any]:
        """What the host's telemetry controls last set here."""
        backend = telemetry.get_backend()
        return {"enabled": telemetry.is_enabled(), "sampling_rate": getattr(backend, "sampling_rate", None)}

    @tool(description="Calls made on this adapter instance (1 unless instances are kept per worker)")
    def instance_calls(self) -> int:
        """Counts calls on ``self``: shows whether the instance is reused."""
        self._instance_calls = getattr(self, "_instance_calls", 0) + 1
        return self._instance_calls

    @tool(description="pid, worker id and session id of this call")
    def whoami(self) -> dict[str, Any]:
        """Where this call ran."""
        context = self.session_context
        return {
            "pid": os.getpid(),
            "worker_id": context.worker_id if context else "",
            "session_id": context.session_id if context else "",
        }

    @tool(description="Calls a tool on the host and returns its result")
    def call_host(self, name: str, arguments: Optional[dict[str, Any]] = None) -> Any:
        """``session_context.call_host_tool(name, **arguments)``."""
        context = self._call_context()
        return context.call_host_tool(name, **(arguments or {}))

    @tool(description="Calls a host tool with bytes argument `data` (plus JSON arguments); returns its result")
    def call_host_binary(
        self, name: str, data: bytes, arguments: Optional[dict[str, Any]] = None, repeat: int = 1
    ) -> Any:
        """``session_context.call_host_tool(name, data=data * repeat, **arguments)``:
        ``data`` reaches the host as bytes, and a bytes result comes back as
        the tool's bytes result."""
        context = self._call_context()
        payload = memoryview(data) if repeat == 1 else data * repeat
        return context.call_host_tool(name, data=payload, **(arguments or {}))

    @tool(description="The host's tools: [{name, description, supports_streaming}]")
    def list_host_tools(self) -> list[dict[str, Any]]:
        """``session_context.host_tools()``."""
        return self._call_context().host_tools()


class ShowcaseAdapter(ShowcaseTools, BaseAdapter):
    """The showcase tools for the process profile."""


class ThreadedShowcaseAdapter(ShowcaseTools, ThreadSafeAdapter):
    """The showcase tools for the thread profile, plus ``thread_id``."""

    @tool(description="The id of the thread running this call")
    def thread_id(self) -> int:
        """``threading.get_ident()``."""
        return threading.get_ident()
