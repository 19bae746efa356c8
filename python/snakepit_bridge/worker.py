"""The worker process: serves one adapter's tools over gRPC to the host.

Command line (the Snakepit contract, plus our extensions)::

    grpc_server.py --adapter module.Class [--port N | --socket PATH]
                   [--elixir-address HOST:PORT|unix:PATH] [--max-workers N]
                   [--thread-safety-check] [--max-message-bytes N]
                   [--worker-id ID] [--adapter-per-worker] [--bind-host HOST]

Unknown flags (Snakepit hosts add ``--snakepit-run-id`` and others) are
logged and ignored. The worker id defaults to ``SNAKEPIT_WORKER_ID``.

Start-up, in order: route stdout to stderr; arm the parent-death signal and
the stdin watch (EOF on stdin means the host is gone); import grpc and
protobuf (exit 4 if missing); import the adapter (exit 3 with the traceback
if that fails, or if ``--max-workers`` is given for an adapter that is not
``__thread_safe__``); wait for the host's ``Ping`` when ``--elixir-address``
is given (exit 5 if it never answers); bind (exit 6 on failure); start; then
write the ready file named by ``SNAKEPIT_READY_FILE``: the port number for
TCP, ``unix:PATH`` for a socket, written to ``<file>.tmp`` and renamed.

Profiles: without ``--max-workers`` tool calls run one at a time (the
process profile) while Ping and session calls still answer; with
``--max-workers N`` up to N tool calls run at once (the thread profile).

SIGTERM (or SIGINT) stops the server with a short grace, sends SIGTERM to the
rest of the process group (what the tools started), and exits 0.
"""

from __future__ import annotations

import argparse
import asyncio
import collections.abc
import concurrent.futures
import contextlib
import importlib
import inspect
import logging
import os
import signal
import stat
import sys
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, Callable, Iterator

from .base_adapter import resolve_awaitable
from .session_context import HostCallbackClient, SessionContext

EXIT_ADAPTER = 3
"""Exit status when the adapter cannot be imported or does not fit the profile."""
EXIT_DEPENDENCIES = 4
"""Exit status when grpcio or protobuf cannot be imported."""
EXIT_HOST_UNREACHABLE = 5
"""Exit status when ``--elixir-address`` never answers ``Ping``."""
EXIT_BIND = 6
"""Exit status when the listening address cannot be bound."""

DEFAULT_MAX_MESSAGE_BYTES = 128 * 1024 * 1024
"""Default for ``--max-message-bytes``."""

PROCESS_PROFILE_THREADS = 4
"""gRPC threads in the process profile: one for the tool call, the rest so
that Ping and session calls answer while it runs."""

HOST_WAIT_S = 10.0
"""How long start-up waits for the host's ``Ping`` at ``--elixir-address``."""

SHUTDOWN_GRACE_S = 1.0
"""How long SIGTERM lets calls in flight finish."""

READY_FILE_ENV = "SNAKEPIT_READY_FILE"
"""Environment variable naming the ready file."""

REQUIREMENTS_FILE = Path(__file__).resolve().parent.parent / "requirements.txt"
"""The requirements file shipped next to ``grpc_server.py``."""


#: Request metadata by which a host asks for a mid-stream failure as a final
#: error chunk instead of an error status (ours does; Snakepit's does not).
ERROR_CHUNK_KEY = "snakepit.error_chunk"

log = logging.getLogger("snakepit.worker")


