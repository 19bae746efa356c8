//! [`Pool`]: the handle a program holds, and the state its threads share.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Weak};
use std::thread::{self, JoinHandle};
use std::time::Instant;

use crossbeam_channel::Sender;
use grpcio::EnvBuilder;
use parking_lot::Mutex;
use serde_json::Value;

use crate::builder::PoolBuilder;
use crate::call::{CallOptions, Replier, Reply, Request};
use crate::dispatcher::{Command, Dispatcher};
use crate::error::Error;
use crate::events::HandleEvent;
use crate::host_server::{HostServer, HostSession, HostState, RegisteredTool};
use crate::options::{worker_id, Config, Profile};
use crate::protocol::value;
use crate::python;
use crate::session::Session;
use crate::slots::{Slots, Ticket};
use crate::stats::{Counters, PoolStats, WorkerInfo, WorkerState, WorkerStats};
use crate::stream::{Stream, StreamControl};
use crate::worker::process::LaunchSpec;
use crate::worker::{Connection, Control, Job, Work, WorkerHandle, WorkerSetup};

/// A pool of Python worker processes.
///
/// `Pool` is a cheap handle: clone it into every thread that makes calls.
/// The pool shuts down when [`shutdown`](Pool::shutdown) is called or the
/// last handle is dropped, and no worker process outlives it.
///
/// ```no_run
/// use serde_json::json;
/// use snakepit::Pool;
///
/// let pool = Pool::builder()
///     .adapter("snakepit_showcase.adapter.ShowcaseAdapter")
///     .workers(2)
///     .build()?;
/// assert_eq!(pool.execute_blocking("add", json!({"a": 1, "b": 2}))?, json!(3));
/// pool.shutdown();
/// # Ok::<(), snakepit::Error>(())
/// ```
#[derive(Clone)]
pub struct Pool {
    inner: Arc<Inner>,
}

struct Inner {
    shared: Arc<Shared>,
    commands: Sender<Command>,
    /// The workers' job channels, for calls that need no queue; taken at
    /// shutdown so the lanes can end.
    lanes: parking_lot::RwLock<Option<Vec<Sender<Work>>>>,
    runtime: Mutex<Option<Runtime>>,
    /// What the host's callback server saw, when it runs.
    host: Option<Arc<HostState>>,
}

/// A handle that does not keep the pool alive: host tools hold one, since
/// the pool owns them.
#[derive(Clone)]
pub(crate) struct WeakPool(Weak<Inner>);

impl WeakPool {
    /// The pool, unless its last handle is gone.
    pub fn upgrade(&self) -> Option<Pool> {
        self.0.upgrade().map(|inner| Pool { inner })
    }
}

/// The threads and files a running pool owns.
struct Runtime {
    dispatcher: JoinHandle<()>,
    workers: Vec<WorkerHandle>,
    socket_dir: PathBuf,
    host: Option<HostServer>,
}

/// State shared by callers, the dispatcher, the workers and their lanes.
pub(crate) struct Shared {
    pub config: Config,
    pub slots: Slots,
    pub workers: Vec<WorkerInfo>,
    pub counters: Counters,
    pub events: Arc<dyn HandleEvent>,
    /// The latest start-up failure, for calls that find no worker able to
    /// start.
    pub last_start_error: Mutex<Option<Error>>,
    waiting: AtomicUsize,
    doorbell: Sender<()>,
    closing: AtomicBool,
}

impl Shared {
    /// Gives back a call's capacity and, when calls are waiting, wakes the
    /// dispatcher to place the next one.
    pub fn release(&self, ticket: Ticket) {
        if self.slots.release(ticket) && self.waiting.load(SeqCst) > 0 {
            self.ring_doorbell();
        }
    }

    /// Wakes the dispatcher (coalesced: one pending ring is enough).
    pub fn ring_doorbell(&self) {
        let _ = self.doorbell.try_send(());
    }

