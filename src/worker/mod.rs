//! A worker: one slot, one Python process at a time (two, briefly, while a
//! recycled process hands over to its replacement), and the threads that
//! serve it.
//!
//! The worker's own thread owns the processes' lives; its lanes make the
//! calls. The thread's loop is a short list of lifecycle rules, in the
//! manner of a process manager's arbiter: start a process, serve until
//! something ends it (crash, hung call, failed health check, recycle,
//! shutdown), replace it. Every replacement retires the slot's generation,
//! so no late completion frees capacity on the new process.

mod lane;
pub(crate) mod process;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use grpcio::{CallOption, ChannelBuilder, Client, Environment};
use parking_lot::RwLock;

use crate::call::Request;
use crate::dispatcher::Command;
use crate::error::{Error, Exit};
use crate::events::{
    ExitReason, RecycleReason, WorkerExited, WorkerReady, WorkerRecycled, WorkerStarted,
};
use crate::pool::Shared;
use crate::protocol::messages::PingRequest;
use crate::protocol::service;
use crate::slots::Ticket;
use crate::stats::{Counters, WorkerState};
use crate::supervisor::{self, Backoff, Jitter};
use lane::Lane;
use process::{LaunchSpec, PythonProcess, StartFailure};

/// A call placed on a worker: the request and the capacity it holds.
#[derive(Debug)]
pub(crate) struct Job {
    pub req: Request,
    pub ticket: Ticket,
}

/// What a worker's lanes are handed.
#[derive(Debug)]
// Nearly every item is a `Call`; boxing it would add an allocation per call.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Work {
    /// Run a call.
    Call(Job),
    /// Tell the process of that generation to free a session's state.
    CleanupSession { session: String, generation: u32 },
}

/// The gRPC connection to one process of a worker, and what the lanes
/// count on it.
pub(crate) struct Connection {
    pub generation: u32,
    pub pid: u32,
    pub client: Client,
    pub exit: Arc<process::ExitWatch>,
    pub stderr: Arc<process::StderrTail>,
    /// Calls running on this process now.
    pub in_flight: AtomicUsize,
    /// Calls this process has run.
    pub calls: AtomicU64,
    /// Recycle after this many calls.
    pub max_requests: Option<u64>,
}

/// What a worker's own thread is told.
#[derive(Debug)]
pub(crate) enum Control {
    /// The process of that generation ended.
    Exited { generation: u32, exit: Exit },
    /// A call on that generation ran past its timeout and the process is
    /// presumed stuck in it.
    Hung { generation: u32 },
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
    pub spec: Arc<LaunchSpec>,
    pub socket_dir: PathBuf,
    pub env: Arc<Environment>,
    pub jobs: Receiver<Work>,
    pub resubmit: Sender<Command>,
    /// Told once whether the first process became ready.
    pub first_ready: Sender<Result<(), Error>>,
}

impl WorkerHandle {
    pub fn spawn(setup: WorkerSetup) -> WorkerHandle {
        let (control_tx, control_rx) = crossbeam_channel::unbounded();
        let name = format!("snakepit-{}", setup.shared.workers[setup.slot].id);
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
}

/// A process that is serving.
struct Serving {
    process: PythonProcess,
    conn: Arc<Connection>,
    started: Instant,
    retire_at: Option<Instant>,
}

/// Why a process stopped serving.
enum Ending {
    Crashed(Exit),
    Killed(ExitReason),
    Shutdown,
}

impl Worker {
    fn new(setup: WorkerSetup, control_tx: Sender<Control>, control: Receiver<Control>) -> Self {
        let (min, max) = setup.shared.config.restart_backoff;
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
        }
    }

    fn shared(&self) -> &Shared {
        &self.setup.shared
    }

    fn id(&self) -> &str {
        &self.setup.shared.workers[self.setup.slot].id
    }

