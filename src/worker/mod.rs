//! A worker: one slot, one process at a time (two, briefly, while a
//! recycled process hands over to its replacement), and the threads that
//! serve it.
//!
//! The worker's own thread owns the processes' lives; its lanes make the
//! calls. The thread runs a supervision loop in the manner of a process
//! manager's arbiter: start a process, then repeat a short list of named
//! steps (reap, check lifetime, check memory, check health, replace,
//! drain) until something ends it, then start the next. The rules for when
//! each step acts live in `supervisor`. Every replacement retires the
//! slot's generation, so no late completion frees capacity on the new
//! process.
//!
//! Processes come from a [`Launcher`] and are talked to through a
//! [`Transport`]: the worker knows neither Python nor gRPC.

mod lane;
mod telemetry;

use std::ops::ControlFlow;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed, Ordering::SeqCst};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use parking_lot::RwLock;

use crate::deadline::later;
use crate::error::{Error, Exit};
use crate::events::{
    ExitReason, RecycleReason, WorkerExited, WorkerReady, WorkerRecycled, WorkerStarted,
};
use crate::launcher::{Launcher, Process, Target};
use crate::protocol::messages::InitializeSessionResponse;
use crate::shared::Shared;
use crate::stats::{Counters, WorkerState};
use crate::supervisor::{self, Backoff, Jitter, Schedule};
use crate::transport::{Connect, Transport, TransportError};
use crate::work::{Command, Work};
use lane::Lane;

/// One process of a worker as its lanes see it: how to reach it, how to
/// watch it, and what they count on it.
pub(crate) struct Connection {
    pub generation: u32,
    pub transport: Arc<dyn Transport>,
    pub process: Arc<dyn Process>,
    /// Calls running on this process now.
    pub in_flight: AtomicUsize,
    /// Calls this process has run.
    pub calls: AtomicU64,
    /// Its Python threads still running a call that timed out.
    pub stuck: AtomicUsize,
    /// Recycle after this many calls.
    pub max_requests: Option<u64>,
    /// The calls it runs at once: the pool's profile for a local process,
    /// what a remote worker reported for an endpoint.
    pub capacity: usize,
    /// Set when the pool stops this process to shut down: a call it loses
    /// then ends in `ShuttingDown`, not as a crash.
    pub stopping: AtomicBool,
}

impl Connection {
    /// Asks the process for its tools, outside the call path: counted in
    /// flight while it runs, so a drain waits for it.
    pub fn describe(&self, timeout: Duration) -> Result<InitializeSessionResponse, TransportError> {
        self.in_flight.fetch_add(1, Relaxed);
        let described = self.transport.describe(timeout);
        self.in_flight.fetch_sub(1, Relaxed);
        described
    }
}

/// What a worker's own thread is told.
#[derive(Debug)]
pub(crate) enum Control {
    /// The process of that generation ended.
    Exited { generation: u32, exit: Exit },
    /// A call on that generation ran past its timeout and the process is
    /// presumed stuck in it.
    Hung { generation: u32 },
    /// The process of that generation broke the transport's protocol (a
    /// garbled reply): it is killed and replaced.
    Broken { generation: u32 },
    /// Take the process of that generation out of service without a
    /// replacement: a remote endpoint that left. Its calls finish first.
    Withdrawn { generation: u32 },
    /// Replace the process of that generation (any, when `None`).
    Recycle {
        generation: Option<u32>,
        reason: RecycleReason,
    },
    /// Stop: drain, terminate, and end the thread.
    Shutdown,
}

/// The pool's handle on a worker.
pub(crate) struct WorkerHandle {
    pub control: Sender<Control>,
    pub thread: JoinHandle<()>,
    /// The process serving now, if any: for requests outside the call path
    /// (listing the tools).
    pub current: Arc<RwLock<Option<Arc<Connection>>>>,
}

