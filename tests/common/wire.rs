//! The wire, for code that must speak it without the pool (tests, and the
//! bench's raw client, which includes this file): the crate's generated
//! messages (`build.rs` writes them to `OUT_DIR`; the crate keeps them
//! private) and the `BridgeService` methods they need, described for grpcio
//! by hand.

#![allow(dead_code)]

use grpcio::{Marshaller, Method, MethodType};

/// `snakepit_bridge.proto`'s messages; the `allow`s are the ones the
/// generated file declares for itself.
#[allow(
    dead_code,
    missing_docs,
    non_camel_case_types,
    non_snake_case,
    non_upper_case_globals,
    trivial_casts,
    unused_attributes,
    unused_mut,
    unused_results,
    clippy::all
)]
pub mod messages {
    include!(concat!(env!("OUT_DIR"), "/bridge_messages.rs"));
}

use messages::{ExecuteToolRequest, ExecuteToolResponse, PingRequest, PingResponse};

/// A unary `BridgeService` method with protobuf messages.
const fn unary<Req: protobuf::Message, Resp: protobuf::Message>(
    name: &'static str,
) -> Method<Req, Resp> {
    Method {
        ty: MethodType::Unary,
        name,
        req_mar: Marshaller {
            ser: grpcio::pb_ser,
            de: grpcio::pb_de,
        },
        resp_mar: Marshaller {
            ser: grpcio::pb_ser,
            de: grpcio::pb_de,
        },
    }
}

/// `BridgeService.Ping`, served by workers and by the host's callback server.
pub const PING: Method<PingRequest, PingResponse> = unary("/snakepit.bridge.BridgeService/Ping");

/// `BridgeService.ExecuteTool`, served by workers.
pub const EXECUTE_TOOL: Method<ExecuteToolRequest, ExecuteToolResponse> =
    unary("/snakepit.bridge.BridgeService/ExecuteTool");
