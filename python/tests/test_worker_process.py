"""The worker as the host sees it: a process started with flags, a ready
file, gRPC calls over a Unix socket, and a lifetime bound to the host."""

from __future__ import annotations

import concurrent.futures
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

import grpc
import pytest
from conftest import (
    PYTHON_DIR,
    SERVER_SCRIPT,
    SHOWCASE,
    THREADED_SHOWCASE,
    RunningWorker,
    process_gone,
    tool_request,
    wait_until,
)

import snakepit_bridge
from snakepit_bridge import protocol, serialization

StartWorker = Callable[..., RunningWorker]


def test_ping_execute_and_stream_over_a_unix_socket(start_worker: StartWorker) -> None:
    worker = start_worker(SHOWCASE, "--worker-id", "w-7")
    assert worker.ready_file.read_text() == f"unix:{worker.socket_path}"
    assert not Path(f"{worker.ready_file}.tmp").exists()
    assert "ready on unix:" in worker.stderr()

    pong = worker.unary("Ping", protocol.PingRequest(message="hello"))
    assert "hello" in pong.message and pong.server_time.seconds > 0

    assert (pong.capacity, pong.adapter, pong.version) == (1, SHOWCASE, snakepit_bridge.__version__)

    response = worker.execute("add", a=2, b=40)
    assert response.success
    assert response.result.type_url == "type.googleapis.com/snakepit.integer"
    assert response.result.value == b"42"
    assert dict(response.metadata) == {"worker_id": "w-7", "pid": str(worker.process.pid)}
    assert response.execution_time_ms >= 0

    chunks = list(worker.stream("count_stream", n=4))
    assert [c.chunk_id for c in chunks] == [f"count_stream-{i}" for i in range(5)]
    assert [json.loads(c.data) for c in chunks[:-1]] == [{"i": i} for i in range(4)]
    assert chunks[-1].is_final and chunks[-1].data == b""
    assert not any(c.is_final for c in chunks[:-1])


def test_values_and_errors_over_the_wire(start_worker: StartWorker) -> None:
    worker = start_worker()
    types = worker.result("types")
    assert types["i64_max"] == 2**63 - 1 and types["i64_min"] == -(2**63)
    assert types["unicode"] == "héllo ✓ 🐍" and types["float"] == 0.1 and types["null"] is None
    assert worker.result("echo", value={"nested": [1, 2.5, "x", None, True]}) == {"nested": [1, 2.5, "x", None, True]}
    assert worker.result("binary_echo", data=b"\x00\x01\xfe\xff") == b"\x00\x01\xfe\xff"
    assert worker.result("make_bytes", n=300) == bytes(range(256)) + bytes(range(44))

    chained = json.loads(worker.execute("raise_error", kind="chained", message="outer").error_message)
    assert chained["type"] == "ValueError" and chained["message"] == "outer"
    assert "KeyError: 'inner cause'" in chained["traceback"]
    assert chained["stacktrace"][-1]["function"] == "raise_error"

    missing = json.loads(worker.execute("no_such_tool").error_message)
    assert missing["type"] == "ToolNotFoundError"
    assert set(missing["context"]) == {"tool", "available"} and "add" in missing["context"]["available"]

    invalid = json.loads(worker.execute("add", a=1).error_message)
    assert invalid["type"] == "InvalidArgumentsError"
    assert invalid["context"] == {"tool": "add", "argument": "b", "signature": "add(a: float, b: float)"}

    nan = worker.execute("nan")
    assert not nan.success and "NaN" in json.loads(nan.error_message)["message"]


def test_thread_profile_runs_calls_at_the_same_time(start_worker: StartWorker, short_dir: Path) -> None:
    worker = start_worker(THREADED_SHOWCASE, "--max-workers", "4", "--thread-safety-check")
    barrier_dir = str(short_dir / "barrier")
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        calls = [pool.submit(worker.execute, "barrier", dir=barrier_dir, parties=4, timeout_s=10.0) for _ in range(4)]
        responses = [call.result(timeout=30) for call in calls]
    assert all(r.success for r in responses), [r.error_message for r in responses]
    assert [serialization.decode_any(r.result) for r in responses] == [4, 4, 4, 4]
    assert "thread profile, 4 calls at once" in worker.stderr()
    assert worker.unary("Ping", protocol.PingRequest()).capacity == 4


