//! gRPC method descriptors of `snakepit.bridge.BridgeService`.
//!
//! Written by hand: grpcio-compiler emits the same glue but only reads
//! protobuf 2 descriptors, and the host only needs the client side of a few
//! methods.

use grpcio::{Marshaller, Method, MethodType};

use super::messages::{
    CleanupSessionRequest, CleanupSessionResponse, ExecuteToolRequest, ExecuteToolResponse,
    InitializeSessionRequest, InitializeSessionResponse, PingRequest, PingResponse, ToolChunk,
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
    CLEANUP_SESSION,
    MethodType::Unary,
    "CleanupSession",
    CleanupSessionRequest,
    CleanupSessionResponse
);
method!(
    INITIALIZE_SESSION,
    MethodType::Unary,
    "InitializeSession",
    InitializeSessionRequest,
    InitializeSessionResponse
);