# ---------------------------------------------------------------- command line


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parses the worker's command line."""
    parser = argparse.ArgumentParser(
        prog="grpc_server.py",
        description="snakepit Python worker: serves an adapter's tools over gRPC.",
        allow_abbrev=False,
    )
    parser.add_argument("--adapter", required=True, help="adapter class, as module.Class")
    parser.add_argument("--port", type=int, default=0, help="TCP port to listen on (0: any free port)")
    parser.add_argument("--socket", default=None, help="listen on the Unix socket PATH instead of TCP")
    parser.add_argument("--bind-host", default="127.0.0.1", help="TCP interface to bind (default 127.0.0.1)")
    parser.add_argument(
        "--elixir-address",
        default=None,
        help="the host's callback server (HOST:PORT or unix:PATH); waited for before binding",
    )
    parser.add_argument(
        "--max-workers",
        type=int,
        default=None,
        help="thread profile: run up to N calls at once (the adapter must be thread-safe)",
    )
    parser.add_argument("--thread-safety-check", action="store_true", help="accepted for Snakepit compatibility")
    parser.add_argument(
        "--max-message-bytes",
        type=int,
        default=DEFAULT_MAX_MESSAGE_BYTES,
        help="largest gRPC message sent or received (default 128 MiB)",
    )
    parser.add_argument("--worker-id", default=None, help="name used in logs and response metadata")
    parser.add_argument(
        "--adapter-per-worker",
        action="store_true",
        help="one adapter for the whole process (initialized once) instead of one per call",
    )
    # Unknown flags are tolerated: Snakepit hosts add their own
    # (--snakepit-run-id, --snakepit-instance-name, ...).
    args, unknown = parser.parse_known_args(argv)
    args.unknown = unknown
    if args.max_workers is not None and args.max_workers < 1:
        parser.error("--max-workers must be at least 1")
    if args.max_message_bytes < 1:
        parser.error("--max-message-bytes must be positive")
    return args


# ---------------------------------------------------------------- lifetime


def _proc_stat(pid: int) -> tuple[int, int] | None:
    """(parent pid, process group) of ``pid`` from /proc, or None."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            text = handle.read().decode("utf-8", "replace")
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses.
    fields = text[text.rfind(")") + 2 :].split()
    return int(fields[1]), int(fields[2])


def _others_in_group() -> list[int]:
    """The processes started by this worker (and by its tools).

    As group leader: every other member of our process group. Otherwise
    (run by hand, sharing a group with a shell): our descendants only.
    """
    me = os.getpid()
    leader = os.getpgrp() == me
    table: dict[int, tuple[int, int]] = {}
    for entry in os.listdir("/proc") if os.path.isdir("/proc") else []:
        if entry.isdigit() and int(entry) != me:
            info = _proc_stat(int(entry))
            if info is not None:
                table[int(entry)] = info
    if leader:
        return [pid for pid, (_, group) in table.items() if group == me]
    found: list[int] = []
    frontier = [me]
    while frontier:
        parent = frontier.pop()
        children = [pid for pid, (ppid, _) in table.items() if ppid == parent]
        found.extend(children)
        frontier.extend(children)
    return found


def signal_others(signum: int) -> None:
    """Sends ``signum`` to what this worker started, never to itself."""
    for pid in _others_in_group():
        with contextlib.suppress(OSError):
            os.kill(pid, signum)


def signal_own_group(signum: int) -> None:
    """Sends ``signum`` to our process group while ignoring it ourselves."""
    if os.getpgrp() != os.getpid() or not os.path.isdir("/proc"):
        signal_others(signum)
        return
    with contextlib.suppress(OSError, ValueError):
        signal.signal(signum, signal.SIG_IGN)
    with contextlib.suppress(OSError):
        os.killpg(os.getpgrp(), signum)


def arm_parent_death_signal(original_parent: int) -> None:
    """Asks Linux for SIGTERM when the parent dies; exits if it already has."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, int(signal.SIGTERM), 0, 0, 0)
    except Exception:  # noqa: BLE001 - best effort; the stdin watch remains
        return
    if os.getppid() != original_parent:
        os._exit(0)


def die_with_host() -> None:
    """The host is gone: kill everything we started, then exit at once."""
    with contextlib.suppress(Exception):
        sys.stderr.write("snakepit worker: host closed stdin; exiting\n")
        sys.stderr.flush()
    with contextlib.suppress(Exception):
        signal_own_group(signal.SIGTERM)
        signal_others(signal.SIGKILL)
    if os.getpgrp() == os.getpid() and not os.path.isdir("/proc"):
        with contextlib.suppress(OSError):
            os.killpg(os.getpgrp(), signal.SIGKILL)
    os._exit(0)


