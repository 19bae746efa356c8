"""The ``serve`` mode (a remote worker), run as real processes on loopback:
mutual TLS, the bearer token, Ping's report, health, draining on SIGTERM,
the process profile's deadline exit, and the refusal of plaintext.

Certificates are made at test time with the ``openssl`` command line.
Every process is killed (with its group) when its test ends.
"""

from __future__ import annotations

import contextlib
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable

import pytest
from conftest import PYTHON_DIR, SHOWCASE, THREADED_SHOWCASE, process_gone, tool_request, wait_until

grpc = pytest.importorskip("grpc")
health_pb2 = pytest.importorskip("grpc_health.v1.health_pb2")
health_pb2_grpc = pytest.importorskip("grpc_health.v1.health_pb2_grpc")

from snakepit_bridge import __version__, protocol, serialization  # noqa: E402
from snakepit_bridge.remote_server import DeadlineWatchdog, TokenFile  # noqa: E402
from snakepit_bridge.serve import DRAINING_MESSAGE, EXIT_DEADLINE, READY_PREFIX, Drain, split_address  # noqa: E402

READY_LINE = re.compile(rf"^{READY_PREFIX} listen=(\S+):(\d+) health=(\S+):(\d+)\n$")
READY_TIMEOUT_S = 20.0
CALL_TIMEOUT_S = 20.0
EXIT_TIMEOUT_S = 20.0
TOKEN = "s3cret-token-for-tests"

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")


# -- certificates


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=30)


def _leaf(directory: Path, name: str, ca: str, subject: str, extensions: str) -> None:
    """A key and a certificate for ``subject`` signed by the CA named ``ca``."""
    _openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", f"{name}.key", cwd=directory)
    _openssl("req", "-new", "-key", f"{name}.key", "-subj", subject, "-out", f"{name}.csr", cwd=directory)
    (directory / f"{name}.ext").write_text(extensions, encoding="utf-8")
    _openssl(
        "x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.crt", "-CAkey", f"{ca}.key", "-CAcreateserial",
        "-days", "2", "-sha256", "-extfile", f"{name}.ext", "-out", f"{name}.crt", cwd=directory,
    )  # fmt: skip


