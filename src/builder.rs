//! [`PoolBuilder`]: every pool option, next to its default.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::call::Affinity;
use crate::deadline::check_duration;
use crate::options::{Config, Profile, Transport};
use serde_json::Value;

use crate::error::Error;
use crate::events::HandleEvent;
use crate::host_tool::{HostArgs, HostOutput, HostTool};
use crate::pool::Pool;
use crate::slots::MAX_CAPACITY;

impl Pool {
    /// A [`PoolBuilder`] with every option at its default.
    pub fn builder() -> PoolBuilder {
        PoolBuilder::new()
    }
}

/// Builds a [`Pool`]. Get one with [`Pool::builder`].
///
/// Only [`adapter`](PoolBuilder::adapter) is required; every other option
/// has the default its documentation gives. Every duration is at most
/// [`MAX_DURATION`](crate::MAX_DURATION) (100 years); `build` refuses a
/// longer one with [`Error::InvalidConfig`] naming the option.
///
/// ```no_run
/// use snakepit::{Pool, Profile};
/// use std::time::Duration;
///
/// let pool = Pool::builder()
///     .adapter("snakepit_showcase.adapter.ShowcaseAdapter")
///     .workers(2)
///     .profile(Profile::Process)
///     .call_timeout(Duration::from_secs(10))
///     .build()?;
/// # Ok::<(), snakepit::Error>(())
/// ```
#[derive(Clone, Default)]
#[must_use = "a PoolBuilder starts nothing until `.build()` is called"]
pub struct PoolBuilder {
    config: Config,
}

impl PoolBuilder {
    /// A builder with every default.
    pub fn new() -> Self {
        Self::default()
    }