def watch_stdin(on_eof: Callable[[], None]) -> bool:
    """Starts a daemon thread that calls ``on_eof`` when stdin reaches EOF.

    Only when stdin is a pipe or socket (the host holds its write end); a
    TTY, a file or /dev/null is not watched. Returns whether it watches.
    """
    try:
        mode = os.fstat(0).st_mode
    except OSError:
        return False
    if os.isatty(0) or not (stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)):
        return False
    # Tools must not read the host's pipe.
    sys.stdin = open(os.devnull, encoding="utf-8")  # noqa: SIM115 - lives as long as the process

    def watch() -> None:
        while True:
            try:
                chunk = os.read(0, 65536)
            except InterruptedError:
                continue
            except OSError:
                break
            if not chunk:
                break
        on_eof()

    threading.Thread(target=watch, name="snakepit-stdin-watch", daemon=True).start()
    return True


def route_stdout_to_stderr() -> None:
    """Everything printed goes to stderr, which the host logs line by line."""
    with contextlib.suppress(OSError, ValueError):
        sys.stdout.flush()
        os.dup2(2, 1)
    sys.stdout = sys.stderr


def configure_logging(worker_id: str) -> None:
    """Logs to stderr, one short line per record."""
    level = os.environ.get("SNAKEPIT_LOG_LEVEL", "INFO").upper()
    logging.basicConfig(
        stream=sys.stderr,
        level=getattr(logging, level, logging.INFO),
        format=f"%(asctime)s.%(msecs)03d %(levelname)s [{worker_id}] %(name)s: %(message)s",
        datefmt="%H:%M:%S",
        force=True,
    )


# ---------------------------------------------------------------- imports


def import_transport() -> tuple[Any, Any]:
    """Imports grpc and our protocol module; exits 4 naming the fix if missing."""
    try:
        import grpc

        from . import protocol
    except Exception as error:  # noqa: BLE001 - ImportError or a too old protobuf
        sys.stderr.write(
            f"snakepit worker: cannot import grpcio/protobuf ({type(error).__name__}: {error}).\n"
            f"Install them with: python3 -m pip install -r {REQUIREMENTS_FILE}\n"
            f"(using the interpreter the host runs: {sys.executable})\n"
        )
        sys.stderr.flush()
        os._exit(EXIT_DEPENDENCIES)
    return grpc, protocol


def import_adapter(spec: str) -> type:
    """Imports ``module.Class``; exits 3 with the traceback on failure."""
    module_name, _, class_name = spec.rpartition(".")
    try:
        if not module_name or not class_name:
            raise ImportError(f"--adapter must be module.Class, got {spec!r}")
        module = importlib.import_module(module_name)
        try:
            return getattr(module, class_name)
        except AttributeError:
            raise ImportError(f"module {module_name!r} has no adapter class {class_name!r}") from None
    except BaseException:  # noqa: BLE001 - any failure at import is reported the same way
        sys.stderr.write(f"snakepit worker: cannot import adapter {spec}\n")
        traceback.print_exc(file=sys.stderr)
        sys.stderr.flush()
        os._exit(EXIT_ADAPTER)


# ---------------------------------------------------------------- sessions


@dataclass
class SessionRecord:
    """One session as this process knows it."""

    session_id: str
    store: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, str] = field(default_factory=dict)
    created_at: float = field(default_factory=time.time)
    last_seen: float = field(default_factory=time.time)