/// What a worker needs to run, besides the pool's shared state.
pub(crate) struct WorkerSetup {
    pub slot: usize,
    pub shared: Arc<Shared>,
    pub launcher: Arc<dyn Launcher>,
    pub connector: Arc<dyn Connect>,
    pub jobs: Receiver<Work>,
    pub resubmit: Sender<Command>,
    /// Told once whether the first process became ready.
    /// Taken when used, so that the pool's start sees the channel
    /// disconnect once every worker has answered or died.
    pub first_ready: Option<Sender<Result<(), Error>>>,
    /// Whether a failed first start is retried (a remote endpoint, where
    /// one bad endpoint must not end the slot) rather than ending the
    /// worker (a local pool's start fails as a whole).
    pub retry_first_start: bool,
}

impl WorkerHandle {
    /// Starts the worker's thread, which starts its first process.
    pub fn spawn(setup: WorkerSetup) -> WorkerHandle {
        let (control_tx, control_rx) = crossbeam_channel::unbounded();
        let name = format!("snakepit-{}", setup.shared.worker(setup.slot).id);
        let worker = Worker::new(setup, control_tx.clone(), control_rx);
        let current = worker.current.clone();
        let thread = thread::Builder::new()
            .name(name)
            .spawn(move || worker.run())
            .expect("spawning a worker thread");
        WorkerHandle {
            control: control_tx,
            thread,
            current,
        }
    }
}

struct Worker {
    setup: WorkerSetup,
    control_tx: Sender<Control>,
    control: Receiver<Control>,
    current: Arc<RwLock<Option<Arc<Connection>>>>,
    lanes: Vec<JoinHandle<()>>,
    backoff: Backoff,
    jitter: Jitter,
    generation: u32,
    /// Recycled processes still finishing their calls.
    retiring: Vec<JoinHandle<()>>,
    /// A process launched and not yet live, to kill if this thread panics.
    starting: Option<Arc<dyn Process>>,
    /// Processes started so far (the first is not a restart).
    starts: u64,
}

/// A process that is serving.
struct Serving {
    conn: Arc<Connection>,
    started: Instant,
    retire_at: Option<Instant>,
}

/// Why a process stopped serving.
enum Ending {
    Crashed(Exit),
    Killed(ExitReason),
    Shutdown,
    /// A remote endpoint left: drained, and the slot waits for another.
    Withdrawn,
}

/// Why a start did not produce a serving process.
enum StartFailed {
    /// The worker itself failed (import or constructor error, an exit of
    /// its own, a start-up timeout): counts toward the crash-loop rule.
    Broken(Error),
    /// A signal from outside ended the process before it was ready: not
    /// the adapter's fault, so it is only retried.
    Killed(Error),
}

impl StartFailed {
    fn into_error(self) -> Error {
        match self {
            StartFailed::Broken(e) | StartFailed::Killed(e) => e,
        }
    }
}

/// How long a failed start waits to learn whether its process is gone,
/// when the failure (a refused ping) came before the exit was reaped.
const EXIT_CONFIRM: Duration = Duration::from_millis(200);

/// What one step of the supervision loop decided.
enum Verdict {
    /// Replace the process with a fresh one, draining the old.
    Replace(RecycleReason),
    /// Take the process out of service.
    End(Ending),
}

impl Worker {
    fn new(setup: WorkerSetup, control_tx: Sender<Control>, control: Receiver<Control>) -> Self {
        let (min, max) = setup.shared.config().restart_backoff;
        let seed = (setup.slot as u64 + 1) * 0x9e37_79b9_7f4a_7c15;
        Worker {
            setup,
            control_tx,
            control,
            current: Arc::new(RwLock::new(None)),
            lanes: Vec::new(),
            backoff: Backoff::new(min, max),
            jitter: Jitter::new(seed),
            generation: 0,
            retiring: Vec::new(),
            starting: None,
            starts: 0,
        }
    }

    fn shared(&self) -> &Shared {
        &self.setup.shared
    }

    fn id(&self) -> &str {
        &self.setup.shared.worker(self.setup.slot).id
    }

    /// Start, serve, replace, until the pool shuts down. A panic on this
    /// thread (a bug) is caught per process: the process is killed and a
    /// new one started after the backoff, so the slot never stays dead.
    fn run(mut self) {
        self.start_lanes();
        loop {
            match crate::panics::catch(|| self.cycle()) {
                Ok(ControlFlow::Continue(())) => {}
                Ok(ControlFlow::Break(())) => break,
                Err(message) => {
                    if !self.recover(&message) {
                        break;
                    }
                }
            }
        }
        self.stop();
    }

