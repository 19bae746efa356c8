"""The socket transport's frames (the host side is ``src/transport/frame.rs``;
the layout is in ``proto/socket-framing.md``).

A frame is a 16-byte header, a protobuf message, then raw binary segments::

    header   magic "SP" | kind u8 | flags u8 | message length u32 | call id u32 | segments u32
    message  ``message length`` bytes of protobuf
    segment  name length u32 | data length u32 | name (UTF-8) | data

Integers are little-endian. A segment's data is received with ``recv_into``
into a ``bytearray`` of its own (the previous frame's, when nothing holds it
any more: memory already touched costs no page faults), which is handed to
the tool as it is; a result's segment is sent from the tool's own buffer
with ``sendmsg``. Nothing here imports grpc or protobuf.
"""

from __future__ import annotations

import socket
import struct
import sys
from dataclasses import dataclass, field
from typing import Union

MAGIC = b"SP"
"""The first two bytes of every frame."""

HEADER = struct.Struct("<2sBBIII")
"""magic, kind, flags, message length, call id, segment count."""

SEGMENT_HEADER = struct.Struct("<II")
"""name length, data length."""

MAX_SEGMENTS = 4096
"""The most segments one frame may carry."""

MAX_NAME_LEN = 4096
"""The longest segment name."""

READ_CHUNK = 64 * 1024
"""Bytes asked of the socket at a time for headers and small messages."""

SPARE_MIN = 64 * 1024
"""The smallest segment received into a recycled buffer (see
:meth:`FrameReader.recycle`); below it new memory costs next to nothing."""

# Frame kinds: requests are odd, their replies the next even number.
PING, PONG = 1, 2
EXECUTE, RESULT = 3, 4
EXECUTE_STREAM, CHUNK = 5, 6
CLEANUP, CLEANUP_DONE = 7, 8
DESCRIBE, DESCRIBED = 9, 10
ERROR = 15
# The telemetry stream's kinds, which are no request and reply: the host
# opens the stream on a connection of its own with TELEMETRY_OPEN (an empty
# message, or a first TelemetryControl); the worker then writes one EVENT
# frame per TelemetryEvent and the host one CONTROL frame per
# TelemetryControl.
TELEMETRY_OPEN, EVENT, CONTROL = 11, 12, 13
KINDS = frozenset(
    {
        PING,
        PONG,
        EXECUTE,
        RESULT,
        EXECUTE_STREAM,
        CHUNK,
        CLEANUP,
        CLEANUP_DONE,
        DESCRIBE,
        DESCRIBED,
        ERROR,
        TELEMETRY_OPEN,
        EVENT,
        CONTROL,
    }
)

# The flags of an ERROR frame.
RESOURCE_EXHAUSTED = 1
BAD_REQUEST = 2
INTERNAL = 3


class Closed(Exception):
    """The peer closed the connection before a frame began."""


class BadFrame(Exception):
    """The bytes are not a frame we accept (garbage, too large, cut short)."""


class Truncated(BadFrame):
    """The connection closed in the middle of a frame."""


Buffer = Union[bytes, bytearray, memoryview]


@dataclass
class Frame:
    """One frame as read."""

    kind: int
    flags: int
    call_id: int
    message: bytes
    segments: dict[str, bytearray] = field(default_factory=dict)