def _ca(directory: Path, name: str) -> None:
    _openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", f"{name}.key", cwd=directory)
    _openssl(
        "req", "-x509", "-new", "-key", f"{name}.key", "-subj", f"/CN={name}", "-days", "2", "-sha256",
        "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        "-out", f"{name}.crt", cwd=directory,
    )  # fmt: skip


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CA; a server certificate for 127.0.0.1 and localhost and a client certificate, both signed by it."""
    directory = tmp_path_factory.mktemp("certs")
    _ca(directory, "ca")
    _leaf(
        directory, "server", "ca", "/CN=localhost",
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n",
    )  # fmt: skip
    _leaf(directory, "client", "ca", "/CN=snakepit-host", "extendedKeyUsage=clientAuth\n")
    (directory / "token").write_text(TOKEN + "\n", encoding="utf-8")
    return directory


# -- serve processes


class ServeProcess:
    """A ``python3 -m snakepit_bridge serve`` process and its two addresses."""

    def __init__(self, args: list[str], stderr_path: Path) -> None:
        self.stderr_path = stderr_path
        env = dict(os.environ, PYTHONPATH=str(PYTHON_DIR))
        with open(stderr_path, "wb") as stderr:
            self.process = subprocess.Popen(
                [sys.executable, "-u", "-m", "snakepit_bridge", "serve", *args],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=stderr,
                env=env,
                text=True,
                process_group=0,
            )
        self.listen = ""
        self.health = ""
        self._channels: list[Any] = []

    def stderr(self) -> str:
        """What the process wrote to stderr so far."""
        return self.stderr_path.read_text(encoding="utf-8", errors="replace")

    def wait_ready(self) -> str:
        """Reads the ready line (bounded); returns it and notes the addresses."""
        lines: queue.Queue[str] = queue.Queue()
        assert self.process.stdout is not None
        stdout = self.process.stdout
        threading.Thread(target=lambda: lines.put(stdout.readline()), daemon=True).start()
        try:
            line = lines.get(timeout=READY_TIMEOUT_S)
        except queue.Empty:
            pytest.fail(f"no ready line after {READY_TIMEOUT_S}s:\n{self.stderr()}")
        match = READY_LINE.match(line)
        if match is None:
            self.process.wait(EXIT_TIMEOUT_S)
            pytest.fail(f"not a ready line: {line!r} (exit {self.process.returncode}):\n{self.stderr()}")
        self.listen = f"{match[1]}:{match[2]}"
        self.health = f"{match[3]}:{match[4]}"
        return line

    def wait_exit(self, timeout_s: float = EXIT_TIMEOUT_S) -> int:
        """Waits for the process to end; its exit status."""
        try:
            return self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            pytest.fail(f"still running after {timeout_s}s:\n{self.stderr()}")

    def channel(self, credentials: Any = None, **options: Any) -> Any:
        """A channel to the main port (TLS with ``credentials``), closed with the process."""
        if credentials is None:
            channel = grpc.insecure_channel(self.listen, options=list(options.items()))
        else:
            channel = grpc.secure_channel(self.listen, credentials, options=list(options.items()))
        self._channels.append(channel)
        return channel

    def health_stub(self) -> Any:
        """A ``grpc.health.v1.Health`` stub for the health port."""
        channel = grpc.insecure_channel(self.health)
        self._channels.append(channel)
        return health_pb2_grpc.HealthStub(channel)

    def kill(self) -> None:
        """Kills the process group; closes the channels."""
        for channel in self._channels:
            with contextlib.suppress(Exception):
                channel.close()
        with contextlib.suppress(OSError):
            os.killpg(self.process.pid, signal.SIGKILL)
        with contextlib.suppress(Exception):
            self.process.wait(10)
        if self.process.stdout is not None:
            self.process.stdout.close()


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[..., ServeProcess]]:
    """Starts ``serve`` processes on 127.0.0.1 (any free ports); all are killed at the end."""
    started: list[ServeProcess] = []

    def start(*args: str, adapter: str = SHOWCASE, ready: bool = True) -> ServeProcess:
        process = ServeProcess(
            ["--adapter", adapter, "--listen", "127.0.0.1:0", "--health-listen", "127.0.0.1:0", *args],
            tmp_path / f"serve-{len(started)}.stderr",
        )
        started.append(process)
        if ready:
            process.wait_ready()
        return process

    try:
        yield start
    finally:
        for process in started:
            process.kill()


def tls_args(certs: Path, *extra: str) -> list[str]:
    """The flags of a worker with mutual TLS and the token."""
    return [
        "--tls-cert", str(certs / "server.crt"), "--tls-key", str(certs / "server.key"),
        "--tls-client-ca", str(certs / "ca.crt"), "--token-file", str(certs / "token"), *extra,
    ]  # fmt: skip


def client_credentials(certs: Path) -> Any:
    """The host's side of mutual TLS: trusts the CA, presents the client certificate."""
    return grpc.ssl_channel_credentials(
        root_certificates=(certs / "ca.crt").read_bytes(),
        private_key=(certs / "client.key").read_bytes(),
        certificate_chain=(certs / "client.crt").read_bytes(),
    )


def bearer(token: str = TOKEN) -> tuple[tuple[str, str], ...]:
    """The call metadata that presents ``token``."""
    return (("authorization", f"Bearer {token}"),)


def unary(channel: Any, rpc: str, request: Any, timeout_s: float = CALL_TIMEOUT_S, **kwargs: Any) -> Any:
    """Calls a unary rpc of ``BridgeService``."""
    method = protocol.METHODS[rpc]
    call = channel.unary_unary(
        method.path,
        request_serializer=method.request.SerializeToString,
        response_deserializer=method.response.FromString,
    )
    return call(request, timeout=timeout_s, **kwargs)


