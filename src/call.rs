//! One call: the options a caller gives ([`CallOptions`]), the answer it
//! gets ([`Reply`]), and the request that travels from the caller through
//! the dispatcher to a worker lane.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;
use serde_json::Value;

use std::sync::Arc;

use crate::deadline::later;
use crate::error::Error;
use crate::protocol::messages::ExecuteToolRequest;
use crate::stream::{StreamControl, StreamEvent};

/// Per-call options for [`Pool::execute_blocking_with`](crate::Pool::execute_blocking_with).
///
/// Every option left unset takes the pool's default. The options are a
/// value to pass to a call (`#[must_use]`): building them does nothing.
/// A timeout above [`MAX_DURATION`](crate::MAX_DURATION) (100 years)
/// fails the call at once with [`Error::InvalidArgument`].
///
/// ```
/// use serde_json::json;
/// use snakepit::{CallOptions, Error, Pool, Reply};
/// use std::time::Duration;
///
/// /// Makes a thumbnail: quick or not at all, and safe to retry.
/// fn thumbnail(pool: &Pool, image: Vec<u8>) -> Result<Reply, Error> {
///     let opts = CallOptions::new()
///         .timeout(Duration::from_secs(5))
///         .queue_timeout(Duration::from_millis(200))
///         .idempotent(true) // retried on another worker if its worker dies
///         .binary("image", image); // a Python `bytes` argument
///     pool.execute_blocking_with("thumbnail", json!({"size": 64}), opts)
/// }
/// # let _ = thumbnail;
/// ```
///
/// Options built and never passed to a call are flagged by the compiler
/// (here denied, so this does not build):
///
/// ```compile_fail
/// #![deny(unused_must_use)]
/// snakepit::CallOptions::new().timeout(std::time::Duration::from_secs(5));
/// ```
#[derive(Debug, Clone, Default)]
#[must_use = "CallOptions take effect only when passed to a call"]
pub struct CallOptions {
    pub(crate) timeout: Option<Duration>,
    pub(crate) queue_timeout: Option<Duration>,
    pub(crate) binary: Vec<(String, Vec<u8>)>,
    pub(crate) crash_retries: u8,
    pub(crate) session: Option<String>,
    pub(crate) affinity: Option<Affinity>,
    pub(crate) correlation_id: Option<String>,
}

impl CallOptions {
    /// Options that all take the pool's defaults.
    pub fn new() -> Self {
        Self::default()
    }

    /// How long the call may run on a worker before it fails with
    /// [`Error::Timeout`]. The deadline is sent to the worker as the gRPC
    /// deadline. Default: the pool's `call_timeout`. A zero timeout fails
    /// the call at once with [`Error::InvalidArgument`].
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// How long the call may wait for a free worker before it fails with
    /// [`Error::QueueTimeout`] without running. Default: the pool's
    /// `queue_timeout`.
    pub fn queue_timeout(mut self, timeout: Duration) -> Self {
        self.queue_timeout = Some(timeout);
        self
    }

    /// Declares the call safe to run twice. If its worker dies during the
    /// call, it is retried once on another worker instead of failing with
    /// [`Error::WorkerCrashed`]. Default: false.
    pub fn idempotent(mut self, idempotent: bool) -> Self {
        self.crash_retries = u8::from(idempotent);
        self
    }

    /// For an idempotent call, how many times it is retried after worker
    /// crashes (each time on whichever worker is free) before it fails with
    /// [`Error::WorkerCrashed`]. `idempotent(true)` is `crash_retries(1)`.
    /// Default: 0.
    pub fn crash_retries(mut self, retries: u8) -> Self {
        self.crash_retries = retries;
        self
    }

    /// Runs the call in session `id`: calls of one session go to the same
    /// worker (see [`Affinity`]), where the adapter sees the id
    /// (`self.session_context.session_id`) and keeps per-session state.
    /// [`Pool::session`](crate::Pool::session) gives a handle that sets it
    /// on every call. Default: no session.
    pub fn session(mut self, id: impl Into<String>) -> Self {
        self.session = Some(id.into());
        self
    }

