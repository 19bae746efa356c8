"""The worker's modules as adapters and the host rely on them: what imports
without grpcio and protobuf, and the command line the host passes."""

from __future__ import annotations

import subprocess
import sys

import pytest
from conftest import PYTHON_DIR

from snakepit_bridge.command_line import DEFAULT_MAX_MESSAGE_BYTES, parse_args

# Modules an adapter (and its unit tests) or the worker's first steps import.
WITHOUT_GRPC = (
    "snakepit_bridge",
    "snakepit_bridge.base_adapter",
    "snakepit_bridge.base_adapter_threaded",
    "snakepit_bridge.session_context",
    "snakepit_bridge.telemetry",
    "snakepit_bridge.logging_config",
    "snakepit_bridge.zero_copy",
    "snakepit_bridge.sessions",
    "snakepit_bridge.command_line",
    "snakepit_bridge.lifetime",
    "snakepit_bridge.worker",
    "snakepit_bridge.serve",
    "snakepit_bridge.__main__",
)


def run_without_grpc(code: str) -> subprocess.CompletedProcess[str]:
    """Runs ``code`` in a fresh interpreter where grpcio and protobuf cannot be imported."""
    blocker = "import sys\nsys.modules['grpc'] = None\nsys.modules['google'] = None\n"
    return subprocess.run(
        [sys.executable, "-c", blocker + code],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=PYTHON_DIR,
        stdin=subprocess.DEVNULL,
    )


def test_an_adapter_is_written_and_run_without_grpcio_or_protobuf() -> None:
    code = (
        "import importlib\n"
        f"for name in {WITHOUT_GRPC!r}:\n"
        "    importlib.import_module(name)\n"
        "from snakepit_bridge import BaseAdapter, SessionContext, tool\n"
        "class Adder(BaseAdapter):\n"
        "    @tool\n"
        "    def add(self, a: int, b: int) -> int:\n"
        "        return a + b + len(self.session_context.store)\n"
        "adapter = Adder()\n"
        "adapter.set_session_context(SessionContext('s', store={'k': 1}))\n"
        "print(adapter.execute_tool('add', {'a': 2, 'b': 3}), [t.name for t in adapter.get_tools()])\n"
    )
    done = run_without_grpc(code)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "6 ['add']"


@pytest.mark.parametrize(
    ("module", "missing"), [("server", "grpc"), ("host_client", "grpc"), ("protocol", "google.protobuf")]
)
def test_the_wire_side_needs_them(module: str, missing: str) -> None:
    # Keeps the test above honest: the blocker does block.
    done = run_without_grpc(f"import snakepit_bridge.{module}\n")
    assert done.returncode != 0 and "ModuleNotFoundError" in done.stderr and missing in done.stderr


def test_the_flags_the_host_passes_give_the_process_profile() -> None:
    options = parse_args(
        ["--adapter", "m.C", "--socket", "/tmp/w.sock", "--worker-id", "pool/worker-0", "--max-message-bytes", "1024"]
    )
    assert (options.adapter, options.socket, options.worker_id) == ("m.C", "/tmp/w.sock", "pool/worker-0")
    assert options.max_message_bytes == 1024
    assert not options.thread_profile and not options.adapter_per_worker and options.unknown == []


def test_max_workers_selects_the_thread_profile_and_defaults_stay() -> None:
    options = parse_args(["--adapter", "m.C", "--max-workers", "8", "--adapter-per-worker"])
    assert options.thread_profile and options.max_workers == 8 and options.adapter_per_worker
    assert options.max_message_bytes == DEFAULT_MAX_MESSAGE_BYTES
    assert (options.port, options.bind_host, options.socket) == (0, "127.0.0.1", None)


def test_unknown_flags_are_kept_for_the_log_not_refused() -> None:
    options = parse_args(["--adapter", "m.C", "--snakepit-run-id", "r1", "--thread-safety-check"])
    assert options.unknown == ["--snakepit-run-id", "r1"] and options.thread_safety_check


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--max-workers", "0"], "--max-workers must be at least 1"),
        (["--max-message-bytes", "0"], "--max-message-bytes must be positive"),
        ([], "the following arguments are required: --adapter"),
    ],
)
def test_bad_flags_exit_2_with_the_reason(flags: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    argv = flags if not flags or flags[0] == "--adapter" else ["--adapter", "m.C", *flags]
    with pytest.raises(SystemExit) as exit_info:
        parse_args(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_serve_without_grpcio_exits_4_naming_the_packages() -> None:
    done = run_without_grpc(
        "from snakepit_bridge.__main__ import main\n"
        "main(['serve', '--adapter', 'snakepit_showcase.adapter.ShowcaseAdapter', '--insecure-plaintext',"
        " '--listen', '127.0.0.1:0', '--health-listen', '127.0.0.1:0'])\n"
    )
    assert done.returncode == 4, done.stderr
    assert "grpcio-health-checking" in done.stderr and done.stdout == ""
