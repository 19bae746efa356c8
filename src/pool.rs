//! [`Pool`]: the handle a program holds, and the state its threads share.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock, Weak};
use std::thread::{self, JoinHandle};
use std::time::Instant;

use crossbeam_channel::Sender;
use parking_lot::Mutex;
use serde_json::Value;

use crate::call::{
    check_correlation_id, new_correlation_id, CallOptions, Replier, Reply, Request,
    CORRELATION_HEADER,
};
use crate::deadline::check_duration;
use crate::dispatcher::Dispatcher;
use crate::error::Error;
use crate::host_server::{HostServer, HostSession, HostState, RegisteredTool};
use crate::launcher::local::{LaunchSpec, LocalLauncher};
use crate::launcher::remote::{Endpoints, RemoteLauncher};
use crate::launcher::resolver::{self, Resolver};
use crate::launcher::Launcher;
use crate::options::{worker_id, Config, Profile, Transport};
use crate::pool_token::PoolToken;
use crate::protocol::value;
use crate::python;
use crate::shared::Shared;
use crate::socket_dir;
use crate::stats::PoolStats;
use crate::stream::{Stream, StreamControl};
use crate::transport::grpc::{self, GrpcConnector};
use crate::transport::socket::SocketConnector;
use crate::transport::Connect;
use crate::work::{Command, Job, Work};
use crate::worker::{Connection, Control, WorkerHandle, WorkerSetup};

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
    /// What the host's callback server saw (it runs for every pool of real
    /// workers; the test seams have none).
    host: Option<Arc<HostState>>,
}

/// Where host tools that take the pool find it: set once the pool exists.
/// The pool owns its host tools, so they hold it weakly (a strong handle
/// would keep it alive forever) and upgrade it per call.
type LatePool = Arc<OnceLock<Weak<Inner>>>;

/// The two seams a pool is built on: where its processes come from and how
/// its lanes talk to them (see `launcher` and `transport`).
pub(crate) struct Seams {
    pub launcher: Arc<dyn Launcher>,
    pub connector: Arc<dyn Connect>,
}

/// What a pool owns besides its threads, released at shutdown once the
/// workers are gone.
#[derive(Default)]
pub(crate) struct Resources {
    /// The host's callback server (always, for real workers).
    pub host: Option<HostServer>,
    /// The private directory of the workers' sockets, removed last.
    pub socket_dir: Option<PathBuf>,
    /// Set to the pool once it exists, for host tools that take it.
    late: LatePool,
    /// A remote pool's discovery thread, stopped before the workers.
    pub resolver: Option<Resolver>,
}

/// Which workers a pool's start waits for.
pub(crate) enum WaitFor {
    /// Every worker must become ready; the first failure fails the start.
    All,
    /// A remote pool: the slots bound at start. One ready is enough; when
    /// all fail, the first failure fails the start; none at all starts the
    /// pool degraded.
    Endpoints(Vec<usize>),
}

/// The threads and files a running pool owns.
struct Runtime {
    dispatcher: JoinHandle<()>,
    workers: Vec<WorkerHandle>,
    resources: Resources,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("adapter", &self.inner.shared.config().adapter)
            .field("workers", &self.inner.shared.config().workers)
            .field("profile", &self.inner.shared.config().profile)
            .finish_non_exhaustive()
    }
}

