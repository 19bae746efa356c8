"""The socket transport: the frame codec, and a worker started with
``--transport socket`` as the host drives it."""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import sys
import threading
from typing import Any, Callable

import pytest
from conftest import PYTHON_DIR, SHOWCASE, RunningWorker, tool_request, wait_until

from snakepit_bridge import frames, protocol, socket_server, telemetry

StartWorker = Callable[..., RunningWorker]


def _pair() -> tuple[socket.socket, socket.socket]:
    return socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)


def test_a_frame_round_trips_with_its_segments_in_buffers_of_their_own() -> None:
    a, b = _pair()
    with a, b:
        big = bytes(range(256)) * 1024  # larger than one read, and than the socket buffer
        segments: list[tuple[str, frames.Buffer]] = [("data", big), ("empty", b""), ("v", memoryview(b"xy"))]
        sender = threading.Thread(target=frames.send_frame, args=(a, frames.EXECUTE, 42, b"proto", segments))
        sender.start()
        frame = frames.FrameReader(b, 1 << 20).read()
        sender.join()
    assert (frame.kind, frame.call_id, frame.message) == (frames.EXECUTE, 42, b"proto")
    assert frame.segments == {"data": big, "empty": b"", "v": b"xy"}
    assert all(type(data) is bytearray for data in frame.segments.values())


def _receive(reader: frames.FrameReader, sock: socket.socket, data: bytes) -> frames.Frame:
    sender = threading.Thread(target=frames.send_frame, args=(sock, frames.EXECUTE, 1, b"", [("data", data)]))
    sender.start()
    frame = reader.read()
    sender.join()
    return frame


def test_a_buffer_nothing_holds_any_more_receives_the_next_segment() -> None:
    a, b = _pair()
    with a, b:
        reader = frames.FrameReader(b, 1 << 22)
        size = 1 << 20
        frame = _receive(reader, a, b"a" * size)
        first_id = id(frame.segments["data"])
        reader.recycle(frame.segments)  # answered; the tool kept nothing
        frame = _receive(reader, a, b"b" * (size - 10))
        assert id(frame.segments["data"]) == first_id and frame.segments["data"] == b"b" * (size - 10)
        # Kept by the tool (here: by the test), a buffer is not reused, and
        # what it holds stays as it was.
        kept = frame.segments["data"]
        reader.recycle(frame.segments)
        frame = _receive(reader, a, b"c" * (size - 10))
        assert frame.segments["data"] is not kept and kept == b"b" * (size - 10)
        # A view of it keeps it from being reused too.
        view = memoryview(frame.segments["data"])
        reader.recycle(frame.segments)
        frame = _receive(reader, a, b"d" * (size - 10))
        assert view.tobytes() == b"c" * (size - 10) and frame.segments["data"] == b"d" * (size - 10)
        # Much smaller than the spare: a buffer of its own, not the spare
        # with most of its memory unused.
        reader.recycle(frame.segments)
        frame = _receive(reader, a, b"e" * 1000)
        assert frame.segments["data"] == b"e" * 1000 and frame.segments["data"].__alloc__() < 4096


def test_a_frame_past_the_limit_is_refused_from_its_header() -> None:
    a, b = _pair()
    with a, b:
        a.sendall(frames.HEADER.pack(frames.MAGIC, frames.RESULT, 0, 1 << 30, 1, 0))
        with pytest.raises(frames.BadFrame, match="too large"):
            frames.FrameReader(b, 1 << 20).read()
        frames.send_frame(a, frames.EXECUTE, 1, b"", [("x", b"0" * 2000)])
        with pytest.raises(frames.BadFrame, match="too large"):
            frames.FrameReader(b, 1000).read()


def test_garbage_a_cut_frame_and_a_clean_close_are_told_apart() -> None:
    a, b = _pair()
    with b:
        a.sendall(b"GET / HTTP/1.1\r\n\r\n")
        with pytest.raises(frames.BadFrame, match="not a frame"):
            frames.FrameReader(b, 1 << 20).read()
    a.close()
    a, b = _pair()
    with b:
        a.sendall((frames.encode_header(frames.PING, 1, b"12345") + b"12345")[:10])
        a.close()
        with pytest.raises(frames.Truncated, match="mid-frame"):
            frames.FrameReader(b, 1 << 20).read()
    a, b = _pair()
    with b:
        a.close()
        with pytest.raises(frames.Closed):
            frames.FrameReader(b, 1 << 20).read()


