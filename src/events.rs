//! The event hook: [`HandleEvent`] receives what happens in the pool
//! (workers starting, becoming ready, exiting, being recycled; calls
//! finishing, timing out in the queue, being refused). The default,
//! [`LogEvents`], writes each event through the `log` crate;
//! [`NopEvents`] drops them.
//!
//! Hooks run on the pool's own threads (a worker's thread or a lane), so
//! they must be quick and must not call back into the pool and block. A
//! hook that panics is caught and logged (at `error`); the pool goes on as
//! if the hook had returned.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::error::{ErrorKind, Exit};

#[cfg(feature = "metrics")]
pub(crate) mod record;

/// Why a worker process was replaced on purpose.
///
/// ```
/// use snakepit::events::RecycleReason;
///
/// assert_eq!(RecycleReason::MaxRequests.to_string(), "max requests");
/// assert_eq!(RecycleReason::Memory.to_string(), "memory");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RecycleReason {
    /// It served `max_requests` calls (plus its jitter).
    MaxRequests,
    /// It lived `max_lifetime` (plus its jitter).
    MaxLifetime,
    /// Its resident memory passed `max_memory`.
    Memory,
    /// [`Pool::recycle_worker`](crate::Pool::recycle_worker) asked for it.
    Manual,
    /// Its Python threads are all stuck in calls that ran past their
    /// timeout (Python cannot stop a running function), so it could serve
    /// nothing more. Thread profile, or the process profile with
    /// `kill_hung_workers(false)`.
    StuckThreads,
}

impl fmt::Display for RecycleReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RecycleReason::MaxRequests => "max requests",
            RecycleReason::MaxLifetime => "max lifetime",
            RecycleReason::Memory => "memory",
            RecycleReason::Manual => "manual",
            RecycleReason::StuckThreads => "stuck threads",
        })
    }
}

/// Why a worker process ended.
///
/// ```
/// use std::os::unix::process::ExitStatusExt;
/// use std::process::ExitStatus;
///
/// use snakepit::events::{ExitReason, RecycleReason};
/// use snakepit::Exit;
///
/// /// Whether an exit deserves a look at the worker's logs.
/// fn unexpected(reason: &ExitReason) -> bool {
///     matches!(reason, ExitReason::Crashed(_) | ExitReason::Hung | ExitReason::Unhealthy)
/// }
///
/// let killed = ExitReason::Crashed(Exit::from(ExitStatus::from_raw(9)));
/// assert!(unexpected(&killed));
/// assert_eq!(killed.to_string(), "crashed (killed by signal 9 (SIGKILL))");
///
/// let recycled = ExitReason::Recycled(RecycleReason::MaxLifetime);
/// assert!(!unexpected(&recycled));
/// assert_eq!(recycled.to_string(), "recycled (max lifetime)");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ExitReason {
    /// It died on its own (crash, signal, OOM kill, `os._exit`).
    Crashed(Exit),
    /// It was replaced on purpose, after draining.
    Recycled(RecycleReason),
    /// A process-profile call ran past its timeout; it was killed.
    Hung,
    /// It did not answer a health check in time, or garbled a reply on the
    /// socket transport; it was killed.
    Unhealthy,
    /// The pool shut down.
    Shutdown,
    /// The worker's own thread in the pool panicked (a bug: please report
    /// it); the process was killed and a new one starts after the backoff.
    Internal,
    /// A remote endpoint vanished from discovery, or said it is stopping
    /// (SIGTERM): it was drained, and its slot waits for an endpoint.
    Withdrawn,
}

impl fmt::Display for ExitReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExitReason::Crashed(exit) => write!(f, "crashed ({exit})"),
            ExitReason::Recycled(reason) => write!(f, "recycled ({reason})"),
            ExitReason::Hung => f.write_str("killed: stuck in a call past its timeout"),
            ExitReason::Unhealthy => f.write_str("killed: failed a health check"),
            ExitReason::Shutdown => f.write_str("stopped: pool shut down"),
            ExitReason::Internal => f.write_str("killed: the pool's thread for it panicked"),
            ExitReason::Withdrawn => f.write_str("withdrawn: the endpoint left"),
        }
    }
}

