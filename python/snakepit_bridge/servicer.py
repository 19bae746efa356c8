"""The worker's side of ``BridgeService``: one method per rpc.

Tool errors are replies, not gRPC errors: ``ExecuteTool`` answers
``success = false`` with the JSON error payload of
:func:`~snakepit_bridge.serialization.error_payload`; a streaming tool ends
its stream with INTERNAL and that payload, or, when the host asks for it
(:data:`ERROR_CHUNK_KEY`), with a final chunk marked ``error``.

A tool failure is any ``BaseException`` the tool raises, not only an
``Exception``: ``SystemExit`` (a tool calling ``sys.exit``),
``KeyboardInterrupt``, ``asyncio.CancelledError``, ``GeneratorExit`` and a
library's own subclasses are reported as that Python error, and the worker
keeps serving. Only ``os._exit`` or a signal ends the process.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from typing import TYPE_CHECKING, Any, Callable, Generator, Iterator, Mapping, Protocol

from . import __version__, protocol, serialization, telemetry
from .adapter_provider import AdapterProvider, stream_items, unary_result
from .base_adapter import resolve_awaitable
from .protocol import DynamicMessage
from .session_context import SessionContext
from .sessions import SessionRegistry

if TYPE_CHECKING:
    # grpc is imported where it is used, so that the socket transport's
    # worker never imports it.
    import grpc

    from .command_line import WorkerOptions
    from .host_client import HostCallbackClient

#: Request metadata by which a host asks for a mid-stream failure as a final
#: error chunk instead of an error status (ours does; Snakepit's does not).
ERROR_CHUNK_KEY = "snakepit.error_chunk"

UNARY_RPCS = ("Ping", "InitializeSession", "CleanupSession", "GetSession", "Heartbeat", "ExecuteTool")
"""The unary rpcs this servicer answers (``ExecuteStreamingTool`` is the
streaming one; the host-side rpcs of ``BridgeService`` are not served)."""

DROPPED_EVENT = "snakepit.telemetry.dropped"
"""The event the telemetry stream sends when the buffer dropped events since
the last batch: measurement ``count``, how many."""

TELEMETRY_BATCH = 512
"""Most events the telemetry stream takes from the buffer at once."""

TELEMETRY_POLL_S = 0.1
"""How long the telemetry stream waits for an event before it checks that
the host is still there."""

STATUS_TRACEBACK_CHARS = 2000
"""How much of a traceback an error status carries (it travels in a header)."""

log = logging.getLogger("snakepit.worker")


def _correlation_id(request: DynamicMessage, context: object) -> str | None:
    """The call's correlation id: from the request's own metadata (any
    transport carries it), else from the gRPC headers (a context with
    ``invocation_metadata``, on gRPC)."""
    found = telemetry.correlation_id_from_metadata(request.metadata)
    headers = getattr(context, "invocation_metadata", None)
    if found is None and headers is not None:
        with contextlib.suppress(Exception):
            found = telemetry.correlation_id_from_metadata(headers())
    return found


@contextlib.contextmanager
def _correlation(correlation_id: str | None) -> Iterator[None]:
    """The call's correlation id is the current one for the ``with`` block."""
    token = telemetry.set_correlation_id(correlation_id)
    try:
        yield
    finally:
        with contextlib.suppress(ValueError):
            # A generator closed from another context cannot reset its token.
            telemetry.reset_correlation_id(token)


class CallContext(Protocol):
    """What the streaming rpc asks of its context: a ``grpc.ServicerContext``
    on gRPC, the connection's state on the socket transport."""

    def is_active(self) -> bool:
        """Whether the host still wants the call's results."""


