"""Snakepit's Python surface (docs/snakepit-python-surface.md): each name
importable from its module path and doing what the document says."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import logging
import threading
from collections.abc import Iterator
from typing import Any

import pytest

import snakepit_bridge_pb2 as pb2
from snakepit_bridge import protocol, serialization, telemetry
from snakepit_bridge.adapter_provider import AdapterProvider
from snakepit_bridge.base_adapter import (
    BaseAdapter,
    InvalidArgumentsError,
    ToolInfo,
    ToolMetadata,
    ToolNotFoundError,
    tool,
)
from snakepit_bridge.base_adapter_threaded import (
    ThreadSafeAdapter,
    require_thread_safe,
    thread_safe_method,
    validate_thread_safety,
)
from snakepit_bridge.base_adapter_threaded import tool as threaded_tool
from snakepit_bridge.logging_config import configure_logging, get_logger
from snakepit_bridge.serialization import GracefulJSONEncoder, TypeSerializer
from snakepit_bridge.servicer import BridgeServicer
from snakepit_bridge.session_context import SessionContext
from snakepit_bridge.zero_copy import ZeroCopyRef

# ---------------------------------------------------------------- base_adapter


class Classifier(BaseAdapter):
    """Written as Snakepit's examples are: own execute_tool, falling through."""

    @tool(description="Labels a text")
    def classify(self, text: str, threshold: float = 0.5) -> dict[str, Any]:
        return {"label": "long" if len(text) > 3 else "short", "threshold": threshold}

    @tool("Streams tokens", True, ["vocabulary"])
    def tokens(self, text: str) -> Iterator[str]:
        yield from text.split()

    @tool()
    def documented(self, n: int) -> int:
        """Doubles n.

        More text.
        """
        return n * 2

    def execute_tool(self, tool_name: str, arguments: dict[str, Any], context: Any = None) -> Any:
        if tool_name == "version":
            return "1.0"
        return self.call_tool(tool_name, **arguments)


def test_tool_records_tool_metadata_with_its_arguments() -> None:
    meta = Classifier.tokens._tool_metadata  # type: ignore[attr-defined]
    assert meta == ToolMetadata(
        description="Streams tokens", supports_streaming=True, parameters=[], required_variables=["vocabulary"]
    )
    documented = Classifier.documented._tool_metadata  # type: ignore[attr-defined]
    assert documented.description == "Doubles n." and not documented.supports_streaming
    assert ToolMetadata() == ToolMetadata("", False, [], [])


def test_get_tools_returns_tool_registrations_from_the_signatures() -> None:
    tools = {t.name: t for t in Classifier().get_tools()}
    assert sorted(tools) == ["classify", "documented", "tokens"]
    assert all(isinstance(t, pb2.ToolRegistration) for t in tools.values())
    classify = tools["classify"]
    assert classify.description == "Labels a text" and not classify.supports_streaming
    assert [(p.name, p.type, p.required) for p in classify.parameters] == [
        ("text", "str", True),
        ("threshold", "float", False),
    ]
    assert serialization.decode_any(classify.parameters[1].default_value) == 0.5
    assert tools["tokens"].supports_streaming
    assert tools["tokens"].metadata["required_variables"] == "vocabulary"
    assert tools["documented"].description == "Doubles n."


def test_call_tool_dispatches_by_name_and_names_the_class_when_unknown() -> None:
    adapter = Classifier()
    assert adapter.execute_tool("classify", {"text": "hello"}) == {"label": "long", "threshold": 0.5}
    assert adapter.execute_tool("version", {}) == "1.0"
    assert adapter.call_tool("documented", n=4) == 8
    with pytest.raises(AttributeError, match=r"^Tool 'nope' not found in Classifier$") as caught:
        adapter.call_tool("nope")
    # Typed for the host too: it is our ToolNotFoundError, with the tool list.
    assert isinstance(caught.value, ToolNotFoundError)
    assert caught.value.context == {"tool": "nope", "available": ["classify", "documented", "tokens"]}
    with pytest.raises(InvalidArgumentsError, match="missing"):
        adapter.call_tool("classify")