    fn run(mut self) {
        self.start_lanes();
        let mut first = true;
        loop {
            if !first {
                self.count_restart();
            }
            self.generation = self.shared().slots.retire(self.setup.slot);
            let serving = match self.start(self.generation) {
                Ok(serving) => serving,
                Err(err) => {
                    if first {
                        let _ = self.setup.first_ready.send(Err(err));
                        break;
                    }
                    self.note_start_failure(err);
                    if !self.pause() {
                        break;
                    }
                    continue;
                }
            };
            self.go_live(&serving);
            if first {
                let _ = self.setup.first_ready.send(Ok(()));
                first = false;
            }
            match self.serve(serving) {
                Ending::Shutdown => break,
                Ending::Killed(_) => self.backoff.reset(),
                Ending::Crashed(_) => {
                    if !self.pause() {
                        break;
                    }
                }
            }
        }
        self.stop();
    }

    /// Launches a process for `generation` and waits until it answers.
    /// Touches no slot: the caller decides when it goes live.
    fn start(&mut self, generation: u32) -> Result<Serving, Error> {
        let shared = self.setup.shared.clone();
        let info = &shared.workers[self.setup.slot];
        let socket = self
            .setup
            .socket_dir
            .join(format!("w{}-{generation}.sock", self.setup.slot));
        let control = self.control_tx.clone();
        let startup_error = |message: String| Error::Startup {
            worker: info.id.clone(),
            message,
        };
        let launched = Instant::now();
        let process = PythonProcess::launch(
            &self.setup.spec,
            &info.id,
            self.setup.slot,
            &socket,
            move |exit| {
                let _ = control.send(Control::Exited { generation, exit });
            },
        )
        .map_err(|f| startup_error(describe(&self.setup.spec, f)))?;
        let pid = process.pid();
        shared.events.worker_started(&WorkerStarted {
            worker: info.id.clone(),
            pid,
        });

        let address =
            match process.wait_ready(shared.config.startup_timeout, || shared.is_closing()) {
                Ok(address) => address,
                Err(f) => {
                    let mut process = process;
                    process.kill();
                    return Err(startup_error(describe(&self.setup.spec, f)));
                }
            };
        let max = shared.config.max_message_bytes as i32;
        let channel = ChannelBuilder::new(self.setup.env.clone())
            .max_send_message_len(max)
            .max_receive_message_len(max)
            .connect(&address);
        let client = Client::new(channel);
        // One round trip before taking calls: the connection is up and the
        // service answers, so the first call pays no connection set-up.
        let remaining = shared
            .config
            .startup_timeout
            .saturating_sub(launched.elapsed())
            .max(Duration::from_secs(1));
        if let Err(e) = ping(&client, &info.id, remaining, true) {
            let mut process = process;
            process.kill();
            return Err(startup_error(format!(
                "reported ready at {address} but did not answer a ping: {e}"
            )));
        }
        let config = &shared.config;
        let max_requests = config
            .max_requests
            .map(|n| n + self.jitter.below(config.max_requests_jitter + 1));
        let retire_at = config.max_lifetime.map(|life| {
            let jitter_ms = config.max_lifetime_jitter.as_millis() as u64;
            Instant::now() + life + Duration::from_millis(self.jitter.below(jitter_ms + 1))
        });
        let conn = Arc::new(Connection {
            generation,
            pid,
            client,
            exit: process.exit.clone(),
            stderr: process.stderr.clone(),
            in_flight: AtomicUsize::new(0),
            calls: AtomicU64::new(0),
            max_requests,
        });
        shared.events.worker_ready(&WorkerReady {
            worker: info.id.clone(),
            pid,
            startup: launched.elapsed(),
        });
        Ok(Serving {
            process,
            conn,
            started: Instant::now(),
            retire_at,
        })
    }