class SessionRegistry:
    """session id -> :class:`SessionRecord`, for this process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sessions: dict[str, SessionRecord] = {}

    def touch(self, session_id: str, metadata: dict[str, str] | None = None) -> SessionRecord:
        """The session's record, created on first use."""
        with self._lock:
            record = self._sessions.get(session_id)
            if record is None:
                record = self._sessions[session_id] = SessionRecord(session_id)
            if metadata:
                record.metadata.update(metadata)
            record.last_seen = time.time()
            return record

    def get(self, session_id: str) -> SessionRecord | None:
        """The session's record, if it exists."""
        with self._lock:
            return self._sessions.get(session_id)

    def drop(self, session_id: str) -> SessionRecord | None:
        """Forgets a session and returns what it held."""
        with self._lock:
            return self._sessions.pop(session_id, None)

    def store_for(self, session_id: str) -> dict[str, Any]:
        """The session's store; a throwaway dict when there is no session id."""
        if not session_id:
            return {}
        return self.touch(session_id).store


# ---------------------------------------------------------------- adapters


class AdapterProvider:
    """Makes adapters for calls and runs their lifecycle hooks.

    One adapter per call (``initialize`` before, ``cleanup`` after, always);
    or, with ``per_worker``, one adapter for the process, initialized on
    first use and cleaned up at shutdown.
    """

    def __init__(self, adapter_class: Callable[[], Any], per_worker: bool) -> None:
        self.adapter_class = adapter_class
        self.per_worker = per_worker
        self._lock = threading.Lock()
        self._shared: Any = None
        self._tool_specs: list[Any] | None = None

    def open(self, context: SessionContext | None) -> Any:
        """An adapter ready for a call in ``context`` (initialized)."""
        if self.per_worker:
            adapter = self._shared_adapter()
            _set_context(adapter, context)
            return adapter
        adapter = self.adapter_class()
        _set_context(adapter, context)
        try:
            _run_hook(adapter, "initialize")
        except BaseException:
            with contextlib.suppress(Exception):
                _run_hook(adapter, "cleanup")
            raise
        return adapter

    def close(self, adapter: Any, failed: bool) -> None:
        """Ends a call. A failing ``cleanup`` fails the call only if the tool
        itself succeeded; otherwise it is logged."""
        if self.per_worker:
            _set_context(adapter, None)
            return
        try:
            _run_hook(adapter, "cleanup")
        except Exception:
            if not failed:
                raise
            log.exception("cleanup() failed after a failed call")

    def _shared_adapter(self) -> Any:
        with self._lock:
            if self._shared is None:
                adapter = self.adapter_class()
                _run_hook(adapter, "initialize")
                self._shared = adapter
            return self._shared

    def tool_specs(self, protocol: Any) -> list[Any]:
        """The adapter's tools as ``ToolSpec`` messages (computed once)."""
        with self._lock:
            if self._tool_specs is not None:
                return self._tool_specs
        adapter = self._shared_adapter() if self.per_worker else self.adapter_class()
        get_tools = getattr(adapter, "get_tools", None)
        tools = list(get_tools()) if callable(get_tools) else []
        specs = [tool_spec_message(protocol, info) for info in tools]
        with self._lock:
            self._tool_specs = specs
        return specs

    def shutdown(self) -> None:
        """Cleans up the shared adapter, if there is one."""
        with self._lock:
            adapter, self._shared = self._shared, None
        if adapter is not None:
            try:
                _run_hook(adapter, "cleanup")
            except Exception:
                log.exception("cleanup() of the shared adapter failed")


def _set_context(adapter: Any, context: SessionContext | None) -> None:
    setter = getattr(adapter, "set_session_context", None)
    if callable(setter):
        setter(context)
    else:
        with contextlib.suppress(AttributeError):
            adapter.session_context = context


def _run_hook(adapter: Any, name: str) -> None:
    hook = getattr(adapter, name, None)
    if callable(hook):
        resolve_awaitable(hook())