    /// The pool's name, which qualifies its worker ids: `compute/worker-0`
    /// rather than `worker-0` in stats, events, logs, errors, thread names
    /// and the `{worker_id}` placeholder, so that the logs of two pools can
    /// be told apart. A pool from a configuration file or a
    /// [`PoolSet`](crate::PoolSet) is named after its entry unless it set a
    /// name itself. Default: no name.
    ///
    /// ```no_run
    /// let pool = snakepit::Pool::builder()
    ///     .name("compute")
    ///     .adapter("snakepit_showcase.adapter.ShowcaseAdapter")
    ///     .workers(2)
    ///     .build()?;
    /// assert_eq!(pool.stats().per_worker[1].id, "compute/worker-1");
    /// pool.recycle_worker("compute/worker-1")?; // or "worker-1"
    /// # Ok::<(), snakepit::Error>(())
    /// ```
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.config.name = Some(name.into());
        self
    }

    /// The adapter class, as `"package.module.Class"`. Required: there is
    /// no default, and [`build`](PoolBuilder::build) fails with
    /// [`Error::InvalidConfig`] without it.
    ///
    /// The class derives `snakepit_bridge.BaseAdapter` and marks its tools
    /// with `@tool`. The shipped showcase adapter is
    /// `"snakepit_showcase.adapter.ShowcaseAdapter"`.
    pub fn adapter(mut self, class: impl Into<String>) -> Self {
        self.config.adapter = class.into();
        self
    }

    /// The Python interpreter to run workers with.
    ///
    /// Default: the `SNAKEPIT_PYTHON` environment variable if set, else the
    /// interpreter of an active virtual environment (`VIRTUAL_ENV`), else
    /// that of the virtual environment `snakepit setup` creates
    /// (`$SNAKEPIT_VENV`, default `~/.cache/snakepit/venv`) if it exists,
    /// else `python3` on PATH.
    pub fn python(mut self, interpreter: impl Into<PathBuf>) -> Self {
        self.config.python = Some(interpreter.into());
        self
    }

    /// Adds a directory to the workers' `PYTHONPATH` (where your adapter's
    /// package lives). Repeatable; earlier entries win. Default: none (the
    /// bundled `snakepit_bridge` and `snakepit_showcase` packages are always
    /// importable).
    pub fn python_path(mut self, dir: impl Into<PathBuf>) -> Self {
        self.config.python_path.push(dir.into());
        self
    }

    /// Number of worker processes. Default: the number of CPUs.
    pub fn workers(mut self, n: usize) -> Self {
        self.config.workers = n;
        self.config.explicit.workers = true;
        self
    }

    /// The worker profile. Default: [`Profile::Process`].
    pub fn profile(mut self, profile: Profile) -> Self {
        self.config.profile = profile;
        self.config.explicit.profile = true;
        self
    }

    /// Sets an environment variable for every worker process. Repeatable.
    /// Default: workers inherit the host's environment unchanged.
    ///
    /// In `value`, `{worker_index}` becomes the worker's index (`0` to
    /// `workers - 1`) and `{worker_id}` its id (`worker-0`, ..., or
    /// `compute/worker-0`, ... in a pool [named](PoolBuilder::name)
    /// `compute`), e.g.
    /// `.env("CUDA_VISIBLE_DEVICES", "{worker_index}")`.
    ///
    /// `OMP_NUM_THREADS`, `OPENBLAS_NUM_THREADS` and `MKL_NUM_THREADS`, unless
    /// set here or in the host's environment, are set to 1 for
    /// [`Profile::Process`] and to the thread count for [`Profile::Thread`],
    /// so that many workers do not each start a thread per core.
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.config.env.push((key.into(), value.into()));
        self
    }

    /// How long [`build`](PoolBuilder::build) waits for every worker to be
    /// ready before it fails with [`Error::Startup`]. Default: 30 s.
    pub fn startup_timeout(mut self, timeout: Duration) -> Self {
        self.config.startup_timeout = timeout;
        self
    }

    /// How many calls may wait for a free worker. A call that finds the
    /// queue full fails at once with [`Error::PoolSaturated`]; 0 means no
    /// call ever waits. Default: 1024.
    pub fn queue_size(mut self, n: usize) -> Self {
        self.config.queue_size = n;
        self
    }

    /// How long a call may wait in the queue before it fails with
    /// [`Error::QueueTimeout`] (without running). Default: 10 s.
    pub fn queue_timeout(mut self, timeout: Duration) -> Self {
        self.config.queue_timeout = timeout;
        self
    }

    /// How long a call may run on a worker before it fails with
    /// [`Error::Timeout`]. Default: 60 s.
    pub fn call_timeout(mut self, timeout: Duration) -> Self {
        self.config.call_timeout = timeout;
        self
    }

    /// Whether a process-profile worker still running a call past its
    /// timeout is killed and replaced (Python cannot cancel a running
    /// function, so the process would otherwise stay busy). Thread-profile
    /// workers are never killed for this: the call fails, the other calls go
    /// on, and the thread stuck in it leaves the worker's capacity; once all
    /// its threads are stuck, the worker is recycled
    /// ([`RecycleReason::StuckThreads`](crate::events::RecycleReason::StuckThreads)).
    /// With `false`, a process-profile worker is recycled that way after its
    /// first timed-out call, rather than killed at once. Default: true.
    pub fn kill_hung_workers(mut self, kill: bool) -> Self {
        self.config.kill_hung_workers = kill;
        self.config.explicit.kill_hung_workers = true;
        self
    }

    /// On shutdown, how long calls in flight may take to finish, and then
    /// how long a worker has between SIGTERM and SIGKILL. Default: 5 s.
    pub fn shutdown_grace(mut self, grace: Duration) -> Self {
        self.config.shutdown_grace = grace;
        self
    }

    /// The largest gRPC message either side accepts, in bytes (arguments or
    /// result). Default: 128 MiB; at most 2 GiB - 1.
    pub fn max_message_bytes(mut self, bytes: usize) -> Self {
        self.config.max_message_bytes = bytes;
        self
    }

    /// Recycles a worker after it has served `n` calls (plus up to
    /// [`max_requests_jitter`](PoolBuilder::max_requests_jitter)). The
    /// replacement starts first and the old process finishes its calls, so
    /// no call fails because of it. Default: never.
    ///
    /// `None` switches it off again (`max_requests(1000)` and
    /// `max_requests(None)` both work); in the configuration file, `0` or
    /// `"off"`.
    pub fn max_requests(mut self, n: impl Into<Option<u64>>) -> Self {
        self.config.max_requests = n.into();
        self
    }

    /// Adds a random 0..=`n` to each process's `max_requests`, so workers
    /// started together do not restart together. Default: 0.
    pub fn max_requests_jitter(mut self, n: u64) -> Self {
        self.config.max_requests_jitter = n;
        self
    }

    /// Recycles a worker's process after it has lived this long (plus up
    /// to [`max_lifetime_jitter`](PoolBuilder::max_lifetime_jitter)).
    /// Default: never. `None` switches it off again; in the configuration
    /// file, `0` or `"off"`.
    pub fn max_lifetime(mut self, lifetime: impl Into<Option<Duration>>) -> Self {
        self.config.max_lifetime = lifetime.into();
        self
    }

    /// Adds a random 0..=`jitter` to each process's `max_lifetime`.
    /// Default: 0.
    pub fn max_lifetime_jitter(mut self, jitter: Duration) -> Self {
        self.config.max_lifetime_jitter = jitter;
        self
    }

    /// Recycles a worker whose Python process's resident memory (its own
    /// `VmRSS`, checked every
    /// [`memory_check_interval`](PoolBuilder::memory_check_interval))
    /// passes `bytes`. Default: no limit. `None` switches it off again; in
    /// the configuration file, `0` or `"off"`.
    pub fn max_memory(mut self, bytes: impl Into<Option<u64>>) -> Self {
        self.config.max_memory = bytes.into();
        self
    }

    /// How often `max_memory` is checked. Default: 500 ms.
    pub fn memory_check_interval(mut self, interval: Duration) -> Self {
        self.config.memory_check_interval = interval;
        self
    }

    /// How often each worker is pinged, busy or idle (the Python server
    /// keeps threads for the ping beyond its calls', so a worker whose calls
    /// all hang is judged too); one that does not answer within
    /// [`health_check_timeout`](PoolBuilder::health_check_timeout) is killed
    /// and replaced. `None` turns health checks off (in the configuration
    /// file, `0` or `"off"`); a plain `Duration` or `Some(..)` sets the
    /// interval. Default: 30 s.
    pub fn health_check_interval(mut self, interval: impl Into<Option<Duration>>) -> Self {
        self.config.health_check_interval = interval.into();
        self
    }

    /// How long a health-check ping may take. Default: 5 s.
    pub fn health_check_timeout(mut self, timeout: Duration) -> Self {
        self.config.health_check_timeout = timeout;
        self
    }

    /// The shortest and longest wait before restarting a worker whose
    /// process crashed or failed to start; the wait doubles with each
    /// failure in a row. Default: 100 ms to 10 s.
    pub fn restart_backoff(mut self, min: Duration, max: Duration) -> Self {
        self.config.restart_backoff = (min, max);
        self
    }

    /// How strictly session calls stick to their session's worker, unless
    /// a call says otherwise. Default: [`Affinity::Hint`].
    pub fn affinity(mut self, affinity: Affinity) -> Self {
        self.config.affinity = affinity;
        self
    }

    /// A session with no call for this long is closed: its worker is told
    /// to free the session's state. Default: 30 minutes.
    pub fn session_idle_timeout(mut self, timeout: Duration) -> Self {
        self.config.session_idle_timeout = timeout;
        self
    }

    /// Keeps one adapter instance per worker process instead of creating
    /// one per call (Snakepit's behaviour, the default). `initialize()` then
    /// runs once per process and `cleanup()` at its end, not around every
    /// call; the session context is still per call. For adapters whose
    /// construction or `initialize()` is expensive. Default: false.
    pub fn adapter_per_worker(mut self, per_worker: bool) -> Self {
        self.config.adapter_per_worker = per_worker;
        self
    }

    /// Receives the pool's events (workers started, ready, exited,
    /// recycled; calls finished; queue timeouts; saturation). Default:
    /// [`LogEvents`](crate::events::LogEvents), which logs them through `log`.
    pub fn event_handler(mut self, handler: impl HandleEvent) -> Self {
        self.config.events = Arc::new(handler);
        self
    }

    /// Whether the workers record their tools' telemetry events. The
    /// events reach the event hook
    /// ([`HandleEvent::telemetry`](crate::events::HandleEvent::telemetry));
    /// see [`crate::telemetry`]. Changed at run time with
    /// [`Pool::set_telemetry`](crate::Pool::set_telemetry). Default: true.
    pub fn telemetry(mut self, enabled: bool) -> Self {
        self.config.telemetry.enabled = enabled;
        self
    }

    /// The share of telemetry events the workers keep (0 to 1, chosen at
    /// random). A rate outside 0 to 1 fails `build` with
    /// [`Error::InvalidConfig`]. Default: 1, every event.
    ///
    /// ```
    /// // One event in ten.
    /// let builder = snakepit::Pool::builder().telemetry_sampling_rate(0.1);
    /// # let _ = builder;
    /// ```
    pub fn telemetry_sampling_rate(mut self, sampling_rate: f64) -> Self {
        self.config.telemetry.sampling_rate = sampling_rate;
        self
    }

    /// Registers a host tool: a Rust closure that Python tools call with
    /// `self.session_context.call_host_tool("name", **kwargs)` (or
    /// `call_elixir_tool`, Snakepit's name) and list with
    /// `self.session_context.host_tools()`. Repeatable; names must differ.
    ///
    /// The keyword arguments arrive as one JSON object. `Ok` goes back to
    /// Python as the call's result; `Err(message)`, or a panic, raises
    /// `RuntimeError` with that message in Python (so a Rust caller of the
    /// Python tool sees [`Error::Python`] with class `"RuntimeError"`,
    /// unless the tool catches it). Closures run on the host's own threads
    /// (see [`host_tool_threads`](PoolBuilder::host_tool_threads)), never on
    /// gRPC's. Default: no host tools.
    ///
    /// ```no_run
    /// use serde_json::json;
    ///
    /// let pool = snakepit::Pool::builder()
    ///     .adapter("snakepit_showcase.adapter.ShowcaseAdapter")
    ///     .host_tool("greet", "Greets someone", |args| {
    ///         let name = args["name"].as_str().ok_or("name must be a string")?;
    ///         Ok(json!(format!("hello, {name}")))
    ///     })
    ///     .build()?;
    /// // The showcase tool `call_host` calls a host tool from Python.
    /// let greeting = pool.execute_blocking(
    ///     "call_host",
    ///     json!({"name": "greet", "arguments": {"name": "Ada"}}),
    /// )?;
    /// assert_eq!(greeting, json!("hello, Ada"));
    /// # Ok::<(), snakepit::Error>(())
    /// ```
    pub fn host_tool(
        mut self,
        name: impl Into<String>,
        description: impl Into<String>,
        tool: impl Fn(Value) -> Result<Value, String> + Send + Sync + 'static,
    ) -> Self {
        self.config
            .host_tools
            .push(HostTool::plain(name.into(), description.into(), tool));
        self
    }

    /// Registers a host tool that takes bytes and may return bytes, at the
    /// same size limit as tool calls
    /// ([`max_message_bytes`](PoolBuilder::max_message_bytes)).
    ///
    /// Python passes `bytes`, `bytearray` or `memoryview` keyword arguments
    /// (`call_host_tool("name", data=b"...")`); they arrive in
    /// [`HostArgs::binary`](crate::HostArgs) as they are, the other
    /// arguments in [`HostArgs::json`](crate::HostArgs). Return
    /// [`HostOutput::Bytes`](crate::HostOutput) for Python to receive
    /// `bytes`, or [`HostOutput::Json`](crate::HostOutput) for a JSON value.
    /// A result over the limit fails the call in Python with a
    /// `RuntimeError` naming the limit; arguments over it fail before they
    /// are sent. Errors and panics behave as in
    /// [`host_tool`](PoolBuilder::host_tool), which refuses bytes
    /// arguments. Binary arguments are a snakepit extension of Snakepit's
    /// protocol (`ExecuteElixirToolRequest.binary_parameters`). Default: no
    /// host tools.
    ///
    /// ```no_run
    /// use serde_json::json;
    /// use snakepit::HostOutput;
    ///
    /// let pool = snakepit::Pool::builder()
    ///     .adapter("snakepit_showcase.adapter.ShowcaseAdapter")
    ///     .host_tool_binary("checksum", "Sums the bytes of data", |args| {
    ///         let data = args.bytes("data")?;
    ///         let sum: u64 = data.iter().map(|&b| u64::from(b)).sum();
    ///         Ok(HostOutput::Json(json!(sum)))
    ///     })
    ///     .build()?;
    /// # Ok::<(), snakepit::Error>(())
    /// ```
    pub fn host_tool_binary(
        mut self,
        name: impl Into<String>,
        description: impl Into<String>,
        tool: impl Fn(HostArgs) -> Result<HostOutput, String> + Send + Sync + 'static,
    ) -> Self {
        self.config
            .host_tools
            .push(HostTool::binary(name.into(), description.into(), tool));
        self
    }

    /// Registers a host tool whose closure is also handed the [`Pool`], so
    /// it can call Python tools itself (`pool.execute_blocking(..)`).
    ///
    /// The Python worker that called the host tool stays busy until it
    /// returns, so a nested call runs on another worker: with free capacity
    /// it runs at once; when every worker is busy it waits in the queue
    /// like any call and fails with [`Error::QueueTimeout`] after the queue
    /// timeout (it cannot deadlock for longer than that). Give the pool
    /// enough workers for the nesting depth you use. The handle does not
    /// keep the pool alive: once the pool shuts down, calls fail with
    /// [`Error::ShuttingDown`] and the host tool itself fails. Repeatable;
    /// names must differ from every other host tool's. Default: no host
    /// tools.
    ///
    /// ```no_run
    /// use serde_json::json;
    ///
    /// let pool = snakepit::Pool::builder()
    ///     .adapter("snakepit_showcase.adapter.ShowcaseAdapter")
    ///     .workers(2)
    ///     .host_tool_with_pool("add_in_python", "Adds a and b on another worker", |pool, args| {
    ///         pool.execute_blocking("add", args).map_err(|e| e.to_string())
    ///     })
    ///     .build()?;
    /// let sum = pool.execute_blocking(
    ///     "call_host",
    ///     json!({"name": "add_in_python", "arguments": {"a": 1, "b": 2}}),
    /// )?;
    /// assert_eq!(sum, json!(3));
    /// # Ok::<(), snakepit::Error>(())
    /// ```
    pub fn host_tool_with_pool(
        mut self,
        name: impl Into<String>,
        description: impl Into<String>,
        tool: impl Fn(&Pool, Value) -> Result<Value, String> + Send + Sync + 'static,
    ) -> Self {
        self.config
            .host_tools
            .push(HostTool::with_pool(name.into(), description.into(), tool));
        self
    }

    /// How many host tool calls may run at once (the host's own threads;
    /// further calls wait for one). Default: 4.
    pub fn host_tool_threads(mut self, n: usize) -> Self {
        self.config.host_tool_threads = n;
        self
    }

    /// Runs workers with a script that follows the Snakepit worker contract
    /// instead of the crate's own launcher, e.g. Snakepit's
    /// `grpc_server.py`. It is started as `<python> <script> --adapter
    /// <class> --port 0 --elixir-address <host callback address>
    /// [--max-workers N]`, with `SNAKEPIT_READY_FILE` in its environment; it
    /// must wait for the host's `Ping`, then write the TCP port it listens
    /// on (on 127.0.0.1) to the ready file. The host serves the callback
    /// side it needs (`RegisterTools`, `InitializeSession`, host tools;
    /// see [`Pool::registered_tools`] and [`Pool::host_sessions`]).
    ///
    /// The crate's own Python files are not put on `PYTHONPATH` for such a
    /// script (they would shadow a `snakepit_bridge` of its own); add what
    /// it needs with [`python_path`](PoolBuilder::python_path). Default:
    /// the crate's launcher.
    pub fn worker_script(mut self, script: impl Into<PathBuf>) -> Self {
        self.config.worker_script = Some(script.into());
        self
    }

    /// How the pool talks to its workers: [`Transport::Grpc`] (the default,
    /// the Snakepit wire contract) or [`Transport::Socket`] (length-prefixed
    /// frames on Unix stream connections: several times less overhead per
    /// call, binary payloads without copies through protobuf; the crate's
    /// own worker only, so not with
    /// [`worker_script`](PoolBuilder::worker_script)).
    ///
    /// ```
    /// use snakepit::{Error, Pool, Transport};
    ///
    /// let err = Pool::builder()
    ///     .adapter("my_pkg.Adapter")
    ///     .worker_script("Cargo.toml") // any existing file
    ///     .transport(Transport::Socket)
    ///     .build()
    ///     .unwrap_err();
    /// assert!(matches!(err, Error::InvalidConfig { option: "transport", .. }));
    /// ```
    pub fn transport(mut self, transport: Transport) -> Self {
        self.config.transport = transport;
        self
    }

    /// Use workers that run elsewhere (started by Kubernetes, say, with
    /// `snakepit-worker serve`) instead of starting local processes: see
    /// [`Remote`](crate::Remote) and the README's "Running workers on
    /// Kubernetes". Default: none (local workers).
    ///
    /// The pool has one slot per endpoint, up to
    /// [`Remote::max_endpoints`](crate::Remote::max_endpoints); each
    /// endpoint's capacity is what its worker reports, and the adapter it
    /// reports must be this pool's [`adapter`](PoolBuilder::adapter).
    /// Options about local processes make no sense here and `build`
    /// refuses them with [`Error::InvalidConfig`]: `python`, `python_path`,
    /// `workers`, `profile`, `env`, `kill_hung_workers`, `max_requests`,
    /// `max_lifetime`, `max_memory`, `adapter_per_worker`, `worker_script`,
    /// host tools and [`Transport::Socket`]. Timeouts, the queue, sessions,
    /// affinity, streaming, telemetry and events work as for local
    /// workers.
    ///
    /// ```
    /// use snakepit::{Error, Pool, Remote};
    ///
    /// // Checked before anything connects: a remote pool has no `workers`.
    /// let err = Pool::builder()
    ///     .adapter("my_models.Model")
    ///     .workers(4)
    ///     .remote(Remote::endpoints(["10.0.0.7:50051"]))
    ///     .build()
    ///     .unwrap_err();
    /// assert!(matches!(err, Error::InvalidConfig { option: "workers", .. }));
    /// ```
    pub fn remote(mut self, remote: crate::remote::Remote) -> Self {
        self.config.remote = Some(remote);
        self
    }

    /// Starts every worker concurrently and blocks until all are ready.
    ///
    /// Fails with [`Error::InvalidConfig`] for an option that cannot work
    /// (before any process starts), and with [`Error::Startup`] when a worker
    /// cannot start; in both cases no process is left running.
    ///
    /// ```
    /// use snakepit::{Error, ErrorKind, Pool};
    ///
    /// // Options are checked before any process starts: no Python needed.
    /// let err = Pool::builder().adapter("NotAClassPath").build().unwrap_err();
    /// assert_eq!(err.kind(), ErrorKind::InvalidConfig);
    /// assert!(matches!(err, Error::InvalidConfig { option: "adapter", .. }));
    ///
    /// let err = Pool::builder().workers(2).build().unwrap_err(); // no adapter
    /// assert_eq!(err.kind(), ErrorKind::InvalidConfig);
    /// ```
    pub fn build(self) -> Result<Pool, Error> {
        self.validate()?;
        Pool::start(self.config)
    }

    pub(crate) fn validate(&self) -> Result<(), Error> {
        let c = &self.config;
        let invalid = |option, message: String| Err(Error::InvalidConfig { option, message });
        if let Some(remote) = &c.remote {
            remote.validate()?;
            let local_only: [(&'static str, bool); 12] = [
                ("python", c.python.is_some()),
                ("python_path", !c.python_path.is_empty()),
                ("workers", c.explicit.workers),
                ("profile", c.explicit.profile),
                ("env", !c.env.is_empty()),
                ("kill_hung_workers", c.explicit.kill_hung_workers),
                ("max_requests", c.max_requests.is_some()),
                ("max_lifetime", c.max_lifetime.is_some()),
                ("max_memory", c.max_memory.is_some()),
                ("adapter_per_worker", c.adapter_per_worker),
                ("worker_script", c.worker_script.is_some()),
                ("transport", c.transport == Transport::Socket),
            ];
            if !c.host_tools.is_empty() {
                return invalid(
                    "host_tool",
                    "host tools are called back by the worker over a private socket of this \
                     machine, which a remote worker cannot reach; remove them, or run the \
                     pool's workers locally"
                        .into(),
                );
            }
            if let Some((option, _)) = local_only.iter().find(|(_, set)| *set) {
                return invalid(
                    option,
                    format!(
                        "`{option}` is about local worker processes and does not apply to \
                         remote workers (the remote side sets it: see `snakepit-worker serve \
                         --help`); remove it, or drop `.remote(..)`"
                    ),
                );
            }
        }
        if let Err(Error::InvalidArgument { message, .. }) =
            crate::telemetry::check_sampling_rate(c.telemetry.sampling_rate)
        {
            return invalid("telemetry_sampling_rate", message);
        }
        let valid_class = c.adapter.rsplit_once('.').is_some_and(|(module, class)| {
            !module.is_empty()
                && !class.is_empty()
                && c.adapter
                    .split('.')
                    .all(|part| !part.is_empty() && !part.contains(char::is_whitespace))
        });
        if !valid_class {
            return invalid(
                "adapter",
                format!(
                    "expected a Python class path such as \"my_pkg.adapters.MyAdapter\", got {:?}",
                    c.adapter
                ),
            );
        }
        if let Some(name) = &c.name {
            if !valid_name(name) {
                return invalid(
                    "name",
                    format!("expected a non-empty name without control characters, got {name:?}"),
                );
            }
        }
        if c.workers == 0 || c.workers > 4096 {
            return invalid("workers", format!("must be 1 to 4096, got {}", c.workers));
        }
        if let Profile::Thread { threads } = c.profile {
            if threads == 0 || threads > MAX_CAPACITY {
                return invalid(
                    "profile",
                    format!("Thread {{ threads }} must be 1 to {MAX_CAPACITY}, got {threads}"),
                );
            }
        }
        if c.max_message_bytes == 0 || c.max_message_bytes > i32::MAX as usize {
            return invalid(
                "max_message_bytes",
                format!("must be 1 to {}, got {}", i32::MAX, c.max_message_bytes),
            );
        }
        if c.max_requests == Some(0) {
            return invalid(
                "max_requests",
                "must be at least 1 (None switches the limit off)".into(),
            );
        }
        if c.max_memory == Some(0) {
            return invalid(
                "max_memory",
                "must be more than 0 bytes (None switches the limit off)".into(),
            );
        }
        if c.restart_backoff.0 > c.restart_backoff.1 {
            return invalid("restart_backoff", "min must not exceed max".into());
        }
        for (name, timeout) in [
            ("startup_timeout", c.startup_timeout),
            ("call_timeout", c.call_timeout),
            ("memory_check_interval", c.memory_check_interval),
            ("health_check_timeout", c.health_check_timeout),
            ("session_idle_timeout", c.session_idle_timeout),
            ("max_lifetime", c.max_lifetime.unwrap_or(Duration::MAX)),
            (
                "health_check_interval",
                c.health_check_interval.unwrap_or(Duration::MAX),
            ),
        ] {
            if timeout.is_zero() {
                return invalid(name, "must be longer than zero".into());
            }
        }
        // Every duration, so that no pool thread can overflow `Instant`.
        for (name, d) in [
            ("startup_timeout", c.startup_timeout),
            ("queue_timeout", c.queue_timeout),
            ("call_timeout", c.call_timeout),
            ("shutdown_grace", c.shutdown_grace),
            ("restart_backoff", c.restart_backoff.1),
            ("max_lifetime", c.max_lifetime.unwrap_or_default()),
            ("max_lifetime_jitter", c.max_lifetime_jitter),
            ("memory_check_interval", c.memory_check_interval),
            (
                "health_check_interval",
                c.health_check_interval.unwrap_or_default(),
            ),
            ("health_check_timeout", c.health_check_timeout),
            ("session_idle_timeout", c.session_idle_timeout),
        ] {
            if let Err(message) = check_duration(d) {
                return invalid(name, message);
            }
        }
        if c.host_tool_threads == 0 || c.host_tool_threads > 1024 {
            return invalid(
                "host_tool_threads",
                format!("must be 1 to 1024, got {}", c.host_tool_threads),
            );
        }
        for (i, tool) in c.host_tools.iter().enumerate() {
            if tool.name.is_empty() {
                return invalid("host_tool", "a host tool needs a name".into());
            }
            if c.host_tools[..i].iter().any(|t| t.name == tool.name) {
                return invalid(
                    "host_tool",
                    format!("host tool `{}` is registered twice", tool.name),
                );
            }
        }
        if let Some(script) = &c.worker_script {
            if !script.is_file() {
                return invalid(
                    "worker_script",
                    format!("{} is not a file", script.display()),
                );
            }
            if c.transport == Transport::Socket {
                return invalid(
                    "transport",
                    "the socket transport needs the crate's own worker; a worker_script \
                     speaks gRPC only (use Transport::Grpc)"
                        .into(),
                );
            }
        }
        for (key, _) in &c.env {
            if key.is_empty() || key.contains('=') || key.contains('\0') {
                return invalid("env", format!("{key:?} is not a valid variable name"));
            }
        }
        Ok(())
    }
}