    pub fn set_waiting(&self, n: usize) {
        self.waiting.store(n, SeqCst);
    }

    pub fn is_closing(&self) -> bool {
        self.closing.load(SeqCst)
    }

    /// When every worker's last start failed: the error calls should get
    /// instead of waiting for capacity that will not come.
    pub fn start_failure(&self) -> Option<Error> {
        if self.workers.iter().all(WorkerInfo::is_failing) {
            self.last_start_error.lock().clone()
        } else {
            None
        }
    }
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("adapter", &self.inner.shared.config.adapter)
            .field("workers", &self.inner.shared.config.workers)
            .field("profile", &self.inner.shared.config.profile)
            .finish_non_exhaustive()
    }
}

impl Pool {
    /// A [`PoolBuilder`] with every option at its default.
    pub fn builder() -> PoolBuilder {
        PoolBuilder::new()
    }

    /// Calls `tool` with `args` (a JSON object whose keys become the
    /// tool's keyword arguments; `null` for none) and blocks until its
    /// result, with the pool's default timeouts.
    ///
    /// ```no_run
    /// # let pool = snakepit::Pool::builder().adapter("snakepit_showcase.adapter.ShowcaseAdapter").build()?;
    /// use serde_json::json;
    /// let echoed = pool.execute_blocking("echo", json!({"value": [1, "two", null]}))?;
    /// assert_eq!(echoed, json!([1, "two", null]));
    /// # Ok::<(), snakepit::Error>(())
    /// ```
    pub fn execute_blocking(&self, tool: &str, args: Value) -> Result<Value, Error> {
        self.execute_blocking_with(tool, args, CallOptions::new())
            .map(|reply| reply.value)
    }

    /// Like [`execute_blocking`](Pool::execute_blocking), with per-call
    /// options, returning the whole [`Reply`] (value, bytes, worker,
    /// timings).
    ///
    /// ```no_run
    /// # let pool = snakepit::Pool::builder().adapter("snakepit_showcase.adapter.ShowcaseAdapter").build()?;
    /// use serde_json::json;
    /// use snakepit::CallOptions;
    /// use std::time::Duration;
    ///
    /// let reply = pool.execute_blocking_with(
    ///     "add",
    ///     json!({"a": 1, "b": 2}),
    ///     CallOptions::new().timeout(Duration::from_secs(5)),
    /// )?;
    /// println!("{} from {}", reply.value, reply.worker);
    /// # Ok::<(), snakepit::Error>(())
    /// ```
    pub fn execute_blocking_with(
        &self,
        tool: &str,
        args: Value,
        options: CallOptions,
    ) -> Result<Reply, Error> {
        let (reply_tx, reply_rx) = crossbeam_channel::bounded(1);
        self.submit(tool, args, options, Replier::Unary(reply_tx))?;
        // Every request is answered exactly once; a closed channel means
        // the pool was torn down around it.
        reply_rx.recv().unwrap_or(Err(Error::ShuttingDown))
    }

    /// Calls a streaming tool (a Python generator marked
    /// `@tool(supports_streaming=True)`) and returns its chunks as they are
    /// produced. See [`Stream`].
    pub fn execute_stream(&self, tool: &str, args: Value) -> Result<Stream, Error> {
        self.execute_stream_with(tool, args, CallOptions::new())
    }

    /// Like [`execute_stream`](Pool::execute_stream), with per-call
    /// options. The call timeout bounds the whole stream.
    pub fn execute_stream_with(
        &self,
        tool: &str,
        args: Value,
        options: CallOptions,
    ) -> Result<Stream, Error> {
        // A small buffer: the generator runs ahead of a slow reader by at
        // most this many chunks.
        let (events_tx, events_rx) = crossbeam_channel::bounded(16);
        let control = Arc::new(StreamControl::default());
        self.submit(
            tool,
            args,
            options,
            Replier::Stream {
                events: events_tx,
                control: control.clone(),
            },
        )?;
        Ok(Stream::new(events_rx, control))
    }