impl Pool {
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
        // the pool was torn down around it, or a pool thread panicked
        // while it held the call.
        reply_rx
            .recv()
            .unwrap_or_else(|_| Err(self.inner.shared.unanswered()))
    }

    /// Calls a streaming tool (a Python generator marked
    /// `@tool(supports_streaming=True)`) and returns its chunks as they are
    /// produced. See [`Stream`].
    ///
    /// ```no_run
    /// # let pool = snakepit::Pool::builder().adapter("snakepit_showcase.adapter.ShowcaseAdapter").workers(2).build()?;
    /// use serde_json::json;
    /// use snakepit::Chunk;
    ///
    /// let chunks: Vec<Chunk> = pool
    ///     .execute_stream("count_stream", json!({"n": 3}))?
    ///     .collect::<Result<_, _>>()?; // the first error ends the stream
    /// for chunk in &chunks {
    ///     println!("{:?}", chunk.as_json());
    /// }
    /// # Ok::<(), snakepit::Error>(())
    /// ```
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
        let shared = Arc::downgrade(&self.inner.shared);
        Ok(Stream::new(
            events_rx,
            control,
            Box::new(move || {
                shared
                    .upgrade()
                    .map_or(Error::ShuttingDown, |shared| shared.unanswered())
            }),
        ))
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
        let config = shared.config();
        let timeout = options.timeout.unwrap_or(config.call_timeout);
        if timeout.is_zero() {
            return Err(Error::InvalidArgument {
                argument: "timeout",
                message: "a call timeout must be longer than zero".into(),
            });
        }
        let queue_timeout = options.queue_timeout.unwrap_or(config.queue_timeout);
        for (argument, d) in [("timeout", timeout), ("queue_timeout", queue_timeout)] {
            if let Err(message) = check_duration(d) {
                return Err(Error::InvalidArgument { argument, message });
            }
        }
        let correlation_id = match options.correlation_id {
            Some(id) => {
                check_correlation_id(&id)?;
                id
            }
            None => new_correlation_id(),
        };
        let session = options.session.map(|id| {
            let affinity = options.affinity.unwrap_or(config.affinity);
            (id, affinity)
        });
        let session_id = session.as_ref().map(|(id, _)| id.as_str());
        let mut message = value::encode_request(tool, &args, options.binary, session_id)?;
        message.stream = matches!(reply, Replier::Stream { .. });
        // In the request's own metadata too (the gRPC transport also sends
        // it as a header), so any transport carries it.
        message
            .metadata
            .insert(CORRELATION_HEADER.into(), correlation_id);
        if message.stream {
            // A failure mid-stream comes back as a final error chunk, not an
            // error status: grpcio hands a client the status as soon as it
            // arrives, dropping chunks sent ahead of it.
            message
                .metadata
                .insert("snakepit.error_chunk".into(), "1".into());
        }
        let size = protobuf::Message::compute_size(&message);
        let limit = config.max_message_bytes as u64;
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
            queue_timeout,
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
        let req = if req.session.is_none() && shared.waiting() == 0 {
            match shared.slots().acquire() {
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
    ///
    /// ```no_run
    /// # let pool = snakepit::Pool::builder().adapter("snakepit_showcase.adapter.ShowcaseAdapter").workers(2).build()?;
    /// let stats = pool.stats();
    /// println!("{}/{} ready, {} queued", stats.ready_workers, stats.workers, stats.queued);
    /// for worker in &stats.per_worker {
    ///     println!("{} {:?} pid {:?}, {} calls", worker.id, worker.state, worker.pid, worker.calls);
    /// }
    /// # Ok::<(), snakepit::Error>(())
    /// ```
    pub fn stats(&self) -> PoolStats {
        self.inner.shared.stats()
    }

    /// Switches the workers' telemetry on or off and sets the share of
    /// events they keep (`sampling_rate`, 0 to 1), now and for every
    /// process started later (see
    /// [`PoolBuilder::telemetry`](crate::PoolBuilder::telemetry) and
    /// [`PoolBuilder::telemetry_sampling_rate`](crate::PoolBuilder::telemetry_sampling_rate)). The
    /// settings travel as control messages on each worker's telemetry
    /// stream and apply from the moment each worker receives them. A rate
    /// outside 0 to 1 fails with [`Error::InvalidArgument`].
    ///
    /// ```no_run
    /// # let pool = snakepit::Pool::builder().adapter("snakepit_showcase.adapter.ShowcaseAdapter").build()?;
    /// pool.set_telemetry(false, 1.0)?; // quiet
    /// # Ok::<(), snakepit::Error>(())
    /// ```
    pub fn set_telemetry(&self, enabled: bool, sampling_rate: f64) -> Result<(), Error> {
        crate::telemetry::check_sampling_rate(sampling_rate)?;
        self.inner
            .shared
            .telemetry()
            .set(crate::telemetry::Settings {
                enabled,
                sampling_rate,
            });
        Ok(())
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
    ///
    /// ```no_run
    /// # let pool = snakepit::Pool::builder().adapter("snakepit_showcase.adapter.ShowcaseAdapter").workers(2).build()?;
    /// pool.recycle_worker("worker-1")?;
    /// let err = pool.recycle_worker("worker-9").unwrap_err(); // 2 workers
    /// assert_eq!(err.kind(), snakepit::ErrorKind::InvalidArgument);
    /// # Ok::<(), snakepit::Error>(())
    /// ```
    pub fn recycle_worker(&self, worker: &str) -> Result<(), Error> {
        let workers = self.inner.shared.workers();
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
    /// worker. Every worker registers its adapter's tools at start-up, the
    /// crate's own as Snakepit's worker scripts (see
    /// [`PoolBuilder::worker_script`](crate::PoolBuilder::worker_script)),
    /// so once [`build`](crate::PoolBuilder::build) returns each worker's
    /// tools are listed under its id (`"worker-0"`, ...); a restarted worker
    /// registers again and its latest list replaces the previous one. A
    /// worker whose adapter could not list its tools registers nothing (it
    /// logs why) and still serves.
    ///
    /// On [`Transport::Socket`] without host tools, workers do not reach
    /// the host's callback server (that would import grpc at start-up):
    /// this then asks each serving worker for its tools instead, one round
    /// trip each, and lists the ones that answer.
    ///
    /// Remote workers have no callback server to reach either: the same
    /// holds for a [`remote`](crate::PoolBuilder::remote) pool.
    pub fn registered_tools(&self) -> Vec<RegisteredTool> {
        let config = self.shared().config();
        if (config.transport == Transport::Socket && config.host_tools.is_empty())
            || config.remote.is_some()
        {
            return self.described_tools();
        }
        self.inner
            .host
            .as_ref()
            .map_or_else(Vec::new, |host| host.registered_tools())
    }

    /// Each serving worker's tools as it describes them, by worker.
    fn described_tools(&self) -> Vec<RegisteredTool> {
        let timeout = self.shared().config().call_timeout;
        let mut tools = Vec::new();
        for (worker, conn) in self.live_connections().unwrap_or_default() {
            let Ok(resp) = conn.describe(timeout) else {
                continue;
            };
            let mut specs: Vec<_> = resp.available_tools.into_iter().collect();
            specs.sort_by(|a, b| a.0.cmp(&b.0));
            tools.extend(specs.into_iter().map(|(key, spec)| RegisteredTool {
                worker: worker.clone(),
                name: if spec.name.is_empty() { key } else { spec.name },
                description: spec.description,
                supports_streaming: spec.supports_streaming,
            }));
        }
        tools
    }

    /// The sessions workers opened on the host with `InitializeSession`
    /// and have not cleaned up, oldest first (Snakepit's worker script opens
    /// one before each call; the crate's own worker opens none).
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
        self.inner.shared.config().profile
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
            .zip(self.inner.shared.workers())
            .filter_map(|(handle, info)| {
                let conn = handle.current.read().clone()?;
                Some((info.id.clone(), conn))
            })
            .collect())
    }

    /// Starts a pool of local Python workers reached over gRPC: what
    /// [`PoolBuilder::build`](crate::PoolBuilder::build) does.
    pub(crate) fn start(mut config: Config) -> Result<Pool, Error> {
        if config.remote.is_some() {
            return Pool::start_remote(config);
        }
        let pool_error = |message: String| Error::PoolStart { message };
        let files_dir = python::worker_files().map_err(|e| {
            pool_error(format!(
                "cannot write the worker's Python files to the cache directory: {e}"
            ))
        })?;
        let socket_dir = socket_dir::create()
            .map_err(|e| pool_error(format!("cannot create the socket directory: {e}")))?;
        let token = PoolToken::generate().map_err(|e| {
            let _ = std::fs::remove_dir_all(&socket_dir);
            pool_error(format!(
                "cannot make the pool's token from /dev/urandom: {e}"
            ))
        })?;
        let late = bind_host_tools(&mut config);
        // Always up, and before any worker: every worker waits for its
        // Ping at start-up and then registers its tools with it
        // (`registered_tools`), host tools or not.
        // Snakepit's worker scripts cannot present the token.
        let caller_token = config.worker_script.is_none().then(|| token.clone());
        let env = grpc::environment();
        let host = match HostServer::start(
            config.host_tools.clone(),
            config.host_tool_threads,
            &socket_dir,
            config.max_message_bytes,
            caller_token,
            env.clone(),
        ) {
            Ok(host) => Some(host),
            Err(message) => {
                let _ = std::fs::remove_dir_all(&socket_dir);
                return Err(pool_error(message));
            }
        };
        let spec = LaunchSpec {
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
            // On the socket transport, reaching the host means importing
            // grpc at start-up: only done when there are host tools to call
            // (its workers' tools are then not in `registered_tools`).
            elixir_address: host
                .as_ref()
                .filter(|_| config.transport != Transport::Socket || !config.host_tools.is_empty())
                .map(|h| h.address.clone()),
            worker_script: config.worker_script.clone(),
            token: token.clone(),
            socket_transport: config.transport == Transport::Socket,
        };
        // The socket transport's connections are guarded by the pool's 0700
        // directory alone (see the README's security notes).
        let connector: Arc<dyn Connect> = match config.transport {
            Transport::Socket => Arc::new(SocketConnector::new(config.max_message_bytes)),
            _ => match GrpcConnector::new(config.max_message_bytes, &token, env) {
                Ok(connector) => Arc::new(connector),
                Err(message) => {
                    let _ = std::fs::remove_dir_all(&socket_dir);
                    return Err(pool_error(message));
                }
            },
        };
        let seams = Seams {
            launcher: Arc::new(LocalLauncher {
                spec,
                socket_dir: socket_dir.clone(),
            }),
            connector,
        };
        let resources = Resources {
            host,
            socket_dir: Some(socket_dir),
            late,
            resolver: None,
        };
        Pool::start_with(config, seams, resources, WaitFor::All)
    }

    /// Starts a pool of remote workers: resolves the endpoints once, binds
    /// them to slots, starts the resolver thread and the workers, and waits
    /// for the endpoints found (see [`WaitFor::Endpoints`]).
    fn start_remote(mut config: Config) -> Result<Pool, Error> {
        let remote = config.remote.clone().expect("checked by the caller");
        config.workers = remote.max_endpoints;
        let connector =
            GrpcConnector::remote(config.max_message_bytes, &remote).map_err(|message| {
                Error::InvalidConfig {
                    option: "remote",
                    message,
                }
            })?;
        let (endpoints, poked) = Endpoints::new(remote.max_endpoints);
        let bound = match resolver::resolve(&remote.source) {
            Ok(found) => endpoints.apply(&found),
            Err(message) => {
                log::warn!(
                    "{message}; the pool starts with no endpoint and resolves again every {:?}",
                    remote.resolve_every
                );
                Vec::new()
            }
        };
        let resolver = Resolver::start(
            remote.source.clone(),
            remote.resolve_every,
            endpoints.clone(),
            poked,
        );
        let seams = Seams {
            launcher: Arc::new(RemoteLauncher { endpoints }),
            connector: Arc::new(connector),
        };
        let resources = Resources {
            resolver: Some(resolver),
            ..Resources::default()
        };
        Pool::start_with(config, seams, resources, WaitFor::Endpoints(bound))
    }

    /// Starts the dispatcher and every worker on `seams`, and blocks until
    /// every worker is ready (or one fails, which stops them all).
    pub(crate) fn start_with(
        config: Config,
        seams: Seams,
        resources: Resources,
        wait_for: WaitFor,
    ) -> Result<Pool, Error> {
        let n = config.workers;
        let remote = matches!(wait_for, WaitFor::Endpoints(_));
        let (shared, doorbell) = Shared::new(config);
        let shared = Arc::new(shared);
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
                launcher: seams.launcher.clone(),
                connector: seams.connector.clone(),
                jobs: jobs_rx,
                resubmit: commands_tx.clone(),
                first_ready: match &wait_for {
                    WaitFor::All => Some(ready_tx.clone()),
                    WaitFor::Endpoints(bound) => bound.contains(&slot).then(|| ready_tx.clone()),
                },
                retry_first_start: remote,
            }));
        }
        let lanes = parking_lot::RwLock::new(Some(job_senders.clone()));
        let dispatcher = Dispatcher::new(shared.clone(), commands_rx, doorbell, job_senders);
        let dispatcher = thread::Builder::new()
            .name("snakepit-dispatcher".into())
            .spawn(move || dispatcher.run())
            .expect("spawning the dispatcher thread");

        // Only the workers may hold the ready sender: a worker thread that
        // panics drops its clone, and the loop below must then see the
        // channel disconnect rather than wait forever.
        drop(ready_tx);
        let late = resources.late.clone();
        let pool = Pool {
            inner: Arc::new(Inner {
                shared,
                commands: commands_tx,
                lanes,
                host: resources.host.as_ref().map(|h| h.state.clone()),
                runtime: Mutex::new(Some(Runtime {
                    dispatcher,
                    workers,
                    resources,
                })),
            }),
        };
        let _ = late.set(Arc::downgrade(&pool.inner));
        let panicked = || Error::PoolStart {
            message: "a worker thread panicked during start-up".into(),
        };
        match wait_for {
            // Every worker starts at once; the first failure stops them all.
            WaitFor::All => {
                for _ in 0..n {
                    let failure = match ready_rx.recv() {
                        Ok(Ok(())) => continue,
                        Ok(Err(e)) => e,
                        // A bug, not the adapter: a worker thread panicked.
                        Err(_) => panicked(),
                    };
                    pool.shutdown();
                    return Err(failure);
                }
            }
            WaitFor::Endpoints(bound) => {
                if bound.is_empty() {
                    log::warn!("no remote endpoint found yet: calls wait in the queue");
                }
                let mut first_failure = None;
                for _ in 0..bound.len() {
                    match ready_rx.recv() {
                        Ok(Ok(())) => {
                            first_failure = None;
                            break;
                        }
                        Ok(Err(e)) => {
                            log::warn!("{e}");
                            first_failure.get_or_insert(e);
                        }
                        Err(_) => {
                            first_failure.get_or_insert_with(panicked);
                            break;
                        }
                    }
                }
                if let Some(failure) = first_failure {
                    pool.shutdown();
                    return Err(failure);
                }
            }
        }
        Ok(pool)
    }
}