impl PoolBuilder {
    /// The options as set so far (for the configuration file and the
    /// checks that `snakepit doctor` runs).
    pub(crate) fn settings(&self) -> &Config {
        &self.config
    }

    /// Names the pool `name` unless it has a name already: a configuration
    /// file entry or a [`PoolSet`](crate::PoolSet) entry names its pool,
    /// but an explicit [`name`](PoolBuilder::name) wins. A name that could
    /// not be a pool name (empty, control characters) is not applied, so
    /// that a `PoolSet` entry's name never stops its pool from starting.
    pub(crate) fn named_unless_set(mut self, name: &str) -> Self {
        if self.config.name.is_none() && valid_name(name) {
            self.config.name = Some(name.to_owned());
        }
        self
    }
}

/// Whether `name` can qualify worker ids: thread names cannot hold NUL,
/// and log lines should not be split by a newline.
fn valid_name(name: &str) -> bool {
    !name.is_empty() && !name.chars().any(char::is_control)
}

impl std::fmt::Debug for PoolBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let c = &self.config;
        f.debug_struct("PoolBuilder")
            .field("name", &c.name)
            .field("adapter", &c.adapter)
            .field("workers", &c.workers)
            .field("profile", &c.profile)
            .field("events", &c.events)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deadline::MAX_DURATION;

    /// A setter applied to a duration.
    type Set = fn(PoolBuilder, Duration) -> PoolBuilder;

    /// Every duration setter, with the option's name.
    fn duration_setters() -> Vec<(&'static str, Set)> {
        vec![
            ("startup_timeout", |b, d| b.startup_timeout(d)),
            ("queue_timeout", |b, d| b.queue_timeout(d)),
            ("call_timeout", |b, d| b.call_timeout(d)),
            ("shutdown_grace", |b, d| b.shutdown_grace(d)),
            ("restart_backoff", |b, d| {
                b.restart_backoff(Duration::ZERO, d)
            }),
            ("max_lifetime", |b, d| b.max_lifetime(d)),
            ("max_lifetime_jitter", |b, d| b.max_lifetime_jitter(d)),
            ("memory_check_interval", |b, d| b.memory_check_interval(d)),
            ("health_check_interval", |b, d| b.health_check_interval(d)),
            ("health_check_timeout", |b, d| b.health_check_timeout(d)),
            ("session_idle_timeout", |b, d| b.session_idle_timeout(d)),
        ]
    }

    #[test]
    fn a_duration_above_the_bound_is_invalid_config_naming_the_option() {
        let base = || PoolBuilder::new().adapter("pkg.Adapter");
        let above = MAX_DURATION + Duration::from_nanos(1);
        for (name, set) in duration_setters() {
            assert!(set(base(), MAX_DURATION).validate().is_ok(), "{name}");
            for d in [above, Duration::MAX] {
                match set(base(), d).validate() {
                    Err(Error::InvalidConfig { option, message }) => {
                        assert_eq!(option, name);
                        assert!(message.contains("at most"), "{message}");
                    }
                    other => panic!("{name} = {d:?}: {:?}", other.err()),
                }
            }
        }
    }

    #[test]
    fn a_zero_duration_is_invalid_where_zero_cannot_work() {
        let base = || PoolBuilder::new().adapter("pkg.Adapter");
        for (name, set) in duration_setters() {
            let zero_is_meaningful = matches!(
                name,
                "queue_timeout" | "shutdown_grace" | "restart_backoff" | "max_lifetime_jitter"
            );
            match set(base(), Duration::ZERO).validate() {
                Ok(()) => assert!(zero_is_meaningful, "{name} = 0 was accepted"),
                Err(Error::InvalidConfig { option, .. }) => assert_eq!(option, name),
                Err(other) => panic!("{name}: {other:?}"),
            }
        }
    }

    #[test]
    fn optional_limits_take_a_value_or_none_to_switch_them_off() {
        let set = PoolBuilder::new()
            .max_requests(1000)
            .max_lifetime(Duration::from_secs(60))
            .max_memory(1 << 30)
            .health_check_interval(Duration::from_secs(5));
        let c = set.settings();
        assert_eq!(c.max_requests, Some(1000));
        assert_eq!(c.max_lifetime, Some(Duration::from_secs(60)));
        assert_eq!(c.max_memory, Some(1 << 30));
        assert_eq!(c.health_check_interval, Some(Duration::from_secs(5)));

        let off = set
            .max_requests(None)
            .max_lifetime(None)
            .max_memory(None)
            .health_check_interval(None);
        let c = off.settings();
        let limits = (
            c.max_requests,
            c.max_lifetime,
            c.max_memory,
            c.health_check_interval,
        );
        assert_eq!(limits, (None, None, None, None));
    }

    #[test]
    fn a_name_must_be_usable_in_worker_ids() {
        let builder = || PoolBuilder::new().adapter("pkg.mod.A");
        assert!(builder().name("compute").validate().is_ok());
        for bad in ["", "a\nb", "nul\0"] {
            match builder().name(bad).validate() {
                Err(Error::InvalidConfig { option, .. }) => assert_eq!(option, "name"),
                other => panic!("{bad:?}: {other:?}"),
            }
        }
        // A PoolSet entry whose name could not be a pool name leaves the
        // pool unnamed rather than failing it.
        let unnamed = builder().named_unless_set("");
        assert_eq!(unnamed.settings().name, None);
        assert!(unnamed.validate().is_ok());
    }
}
