//! The wire contract with the Python workers: generated messages, the gRPC
//! method descriptors, and the JSON-in-`Any` value encoding. Private: the
//! generated types pin their `protobuf` version, so they stay out of the
//! public API (the bench compiles its own copy, see `build.rs`).
//!
//! ```compile_fail
//! // Not reachable from outside the crate.
//! use snakepit::protocol;
//! ```
//!
//! The schema lives in `proto/snakepit_bridge.proto` and is the one of the
//! Elixir Snakepit project, so workers written for either host interoperate.

#![allow(missing_docs)]

mod generated {
    include!(concat!(env!("OUT_DIR"), "/protos/mod.rs"));
}

pub(crate) mod service;
pub(crate) mod value;

pub(crate) use generated::snakepit_bridge as messages;
