//! The transport seam: what a lane needs from "a connection to one worker
//! process", and how one is made from the address a launcher reported.
//!
//! Lanes, the worker's health checks and [`Pool::tools`](crate::Pool::tools)
//! talk to a process only through [`Transport`]; the worker makes one with
//! a [`Connect`]. Two implementations: gRPC ([`grpc`], the Snakepit wire)
//! and length-prefixed frames on Unix stream connections ([`socket`], with
//! the framing in [`frame`]); another (remote TLS) is one more impl of
//! these two traits. A
//! transport reports failures as a [`TransportError`], which
//! [`TransportError::into_error`] turns into the caller's [`Error`]: the
//! one place that mapping lives.

pub(crate) mod credentials;
pub(crate) mod frame;
pub(crate) mod grpc;
pub(crate) mod socket;
pub(crate) mod socket_telemetry;

use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::Duration;

use crate::error::Error;
use crate::protocol::messages::{
    ExecuteToolRequest, ExecuteToolResponse, InitializeSessionResponse, TelemetryControl,
    TelemetryEvent, ToolChunk,
};
use crate::protocol::value;
use crate::stream::StreamControl;

/// A connection to one worker process. Shared by the worker's lanes, so
/// every method takes `&self` and several calls may run at once.
pub(crate) trait Transport: Send + Sync {
    /// Runs one tool call; the worker is given `timeout` as its deadline.
    /// With [`Buffers::Recycle`], the transport may take `req`'s binary
    /// arguments once they are sent, to receive the result into their
    /// memory (see [`Buffers`]); with [`Buffers::Keep`], `req` is left as
    /// it was.
    fn execute(
        &self,
        req: &mut ExecuteToolRequest,
        timeout: Duration,
        buffers: Buffers,
    ) -> Result<ExecuteToolResponse, TransportError>;

    /// Runs a streaming tool call within `timeout`, handing each data chunk
    /// to `on_chunk` in order. Ends after the final chunk, when `on_chunk`
    /// breaks, or when `control` is cancelled (the last two cancel the call
    /// on the worker, and are not errors). A tool that fails mid-stream
    /// gives [`TransportError::ToolFailed`].
    fn execute_stream(
        &self,
        req: &ExecuteToolRequest,
        timeout: Duration,
        control: &StreamControl,
        on_chunk: &mut dyn FnMut(ToolChunk) -> ControlFlow<()>,
    ) -> Result<(), TransportError>;

    /// Tells the process to free a session's state.
    fn cleanup_session(&self, session: &str, timeout: Duration) -> Result<(), TransportError>;

    /// Asks the process to describe its adapter (its tools), outside any
    /// session.
    fn describe(&self, timeout: Duration) -> Result<InitializeSessionResponse, TransportError>;

    /// One round trip. With `wait_for_ready`, a connection that is not up
    /// yet is waited for (at start-up) instead of failing at once.
    fn ping(
        &self,
        from: &str,
        timeout: Duration,
        wait_for_ready: bool,
    ) -> Result<PingInfo, TransportError>;

    /// Opens the process's telemetry stream (see [`crate::telemetry`]). A
    /// transport without one says so with an error.
    fn telemetry(&self) -> Result<Arc<dyn TelemetryFeed>, TransportError> {
        Err(TransportError::Failed {
            code: "UNIMPLEMENTED".to_owned(),
            message: "this transport carries no telemetry".to_owned(),
        })
    }
}

/// Whether a call's binary arguments must survive the call.
///
/// A large binary result received into fresh memory pays a page fault per
/// page on first touch (on this project's VMs, several times what copying
/// into memory already touched costs: `examples/bench_python_worker.py`
/// measures both). The call's own binary arguments are memory the caller
/// already touched, and they are dropped once sent: receiving the result
/// into them instead costs no fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Buffers {
    /// The request may be sent again (an idempotent call that is retried
    /// after a crash): its arguments stay as they are.
    Keep,
    /// The request is not sent again: once it is on the wire, its binary
    /// arguments' memory may hold the result. (A transport that took them
    /// must not then report the call as never run: it could not be placed
    /// again whole.)
    Recycle,
}

/// What a worker says of itself in answer to a ping (a Snakepit worker
/// says nothing: zeros and empty strings).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct PingInfo {
    /// Calls it runs at once (0: not reported).
    pub capacity: usize,
    /// The adapter class it serves.
    pub adapter: String,
}

impl From<crate::protocol::messages::PingResponse> for PingInfo {
    fn from(pong: crate::protocol::messages::PingResponse) -> Self {
        PingInfo {
            capacity: usize::try_from(pong.capacity).unwrap_or(0),
            adapter: pong.adapter,
        }
    }
}