def test_the_telemetry_kinds_are_frames_of_their_own_numbers() -> None:
    assert (frames.TELEMETRY_OPEN, frames.EVENT, frames.CONTROL) == (11, 12, 13)
    a, b = _pair()
    with a, b:
        reader = frames.FrameReader(b, 1 << 20)
        for kind in (frames.TELEMETRY_OPEN, frames.EVENT, frames.CONTROL):
            frames.send_frame(a, kind, 0, b"message")
            frame = reader.read()
            assert (frame.kind, frame.call_id, frame.message, frame.segments) == (kind, 0, b"message", {})
        # 14 stays unknown: bytes of another protocol.
        a.sendall(frames.HEADER.pack(frames.MAGIC, 14, 0, 0, 0, 0))
        with pytest.raises(frames.BadFrame, match="unknown frame kind 14"):
            reader.read()


def _control(**fields: Any) -> bytes:
    """An encoded ``TelemetryControl``: ``enabled=`` a toggle or ``rate=`` a
    sampling update (one of them: they are a ``oneof``)."""
    control = protocol.TelemetryControl()
    if "enabled" in fields:
        control.toggle.enabled = fields["enabled"]
    if "rate" in fields:
        control.sampling.sampling_rate = fields["rate"]
    return bytes(control.SerializeToString())


def _next_event(reader: frames.FrameReader) -> Any:
    frame = reader.read()
    assert frame.kind == frames.EVENT
    return protocol.TelemetryEvent.FromString(frame.message)