def test_process_profile_takes_every_call_but_runs_one_at_a_time(start_worker: StartWorker, short_dir: Path) -> None:
    worker = start_worker(SHOWCASE)
    started = short_dir / "started.txt"
    release = short_dir / "release"
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        first = pool.submit(
            worker.execute, "record_then_wait", record_path=str(started), wait_path=str(release), value="first"
        )
        wait_until(lambda: started.exists(), 10, "the first call to start")
        second = pool.submit(
            worker.execute, "record_then_wait", record_path=str(started), wait_path=str(release), value="second"
        )
        time.sleep(0.3)
        assert started.read_text() == "first\n", "the second call ran while the first was still running"

        # Ping and session calls still answer while a tool runs.
        began = time.monotonic()
        worker.unary("Ping", protocol.PingRequest(message="busy?"), timeout_s=2)
        tools = worker.unary("InitializeSession", protocol.InitializeSessionRequest(session_id=""), timeout_s=2)
        assert time.monotonic() - began < 2 and "record_then_wait" in tools.available_tools

        release.touch()
        assert first.result(timeout=15).success and second.result(timeout=15).success
    assert started.read_text() == "first\nsecond\n"


def test_sessions_over_the_wire(start_worker: StartWorker) -> None:
    worker = start_worker()
    init = worker.unary("InitializeSession", protocol.InitializeSessionRequest(session_id="s1"))
    assert init.success and init.available_tools["count_stream"].supports_streaming
    timeout = [p for p in init.available_tools["barrier"].parameters if p.name == "timeout_s"][0]
    assert not timeout.required and serialization.decode_any(timeout.default_value) == 10.0
    assert [worker.result("session_counter", session_id="s1") for _ in range(2)] == [1, 2]
    assert worker.result("whoami", session_id="s1")["session_id"] == "s1"
    assert worker.unary("Heartbeat", protocol.HeartbeatRequest(session_id="s1")).session_valid
    assert worker.unary("GetSession", protocol.GetSessionRequest(session_id="s1")).session_id == "s1"
    cleaned = worker.unary("CleanupSession", protocol.CleanupSessionRequest(session_id="s1"))
    assert cleaned.success and cleaned.resources_cleaned == 1
    with pytest.raises(grpc.RpcError) as caught:
        worker.unary("GetSession", protocol.GetSessionRequest(session_id="s1"))
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND


def test_a_cancelled_stream_closes_the_tool_generator(start_worker: StartWorker, short_dir: Path) -> None:
    worker = start_worker()
    closed = short_dir / "closed.txt"
    call = worker.stream("stream_until_cancelled", closed_path=str(closed), interval_ms=5)
    for _ in range(3):
        next(call)
    call.cancel()
    wait_until(lambda: closed.exists() and closed.read_text() == "closed\n", 10, "the generator's finally")
    assert worker.result("ping") == "pong"  # the process-profile lock was released


def test_a_failing_stream_ends_with_internal_and_the_payload(start_worker: StartWorker) -> None:
    worker = start_worker()
    call = worker.stream("stream_then_fail", n=2, message="went wrong")
    received = []
    with pytest.raises(grpc.RpcError) as caught:
        for chunk in call:
            received.append(chunk.chunk_id)
    assert received == ["stream_then_fail-0", "stream_then_fail-1"]
    assert caught.value.code() == grpc.StatusCode.INTERNAL
    payload = json.loads(caught.value.details())
    assert payload["type"] == "RuntimeError" and payload["message"] == "went wrong"


