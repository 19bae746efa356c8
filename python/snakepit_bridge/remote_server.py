"""The ``serve`` mode's servers: the main gRPC server (TLS, bearer token,
draining, deadline watchdog) and the plaintext ``grpc.health.v1`` server.

Importing this module imports grpcio, protobuf and grpcio-health-checking;
:func:`snakepit_bridge.serve.main` does, once the flags are checked. The
rpcs themselves are the local worker's
(:class:`~snakepit_bridge.servicer.BridgeServicer`).
"""

from __future__ import annotations

import concurrent.futures
import hmac
import logging
import os
import sys
import threading
import time
from typing import IO, Any, Callable, NoReturn

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from . import protocol
from .adapter_provider import AdapterProvider
from .lifetime import EXIT_BIND, end_process, exit_with
from .serve import DRAINING_MESSAGE, EXIT_DEADLINE, READY_PREFIX, UNAUTHENTICATED_MESSAGE, Drain, ServeOptions
from .server import refusing_handler
from .servicer import BridgeServicer

log = logging.getLogger("snakepit.worker")

DRAINED_RPCS = frozenset({"ExecuteTool", "ExecuteStreamingTool", "Ping"})
"""The rpcs refused with ``UNAVAILABLE`` once draining, and counted while
they run (a host that sees the refusal places the call elsewhere)."""

SPARE_THREADS = 4
"""gRPC threads beyond the calls at once: for Ping, session calls and the
telemetry stream while tools run."""

HEALTH_THREADS = 4
"""Threads of the health server (kubelet probes are short ``Check`` calls)."""

TOKEN_RECHECK_S = 1.0
"""How often, at most, the token file's change time is looked at."""

DEADLINE_MARGIN_S = 0.5
"""How long past its deadline a process-profile call may run before the process exits."""

NO_DEADLINE_S = 365 * 24 * 3600.0
"""Time left above which a call counts as having no deadline (grpc reports
about 2**63 seconds for a call without one)."""

WATCHDOG_POLL_S = 0.1
"""How often the watchdog thread looks at the running call. It polls rather
than being woken: a wake-up per call would cost every call two thread
switches, and a deadline exit may come this much late."""

DRAIN_LINGER_S = 1.0
"""How long a drained worker goes on refusing calls before it stops its
server, so that calls sent just before the hosts learnt it is stopping are
refused as draining (and placed elsewhere) instead of cancelled."""

STOP_GRACE_S = 1.0
"""How long the servers' final stop lets remaining streams (telemetry, health watches) end."""

HEALTH_SERVICES = ("", protocol.SERVICE_NAME)
"""The service names whose health is SERVING once ready and NOT_SERVING from
SIGTERM on (readiness: the pod leaves the Service while it drains)."""

LIVENESS_SERVICE = "liveness"
"""A service name that stays SERVING until the process ends, drain included
(for a liveness probe: a draining worker must not be killed for it)."""


# -- the bearer token


class TokenFile:
    """The bearer token in a file, re-read when the file changes.

    The file's identity (change time, inode, size) is looked at most once
    per :data:`TOKEN_RECHECK_S`; a rotated Kubernetes Secret (a new file
    behind the mount's symbolic link) takes effect within that. A file
    that becomes unreadable or empty keeps the last good token (logged).
    """

    def __init__(self, path: str, clock: Callable[[], float] = time.monotonic) -> None:
        self.path = path
        self._clock = clock
        self._lock = threading.Lock()
        self._signature = self._stat()
        token = self._read()
        if token is None:
            raise ValueError(f"the token file {path} is empty")
        self._token = token
        self._checked = clock()

    def _stat(self) -> tuple[int, int, int]:
        info = os.stat(self.path)
        return info.st_mtime_ns, info.st_ino, info.st_size

    def _read(self) -> bytes | None:
        with open(self.path, "rb") as handle:
            token = handle.read().strip()
        return token or None

    def current(self) -> bytes:
        """The token now (re-read first if the file changed and was last checked a second ago or more)."""
        with self._lock:
            now = self._clock()
            if now - self._checked >= TOKEN_RECHECK_S:
                self._checked = now
                self._refresh()
            return self._token

    def _refresh(self) -> None:
        try:
            signature = self._stat()
            if signature == self._signature:
                return
            token = self._read()
        except OSError as error:
            log.warning("cannot read the token file %s (keeping the last token): %s", self.path, error)
            return
        self._signature = signature
        if token is None:
            log.warning("the token file %s is empty (keeping the last token)", self.path)
            return
        if token != self._token:
            log.info("the token file %s changed: using the new token", self.path)
        self._token = token

    def accepts(self, metadata: Any) -> bool:
        """Whether ``metadata`` carries ``authorization: Bearer <token>`` (compared in constant time)."""
        expected = b"Bearer " + self.current()
        accepted = False
        for key, value in metadata or ():
            if key == "authorization":
                given = value if isinstance(value, bytes) else str(value).encode()
                accepted |= hmac.compare_digest(given, expected)
        return accepted