def unary_future(channel: Any, rpc: str, request: Any, timeout_s: float = CALL_TIMEOUT_S, **kwargs: Any) -> Any:
    """Starts a unary rpc; returns its future."""
    method = protocol.METHODS[rpc]
    call = channel.unary_unary(
        method.path,
        request_serializer=method.request.SerializeToString,
        response_deserializer=method.response.FromString,
    )
    return call.future(request, timeout=timeout_s, **kwargs)


def result(response: Any) -> Any:
    """The decoded result of a successful ``ExecuteTool`` response."""
    assert response.success, response.error_message
    return serialization.decode_any(response.result)


def watch_health(process: ServeProcess, service: str = "") -> Iterator[Any]:
    """The health statuses of ``service`` as the server sends them (bounded)."""
    stream = process.health_stub().Watch(health_pb2.HealthCheckRequest(service=service), timeout=CALL_TIMEOUT_S)
    return (response.status for response in stream)


# -- tests


def test_a_call_over_mutual_tls_with_the_token_works(serve: Callable[..., ServeProcess], certs: Path) -> None:
    worker = serve(*tls_args(certs))
    channel = worker.channel(client_credentials(certs), **{"grpc.ssl_target_name_override": "localhost"})
    response = unary(channel, "ExecuteTool", tool_request("add", a=2, b=3), metadata=bearer())
    assert result(response) == 5
    chunks = protocol.METHODS["ExecuteStreamingTool"]
    stream = channel.unary_stream(
        chunks.path,
        request_serializer=chunks.request.SerializeToString,
        response_deserializer=chunks.response.FromString,
    )(tool_request("count_stream", n=3), timeout=CALL_TIMEOUT_S, metadata=bearer())
    assert [chunk.is_final for chunk in stream] == [False, False, False, True]


def test_without_a_client_certificate_the_handshake_fails(serve: Callable[..., ServeProcess], certs: Path) -> None:
    worker = serve(*tls_args(certs))
    only_ca = grpc.ssl_channel_credentials(root_certificates=(certs / "ca.crt").read_bytes())
    with pytest.raises(grpc.RpcError) as raised:
        unary(worker.channel(only_ca), "Ping", protocol.PingRequest(), timeout_s=5, metadata=bearer())
    assert raised.value.code() == grpc.StatusCode.UNAVAILABLE


@pytest.mark.parametrize("metadata", [(), bearer("wrong"), (("authorization", TOKEN),)], ids=["none", "wrong", "bare"])
def test_a_missing_or_wrong_token_is_unauthenticated(
    serve: Callable[..., ServeProcess], certs: Path, metadata: tuple[tuple[str, str], ...]
) -> None:
    worker = serve(*tls_args(certs))
    channel = worker.channel(client_credentials(certs))
    for rpc, request in (("Ping", protocol.PingRequest()), ("ExecuteTool", tool_request("ping"))):
        with pytest.raises(grpc.RpcError) as raised:
            unary(channel, rpc, request, metadata=metadata)
        assert raised.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert raised.value.details() == "missing or wrong bearer token"


