//! gRPC method descriptors of `snakepit.bridge.BridgeService`.
//!
//! Written by hand: grpcio-compiler emits the same glue but only reads
//! protobuf 2 descriptors. The host is the client of `Ping` and
//! `ExecuteTool`, and the server of the callback methods below them (see
//! `crate::host_server`).

use grpcio::{Marshaller, Method, MethodType};

use super::messages::{
    CleanupSessionRequest, CleanupSessionResponse, ExecuteElixirToolRequest,
    ExecuteElixirToolResponse, ExecuteToolRequest, ExecuteToolResponse,
    GetExposedElixirToolsRequest, GetExposedElixirToolsResponse, GetSessionRequest,
    GetSessionResponse, HeartbeatRequest, HeartbeatResponse, InitializeSessionRequest,
    InitializeSessionResponse, PingRequest, PingResponse, RegisterToolsRequest,
    RegisterToolsResponse, TelemetryControl, TelemetryEvent, ToolChunk,
};

macro_rules! method {
    ($name:ident, $ty:expr, $path:literal, $req:ty, $resp:ty) => {
        pub(crate) const $name: Method<$req, $resp> = Method {
            ty: $ty,
            name: concat!("/snakepit.bridge.BridgeService/", $path),
            req_mar: Marshaller {
                ser: grpcio::pb_ser,
                de: grpcio::pb_de,
            },
            resp_mar: Marshaller {
                ser: grpcio::pb_ser,
                de: grpcio::pb_de,
            },
        };
    };
}

method!(PING, MethodType::Unary, "Ping", PingRequest, PingResponse);
method!(
    EXECUTE_TOOL,
    MethodType::Unary,
    "ExecuteTool",
    ExecuteToolRequest,
    ExecuteToolResponse
);
method!(
    EXECUTE_STREAMING_TOOL,
    MethodType::ServerStreaming,
    "ExecuteStreamingTool",
    ExecuteToolRequest,
    ToolChunk
);

method!(
    STREAM_TELEMETRY,
    MethodType::Duplex,
    "StreamTelemetry",
    TelemetryControl,
    TelemetryEvent
);

// The callback side, served by the host to its workers.
method!(
    INITIALIZE_SESSION,
    MethodType::Unary,
    "InitializeSession",
    InitializeSessionRequest,
    InitializeSessionResponse
);
method!(
    CLEANUP_SESSION,
    MethodType::Unary,
    "CleanupSession",
    CleanupSessionRequest,
    CleanupSessionResponse
);
method!(
    GET_SESSION,
    MethodType::Unary,
    "GetSession",
    GetSessionRequest,
    GetSessionResponse
);
method!(
    HEARTBEAT,
    MethodType::Unary,
    "Heartbeat",
    HeartbeatRequest,
    HeartbeatResponse
);
method!(
    REGISTER_TOOLS,
    MethodType::Unary,
    "RegisterTools",
    RegisterToolsRequest,
    RegisterToolsResponse
);
method!(
    GET_EXPOSED_ELIXIR_TOOLS,
    MethodType::Unary,
    "GetExposedElixirTools",
    GetExposedElixirToolsRequest,
    GetExposedElixirToolsResponse
);
method!(
    EXECUTE_ELIXIR_TOOL,
    MethodType::Unary,
    "ExecuteElixirTool",
    ExecuteElixirToolRequest,
    ExecuteElixirToolResponse
);