class BearerTokenInterceptor(grpc.ServerInterceptor):
    """Lets through only calls whose ``authorization`` metadata is
    ``Bearer <token>``; the rest end with ``UNAUTHENTICATED`` and
    :data:`~snakepit_bridge.serve.UNAUTHENTICATED_MESSAGE` before their
    request is read."""

    def __init__(self, token: TokenFile) -> None:
        self.token = token

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler[Any, Any] | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        """The method's handler when the token is right, else a refusing one."""
        handler = continuation(handler_call_details)
        if handler is None or self.token.accepts(handler_call_details.invocation_metadata):
            return handler
        refusal: grpc.RpcMethodHandler[Any, Any] = refusing_handler(
            handler, grpc.StatusCode.UNAUTHENTICATED, UNAUTHENTICATED_MESSAGE
        )
        return refusal


# -- draining and the deadline watchdog


class DeadlineWatchdog:
    """Ends the process when the running call outlives its deadline.

    In the process profile one call runs at a time and Python cannot stop
    it; past its deadline (plus ``margin_s``) nobody waits for its result,
    and the worker would stay busy for good. So the watchdog thread calls
    ``on_expired`` (by default: log the tool and exit
    :data:`~snakepit_bridge.serve.EXIT_DEADLINE`, for Kubernetes to restart
    the container).
    """

    def __init__(
        self,
        margin_s: float = DEADLINE_MARGIN_S,
        on_expired: Callable[[str, float], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.margin_s = margin_s
        self._on_expired = on_expired or _exit_past_deadline
        self._clock = clock
        # Written by the serving thread, read by the watchdog: one attribute
        # store or load each, which the GIL makes whole.
        self._current: tuple[str, float] | None = None
        self._thread = threading.Thread(target=self._watch, name="snakepit-deadline", daemon=True)
        self._thread.start()

    def watch(self, tool: str, deadline: float) -> None:
        """The call of ``tool`` runs now and must end by ``deadline`` (on the watchdog's clock)."""
        self._current = (tool, deadline)

    def clear(self) -> None:
        """No call runs now."""
        self._current = None

    def _watch(self) -> None:
        while True:
            current = self._current
            if current is not None:
                tool, deadline = current
                remaining = deadline + self.margin_s - self._clock()
                # Still the same call: one that ended meanwhile is not fired for.
                if remaining <= 0 and self._current is current:
                    self._current = None
                    self._on_expired(tool, -remaining + self.margin_s)
                    continue
            time.sleep(WATCHDOG_POLL_S)


def _exit_past_deadline(tool: str, overdue_s: float) -> None:
    """Logs the stuck tool and ends the process with :data:`~snakepit_bridge.serve.EXIT_DEADLINE`."""
    log.error(
        "tool %s is still running %.1fs past its deadline; the process profile cannot stop it: "
        "exiting %d so that the worker is restarted",
        tool,
        overdue_s,
        EXIT_DEADLINE,
    )
    for handler in logging.getLogger().handlers + log.handlers:
        handler.flush()
    sys.stderr.flush()
    os._exit(EXIT_DEADLINE)


class _CallInfo(threading.local):
    """The tool name and deadline of the call this thread is serving."""

    tool: str = ""
    deadline: float | None = None


class DeadlineGate:
    """The process profile's gate around each tool call (see
    :class:`~snakepit_bridge.servicer.BridgeServicer`): one call at a time,
    and the running call's deadline watched by a :class:`DeadlineWatchdog`.
    The deadline is the one :class:`CallTracking` noted for this thread."""

    def __init__(self, watchdog: DeadlineWatchdog) -> None:
        self.watchdog = watchdog
        self.calls = _CallInfo()
        self._lock = threading.Lock()

    def note(self, tool: str, deadline: float | None) -> None:
        """Notes the deadline of the call this thread serves next."""
        self.calls.tool = tool
        self.calls.deadline = deadline

    def __enter__(self) -> DeadlineGate:
        self._lock.acquire()
        if self.calls.deadline is not None:
            self.watchdog.watch(self.calls.tool, self.calls.deadline)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.watchdog.clear()
        self._lock.release()


class CallTracking(grpc.ServerInterceptor):
    """Counts the :data:`DRAINED_RPCS` in and out of the :class:`~snakepit_bridge.serve.Drain`,
    refuses them with ``UNAVAILABLE`` (a message starting with
    :data:`~snakepit_bridge.serve.DRAINING_MESSAGE`) once it drains, and
    notes each call's deadline for the :class:`DeadlineGate` (if any)."""

    def __init__(self, drain: Drain, gate: DeadlineGate | None) -> None:
        self.drain = drain
        self.gate = gate

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler[Any, Any] | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        """The method's handler, wrapped for the drained rpcs."""
        handler = continuation(handler_call_details)
        rpc = handler_call_details.method.rsplit("/", 1)[-1]
        if handler is None or rpc not in DRAINED_RPCS:
            return handler
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(
                self._unary(handler.unary_unary),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(
                self._streaming(handler.unary_stream),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        return handler

    def _admit(self, request: Any, context: grpc.ServicerContext) -> None:
        if not self.drain.enter():
            context.abort(
                grpc.StatusCode.UNAVAILABLE,
                f"{DRAINING_MESSAGE}: this worker is shutting down and did not run the call; use another one",
            )
        if self.gate is not None:
            remaining = context.time_remaining()
            deadline = None if remaining is None or remaining > NO_DEADLINE_S else time.monotonic() + remaining
            self.gate.note(getattr(request, "tool_name", ""), deadline)

    def _unary(self, behavior: Callable[[Any, grpc.ServicerContext], Any]) -> Callable[..., Any]:
        def tracked(request: Any, context: grpc.ServicerContext) -> Any:
            self._admit(request, context)
            try:
                return behavior(request, context)
            finally:
                self.drain.leave()

        return tracked

    def _streaming(self, behavior: Callable[[Any, grpc.ServicerContext], Any]) -> Callable[..., Any]:
        def tracked(request: Any, context: grpc.ServicerContext) -> Any:
            self._admit(request, context)
            try:
                yield from behavior(request, context)
            finally:
                self.drain.leave()

        return tracked


# -- the servers


def main_server_options(max_message_bytes: int) -> list[tuple[str, int]]:
    """The main server's channel arguments: message size limits, and
    keepalive pings from the host always allowed (never answered with
    GOAWAY ``too_many_pings``)."""
    return [
        ("grpc.max_send_message_length", max_message_bytes),
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.so_reuseport", 0),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.min_ping_interval_without_data_ms", 500),
        ("grpc.http2.max_ping_strikes", 0),
    ]


def server_credentials(options: ServeOptions) -> grpc.ServerCredentials | None:
    """The TLS credentials of the flags (mutual TLS with ``--tls-client-ca``); None for plaintext."""
    if not options.tls_cert or not options.tls_key:
        return None
    with open(options.tls_key, "rb") as key, open(options.tls_cert, "rb") as cert:
        pair = (key.read(), cert.read())
    client_ca = None
    if options.tls_client_ca:
        with open(options.tls_client_ca, "rb") as ca:
            client_ca = ca.read()
    return grpc.ssl_server_credentials([pair], root_certificates=client_ca, require_client_auth=client_ca is not None)


def _bind(server: grpc.Server, host: str, port: int, credentials: grpc.ServerCredentials | None, what: str) -> int:
    """Binds ``host:port``; the bound port. Exits 6 on failure."""
    target = f"[{host}]:{port}" if ":" in host and not host.startswith("[") else f"{host}:{port}"
    try:
        bound = server.add_insecure_port(target) if credentials is None else server.add_secure_port(target, credentials)
    except RuntimeError as error:
        exit_with(EXIT_BIND, f"snakepit worker: cannot listen on {target} ({what}): {error}\n")
    if not bound:
        exit_with(EXIT_BIND, f"snakepit worker: cannot listen on {target} ({what})\n")
    return bound


def _set_health(servicer: health.HealthServicer, status: int) -> None:
    for service in HEALTH_SERVICES:
        servicer.set(service, status)


def serve(options: ServeOptions, adapter_class: Callable[[], Any], drain: Drain, ready_out: IO[str]) -> NoReturn:
    """Serves ``adapter_class``'s tools until SIGTERM/SIGINT, then drains and exits 0."""
    token = None
    if options.token_file:
        try:
            token = TokenFile(options.token_file)
        except (OSError, ValueError) as error:
            exit_with(2, f"snakepit worker: --token-file: {error}\n")
    try:
        credentials = server_credentials(options)
    except OSError as error:
        exit_with(2, f"snakepit worker: cannot read the TLS files: {error}\n")

    adapters = AdapterProvider(adapter_class, per_worker=options.adapter_per_worker)
    gate = None if options.thread_profile else DeadlineGate(DeadlineWatchdog())
    servicer = BridgeServicer(
        adapters,
        options.worker_id,
        None,
        serialize_calls=not options.thread_profile,
        capacity=options.capacity,
        adapter_name=options.adapter,
        gate=gate,
    )
    interceptors: list[grpc.ServerInterceptor] = []
    if token is not None:
        interceptors.append(BearerTokenInterceptor(token))
    interceptors.append(CallTracking(drain, gate))
    server = grpc.server(
        concurrent.futures.ThreadPoolExecutor(
            max_workers=options.capacity + SPARE_THREADS, thread_name_prefix="snakepit-call"
        ),
        handlers=[servicer.generic_handler()],
        interceptors=interceptors,
        options=main_server_options(options.max_message_bytes),
    )
    listen_port = _bind(server, options.listen_host, options.listen_port, credentials, "--listen")

    health_servicer = health.HealthServicer(
        experimental_non_blocking=True,
        experimental_thread_pool=concurrent.futures.ThreadPoolExecutor(max_workers=1),
    )
    _set_health(health_servicer, health_pb2.HealthCheckResponse.NOT_SERVING)
    health_server = grpc.server(
        concurrent.futures.ThreadPoolExecutor(max_workers=HEALTH_THREADS, thread_name_prefix="snakepit-health")
    )
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, health_server)
    health_port = _bind(health_server, options.health_host, options.health_port, None, "--health-listen")

    server.start()
    health_server.start()
    _set_health(health_servicer, health_pb2.HealthCheckResponse.SERVING)
    health_servicer.set(LIVENESS_SERVICE, health_pb2.HealthCheckResponse.SERVING)
    drain.serving()
    ready_out.write(
        f"{READY_PREFIX} listen={options.listen_host}:{listen_port} health={options.health_host}:{health_port}\n"
    )
    ready_out.flush()
    log.info(
        "serving %s on %s:%d (%s, %s%s), health on %s:%d (pid %d)",
        options.adapter,
        options.listen_host,
        listen_port,
        "mutual TLS" if options.tls_client_ca else "TLS" if credentials is not None else "PLAINTEXT",
        f"thread profile, {options.threads} calls at once" if options.thread_profile else "process profile",
        ", bearer token" if token is not None else "",
        options.health_host,
        health_port,
        os.getpid(),
    )

    drain.wait_requested()

    _set_health(health_servicer, health_pb2.HealthCheckResponse.NOT_SERVING)
    drain.close()
    running = drain.in_flight
    log.info("draining: %d call(s) in flight, waiting up to %.1fs", running, options.grace_s)
    if drain.wait_idle(options.grace_s):
        log.info("drained: no call in flight")
        # Calls already on their way get the draining refusal (their host
        # places them elsewhere and stops using this worker) rather than a
        # cancel from the stopping server.
        time.sleep(DRAIN_LINGER_S)
    else:
        log.warning(
            "grace of %.1fs ran out with %d call(s) still running; stopping anyway", options.grace_s, drain.in_flight
        )
    server.stop(grace=STOP_GRACE_S).wait(STOP_GRACE_S + 1.0)
    health_server.stop(grace=0).wait(1.0)
    adapters.shutdown()
    end_process()