    /// One process's life: start it, serve until it ends, then back off if
    /// it failed. `Break` ends the worker.
    fn cycle(&mut self) -> ControlFlow<()> {
        if self.starts > 0 {
            self.count_restart();
        }
        self.starts += 1;
        self.generation = self.shared().slots().retire(self.setup.slot);
        let serving = match self.start(self.generation) {
            Ok(serving) => serving,
            Err(_) if self.shared().is_closing() => return ControlFlow::Break(()),
            Err(failed) => {
                if let Some(ready) = self.setup.first_ready.take() {
                    if !self.setup.retry_first_start {
                        let _ = ready.send(Err(failed.into_error()));
                        return ControlFlow::Break(());
                    }
                    let err = failed.into_error();
                    let _ = ready.send(Err(err.clone()));
                    self.shared().note_start_failure(self.setup.slot, err);
                    return self.pause_or_stop();
                }
                match failed {
                    StartFailed::Broken(err) => {
                        self.shared().note_start_failure(self.setup.slot, err)
                    }
                    // Calls keep waiting in the queue: this worker can
                    // still become ready.
                    StartFailed::Killed(err) => log::warn!("{err}; starting again"),
                }
                return self.pause_or_stop();
            }
        };
        self.go_live(&serving);
        if let Some(ready) = self.setup.first_ready.take() {
            let _ = ready.send(Ok(()));
        }
        match self.serve(serving) {
            Ending::Shutdown => ControlFlow::Break(()),
            Ending::Killed(_) | Ending::Withdrawn => {
                self.backoff.reset();
                ControlFlow::Continue(())
            }
            Ending::Crashed(_) => self.pause_or_stop(),
        }
    }

    /// Waits out the backoff; `Break` when told to stop meanwhile.
    fn pause_or_stop(&mut self) -> ControlFlow<()> {
        if self.pause() {
            ControlFlow::Continue(())
        } else {
            ControlFlow::Break(())
        }
    }

    /// After this thread panicked: kills the processes it was starting or
    /// serving (their calls fail as crashed, or go to another worker when
    /// idempotent), then waits out the backoff before the next start.
    /// During the pool's start the build fails instead. False when the
    /// worker is to end.
    fn recover(&mut self, message: &str) -> bool {
        let shared = self.setup.shared.clone();
        let info = shared.worker(self.setup.slot);
        log::error!(
            "{}: the worker's thread panicked (a bug; its process is killed and \
             started again): {message}",
            info.id
        );
        if let Some(process) = self.starting.take() {
            process.kill();
        }
        let current = self.current.write().take();
        self.take_offline();
        if let Some(conn) = current {
            conn.process.kill();
            info.set_pid(None);
            shared.events().worker_exited(&WorkerExited {
                worker: info.id.clone(),
                pid: conn.process.pid().unwrap_or(0),
                endpoint: conn.process.endpoint().map(str::to_owned),
                reason: ExitReason::Internal,
            });
        }
        if let Some(ready) = self.setup.first_ready.take() {
            let _ = ready.send(Err(Error::PoolStart {
                message: format!("a worker thread panicked during start-up: {message}"),
            }));
            return false;
        }
        !shared.is_closing() && self.pause()
    }