    /// Makes `serving` the slot's process: lanes use it, the slot opens.
    fn go_live(&mut self, serving: &Serving) {
        let shared = self.setup.shared.clone();
        let info = &shared.workers[self.setup.slot];
        *self.current.write() = Some(serving.conn.clone());
        info.set_pid(Some(serving.conn.pid));
        info.set_failing(false);
        let capacity = shared.config.profile.capacity() as u16;
        shared
            .slots
            .install(self.setup.slot, serving.conn.generation, capacity);
        info.set_state(WorkerState::Ready);
        // Calls may have queued while no worker was ready.
        shared.ring_doorbell();
    }

    /// Serves until the process ends or the worker is told to stop; on a
    /// recycle, hands over to the replacement and goes on serving.
    fn serve(&mut self, mut serving: Serving) -> Ending {
        let shared = self.setup.shared.clone();
        let config = &shared.config;
        let mut next_health = config.health_check_interval.map(|i| Instant::now() + i);
        let mut next_memory = config
            .max_memory
            .map(|_| Instant::now() + config.memory_check_interval);
        let mut recycle_retry: Option<(Instant, RecycleReason)> = None;
        let ending = loop {
            let wake = [
                serving.retire_at,
                next_health,
                next_memory,
                recycle_retry.map(|r| r.0),
            ]
            .into_iter()
            .flatten()
            .min();
            let msg = match wake {
                Some(at) => self.control.recv_deadline(at),
                None => self
                    .control
                    .recv()
                    .map_err(|_| RecvTimeoutError::Disconnected),
            };
            let generation = serving.conn.generation;
            let recycle = match msg {
                Ok(Control::Exited {
                    generation: g,
                    exit,
                }) if g == generation => break Ending::Crashed(exit),
                Ok(Control::Hung { generation: g }) if g == generation => {
                    break Ending::Killed(ExitReason::Hung)
                }
                Ok(Control::Recycle {
                    generation: g,
                    reason,
                }) if g.is_none() || g == Some(generation) => Some(reason),
                Ok(Control::Shutdown) | Err(RecvTimeoutError::Disconnected) => {
                    break Ending::Shutdown
                }
                Ok(_) => None,
                Err(RecvTimeoutError::Timeout) => {
                    let now = Instant::now();
                    if serving.retire_at.is_some_and(|at| at <= now) {
                        serving.retire_at = None;
                        Some(RecycleReason::MaxLifetime)
                    } else if let Some((at, reason)) = recycle_retry.filter(|r| r.0 <= now) {
                        let _ = at;
                        recycle_retry = None;
                        Some(reason)
                    } else if next_memory.is_some_and(|at| at <= now) {
                        next_memory = Some(now + config.memory_check_interval);
                        let limit = config.max_memory.unwrap_or(u64::MAX);
                        supervisor::resident_bytes(serving.conn.pid)
                            .filter(|&rss| rss > limit)
                            .map(|_| RecycleReason::Memory)
                    } else if next_health.is_some_and(|at| at <= now) {
                        next_health = config.health_check_interval.map(|i| now + i);
                        if !self.healthy(&serving.conn) {
                            if let Some(exit) = serving.conn.exit.get() {
                                break Ending::Crashed(exit);
                            }
                            break Ending::Killed(ExitReason::Unhealthy);
                        }
                        None
                    } else {
                        None
                    }
                }
            };
            if let Some(reason) = recycle {
                match self.recycle(serving, reason) {
                    Ok(next) => {
                        serving = next;
                    }
                    Err(failed) => {
                        let (old, err) = *failed;
                        log::error!(
                            "{}: replacement failed, keeping the old process: {err}",
                            self.id()
                        );
                        serving = old;
                        recycle_retry = Some((Instant::now() + self.backoff.next_delay(), reason));
                    }
                }
            }
        };
        self.end(serving, ending)
    }