/// A worker's process was launched.
///
/// ```
/// use std::collections::HashMap;
/// use std::sync::Mutex;
///
/// use snakepit::events::{HandleEvent, WorkerExited, WorkerStarted};
///
/// /// The live worker processes by worker, for an outside monitor.
/// #[derive(Debug, Default)]
/// struct LivePids(Mutex<HashMap<String, u32>>);
///
/// impl HandleEvent for LivePids {
///     fn worker_started(&self, event: &WorkerStarted) {
///         self.0.lock().unwrap().insert(event.worker.clone(), event.pid);
///     }
///     fn worker_exited(&self, event: &WorkerExited) {
///         let mut live = self.0.lock().unwrap();
///         if live.get(&event.worker) == Some(&event.pid) {
///             live.remove(&event.worker);
///         }
///     }
/// }
///
/// let builder = snakepit::Pool::builder().event_handler(LivePids::default());
/// # let _ = builder;
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct WorkerStarted {
    /// The worker, e.g. `"worker-0"`.
    pub worker: String,
    /// The new process (0 for a remote endpoint).
    pub pid: u32,
    /// The remote endpoint (`ip:port`) it is, for a remote pool; `None`
    /// for a local process (which has its pid).
    pub endpoint: Option<String>,
}

/// A worker's process is ready and takes calls.
///
/// ```
/// use std::sync::Mutex;
/// use std::time::Duration;
///
/// use snakepit::events::{HandleEvent, WorkerReady};
///
/// /// The slowest start-up seen, to choose a `startup_timeout` with margin.
/// #[derive(Debug, Default)]
/// struct SlowestStart(Mutex<Duration>);
///
/// impl HandleEvent for SlowestStart {
///     fn worker_ready(&self, event: &WorkerReady) {
///         let mut slowest = self.0.lock().unwrap();
///         *slowest = (*slowest).max(event.startup);
///     }
/// }
///
/// let builder = snakepit::Pool::builder().event_handler(SlowestStart::default());
/// # let _ = builder;
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct WorkerReady {
    /// The worker.
    pub worker: String,
    /// The process (0 for a remote endpoint).
    pub pid: u32,
    /// The remote endpoint (`ip:port`) it is, for a remote pool; `None`
    /// for a local process (which has its pid).
    pub endpoint: Option<String>,
    /// From launch to ready.
    pub startup: Duration,
}

/// A worker's process ended. See [`HandleEvent`] for a handler that counts
/// crashes, and [`WorkerStarted`] for one that tracks live processes.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct WorkerExited {
    /// The worker.
    pub worker: String,
    /// The process that ended (0 for a remote endpoint).
    pub pid: u32,
    /// The remote endpoint (`ip:port`) it is, for a remote pool; `None`
    /// for a local process (which has its pid).
    pub endpoint: Option<String>,
    /// Why.
    pub reason: ExitReason,
}

/// A worker's process is being replaced on purpose (it drains first).
///
/// ```
/// use std::collections::HashMap;
/// use std::sync::Mutex;
///
/// use snakepit::events::{HandleEvent, RecycleReason, WorkerRecycled};
///
/// /// Recycles by worker and reason: one worker recycled for memory far
/// /// more often than the others points at the inputs it gets.
/// #[derive(Debug, Default)]
/// struct RecycleLog(Mutex<HashMap<(String, RecycleReason), u64>>);
///
/// impl HandleEvent for RecycleLog {
///     fn worker_recycled(&self, event: &WorkerRecycled) {
///         let key = (event.worker.clone(), event.reason);
///         *self.0.lock().unwrap().entry(key).or_default() += 1;
///     }
/// }
///
/// let builder = snakepit::Pool::builder().event_handler(RecycleLog::default());
/// # let _ = builder;
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct WorkerRecycled {
    /// The worker.
    pub worker: String,
    /// The process being replaced.
    pub pid: u32,
    /// Why.
    pub reason: RecycleReason,
}