def test_session_id_is_the_current_calls_or_none() -> None:
    adapter = Classifier()
    assert adapter.session_id is None
    adapter.set_session_context(SessionContext("s1"))
    assert adapter.session_id == "s1"
    adapter.set_session_context(SessionContext(""))
    assert adapter.session_id is None


class RecordingStub:
    """A BridgeService stub that answers RegisterTools as told."""

    def __init__(self, answer: Any) -> None:
        self.answer = answer
        self.requests: list[Any] = []

    def RegisterTools(self, request: Any) -> Any:
        self.requests.append(request)
        if isinstance(self.answer, BaseException):
            raise self.answer
        return self.answer


def test_register_with_session_sends_the_tools_and_returns_their_names(caplog: pytest.LogCaptureFixture) -> None:
    ok = protocol.RegisterToolsResponse(success=True)
    ok.tool_ids.update({"classify": "w:classify", "tokens": "w:tokens"})
    stub = RecordingStub(ok)
    assert sorted(Classifier().register_with_session("s1", stub, worker_id="w")) == ["classify", "tokens"]
    request = stub.requests[0]
    assert request.session_id == "s1" and request.worker_id == "w"
    assert sorted(t.name for t in request.tools) == ["classify", "documented", "tokens"]

    duplicate = protocol.RegisterToolsResponse(success=False, error_message="Duplicate tool registration")
    assert Classifier().register_with_session("s1", RecordingStub(duplicate)) == [
        "classify",
        "documented",
        "tokens",
    ]
    refused = protocol.RegisterToolsResponse(success=False, error_message="no such session")
    with caplog.at_level(logging.ERROR):
        assert Classifier().register_with_session("s1", RecordingStub(refused)) == []
        assert Classifier().register_with_session("s1", RecordingStub(RuntimeError("down"))) == []
    assert "no such session" in caplog.text and "down" in caplog.text


def test_register_with_session_async_awaits_an_aio_stub() -> None:
    answer = protocol.RegisterToolsResponse(success=True)
    answer.tool_ids["classify"] = "w:classify"

    class AioStub:
        async def _reply(self) -> Any:
            await asyncio.sleep(0)
            return answer

        def RegisterTools(self, request: Any) -> Any:
            return self._reply()

    names = asyncio.run(Classifier().register_with_session_async("s1", AioStub()))
    assert names == ["classify"]


# ---------------------------------------------------------------- base_adapter_threaded


class Counting(ThreadSafeAdapter):
    @threaded_tool(description="Counts")
    @thread_safe_method
    def hit(self, wait: bool = False) -> int:
        if wait:
            Counting.inside.wait(5)
        return 1

    @tool()
    @require_thread_safe
    def guarded(self) -> str:
        return "ok"

    inside = threading.Event()


def test_tool_is_re_exported_from_the_threaded_module() -> None:
    assert threaded_tool is tool


def test_thread_safe_method_counts_calls_without_serialising_them() -> None:
    adapter = Counting()
    before = adapter.get_stats()["total_requests"]
    Counting.inside.clear()
    caller = threading.Thread(target=lambda: Counting().call_tool("hit", wait=True), name="surface-caller")
    caller.start()
    # The first call is still inside; a second one gets through regardless.
    for _ in range(200):
        if adapter.get_stats()["active_requests"] == 1:
            break
        threading.Event().wait(0.01)
    assert adapter.get_stats()["active_requests"] == 1
    assert adapter.call_tool("hit") == 1
    Counting.inside.set()
    caller.join(5)
    stats = adapter.get_stats()
    assert stats["total_requests"] == before + 2 and stats["active_requests"] == 0
    assert stats["requests_per_thread"]["surface-caller"] >= 1


def test_track_request_counts_failures_and_yields_an_id() -> None:
    adapter = Counting()
    failed = adapter.get_stats()["failed_requests"]
    with adapter.track_request("r-1") as rid:
        assert rid == "r-1"
    with pytest.raises(ValueError), adapter.track_request():
        raise ValueError("boom")
    assert adapter.get_stats()["failed_requests"] == failed + 1