def test_a_host_that_asks_gets_a_failing_stream_as_a_final_error_chunk(start_worker: StartWorker) -> None:
    from snakepit_bridge.servicer import ERROR_CHUNK_KEY

    worker = start_worker()
    method = protocol.METHODS["ExecuteStreamingTool"]
    call = worker.channel.unary_stream(
        method.path,
        request_serializer=method.request.SerializeToString,
        response_deserializer=method.response.FromString,
    )
    request = tool_request("stream_then_fail", n=2, message="went wrong")
    request.metadata[ERROR_CHUNK_KEY] = "1"
    chunks = list(call(request, timeout=30))
    # Every chunk arrives, then the error as the final one; the call ends OK.
    assert [c.chunk_id for c in chunks] == ["stream_then_fail-0", "stream_then_fail-1", "stream_then_fail-2"]
    last = chunks[-1]
    assert last.is_final and last.metadata["error"] == "true"
    payload = json.loads(last.data)
    assert payload["type"] == "RuntimeError" and payload["message"] == "went wrong"


def test_tcp_port_zero_reports_the_bound_port(start_worker: StartWorker) -> None:
    # The flags a Snakepit host adds are accepted and ignored.
    worker = start_worker(SHOWCASE, "--port", "0", "--snakepit-run-id", "r1", "--thread-safety-check", tcp=True)
    assert "ignoring unknown arguments: --snakepit-run-id r1" in worker.stderr()
    content = worker.ready_file.read_text()
    assert content.isdigit() and int(content) > 0
    assert worker.result("add", a=1, b=1) == 2


def test_message_size_limit(start_worker: StartWorker) -> None:
    worker = start_worker(SHOWCASE, "--max-message-bytes", str(1024 * 1024))
    assert len(worker.result("make_bytes", n=512 * 1024)) == 512 * 1024
    for tool_name, arguments in (
        ("make_bytes", {"n": 2 * 1024 * 1024}),
        ("binary_len", {"data": b"x" * 2 * 1024 * 1024}),
    ):
        with pytest.raises(grpc.RpcError) as caught:
            worker.execute(tool_name, **arguments)
        assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


# ---------------------------------------------------------------- start-up failures


def test_max_workers_needs_a_thread_safe_adapter(start_worker: StartWorker) -> None:
    worker = start_worker(SHOWCASE, "--max-workers", "4", ready=False)
    assert worker.wait_exit() == 3
    assert (
        "adapter snakepit_showcase.adapter.ShowcaseAdapter is not marked thread-safe (__thread_safe__ = True); "
        "use ThreadSafeAdapter or the process profile" in worker.stderr()
    )
    assert not worker.ready_file.exists()


@pytest.mark.parametrize(
    ("adapter", "expected"),
    [
        ("snakepit_showcase.broken.BrokenAdapter", "ImportError: showcase: this adapter is broken on purpose"),
        (
            "snakepit_showcase.bad_init.BadInitAdapter",
            "ModuleNotFoundError: No module named 'this_module_does_not_exist_xyz'",
        ),
        ("snakepit_showcase.adapter.NoSuchAdapter", "has no adapter class 'NoSuchAdapter'"),
    ],
)
def test_an_adapter_that_cannot_be_imported_exits_3_with_the_traceback(
    start_worker: StartWorker, adapter: str, expected: str
) -> None:
    worker = start_worker(adapter, ready=False)
    assert worker.wait_exit() == 3
    stderr = worker.stderr()
    assert "Traceback (most recent call last)" in stderr and expected in stderr


def test_missing_grpc_exits_4_naming_the_fix(short_dir: Path) -> None:
    launcher = (
        "import runpy, sys\n"
        "sys.modules['grpc'] = None  # as if grpcio were not installed\n"
        f"sys.argv = ['grpc_server.py', '--adapter', '{SHOWCASE}']\n"
        f"runpy.run_path({str(SERVER_SCRIPT)!r}, run_name='__main__')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", launcher],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=30,
        cwd=short_dir,
    )
    assert done.returncode == 4, done.stderr
    assert f"python3 -m pip install -r {PYTHON_DIR / 'requirements.txt'}" in done.stderr
    assert (PYTHON_DIR / "requirements.txt").exists()