def test_a_telemetry_stream_sends_events_applies_controls_and_ends_with_the_connection(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    buffer = telemetry.EventBuffer(capacity=100)
    monkeypatch.setattr(telemetry, "_backend", buffer)
    host, worker = _pair()
    stream = socket_server.TelemetryStream(worker, frames.FrameReader(worker, 1 << 20))
    opening = frames.Frame(frames.TELEMETRY_OPEN, 0, 0, _control(rate=0.5))
    served = threading.Thread(target=stream.serve, args=(opening,))
    served.start()
    with host:
        reader = frames.FrameReader(host, 1 << 20)
        # The opening frame's control is applied before any event goes.
        assert buffer.sampling_rate == 0.5
        buffer.sampling_rate = 1.0
        for i in range(3):
            telemetry.emit("stream.tick", {"i": i}, correlation_id="c-1")
        events = [_next_event(reader) for _ in range(3)]
        assert [list(e.event_parts) for e in events] == [["stream", "tick"]] * 3
        assert [e.measurements["i"].int_value for e in events] == [0, 1, 2]
        assert {e.correlation_id for e in events} == {"c-1"}

        frames.send_frame(host, frames.CONTROL, 0, _control(enabled=False))
        wait_until(lambda: not buffer.enabled, 10, "the toggle to be applied")
        frames.send_frame(host, frames.CONTROL, 0, _control(enabled=True))
        frames.send_frame(host, frames.CONTROL, 0, _control(rate=0.25))
        wait_until(lambda: buffer.enabled and buffer.sampling_rate == 0.25, 10, "both controls")
        assert served.is_alive()
    # The host closed the connection: the stream and its sender end.
    served.join(10)
    assert not served.is_alive()
    assert not stream.is_active()
    assert not any(t.name == "snakepit-telemetry" for t in threading.enumerate())


def test_a_telemetry_stream_without_an_event_buffer_ends_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(telemetry, "_backend", None)
    host, worker = _pair()
    with host, worker:
        stream = socket_server.TelemetryStream(worker, frames.FrameReader(worker, 1 << 20))
        stream.serve(frames.Frame(frames.TELEMETRY_OPEN, 0, 0, b""))


class SocketClient:
    """The host's side of one connection, in Python."""

    def __init__(self, path: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(path)
        self.reader = frames.FrameReader(self.sock, 1 << 30)
        self.next_id = 0

    def call(self, kind: int, message: Any, segments: list[tuple[str, bytes]] | None = None) -> frames.Frame:
        self.next_id += 1
        frames.send_frame(self.sock, kind, self.next_id, message.SerializeToString(), segments)
        frame = self.reader.read()
        assert frame.call_id == self.next_id
        return frame


@pytest.fixture
def socket_worker(start_worker: StartWorker) -> RunningWorker:
    return start_worker(SHOWCASE, "--transport", "socket")


def test_ping_execute_binary_and_stream_over_frames(socket_worker: RunningWorker) -> None:
    client = SocketClient(str(socket_worker.socket_path))
    pong = client.call(frames.PING, protocol.PingRequest(message="hi"))
    assert pong.kind == frames.PONG
    assert "hi" in protocol.PingResponse.FromString(pong.message).message

    reply = client.call(frames.EXECUTE, tool_request("add", a=2, b=40))
    response = protocol.ExecuteToolResponse.FromString(reply.message)
    assert response.success and response.result.value == b"42"

    data = bytes(range(256)) * 4096
    reply = client.call(frames.EXECUTE, protocol.ExecuteToolRequest(tool_name="binary_echo"), [("data", data)])
    response = protocol.ExecuteToolResponse.FromString(reply.message)
    assert response.success, response.error_message
    assert response.binary_result == b"" and reply.segments == {"": data}

    client.next_id += 1
    request = tool_request("count_stream", n=3)
    frames.send_frame(client.sock, frames.EXECUTE_STREAM, client.next_id, request.SerializeToString())
    chunks = []
    while True:
        frame = client.reader.read()
        assert frame.kind == frames.CHUNK
        chunks.append(protocol.ToolChunk.FromString(frame.message))
        if chunks[-1].is_final:
            break
    assert [json.loads(c.data) for c in chunks[:-1]] == [{"i": i} for i in range(3)]


def test_a_result_past_the_limit_is_an_error_frame_and_the_connection_serves_on(start_worker: StartWorker) -> None:
    worker = start_worker(SHOWCASE, "--transport", "socket", "--max-message-bytes", "1000")
    client = SocketClient(str(worker.socket_path))
    reply = client.call(frames.EXECUTE, tool_request("make_bytes", n=5000))
    assert (reply.kind, reply.flags) == (frames.ERROR, frames.RESOURCE_EXHAUSTED)
    assert client.call(frames.PING, protocol.PingRequest()).kind == frames.PONG


def test_garbage_from_the_host_ends_the_worker(socket_worker: RunningWorker) -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.connect(str(socket_worker.socket_path))
        sock.sendall(b"\x00" * 64)
        assert socket_worker.wait_exit() == 0
    assert "broke the frame protocol" in socket_worker.stderr()


def test_the_socket_worker_never_imports_grpc() -> None:
    code = (
        "import sys; sys.argv = ['w', '--adapter', 'x.Y', '--transport', 'socket', '--socket', '/nonexistent/s'];"
        "from snakepit_bridge import worker; worker.import_server('socket');"
        "print('grpc' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(PYTHON_DIR)},
        check=True,
    )
    assert out.stdout.strip() == "False"


def test_a_socket_worker_streams_its_tools_events_on_a_telemetry_connection(socket_worker: RunningWorker) -> None:
    path = str(socket_worker.socket_path)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as stream:
        stream.connect(path)
        frames.send_frame(stream, frames.TELEMETRY_OPEN, 0, b"")
        events = frames.FrameReader(stream, 1 << 20)
        client = SocketClient(path)
        request = tool_request("emit_events", n=50, name="socket.tick")
        request.metadata[telemetry.CORRELATION_HEADER] = "sock-1"
        reply = client.call(frames.EXECUTE, request)
        assert protocol.ExecuteToolResponse.FromString(reply.message).success
        got = [_next_event(events) for _ in range(50)]
        assert [e.measurements["i"].int_value for e in got] == list(range(50))
        assert {e.correlation_id for e in got} == {"sock-1"}

        # A control on the stream reaches the worker's buffer.
        frames.send_frame(stream, frames.CONTROL, 0, _control(enabled=False))

        def settings() -> Any:
            reply = client.call(frames.EXECUTE, tool_request("telemetry_settings"))
            return json.loads(protocol.ExecuteToolResponse.FromString(reply.message).result.value)

        wait_until(lambda: settings()["enabled"] is False, 10, "telemetry to be switched off")
    # The stream closed, the worker serves on, and a new stream can be opened
    # (its opening control switches telemetry back on).
    assert SocketClient(path).call(frames.PING, protocol.PingRequest()).kind == frames.PONG
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as stream:
        stream.connect(path)
        frames.send_frame(stream, frames.TELEMETRY_OPEN, 0, _control(enabled=True))
        stream.settimeout(2.0)
        events = frames.FrameReader(stream, 1 << 20)
        client = SocketClient(path)
        # The closed stream's sender may still take one batch from the buffer
        # before it sees the stream gone (those events are lost): emit again
        # until one arrives here.
        for attempt in range(5):
            client.call(frames.EXECUTE, tool_request("emit_events", n=1, name=f"again.{attempt}"))
            with contextlib.suppress(socket.timeout):
                event = _next_event(events)
                break
        else:
            pytest.fail("no event on the second telemetry stream")
        assert list(event.event_parts)[0] == "again"
