"""Adapters for the reliability tests: tools that behave as a hostile or
careless tool would, to prove that the worker and the pool survive them.

:class:`HostileAdapter` runs in the process profile,
:class:`ThreadedHostileAdapter` in the thread profile; both also have the
showcase tools (``ping``, ``echo``, ...).
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
from collections.abc import Iterator
from types import FrameType
from typing import Any

from snakepit_bridge import BaseAdapter, ThreadSafeAdapter, tool
from snakepit_showcase.adapter import ShowcaseTools


class CustomBaseError(BaseException):
    """A ``BaseException`` that is not an ``Exception``, as a library may define."""


def base_exception(kind: str, message: str) -> BaseException:
    """The ``BaseException`` named by ``kind``: ``CancelledError``,
    ``KeyboardInterrupt``, ``GeneratorExit``, ``SystemExit`` or
    ``CustomBaseError``."""
    kinds: dict[str, type[BaseException]] = {
        "CancelledError": asyncio.CancelledError,
        "KeyboardInterrupt": KeyboardInterrupt,
        "GeneratorExit": GeneratorExit,
        "SystemExit": SystemExit,
        "CustomBaseError": CustomBaseError,
    }
    return kinds[kind](message)


class HostileTools:
    """The hostile tools, shared by both adapters."""

    @tool(description="Raises the BaseException named by kind")
    def raise_base(self, kind: str, message: str = "base") -> None:
        """Raises ``base_exception(kind, message)``."""
        raise base_exception(kind, message)

    @tool(description="Awaits, then raises the BaseException named by kind")
    async def raise_base_async(self, kind: str, message: str = "base") -> None:
        """An async tool that raises ``base_exception(kind, message)``."""
        await asyncio.sleep(0)
        raise base_exception(kind, message)

    @tool(description="Streams n items, then raises the BaseException named by kind", supports_streaming=True)
    def stream_then_raise_base(self, n: int, kind: str, message: str = "base") -> Iterator[int]:
        """Yields ``0 .. n-1``, then raises ``base_exception(kind, message)``."""
        yield from range(n)
        raise base_exception(kind, message)

    @tool(description="A list nested depth levels deep around 'core'")
    def nested(self, depth: int) -> Any:
        """``[[...["core"]...]]`` with ``depth`` lists; ``depth = 0`` is ``"core"``."""
        value: Any = "core"
        for _ in range(depth):
            value = [value]
        return value

    @tool(description="Starts a daemon in a new session that outlives its parent; returns its pid")
    def spawn_daemon(self, seconds: int = 600) -> int:
        """Starts ``sleep seconds`` the way a daemon does: in a new session
        (out of the worker's process group), by a parent that exits at once,
        so the sleep is nobody's child. Returns the sleep's pid."""
        script = (
            "import os, subprocess, sys\n"
            "null = subprocess.DEVNULL\n"
            "child = subprocess.Popen(['sleep', sys.argv[1]], stdin=null, stdout=null, stderr=null,\n"
            "                         start_new_session=True)\n"
            "print(child.pid, flush=True)\n"
            "os._exit(0)\n"
        )
        launcher = subprocess.run(
            [sys.executable, "-c", script, str(seconds)],
            check=True,
            capture_output=True,
            text=True,
            start_new_session=True,
        )
        return int(launcher.stdout.strip())

    @tool(description="Writes bytes that are not its reply on its own host connection (socket transport)")
    def garble_reply(self, how: str) -> str:
        """Writes, on the connection this call came on, ``garbage`` (bytes
        that are not a frame), ``oversized`` (a header announcing a frame past
        any limit) or ``truncated`` (part of a frame, then the connection shut):
        what a C library scribbling on a file descriptor it does not own would
        do. Only on the socket transport (it finds the connection in its
        callers' frames)."""
        from snakepit_bridge import frames
        from snakepit_bridge.socket_server import Connection

        frame: FrameType | None = sys._getframe()
        while frame is not None and not isinstance(frame.f_locals.get("self"), Connection):
            frame = frame.f_back
        if frame is None:
            raise RuntimeError("garble_reply works on the socket transport only")
        sock: socket.socket = frame.f_locals["self"].sock
        if how == "garbage":
            sock.sendall(b"this is not a frame\n" * 4)
        elif how == "oversized":
            sock.sendall(frames.HEADER.pack(frames.MAGIC, frames.RESULT, 0, 2**31, 0, 0))
        elif how == "truncated":
            sock.sendall(frames.HEADER.pack(frames.MAGIC, frames.RESULT, 0, 100, 0, 0) + b"cut")
            sock.shutdown(socket.SHUT_RDWR)
        else:
            raise ValueError(f"how must be garbage, oversized or truncated, got {how!r}")
        return "garbled"


class HostileAdapter(HostileTools, ShowcaseTools, BaseAdapter):
    """The hostile tools for the process profile."""


class ThreadedHostileAdapter(HostileTools, ShowcaseTools, ThreadSafeAdapter):
    """The hostile tools for the thread profile."""