    /// Launches a process for `generation` and waits until it answers.
    /// Touches no slot: the caller decides when it goes live.
    fn start(&mut self, generation: u32) -> Result<Serving, StartFailed> {
        let shared = self.setup.shared.clone();
        let info = shared.worker(self.setup.slot);
        let control = self.control_tx.clone();
        let startup_error = |message: String| Error::Startup {
            worker: info.id.clone(),
            message,
        };
        let launched = Instant::now();
        let target = Target {
            worker: &info.id,
            slot: self.setup.slot,
            generation,
        };
        let on_exit = Box::new(move |exit| {
            let _ = control.send(Control::Exited { generation, exit });
        });
        let control = self.control_tx.clone();
        let on_withdraw = Box::new(move || {
            let _ = control.send(Control::Withdrawn { generation });
        });
        // A remote slot may wait here for discovery to bind it: it is
        // spare then, and what its last endpoint did is no longer its
        // failure (calls wait for an endpoint rather than fail with it).
        let remote = shared.config().remote.is_some();
        if remote && !self.setup.launcher.is_bound(self.setup.slot) {
            info.set_state(WorkerState::Unbound);
            info.set_failing(false);
        }
        let process = self
            .setup
            .launcher
            .launch(target, on_exit, on_withdraw)
            .map_err(|m| StartFailed::Broken(startup_error(m)))?;
        if remote {
            info.set_state(WorkerState::Starting);
        }
        self.starting = Some(process.clone());
        let pid = process.pid().unwrap_or(0);
        let endpoint = process.endpoint().map(str::to_owned);
        shared.events().worker_started(&WorkerStarted {
            worker: info.id.clone(),
            pid,
            endpoint: endpoint.clone(),
        });
        let config = shared.config();
        let ready = process
            .wait_ready(config.startup_timeout, &|| shared.is_closing())
            .map_err(Refusal::Other)
            .and_then(|address| {
                let transport = self
                    .setup
                    .connector
                    .connect(&address)
                    .map_err(Refusal::Other)?;
                // One round trip before taking calls: the connection is up
                // and the service answers, so the first call pays no
                // connection set-up.
                let remaining = config
                    .startup_timeout
                    .saturating_sub(launched.elapsed())
                    .max(Duration::from_secs(1));
                // A local process may not listen yet: its connection is
                // waited for. A remote endpoint's first connection attempt
                // decides, so that a refused TLS handshake reports its own
                // message rather than a deadline (its slot tries again
                // after the backoff).
                let pong = transport
                    .ping(&info.id, remaining, endpoint.is_none())
                    .map_err(|e| Refusal::Ping(address.clone(), e))?;
                Ok((transport, pong))
            });
        let (transport, pong) = match ready {
            Ok(ready) => ready,
            Err(refusal) => {
                self.starting = None;
                let exit = process.wait_exit(EXIT_CONFIRM);
                process.kill();
                if let Refusal::Ping(_, TransportError::Draining(_)) = &refusal {
                    // A remote endpoint that is stopping: not its fault.
                    process.stopping();
                    return Err(StartFailed::Killed(startup_error(refusal.to_string())));
                }
                let tls = config.remote.as_ref().is_some_and(|r| r.tls.is_some());
                let err = match (&endpoint, refusal) {
                    (Some(endpoint), Refusal::Ping(_, e)) => remote_refusal(endpoint, tls, e),
                    (_, refusal) => startup_error(refusal.to_string()),
                };
                return Err(match exit {
                    Some(exit) if killed_from_outside(exit) && !shared.is_closing() => {
                        StartFailed::Killed(err)
                    }
                    _ => StartFailed::Broken(err),
                });
            }
        };
        let capacity = match &endpoint {
            None => config.profile.capacity(),
            Some(endpoint) => {
                if !pong.adapter.is_empty() && pong.adapter != config.adapter {
                    process.kill();
                    self.starting = None;
                    return Err(StartFailed::Broken(startup_error(format!(
                        "endpoint {endpoint} serves the adapter `{}`, but this pool is for `{}`",
                        pong.adapter, config.adapter
                    ))));
                }
                let most = config
                    .remote
                    .as_ref()
                    .map_or(1, |r| r.max_calls_per_endpoint);
                pong.capacity.clamp(1, most)
            }
        };
        let conn = Arc::new(Connection {
            generation,
            transport,
            process,
            in_flight: AtomicUsize::new(0),
            calls: AtomicU64::new(0),
            stuck: AtomicUsize::new(0),
            max_requests: supervisor::request_limit(config, &mut self.jitter),
            capacity,
            stopping: AtomicBool::new(false),
        });
        let now = Instant::now();
        let retire_at = supervisor::lifetime_end(config, now, &mut self.jitter);
        shared.events().worker_ready(&WorkerReady {
            worker: info.id.clone(),
            pid,
            endpoint,
            startup: launched.elapsed(),
        });
        Ok(Serving {
            conn,
            started: now,
            retire_at,
        })
    }