class FrameReader:
    """Reads frames from a connected stream socket, refusing any whose
    message plus segment data exceeds ``limit`` bytes."""

    def __init__(self, sock: socket.socket, limit: int) -> None:
        self.sock = sock
        self.limit = limit
        self._buf = bytearray()
        self._spare: bytearray | None = None

    def recycle(self, segments: dict[str, bytearray]) -> None:
        """Takes back the buffers of a frame that has been answered: the
        largest one that nothing else refers to any more (the tool kept no
        reference, no view of it is alive) is kept, and the next frame's
        first segment of about its size is received into it.

        New memory costs a page fault per page on first touch (on a VM,
        several times what the copy itself costs; see
        ``examples/bench_python_worker.py``); memory already touched does
        not. The buffer is held only until the next frame: used then, or
        freed."""
        best: bytearray | None = None
        while segments:
            _, data = segments.popitem()
            # Two references: ``data`` here, and getrefcount's argument.
            if len(data) >= SPARE_MIN and sys.getrefcount(data) <= 2 and (best is None or len(data) > len(best)):
                best = data
        self._spare = best

    def read(self) -> Frame:
        """The next frame. Raises :class:`Closed` at a clean end of stream,
        :class:`BadFrame` for anything else that is not a whole frame."""
        head = self._take(HEADER.size, frame_start=True)
        magic, kind, flags, length, call_id, count = HEADER.unpack(head)
        if magic != MAGIC:
            raise BadFrame(f"not a frame (starts with {bytes(head[:4])!r})")
        if kind not in KINDS:
            raise BadFrame(f"unknown frame kind {kind}")
        if count > MAX_SEGMENTS:
            raise BadFrame(f"frame has {count} segments, more than {MAX_SEGMENTS}")
        total = length
        self._check(total)
        message = bytes(self._take(length))
        segments: dict[str, bytearray] = {}
        for _ in range(count):
            name_len, data_len = SEGMENT_HEADER.unpack(self._take(SEGMENT_HEADER.size))
            if name_len > MAX_NAME_LEN:
                raise BadFrame(f"segment name of {name_len} bytes, more than {MAX_NAME_LEN}")
            total += data_len
            self._check(total)
            try:
                name = bytes(self._take(name_len)).decode("utf-8")
            except UnicodeDecodeError:
                raise BadFrame("segment name is not UTF-8") from None
            segments[name] = self._take_into(data_len)
        self._spare = None
        return Frame(kind, flags, call_id, message, segments)

    def _check(self, total: int) -> None:
        if total > self.limit:
            raise BadFrame(f"frame too large: {total} bytes, more than the limit of {self.limit}")

    def _take(self, n: int, frame_start: bool = False) -> bytearray:
        """``n`` bytes, through the read buffer."""
        while len(self._buf) < n:
            more = self.sock.recv(max(READ_CHUNK, n - len(self._buf)))
            if not more:
                if frame_start and not self._buf:
                    raise Closed()
                raise Truncated(f"connection closed mid-frame ({len(self._buf)} of {n} bytes read)")
            self._buf += more
        taken = self._buf[:n]
        del self._buf[:n]
        return taken

    def _take_into(self, n: int) -> bytearray:
        """``n`` bytes in a buffer of their own: what is already buffered,
        the rest received straight into it."""
        data = self._reuse_spare(n)
        have = min(n, len(self._buf))
        data[:have] = self._buf[:have]
        del self._buf[:have]
        view = memoryview(data)
        while have < n:
            got = self.sock.recv_into(view[have:])
            if not got:
                raise Truncated(f"connection closed mid-frame ({have} of {n} segment bytes read)")
            have += got
        return data

    def _reuse_spare(self, n: int) -> bytearray:
        """A buffer of ``n`` bytes: the spare, when it holds at least ``n``
        and not more than twice as many (shrinking it keeps its memory),
        else a new one. The spare is used once at most."""
        spare, self._spare = self._spare, None
        if spare is not None and n >= SPARE_MIN and n <= len(spare) <= 2 * n:
            del spare[n:]
            return spare
        return bytearray(n)


def encode_header(kind: int, call_id: int, message: bytes, segments: int = 0, flags: int = 0) -> bytes:
    """The header of a frame carrying ``message`` and ``segments`` segments."""
    return HEADER.pack(MAGIC, kind, flags, len(message), call_id, segments)


def send_frame(
    sock: socket.socket,
    kind: int,
    call_id: int,
    message: bytes,
    segments: list[tuple[str, Buffer]] | None = None,
    flags: int = 0,
) -> None:
    """Writes one frame; segment data is sent from the caller's buffers."""
    segments = segments or []
    parts: list[Buffer] = [encode_header(kind, call_id, message, len(segments), flags) + message]
    for name, data in segments:
        encoded = name.encode("utf-8")
        view = memoryview(data).cast("B")
        parts.append(SEGMENT_HEADER.pack(len(encoded), view.nbytes) + encoded)
        parts.append(view)
    if len(parts) == 1:
        sock.sendall(parts[0])
        return
    send_all(sock, parts)


def send_all(sock: socket.socket, parts: list[Buffer]) -> None:
    """``sendmsg`` until every part is written."""
    views = [memoryview(p).cast("B") for p in parts if len(p)]
    while views:
        sent = sock.sendmsg(views)
        while views and sent >= views[0].nbytes:
            sent -= views[0].nbytes
            views.pop(0)
        if sent:
            views[0] = views[0][sent:]