/// Makes the host tools that take the pool ready to run: each reaches the
/// pool through a late-bound weak handle, set once the pool exists.
fn bind_host_tools(config: &mut Config) -> LatePool {
    let late = LatePool::default();
    for tool in &mut config.host_tools {
        let late = late.clone();
        // The handle is dropped as soon as the tool returns, before its
        // reply goes out: the caller whose call led here still holds one, so
        // if dropping that after its call returns shuts the pool down, it
        // happens there and then, never later on a host tool thread.
        tool.bind(move || {
            late.get()
                .and_then(Weak::upgrade)
                .map(|inner| Pool { inner })
        });
    }
    late
}

impl Inner {
    fn shutdown(&self) {
        self.shared.close();
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
        // Remote slots waiting for an endpoint give up.
        let mut resources = rt.resources;
        if let Some(mut resolver) = resources.resolver.take() {
            resolver.stop();
        }
        for worker in rt.workers {
            let _ = worker.thread.join();
        }
        // Their processes gone, the telemetry streams have ended or end now.
        self.shared.telemetry().close();
        // After the workers: none of them can call back any more.
        if let Some(mut host) = resources.host {
            host.stop(self.shared.config().shutdown_grace);
        }
        if let Some(dir) = &resources.socket_dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.shutdown();
    }
}