class BridgeServicer:
    """The worker's side of ``BridgeService``.

    ``serialize_calls`` (the process profile) makes tool calls take turns;
    Ping and session calls never wait for them. ``gate``, when given, is
    the context manager every tool call runs inside instead (the serve
    mode's, which also watches the call's deadline); it must serialize
    the calls itself when ``serialize_calls`` is set.

    ``Ping`` reports ``capacity`` (calls at once: 1 in the process profile,
    the thread count in the thread profile), ``adapter`` (the ``--adapter``
    string) and the package version.
    """

    def __init__(
        self,
        adapters: AdapterProvider,
        worker_id: str,
        host: HostCallbackClient | None = None,
        serialize_calls: bool = True,
        *,
        capacity: int = 1,
        adapter_name: str = "",
        gate: contextlib.AbstractContextManager[Any] | None = None,
    ) -> None:
        self.adapters = adapters
        self.worker_id = worker_id
        self.host = host
        self.sessions = SessionRegistry()
        if gate is None:
            gate = threading.Lock() if serialize_calls else contextlib.nullcontext()
        self._gate: contextlib.AbstractContextManager[Any] = gate
        self.capacity = capacity
        self.adapter_name = adapter_name
        self.metadata = {"worker_id": worker_id, "pid": str(os.getpid())}

    @classmethod
    def for_local_worker(
        cls,
        adapters: AdapterProvider,
        worker_id: str,
        host: HostCallbackClient | None,
        options: WorkerOptions,
    ) -> BridgeServicer:
        """The servicer of a worker the host started (either transport): one
        call at a time in the process profile, ``--max-workers`` at once in
        the thread profile, as its Ping reports."""
        return cls(
            adapters,
            worker_id,
            host,
            serialize_calls=not options.thread_profile,
            capacity=options.max_workers or 1,
            adapter_name=options.adapter,
        )

    # -- helpers

    def _now(self) -> DynamicMessage:
        stamp = protocol.Timestamp()
        stamp.GetCurrentTime()
        return stamp

    def _context_for(self, request: DynamicMessage) -> SessionContext:
        return SessionContext(
            session_id=request.session_id,
            store=self.sessions.store_for(request.session_id),
            worker_id=self.worker_id,
            metadata=dict(request.metadata),
            host=self.host,
        )

    def _arguments(self, request: DynamicMessage, binary: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The call's arguments: JSON parameters, then binary ones (from the
        message on gRPC; on the socket transport, ``binary``: the buffers the
        frame's segments were received into, handed over as they are)."""
        arguments: dict[str, Any] = {}
        for name, value in request.parameters.items():
            try:
                arguments[name] = serialization.decode_any(value)
            except ValueError as error:
                raise ValueError(f"parameter {name!r}: {error}") from None
        for name, data in request.binary_parameters.items():
            arguments[name] = bytes(data)
        if binary:
            arguments.update(binary)
        return arguments

    # -- rpcs

    def Ping(self, request: DynamicMessage, context: grpc.ServicerContext) -> DynamicMessage:
        """Answers with the request's message echoed, the server time, and
        this worker's capacity, adapter and version."""
        return protocol.PingResponse(
            message=f"pong: {request.message}",
            server_time=self._now(),
            capacity=self.capacity,
            adapter=self.adapter_name,
            version=__version__,
        )

    def InitializeSession(self, request: DynamicMessage, context: grpc.ServicerContext) -> DynamicMessage:
        """Opens a session (unless the id is empty) and lists the adapter's tools."""
        response = protocol.InitializeSessionResponse()
        try:
            specs = self.adapters.tool_specs()
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

    def CleanupSession(self, request: DynamicMessage, context: grpc.ServicerContext) -> DynamicMessage:
        """Forgets a session; ``resources_cleaned`` is how many keys its store held."""
        record = self.sessions.drop(request.session_id)
        cleaned = len(record.store) if record is not None else 0
        return protocol.CleanupSessionResponse(success=True, resources_cleaned=cleaned)

    def GetSession(self, request: DynamicMessage, context: grpc.ServicerContext) -> DynamicMessage:
        """Describes a session; NOT_FOUND when this process does not know it."""
        record = self.sessions.get(request.session_id)
        if record is None:
            import grpc

            context.abort(grpc.StatusCode.NOT_FOUND, f"session {request.session_id!r} not found")
        response = protocol.GetSessionResponse(session_id=record.session_id)
        response.metadata.update(record.metadata)
        response.created_at.FromNanoseconds(int(record.created_at * 1e9))
        try:
            response.tool_count = len(self.adapters.tool_specs())
        except Exception:  # noqa: BLE001 - the count is informative only
            response.tool_count = 0
        return response

    def Heartbeat(self, request: DynamicMessage, context: grpc.ServicerContext) -> DynamicMessage:
        """Keeps a session alive; ``session_valid`` says whether it exists."""
        record = self.sessions.get(request.session_id)
        if record is not None:
            record.last_seen = time.time()
        return protocol.HeartbeatResponse(server_time=self._now(), session_valid=record is not None)

    def ExecuteTool(self, request: DynamicMessage, context: grpc.ServicerContext) -> DynamicMessage:
        """Runs one tool call. Tool errors are a ``success = false`` reply
        with the JSON error payload, never a gRPC error."""
        response, binary = self.execute(request, context=context)
        if binary:
            response.binary_result = bytes(binary)
        return response

    def execute(
        self,
        request: DynamicMessage,
        binary_arguments: Mapping[str, Any] | None = None,
        context: grpc.ServicerContext | None = None,
    ) -> tuple[DynamicMessage, Any]:
        """Runs one tool call: the response, and its binary result apart
        (the socket transport sends it as a segment of its own, from the
        tool's buffer). The correlation id comes from the request's
        metadata, else from the gRPC ``context``'s headers."""
        started = time.perf_counter()
        response = protocol.ExecuteToolResponse()
        response.metadata.update(self.metadata)
        binary: Any = b""
        try:
            with self._gate:
                result, binary = self._run(request, binary_arguments, _correlation_id(request, context))
            response.result.CopyFrom(result)
            response.success = True
        except BaseException as error:  # noqa: BLE001 - every tool failure is a reply
            # Not only Exception: a tool's KeyboardInterrupt, CancelledError,
            # GeneratorExit, SystemExit or own BaseException subclass would
            # otherwise end the call thread with no reply at all.
            log.warning("tool %s failed: %s: %s", request.tool_name, type(error).__name__, error)
            response.success = False
            response.error_message = serialization.error_payload(error, {"tool": request.tool_name})
        response.execution_time_ms = int((time.perf_counter() - started) * 1000)
        return response, binary

    def _run(
        self, request: DynamicMessage, binary: Mapping[str, Any] | None, correlation_id: str | None
    ) -> tuple[DynamicMessage, Any]:
        session = self._context_for(request)
        arguments = self._arguments(request, binary)
        token = telemetry.set_correlation_id(correlation_id)
        try:
            adapter = self.adapters.open(session)
            failed = True
            try:
                result = resolve_awaitable(adapter.execute_tool(request.tool_name, arguments, session))
                # Encoded while the adapter is alive: the result may depend on it.
                encoded = serialization.encode_result(unary_result(result))
                failed = False
                return encoded
            finally:
                self.adapters.close(adapter, failed)
        finally:
            telemetry.reset_correlation_id(token)

    def ExecuteStreamingTool(
        self,
        request: DynamicMessage,
        context: CallContext,
        binary_arguments: Mapping[str, Any] | None = None,
    ) -> Iterator[DynamicMessage]:
        """Streams a generator tool: one chunk per item, then an empty final
        chunk. A failure ends the stream with INTERNAL and the JSON payload,
        or, when the host asks for it (``ERROR_CHUNK_KEY``), with a final
        chunk holding the payload and marked ``error``."""
        tool_name = request.tool_name
        count = 0
        # Set for this generator's run only: grpc may resume it on another
        # thread, and each resumption runs in the context it has here.
        correlation_id = _correlation_id(request, context)
        with self._gate, _correlation(correlation_id):
            adapter: Any = None
            items: Generator[Any, None, None] | None = None
            failed = True
            yielding = False
            try:
                session = self._context_for(request)
                arguments = self._arguments(request, binary_arguments)
                adapter = self.adapters.open(session)
                # An async generator is not awaitable: it is streamed as it is.
                result = resolve_awaitable(adapter.execute_tool(tool_name, arguments, session))
                items = stream_items(result)
                for item in items:
                    if not context.is_active():
                        break
                    data = serialization.encode_chunk(item)
                    chunk = protocol.ToolChunk(chunk_id=f"{tool_name}-{count}", data=data, is_final=False)
                    if serialization.is_binary(item):
                        # Raw bytes, not JSON text: the host must not parse them.
                        chunk.metadata["encoding"] = "binary"
                    yielding = True
                    yield chunk
                    yielding = False
                    count += 1
                failed = False
                if context.is_active():
                    final = protocol.ToolChunk(chunk_id=f"{tool_name}-{count}", data=b"", is_final=True)
                    final.metadata.update(self.metadata)
                    yielding = True
                    yield final
            except BaseException as error:  # noqa: BLE001 - every tool failure ends the stream
                if yielding:
                    # Thrown in at our own yield (GeneratorExit when grpc
                    # closes this generator): not the tool's failure.
                    raise
                log.warning("streaming tool %s failed: %s: %s", tool_name, type(error).__name__, error)
                if request.metadata.get(ERROR_CHUNK_KEY) == "1":
                    # A host that asked for it gets the error as the final
                    # chunk of a stream that ends normally: a client may see
                    # an error status before the chunks sent ahead of it,
                    # and lose them.
                    payload = serialization.error_payload(error, {"tool": tool_name})
                    chunk = protocol.ToolChunk(
                        chunk_id=f"{tool_name}-{count}", data=payload.encode("utf-8"), is_final=True
                    )
                    chunk.metadata["error"] = "true"
                    yield chunk
                    return
                # Snakepit's contract: INTERNAL with the payload as the status
                # message (a header: keep it small).
                payload = serialization.error_payload(
                    error, {"tool": tool_name}, max_traceback_chars=STATUS_TRACEBACK_CHARS
                )
                import grpc

                # Only gRPC gets here: the socket transport always asks for
                # the error chunk.
                servicer_context: grpc.ServicerContext = context  # type: ignore[assignment]
                servicer_context.abort(grpc.StatusCode.INTERNAL, payload)
            finally:
                if items is not None:
                    with contextlib.suppress(Exception):
                        items.close()
                if adapter is not None:
                    with contextlib.suppress(Exception):
                        self.adapters.close(adapter, failed)

    def StreamTelemetry(
        self, request_iterator: Iterator[DynamicMessage], context: grpc.ServicerContext
    ) -> Iterator[DynamicMessage]:
        """Sends the telemetry buffer's events to the host as they come, in
        order, and applies the host's controls (on/off, sampling rate) as
        they arrive. Drops (a full buffer) are reported as a
        :data:`DROPPED_EVENT`. Ends when the host goes away."""
        buffer = telemetry.get_backend()
        if not isinstance(buffer, telemetry.EventBuffer):
            return
        threading.Thread(
            target=_apply_controls, args=(request_iterator, buffer), name="snakepit-telemetry", daemon=True
        ).start()
        yield from telemetry_messages(buffer, context.is_active)

    def generic_handler(self) -> grpc.GenericRpcHandler:
        """The grpc handler that routes ``BridgeService`` paths to this object."""
        import grpc

        handlers: dict[str, grpc.RpcMethodHandler[Any, Any]] = {}
        for rpc in UNARY_RPCS:
            method = protocol.METHODS[rpc]
            handlers[rpc] = grpc.unary_unary_rpc_method_handler(
                getattr(self, rpc),
                request_deserializer=method.request.FromString,
                response_serializer=method.response.SerializeToString,
            )
        streaming = protocol.METHODS["ExecuteStreamingTool"]
        handlers["ExecuteStreamingTool"] = grpc.unary_stream_rpc_method_handler(
            self.ExecuteStreamingTool,
            request_deserializer=streaming.request.FromString,
            response_serializer=streaming.response.SerializeToString,
        )
        telemetry_rpc = protocol.METHODS["StreamTelemetry"]
        handlers["StreamTelemetry"] = grpc.stream_stream_rpc_method_handler(
            self.StreamTelemetry,
            request_deserializer=telemetry_rpc.request.FromString,
            response_serializer=telemetry_rpc.response.SerializeToString,
        )
        return grpc.method_handlers_generic_handler(protocol.SERVICE_NAME, handlers)


def telemetry_messages(buffer: telemetry.EventBuffer, is_active: Callable[[], bool]) -> Iterator[DynamicMessage]:
    """The telemetry stream's messages, whatever carries them: ``buffer``'s
    events as wire ``TelemetryEvent`` messages, in order, as they come, each batch
    preceded by a :data:`DROPPED_EVENT` when the buffer dropped events since
    the last one; until ``is_active()`` says the host is gone (asked at least
    every :data:`TELEMETRY_POLL_S`)."""
    reported = buffer.dropped
    while is_active():
        events = buffer.drain(TELEMETRY_BATCH, TELEMETRY_POLL_S)
        dropped = buffer.dropped
        if dropped > reported:
            yield _dropped_message(dropped - reported)
            reported = dropped
        for event in events:
            yield _event_message(event)


def apply_control(control: DynamicMessage, buffer: telemetry.EventBuffer) -> None:
    """Applies one of the host's telemetry controls (on/off, sampling rate)
    to ``buffer``; a kind it does not know is ignored."""
    which = control.WhichOneof("control")
    if which == "toggle":
        buffer.enabled = bool(control.toggle.enabled)
        log.debug("telemetry %s", "on" if buffer.enabled else "off")
    elif which == "sampling":
        buffer.sampling_rate = min(1.0, max(0.0, float(control.sampling.sampling_rate)))
        log.debug("telemetry sampling rate %s", buffer.sampling_rate)


def _apply_controls(controls: Iterator[DynamicMessage], buffer: telemetry.EventBuffer) -> None:
    """Applies the host's telemetry controls to ``buffer`` until the host
    stops sending them."""
    try:
        for control in controls:
            apply_control(control, buffer)
    except Exception as error:  # noqa: BLE001 - the stream ended: nothing more to apply
        log.debug("telemetry controls ended: %s", error)


def _event_message(event: telemetry.Event) -> DynamicMessage:
    """``event`` as a wire ``TelemetryEvent``."""
    message = protocol.TelemetryEvent(timestamp_ns=event.timestamp_ns, correlation_id=event.correlation_id or "")
    message.event_parts.extend(event.event_parts)
    for key, value in event.measurements.items():
        slot = message.measurements[key]
        if isinstance(value, int) and -(2**63) <= value < 2**63:
            slot.int_value = value
        elif isinstance(value, float):
            slot.float_value = value
        else:
            slot.string_value = str(value)
    message.metadata.update(event.metadata)
    return message


def _dropped_message(count: int) -> DynamicMessage:
    """The event that reports ``count`` events dropped by a full buffer."""
    dropped = telemetry.Event(name=DROPPED_EVENT, measurements={"count": count}, timestamp_ns=time.time_ns())
    return _event_message(dropped)