    /// Makes `serving` the slot's process: lanes use it, the slot opens.
    fn go_live(&mut self, serving: &Serving) {
        let shared = self.setup.shared.clone();
        let info = shared.worker(self.setup.slot);
        *self.current.write() = Some(serving.conn.clone());
        self.starting = None;
        info.set_pid(serving.conn.process.pid());
        info.set_failing(false);
        info.stuck.store(0, SeqCst);
        let capacity = serving.conn.capacity;
        self.add_lanes(capacity);
        info.set_endpoint(serving.conn.process.endpoint());
        shared
            .slots()
            .install(self.setup.slot, serving.conn.generation, capacity as u16);
        info.set_state(WorkerState::Ready);
        // A fresh telemetry stream for each process; the last process's
        // stream reads on until that process ends.
        match serving.conn.transport.telemetry() {
            Ok(feed) => telemetry::start_pump(&shared, self.setup.slot, feed),
            Err(e) => log::debug!("{}: no telemetry stream: {e}", info.id),
        }
        // Calls may have queued while no worker was ready.
        shared.ring_doorbell();
    }

    /// The supervision loop: serves until the process ends or the worker is
    /// told to stop; on a recycle, hands over to the replacement and goes
    /// on serving.
    fn serve(&mut self, mut serving: Serving) -> Ending {
        let shared = self.setup.shared.clone();
        let mut schedule = Schedule::new(shared.config(), Instant::now(), serving.retire_at);
        loop {
            let verdict = match self.next_message(&schedule) {
                Some(message) => self.reap(message, &serving),
                None => {
                    let now = Instant::now();
                    self.check_lifetime(&mut schedule, now)
                        .or_else(|| self.retry_replacement(&mut schedule, now))
                        .or_else(|| self.check_memory(&mut schedule, now, &serving))
                        .or_else(|| self.check_health(&mut schedule, now, &serving))
                }
            };
            match verdict {
                None => {}
                Some(Verdict::Replace(reason)) => {
                    serving = self.replace(serving, reason, &mut schedule);
                }
                Some(Verdict::End(ending)) => return self.end(serving, ending),
            }
        }
    }

    /// Waits for a control message until the next check is due; `None`
    /// when a check is due. A closed channel reads as a shutdown.
    fn next_message(&self, schedule: &Schedule) -> Option<Control> {
        let received = match schedule.next_wake() {
            Some(at) => self.control.recv_deadline(at),
            None => self
                .control
                .recv()
                .map_err(|_| RecvTimeoutError::Disconnected),
        };
        match received {
            Ok(message) => Some(message),
            Err(RecvTimeoutError::Disconnected) => Some(Control::Shutdown),
            Err(RecvTimeoutError::Timeout) => None,
        }
    }

    /// Acts on a message about the serving process: its death, a hung
    /// call, a recycle request, shutdown. Messages about processes already
    /// replaced are stale and ignored.
    fn reap(&self, message: Control, serving: &Serving) -> Option<Verdict> {
        let generation = serving.conn.generation;
        match message {
            Control::Exited {
                generation: g,
                exit,
            } if g == generation => Some(Verdict::End(Ending::Crashed(exit))),
            Control::Hung { generation: g } if g == generation => {
                Some(Verdict::End(Ending::Killed(ExitReason::Hung)))
            }
            Control::Broken { generation: g } if g == generation => {
                Some(Verdict::End(Ending::Killed(ExitReason::Unhealthy)))
            }
            Control::Withdrawn { generation: g } if g == generation => {
                Some(Verdict::End(Ending::Withdrawn))
            }
            Control::Recycle {
                generation: g,
                reason,
            } if g.is_none() || g == Some(generation) => Some(Verdict::Replace(reason)),
            Control::Shutdown => Some(Verdict::End(Ending::Shutdown)),
            _ => None,
        }
    }

    /// Replaces a process that has lived its `max_lifetime`.
    fn check_lifetime(&self, schedule: &mut Schedule, now: Instant) -> Option<Verdict> {
        schedule
            .lifetime_due(now)
            .then_some(Verdict::Replace(RecycleReason::MaxLifetime))
    }

    /// Tries again a replacement that failed earlier.
    fn retry_replacement(&self, schedule: &mut Schedule, now: Instant) -> Option<Verdict> {
        schedule.retry_due(now).map(Verdict::Replace)
    }