def test_thread_locals_clear_one_key_or_all() -> None:
    adapter = Counting()
    with adapter.acquire_lock(), adapter.acquire_lock():
        adapter.set_thread_local("a", 1)
        adapter.set_thread_local("b", 2)
    adapter.clear_thread_local("a")
    assert adapter.get_thread_local("a") is None and adapter.get_thread_local("b") == 2
    adapter.clear_thread_local()
    assert adapter.get_thread_local("b", "none") == "none"


def test_thread_safety_checks() -> None:
    class Plain(BaseAdapter):
        @tool()
        @require_thread_safe
        def guarded(self) -> str:
            return "ok"

    assert validate_thread_safety(Counting) and not validate_thread_safety(Plain)
    assert Counting().call_tool("guarded") == "ok"
    with pytest.raises(RuntimeError, match="thread-safe"):
        Plain().call_tool("guarded")


# ---------------------------------------------------------------- session_context


class HostStub:
    """A BridgeService stub for the host side."""

    def __init__(self) -> None:
        self.listed = 0

    def GetExposedElixirTools(self, request: Any, timeout: float | None = None) -> Any:
        self.listed += 1
        response = protocol.GetExposedElixirToolsResponse()
        response.tools.add(name="double", description="Doubles x")
        return response

    def ExecuteElixirTool(self, request: Any, timeout: float | None = None) -> Any:
        if request.tool_name != "double":
            return protocol.ExecuteElixirToolResponse(success=False, error_message="no such tool")
        x = serialization.decode_any(request.parameters["x"])
        return protocol.ExecuteElixirToolResponse(success=True, result=serialization.json_any(x * 2))


def test_session_context_snakepit_form_calls_and_caches_host_tools() -> None:
    stub = HostStub()
    with SessionContext(stub, "s1", {"k": "v"}) as context:
        assert context.session_id == "s1" and context.request_metadata == {"k": "v"}
        assert context.elixir_tools == {
            "double": {"name": "double", "description": "Doubles x", "supports_streaming": False}
        }
        assert "double" in context.elixir_tools and stub.listed == 1
        assert context.call_elixir_tool("double", x=21) == 42
        with pytest.raises(RuntimeError, match="no such tool"):
            context.call_elixir_tool("missing")
    # Leaving the block cleaned up: the next look asks the host again.
    assert "double" in context.elixir_tools and stub.listed == 2
    context.cleanup()
    context.cleanup()


def test_session_context_without_a_host_says_so() -> None:
    with pytest.raises(RuntimeError, match="no host callback address"):
        _ = SessionContext(None, "s").elixir_tools


# ---------------------------------------------------------------- logging_config


def test_log_lines_carry_the_correlation_id(capsys: pytest.CaptureFixture[str]) -> None:
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    try:
        configure_logging(force=True, worker_id="w-test", level="INFO")
        configure_logging()  # idempotent: the format stays
        logger = get_logger("surface.test")
        assert isinstance(logger, logging.Logger)
        token = telemetry.set_correlation_id("cid-7")
        try:
            logger.info("inside")
        finally:
            telemetry.reset_correlation_id(token)
        logger.info("outside")
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
    lines = capsys.readouterr().err.splitlines()
    assert any("[w-test] surface.test: inside [correlation_id=cid-7]" in line for line in lines), lines
    assert any(line.endswith("surface.test: outside") for line in lines), lines


# ---------------------------------------------------------------- telemetry


@pytest.fixture
def buffer() -> Iterator[telemetry.EventBuffer]:
    saved = telemetry.get_backend()
    fresh = telemetry.EventBuffer()
    telemetry.set_backend(fresh)
    try:
        yield fresh
    finally:
        telemetry.set_backend(saved)


