//! The wire, for tests that must speak it without the pool: the crate's
//! generated messages (`build.rs` writes them to `OUT_DIR`; the crate keeps
//! them private) and the `BridgeService` methods a test needs, described for
//! grpcio by hand.

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

use messages::{PingRequest, PingResponse};

/// `BridgeService.Ping`, served by workers and by the host's callback server.
pub const PING: Method<PingRequest, PingResponse> = Method {
    ty: MethodType::Unary,
    name: "/snakepit.bridge.BridgeService/Ping",
    req_mar: Marshaller {
        ser: grpcio::pb_ser,
        de: grpcio::pb_de,
    },
    resp_mar: Marshaller {
        ser: grpcio::pb_ser,
        de: grpcio::pb_de,
    },
};