    /// How strictly a session call sticks to its worker. Default: the
    /// pool's `affinity` ([`Affinity::Hint`] unless set).
    pub fn affinity(mut self, affinity: Affinity) -> Self {
        self.affinity = Some(affinity);
        self
    }

    /// Tags the call with `id`, to follow it across the host and the
    /// worker. The worker sees it (`telemetry.get_correlation_id()` in a
    /// tool), its log lines and telemetry events during the call carry it,
    /// and it comes back in [`Reply::correlation_id`]. It travels in the
    /// request metadata under [`CORRELATION_HEADER`]. Default: a fresh,
    /// unique id per call (see [`new_correlation_id`]). An empty id, or
    /// one that is not printable ASCII, fails the call with
    /// [`Error::InvalidArgument`].
    pub fn correlation_id(mut self, id: impl Into<String>) -> Self {
        self.correlation_id = Some(id.into());
        self
    }

    /// Passes `bytes` to the tool as the keyword argument `name` (a Python
    /// `bytes`), raw, outside the JSON arguments. Repeatable, one argument
    /// per name. Default: none.
    pub fn binary(mut self, name: impl Into<String>, bytes: impl Into<Vec<u8>>) -> Self {
        self.binary.push((name.into(), bytes.into()));
        self
    }
}

/// How strictly a session's calls stick to the worker that holds the
/// session's state. Set for a pool with
/// [`PoolBuilder::affinity`](crate::PoolBuilder::affinity), or for one call
/// with [`CallOptions::affinity`].
///
/// ```
/// use snakepit::{Affinity, CallOptions};
///
/// assert_eq!(Affinity::default(), Affinity::Hint);
/// // This session's calls wait for its worker rather than run elsewhere.
/// let opts = CallOptions::new()
///     .session("user-42")
///     .affinity(Affinity::StrictQueue);
/// # let _ = opts;
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Affinity {
    /// Prefer the session's worker; when it is busy, run on another. When
    /// it has died or been recycled, the session moves to another worker
    /// (its Python-side state starts afresh there). The default.
    #[default]
    Hint,
    /// Always the session's worker: wait in the queue while it is busy.
    /// Fails with [`Error::SessionWorkerUnavailable`] once it is gone.
    StrictQueue,
    /// Always the session's worker, and fail at once with
    /// [`Error::WorkerBusy`] while it is busy. Fails with
    /// [`Error::SessionWorkerUnavailable`] once it is gone.
    StrictFailFast,
}

/// The answer to a successful call, from
/// [`Pool::execute_blocking_with`](crate::Pool::execute_blocking_with) and
/// [`Session::execute_blocking_with`](crate::Session::execute_blocking_with).
///
/// ```
/// use snakepit::Reply;
///
/// /// A log line for a slow call: where it ran and where its time went.
/// fn describe(tool: &str, reply: &Reply) -> String {
///     format!(
///         "{tool} on {} (pid {}): {:?}, of which {:?} queued",
///         reply.worker,
///         reply.metadata.get("pid").map_or("?", String::as_str),
///         reply.elapsed,
///         reply.queued,
///     )
/// }
/// # let _ = describe;
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Reply {
    /// The tool's return value as JSON (`null` when it returned bytes).
    pub value: Value,
    /// The bytes the tool returned, when it returned `bytes`.
    pub binary: Option<Vec<u8>>,
    /// The worker that ran the call, e.g. `"worker-1"`.
    pub worker: String,
    /// Time from the call entering the pool to the reply.
    pub elapsed: Duration,
    /// Time spent waiting for a free worker.
    pub queued: Duration,
    /// Metadata the worker attached to the response (e.g. its `pid`).
    pub metadata: HashMap<String, String>,
    /// The call's correlation id: the one given with
    /// [`CallOptions::correlation_id`], or the one generated for it.
    pub correlation_id: String,
}