# ---------------------------------------------------------------- lifetime


def test_closing_stdin_kills_the_worker_and_its_children(start_worker: StartWorker) -> None:
    worker = start_worker()
    child = worker.result("spawn_child", seconds=600)
    assert not process_gone(child)
    assert worker.process.stdin is not None
    worker.process.stdin.close()
    assert worker.wait_exit() == 0
    wait_until(lambda: process_gone(child), 10, f"the worker's child {child} to die")
    assert "host closed stdin" in worker.stderr()


def test_sigterm_stops_the_worker_and_its_children(start_worker: StartWorker) -> None:
    worker = start_worker()
    child = worker.result("spawn_child", seconds=600)
    worker.process.send_signal(signal.SIGTERM)
    assert worker.wait_exit() == 0
    wait_until(lambda: process_gone(child), 10, f"the worker's child {child} to die")
    assert "stopping" in worker.stderr()


def test_the_worker_dies_with_its_parent(short_dir: Path) -> None:
    """Parent-death signal: stdin is /dev/null here, so only prctl can notice."""
    ready = short_dir / "ready"
    parent = (
        "import os, subprocess, sys, time\n"
        f"worker = subprocess.Popen([sys.executable, {str(SERVER_SCRIPT)!r}, '--adapter', {SHOWCASE!r},"
        f" '--socket', {str(short_dir / 'w.sock')!r}], stdin=subprocess.DEVNULL,"
        " stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, process_group=0)\n"
        "deadline = time.monotonic() + 20\n"
        f"while not os.path.exists({str(ready)!r}) and time.monotonic() < deadline:\n"
        "    time.sleep(0.01)\n"
        "print(worker.pid, flush=True)\n"
        "os._exit(0)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", parent],
        env={**os.environ, "SNAKEPIT_READY_FILE": str(ready), "PYTHONPATH": str(PYTHON_DIR)},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )
    worker_pid = int(done.stdout.strip())
    try:
        assert ready.exists(), "the worker never became ready"
        wait_until(lambda: process_gone(worker_pid), 10, "the orphaned worker to exit")
    finally:
        with contextlib.suppress(OSError):
            os.killpg(worker_pid, signal.SIGKILL)


def test_a_crashing_tool_ends_the_process_with_its_status(start_worker: StartWorker) -> None:
    worker = start_worker()
    with pytest.raises(grpc.RpcError):
        worker.execute("crash", code=7, message="going down now")
    assert worker.wait_exit() == 7
    assert "going down now" in worker.stderr()


# ---------------------------------------------------------------- host callbacks


class FakeHost:
    """A host callback server: Ping, GetExposedElixirTools, and
    ExecuteElixirTool with one tool."""

    def __init__(self, socket_path: Path) -> None:
        self.requests: list[Any] = []
        handlers = {
            "Ping": grpc.unary_unary_rpc_method_handler(
                lambda request, context: protocol.PingResponse(message="host pong"),
                request_deserializer=protocol.PingRequest.FromString,
                response_serializer=protocol.PingResponse.SerializeToString,
            ),
            "GetExposedElixirTools": grpc.unary_unary_rpc_method_handler(
                self.list_tools,
                request_deserializer=protocol.GetExposedElixirToolsRequest.FromString,
                response_serializer=protocol.GetExposedElixirToolsResponse.SerializeToString,
            ),
            "ExecuteElixirTool": grpc.unary_unary_rpc_method_handler(
                self.execute,
                request_deserializer=protocol.ExecuteElixirToolRequest.FromString,
                response_serializer=protocol.ExecuteElixirToolResponse.SerializeToString,
            ),
        }
        self.server = grpc.server(concurrent.futures.ThreadPoolExecutor(4))
        self.server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler(protocol.SERVICE_NAME, handlers)])
        self.address = f"unix:{socket_path}"
        self.server.add_insecure_port(self.address)
        self.server.start()

    def execute(self, request: Any, context: Any) -> Any:
        self.requests.append(request)
        arguments = {k: serialization.decode_any(v) for k, v in request.parameters.items()}
        if request.tool_name == "reverse":
            return protocol.ExecuteElixirToolResponse(
                success=True,
                result=protocol.Any(type_url=serialization.BINARY_TYPE_URL, value=b"null"),
                binary_result=bytes(reversed(request.binary_parameters["data"])),
            )
        if request.tool_name == "sum":
            return protocol.ExecuteElixirToolResponse(
                success=True, result=serialization.json_any(sum(arguments["values"]))
            )
        return protocol.ExecuteElixirToolResponse(success=False, error_message=f"host has no tool {request.tool_name}")

    def list_tools(self, request: Any, context: Any) -> Any:
        self.requests.append(request)
        return protocol.GetExposedElixirToolsResponse(tools=[protocol.ToolSpec(name="sum", description="Sums values")])

    def stop(self) -> None:
        self.server.stop(0).wait(5)


