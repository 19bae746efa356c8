"""The worker's socket transport: length-prefixed frames (:mod:`.frames`) on
the Unix socket ``--socket``, served by plain blocking loops.

Each connection the host opens gets a thread running one blocking loop:
read a request frame, run it, write the reply. A host lane holds one
connection, so the lane's calls are served by one thread in both profiles;
a health ping, a session cleanup or a tool listing made while a call runs
comes on a connection of its own and is answered at once. In the process
profile tool calls still take turns (the servicer's gate), as on gRPC.

Nothing here imports grpc: a worker on this transport starts without it,
unless host tools are in use (``--elixir-address``), whose callback client
stays on gRPC.

A connection that opens with a TELEMETRY_OPEN frame is the host's
telemetry stream (:class:`TelemetryStream`): events out, controls in, until
the host closes it.

A cancel is the host closing the connection: a streaming call notices it
before each item and closes the tool's generator. A host that sends bytes
that are not a frame (garbage, a frame past the size limit) is not our host
or is broken: the worker ends, as it does when the host goes away. A
connection that ends, even mid-frame, only ends its own loop: the host
closes a connection whose call timed out, and stdin tells when the host is
gone.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import socket
import stat
import threading
import time
from typing import Any, Callable, NoReturn

from . import frames, protocol, telemetry
from .adapter_provider import AdapterProvider
from .command_line import WorkerOptions
from .lifetime import EXIT_BIND, StopSignals, end_process, exit_with, write_ready_file
from .protocol import DynamicMessage
from .servicer import ERROR_CHUNK_KEY, TELEMETRY_POLL_S, BridgeServicer, apply_control, telemetry_messages

SHUTDOWN_GRACE_S = 1.0
"""How long SIGTERM lets calls in flight finish."""

SEND_BUFFER = 4 << 20
"""The socket send buffer asked for: large results then move in fewer,
larger writes (the kernel's default is about 200 KiB)."""

LISTEN_BACKLOG = 128
"""Connections the kernel queues before they are accepted."""

log = logging.getLogger("snakepit.worker")


def listen(path: str) -> socket.socket:
    """A listening Unix socket at ``path`` (a stale one is replaced); exits 6
    on failure."""
    path = os.path.abspath(path)
    with contextlib.suppress(OSError):
        if stat.S_ISSOCK(os.stat(path).st_mode):
            os.unlink(path)  # a stale socket of a previous worker
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        listener.bind(path)
        listener.listen(LISTEN_BACKLOG)
    except OSError as error:
        exit_with(EXIT_BIND, f"snakepit worker: cannot listen on unix:{path}: {error}\n")
    return listener


class Calls:
    """Counts the requests being served, so that a stop can wait for them."""

    def __init__(self) -> None:
        self._count = 0
        self._idle = threading.Condition()

    def __enter__(self) -> None:
        with self._idle:
            self._count += 1

    def __exit__(self, *exc: object) -> None:
        with self._idle:
            self._count -= 1
            if not self._count:
                self._idle.notify_all()

    def wait_idle(self, timeout: float) -> None:
        """Waits up to ``timeout`` seconds for no request to be running."""
        with self._idle:
            self._idle.wait_for(lambda: not self._count, timeout)


class Connection:
    """One host connection and the loop that serves it."""

    def __init__(self, sock: socket.socket, servicer: BridgeServicer, limit: int, calls: Calls) -> None:
        self.sock = sock
        self.servicer = servicer
        self.limit = limit
        self.calls = calls
        self.reader = frames.FrameReader(sock, limit)
        self.broken = False

    def serve(self) -> None:
        """Serves requests until the host closes the connection."""
        try:
            while not self.broken:
                try:
                    frame = self.reader.read()
                except frames.Closed:
                    return
                except frames.Truncated as error:
                    log.debug("host connection ended mid-frame: %s", error)
                    return
                except frames.BadFrame as error:
                    host_broke_protocol(str(error))
                except OSError as error:
                    log.debug("host connection failed: %s", error)
                    return
                if frame.kind == frames.TELEMETRY_OPEN:
                    # Not a call: a stop does not wait for it.
                    TelemetryStream(self.sock, self.reader).serve(frame)
                    return
                with self.calls:
                    self.dispatch(frame)
                self.reader.recycle(frame.segments)
                del frame
        finally:
            with contextlib.suppress(OSError):
                self.sock.close()

    # -- the stream's state, as the streaming rpc asks for it

    def is_active(self) -> bool:
        """Whether the host still waits for this call: it sends nothing while
        a call runs, so a readable socket means it closed the connection."""
        if self.broken:
            return False
        readable, _, _ = select.select([self.sock], [], [], 0)
        if readable:
            self.broken = True
            return False
        return True

    # -- requests

    def dispatch(self, frame: frames.Frame) -> None:
        kind, call_id = frame.kind, frame.call_id
        try:
            if kind == frames.EXECUTE:
                self.execute(call_id, protocol.ExecuteToolRequest.FromString(frame.message), frame.segments)
            elif kind == frames.EXECUTE_STREAM:
                self.stream(call_id, protocol.ExecuteToolRequest.FromString(frame.message), frame.segments)
            elif kind == frames.PING:
                request = protocol.PingRequest.FromString(frame.message)
                self.reply(frames.PONG, call_id, self.servicer.Ping(request, _NO_CONTEXT))
            elif kind == frames.DESCRIBE:
                request = protocol.InitializeSessionRequest.FromString(frame.message)
                self.reply(frames.DESCRIBED, call_id, self.servicer.InitializeSession(request, _NO_CONTEXT))
            elif kind == frames.CLEANUP:
                request = protocol.CleanupSessionRequest.FromString(frame.message)
                self.reply(frames.CLEANUP_DONE, call_id, self.servicer.CleanupSession(request, _NO_CONTEXT))
            else:
                self.error(call_id, frames.BAD_REQUEST, f"frame kind {kind} is not a request")
        except OSError as error:
            log.debug("host connection failed while replying: %s", error)
            self.broken = True
        except Exception as error:  # noqa: BLE001 - a request we could not read
            log.warning("bad request (frame kind %d): %s: %s", kind, type(error).__name__, error)
            with contextlib.suppress(OSError):
                self.error(call_id, frames.BAD_REQUEST, f"{type(error).__name__}: {error}")

    def execute(self, call_id: int, request: DynamicMessage, binary: dict[str, bytearray]) -> None:
        response, result = self.servicer.execute(request, binary)
        message = response.SerializeToString()
        size = len(message) + (memoryview(result).nbytes if result else 0)
        if size > self.limit:
            log.warning("result of %s is %d bytes, more than the limit of %d", request.tool_name, size, self.limit)
            self.error(call_id, frames.RESOURCE_EXHAUSTED, f"result of {size} bytes exceeds the limit of {self.limit}")
            return
        segments = [("", result)] if result else []
        frames.send_frame(self.sock, frames.RESULT, call_id, message, segments)

    def stream(self, call_id: int, request: DynamicMessage, binary: dict[str, bytearray]) -> None:
        # Always the final error chunk: there is no status to carry an error.
        request.metadata[ERROR_CHUNK_KEY] = "1"
        chunks = self.servicer.ExecuteStreamingTool(request, self, binary)
        try:
            for chunk in chunks:
                message = chunk.SerializeToString()
                if len(message) > self.limit:
                    self.error(
                        call_id,
                        frames.RESOURCE_EXHAUSTED,
                        f"chunk of {len(message)} bytes exceeds the limit of {self.limit}",
                    )
                    return
                frames.send_frame(self.sock, frames.CHUNK, call_id, message)
        except OSError as error:
            log.debug("host connection closed during a stream: %s", error)
            self.broken = True
        finally:
            chunks.close()  # type: ignore[attr-defined]

    def reply(self, kind: int, call_id: int, message: DynamicMessage) -> None:
        frames.send_frame(self.sock, kind, call_id, message.SerializeToString())

    def error(self, call_id: int, code: int, text: str) -> None:
        frames.send_frame(self.sock, frames.ERROR, call_id, text.encode("utf-8"), flags=code)


_NO_CONTEXT: Any = None
"""The context the unary rpcs get here: they do not use it."""


class TelemetryStream:
    """A host connection that opened with a TELEMETRY_OPEN frame: the
    telemetry stream. A thread of its own sends the event buffer's events
    as EVENT frames (the loop :func:`~.servicer.telemetry_messages` shared
    with gRPC's ``StreamTelemetry``), while the connection's thread reads
    CONTROL frames and applies them. The stream ends when the host closes
    the connection; without an event buffer (another backend was set) it
    ends at once."""

    def __init__(self, sock: socket.socket, reader: frames.FrameReader) -> None:
        self.sock = sock
        self.reader = reader
        self._open = threading.Event()
        self._open.set()

    def is_active(self) -> bool:
        """Whether the host still reads the stream."""
        return self._open.is_set()

    def serve(self, opening: frames.Frame) -> None:
        """Serves the stream that ``opening`` (the TELEMETRY_OPEN frame, with
        an optional first control) began, until the host closes it."""
        buffer = telemetry.get_backend()
        if not isinstance(buffer, telemetry.EventBuffer):
            log.debug("no telemetry buffer: the telemetry stream ends")
            return
        if opening.message:
            self.apply(opening.message, buffer)
        sender = threading.Thread(target=self.send_events, args=(buffer,), name="snakepit-telemetry", daemon=True)
        sender.start()
        try:
            self.read_controls(buffer)
        finally:
            self._open.clear()
            with contextlib.suppress(OSError):
                self.sock.shutdown(socket.SHUT_RDWR)
            # The sender sees the stream closed within one drain wait.
            sender.join(TELEMETRY_POLL_S * 10)

    def send_events(self, buffer: telemetry.EventBuffer) -> None:
        """Sends the buffer's events, one EVENT frame each, while the stream
        is open."""
        try:
            for message in telemetry_messages(buffer, self.is_active):
                frames.send_frame(self.sock, frames.EVENT, 0, message.SerializeToString())
        except OSError as error:
            log.debug("telemetry stream closed while sending: %s", error)
        finally:
            self._open.clear()

    def read_controls(self, buffer: telemetry.EventBuffer) -> None:
        """Applies the host's CONTROL frames until it closes the connection
        (or the sender found it closed)."""
        while self.is_active():
            try:
                frame = self.reader.read()
            except (frames.Closed, frames.Truncated, OSError):
                return
            except frames.BadFrame as error:
                host_broke_protocol(str(error))
            if frame.kind != frames.CONTROL:
                log.warning("a frame of kind %d on the telemetry stream; closing it", frame.kind)
                return
            self.apply(frame.message, buffer)

    @staticmethod
    def apply(message: bytes, buffer: telemetry.EventBuffer) -> None:
        """Applies one encoded ``TelemetryControl``; one that does not parse
        is logged and skipped."""
        try:
            control = protocol.TelemetryControl.FromString(message)
        except Exception as error:  # noqa: BLE001 - a bad control is skipped
            log.warning("a telemetry control that does not parse: %s", error)
            return
        apply_control(control, buffer)


def host_broke_protocol(reason: str) -> NoReturn:
    """The host sent bytes that are not a frame: it is not our host, or it is
    broken. End the worker, as when the host goes away."""
    log.error("the host broke the frame protocol (%s); exiting", reason)
    end_process()


def accept_forever(listener: socket.socket, start: Callable[[socket.socket], None]) -> None:
    """Accepts connections until the listener is closed."""
    while True:
        try:
            sock, _ = listener.accept()
        except OSError:
            return
        start(sock)


def serve(options: WorkerOptions, worker_id: str, adapter_class: Callable[[], Any], stop: StopSignals) -> NoReturn:
    """Serves ``adapter_class``'s tools on the socket until ``stop`` is
    signalled, then ends the process."""
    host = None
    if options.elixir_address:
        # Host tools: the callback client is gRPC (and imports it).
        from .server import connect_host

        host = connect_host(options.elixir_address, options.max_message_bytes, options.pool_token)
    assert options.socket is not None  # checked by the command line
    adapters = AdapterProvider(adapter_class, per_worker=options.adapter_per_worker)
    if host is not None:
        from .server import register_tools

        register_tools(host, adapters, worker_id)
    servicer = BridgeServicer.for_local_worker(adapters, worker_id, host, options)
    calls = Calls()
    listener = listen(options.socket)
    count = 0

    def start(sock: socket.socket) -> None:
        nonlocal count
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER)
        count += 1
        connection = Connection(sock, servicer, options.max_message_bytes, calls)
        threading.Thread(target=connection.serve, name=f"snakepit-conn-{count}", daemon=True).start()

    threading.Thread(target=accept_forever, args=(listener, start), name="snakepit-accept", daemon=True).start()
    stop.serving()
    ready = f"unix:{os.path.abspath(options.socket)}"
    write_ready_file(ready)
    log.info("ready on %s (pid %d, adapter %s, socket transport)", ready, os.getpid(), options.adapter)

    stop.wait()

    log.info("stopping")
    with contextlib.suppress(OSError):
        listener.shutdown(socket.SHUT_RDWR)
    listener.close()
    started = time.monotonic()
    calls.wait_idle(SHUTDOWN_GRACE_S)
    log.debug("calls drained in %.3fs", time.monotonic() - started)
    adapters.shutdown()
    if host is not None:
        host.close()
    end_process()