/// The request metadata key (and gRPC header) that carries a call's
/// correlation id to the worker: Snakepit's name for it.
pub const CORRELATION_HEADER: &str = "x-snakepit-correlation-id";

/// Longest correlation id accepted, in bytes.
const MAX_CORRELATION_ID: usize = 256;

/// A fresh correlation id: 16 hex digits, unique within this process and
/// random across processes. What a call gets when it is given none.
///
/// ```
/// let (a, b) = (snakepit::new_correlation_id(), snakepit::new_correlation_id());
/// assert_eq!(a.len(), 16);
/// assert_ne!(a, b);
/// ```
pub fn new_correlation_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::OnceLock;
    static SEED: OnceLock<u64> = OnceLock::new();
    static NEXT: AtomicU64 = AtomicU64::new(0);
    // std's hasher keys are random per process.
    let seed = *SEED.get_or_init(|| {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u32(std::process::id());
        h.finish()
    });
    let n = seed.wrapping_add(NEXT.fetch_add(1, Ordering::Relaxed));
    // splitmix64's finaliser: a bijection, so distinct counters give
    // distinct ids.
    let mut z = n.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    format!("{:016x}", z ^ (z >> 31))
}

/// Checks a caller's correlation id: it travels as a gRPC header, so it
/// must be non-empty printable ASCII of bounded length.
pub(crate) fn check_correlation_id(id: &str) -> Result<(), Error> {
    let problem = if id.is_empty() {
        Some("a correlation id must not be empty".to_owned())
    } else if id.len() > MAX_CORRELATION_ID {
        Some(format!(
            "a correlation id is at most {MAX_CORRELATION_ID} bytes, got {}",
            id.len()
        ))
    } else if !id.bytes().all(|b| b.is_ascii_graphic() || b == b' ') {
        Some(format!(
            "a correlation id must be printable ASCII, got {id:?}"
        ))
    } else {
        None
    };
    match problem {
        Some(message) => Err(Error::InvalidArgument {
            argument: "correlation_id",
            message,
        }),
        None => Ok(()),
    }
}

/// Where the outcome of a call goes: a one-shot reply, or a stream of
/// chunks.
#[derive(Debug)]
pub(crate) enum Replier {
    Unary(Sender<Result<Reply, Error>>),
    Stream {
        events: Sender<StreamEvent>,
        control: Arc<StreamControl>,
    },
}

/// A call on its way to a worker.
#[derive(Debug)]
pub(crate) struct Request {
    pub tool: String,
    pub message: ExecuteToolRequest,
    pub timeout: Duration,
    pub queue_timeout: Duration,
    pub submitted: Instant,
    /// When it last entered the queue: at submission, or when handed back
    /// by a worker whose process went away before the call ran.
    pub queued_since: Instant,
    pub reply: Replier,
    /// The session the call belongs to, and how strictly it sticks to the
    /// session's worker.
    pub session: Option<(String, Affinity)>,
    /// Retries left after a worker crash (1 for idempotent calls).
    pub retries: u8,
}

impl Request {
    /// The moment the request gives up waiting for a worker.
    pub fn queue_deadline(&self) -> Instant {
        later(self.queued_since, self.queue_timeout)
    }

    /// Ends a call that worked: a unary call gets its reply, a stream its
    /// end. The caller may have gone (a dropped stream, a panicked caller
    /// thread), which is fine.
    pub fn succeed(self, reply: Option<Reply>) {
        match self.reply {
            Replier::Unary(tx) => {
                let reply = reply.expect("a unary call always has a reply");
                let _ = tx.send(Ok(reply));
            }
            Replier::Stream { events, .. } => {
                let _ = events.send(StreamEvent::End);
            }
        }
    }

    /// Fails the call (either kind) with `err`.
    pub fn fail(self, err: Error) {
        match self.reply {
            Replier::Unary(tx) => {
                let _ = tx.send(Err(err));
            }
            Replier::Stream { events, .. } => {
                let _ = events.send(StreamEvent::Failed(err));
            }
        }
    }
}