    /// Replaces `old` with a new process, started first so capacity does
    /// not dip; `old` finishes its calls in flight, then stops.
    fn recycle(
        &mut self,
        old: Serving,
        reason: RecycleReason,
    ) -> Result<Serving, Box<(Serving, Error)>> {
        let shared = self.setup.shared.clone();
        let info = &shared.workers[self.setup.slot];
        shared.events.worker_recycled(&WorkerRecycled {
            worker: info.id.clone(),
            pid: old.conn.pid,
            reason,
        });
        let next_generation = self.generation.wrapping_add(1);
        let fresh = match self.start(next_generation) {
            Ok(fresh) => fresh,
            Err(e) => return Err(Box::new((old, e))),
        };
        // Hand over: from here no new call reaches the old process; jobs
        // already queued for it go back to the dispatcher.
        self.generation = next_generation;
        // Counted before the new process takes calls, so a caller that
        // reaches it already sees the recycle in the stats.
        shared.counters.count_recycle(reason);
        self.count_restart();
        self.go_live(&fresh);

        // Drain the old process on a thread of its own, so this thread goes
        // on watching the new one: the old one's calls in flight run to
        // completion (up to their timeout), then it is stopped.
        let Serving { process, conn, .. } = old;
        let worker = info.id.clone();
        let retiring = thread::Builder::new()
            .name(format!("snakepit-{worker}-retire"))
            .spawn(move || retire(process, conn, shared, worker, reason))
            .expect("spawning a retiring thread");
        self.retiring.retain(|t| !t.is_finished());
        self.retiring.push(retiring);
        Ok(fresh)
    }

    /// Pings an idle process. A busy one is healthy by definition: it is
    /// answering calls, and its calls have their own deadlines.
    fn healthy(&self, conn: &Connection) -> bool {
        if conn.in_flight.load(Relaxed) > 0 {
            return true;
        }
        ping(
            &conn.client,
            self.id(),
            self.shared().config.health_check_timeout,
            false,
        )
        .is_ok()
    }

    /// Takes the process out of service for `ending`.
    fn end(&mut self, serving: Serving, ending: Ending) -> Ending {
        let shared = self.setup.shared.clone();
        let slot = self.setup.slot;
        let info = &shared.workers[slot];
        let serving_for = serving.started.elapsed();
        let Serving {
            mut process, conn, ..
        } = serving;
        let reason = match &ending {
            Ending::Crashed(exit) => {
                self.take_offline();
                // A process that served a while earns a quick restart.
                if serving_for > self.backoff.max() {
                    self.backoff.reset();
                }
                Counters::bump(&shared.counters.crashes);
                log::warn!(
                    "{} (pid {}) {exit}; last stderr: {}",
                    info.id,
                    conn.pid,
                    process.stderr.lines().join(" | ")
                );
                process.kill();
                ExitReason::Crashed(*exit)
            }
            Ending::Killed(reason) => {
                self.take_offline();
                let counter = match reason {
                    ExitReason::Hung => &shared.counters.hung_killed,
                    _ => &shared.counters.unhealthy_killed,
                };
                Counters::bump(counter);
                process.kill();
                reason.clone()
            }
            Ending::Shutdown => {
                info.set_state(WorkerState::Draining);
                shared.slots.drain(slot);
                let grace = shared.config.shutdown_grace;
                supervisor::wait_for(grace, || shared.slots.state(slot).load == 0);
                self.take_offline();
                process.terminate(grace);
                ExitReason::Shutdown
            }
        };
        info.set_pid(None);
        shared.events.worker_exited(&WorkerExited {
            worker: info.id.clone(),
            pid: conn.pid,
            reason,
        });
        ending
    }

    /// No new call reaches the current process.
    fn take_offline(&mut self) {
        self.generation = self.shared().slots.retire(self.setup.slot);
        *self.current.write() = None;
        self.shared().workers[self.setup.slot].set_state(WorkerState::Starting);
    }

    fn note_start_failure(&self, err: Error) {
        let shared = self.shared();
        log::error!("{err}");
        *shared.last_start_error.lock() = Some(err);
        shared.workers[self.setup.slot].set_failing(true);
        // Waiting calls fail fast once no worker can start.
        shared.ring_doorbell();
    }