    /// Replaces a process whose resident memory passed `max_memory`.
    fn check_memory(
        &self,
        schedule: &mut Schedule,
        now: Instant,
        serving: &Serving,
    ) -> Option<Verdict> {
        let config = self.shared().config();
        if !schedule.memory_due(now, config) {
            return None;
        }
        let rss = serving.conn.process.resident_bytes();
        supervisor::over_memory(rss, config.max_memory)
            .then_some(Verdict::Replace(RecycleReason::Memory))
    }

    /// Kills a process that does not answer a health check.
    fn check_health(
        &self,
        schedule: &mut Schedule,
        now: Instant,
        serving: &Serving,
    ) -> Option<Verdict> {
        if !schedule.health_due(now, self.shared().config()) || self.healthy(&serving.conn) {
            return None;
        }
        let ending = match serving.conn.process.exit_status() {
            Some(exit) => Ending::Crashed(exit),
            None => Ending::Killed(ExitReason::Unhealthy),
        };
        Some(Verdict::End(ending))
    }

    /// Pings the process, busy or idle: the Python server keeps threads
    /// beyond its calls' for pings, so a process whose calls are all hung
    /// (or that is stopped) is judged like an idle one.
    fn healthy(&self, conn: &Connection) -> bool {
        let timeout = self.shared().config().health_check_timeout;
        conn.transport.ping(self.id(), timeout, false).is_ok()
    }

    /// Replaces `old` with a fresh process, started first so capacity does
    /// not dip, and drains `old`. When the fresh one cannot start, `old`
    /// goes on serving and the replacement is tried again after a backoff.
    fn replace(&mut self, old: Serving, reason: RecycleReason, schedule: &mut Schedule) -> Serving {
        let shared = self.setup.shared.clone();
        let info = shared.worker(self.setup.slot);
        shared.events().worker_recycled(&WorkerRecycled {
            worker: info.id.clone(),
            pid: old.conn.process.pid().unwrap_or(0),
            reason,
        });
        let next_generation = self.generation.wrapping_add(1);
        let fresh = match self.start(next_generation) {
            Ok(fresh) => fresh,
            Err(failed) => {
                let err = failed.into_error();
                log::error!(
                    "{}: replacement failed, keeping the old process: {err}",
                    self.id()
                );
                schedule.retry_at(later(Instant::now(), self.backoff.next_delay()), reason);
                return old;
            }
        };
        // Hand over: from here no new call reaches the old process; jobs
        // already queued for it go back to the dispatcher.
        self.generation = next_generation;
        // Counted before the new process takes calls, so a caller that
        // reaches it already sees the recycle in the stats.
        shared.counters().count_recycle(reason);
        self.count_restart();
        self.go_live(&fresh);
        schedule.replaced(fresh.retire_at);
        self.drain(old.conn, reason);
        fresh
    }

    /// Lets a replaced process finish its calls in flight on a thread of
    /// its own, so this thread goes on watching the new one.
    fn drain(&mut self, conn: Arc<Connection>, reason: RecycleReason) {
        let shared = self.setup.shared.clone();
        let worker = self.id().to_owned();
        let retiring = thread::Builder::new()
            .name(format!("snakepit-{worker}-retire"))
            .spawn(move || {
                let process = conn.process.clone();
                if let Err(message) = crate::panics::catch(|| retire(conn, shared, worker, reason))
                {
                    log::error!("retiring a process panicked (it is killed): {message}");
                    process.kill();
                }
            })
            .expect("spawning a retiring thread");
        self.retiring.retain(|t| !t.is_finished());
        self.retiring.push(retiring);
    }

