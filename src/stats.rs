//! What the pool has done and is doing: [`PoolStats`], the snapshot a user
//! prints, and the counters behind it.

use std::sync::atomic::{
    AtomicBool, AtomicU32, AtomicU64, AtomicU8, AtomicUsize, Ordering::Relaxed,
};

use crate::events::RecycleReason;

/// A snapshot of the pool, from [`Pool::stats`](crate::Pool::stats).
///
/// The numbers are read one by one while the pool runs, so under load they
/// may be a few calls apart from each other.
///
/// ```
/// use snakepit::{Pool, PoolStats};
///
/// /// A one-line summary for a status page.
/// fn summary(stats: &PoolStats) -> String {
///     format!(
///         "{}/{} workers ready{}, {} running, {} queued; {} ok, {} failed ({} timed out); {} recycled",
///         stats.ready_workers,
///         stats.workers,
///         if stats.degraded { " (degraded)" } else { "" },
///         stats.load,
///         stats.queued,
///         stats.succeeded,
///         stats.failed,
///         stats.timeouts,
///         stats.recycles.total(),
///     )
/// }
///
/// fn log_status(pool: &Pool) {
///     log::info!("{}", summary(&pool.stats()));
/// }
/// # let _ = log_status;
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PoolStats {
    /// Configured number of workers.
    pub workers: usize,
    /// Workers ready to take calls now.
    pub ready_workers: usize,
    /// Calls the ready workers can run at once (threads stuck in timed-out
    /// calls excluded).
    pub capacity: usize,
    /// Calls running now.
    pub load: usize,
    /// Calls waiting for a free worker now.
    pub queued: usize,
    /// Calls that returned a value.
    pub succeeded: u64,
    /// Calls that ended in an error of any kind (including the ones below).
    pub failed: u64,
    /// Calls that ran past their call timeout.
    pub timeouts: u64,
    /// Calls that waited past their queue timeout.
    pub queue_timeouts: u64,
    /// Calls refused because the queue was full.
    pub saturated: u64,
    /// Worker processes that died unexpectedly.
    pub crashes: u64,
    /// Worker processes started to replace another.
    pub restarts: u64,
    /// Hung process-profile workers killed after a call timeout.
    pub hung_killed: u64,
    /// Workers killed for failing a health check.
    pub unhealthy_killed: u64,
    /// Workers replaced on purpose, by reason.
    pub recycles: Recycles,
    /// Telemetry events received from the workers' tools.
    pub telemetry_events: u64,
    /// Telemetry events the workers dropped because their buffer was full
    /// (the host read them slower than the tools emitted them).
    pub telemetry_dropped: u64,
    /// True while fewer workers are ready than configured (starting,
    /// restarting after a crash, or failing to start). In a remote pool:
    /// while an endpoint found is not serving, or none is serving at all
    /// (slots without an endpoint are [`WorkerState::Unbound`], not
    /// missing).
    pub degraded: bool,
    /// One entry per worker, in slot order.
    pub per_worker: Vec<WorkerStats>,
}

impl PoolStats {
    /// The pids of the worker processes running at the snapshot, in slot
    /// order (for monitoring them, or signalling them in a test).
    pub fn pids(&self) -> Vec<u32> {
        self.per_worker.iter().filter_map(|w| w.pid).collect()
    }
}