/// One process's open telemetry stream: events in, controls out. Read by
/// one thread; controls may be sent from any.
pub(crate) trait TelemetryFeed: Send + Sync {
    /// The next event, waiting at most `wait` for it.
    fn next(&self, wait: Duration) -> FeedNext;

    /// Sends one control message, waiting at most `timeout` for it to go.
    fn send(&self, control: TelemetryControl, timeout: Duration) -> Result<(), TransportError>;

    /// Ends the stream.
    fn cancel(&self);
}

/// What [`TelemetryFeed::next`] found.
pub(crate) enum FeedNext {
    /// An event.
    Event(TelemetryEvent),
    /// Nothing yet.
    Idle,
    /// The stream is over (the process ended, or it has no telemetry).
    Ended(TransportError),
}

/// Makes a [`Transport`] from the address a launcher reported.
pub(crate) trait Connect: Send + Sync {
    /// A transport to the process at `address`; it may connect lazily (the
    /// worker pings it before use).
    fn connect(&self, address: &str) -> Result<Arc<dyn Transport>, String>;
}

/// Why a call over a transport failed, in terms no transport owns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TransportError {
    /// The call ran past its deadline.
    DeadlineExceeded,
    /// The worker refused to send a result past the message size limit
    /// (our own arguments are checked before sending).
    ResourceExhausted,
    /// A streaming tool raised: the worker's JSON error payload.
    ToolFailed(String),
    /// The worker broke the protocol: garbage, a frame too large or cut
    /// short, a reply to another call. The worker is at fault and is
    /// replaced.
    BadPeer(String),
    /// A remote worker is stopping (it was sent SIGTERM) and refused the
    /// call without running it: place it elsewhere, and stop using the
    /// endpoint.
    Draining(String),
    /// The connection to a remote worker was down when the call was to go
    /// out, and could not be made again: the call never ran.
    NotConnected(String),
    /// Anything else: the connection broke, the process died, the worker
    /// answered with an unexpected status.
    Failed {
        /// A short code, e.g. a gRPC status name.
        code: String,
        /// What the transport said.
        message: String,
    },
}

/// What a [`TransportError`] is reported against.
pub(crate) struct ErrorContext<'a> {
    /// The tool called.
    pub tool: &'a str,
    /// The worker called.
    pub worker: &'a str,
    /// The call's timeout.
    pub timeout: Duration,
    /// The pool's message size limit.
    pub max_message_bytes: usize,
}

impl TransportError {
    /// Whether the call certainly did not run on the worker (a remote one
    /// refused it while stopping, or it never left the host), so it may be
    /// placed elsewhere whatever its retries.
    pub fn never_ran(&self) -> bool {
        matches!(
            self,
            TransportError::Draining(_) | TransportError::NotConnected(_)
        )
    }

    /// The error the caller gets. (Whether a failure was really the
    /// process dying is the lane's question: it asks the launcher.)
    pub fn into_error(self, cx: &ErrorContext<'_>) -> Error {
        match self {
            TransportError::DeadlineExceeded => Error::Timeout {
                tool: cx.tool.to_owned(),
                timeout: cx.timeout,
            },
            TransportError::ResourceExhausted => Error::PayloadTooLarge {
                what: "result",
                size: None,
                limit: cx.max_message_bytes as u64,
            },
            TransportError::ToolFailed(payload) => value::decode_error(cx.tool, &payload),
            TransportError::BadPeer(message) => Error::Transport {
                worker: cx.worker.to_owned(),
                code: "BAD_PEER".to_owned(),
                message,
            },
            TransportError::Draining(message) => Error::Transport {
                worker: cx.worker.to_owned(),
                code: "DRAINING".to_owned(),
                message,
            },
            TransportError::NotConnected(message) => Error::Transport {
                worker: cx.worker.to_owned(),
                code: "UNAVAILABLE".to_owned(),
                message,
            },
            TransportError::Failed { code, message } => Error::Transport {
                worker: cx.worker.to_owned(),
                code,
                message,
            },
        }
    }
}

impl std::fmt::Display for TransportError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TransportError::DeadlineExceeded => f.write_str("deadline exceeded"),
            TransportError::ResourceExhausted => f.write_str("message too large"),
            TransportError::ToolFailed(payload) => write!(f, "tool failed: {payload}"),
            TransportError::BadPeer(message) => write!(f, "bad peer: {message}"),
            TransportError::Draining(message) => f.write_str(message),
            TransportError::NotConnected(message) => write!(f, "not connected: {message}"),
            TransportError::Failed { code, message } => write!(f, "{code}: {message}"),
        }
    }
}