def test_a_rotated_token_file_takes_effect(serve: Callable[..., ServeProcess], certs: Path, tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("first-token\n", encoding="utf-8")
    worker = serve("--insecure-plaintext", "--token-file", str(token_file))
    channel = worker.channel()
    assert unary(channel, "Ping", protocol.PingRequest(), metadata=bearer("first-token")).version == __version__

    replacement = tmp_path / "token.new"
    replacement.write_text("second-token-longer\n", encoding="utf-8")
    os.replace(replacement, token_file)  # as a Secret's mount swaps its files

    def accepts_the_new_token() -> bool:
        try:
            unary(channel, "Ping", protocol.PingRequest(), metadata=bearer("second-token-longer"))
        except grpc.RpcError as error:
            assert error.code() == grpc.StatusCode.UNAUTHENTICATED
            return False
        return True

    wait_until(accepts_the_new_token, 10.0, "the new token to be accepted")
    with pytest.raises(grpc.RpcError) as raised:
        unary(channel, "Ping", protocol.PingRequest(), metadata=bearer("first-token"))
    assert raised.value.code() == grpc.StatusCode.UNAUTHENTICATED


@pytest.mark.parametrize(
    ("adapter", "args", "capacity"),
    [(SHOWCASE, (), 1), (THREADED_SHOWCASE, ("--threads", "4"), 4)],
    ids=["process", "threads"],
)
def test_ping_reports_capacity_adapter_and_version(
    serve: Callable[..., ServeProcess], adapter: str, args: tuple[str, ...], capacity: int
) -> None:
    worker = serve("--insecure-plaintext", *args, adapter=adapter)
    pong = unary(worker.channel(), "Ping", protocol.PingRequest(message="hi"))
    assert (pong.capacity, pong.adapter, pong.version) == (capacity, adapter, __version__)
    assert "hi" in pong.message


def test_the_thread_profile_needs_a_thread_safe_adapter(serve: Callable[..., ServeProcess]) -> None:
    worker = serve("--insecure-plaintext", "--threads", "2", ready=False)
    assert worker.wait_exit() == 3
    assert "not marked thread-safe" in worker.stderr()


def test_health_is_serving_then_not_serving_after_sigterm(serve: Callable[..., ServeProcess]) -> None:
    worker = serve("--insecure-plaintext")
    stub = worker.health_stub()
    for service in ("", protocol.SERVICE_NAME):
        status = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=CALL_TIMEOUT_S).status
        assert status == health_pb2.HealthCheckResponse.SERVING
    statuses = watch_health(worker)
    assert next(statuses) == health_pb2.HealthCheckResponse.SERVING
    worker.process.send_signal(signal.SIGTERM)
    assert next(statuses) == health_pb2.HealthCheckResponse.NOT_SERVING
    assert worker.wait_exit() == 0


def test_sigterm_lets_the_running_call_finish_and_refuses_new_ones(
    serve: Callable[..., ServeProcess], certs: Path, tmp_path: Path
) -> None:
    worker = serve(*tls_args(certs, "--grace", "30"))
    channel = worker.channel(client_credentials(certs))
    started, release = tmp_path / "started", tmp_path / "release"
    slow = unary_future(
        channel,
        "ExecuteTool",
        tool_request("record_then_wait", record_path=str(started), wait_path=str(release)),
        metadata=bearer(),
    )
    wait_until(started.exists, CALL_TIMEOUT_S, "the slow call to start")
    statuses = watch_health(worker)
    assert next(statuses) == health_pb2.HealthCheckResponse.SERVING

    worker.process.send_signal(signal.SIGTERM)
    assert next(statuses) == health_pb2.HealthCheckResponse.NOT_SERVING
    for rpc, request in (
        ("ExecuteTool", tool_request("record", path=str(tmp_path / "ran"))),
        ("Ping", protocol.PingRequest()),
    ):
        with pytest.raises(grpc.RpcError) as raised:
            unary(channel, rpc, request, metadata=bearer())
        assert raised.value.code() == grpc.StatusCode.UNAVAILABLE
        assert raised.value.details().startswith(DRAINING_MESSAGE)
    chunks = protocol.METHODS["ExecuteStreamingTool"]
    stream = channel.unary_stream(
        chunks.path,
        request_serializer=chunks.request.SerializeToString,
        response_deserializer=chunks.response.FromString,
    )(tool_request("count_stream", n=2), timeout=CALL_TIMEOUT_S, metadata=bearer())
    with pytest.raises(grpc.RpcError) as raised:
        list(stream)
    assert raised.value.code() == grpc.StatusCode.UNAVAILABLE
    assert raised.value.details().startswith(DRAINING_MESSAGE)
    assert not (tmp_path / "ran").exists(), "a refused call must not run"
    health = worker.health_stub()
    for service, status in (
        ("", health_pb2.HealthCheckResponse.NOT_SERVING),
        (protocol.SERVICE_NAME, health_pb2.HealthCheckResponse.NOT_SERVING),
        ("liveness", health_pb2.HealthCheckResponse.SERVING),  # a drain is no reason to kill it
    ):
        assert health.Check(health_pb2.HealthCheckRequest(service=service), timeout=CALL_TIMEOUT_S).status == status
    assert worker.process.poll() is None, "the running call holds the process"

    release.touch()
    assert result(slow.result(timeout=CALL_TIMEOUT_S)) is True
    assert worker.wait_exit() == 0
    assert "drained" in worker.stderr()


