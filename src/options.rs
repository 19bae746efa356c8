//! The pool's options as values: [`Profile`] and the resolved [`Config`]
//! a pool starts with, with the defaults. The bottom of the crate: the
//! builder, the configuration file and the CLI set these; the pool, the
//! dispatcher and the workers read them.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::call::Affinity;
use crate::events::{HandleEvent, LogEvents};
use crate::host_tool::HostTool;

/// How a worker process runs calls. More profiles may come, so a `match`
/// on it needs a catch-all arm.
///
/// ```
/// use snakepit::Profile;
///
/// assert_eq!(Profile::Process.capacity(), 1);
/// assert_eq!(Profile::Thread { threads: 8 }.capacity(), 8);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Profile {
    /// One call at a time per Python process. The safe choice for code that
    /// is not thread-safe, and for CPU-bound Python code (one GIL each).
    Process,
    /// `threads` calls at a time in each Python process. For I/O-bound tools
    /// and for libraries that release the GIL. The adapter must be marked
    /// thread-safe (`__thread_safe__ = True`, e.g. by deriving
    /// `ThreadSafeAdapter`).
    Thread {
        /// Concurrent calls per process (1 to 65535).
        threads: usize,
    },
}

impl Profile {
    /// Calls one worker process may run at once.
    pub fn capacity(self) -> usize {
        match self {
            Profile::Process => 1,
            Profile::Thread { threads } => threads,
        }
    }
}

/// How the pool talks to its worker processes. More transports may come,
/// so a `match` on it needs a catch-all arm.
///
/// [`Grpc`](Transport::Grpc) is the default: it is the Snakepit wire
/// contract, and what a [`worker_script`](crate::PoolBuilder::worker_script)
/// speaks. [`Socket`](Transport::Socket) is faster (length-prefixed
/// protobuf frames over one Unix stream connection per lane, binary payloads
/// as raw segments), but only the crate's own worker speaks it.
///
/// ```
/// use snakepit::Transport;
///
/// assert_eq!(Transport::default(), Transport::Grpc);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Transport {
    /// gRPC over a Unix socket: the Snakepit wire contract.
    #[default]
    Grpc,
    /// Length-prefixed frames over Unix stream connections: lower latency
    /// and binary payloads at memory speed; the crate's own worker only.
    Socket,
}

/// Everything a pool is started with, resolved and checked.
#[derive(Clone)]
pub(crate) struct Config {
    /// Qualifies the worker ids (`name/worker-N`) when set.
    pub name: Option<String>,
    pub adapter: String,
    pub python: Option<PathBuf>,
    pub python_path: Vec<PathBuf>,
    pub workers: usize,
    pub profile: Profile,
    pub env: Vec<(String, String)>,
    pub startup_timeout: Duration,
    pub queue_size: usize,
    pub queue_timeout: Duration,
    pub call_timeout: Duration,
    pub kill_hung_workers: bool,
    pub shutdown_grace: Duration,
    pub max_message_bytes: usize,
    pub restart_backoff: (Duration, Duration),
    pub max_requests: Option<u64>,
    pub max_requests_jitter: u64,
    pub max_lifetime: Option<Duration>,
    pub max_lifetime_jitter: Duration,
    pub max_memory: Option<u64>,
    pub memory_check_interval: Duration,
    pub health_check_interval: Option<Duration>,
    pub health_check_timeout: Duration,
    pub events: Arc<dyn HandleEvent>,
    pub affinity: Affinity,
    pub session_idle_timeout: Duration,
    pub adapter_per_worker: bool,
    pub host_tools: Vec<HostTool>,
    pub host_tool_threads: usize,
    pub worker_script: Option<PathBuf>,
    pub telemetry: crate::telemetry::Settings,
    pub transport: Transport,
    /// Workers elsewhere, found by discovery, instead of local processes.
    pub remote: Option<crate::remote::Remote>,
    /// Options the user set, where the default cannot tell (refused for a
    /// remote pool).
    pub explicit: Explicit,
}

/// Which options with a default were set on purpose.
#[derive(Debug, Clone, Default)]
pub(crate) struct Explicit {
    pub workers: bool,
    pub profile: bool,
    pub kill_hung_workers: bool,
}

/// Default of [`PoolBuilder::host_tool_threads`].
pub(crate) const DEFAULT_HOST_TOOL_THREADS: usize = 4;

impl Default for Config {
    fn default() -> Self {
        Config {
            name: None,
            adapter: String::new(),
            python: None,
            python_path: Vec::new(),
            workers: std::thread::available_parallelism().map_or(2, |n| n.get()),
            profile: Profile::Process,
            env: Vec::new(),
            startup_timeout: Duration::from_secs(30),
            queue_size: 1024,
            queue_timeout: Duration::from_secs(10),
            call_timeout: Duration::from_secs(60),
            kill_hung_workers: true,
            shutdown_grace: Duration::from_secs(5),
            max_message_bytes: 128 << 20,
            restart_backoff: (Duration::from_millis(100), Duration::from_secs(10)),
            max_requests: None,
            max_requests_jitter: 0,
            max_lifetime: None,
            max_lifetime_jitter: Duration::ZERO,
            max_memory: None,
            memory_check_interval: Duration::from_millis(500),
            health_check_interval: Some(Duration::from_secs(30)),
            health_check_timeout: Duration::from_secs(5),
            events: Arc::new(LogEvents),
            affinity: Affinity::Hint,
            session_idle_timeout: Duration::from_secs(30 * 60),
            adapter_per_worker: false,
            host_tools: Vec::new(),
            host_tool_threads: DEFAULT_HOST_TOOL_THREADS,
            worker_script: None,
            telemetry: crate::telemetry::Settings::default(),
            transport: Transport::Grpc,
            remote: None,
            explicit: Explicit::default(),
        }
    }
}

/// The id of the worker in slot `index` of a pool named `pool` (if it has a
/// name): `compute/worker-0`, or `worker-0`. The one place this format is
/// written; the slot index is never parsed back out of it.
pub(crate) fn worker_id(pool: Option<&str>, index: usize) -> String {
    match pool {
        Some(pool) => format!("{pool}/worker-{index}"),
        None => format!("worker-{index}"),
    }
}