def tool_spec_message(protocol: Any, info: Any) -> Any:
    """A ``ToolSpec`` from a :class:`ToolInfo` (or from a ``ToolSpec``/
    ``ToolRegistration`` message, which share field numbers)."""
    from . import serialization

    if hasattr(info, "SerializeToString"):
        return protocol.ToolSpec.FromString(info.SerializeToString())
    spec = protocol.ToolSpec(
        name=info.name,
        description=info.description or "",
        supports_streaming=bool(info.supports_streaming),
    )
    spec.metadata.update({str(k): str(v) for k, v in (info.metadata or {}).items()})
    if getattr(info, "signature", ""):
        spec.metadata["signature"] = info.signature
    for parameter in info.parameters:
        message = spec.parameters.add(
            name=parameter.name,
            type=parameter.type,
            description=parameter.description or "",
            required=bool(parameter.required),
        )
        if not parameter.required:
            try:
                message.default_value.CopyFrom(serialization.json_any(parameter.default))
            except ValueError:
                log.warning("default of %s.%s has no JSON form", info.name, parameter.name)
    return spec


def stream_items(result: Any) -> Iterator[Any]:
    """The items of a streaming tool's result, whatever its shape.

    Generators and iterators are iterated, async generators driven by an
    event loop of their own; any other value is one item. Closing this
    iterator closes the tool's generator, so its ``finally`` runs.
    """
    if inspect.isasyncgen(result):
        loop = asyncio.new_event_loop()
        try:
            while True:
                try:
                    item = loop.run_until_complete(result.__anext__())
                except StopAsyncIteration:
                    return
                yield item
        finally:
            try:
                loop.run_until_complete(result.aclose())
            finally:
                loop.close()
    elif isinstance(result, collections.abc.Iterator):
        try:
            yield from result
        finally:
            close = getattr(result, "close", None)
            if callable(close):
                close()
    else:
        yield result


def _drain(result: Any) -> Any:
    """A generator returned to a unary call becomes the list of its items."""
    if inspect.isgenerator(result) or inspect.isasyncgen(result):
        return list(stream_items(result))
    return result


# ---------------------------------------------------------------- service