    /// Takes the process out of service for `ending`.
    fn end(&mut self, serving: Serving, ending: Ending) -> Ending {
        let shared = self.setup.shared.clone();
        let slot = self.setup.slot;
        let info = shared.worker(slot);
        let serving_for = serving.started.elapsed();
        let Serving { conn, .. } = serving;
        let process = &conn.process;
        let reason = match &ending {
            Ending::Crashed(exit) => {
                self.take_offline();
                // A process that served a while earns a quick restart.
                if serving_for > self.backoff.max() {
                    self.backoff.reset();
                }
                Counters::bump(&shared.counters().crashes);
                match process.endpoint() {
                    Some(endpoint) => log::warn!(
                        "{} (endpoint {endpoint}): the connection to it broke",
                        info.id
                    ),
                    None => log::warn!(
                        "{} ({}) {exit}; last stderr: {}",
                        info.id,
                        process.identity(),
                        process.stderr_tail(Duration::ZERO).join(" | ")
                    ),
                }
                process.kill();
                ExitReason::Crashed(*exit)
            }
            Ending::Killed(reason) => {
                self.take_offline();
                let counter = match reason {
                    ExitReason::Hung => &shared.counters().hung_killed,
                    _ => &shared.counters().unhealthy_killed,
                };
                Counters::bump(counter);
                process.kill();
                reason.clone()
            }
            Ending::Withdrawn => {
                let config = shared.config();
                // A remote endpoint that ended meanwhile finishes nothing more.
                self.drain_in_place(
                    config.call_timeout.saturating_add(config.shutdown_grace),
                    || process.exit_status().is_some(),
                );
                self.backoff.reset();
                process.terminate(Duration::ZERO);
                ExitReason::Withdrawn
            }
            Ending::Shutdown => {
                let grace = shared.config().shutdown_grace;
                self.drain_in_place(grace, || false);
                conn.stopping.store(true, SeqCst);
                process.terminate(grace);
                ExitReason::Shutdown
            }
        };
        info.set_pid(None);
        info.set_endpoint(None);
        shared.events().worker_exited(&WorkerExited {
            worker: info.id.clone(),
            pid: process.pid().unwrap_or(0),
            endpoint: process.endpoint().map(str::to_owned),
            reason,
        });
        ending
    }

    /// Takes the serving process out of service without a replacement:
    /// no new call is placed on it, and the calls on it get up to `within`
    /// to finish (or until `gone` says nothing more will), then the slot
    /// goes offline.
    fn drain_in_place(&mut self, within: Duration, gone: impl Fn() -> bool) {
        let shared = self.setup.shared.clone();
        let slot = self.setup.slot;
        shared.worker(slot).set_state(WorkerState::Draining);
        shared.slots().drain(slot);
        supervisor::wait_for(within, || shared.slots().state(slot).load == 0 || gone());
        self.take_offline();
    }

    /// No new call reaches the current process.
    fn take_offline(&mut self) {
        self.generation = self.shared().slots().retire(self.setup.slot);
        *self.current.write() = None;
        self.shared()
            .worker(self.setup.slot)
            .set_state(WorkerState::Starting);
    }

    fn count_restart(&self) {
        let info = self.shared().worker(self.setup.slot);
        info.restarts.fetch_add(1, Relaxed);
        Counters::bump(&self.shared().counters().restarts);
    }

    /// Waits out the backoff before the next start. False when told to stop
    /// meanwhile.
    fn pause(&mut self) -> bool {
        let info = self.setup.shared.worker(self.setup.slot);
        info.set_state(WorkerState::BackingOff);
        let deadline = later(Instant::now(), self.backoff.next_delay());
        loop {
            match self.control.recv_deadline(deadline) {
                Ok(Control::Shutdown) | Err(RecvTimeoutError::Disconnected) => return false,
                Ok(_) => continue,
                Err(RecvTimeoutError::Timeout) => {
                    info.set_state(WorkerState::Starting);
                    return true;
                }
            }
        }
    }

    /// The lanes of a local worker, one per call its processes run at
    /// once. A remote worker starts none: it adds them as endpoints report
    /// their capacity.
    fn start_lanes(&mut self) {
        if self.shared().config().remote.is_none() {
            self.add_lanes(self.shared().config().profile.capacity());
        }
    }

    /// Starts lanes until there are `capacity`. Lanes are never removed: a
    /// slot whose next process runs fewer calls leaves the rest idle (the
    /// slot's capacity, not the lane count, bounds what is placed there).
    fn add_lanes(&mut self, capacity: usize) {
        let shared = &self.setup.shared;
        for n in self.lanes.len()..capacity {
            let lane = Lane {
                slot: self.setup.slot,
                shared: shared.clone(),
                jobs: self.setup.jobs.clone(),
                current: self.current.clone(),
                control: self.control_tx.clone(),
                resubmit: self.setup.resubmit.clone(),
                holding: std::cell::Cell::new(None),
            };
            let name = format!("snakepit-{}-lane-{n}", self.id());
            self.lanes.push(
                thread::Builder::new()
                    .name(name)
                    .spawn(move || lane.run())
                    .expect("spawning a lane thread"),
            );
        }
    }