/// A call ended, successfully or not.
///
/// ```
/// use std::collections::HashMap;
/// use std::sync::Mutex;
///
/// use snakepit::events::{CallFinished, HandleEvent};
/// use snakepit::ErrorKind;
///
/// /// Failed calls by kind, for a metrics endpoint.
/// #[derive(Debug, Default)]
/// struct FailuresByKind(Mutex<HashMap<ErrorKind, u64>>);
///
/// impl HandleEvent for FailuresByKind {
///     fn call_finished(&self, event: &CallFinished) {
///         if let Err(kind) = event.outcome {
///             *self.0.lock().unwrap().entry(kind).or_default() += 1;
///         }
///     }
/// }
///
/// let builder = snakepit::Pool::builder().event_handler(FailuresByKind::default());
/// # let _ = builder;
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct CallFinished {
    /// The tool called.
    pub tool: String,
    /// The worker it ran on.
    pub worker: String,
    /// From entering the pool to the reply.
    pub duration: Duration,
    /// `Ok(())`, or the kind of error the call ended with.
    pub outcome: Result<(), ErrorKind>,
}

/// A call gave up waiting for a free worker.
///
/// ```
/// use std::sync::atomic::{AtomicU64, Ordering};
///
/// use snakepit::events::{HandleEvent, QueueTimedOut, Saturated};
///
/// /// Back-pressure: calls that found no worker in time, or no room.
/// #[derive(Debug, Default)]
/// struct Backpressure {
///     timed_out: AtomicU64,
///     refused: AtomicU64,
/// }
///
/// impl HandleEvent for Backpressure {
///     fn queue_timeout(&self, event: &QueueTimedOut) {
///         self.timed_out.fetch_add(1, Ordering::Relaxed);
///         log::warn!("{} waited {:?} for a worker", event.tool, event.waited);
///     }
///     fn saturated(&self, event: &Saturated) {
///         self.refused.fetch_add(1, Ordering::Relaxed);
///         log::warn!("{} refused: {} calls already queued", event.tool, event.queue_size);
///     }
/// }
///
/// let builder = snakepit::Pool::builder().event_handler(Backpressure::default());
/// # let _ = builder;
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct QueueTimedOut {
    /// The tool called.
    pub tool: String,
    /// How long it waited.
    pub waited: Duration,
}

/// A call was refused because the queue was full. See [`QueueTimedOut`]
/// for a handler of both.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Saturated {
    /// The tool called.
    pub tool: String,
    /// The queue capacity.
    pub queue_size: usize,
}

/// Receives the pool's events. Every method has a do-nothing default, so an
/// implementation overrides only what it needs.
///
/// ```
/// use snakepit::events::{HandleEvent, WorkerExited};
///
/// #[derive(Debug)]
/// struct CountCrashes(std::sync::atomic::AtomicUsize);
///
/// impl HandleEvent for CountCrashes {
///     fn worker_exited(&self, event: &WorkerExited) {
///         if matches!(event.reason, snakepit::events::ExitReason::Crashed(_)) {
///             self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
///         }
///     }
/// }
/// ```
pub trait HandleEvent: fmt::Debug + Send + Sync + 'static {
    /// A worker's process was launched.
    fn worker_started(&self, _event: &WorkerStarted) {}
    /// A worker's process became ready.
    fn worker_ready(&self, _event: &WorkerReady) {}
    /// A worker's process ended.
    fn worker_exited(&self, _event: &WorkerExited) {}
    /// A worker's process is being recycled.
    fn worker_recycled(&self, _event: &WorkerRecycled) {}
    /// A call finished.
    fn call_finished(&self, _event: &CallFinished) {}
    /// A call timed out in the queue.
    fn queue_timeout(&self, _event: &QueueTimedOut) {}
    /// A call was refused: queue full.
    fn saturated(&self, _event: &Saturated) {}
    /// A worker's tool emitted a telemetry event (see
    /// [`crate::telemetry`]). Called on the worker's telemetry thread, in
    /// the order the tool emitted them; a slow handler makes that worker's
    /// buffer drop its oldest events, never slows a tool. Once
    /// [`Pool::shutdown`](crate::Pool::shutdown) has returned, it is not
    /// called again.
    fn telemetry(&self, _event: &crate::telemetry::TelemetryEvent) {}
}

/// Drops every event.
///
/// ```
/// // No event log, e.g. for a program whose stderr is its output.
/// let builder = snakepit::Pool::builder().event_handler(snakepit::events::NopEvents);
/// # let _ = builder;
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct NopEvents;

impl HandleEvent for NopEvents {}