def test_emit_records_an_event_with_the_current_correlation_id(buffer: telemetry.EventBuffer) -> None:
    assert telemetry.is_enabled()
    token = telemetry.set_correlation_id("cid-1")
    try:
        telemetry.emit("model.predict", {"rows": 3, "ok": True, "odd": object}, {"model": "m", "n": 1})
        telemetry.emit("model.other", {"x": 1.5}, correlation_id="explicit")
    finally:
        telemetry.reset_correlation_id(token)
    first, second = buffer.drain()
    assert first.name == "model.predict" and first.event_parts == ["model", "predict"]
    assert first.measurements == {"rows": 3, "ok": 1, "odd": str(object)}
    assert first.metadata == {"model": "m", "n": "1"} and first.correlation_id == "cid-1"
    assert first.timestamp_ns > 0 and second.correlation_id == "explicit"


def test_span_emits_start_and_stop_or_exception_and_reraises(buffer: telemetry.EventBuffer) -> None:
    with telemetry.span("load", {"file": "a"}):
        pass
    with pytest.raises(KeyError), telemetry.span("load"):
        raise KeyError("missing")
    events = buffer.drain()
    assert [e.name for e in events] == ["load.start", "load.stop", "load.start", "load.exception"]
    assert events[1].measurements["duration_ns"] >= 0 and events[1].metadata == {"file": "a"}
    assert events[3].metadata["error_type"] == "KeyError" and "missing" in events[3].metadata["error"]


def test_the_buffer_drops_the_oldest_and_counts_drops() -> None:
    assert telemetry.DEFAULT_BUFFER_SIZE == 10_000
    assert telemetry.EventBuffer().capacity == 10_000
    small = telemetry.EventBuffer(capacity=3)
    for i in range(5):
        small.emit(telemetry.Event(f"e.{i}", {}))
    assert small.dropped == 2
    assert [e.name for e in small.drain()] == ["e.2", "e.3", "e.4"]
    assert small.stats() == {"emitted": 5, "dropped": 2, "buffered": 0, "capacity": 3}
    small.enabled = False
    small.emit(telemetry.Event("ignored", {}))
    assert len(small) == 0


def test_emit_never_raises_and_can_be_switched_off(buffer: telemetry.EventBuffer) -> None:
    class Broken:
        def emit(self, event: telemetry.Event) -> None:
            raise RuntimeError("backend down")

    telemetry.set_backend(Broken())
    telemetry.emit("x", {"a": 1})
    telemetry.set_backend(None)
    assert not telemetry.is_enabled() and telemetry.get_backend() is None
    telemetry.emit("x", {"a": 1})
    telemetry.set_backend(buffer)
    assert telemetry.get_backend() is buffer and len(buffer) == 0


def test_correlation_ids() -> None:
    assert telemetry.CORRELATION_HEADER == "x-snakepit-correlation-id"
    fresh = telemetry.new_correlation_id()
    assert len(fresh) == 32 and fresh != telemetry.new_correlation_id()
    assert telemetry.get_correlation_id() is None and telemetry.outgoing_metadata() == []
    token = telemetry.set_correlation_id(fresh)
    assert telemetry.get_correlation_id() == fresh
    assert telemetry.outgoing_metadata() == [("x-snakepit-correlation-id", fresh)]
    telemetry.reset_correlation_id(token)
    assert telemetry.get_correlation_id() is None


class Reporter(BaseAdapter):
    @tool()
    def whose(self) -> Any:
        return telemetry.get_correlation_id()


def test_a_calls_correlation_id_comes_from_its_request_metadata() -> None:
    servicer = BridgeServicer(AdapterProvider(Reporter, per_worker=False), "w")
    request = protocol.ExecuteToolRequest(tool_name="whose")
    request.metadata[telemetry.CORRELATION_HEADER] = "cid-from-host"
    response = servicer.ExecuteTool(request, None)  # type: ignore[arg-type]
    assert serialization.decode_any(response.result) == "cid-from-host"
    assert telemetry.get_correlation_id() is None
    plain = servicer.ExecuteTool(protocol.ExecuteToolRequest(tool_name="whose"), None)  # type: ignore[arg-type]
    assert serialization.decode_any(plain.result) is None