def test_tools_can_call_host_tools(start_worker: StartWorker, short_dir: Path) -> None:
    host = FakeHost(short_dir / "host.sock")
    try:
        worker = start_worker(SHOWCASE, "--elixir-address", host.address)
        assert worker.result("call_host", session_id="s5", name="sum", arguments={"values": [1, 2, 2**40]}) == 3 + 2**40
        request = host.requests[-1]
        assert request.session_id == "s5" and request.tool_name == "sum"
        assert request.parameters["values"].type_url == "type.googleapis.com/google.protobuf.StringValue"
        failed = json.loads(worker.execute("call_host", name="missing").error_message)
        assert failed["type"] == "RuntimeError" and failed["message"] == "host has no tool missing"
    finally:
        host.stop()


def test_host_tools_take_and_return_bytes(start_worker: StartWorker, short_dir: Path) -> None:
    host = FakeHost(short_dir / "host.sock")
    try:
        worker = start_worker(SHOWCASE, "--elixir-address", host.address)
        assert worker.result("call_host_binary", name="reverse", data=b"\x00abc\xff") == b"\xffcba\x00"
        request = host.requests[-1]
        assert request.binary_parameters["data"] == b"\x00abc\xff" and not request.parameters
        assert worker.result("call_host_binary", name="reverse", data=b"") == b""
        assert host.requests[-1].binary_parameters["data"] == b""
        # Arguments over the worker's message limit are refused before sending.
        small = start_worker(SHOWCASE, "--elixir-address", host.address, "--max-message-bytes", "4096")
        failed = json.loads(small.execute("call_host_binary", name="reverse", data=b"x" * 3000, repeat=2).error_message)
        assert failed["type"] == "ValueError" and "over the message limit of 4096 bytes" in failed["message"]
    finally:
        host.stop()


def test_tools_can_list_host_tools(start_worker: StartWorker, short_dir: Path) -> None:
    host = FakeHost(short_dir / "host.sock")
    try:
        worker = start_worker(SHOWCASE, "--elixir-address", host.address)
        listed = worker.result("list_host_tools", session_id="s6")
        assert listed == [{"name": "sum", "description": "Sums values", "supports_streaming": False}]
        assert host.requests[-1].session_id == "s6"
    finally:
        host.stop()


# ---------------------------------------------------------------- hostile tools

HOSTILE = "snakepit_showcase.hostile.HostileAdapter"
THREADED_HOSTILE = "snakepit_showcase.hostile.ThreadedHostileAdapter"
BASE_EXCEPTIONS = ["CancelledError", "KeyboardInterrupt", "GeneratorExit", "SystemExit", "CustomBaseError"]