    fn count_restart(&self) {
        let info = &self.shared().workers[self.setup.slot];
        info.restarts.fetch_add(1, Relaxed);
        Counters::bump(&self.shared().counters.restarts);
    }

    /// Waits out the backoff before the next start. False when told to stop
    /// meanwhile.
    fn pause(&mut self) -> bool {
        self.shared().workers[self.setup.slot].set_state(WorkerState::BackingOff);
        let deadline = Instant::now() + self.backoff.next_delay();
        loop {
            match self.control.recv_deadline(deadline) {
                Ok(Control::Shutdown) | Err(RecvTimeoutError::Disconnected) => return false,
                Ok(_) => continue,
                Err(RecvTimeoutError::Timeout) => {
                    self.shared().workers[self.setup.slot].set_state(WorkerState::Starting);
                    return true;
                }
            }
        }
    }

    fn start_lanes(&mut self) {
        let shared = &self.setup.shared;
        let capacity = shared.config.profile.capacity();
        let kill_on_timeout = capacity == 1 && shared.config.kill_hung_workers;
        for n in 0..capacity {
            let lane = Lane {
                slot: self.setup.slot,
                shared: shared.clone(),
                jobs: self.setup.jobs.clone(),
                current: self.current.clone(),
                control: self.control_tx.clone(),
                resubmit: self.setup.resubmit.clone(),
                kill_on_timeout,
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
        let info = &self.shared().workers[self.setup.slot];
        info.set_pid(None);
        info.set_state(WorkerState::Stopped);
        // Lanes end once the dispatcher has dropped its job senders.
        for lane in self.lanes.drain(..) {
            let _ = lane.join();
        }
    }
}

/// Lets a recycled process finish its calls in flight, then stops it. On
/// shutdown its calls get the shutdown grace period, as any other's.
fn retire(
    mut process: PythonProcess,
    conn: Arc<Connection>,
    shared: Arc<Shared>,
    worker: String,
    reason: RecycleReason,
) {
    let config = &shared.config;
    let started = Instant::now();
    supervisor::wait_for(config.call_timeout + config.shutdown_grace, || {
        conn.in_flight.load(Relaxed) == 0
            || conn.exit.get().is_some()
            || (shared.is_closing() && started.elapsed() > config.shutdown_grace)
    });
    process.terminate(config.shutdown_grace);
    shared.events.worker_exited(&WorkerExited {
        worker,
        pid: conn.pid,
        reason: ExitReason::Recycled(reason),
    });
}

/// One `Ping` round trip.
fn ping(
    client: &Client,
    from: &str,
    timeout: Duration,
    wait_for_ready: bool,
) -> Result<(), grpcio::Error> {
    let req = PingRequest {
        message: from.to_owned(),
        ..Default::default()
    };
    let opt = CallOption::default()
        .wait_for_ready(wait_for_ready)
        .timeout(timeout);
    client.unary_call(&service::PING, &req, opt).map(|_| ())
}

/// Words for a start-up failure that tell the user what to do.
fn describe(spec: &LaunchSpec, failure: StartFailure) -> String {
    match failure {
        StartFailure::Spawn(e) if e.kind() == std::io::ErrorKind::NotFound => format!(
            "cannot run the Python interpreter `{}`: {e}. Install Python 3 or point the pool \
             at one with PoolBuilder::python(..) or SNAKEPIT_PYTHON",
            spec.python.display()
        ),
        StartFailure::Spawn(e) => format!(
            "cannot run the Python interpreter `{}`: {e}",
            spec.python.display()
        ),
        StartFailure::Exited(exit, stderr) => format!(
            "the Python process {exit} during start-up (adapter `{}`):\n{}",
            spec.adapter,
            stderr.join("\n")
        ),
        StartFailure::Abandoned => "the pool shut down during start-up".into(),
        StartFailure::TimedOut(timeout, stderr) => format!(
            "not ready after {timeout:?} (raise startup_timeout if the adapter is slow to \
             import); stderr so far:\n{}",
            stderr.join("\n")
        ),
    }
}
