"""The worker's gRPC server: wait for the host, bind, serve, stop.

Importing this module imports grpcio and protobuf;
:func:`snakepit_bridge.worker.import_server` does, once the process's
lifetime safety is armed.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import logging
import os
import stat
from typing import Any, Callable, NoReturn

import grpc

from . import protocol
from .adapter_provider import AdapterProvider
from .command_line import WorkerOptions
from .host_client import HostCallbackClient
from .lifetime import EXIT_BIND, EXIT_HOST_UNREACHABLE, StopSignals, end_process, exit_with, write_ready_file
from .pool_token import presented
from .servicer import BridgeServicer

PROCESS_PROFILE_THREADS = 5
"""gRPC threads in the process profile: one for the tool call, one for the
telemetry stream, the rest so that Ping and session calls answer while it
runs."""

THREAD_PROFILE_SPARE_THREADS = 3
"""gRPC threads of the thread profile beyond ``--max-workers``, for the
telemetry stream and for Ping and session calls."""

HOST_WAIT_S = 10.0
"""How long start-up waits for the host's ``Ping`` at ``--elixir-address``."""

SHUTDOWN_GRACE_S = 1.0
"""How long SIGTERM lets calls in flight finish."""

UNIX_SOCKET_PATH_LIMIT = 100
"""About the longest Unix socket path the kernel accepts (108 bytes with the NUL)."""

log = logging.getLogger("snakepit.worker")


def connect_host(address: str, max_message_bytes: int, token: str | None = None) -> HostCallbackClient:
    """A client of the host's callback server, once it answers ``Ping``.
    Exits 5 when it does not within :data:`HOST_WAIT_S`."""
    host = HostCallbackClient(address, max_message_bytes, token)
    if not host.wait_until_answering(HOST_WAIT_S):
        exit_with(
            EXIT_HOST_UNREACHABLE,
            f"snakepit worker: the host did not answer Ping at {address} within {HOST_WAIT_S:.0f}s\n",
        )
    return host


def register_tools(host: HostCallbackClient, adapters: AdapterProvider, worker_id: str) -> list[str]:
    """Announces the adapter's tools to the host (``RegisterTools``, as
    Snakepit's worker does), under ``worker_id``. A failure is logged, never
    fatal: the tools still answer calls. Returns the names registered."""
    try:
        tools = adapters.registrations()
        request = protocol.RegisterToolsRequest(session_id="", tools=tools, worker_id=worker_id)
        response = host.RegisterTools(request, timeout=HOST_WAIT_S)
    except Exception as error:  # noqa: BLE001 - an adapter or host failure is reported, not fatal
        log.warning("could not register the adapter's tools with the host: %s: %s", type(error).__name__, error)
        return []
    if not response.success:
        log.warning("the host refused the adapter's tools: %s", response.error_message)
        return []
    return [tool.name for tool in tools]


def bind(server: grpc.Server, options: WorkerOptions) -> str:
    """Binds the listening address; returns the ready-file content
    (``unix:PATH`` or the port number). Exits 6 on failure."""
    if options.socket:
        path = os.path.abspath(options.socket)
        with contextlib.suppress(OSError):
            if stat.S_ISSOCK(os.stat(path).st_mode):
                os.unlink(path)  # a stale socket of a previous worker
        target, ready = f"unix:{path}", f"unix:{path}"
    else:
        host = options.bind_host
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"
        target, ready = f"{host}:{options.port}", ""
    try:
        port = server.add_insecure_port(target)
    except RuntimeError as error:
        port, reason = 0, str(error)
    else:
        reason = ""
    if not port:
        hint = ""
        if options.socket and len(target) > UNIX_SOCKET_PATH_LIMIT:
            hint = f" (Unix socket paths are limited to about {UNIX_SOCKET_PATH_LIMIT} bytes)"
        exit_with(EXIT_BIND, f"snakepit worker: cannot listen on {target}{hint} {reason}\n")
    return ready or str(port)


def build_server(servicer: BridgeServicer, options: WorkerOptions) -> grpc.Server:
    """A gRPC server for ``servicer``, with threads for the profile."""
    if options.max_workers is not None:
        threads = options.max_workers + THREAD_PROFILE_SPARE_THREADS
    else:
        threads = PROCESS_PROFILE_THREADS
    handler = servicer.generic_handler()
    if options.pool_token:
        handler = TokenCheck(handler, options.pool_token)
    return grpc.server(
        concurrent.futures.ThreadPoolExecutor(max_workers=threads, thread_name_prefix="snakepit-call"),
        handlers=[handler],
        options=[
            ("grpc.max_send_message_length", options.max_message_bytes),
            ("grpc.max_receive_message_length", options.max_message_bytes),
            ("grpc.so_reuseport", 0),
        ],
    )


class TokenCheck(grpc.GenericRpcHandler):
    """Serves ``inner``'s methods only to callers that present ``token``.

    A caller without it gets ``UNAUTHENTICATED`` before its request is
    parsed.
    """

    def __init__(self, inner: grpc.GenericRpcHandler, token: str) -> None:
        self._inner = inner
        self._token = token

    def service(self, handler_call_details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler = self._inner.service(handler_call_details)
        if handler is None or presented(handler_call_details.invocation_metadata, self._token):
            return handler
        refusal: grpc.RpcMethodHandler[Any, Any] = refusing_handler(
            handler,
            grpc.StatusCode.UNAUTHENTICATED,
            f"{handler_call_details.method}: this worker serves only the pool that started it",
        )
        return refusal


def refusing_handler(handler: grpc.RpcMethodHandler[Any, Any], code: grpc.StatusCode, message: str) -> Any:
    """A handler of ``handler``'s kind that ends every call with ``code`` and ``message``."""

    def refuse(_request: Any, context: grpc.ServicerContext) -> Any:
        context.abort(code, message)

    if handler.request_streaming and handler.response_streaming:
        return grpc.stream_stream_rpc_method_handler(refuse)
    if handler.request_streaming:
        return grpc.stream_unary_rpc_method_handler(refuse)
    if handler.response_streaming:
        return grpc.unary_stream_rpc_method_handler(refuse)
    return grpc.unary_unary_rpc_method_handler(refuse)


def _profile(options: WorkerOptions) -> str:
    if options.max_workers is not None:
        return f"thread profile, {options.max_workers} calls at once"
    return "process profile"


def serve(options: WorkerOptions, worker_id: str, adapter_class: Callable[[], Any], stop: StopSignals) -> NoReturn:
    """Serves ``adapter_class``'s tools until ``stop`` is signalled, then ends the process.

    With a host (``--elixir-address``): waits for its ``Ping``, then
    registers the tools with it before binding."""
    host = (
        connect_host(options.elixir_address, options.max_message_bytes, options.pool_token)
        if options.elixir_address
        else None
    )
    adapters = AdapterProvider(adapter_class, per_worker=options.adapter_per_worker)
    if host is not None:
        register_tools(host, adapters, worker_id)
    servicer = BridgeServicer.for_local_worker(adapters, worker_id, host, options)
    server = build_server(servicer, options)
    ready = bind(server, options)
    server.start()
    stop.serving()
    write_ready_file(ready)
    log.info("ready on %s (pid %d, adapter %s, %s)", ready, os.getpid(), options.adapter, _profile(options))

    stop.wait()

    log.info("stopping")
    server.stop(grace=SHUTDOWN_GRACE_S).wait(SHUTDOWN_GRACE_S + 1.0)
    adapters.shutdown()
    if host is not None:
        host.close()
    end_process()