@pytest.mark.parametrize("profile", [[HOSTILE], [THREADED_HOSTILE, "--max-workers", "2"]])
def test_a_base_exception_is_a_reply_and_the_worker_keeps_serving(
    start_worker: StartWorker, profile: list[str]
) -> None:
    worker = start_worker(*profile)
    for kind in BASE_EXCEPTIONS:
        for tool_name in ("raise_base", "raise_base_async"):
            response = worker.execute(tool_name, kind=kind, message=f"{kind} raised", timeout_s=10)
            assert not response.success, kind
            payload = json.loads(response.error_message)
            assert payload["type"] == kind and payload["message"] == f"{kind} raised", payload
            assert f"in {tool_name}" in payload["traceback"], payload["traceback"]

        call = worker.stream("stream_then_raise_base", timeout_s=10, n=2, kind=kind, message="mid-stream")
        received = []
        with pytest.raises(grpc.RpcError) as caught:
            for chunk in call:
                received.append(json.loads(chunk.data))
        assert received == [0, 1]
        assert caught.value.code() == grpc.StatusCode.INTERNAL, kind
        assert json.loads(caught.value.details())["type"] == kind
    assert worker.process.poll() is None
    assert worker.result("ping") == "pong"


@pytest.mark.parametrize("ending", ["sigterm", "stdin"])
def test_a_tools_daemon_in_a_new_session_ends_with_the_worker(start_worker: StartWorker, ending: str) -> None:
    worker = start_worker(HOSTILE)
    daemon = worker.result("spawn_daemon", seconds=600)
    try:
        assert not process_gone(daemon)
        assert os.getsid(daemon) != os.getsid(worker.process.pid)
        if ending == "sigterm":
            worker.process.send_signal(signal.SIGTERM)
        else:
            assert worker.process.stdin is not None
            worker.process.stdin.close()
        assert worker.wait_exit() == 0
        wait_until(lambda: process_gone(daemon), 10, f"the tool's daemon {daemon} to die")
    finally:
        with contextlib.suppress(OSError):
            os.kill(daemon, signal.SIGKILL)


def test_the_correlation_id_may_come_as_a_grpc_header(start_worker: StartWorker) -> None:
    from snakepit_bridge import telemetry

    worker = start_worker()
    method = protocol.METHODS["ExecuteTool"]
    call = worker.channel.unary_unary(
        method.path,
        request_serializer=method.request.SerializeToString,
        response_deserializer=method.response.FromString,
    )
    headers = [(telemetry.CORRELATION_HEADER, "from-header")]
    response = call(tool_request("correlation", message="m"), timeout=30, metadata=headers)
    assert response.success and serialization.decode_any(response.result) == "from-header"
    # The request's own metadata wins (a transport without headers carries it).
    request = tool_request("correlation", message="m")
    request.metadata[telemetry.CORRELATION_HEADER] = "from-request"
    response = call(request, timeout=30, metadata=headers)
    assert serialization.decode_any(response.result) == "from-request"
    assert "correlated: m [correlation_id=from-request]" in worker.stderr()


def test_stream_telemetry_sends_events_in_order_and_obeys_the_hosts_controls(start_worker: StartWorker) -> None:
    import queue

    worker = start_worker()
    method = protocol.METHODS["StreamTelemetry"]
    open_stream = worker.channel.stream_stream(
        method.path,
        request_serializer=method.request.SerializeToString,
        response_deserializer=method.response.FromString,
    )
    controls: queue.Queue[Any] = queue.Queue()
    events = open_stream(iter(controls.get, None))
    try:
        request = tool_request("emit_events", n=3, name="t.tick")
        request.metadata["x-snakepit-correlation-id"] = "c-1"
        assert worker.unary("ExecuteTool", request).success
        got = [next(events) for _ in range(3)]
        assert [list(e.event_parts) for e in got] == [["t", "tick"]] * 3
        assert [e.measurements["i"].int_value for e in got] == [0, 1, 2]
        assert {e.correlation_id for e in got} == {"c-1"}
        assert all(e.timestamp_ns > 0 for e in got)

        off = protocol.TelemetryControl()
        off.toggle.enabled = False
        sampling = protocol.TelemetryControl()
        sampling.sampling.sampling_rate = 0.25
        controls.put(off)
        controls.put(sampling)
        wait_until(
            lambda: worker.result("telemetry_settings") == {"enabled": False, "sampling_rate": 0.25},
            10,
            "the controls applied",
        )
    finally:
        controls.put(None)
        events.cancel()