/// Logs every event through `log` (target `snakepit::events`): lifecycle
/// at `info`, crashes at `warn`, calls at `debug`. The pool's default.
///
/// Nothing shows until the program installs a logger (with `env_logger`,
/// `RUST_LOG=snakepit::events=debug` shows every call too). Setting it is
/// only needed to go back to it after another handler:
///
/// ```
/// let builder = snakepit::Pool::builder().event_handler(snakepit::events::LogEvents);
/// # let _ = builder;
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct LogEvents;

const TARGET: &str = "snakepit::events";

/// How the log names a process: `pid 4242`, or `endpoint 10.0.0.5:50051`.
fn process_name(pid: u32, endpoint: Option<&str>) -> String {
    match endpoint {
        Some(endpoint) => format!("endpoint {endpoint}"),
        None => format!("pid {pid}"),
    }
}

impl HandleEvent for LogEvents {
    fn worker_started(&self, e: &WorkerStarted) {
        let what = process_name(e.pid, e.endpoint.as_deref());
        log::info!(target: TARGET, "{} started ({what})", e.worker);
    }
    fn worker_ready(&self, e: &WorkerReady) {
        let what = process_name(e.pid, e.endpoint.as_deref());
        log::info!(target: TARGET, "{} ready ({what}) in {:?}", e.worker, e.startup);
    }
    fn worker_exited(&self, e: &WorkerExited) {
        let what = process_name(e.pid, e.endpoint.as_deref());
        match e.reason {
            ExitReason::Crashed(_)
            | ExitReason::Hung
            | ExitReason::Unhealthy
            | ExitReason::Internal => {
                log::warn!(target: TARGET, "{} ({what}) {}", e.worker, e.reason)
            }
            _ => log::info!(target: TARGET, "{} ({what}) {}", e.worker, e.reason),
        }
    }
    fn worker_recycled(&self, e: &WorkerRecycled) {
        log::info!(target: TARGET, "{} (pid {}) recycling: {}", e.worker, e.pid, e.reason);
    }
    fn call_finished(&self, e: &CallFinished) {
        log::debug!(
            target: TARGET,
            "{} on {} in {:?}: {}",
            e.tool,
            e.worker,
            e.duration,
            e.outcome.err().map_or("ok", ErrorKind::as_str)
        );
    }
    fn queue_timeout(&self, e: &QueueTimedOut) {
        log::warn!(target: TARGET, "{} waited {:?} in the queue and was dropped", e.tool, e.waited);
    }
    fn saturated(&self, e: &Saturated) {
        log::warn!(target: TARGET, "{} refused: queue of {} full", e.tool, e.queue_size);
    }
}

/// The user's hook as the pool calls it: a panic in a handler is caught and
/// logged, so it never takes down the pool thread that reported the event.
#[derive(Debug)]
pub(crate) struct Guarded(pub Arc<dyn HandleEvent>);

impl Guarded {
    fn run(&self, event: &str, f: impl FnOnce(&dyn HandleEvent)) {
        if let Err(message) = crate::panics::catch(|| f(&*self.0)) {
            log::error!("the event handler panicked on `{event}` (ignored): {message}");
        }
    }
}

impl HandleEvent for Guarded {
    fn worker_started(&self, e: &WorkerStarted) {
        self.run("worker_started", |h| h.worker_started(e));
    }
    fn worker_ready(&self, e: &WorkerReady) {
        self.run("worker_ready", |h| h.worker_ready(e));
    }
    fn worker_exited(&self, e: &WorkerExited) {
        self.run("worker_exited", |h| h.worker_exited(e));
    }
    fn worker_recycled(&self, e: &WorkerRecycled) {
        self.run("worker_recycled", |h| h.worker_recycled(e));
    }
    fn call_finished(&self, e: &CallFinished) {
        #[cfg(feature = "metrics")]
        record::call_finished(e);
        self.run("call_finished", |h| h.call_finished(e));
    }
    fn queue_timeout(&self, e: &QueueTimedOut) {
        self.run("queue_timeout", |h| h.queue_timeout(e));
    }
    fn saturated(&self, e: &Saturated) {
        self.run("saturated", |h| h.saturated(e));
    }
    fn telemetry(&self, e: &crate::telemetry::TelemetryEvent) {
        #[cfg(feature = "metrics")]
        record::telemetry(e);
        self.run("telemetry", |h| h.telemetry(e));
    }
}
