//! # snakepit
//!
//! A pool of Python worker processes for blocking Rust programs. Start a
//! pool with an adapter class, then call its tools from any thread:
//!
//! ```no_run
//! use serde_json::json;
//! use snakepit::{CallOptions, Pool, Profile};
//! use std::time::Duration;
//!
//! let pool = Pool::builder()
//!     .adapter("snakepit_showcase.adapter.ShowcaseAdapter") // "module.Class"
//!     .workers(4)
//!     .profile(Profile::Process) // or Profile::Thread { threads: 16 }
//!     .build()?; // blocks until every worker is ready
//!
//! let sum = pool.execute_blocking("add", json!({"a": 1, "b": 2}))?;
//! assert_eq!(sum, json!(3));
//!
//! let reply = pool.execute_blocking_with(
//!     "add",
//!     json!({"a": 1, "b": 2}),
//!     CallOptions::new().timeout(Duration::from_secs(5)),
//! )?;
//! println!("{} from {} ({:?})", reply.value, reply.worker, pool.stats());
//! pool.shutdown(); // also happens when the last handle is dropped
//! # Ok::<(), snakepit::Error>(())
//! ```
//!
//! ## How it works
//!
//! Each worker is a Python process serving gRPC on a Unix socket in a
//! private directory, owned by a dedicated OS thread of the host. A
//! dispatcher thread places each call on the least-loaded worker by
//! scanning a fixed array of atomic capacity/load slots, or queues it
//! (bounded, with a timeout). The caller blocks on a channel for its reply.
//! There is no async runtime: everything the caller touches blocks.
//!
//! Two profiles: [`Profile::Process`] runs one call at a time per process;
//! [`Profile::Thread`] runs N at once per process.
//!
//! Two transports: [`Transport::Grpc`] (the default, the Snakepit wire
//! contract) and [`Transport::Socket`] (length-prefixed protobuf frames on
//! one Unix stream connection per lane, binary payloads as raw segments:
//! several times less overhead per call, the crate's own worker only).
//!
//! ## Errors
//!
//! Every failure is one variant of [`Error`], which says what happened and
//! what to do; [`Error::kind`] gives the variant as an [`ErrorKind`], for
//! matching, counting and logging without strings.
//!
//! ## Several pools from a file
//!
//! A TOML file can describe named pools with every builder option
//! ([`config`]); [`PoolSet`] starts them and routes calls by name:
//!
//! ```no_run
//! # use serde_json::json;
//! let set = snakepit::PoolSet::from_config_file("snakepit.toml")?;
//! let sum = set.pool("compute")?.execute_blocking("add", json!({"a": 1, "b": 2}))?;
//! # Ok::<(), snakepit::Error>(())
//! ```
//!
//! The `snakepit` command runs the same file from a shell (`snakepit call`,
//! `snakepit tools`) and checks the Python environment (`snakepit doctor`,
//! whose checks are in [`doctor`]).
//!
//! ## The Python side
//!
//! An adapter is a class deriving `snakepit_bridge.BaseAdapter` whose tools
//! are methods marked `@tool`; a call's JSON object becomes the keyword
//! arguments. The worker's Python files ship inside this crate and are
//! written to a cache directory at run time; the interpreter needs the
//! packages `grpcio` and `protobuf` (`python3 -m pip install grpcio
//! protobuf`).
//!
//! A Python tool can call back into the program: register Rust closures
//! with [`PoolBuilder::host_tool`] and call them from Python with
//! `self.session_context.call_host_tool("name", **kwargs)`.

#![warn(missing_docs)]

mod block_on;
mod builder;
mod call;
pub mod config;
mod deadline;
mod dispatcher;
pub mod doctor;
mod error;
pub mod events;
#[cfg(test)]
mod fakes;
mod host_server;
mod host_tool;
mod interrupt;
mod launcher;
#[cfg(test)]
mod lifecycle_tests;
#[cfg(feature = "metrics")]
pub mod metrics;
mod options;
mod panics;
mod pool;
mod pool_set;
mod pool_token;
mod protocol;
mod python;
mod remote;
mod session;
mod shared;
mod slots;
mod socket_dir;
mod stats;
mod stream;
mod supervisor;
pub mod telemetry;
mod tools;
mod transport;
mod work;
mod worker;

pub use builder::PoolBuilder;
pub use call::{new_correlation_id, Affinity, CallOptions, Reply, CORRELATION_HEADER};
pub use deadline::MAX_DURATION;
pub use error::{Error, ErrorKind, Exit};
pub use host_server::{HostSession, RegisteredTool};
pub use host_tool::{HostArgs, HostOutput};
pub use options::{Profile, Transport};
pub use pool::Pool;
pub use pool_set::PoolSet;
pub use remote::{Remote, Tls};
pub use session::Session;
pub use stats::{PoolStats, Recycles, WorkerState, WorkerStats};
pub use stream::{Chunk, Stream};
pub use tools::{ParamSpec, ToolSpec};

// The handles are shared across threads: keep them so, at compile time.
const _: fn() = || {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Pool>();
    send_sync::<PoolSet>();
    send_sync::<Session>();
    send_sync::<Error>();
    send_sync::<Reply>();
    send_sync::<PoolStats>();
    fn send<T: Send>() {}
    send::<Stream>();
    send::<PoolBuilder>();
};