    /// A handle on session `id`: its calls go to the same worker, where the
    /// adapter keeps per-session state. See [`Session`].
    pub fn session(&self, id: impl Into<String>) -> Session {
        Session::new(self.clone(), id.into())
    }

    pub(crate) fn close_session(&self, id: &str) -> Result<(), Error> {
        if self.inner.shared.is_closing() {
            return Err(Error::ShuttingDown);
        }
        self.inner
            .commands
            .send(Command::CloseSession(id.to_owned()))
            .map_err(|_| Error::ShuttingDown)
    }

    fn submit(
        &self,
        tool: &str,
        args: Value,
        options: CallOptions,
        reply: Replier,
    ) -> Result<(), Error> {
        let shared = &self.inner.shared;
        if shared.is_closing() {
            return Err(Error::ShuttingDown);
        }
        let timeout = options.timeout.unwrap_or(shared.config.call_timeout);
        if timeout.is_zero() {
            return Err(Error::InvalidArgument {
                argument: "timeout",
                message: "a call timeout must be longer than zero".into(),
            });
        }
        let session = options.session.map(|id| {
            let affinity = options.affinity.unwrap_or(shared.config.affinity);
            (id, affinity)
        });
        let session_id = session.as_ref().map(|(id, _)| id.as_str());
        let mut message = value::encode_request(tool, &args, options.binary, session_id)?;
        message.stream = matches!(reply, Replier::Stream { .. });
        if message.stream {
            // A failure mid-stream comes back as a final error chunk, not an
            // error status: grpcio hands a client the status as soon as it
            // arrives, dropping chunks sent ahead of it.
            message
                .metadata
                .insert("snakepit.error_chunk".into(), "1".into());
        }
        let size = protobuf::Message::compute_size(&message);
        let limit = shared.config.max_message_bytes as u64;
        if size > limit {
            return Err(Error::PayloadTooLarge {
                what: "arguments",
                size: Some(size),
                limit,
            });
        }
        let now = Instant::now();
        let req = Request {
            tool: tool.to_owned(),
            message,
            timeout,
            queue_timeout: options.queue_timeout.unwrap_or(shared.config.queue_timeout),
            submitted: now,
            queued_since: now,
            reply,
            session,
            retries: options.crash_retries,
        };
        // The fast path: nothing waits and a worker is free, so the caller
        // places its own call (the same scan and compare-and-swap the
        // dispatcher would make) and skips one thread hand-off. Session calls
        // and calls that must wait go through the dispatcher.
        let req = if req.session.is_none() && shared.waiting.load(SeqCst) == 0 {
            match shared.slots.acquire() {
                Some(ticket) => return self.place_directly(Job { req, ticket }),
                None => req,
            }
        } else {
            req
        };
        self.inner
            .commands
            .send(Command::Submit(req))
            .map_err(|_| Error::ShuttingDown)
    }

    fn place_directly(&self, job: Job) -> Result<(), Error> {
        let lanes = self.inner.lanes.read();
        let rejected = match lanes.as_ref() {
            Some(lanes) => match lanes[job.ticket.slot].send(Work::Call(job)) {
                Ok(()) => return Ok(()),
                Err(crossbeam_channel::SendError(work)) => work,
            },
            None => Work::Call(job),
        };
        // The pool shut down between the check and the send.
        if let Work::Call(job) = rejected {
            self.inner.shared.release(job.ticket);
        }
        Err(Error::ShuttingDown)
    }