class BridgeServicer:
    """The worker's side of ``BridgeService``.

    ``serialize_calls`` (the process profile) makes tool calls take turns;
    Ping and session calls never wait for them.
    """

    def __init__(
        self,
        protocol: Any,
        adapters: AdapterProvider,
        worker_id: str,
        host: HostCallbackClient | None = None,
        serialize_calls: bool = True,
    ) -> None:
        self.protocol = protocol
        self.adapters = adapters
        self.worker_id = worker_id
        self.host = host
        self.sessions = SessionRegistry()
        self._gate: contextlib.AbstractContextManager[Any] = (
            threading.Lock() if serialize_calls else contextlib.nullcontext()
        )
        self.metadata = {"worker_id": worker_id, "pid": str(os.getpid())}

    # -- helpers

    def _now(self) -> Any:
        stamp = self.protocol.Timestamp()
        stamp.GetCurrentTime()
        return stamp

    def _context_for(self, request: Any) -> SessionContext:
        return SessionContext(
            session_id=request.session_id,
            store=self.sessions.store_for(request.session_id),
            worker_id=self.worker_id,
            metadata=dict(request.metadata),
            host=self.host,
        )

    def _arguments(self, request: Any) -> dict[str, Any]:
        from . import serialization

        arguments: dict[str, Any] = {}
        for name, value in request.parameters.items():
            try:
                arguments[name] = serialization.decode_any(value)
            except ValueError as error:
                raise ValueError(f"parameter {name!r}: {error}") from None
        for name, data in request.binary_parameters.items():
            arguments[name] = bytes(data)
        return arguments

    # -- rpcs

    def Ping(self, request: Any, context: Any) -> Any:
        """Answers with the request's message echoed and the server time."""
        return self.protocol.PingResponse(message=f"pong: {request.message}", server_time=self._now())

    def InitializeSession(self, request: Any, context: Any) -> Any:
        """Opens a session (unless the id is empty) and lists the adapter's tools."""
        from . import serialization

        response = self.protocol.InitializeSessionResponse()
        try:
            specs = self.adapters.tool_specs(self.protocol)
            if request.session_id:
                self.sessions.touch(request.session_id, dict(request.metadata))
            for spec in specs:
                response.available_tools[spec.name].CopyFrom(spec)
            response.success = True
        except Exception as error:  # noqa: BLE001 - reported to the host
            log.exception("listing the adapter's tools failed")
            response.success = False
            response.error_message = serialization.error_payload(error)
        return response

    def CleanupSession(self, request: Any, context: Any) -> Any:
        """Forgets a session; ``resources_cleaned`` is how many keys its store held."""
        record = self.sessions.drop(request.session_id)
        cleaned = len(record.store) if record is not None else 0
        return self.protocol.CleanupSessionResponse(success=True, resources_cleaned=cleaned)

    def GetSession(self, request: Any, context: Any) -> Any:
        """Describes a session; NOT_FOUND when this process does not know it."""
        import grpc

        record = self.sessions.get(request.session_id)
        if record is None:
            context.abort(grpc.StatusCode.NOT_FOUND, f"session {request.session_id!r} not found")
        response = self.protocol.GetSessionResponse(session_id=record.session_id)
        response.metadata.update(record.metadata)
        response.created_at.FromNanoseconds(int(record.created_at * 1e9))
        try:
            response.tool_count = len(self.adapters.tool_specs(self.protocol))
        except Exception:  # noqa: BLE001 - the count is informative only
            response.tool_count = 0
        return response

    def Heartbeat(self, request: Any, context: Any) -> Any:
        """Keeps a session alive; ``session_valid`` says whether it exists."""
        record = self.sessions.get(request.session_id)
        if record is not None:
            record.last_seen = time.time()
        return self.protocol.HeartbeatResponse(server_time=self._now(), session_valid=record is not None)

    def ExecuteTool(self, request: Any, context: Any) -> Any:
        """Runs one tool call. Tool errors are a ``success = false`` reply
        with the JSON error payload, never a gRPC error."""
        from . import serialization

        started = time.perf_counter()
        response = self.protocol.ExecuteToolResponse()
        response.metadata.update(self.metadata)
        try:
            with self._gate:
                result, binary = self._run(request)
            response.result.CopyFrom(result)
            response.binary_result = binary
            response.success = True
        except (Exception, SystemExit) as error:  # noqa: BLE001 - every tool failure is a reply
            log.warning("tool %s failed: %s: %s", request.tool_name, type(error).__name__, error)
            response.success = False
            response.error_message = serialization.error_payload(error, {"tool": request.tool_name})
        response.execution_time_ms = int((time.perf_counter() - started) * 1000)
        return response

    def _run(self, request: Any) -> tuple[Any, bytes]:
        from . import serialization

        session = self._context_for(request)
        arguments = self._arguments(request)
        adapter = self.adapters.open(session)
        failed = True
        try:
            result = resolve_awaitable(adapter.execute_tool(request.tool_name, arguments, session))
            # Encoded while the adapter is alive: the result may depend on it.
            encoded = serialization.encode_result(_drain(result))
            failed = False
            return encoded
        finally:
            self.adapters.close(adapter, failed)

    def ExecuteStreamingTool(self, request: Any, context: Any) -> Iterator[Any]:
        """Streams a generator tool: one chunk per item, then an empty final
        chunk. A failure ends the stream with INTERNAL and the JSON payload,
        or, when the host asks for it (``ERROR_CHUNK_KEY``), with a final
        chunk holding the payload and marked ``error``."""
        import grpc

        from . import serialization

        tool_name = request.tool_name
        count = 0
        with self._gate:
            adapter: Any = None
            items: Iterator[Any] | None = None
            failed = True
            try:
                session = self._context_for(request)
                arguments = self._arguments(request)
                adapter = self.adapters.open(session)
                # An async generator is not awaitable: it is streamed as it is.
                result = resolve_awaitable(adapter.execute_tool(tool_name, arguments, session))
                items = stream_items(result)
                for item in items:
                    if not context.is_active():
                        break
                    data = serialization.encode_chunk(item)
                    chunk = self.protocol.ToolChunk(chunk_id=f"{tool_name}-{count}", data=data, is_final=False)
                    if serialization.is_binary(item):
                        # Raw bytes, not JSON text: the host must not parse them.
                        chunk.metadata["encoding"] = "binary"
                    yield chunk
                    count += 1
                failed = False
                if context.is_active():
                    final = self.protocol.ToolChunk(chunk_id=f"{tool_name}-{count}", data=b"", is_final=True)
                    final.metadata.update(self.metadata)
                    yield final
            except (Exception, SystemExit) as error:  # noqa: BLE001 - every tool failure ends the stream
                log.warning("streaming tool %s failed: %s: %s", tool_name, type(error).__name__, error)
                if request.metadata.get(ERROR_CHUNK_KEY) == "1":
                    # A host that asked for it gets the error as the final
                    # chunk of a stream that ends normally: a client may see
                    # an error status before the chunks sent ahead of it,
                    # and lose them.
                    payload = serialization.error_payload(error, {"tool": tool_name})
                    chunk = self.protocol.ToolChunk(
                        chunk_id=f"{tool_name}-{count}", data=payload.encode("utf-8"), is_final=True
                    )
                    chunk.metadata["error"] = "true"
                    yield chunk
                    return
                # Snakepit's contract: INTERNAL with the payload as the status
                # message (a header: keep it small).
                payload = serialization.error_payload(error, {"tool": tool_name}, max_traceback_chars=2000)
                context.abort(grpc.StatusCode.INTERNAL, payload)
            finally:
                if items is not None:
                    with contextlib.suppress(Exception):
                        items.close()  # type: ignore[attr-defined]
                if adapter is not None:
                    with contextlib.suppress(Exception):
                        self.adapters.close(adapter, failed)

    def generic_handler(self) -> Any:
        """The grpc handler that routes ``BridgeService`` paths to this object."""
        import grpc

        handlers = {}
        for rpc in ("Ping", "InitializeSession", "CleanupSession", "GetSession", "Heartbeat", "ExecuteTool"):
            method = self.protocol.METHODS[rpc]
            handlers[rpc] = grpc.unary_unary_rpc_method_handler(
                getattr(self, rpc),
                request_deserializer=method.request.FromString,
                response_serializer=method.response.SerializeToString,
            )
        streaming = self.protocol.METHODS["ExecuteStreamingTool"]
        handlers["ExecuteStreamingTool"] = grpc.unary_stream_rpc_method_handler(
            self.ExecuteStreamingTool,
            request_deserializer=streaming.request.FromString,
            response_serializer=streaming.response.SerializeToString,
        )
        return grpc.method_handlers_generic_handler(self.protocol.SERVICE_NAME, handlers)