def test_the_grace_running_out_still_exits_0(serve: Callable[..., ServeProcess], tmp_path: Path) -> None:
    worker = serve("--insecure-plaintext", "--grace", "0.2")
    started = tmp_path / "started"
    slow = unary_future(
        worker.channel(),
        "ExecuteTool",
        tool_request("record_then_wait", record_path=str(started), wait_path=str(tmp_path / "never")),
    )
    wait_until(started.exists, CALL_TIMEOUT_S, "the slow call to start")
    worker.process.send_signal(signal.SIGTERM)
    assert worker.wait_exit() == 0
    assert "grace of 0.2s ran out with 1 call(s) still running" in worker.stderr()
    with pytest.raises(grpc.RpcError):
        slow.result(timeout=CALL_TIMEOUT_S)


def test_a_process_profile_call_past_its_deadline_ends_the_worker_with_70(
    serve: Callable[..., ServeProcess], tmp_path: Path
) -> None:
    worker = serve("--insecure-plaintext")
    # A call without a deadline first (grpc reports its time left as ~2**63 s).
    method = protocol.METHODS["ExecuteTool"]
    without_deadline = worker.channel().unary_unary(
        method.path,
        request_serializer=method.request.SerializeToString,
        response_deserializer=method.response.FromString,
    )
    assert result(without_deadline(tool_request("ping"))) == "pong"
    with pytest.raises(grpc.RpcError) as raised:
        unary(
            worker.channel(), "ExecuteTool", tool_request("wait_for_file", path=str(tmp_path / "never")), timeout_s=0.3
        )
    assert raised.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert worker.wait_exit() == EXIT_DEADLINE
    assert "tool wait_for_file is still running" in worker.stderr()


def test_a_thread_profile_call_past_its_deadline_does_not_end_the_worker(
    serve: Callable[..., ServeProcess], tmp_path: Path
) -> None:
    worker = serve("--insecure-plaintext", "--threads", "2", adapter=THREADED_SHOWCASE)
    channel = worker.channel()
    release = tmp_path / "release"
    with pytest.raises(grpc.RpcError) as raised:
        unary(channel, "ExecuteTool", tool_request("wait_for_file", path=str(release)), timeout_s=0.2)
    assert raised.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    # Well past the deadline and its margin, measured by a call of the worker's own.
    assert result(unary(channel, "ExecuteTool", tool_request("sleep", ms=4500))) == 4500
    assert worker.process.poll() is None
    release.touch()


@pytest.mark.parametrize(
    "args",
    [(), ("--tls-cert", "x.crt", "--tls-key", "x.key", "--insecure-plaintext")],
    ids=["no-tls", "both"],
)
def test_plaintext_needs_insecure_plaintext(serve: Callable[..., ServeProcess], args: tuple[str, ...]) -> None:
    worker = serve(*args, ready=False)
    assert worker.wait_exit() == 2
    assert "--insecure-plaintext" in worker.stderr()
    assert worker.process.stdout is not None and worker.process.stdout.read() == ""


