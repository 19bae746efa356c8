"""An adapter for the fault-injection suite (``tests/faults.rs`` and
``bench -- faults``): the showcase tools plus tools that fail the way a
worker fails in the field.

* ``crash_once`` kills its process the first time it runs.
* ``cut_reply`` and ``cut_stream`` shut the process's connected sockets down
  in the middle of a call: the connection to the host dies, the process
  lives on.
* ``spew`` writes binary garbage to stdout and stderr at full speed.

While the file named by ``SNAKEPIT_FAULTS_MARKER`` exists, the adapter
refuses to import (a worker stuck in a crash loop at start-up).
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator

from snakepit_bridge import BaseAdapter, tool
from snakepit_showcase.adapter import ShowcaseTools

_MARKER = os.environ.get("SNAKEPIT_FAULTS_MARKER", "")
if _MARKER and os.path.exists(_MARKER):
    raise RuntimeError(f"faults adapter: refusing to start while {_MARKER} exists")

# How long ``cut_stream`` goes on yielding after the cut, at most: the
# generator must end even if nobody cancels it.
_AFTER_CUT_S = 30.0


def cut_connections() -> int:
    """Shuts down every connected socket of this process (both directions),
    leaving listening sockets alone. Returns how many were cut."""
    cut = 0
    for name in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{name}")
        except OSError:
            continue  # closed since the listing
        if not target.startswith("socket:"):
            continue
        try:
            sock = socket.socket(fileno=int(name))
        except OSError:
            continue
        try:
            sock.getpeername()  # OSError (ENOTCONN) for a listening socket
            sock.shutdown(socket.SHUT_RDWR)
            cut += 1
        except OSError:
            pass
        finally:
            sock.detach()  # the descriptor stays the server's
    return cut


def garbage(size: int) -> bytes:
    """``size`` bytes that are no text: invalid UTF-8, NULs, control bytes,
    a newline only every 100,003 bytes (lines far past any line limit)."""
    block = bytes((i * 131 + 7) % 256 for i in range(4096)).replace(b"\n", b"\xff")
    data = bytearray((block * (size // len(block) + 1))[:size])
    data[100_002::100_003] = b"\n" * len(range(100_002, size, 100_003))
    return bytes(data)


class FaultyAdapter(ShowcaseTools, BaseAdapter):
    """The showcase tools plus the fault tools."""

    @tool(description="Kills its process the first time (creating `path`); returns 'survived' after")
    def crash_once(self, path: str) -> str:
        if not os.path.exists(path):
            with open(path, "w", encoding="utf-8"):
                pass
            os._exit(13)
        return "survived"

    @tool(description="Cuts the process's connections, then returns 'cut' (a reply with nowhere to go)")
    def cut_reply(self) -> str:
        """The reply is written to a connection that is gone."""
        cut_connections()
        return "cut"

    @tool(description="Streams n items, cuts the process's connections, then streams on", supports_streaming=True)
    def cut_stream(self, n: int, interval_ms: int = 10) -> Iterator[dict[str, int]]:
        """Yields ``{"i": i}`` n times, cuts the connections mid-stream, then
        goes on yielding every ``interval_ms`` for a bounded while."""
        yield from ({"i": i} for i in range(n))
        cut_connections()
        end = time.monotonic() + _AFTER_CUT_S
        i = n
        while time.monotonic() < end:
            time.sleep(interval_ms / 1000.0)
            yield {"i": i}
            i += 1

    @tool(description="Writes mb MiB of binary garbage, half to stdout and half to stderr; returns the bytes written")
    def spew(self, mb: int) -> int:
        """Writes with ``os.write`` on descriptors 1 and 2, bypassing any
        Python buffering, as a C library would."""
        chunk = garbage(1 << 20)
        written = 0
        for k in range(mb):
            view = memoryview(chunk)
            while view:
                n = os.write(1 if k % 2 == 0 else 2, view)
                view = view[n:]
                written += n
        return written