    /// A snapshot of the pool's workers, load and counters.
    pub fn stats(&self) -> PoolStats {
        let shared = &self.inner.shared;
        let c = &shared.counters;
        let read = |a: &std::sync::atomic::AtomicU64| a.load(std::sync::atomic::Ordering::Relaxed);
        let per_worker: Vec<WorkerStats> = shared
            .workers
            .iter()
            .enumerate()
            .map(|(i, w)| {
                let slot = shared.slots.state(i);
                WorkerStats {
                    id: w.id.clone(),
                    pid: w.pid(),
                    state: w.state(),
                    capacity: usize::from(slot.capacity),
                    load: usize::from(slot.load),
                    calls: read(&w.calls),
                    restarts: read(&w.restarts),
                }
            })
            .collect();
        PoolStats {
            workers: shared.config.workers,
            ready_workers: per_worker
                .iter()
                .filter(|w| w.state == WorkerState::Ready)
                .count(),
            capacity: per_worker.iter().map(|w| w.capacity).sum(),
            load: per_worker.iter().map(|w| w.load).sum(),
            queued: shared.waiting.load(SeqCst),
            succeeded: read(&c.succeeded),
            failed: read(&c.failed),
            timeouts: read(&c.timeouts),
            queue_timeouts: read(&c.queue_timeouts),
            saturated: read(&c.saturated),
            crashes: read(&c.crashes),
            restarts: read(&c.restarts),
            hung_killed: read(&c.hung_killed),
            unhealthy_killed: read(&c.unhealthy_killed),
            recycles: c.recycles(),
            degraded: per_worker.iter().any(|w| w.state != WorkerState::Ready),
            per_worker,
        }
    }

    /// Replaces worker `worker` with a fresh process. `worker` is its id as
    /// stats and events show it (`"worker-0"`, or `"compute/worker-0"` in
    /// a pool named `compute`); the bare `"worker-0"` also names it in a
    /// named pool.
    ///
    /// The replacement starts first and the old process finishes its calls
    /// in flight, so no call fails. Returns at once; the recycle shows in
    /// [`stats`](Pool::stats) and the event hook when done. An unknown name
    /// fails with [`Error::InvalidArgument`].
    pub fn recycle_worker(&self, worker: &str) -> Result<(), Error> {
        let workers = &self.inner.shared.workers;
        let unknown = || Error::InvalidArgument {
            argument: "worker",
            message: format!(
                "no worker named {worker:?}; workers are {} to {}",
                workers[0].id,
                workers[workers.len() - 1].id
            ),
        };
        let index = (workers.iter().enumerate())
            .position(|(i, w)| w.id == worker || worker == worker_id(None, i))
            .ok_or_else(unknown)?;
        let runtime = self.inner.runtime.lock();
        let rt = runtime.as_ref().ok_or(Error::ShuttingDown)?;
        rt.workers[index]
            .control
            .send(Control::Recycle {
                generation: None,
                reason: crate::events::RecycleReason::Manual,
            })
            .map_err(|_| Error::ShuttingDown)
    }

    /// The tools workers announced to the host with `RegisterTools`, by
    /// worker. Snakepit's worker script registers its tools at start-up (see
    /// [`PoolBuilder::worker_script`]); the crate's own worker does not, and
    /// without host tools or a worker script the host serves no callbacks,
    /// so the list is then empty.
    pub fn registered_tools(&self) -> Vec<RegisteredTool> {
        self.inner
            .host
            .as_ref()
            .map_or_else(Vec::new, |host| host.registered_tools())
    }

    /// The sessions workers opened on the host with `InitializeSession`
    /// and have not cleaned up, oldest first (Snakepit's worker script opens
    /// one before each call). Empty when the host serves no callbacks.
    pub fn host_sessions(&self) -> Vec<HostSession> {
        self.inner
            .host
            .as_ref()
            .map_or_else(Vec::new, |host| host.sessions())
    }

