"""Shared fixtures: the package on sys.path, and real worker processes.

Every worker a test starts is the leader of its own process group and is
killed with its whole group when the test ends, whatever happened.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable

import pytest

PYTHON_DIR = Path(__file__).resolve().parent.parent
if str(PYTHON_DIR) not in sys.path:
    sys.path.insert(0, str(PYTHON_DIR))

SERVER_SCRIPT = PYTHON_DIR / "grpc_server.py"
SHOWCASE = "snakepit_showcase.adapter.ShowcaseAdapter"
THREADED_SHOWCASE = "snakepit_showcase.adapter.ThreadedShowcaseAdapter"
READY_TIMEOUT_S = 20.0
CALL_TIMEOUT_S = 20.0


def process_gone(pid: int) -> bool:
    """Whether ``pid`` has ended (absent, or a zombie nobody reaped yet)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as handle:
            text = handle.read()
    except OSError:
        return True
    return text[text.rfind(")") + 2 :].split()[0] in ("Z", "X")


def wait_until(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    """Polls ``condition`` until true; fails the test after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s}s waiting for {what}")
        time.sleep(0.01)


class RunningWorker:
    """A ``grpc_server.py`` process and a channel to it."""

    def __init__(self, directory: Path, adapter: str, args: list[str], env: dict[str, str], tcp: bool) -> None:
        self.directory = directory
        self.socket_path = directory / "worker.sock"
        self.ready_file = directory / "worker.ready"
        self.stderr_path = directory / "worker.stderr"
        command = [sys.executable, "-u", str(SERVER_SCRIPT), "--adapter", adapter, *args]
        if not tcp:
            command += ["--socket", str(self.socket_path)]
        full_env = dict(os.environ)
        full_env.update({"SNAKEPIT_READY_FILE": str(self.ready_file), "PYTHONPATH": str(PYTHON_DIR)})
        full_env.update(env)
        with open(self.stderr_path, "wb") as stderr:
            self.process = subprocess.Popen(
                command,
                stdin=subprocess.PIPE,
                stdout=stderr,
                stderr=stderr,
                env=full_env,
                process_group=0,
            )
        self._channel: Any = None
        self.address = ""

    # -- lifecycle

    def stderr(self) -> str:
        """Everything the worker wrote so far."""
        return self.stderr_path.read_text(encoding="utf-8", errors="replace")

    def wait_ready(self, timeout_s: float = READY_TIMEOUT_S) -> str:
        """Waits for the ready file; returns its content."""
        deadline = time.monotonic() + timeout_s
        while not self.ready_file.exists():
            if self.process.poll() is not None:
                pytest.fail(f"worker exited with {self.process.returncode}:\n{self.stderr()}")
            if time.monotonic() > deadline:
                pytest.fail(f"worker not ready after {timeout_s}s:\n{self.stderr()}")
            time.sleep(0.01)
        content = self.ready_file.read_text(encoding="utf-8")
        self.address = content if content.startswith("unix:") else f"127.0.0.1:{content}"
        return content

    def wait_exit(self, timeout_s: float = 10.0) -> int:
        """Waits for the process to end; returns its exit status."""
        try:
            return self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            pytest.fail(f"worker still running after {timeout_s}s:\n{self.stderr()}")

    def kill(self) -> None:
        """Kills the worker's whole process group and closes the channel."""
        if self._channel is not None:
            self._channel.close()
            self._channel = None
        with contextlib.suppress(OSError):
            os.killpg(self.process.pid, signal.SIGKILL)
        with contextlib.suppress(Exception):
            self.process.wait(10)
        if self.process.stdin is not None:
            with contextlib.suppress(OSError):
                self.process.stdin.close()

    # -- calls

    @property
    def channel(self) -> Any:
        import grpc

        if self._channel is None:
            assert self.address, "wait_ready() first"
            self._channel = grpc.insecure_channel(
                self.address,
                options=[
                    ("grpc.max_send_message_length", 256 * 1024 * 1024),
                    ("grpc.max_receive_message_length", 256 * 1024 * 1024),
                ],
            )
        return self._channel

    def unary(self, rpc: str, request: Any, timeout_s: float = CALL_TIMEOUT_S) -> Any:
        """Calls a unary rpc through ``channel.unary_unary``."""
        from snakepit_bridge import protocol

        method = protocol.METHODS[rpc]
        call = self.channel.unary_unary(
            method.path,
            request_serializer=method.request.SerializeToString,
            response_deserializer=method.response.FromString,
        )
        return call(request, timeout=timeout_s)

    def stream(self, tool_name: str, timeout_s: float = CALL_TIMEOUT_S, **arguments: Any) -> Any:
        """Starts ``ExecuteStreamingTool``; returns the call (iterate it, or cancel it)."""
        from snakepit_bridge import protocol

        method = protocol.METHODS["ExecuteStreamingTool"]
        call = self.channel.unary_stream(
            method.path,
            request_serializer=method.request.SerializeToString,
            response_deserializer=method.response.FromString,
        )
        return call(tool_request(tool_name, **arguments), timeout=timeout_s)

    def execute(self, tool_name: str, session_id: str = "", timeout_s: float = CALL_TIMEOUT_S, **arguments: Any) -> Any:
        """``ExecuteTool``; returns the response."""
        return self.unary("ExecuteTool", tool_request(tool_name, session_id, **arguments), timeout_s)

    def result(self, tool_name: str, session_id: str = "", **arguments: Any) -> Any:
        """``ExecuteTool`` that must succeed; returns the decoded result."""
        from snakepit_bridge import serialization

        response = self.execute(tool_name, session_id, **arguments)
        assert response.success, response.error_message
        if response.binary_result or response.result.type_url == serialization.BINARY_TYPE_URL:
            return bytes(response.binary_result)
        return serialization.decode_any(response.result)


def tool_request(tool_name: str, session_id: str = "", **arguments: Any) -> Any:
    """An ``ExecuteToolRequest`` as the host builds it."""
    from snakepit_bridge import protocol, serialization

    request = protocol.ExecuteToolRequest(tool_name=tool_name, session_id=session_id)
    for name, value in arguments.items():
        if isinstance(value, bytes):
            request.binary_parameters[name] = value
        else:
            request.parameters[name].CopyFrom(serialization.parameter_any(value))
    return request


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """A private directory with a short path (Unix socket paths are limited)."""
    directory = Path(tempfile.mkdtemp(prefix="sp-", dir="/tmp"))
    try:
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def start_worker(short_dir: Path) -> Iterator[Callable[..., RunningWorker]]:
    """Starts workers; every one is killed (with its process group) at the end."""
    started: list[RunningWorker] = []

    def start(
        adapter: str = SHOWCASE,
        *args: str,
        ready: bool = True,
        env: dict[str, str] | None = None,
        tcp: bool = False,
    ) -> RunningWorker:
        directory = short_dir / f"w{len(started)}"
        directory.mkdir()
        worker = RunningWorker(directory, adapter, list(args), env or {}, tcp)
        started.append(worker)
        if ready:
            worker.wait_ready()
        return worker

    try:
        yield start
    finally:
        for worker in started:
            worker.kill()
