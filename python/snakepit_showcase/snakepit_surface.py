"""An adapter written the way Snakepit's own adapters are, using every name
of the Python surface that Snakepit adapters import
(``docs/snakepit-python-surface.md``), to show they run here unchanged on
both worker profiles. ``tests/snakepit_surface.rs`` drives it.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import snakepit_bridge_pb2 as pb2
from snakepit_bridge import SessionContext, configure_logging, telemetry
from snakepit_bridge.base_adapter import ToolMetadata
from snakepit_bridge.base_adapter import tool as base_tool
from snakepit_bridge.base_adapter_threaded import (
    ThreadSafeAdapter,
    require_thread_safe,
    thread_safe_method,
    tool,
    validate_thread_safety,
)
from snakepit_bridge.logging_config import get_logger
from snakepit_bridge.serialization import GracefulJSONEncoder, TypeSerializer
from snakepit_bridge.session_context import SessionContext as SessionContextByModule
from snakepit_bridge.zero_copy import ZeroCopyRef

configure_logging()
logger = get_logger(__name__)


class _Opaque:
    """Something JSON cannot hold."""


class SurfaceAdapter(ThreadSafeAdapter):
    """Runs on both profiles: thread-safe, and fine one call at a time."""

    def execute_tool(self, tool_name: str, arguments: dict[str, Any], context: Any = None) -> Any:
        # Snakepit adapters route a few names themselves and fall through.
        if tool_name == "ping_direct":
            return {"pong": True, "session_id": self.session_id}
        return self.call_tool(tool_name, **arguments)

    @tool(description="What the adapter knows about itself and the call")
    def describe(self) -> dict[str, Any]:
        registrations = self.get_tools()
        meta = SurfaceAdapter.scaled._tool_metadata  # type: ignore[attr-defined]
        assert isinstance(meta, ToolMetadata)
        return {
            "session_id": self.session_id,
            "tools": [t.name for t in registrations],
            "all_registrations": all(isinstance(t, pb2.ToolRegistration) for t in registrations),
            "scaled_description": meta.description,
            "scaled_required_variables": meta.required_variables,
            "scaled_parameters": [
                (p.name, p.type, p.required) for t in registrations if t.name == "scaled" for p in t.parameters
            ],
            "thread_safe": validate_thread_safety(type(self)),
        }

    @base_tool("Multiplies by a factor", False, ["factor"])
    def scaled(self, x: float, factor: float = 2.0) -> float:
        return x * factor

    @tool(description="Encodes and decodes values the Snakepit way")
    def roundtrip(self, value: Any) -> dict[str, Any]:
        message, binary = TypeSerializer.encode_any(value, "json")
        blob, raw = TypeSerializer.encode_any(b"\x00\x01", "binary")
        ref = ZeroCopyRef.from_payload({"kind": "shm", "ref": "/buf-1", "dtype": "float32", "shape": [2, 3]})
        return {
            "decoded": TypeSerializer.decode_any(message, binary),
            "bytes_back": list(TypeSerializer.decode_any(blob, raw)),
            "graceful": json.loads(json.dumps({"odd": _Opaque(), "set": {3}}, cls=GracefulJSONEncoder)),
            "zero_copy": ZeroCopyRef.from_payload(ref.to_payload()) == ref,
        }

    @tool(description="Emits telemetry inside a span and logs a line")
    def traced(self, n: int) -> dict[str, Any]:
        backend = telemetry.get_backend()
        before = getattr(backend, "stats", lambda: {"emitted": 0})()["emitted"]
        with telemetry.span("surface.traced", {"n": n}):
            for i in range(n):
                telemetry.emit("surface.item", {"i": i}, {"tool": "traced"})
        logger.info("traced %d items", n)
        after = getattr(backend, "stats", lambda: {"emitted": 0})()["emitted"]
        with telemetry.otel_span("surface.otel"):
            pass
        return {
            "enabled": telemetry.is_enabled(),
            "emitted": after - before,
            "correlation_id": telemetry.get_correlation_id(),
            "header": telemetry.CORRELATION_HEADER,
        }

    @tool(description="Uses the host: its tools, a host tool call, and RegisterTools")
    def host_side(self, x: int) -> dict[str, Any]:
        context = self.session_context
        assert isinstance(context, SessionContext)
        names = sorted(context.elixir_tools)
        # A Snakepit-style context of its own, over the same stub.
        with SessionContextByModule(context.stub, "surface-session", {"origin": "surface"}) as own:
            doubled = own.call_elixir_tool("double", x=x)
            metadata = dict(own.request_metadata)
        registered = self.register_with_session("surface-session", context.stub, worker_id="surface-adapter")
        return {"host_tools": names, "doubled": doubled, "metadata": metadata, "registered": sorted(registered)}

    @tool(description="Registers the tools again from asyncio code")
    async def register_async(self) -> list[str]:
        context = self.session_context
        assert context is not None
        names = await self.register_with_session_async("surface-session", context.stub, worker_id="surface-async")
        return sorted(names)

    @tool(description="The thread helpers: lock, thread-locals, request counts")
    @thread_safe_method
    @require_thread_safe
    def counted(self, label: str) -> dict[str, Any]:
        with self.acquire_lock():
            self.set_thread_local("label", label)
            seen = self.get_thread_local("label")
            self.clear_thread_local("label")
            cleared = self.get_thread_local("label", "gone")
        with self.track_request("inner"):
            stats = self.get_stats()
        return {"seen": seen, "cleared": cleared, "total": stats["total_requests"], "active": stats["active_requests"]}


logging.getLogger(__name__).debug("snakepit_surface loaded")