/// One worker in a [`PoolStats`] snapshot.
///
/// ```
/// use snakepit::{PoolStats, WorkerState};
///
/// /// The workers that cannot take calls now, and why.
/// fn not_ready(stats: &PoolStats) -> Vec<(&str, WorkerState)> {
///     stats
///         .per_worker
///         .iter()
///         .filter(|w| w.state != WorkerState::Ready)
///         .map(|w| (w.id.as_str(), w.state))
///         .collect()
/// }
///
/// /// The busiest worker by calls served, e.g. to compare with the others.
/// fn busiest(stats: &PoolStats) -> Option<(&str, u64)> {
///     stats.per_worker.iter().map(|w| (w.id.as_str(), w.calls)).max_by_key(|&(_, calls)| calls)
/// }
/// # let _ = (not_ready, busiest);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct WorkerStats {
    /// The worker's id, e.g. `"worker-0"`, or `"compute/worker-0"` in a
    /// pool named `compute`.
    pub id: String,
    /// The current Python process, when one is running.
    pub pid: Option<u32>,
    /// For a remote pool, the endpoint (`ip:port`) the slot serves now.
    pub endpoint: Option<String>,
    /// Where the worker is in its life.
    pub state: WorkerState,
    /// Calls it may run at once now (0 unless ready). Never counts a
    /// Python thread stuck in a call past its timeout: see
    /// [`stuck_threads`](WorkerStats::stuck_threads).
    pub capacity: usize,
    /// Calls it is running now.
    pub load: usize,
    /// Calls it has finished, over all its processes.
    pub calls: u64,
    /// Processes it has started after the first.
    pub restarts: u64,
    /// Python threads of the current process still running a call that
    /// timed out (Python cannot stop a running function). Each is taken out
    /// of `capacity`; when none is left, the worker is recycled
    /// ([`RecycleReason::StuckThreads`]).
    pub stuck_threads: usize,
}

/// Where a worker is in its life.
///
/// More states may come, so a `match` on it needs a catch-all arm:
///
/// ```
/// use snakepit::WorkerState;
///
/// fn label(state: WorkerState) -> &'static str {
///     match state {
///         WorkerState::Ready => "up",
///         WorkerState::Starting | WorkerState::BackingOff => "coming up",
///         WorkerState::Draining => "going away",
///         _ => "down",
///     }
/// }
///
/// assert_eq!(label(WorkerState::BackingOff), "coming up");
/// assert_eq!(label(WorkerState::Stopped), "down");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum WorkerState {
    /// Its process is starting and not yet ready.
    Starting,
    /// Taking calls.
    Ready,
    /// Taking no new calls, finishing those in flight.
    Draining,
    /// Waiting before the next start after a failure.
    BackingOff,
    /// Stopped for good (pool shut down).
    Stopped,
    /// A slot of a remote pool with no endpoint: waiting for discovery to
    /// find one. Not a fault: a pool has `max_endpoints` slots and uses as
    /// many as there are endpoints.
    Unbound,
}

impl WorkerState {
    fn from_u8(v: u8) -> Self {
        match v {
            0 => WorkerState::Starting,
            1 => WorkerState::Ready,
            2 => WorkerState::Draining,
            3 => WorkerState::BackingOff,
            5 => WorkerState::Unbound,
            _ => WorkerState::Stopped,
        }
    }

    fn as_u8(self) -> u8 {
        match self {
            WorkerState::Starting => 0,
            WorkerState::Ready => 1,
            WorkerState::Draining => 2,
            WorkerState::BackingOff => 3,
            WorkerState::Stopped => 4,
            WorkerState::Unbound => 5,
        }
    }
}

/// Pool-wide counters, bumped by callers, the dispatcher and the lanes.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub succeeded: AtomicU64,
    pub failed: AtomicU64,
    pub timeouts: AtomicU64,
    pub queue_timeouts: AtomicU64,
    pub saturated: AtomicU64,
    pub crashes: AtomicU64,
    pub restarts: AtomicU64,
    pub hung_killed: AtomicU64,
    pub unhealthy_killed: AtomicU64,
    pub recycled_max_requests: AtomicU64,
    pub recycled_max_lifetime: AtomicU64,
    pub recycled_memory: AtomicU64,
    pub recycled_manual: AtomicU64,
    pub recycled_stuck_threads: AtomicU64,
    pub telemetry_events: AtomicU64,
    pub telemetry_dropped: AtomicU64,
}

