"""``import snakepit_bridge_pb2 as pb2``: the protocol's message classes under
the module name of Snakepit's generated code.

Not generated: every message of :mod:`snakepit_bridge.protocol` (built from
its table at import time) is re-exported here, with ``DESCRIPTOR`` the
file's descriptor. Needs protobuf.
"""

from __future__ import annotations

from snakepit_bridge import protocol as _protocol
from snakepit_bridge.protocol import (
    CleanupSessionRequest,
    CleanupSessionResponse,
    ExecuteElixirToolRequest,
    ExecuteElixirToolResponse,
    ExecuteToolRequest,
    ExecuteToolResponse,
    GetExposedElixirToolsRequest,
    GetExposedElixirToolsResponse,
    GetSessionRequest,
    GetSessionResponse,
    HeartbeatRequest,
    HeartbeatResponse,
    InitializeSessionRequest,
    InitializeSessionResponse,
    ParameterSpec,
    PingRequest,
    PingResponse,
    RegisterToolsRequest,
    RegisterToolsResponse,
    SessionConfig,
    TelemetryControl,
    TelemetryEvent,
    TelemetryEventFilter,
    TelemetrySamplingUpdate,
    TelemetryToggle,
    TelemetryValue,
    ToolChunk,
    ToolRegistration,
    ToolSpec,
)

DESCRIPTOR = _protocol.FILE_DESCRIPTOR
"""The ``FileDescriptor`` of ``snakepit_bridge.proto``."""

__all__ = [
    "DESCRIPTOR",
    "CleanupSessionRequest",
    "CleanupSessionResponse",
    "ExecuteElixirToolRequest",
    "ExecuteElixirToolResponse",
    "ExecuteToolRequest",
    "ExecuteToolResponse",
    "GetExposedElixirToolsRequest",
    "GetExposedElixirToolsResponse",
    "GetSessionRequest",
    "GetSessionResponse",
    "HeartbeatRequest",
    "HeartbeatResponse",
    "InitializeSessionRequest",
    "InitializeSessionResponse",
    "ParameterSpec",
    "PingRequest",
    "PingResponse",
    "RegisterToolsRequest",
    "RegisterToolsResponse",
    "SessionConfig",
    "TelemetryControl",
    "TelemetryEvent",
    "TelemetryEventFilter",
    "TelemetrySamplingUpdate",
    "TelemetryToggle",
    "TelemetryValue",
    "ToolChunk",
    "ToolRegistration",
    "ToolSpec",
]