def test_opentelemetry_names_work_without_opentelemetry() -> None:
    has_otel = importlib.util.find_spec("opentelemetry") is not None
    assert telemetry.setup_tracing() is has_otel
    assert telemetry.get_tracer() is not None
    with telemetry.otel_span("op", {"a": 1}) as current:
        assert current is None or has_otel
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "m", None, None)
    assert telemetry.correlation_filter.filter(record) and record.correlation_id == "-"


# ---------------------------------------------------------------- serialization, zero_copy, pb2


def test_type_serializer_round_trips_values_and_bytes() -> None:
    message, binary = TypeSerializer.encode_any({"a": [1, 2.5, "x"]}, "map")
    assert binary is None and message.type_url.endswith("snakepit.map")
    assert TypeSerializer.decode_any(message) == {"a": [1, 2.5, "x"]}
    message, binary = TypeSerializer.encode_any(b"\x00\xff", "binary")
    assert binary == b"\x00\xff" and TypeSerializer.decode_any(message, binary) == b"\x00\xff"
    plain, _ = TypeSerializer.encode_any(7, "")
    assert plain.type_url.endswith("snakepit.integer") and TypeSerializer.decode_any(plain) == 7


def test_graceful_json_encoder_marks_what_json_cannot_hold() -> None:
    class Opaque:
        pass

    text = json.dumps({"o": Opaque(), "s": {2, 1}, "n": 1}, cls=GracefulJSONEncoder)
    value = json.loads(text)
    assert value["o"]["__ffi_unserializable__"] is True and value["o"]["__type__"].endswith("Opaque")
    assert value["s"] == [1, 2] and value["n"] == 1


def test_zero_copy_ref_round_trips_its_payload() -> None:
    ref = ZeroCopyRef.from_payload(
        {"kind": "dlpack", "device": "cpu", "dtype": "float32", "shape": [2, 2], "ref": 7, "bytes": 16}
    )
    assert (ref.kind, ref.device, ref.dtype, ref.shape, ref.bytes) == ("dlpack", "cpu", "float32", [2, 2], 16)
    payload = ref.to_payload()
    assert ZeroCopyRef.is_payload(payload) and ZeroCopyRef.from_payload(payload) == ref
    assert json.loads(json.dumps(payload)) == payload
    with pytest.raises(ValueError, match="kind"):
        ZeroCopyRef.from_payload({"ref": 1})


def test_pb2_is_a_top_level_module_of_the_protocols_messages() -> None:
    assert pb2.ToolRegistration is protocol.ToolRegistration
    assert pb2.DESCRIPTOR.name == "snakepit_bridge.proto"
    request = pb2.RegisterToolsRequest(session_id="s", tools=[pb2.ToolRegistration(name="t")])
    assert pb2.RegisterToolsRequest.FromString(request.SerializeToString()).tools[0].name == "t"


# ---------------------------------------------------------------- start-up registration


class Heavy(BaseAdapter):
    made = 0

    def __init__(self) -> None:
        super().__init__()
        Heavy.made += 1  # stands for loading a model

    @tool(description="Predicts")
    def predict(self, x: float) -> float:
        return x


class ListsItsOwn(BaseAdapter):
    def __init__(self) -> None:
        super().__init__()
        self.names = ["dynamic"]

    def describe_tools(self) -> list[ToolInfo]:
        return [ToolInfo(name=n, description="", parameters=[]) for n in self.names]


def test_start_up_registration_lists_tools_without_running_the_adapters_init() -> None:
    Heavy.made = 0
    registrations = AdapterProvider(Heavy, per_worker=False).registrations()
    assert [r.name for r in registrations] == ["predict"] and Heavy.made == 0
    assert all(isinstance(r, pb2.ToolRegistration) for r in registrations)
    # An adapter that lists its tools itself gets a normal instance.
    assert [r.name for r in AdapterProvider(ListsItsOwn, per_worker=False).registrations()] == ["dynamic"]