def test_keepalive_pings_are_never_answered_with_goaway(serve: Callable[..., ServeProcess]) -> None:
    worker = serve("--insecure-plaintext")
    channel = worker.channel(
        **{
            "grpc.keepalive_time_ms": 100,
            "grpc.keepalive_timeout_ms": 5000,
            "grpc.keepalive_permit_without_calls": 1,
            "grpc.http2.max_pings_without_data": 0,
        }
    )
    # A call that sends no data for 4.5 s. The client pings at most once a
    # second; without the server's options its third ping would be a third
    # strike (default limit 2, one ping per 5 min allowed) and GOAWAY
    # too_many_pings would fail this call with UNAVAILABLE.
    assert result(unary(channel, "ExecuteTool", tool_request("sleep", ms=4500))) == 4500
    assert result(unary(channel, "ExecuteTool", tool_request("ping"))) == "pong"


def test_every_process_is_gone_after_a_test(serve: Callable[..., ServeProcess]) -> None:
    worker = serve("--insecure-plaintext")
    worker.kill()
    assert process_gone(worker.process.pid)


# -- the parts, in this process


def test_the_token_file_is_looked_at_no_more_than_once_a_second(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text("  old\n", encoding="utf-8")
    now = [100.0]
    token = TokenFile(str(path), clock=lambda: now[0])
    assert token.accepts(bearer("old")) and not token.accepts(bearer("new")) and not token.accepts(())
    path.write_text("new-and-longer\n", encoding="utf-8")
    now[0] += 0.9
    assert token.current() == b"old", "re-read before a second passed"
    now[0] += 0.2
    assert token.current() == b"new-and-longer"
    assert token.accepts(bearer("new-and-longer")) and not token.accepts(bearer("old"))
    path.write_text("\n", encoding="utf-8")
    now[0] += 1.0
    assert token.current() == b"new-and-longer", "an emptied file keeps the last token"


def test_the_watchdog_fires_for_a_call_past_its_deadline_and_margin() -> None:
    fired: queue.Queue[tuple[str, float]] = queue.Queue()
    now = [0.0]
    watchdog = DeadlineWatchdog(
        margin_s=0.5, on_expired=lambda tool, overdue: fired.put((tool, overdue)), clock=lambda: now[0]
    )
    watchdog.watch("slow_tool", deadline=-1.0)  # 1 s past its deadline, 0.5 s past the margin
    tool, overdue = fired.get(timeout=5)
    assert tool == "slow_tool" and overdue == pytest.approx(1.0)


def test_drain_refuses_new_calls_and_waits_for_running_ones() -> None:
    drain = Drain()
    assert drain.enter()
    drain.request()
    assert not drain.enter(), "a call after the signal is refused"
    drain.close()
    assert not drain.wait_idle(0.01)
    threading.Thread(target=drain.leave).start()
    assert drain.wait_idle(5.0)
    assert drain.in_flight == 0


def test_addresses_are_host_colon_port() -> None:
    assert split_address("0.0.0.0:50051") == ("0.0.0.0", 50051)
    assert split_address("[::]:0") == ("[::]", 0)
    for bad in ("50051", "host:", ":80", "host:99999", "host:x"):
        with pytest.raises(ValueError):
            split_address(bad)


def test_the_watchdog_survives_a_call_with_a_far_deadline() -> None:
    fired: queue.Queue[str] = queue.Queue()
    looked: queue.Queue[None] = queue.Queue()

    def clock() -> float:
        looked.put(None)
        return 0.0

    watchdog = DeadlineWatchdog(margin_s=0.5, on_expired=lambda tool, overdue: fired.put(tool), clock=clock)
    watchdog.watch("far", deadline=9.2e18)  # what 'no deadline' looks like
    looked.get(timeout=5)  # the watchdog has seen it and waits (or failed)
    watchdog.watch("late", deadline=-1.0)
    assert fired.get(timeout=5) == "late"