# ---------------------------------------------------------------- server


def wait_for_host(host: HostCallbackClient, timeout_s: float = HOST_WAIT_S) -> bool:
    """Pings the host until it answers or ``timeout_s`` passes."""
    import grpc

    deadline = time.monotonic() + timeout_s
    delay = 0.05
    while True:
        remaining = deadline - time.monotonic()
        try:
            host.ping(timeout=max(0.1, min(1.0, remaining)))
            return True
        except grpc.RpcError as error:
            if time.monotonic() + delay >= deadline:
                log.error("host at %s did not answer Ping: %s", host.address, error)
                return False
        time.sleep(delay)
        delay = min(delay * 2, 0.5)


def bind(server: Any, args: argparse.Namespace) -> str:
    """Binds the listening address; returns the ready-file content
    (``unix:PATH`` or the port number). Exits 6 on failure."""
    if args.socket:
        path = os.path.abspath(args.socket)
        with contextlib.suppress(OSError):
            if stat.S_ISSOCK(os.stat(path).st_mode):
                os.unlink(path)  # a stale socket of a previous worker
        target, ready = f"unix:{path}", f"unix:{path}"
    else:
        host = args.bind_host
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"
        target, ready = f"{host}:{args.port}", ""
    try:
        port = server.add_insecure_port(target)
    except RuntimeError as error:
        port, reason = 0, str(error)
    else:
        reason = ""
    if not port:
        hint = ""
        if args.socket and len(target) > 100:
            hint = " (Unix socket paths are limited to about 100 bytes)"
        sys.stderr.write(f"snakepit worker: cannot listen on {target}{hint} {reason}\n")
        sys.stderr.flush()
        os._exit(EXIT_BIND)
    return ready or str(port)