    fn stop(&mut self) {
        self.take_offline();
        for t in self.retiring.drain(..) {
            let _ = t.join();
        }
        let info = self.shared().worker(self.setup.slot);
        info.set_pid(None);
        info.set_state(WorkerState::Stopped);
        // Lanes end once the dispatcher has dropped its job senders.
        for lane in self.lanes.drain(..) {
            let _ = lane.join();
        }
    }
}

/// Why a launched process did not become ready.
enum Refusal {
    /// It did not answer the first ping at this address.
    Ping(String, TransportError),
    /// It never reported an address, or it could not be connected to.
    Other(String),
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::Ping(address, e) => {
                write!(
                    f,
                    "reported ready at {address} but did not answer a ping: {e}"
                )
            }
            Refusal::Other(message) => f.write_str(message),
        }
    }
}

/// The error of a remote endpoint that refused the first ping: a bad
/// token and a failed TLS handshake get their own errors, anything else
/// is a start-up failure naming the endpoint.
fn remote_refusal(endpoint: &str, tls: bool, e: TransportError) -> Error {
    match e {
        TransportError::Failed { code, message } if code == "UNAUTHENTICATED" => {
            Error::Unauthenticated {
                endpoint: endpoint.to_owned(),
                message,
            }
        }
        TransportError::Failed { message, .. } if tls && is_tls_failure(&message) => Error::Tls {
            endpoint: endpoint.to_owned(),
            message,
        },
        // The worker accepted the connection and closed it in the
        // handshake without a word: under TLS 1.3 that is how a server that
        // wants a client certificate refuses one it did not get (or does
        // not trust).
        TransportError::Failed { message, .. } if tls && message.contains("Socket closed") => {
            Error::Tls {
                endpoint: endpoint.to_owned(),
                message: format!(
                    "{message} (the worker closed the connection during the TLS handshake: \
                     it may require a client certificate, see Tls::identity_files, or not \
                     trust the one presented)"
                ),
            }
        }
        e => Error::Startup {
            worker: format!("endpoint {endpoint}"),
            message: format!("did not answer a ping: {e}"),
        },
    }
}

/// Whether gRPC's message for a failed connection is a TLS handshake's.
fn is_tls_failure(message: &str) -> bool {
    let lower = message.to_ascii_lowercase();
    ["ssl", "tls", "handshake", "certificate", "peer name"]
        .iter()
        .any(|needle| lower.contains(needle))
}

/// Whether `exit` is a signal someone sent the process (an operator, the
/// OOM killer, a supervisor), rather than a failure of its own: a crash of
/// the interpreter (SIGSEGV, SIGABRT) or an exit code is the worker's.
fn killed_from_outside(exit: Exit) -> bool {
    exit.code.is_none()
        && matches!(
            exit.signal,
            Some(libc::SIGKILL | libc::SIGTERM | libc::SIGINT | libc::SIGHUP)
        )
}

/// Lets a recycled process finish its calls in flight, then stops it. On
/// shutdown its calls get the shutdown grace period, as any other's.
fn retire(conn: Arc<Connection>, shared: Arc<Shared>, worker: String, reason: RecycleReason) {
    let config = shared.config();
    let started = Instant::now();
    supervisor::wait_for(
        config.call_timeout.saturating_add(config.shutdown_grace),
        || {
            conn.in_flight.load(Relaxed) == 0
                || conn.process.exit_status().is_some()
                || (shared.is_closing() && started.elapsed() > config.shutdown_grace)
        },
    );
    if shared.is_closing() {
        conn.stopping.store(true, SeqCst);
    }
    conn.process.terminate(config.shutdown_grace);
    shared.events().worker_exited(&WorkerExited {
        worker,
        pid: conn.process.pid().unwrap_or(0),
        endpoint: conn.process.endpoint().map(str::to_owned),
        reason: ExitReason::Recycled(reason),
    });
}