impl Counters {
    pub fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Relaxed);
    }

    pub fn count_recycle(&self, reason: RecycleReason) {
        Self::bump(match reason {
            RecycleReason::MaxRequests => &self.recycled_max_requests,
            RecycleReason::MaxLifetime => &self.recycled_max_lifetime,
            RecycleReason::Memory => &self.recycled_memory,
            RecycleReason::Manual => &self.recycled_manual,
            RecycleReason::StuckThreads => &self.recycled_stuck_threads,
        });
    }

    pub fn recycles(&self) -> Recycles {
        Recycles {
            max_requests: self.recycled_max_requests.load(Relaxed),
            max_lifetime: self.recycled_max_lifetime.load(Relaxed),
            memory: self.recycled_memory.load(Relaxed),
            manual: self.recycled_manual.load(Relaxed),
            stuck_threads: self.recycled_stuck_threads.load(Relaxed),
        }
    }
}

/// Recycles counted by reason, in a [`PoolStats`]. The counts only grow;
/// compare two snapshots for a rate.
///
/// ```
/// use snakepit::Recycles;
///
/// /// Recycles forced by memory since an earlier snapshot: a leak shows here.
/// fn memory_recycles_since(before: &Recycles, now: &Recycles) -> u64 {
///     now.memory - before.memory
/// }
///
/// let fresh = Recycles::default(); // what a new pool reports
/// assert_eq!(fresh.total(), 0);
/// assert_eq!(memory_recycles_since(&fresh, &fresh), 0);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Recycles {
    /// After `max_requests` calls.
    pub max_requests: u64,
    /// After `max_lifetime`.
    pub max_lifetime: u64,
    /// After passing `max_memory`.
    pub memory: u64,
    /// On request.
    pub manual: u64,
    /// Every Python thread stuck in a call past its timeout
    /// ([`RecycleReason::StuckThreads`]).
    pub stuck_threads: u64,
}

impl Recycles {
    /// All recycles, whatever the reason.
    pub fn total(&self) -> u64 {
        self.max_requests + self.max_lifetime + self.memory + self.manual + self.stuck_threads
    }
}

/// What the pool knows of one worker beyond its slot.
#[derive(Debug)]
pub(crate) struct WorkerInfo {
    pub id: String,
    pid: AtomicU32,
    endpoint: parking_lot::Mutex<Option<String>>,
    state: AtomicU8,
    failing: AtomicBool,
    pub calls: AtomicU64,
    pub restarts: AtomicU64,
    /// Threads of the current process stuck in timed-out calls.
    pub stuck: AtomicUsize,
}

impl WorkerInfo {
    /// Slot `index`'s worker, its id qualified by the pool's name if it
    /// has one (`compute/worker-0`).
    pub fn new(index: usize, pool: Option<&str>) -> Self {
        WorkerInfo {
            id: crate::options::worker_id(pool, index),
            pid: AtomicU32::new(0),
            endpoint: parking_lot::Mutex::new(None),
            state: AtomicU8::new(WorkerState::Starting.as_u8()),
            failing: AtomicBool::new(false),
            calls: AtomicU64::new(0),
            restarts: AtomicU64::new(0),
            stuck: AtomicUsize::new(0),
        }
    }

    pub fn set_state(&self, state: WorkerState) {
        self.state.store(state.as_u8(), Relaxed);
    }

    pub fn state(&self) -> WorkerState {
        WorkerState::from_u8(self.state.load(Relaxed))
    }

    /// Marks whether the worker's last start failed.
    pub fn set_failing(&self, failing: bool) {
        self.failing.store(failing, Relaxed);
    }

    pub fn is_failing(&self) -> bool {
        self.failing.load(Relaxed)
    }

    pub fn set_pid(&self, pid: Option<u32>) {
        self.pid.store(pid.unwrap_or(0), Relaxed);
    }

    pub fn pid(&self) -> Option<u32> {
        Some(self.pid.load(Relaxed)).filter(|&p| p != 0)
    }

    /// Records the remote endpoint the worker serves now.
    pub fn set_endpoint(&self, endpoint: Option<&str>) {
        *self.endpoint.lock() = endpoint.map(str::to_owned);
    }

    pub fn endpoint(&self) -> Option<String> {
        self.endpoint.lock().clone()
    }
}