def write_ready_file(content: str) -> None:
    """Writes ``SNAKEPIT_READY_FILE`` atomically (``.tmp`` then rename)."""
    path = os.environ.get(READY_FILE_ENV)
    if not path:
        return
    temporary = f"{path}.tmp"
    with open(temporary, "w", encoding="utf-8") as handle:
        handle.write(content)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)


def main(argv: list[str] | None = None) -> None:
    """Runs a worker until SIGTERM, SIGINT or EOF on stdin. Never returns."""
    original_parent = os.getppid()
    route_stdout_to_stderr()
    args = parse_args(argv)
    worker_id = args.worker_id or os.environ.get("SNAKEPIT_WORKER_ID") or f"pid-{os.getpid()}"
    configure_logging(worker_id)
    if args.unknown:
        log.warning("ignoring unknown arguments: %s", " ".join(args.unknown))

    # Lifetime safety first: nothing below may outlive the host.
    # Plain flags, not Events: a signal handler that takes a lock the
    # interrupted main thread may hold would deadlock.
    state = {"running": False, "stop": False}

    def on_signal(signum: int, frame: FrameType | None) -> None:
        if state["running"]:
            state["stop"] = True
            return
        signal_own_group(signal.SIGTERM)
        os._exit(0)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    arm_parent_death_signal(original_parent)
    watch_stdin(die_with_host)

    grpc, protocol = import_transport()
    adapter_class = import_adapter(args.adapter)
    thread_profile = args.max_workers is not None
    if thread_profile and not getattr(adapter_class, "__thread_safe__", False):
        sys.stderr.write(
            f"snakepit worker: adapter {args.adapter} is not marked thread-safe (__thread_safe__ = True); "
            "use ThreadSafeAdapter or the process profile (no --max-workers)\n"
        )
        sys.stderr.flush()
        os._exit(EXIT_ADAPTER)

    host = None
    if args.elixir_address:
        host = HostCallbackClient(args.elixir_address, args.max_message_bytes)
        if not wait_for_host(host):
            sys.stderr.write(
                f"snakepit worker: the host did not answer Ping at {args.elixir_address} within {HOST_WAIT_S:.0f}s\n"
            )
            sys.stderr.flush()
            os._exit(EXIT_HOST_UNREACHABLE)

    adapters = AdapterProvider(adapter_class, per_worker=args.adapter_per_worker)
    servicer = BridgeServicer(protocol, adapters, worker_id, host, serialize_calls=not thread_profile)
    threads = args.max_workers + 2 if thread_profile else PROCESS_PROFILE_THREADS
    server = grpc.server(
        concurrent.futures.ThreadPoolExecutor(max_workers=threads, thread_name_prefix="snakepit-call"),
        handlers=[servicer.generic_handler()],
        options=[
            ("grpc.max_send_message_length", args.max_message_bytes),
            ("grpc.max_receive_message_length", args.max_message_bytes),
            ("grpc.so_reuseport", 0),
        ],
    )
    ready = bind(server, args)
    server.start()
    state["running"] = True
    write_ready_file(ready)
    profile = f"thread profile, {args.max_workers} calls at once" if thread_profile else "process profile"
    log.info("ready on %s (pid %d, adapter %s, %s)", ready, os.getpid(), args.adapter, profile)

    while not state["stop"]:
        time.sleep(0.05)

    log.info("stopping")
    server.stop(grace=SHUTDOWN_GRACE_S).wait(SHUTDOWN_GRACE_S + 1.0)
    adapters.shutdown()
    if host is not None:
        host.close()
    signal_own_group(signal.SIGTERM)
    with contextlib.suppress(Exception):
        sys.stderr.flush()
    # Not sys.exit: a tool still running in a call thread would block it.
    os._exit(0)
