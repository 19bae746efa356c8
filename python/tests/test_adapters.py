"""Tool discovery, argument checks and the call lifecycle, in process."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any, Optional

import pytest

from snakepit_bridge import (
    BaseAdapter,
    InvalidArgumentsError,
    SessionContext,
    ThreadSafeAdapter,
    ToolNotFoundError,
    protocol,
    serialization,
    thread_safe_method,
    tool,
)
from snakepit_bridge.adapter_provider import AdapterProvider
from snakepit_bridge.servicer import BridgeServicer
from snakepit_showcase.adapter import ShowcaseAdapter, ThreadedShowcaseAdapter


class Specimen(BaseAdapter):
    """An adapter with one tool of each shape."""

    @tool(description="Adds")
    def add(self, a: int, b: int) -> int:
        return a + b

    @tool
    def scale(self, values: list, factor: float = 2.0, label: Optional[str] = None) -> dict:
        """Multiplies values.

        Args:
            values: numbers to scale.
            factor: the multiplier,
                applied to each value.
        """
        return {"values": [v * factor for v in values], "label": label}

    @tool(name="renamed", supports_streaming=True, category="demo")
    def stream(self, n: int) -> Iterator[int]:
        """Counts."""
        yield from range(n)

    @tool
    def anything(self, x, blob: bytes = b"", flag: bool = False, mapping: dict | None = None, **rest: Any) -> Any:
        """:param x: whatever you like"""
        return {"x": x, "rest": rest}

    def not_a_tool(self) -> None:
        """Plain methods are not tools."""


# ---------------------------------------------------------------- discovery


def test_tools_are_discovered_with_their_specs() -> None:
    tools = {t.name: t for t in Specimen().describe_tools()}
    assert sorted(tools) == ["add", "anything", "renamed", "scale"]

    add = tools["add"]
    assert add.description == "Adds" and not add.supports_streaming
    assert [(p.name, p.type, p.required) for p in add.parameters] == [("a", "int", True), ("b", "int", True)]
    assert add.signature == "add(a: int, b: int)"

    scale = tools["scale"]
    assert scale.description == "Multiplies values."
    assert [(p.name, p.type, p.required, p.default) for p in scale.parameters] == [
        ("values", "list", True, None),
        ("factor", "float", False, 2.0),
        ("label", "str", False, None),
    ]
    assert scale.parameters[0].description == "numbers to scale."
    assert scale.parameters[1].description == "the multiplier, applied to each value."

    streaming = tools["renamed"]
    assert streaming.supports_streaming and streaming.metadata == {"category": "demo"}

    anything = tools["anything"]
    assert [(p.name, p.type) for p in anything.parameters] == [
        ("x", "any"),
        ("blob", "bytes"),
        ("flag", "bool"),
        ("mapping", "dict"),
    ]
    assert anything.parameters[0].description == "whatever you like"


def test_threaded_showcase_has_every_showcase_tool() -> None:
    assert ShowcaseAdapter.__thread_safe__ is False
    assert ThreadedShowcaseAdapter.__thread_safe__ is True
    assert set(ThreadedShowcaseAdapter().tool_names()) == set(ShowcaseAdapter().tool_names()) | {"thread_id"}
    streaming = {t.name for t in ShowcaseAdapter().get_tools() if t.supports_streaming}
    assert "count_stream" in streaming and "add" not in streaming


def test_tool_specs_become_messages() -> None:
    specs = {s.name: s for s in AdapterProvider(Specimen, per_worker=False).tool_specs()}
    factor = specs["scale"].parameters[1]
    assert factor.name == "factor" and factor.type == "float" and not factor.required
    assert serialization.decode_any(factor.default_value) == 2.0
    assert not specs["add"].parameters[0].HasField("default_value")
    assert specs["renamed"].supports_streaming
    assert specs["add"].metadata["signature"] == "add(a: int, b: int)"


# ---------------------------------------------------------------- arguments


def test_arguments_are_checked_before_the_tool_runs() -> None:
    adapter = Specimen()
    assert adapter.execute_tool("add", {"a": 2, "b": 3}) == 5
    cases = [
        ({"a": 1}, "b", "missing"),
        ({"a": 1, "b": 2, "c": 3}, "c", "unexpected"),
        ({"a": "1", "b": 2}, "a", "must be int, got str"),
        ({"a": True, "b": 2}, "a", "must be int, got bool"),
        ({"a": 1.5, "b": 2}, "a", "must be int, got float"),
    ]
    for arguments, argument, words in cases:
        with pytest.raises(InvalidArgumentsError, match=words) as caught:
            adapter.execute_tool("add", arguments)
        assert type(caught.value).__name__ == "InvalidArgumentsError"
        assert caught.value.context == {"tool": "add", "argument": argument, "signature": "add(a: int, b: int)"}


def test_floats_accept_ints_and_optional_accepts_none() -> None:
    adapter = Specimen()
    assert adapter.execute_tool("scale", {"values": [1, 2], "factor": 3}) == {"values": [3, 6], "label": None}
    assert adapter.execute_tool("scale", {"values": [1], "label": None})["label"] is None
    with pytest.raises(InvalidArgumentsError, match="'label' must be"):
        adapter.execute_tool("scale", {"values": [1], "label": 5})
    with pytest.raises(InvalidArgumentsError, match="'values' must be list"):
        adapter.execute_tool("scale", {"values": {"a": 1}})


def test_var_keyword_tools_take_unknown_arguments() -> None:
    assert Specimen().execute_tool("anything", {"x": 1, "y": 2}) == {"x": 1, "rest": {"y": 2}}
    with pytest.raises(InvalidArgumentsError, match="'blob' must be bytes"):
        Specimen().execute_tool("anything", {"x": 1, "blob": "text"})


def test_unknown_tool_lists_the_available_ones() -> None:
    with pytest.raises(ToolNotFoundError) as caught:
        Specimen().execute_tool("nope", {})
    assert caught.value.context == {"tool": "nope", "available": ["add", "anything", "renamed", "scale"]}
    assert "add, anything, renamed, scale" in str(caught.value)


# ---------------------------------------------------------------- worker calls, in process


class FakeContext:
    """Enough of grpc.ServicerContext for the servicer."""

    def __init__(self) -> None:
        self.active = True
        self.aborted: tuple[Any, str] | None = None

    def is_active(self) -> bool:
        return self.active

    def abort(self, code: Any, details: str) -> None:
        self.aborted = (code, details)
        raise RuntimeError("aborted")


def servicer_for(adapter_class: type, per_worker: bool = False) -> BridgeServicer:
    return BridgeServicer(AdapterProvider(adapter_class, per_worker), "test-worker")


def execute(servicer: BridgeServicer, tool_name: str, session_id: str = "", **arguments: Any) -> Any:
    request = protocol.ExecuteToolRequest(tool_name=tool_name, session_id=session_id)
    for name, value in arguments.items():
        if isinstance(value, bytes):
            request.binary_parameters[name] = value
        else:
            request.parameters[name].CopyFrom(serialization.parameter_any(value))
    return servicer.ExecuteTool(request, FakeContext())


def decoded(response: Any) -> Any:
    assert response.success, response.error_message
    return serialization.decode_any(response.result)


EVENTS: list[str] = []


class Lifecycle(BaseAdapter):
    """Records the order of hooks and calls."""

    def __init__(self) -> None:
        super().__init__()
        EVENTS.append("init")

    def initialize(self) -> None:
        EVENTS.append("initialize")

    def cleanup(self) -> None:
        EVENTS.append("cleanup")

    @tool
    def work(self, fail: bool = False) -> str:
        EVENTS.append(f"work:{self.session_context.session_id}")
        if fail:
            raise KeyError("failed on purpose")
        return "done"


class AsyncLifecycle(BaseAdapter):
    """Async hooks and an async tool."""

    async def initialize(self) -> None:
        await asyncio.sleep(0)
        EVENTS.append("async initialize")

    async def cleanup(self) -> None:
        await asyncio.sleep(0)
        EVENTS.append("async cleanup")

    @tool
    async def work(self) -> str:
        await asyncio.sleep(0)
        EVENTS.append("async work")
        return "async done"


class FailingInitialize(Lifecycle):
    def initialize(self) -> None:
        EVENTS.append("initialize")
        raise RuntimeError("cannot initialize")


@pytest.fixture(autouse=True)
def clear_events() -> None:
    EVENTS.clear()


def test_lifecycle_order_on_success_and_on_error() -> None:
    servicer = servicer_for(Lifecycle)
    assert decoded(execute(servicer, "work", session_id="s1")) == "done"
    assert EVENTS == ["init", "initialize", "work:s1", "cleanup"]

    EVENTS.clear()
    response = execute(servicer, "work", fail=True)
    assert not response.success
    payload = json.loads(response.error_message)
    assert payload["type"] == "KeyError" and payload["context"] == {"tool": "work"}
    assert EVENTS == ["init", "initialize", "work:", "cleanup"]

    EVENTS.clear()
    response = execute(servicer, "missing")
    assert json.loads(response.error_message)["type"] == "ToolNotFoundError"
    assert EVENTS == ["init", "initialize", "cleanup"]


def test_cleanup_runs_when_initialize_fails() -> None:
    response = execute(servicer_for(FailingInitialize), "work")
    assert json.loads(response.error_message)["message"] == "cannot initialize"
    assert EVENTS == ["init", "initialize", "cleanup"]


def test_async_hooks_and_async_tools() -> None:
    assert decoded(execute(servicer_for(AsyncLifecycle), "work")) == "async done"
    assert EVENTS == ["async initialize", "async work", "async cleanup"]


def test_adapter_per_worker_initializes_once() -> None:
    servicer = servicer_for(Lifecycle, per_worker=True)
    for _ in range(3):
        assert decoded(execute(servicer, "work")) == "done"
    assert EVENTS == ["init", "initialize", "work:", "work:", "work:"]
    servicer.adapters.shutdown()
    assert EVENTS[-1] == "cleanup"


class Dispatcher(BaseAdapter):
    """Snakepit style: no @tool methods, execute_tool does the dispatch."""

    def execute_tool(self, tool_name: str, arguments: dict, context: Any) -> Any:
        return {"tool": tool_name, "arguments": arguments, "session": context.session_id}


def test_custom_execute_tool_is_used() -> None:
    response = execute(servicer_for(Dispatcher), "anything_at_all", session_id="s9", n=1, blob=b"\x00")
    assert response.success
    # bytes arguments reach execute_tool as bytes; the result holds them as markers
    assert decoded(response) == {
        "tool": "anything_at_all",
        "arguments": {"n": 1, "blob": {"__ffi_unserializable__": True, "__type__": "builtins.bytes"}},
        "session": "s9",
    }


def test_results_and_errors_from_the_showcase() -> None:
    servicer = servicer_for(ShowcaseAdapter)
    assert decoded(execute(servicer, "add", a=2, b=3)) == 5
    assert decoded(execute(servicer, "add", a=2, b=0.5)) == 2.5
    binary = execute(servicer, "binary_echo", data=b"\x00\xffabc")
    assert binary.success and binary.binary_result == b"\x00\xffabc"
    assert binary.result.type_url.endswith("snakepit.binary")
    assert decoded(execute(servicer, "binary_len", data=b"1234")) == 4

    nan = execute(servicer, "nan")
    payload = json.loads(nan.error_message)
    assert payload["type"] == "ValueError" and "NaN" in payload["message"]

    marker = decoded(execute(servicer, "unserializable"))
    assert marker["__ffi_unserializable__"] is True and marker["__type__"].endswith("<locals>.Opaque")

    bad = json.loads(execute(servicer, "add", a="x", b=1).error_message)
    assert bad["type"] == "InvalidArgumentsError"
    assert bad["context"] == {"tool": "add", "argument": "a", "signature": "add(a: float, b: float)"}

    for kind in ("KeyError", "ZeroDivisionError", "TypeError"):
        payload = json.loads(execute(servicer, "raise_error", kind=kind, message="m").error_message)
        assert payload["type"] == kind
    assert json.loads(execute(servicer, "raise_error", kind="Nonsense").error_message)["type"] == "RuntimeError"

    response = execute(servicer, "whoami", session_id="abc")
    assert decoded(response)["worker_id"] == "test-worker" and decoded(response)["session_id"] == "abc"
    assert dict(response.metadata) == {"worker_id": "test-worker", "pid": str(__import__("os").getpid())}


def test_sessions_keep_a_store_per_session() -> None:
    servicer = servicer_for(ShowcaseAdapter)
    context = FakeContext()
    init = servicer.InitializeSession(protocol.InitializeSessionRequest(session_id="s1"), context)
    assert init.success and "add" in init.available_tools
    assert init.available_tools["count_stream"].supports_streaming
    assert [decoded(execute(servicer, "session_counter", session_id="s1")) for _ in range(3)] == [1, 2, 3]
    assert decoded(execute(servicer, "session_counter", session_id="s2")) == 1
    assert decoded(execute(servicer, "session_counter")) == 1  # no session: a fresh store each time
    assert decoded(execute(servicer, "session_counter")) == 1

    got = servicer.GetSession(protocol.GetSessionRequest(session_id="s1"), context)
    assert got.session_id == "s1" and got.tool_count == len(ShowcaseAdapter().tool_names())
    beat = servicer.Heartbeat(protocol.HeartbeatRequest(session_id="s1"), context)
    assert beat.session_valid and beat.server_time.seconds > 0
    cleaned = servicer.CleanupSession(protocol.CleanupSessionRequest(session_id="s1"), context)
    assert cleaned.success and cleaned.resources_cleaned == 1
    assert not servicer.Heartbeat(protocol.HeartbeatRequest(session_id="s1"), context).session_valid
    assert decoded(execute(servicer, "session_counter", session_id="s1")) == 1


def test_discovery_with_an_empty_session_id_opens_no_session() -> None:
    servicer = servicer_for(ShowcaseAdapter)
    response = servicer.InitializeSession(protocol.InitializeSessionRequest(session_id=""), FakeContext())
    assert response.success and len(response.available_tools) == len(ShowcaseAdapter().tool_names())
    assert servicer.sessions.get("") is None


def test_host_callback_needs_an_address() -> None:
    payload = json.loads(execute(servicer_for(ShowcaseAdapter), "call_host", name="x").error_message)
    assert (
        payload["type"] == "RuntimeError" and "no host tool named `x`: the host has no host tools" in payload["message"]
    )
    with pytest.raises(RuntimeError, match="started without --elixir-address"):
        SessionContext("s").call_elixir_tool("anything", a=1)
    with pytest.raises(RuntimeError, match="no host callback address"):
        SessionContext("s").host_tools()


# ---------------------------------------------------------------- streaming, in process


class Streams(BaseAdapter):
    closed: list[str] = []

    @tool(supports_streaming=True)
    def numbers(self, n: int) -> Iterator[Any]:
        try:
            for i in range(n):
                yield {"i": i}
            yield b"\x00raw"
        finally:
            Streams.closed.append("numbers")

    @tool(supports_streaming=True)
    async def async_numbers(self, n: int) -> AsyncIterator[int]:
        try:
            for i in range(n):
                await asyncio.sleep(0)
                yield i
        finally:
            Streams.closed.append("async_numbers")


def stream(servicer: BridgeServicer, tool_name: str, context: FakeContext, **arguments: Any) -> Iterator[Any]:
    request = protocol.ExecuteToolRequest(tool_name=tool_name)
    for name, value in arguments.items():
        request.parameters[name].CopyFrom(serialization.parameter_any(value))
    return servicer.ExecuteStreamingTool(request, context)


def test_streaming_chunks_and_final_chunk() -> None:
    Streams.closed.clear()
    chunks = list(stream(servicer_for(Streams), "numbers", FakeContext(), n=2))
    assert [(c.chunk_id, c.data, c.is_final) for c in chunks] == [
        ("numbers-0", b'{"i":0}', False),
        ("numbers-1", b'{"i":1}', False),
        ("numbers-2", b"\x00raw", False),
        ("numbers-3", b"", True),
    ]
    chunks = list(stream(servicer_for(Streams), "async_numbers", FakeContext(), n=3))
    assert [c.data for c in chunks] == [b"0", b"1", b"2", b""]
    assert Streams.closed == ["numbers", "async_numbers"]


@pytest.mark.parametrize("tool_name", ["numbers", "async_numbers"])
def test_stopping_a_stream_closes_the_generator(tool_name: str) -> None:
    Streams.closed.clear()
    responses = stream(servicer_for(Streams), tool_name, FakeContext(), n=1000)
    assert next(responses).chunk_id == f"{tool_name}-0"
    responses.close()  # what grpc does when the client goes away
    assert Streams.closed == [tool_name]


def test_inactive_context_ends_the_stream_without_a_final_chunk() -> None:
    Streams.closed.clear()
    context = FakeContext()
    responses = stream(servicer_for(Streams), "numbers", context, n=1000)
    next(responses)
    context.active = False
    assert list(responses) == []
    assert Streams.closed == ["numbers"]


def test_a_failing_stream_aborts_with_the_payload() -> None:
    context = FakeContext()
    responses = stream(servicer_for(ShowcaseAdapter), "stream_then_fail", context, n=2, message="bad item")
    assert [c.chunk_id for c in [next(responses), next(responses)]] == ["stream_then_fail-0", "stream_then_fail-1"]
    with pytest.raises(RuntimeError, match="aborted"):
        next(responses)
    code, details = context.aborted  # type: ignore[misc]
    assert code.name == "INTERNAL"
    payload = json.loads(details)
    assert payload["type"] == "RuntimeError" and payload["message"] == "bad item"


def test_a_unary_call_of_a_streaming_tool_collects_the_items() -> None:
    assert decoded(execute(servicer_for(ShowcaseAdapter), "count_stream", n=3)) == [{"i": 0}, {"i": 1}, {"i": 2}]


# ---------------------------------------------------------------- thread safety helpers


class Counter(ThreadSafeAdapter):
    total = 0

    @tool
    @thread_safe_method
    def bump(self, times: int) -> int:
        for _ in range(times):
            with self.acquire_lock():
                current = Counter.total
                time.sleep(0)  # yields the GIL: without the lock, updates are lost
                Counter.total = current + 1
        return Counter.total


def test_the_class_lock_serialises_across_instances() -> None:
    assert "bump" in Counter().tool_names()
    Counter.total = 0
    threads = [threading.Thread(target=lambda: Counter().execute_tool("bump", {"times": 200})) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert Counter.total == 1600


def test_lock_is_reentrant_and_thread_locals_are_per_thread() -> None:
    adapter = Counter()
    with adapter.acquire_lock(), adapter.acquire_lock():
        pass
    adapter.set_thread_local("model", "main")
    seen: list[Any] = []
    worker = threading.Thread(target=lambda: seen.append(Counter().get_thread_local("model", "unset")))
    worker.start()
    worker.join(5)
    assert seen == ["unset"]
    assert Counter().get_thread_local("model") == "main"
    adapter.clear_thread_local()
    assert adapter.get_thread_local("model") is None


def test_session_context_is_per_thread_on_a_shared_adapter() -> None:
    adapter = ThreadedShowcaseAdapter()
    adapter.set_session_context(SessionContext("main"))
    seen: list[str] = []

    def other() -> None:
        adapter.set_session_context(SessionContext("other"))
        seen.append(adapter.session_context.session_id)

    thread = threading.Thread(target=other)
    thread.start()
    thread.join(5)
    assert seen == ["other"] and adapter.session_context.session_id == "main"