    /// Installs a Ctrl-C (SIGINT) handler that shuts the pool down
    /// and then exits the program with status 130, so no worker outlives an
    /// interrupted program. A process has one such handler: a second call
    /// (for this pool or another) fails with [`Error::SignalHandler`].
    ///
    /// ```no_run
    /// # let pool = snakepit::Pool::builder().adapter("snakepit_showcase.adapter.ShowcaseAdapter").build()?;
    /// pool.shutdown_on_ctrl_c()?;
    /// # Ok::<(), snakepit::Error>(())
    /// ```
    pub fn shutdown_on_ctrl_c(&self) -> Result<(), Error> {
        let pool = self.clone();
        crate::interrupt::shutdown_on_ctrl_c("the pool", move || pool.shutdown())
    }

    /// The worker profile the pool runs.
    pub fn profile(&self) -> Profile {
        self.inner.shared.config.profile
    }

    /// Stops the pool: new calls fail with [`Error::ShuttingDown`], queued
    /// calls fail the same way, calls in flight get up to the shutdown grace
    /// period to finish, then every worker gets SIGTERM and, after the grace
    /// period, SIGKILL. Blocks until every worker process has been reaped.
    /// Calling it again does nothing; dropping the last handle calls it.
    pub fn shutdown(&self) {
        self.inner.shutdown();
    }

    /// The shared state, for the pool's other modules.
    pub(crate) fn shared(&self) -> &Shared {
        &self.inner.shared
    }

    /// The connections of the workers serving now, with their worker ids:
    /// for requests outside the call path (listing the tools).
    pub(crate) fn live_connections(&self) -> Result<Vec<(String, Arc<Connection>)>, Error> {
        let runtime = self.inner.runtime.lock();
        let rt = runtime.as_ref().ok_or(Error::ShuttingDown)?;
        Ok(rt
            .workers
            .iter()
            .zip(&self.inner.shared.workers)
            .filter_map(|(handle, info)| {
                let conn = handle.current.read().clone()?;
                Some((info.id.clone(), conn))
            })
            .collect())
    }

    pub(crate) fn start(config: Config) -> Result<Pool, Error> {
        let pool_error = |message: String| Error::PoolStart { message };
        let files_dir = python::worker_files().map_err(|e| {
            pool_error(format!(
                "cannot write the worker's Python files to the cache directory: {e}"
            ))
        })?;
        let socket_dir = private_socket_dir()
            .map_err(|e| pool_error(format!("cannot create the socket directory: {e}")))?;
        // Up before any worker: a worker waits for its Ping at start-up.
        let host = if config.host_tools.is_empty() && config.worker_script.is_none() {
            None
        } else {
            match HostServer::start(
                config.host_tools.clone(),
                config.host_tool_threads,
                &socket_dir,
                config.max_message_bytes,
            ) {
                Ok(host) => Some(host),
                Err(message) => {
                    let _ = std::fs::remove_dir_all(&socket_dir);
                    return Err(pool_error(message));
                }
            }
        };
        let spec = Arc::new(LaunchSpec {
            python: python::interpreter(config.python.as_deref()),
            files_dir,
            python_path: config.python_path.clone(),
            adapter: config.adapter.clone(),
            adapter_per_worker: config.adapter_per_worker,
            threads: match config.profile {
                Profile::Process => None,
                Profile::Thread { threads } => Some(threads),
            },
            env: config.env.clone(),
            max_message_bytes: config.max_message_bytes,
            elixir_address: host.as_ref().map(|h| h.address.clone()),
            worker_script: config.worker_script.clone(),
        });
        let env = Arc::new(EnvBuilder::new().name_prefix("snakepit-grpc").build());

        let n = config.workers;
        let (doorbell_tx, doorbell_rx) = crossbeam_channel::bounded(1);
        let shared = Arc::new(Shared {
            slots: Slots::new(n),
            workers: (0..n)
                .map(|i| WorkerInfo::new(i, config.name.as_deref()))
                .collect(),
            counters: Counters::default(),
            events: config.events.clone(),
            last_start_error: Mutex::new(None),
            waiting: AtomicUsize::new(0),
            doorbell: doorbell_tx,
            closing: AtomicBool::new(false),
            config,
        });
        let (commands_tx, commands_rx) = crossbeam_channel::unbounded();
        let (ready_tx, ready_rx) = crossbeam_channel::unbounded();

        let mut job_senders = Vec::with_capacity(n);
        let mut workers = Vec::with_capacity(n);
        for slot in 0..n {
            let (jobs_tx, jobs_rx) = crossbeam_channel::unbounded();
            job_senders.push(jobs_tx);
            workers.push(WorkerHandle::spawn(WorkerSetup {
                slot,
                shared: shared.clone(),
                spec: spec.clone(),
                socket_dir: socket_dir.clone(),
                env: env.clone(),
                jobs: jobs_rx,
                resubmit: commands_tx.clone(),
                first_ready: ready_tx.clone(),
            }));
        }
        let lanes = parking_lot::RwLock::new(Some(job_senders.clone()));
        let dispatcher = Dispatcher::new(shared.clone(), commands_rx, doorbell_rx, job_senders);
        let dispatcher = thread::Builder::new()
            .name("snakepit-dispatcher".into())
            .spawn(move || dispatcher.run())
            .expect("spawning the dispatcher thread");

        let pool = Pool {
            inner: Arc::new(Inner {
                shared,
                commands: commands_tx,
                lanes,
                host: host.as_ref().map(|h| h.state.clone()),
                runtime: Mutex::new(Some(Runtime {
                    dispatcher,
                    workers,
                    socket_dir,
                    host,
                })),
            }),
        };
        if let Some(host) = &pool.inner.host {
            host.attach(WeakPool(Arc::downgrade(&pool.inner)));
        }
        // Every worker starts at once; the first failure stops them all.
        for _ in 0..n {
            match ready_rx.recv() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    pool.shutdown();
                    return Err(e);
                }
                Err(_) => {
                    pool.shutdown();
                    return Err(pool_error("a worker thread ended during start-up".into()));
                }
            }
        }
        Ok(pool)
    }
}

impl Inner {
    fn shutdown(&self) {
        self.shared.closing.store(true, SeqCst);
        // Held throughout, so a second caller returns only once it is done.
        let mut runtime = self.runtime.lock();
        let Some(rt) = runtime.take() else {
            return;
        };
        // Lanes end once every job sender is gone: ours first, then the
        // dispatcher's.
        self.lanes.write().take();
        let _ = self.commands.send(Command::Shutdown);
        let _ = rt.dispatcher.join();
        for worker in &rt.workers {
            let _ = worker.control.send(Control::Shutdown);
        }
        for worker in rt.workers {
            let _ = worker.thread.join();
        }
        // After the workers: none of them can call back any more.
        if let Some(mut host) = rt.host {
            host.stop(self.shared.config.shutdown_grace);
        }
        let _ = std::fs::remove_dir_all(&rt.socket_dir);
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// A new directory only this user can enter, for the workers' sockets:
/// under `$XDG_RUNTIME_DIR` when set, else the system temp dir. Kept short,
/// since a Unix socket path has a 108-byte limit.
pub(crate) fn private_socket_dir() -> std::io::Result<PathBuf> {
    use std::os::unix::fs::DirBuilderExt;
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    // A base others may write to must be sticky (as /tmp is), or our
    // directory could be renamed away and replaced.
    let sticky = |p: &PathBuf| {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(p).is_ok_and(|m| m.permissions().mode() & 0o1000 != 0)
    };
    let base = std::env::var_os("XDG_RUNTIME_DIR")
        .map(PathBuf::from)
        .filter(|p| p.is_dir() && (python::trusted(p) || sticky(p)))
        .unwrap_or_else(std::env::temp_dir);
    sweep_stale_socket_dirs(&base);
    loop {
        let n = COUNTER.fetch_add(1, SeqCst);
        let dir = base.join(format!("snakepit-{}-{n}", std::process::id()));
        // create(), not create_all(): a directory, file or link planted
        // under this name is never used, only skipped.
        match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
        use std::os::unix::fs::MetadataExt;
        let meta = std::fs::symlink_metadata(&dir)?;
        // SAFETY: getuid cannot fail.
        let private =
            meta.is_dir() && meta.uid() == unsafe { libc::getuid() } && meta.mode() & 0o077 == 0;
        if !private {
            return Err(std::io::Error::other(format!(
                "{} was swapped for one that is not private to this user",
                dir.display()
            )));
        }
        return Ok(dir);
    }
}

/// Removes the socket directories of hosts that are gone: one killed with
/// SIGKILL cannot clean up after itself (its workers die with it, but the
/// directory stays). A directory is `snakepit-<host pid>-<n>`; it is left
/// alone while that pid runs, or when it is not this user's.
fn sweep_stale_socket_dirs(base: &std::path::Path) {
    use std::os::unix::fs::MetadataExt;
    let Ok(entries) = std::fs::read_dir(base) else {
        return;
    };
    // SAFETY: getuid cannot fail.
    let uid = unsafe { libc::getuid() };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix("snakepit-"))
            .and_then(|rest| rest.split_once('-'))
            .and_then(|(pid, n)| n.parse::<usize>().ok().and(pid.parse::<i32>().ok()))
        else {
            continue;
        };
        let ours = entry.metadata().is_ok_and(|m| m.is_dir() && m.uid() == uid);
        // SAFETY: signal 0 only asks whether the process exists.
        let gone = pid > 0
            && unsafe { libc::kill(pid, 0) } == -1
            && std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH);
        if ours && gone {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_planted_socket_directory_is_never_used() {
        use std::os::unix::fs::PermissionsExt;
        // Planted under the names this process will try next (and the
        // first ones, in case no directory was made yet): skipped, not used.
        let probe = private_socket_dir().unwrap();
        let base = probe.parent().unwrap().to_owned();
        let next: usize = probe
            .to_str()
            .unwrap()
            .rsplit('-')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        std::fs::remove_dir(&probe).unwrap();
        let mut planted = Vec::new();
        for n in (0..4).chain(next + 1..next + 40) {
            let path = base.join(format!("snakepit-{}-{n}", std::process::id()));
            // Only free names: another test's live directory stays as it is.
            let made = if n % 2 == 0 {
                std::fs::create_dir(&path).is_ok()
                    && std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o777))
                        .is_ok()
            } else {
                std::os::unix::fs::symlink("/tmp", &path).is_ok()
            };
            if made {
                planted.push(path);
            }
        }
        let dir = private_socket_dir().unwrap();
        assert!(!planted.contains(&dir), "{dir:?}");
        let meta = std::fs::symlink_metadata(&dir).unwrap();
        assert!(meta.is_dir());
        assert_eq!(meta.permissions().mode() & 0o777, 0o700);
        std::fs::remove_dir(&dir).unwrap();
        for path in planted {
            let _ = std::fs::remove_file(&path);
            let _ = std::fs::remove_dir(&path);
        }
    }

    #[test]
    fn socket_directories_of_dead_hosts_are_swept_and_live_ones_kept() {
        let base = std::env::temp_dir().join(format!("snakepit-sweep-test-{}", std::process::id()));
        std::fs::create_dir_all(&base).unwrap();
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead = child.id();
        child.wait().unwrap();
        let stale = base.join(format!("snakepit-{dead}-0"));
        let live = base.join(format!("snakepit-{}-0", std::process::id()));
        let other = base.join("snakepit-cache");
        for dir in [&stale, &live, &other] {
            std::fs::create_dir_all(dir).unwrap();
        }
        std::fs::write(stale.join("w0-1.sock"), b"").unwrap();

        sweep_stale_socket_dirs(&base);
        assert!(!stale.exists(), "a dead host's directory stays");
        assert!(live.exists() && other.exists());
        std::fs::remove_dir_all(&base).unwrap();
    }
}
