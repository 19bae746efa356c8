//! The dispatcher: one thread per pool that places each call on a worker
//! slot, or holds it in a bounded FIFO queue until a slot frees up, its
//! queue timeout passes, or the pool shuts down. Session affinity is
//! decided here too: the dispatcher owns the table of which worker holds
//! which session.
//!
//! Placing a call is a scan of the slot array and one compare-and-swap
//! (see `slots`). When nothing waits, a caller makes that scan itself and
//! hands its call straight to the worker (`Pool::submit`), sparing a thread
//! hand-off; the dispatcher takes the calls that must wait, the session
//! calls, and everything during shutdown. Lanes ring a doorbell when they free capacity while calls
//! are waiting; the `waiting` count and the slot words are both sequentially
//! consistent, so either the lane sees the waiting call and rings, or the
//! dispatcher's second pass sees the freed capacity.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{select, Receiver, Sender};

use crate::call::{Affinity, Request};
use crate::deadline::later;
use crate::error::Error;
use crate::events::{QueueTimedOut, Saturated};
use crate::shared::Shared;
use crate::slots::Ticket;
use crate::stats::Counters;
use crate::work::{Command, Job, Work};

/// Where a session lives.
#[derive(Debug, Clone, Copy)]
struct Binding {
    slot: usize,
    generation: u32,
    last_used: Instant,
}

/// The outcome of trying to place one call now.
enum Placement {
    Place(Ticket),
    Wait,
    Fail(Error),
}

pub(crate) struct Dispatcher {
    shared: Arc<Shared>,
    commands: Receiver<Command>,
    doorbell: Receiver<()>,
    workers: Vec<Sender<Work>>,
    queue: VecDeque<Request>,
    sessions: HashMap<String, Binding>,
    /// Sessions bound to each slot.
    session_counts: Vec<usize>,
    next_sweep: Instant,
}

/// Test only: a tool name whose call makes the dispatcher panic as it
/// admits it, to prove that a panicking round loses only what it held.
#[cfg(test)]
pub(crate) const PANIC_ON_ADMIT: &str = "test: the dispatcher panics";

/// The longest the dispatcher sleeps when nothing waits.
const IDLE: Duration = Duration::from_secs(3600);

impl Dispatcher {
    pub fn new(
        shared: Arc<Shared>,
        commands: Receiver<Command>,
        doorbell: Receiver<()>,
        workers: Vec<Sender<Work>>,
    ) -> Self {
        let session_counts = vec![0; workers.len()];
        Dispatcher {
            shared,
            commands,
            doorbell,
            workers,
            queue: VecDeque::new(),
            sessions: HashMap::new(),
            session_counts,
            next_sweep: Instant::now() + IDLE,
        }
    }

    /// Places calls until the pool shuts down. A panic in a round (a bug)
    /// is caught: the calls that round held are dropped, which fails them
    /// with [`Error::Internal`], and the next round goes on with the queue
    /// as it stands.
    pub fn run(mut self) {
        loop {
            match crate::panics::catch(|| self.round()) {
                Ok(true) => {}
                Ok(false) => break,
                Err(message) => {
                    log::error!("the dispatcher panicked (a bug; it goes on): {message}");
                    self.shared.set_waiting(self.queue.len());
                }
            }
        }
        for req in self.queue.drain(..) {
            self.shared.fail(req, Error::ShuttingDown);
        }
        self.shared.set_waiting(0);
    }

    /// Waits for the next command, ring or deadline and acts on it. False
    /// once the pool shuts down.
    fn round(&mut self) -> bool {
        let wake = self
            .queue
            .iter()
            .map(Request::queue_deadline)
            .chain((!self.sessions.is_empty()).then_some(self.next_sweep))
            .min();
        let timeout = wake.map_or(IDLE, |d| d.saturating_duration_since(Instant::now()));
        select! {
            recv(self.commands) -> cmd => match cmd {
                Ok(Command::Submit(req)) => self.admit(req),
                Ok(Command::CloseSession(id)) => self.close_session(&id),
                Ok(Command::Shutdown) | Err(_) => return false,
            },
            recv(self.doorbell) -> _ => {},
            default(timeout) => {},
        }
        self.place_waiting();
        let now = Instant::now();
        self.expire(now);
        self.fail_fast();
        if now >= self.next_sweep {
            self.sweep_sessions(now);
        }
        true
    }

    /// A new call: place it now if nothing waits ahead of it and a worker
    /// is free, fail it if its affinity says so, else queue it if there is
    /// room.
    fn admit(&mut self, req: Request) {
        #[cfg(test)]
        if req.tool == PANIC_ON_ADMIT {
            panic!("injected: the dispatcher panics on admitting a call");
        }
        if self.shared.is_closing() {
            return self.shared.fail(req, Error::ShuttingDown);
        }
        // Whoever waits goes first.
        self.place_waiting();
        let strict_fail_fast = matches!(req.session, Some((_, Affinity::StrictFailFast)));
        if self.queue.is_empty() || strict_fail_fast {
            match self.pick(&req) {
                Placement::Place(ticket) => return self.place(req, ticket),
                Placement::Fail(err) => {
                    return self.shared.fail(req, err);
                }
                Placement::Wait => {}
            }
        }
        if let Some(err) = self.shared.start_failure() {
            return self.shared.fail(req, err);
        }
        let queue_size = self.shared.config().queue_size;
        if self.queue.len() >= queue_size {
            Counters::bump(&self.shared.counters().saturated);
            self.shared.events().saturated(&Saturated {
                tool: req.tool.clone(),
                queue_size,
            });
            return self.shared.fail(req, Error::PoolSaturated { queue_size });
        }
        self.queue.push_back(req);
        self.shared.set_waiting(self.queue.len());
    }

    /// Where `req` can run now, honouring its session's affinity.
    fn pick(&mut self, req: &Request) -> Placement {
        let Some((session, affinity)) = &req.session else {
            return self
                .shared
                .slots()
                .acquire()
                .map_or(Placement::Wait, Placement::Place);
        };
        let Some(binding) = self.sessions.get(session).copied() else {
            return match self.acquire_for_new_session() {
                Some(ticket) => {
                    self.bind(session, ticket);
                    Placement::Place(ticket)
                }
                None => Placement::Wait,
            };
        };
        let slots = &self.shared.slots();
        let alive = slots.state(binding.slot).generation == binding.generation;
        let worker = || self.shared.worker(binding.slot).id.clone();
        if alive {
            if let Some(ticket) = slots.acquire_slot(binding.slot, binding.generation) {
                self.bind(session, ticket);
                return Placement::Place(ticket);
            }
            return match affinity {
                Affinity::Hint => slots.acquire().map_or(Placement::Wait, Placement::Place),
                Affinity::StrictQueue => Placement::Wait,
                Affinity::StrictFailFast => Placement::Fail(Error::WorkerBusy {
                    session: session.clone(),
                    worker: worker(),
                }),
            };
        }
        match affinity {
            Affinity::Hint => match self.acquire_for_new_session() {
                Some(ticket) => {
                    self.bind(session, ticket);
                    Placement::Place(ticket)
                }
                None => Placement::Wait,
            },
            Affinity::StrictQueue | Affinity::StrictFailFast => {
                Placement::Fail(Error::SessionWorkerUnavailable {
                    session: session.clone(),
                    worker: worker(),
                })
            }
        }
    }

    /// A free worker for a session that has none: the one holding the
    /// fewest sessions, so sessions spread over the workers.
    fn acquire_for_new_session(&self) -> Option<Ticket> {
        let mut order: Vec<usize> = (0..self.session_counts.len()).collect();
        order.sort_by_key(|&slot| self.session_counts[slot]);
        let slots = &self.shared.slots();
        order
            .into_iter()
            .find_map(|slot| slots.acquire_slot(slot, slots.state(slot).generation))
    }

    fn bind(&mut self, session: &str, ticket: Ticket) {
        let binding = Binding {
            slot: ticket.slot,
            generation: ticket.generation,
            last_used: Instant::now(),
        };
        self.session_counts[ticket.slot] += 1;
        match self.sessions.get_mut(session) {
            Some(b) => {
                self.session_counts[b.slot] -= 1;
                *b = binding;
            }
            None => {
                self.sessions.insert(session.to_owned(), binding);
                if self.sessions.len() == 1 {
                    self.next_sweep = later(Instant::now(), self.sweep_interval());
                }
            }
        }
    }

    /// Places waiting calls, oldest first, where they can run now.
    fn place_waiting(&mut self) {
        if self.queue.is_empty() {
            return;
        }
        loop {
            let placed = self.placement_pass();
            // Publish the count, then look once more: a lane that freed a
            // slot before it could see the count did not ring.
            self.shared.set_waiting(self.queue.len());
            if self.queue.is_empty() || (!placed && !self.placement_pass()) {
                self.shared.set_waiting(self.queue.len());
                return;
            }
        }
    }

    /// One pass over the queue in order. Returns whether anything left it.
    fn placement_pass(&mut self) -> bool {
        let mut changed = false;
        let mut pool_full = false;
        let mut kept = VecDeque::with_capacity(self.queue.len());
        while let Some(req) = self.queue.pop_front() {
            // Once the pool as a whole is full, unpinned calls cannot move.
            if pool_full && req.session.is_none() {
                kept.push_back(req);
                continue;
            }
            match self.pick(&req) {
                Placement::Place(ticket) => {
                    changed = true;
                    self.place(req, ticket);
                }
                Placement::Fail(err) => {
                    changed = true;
                    self.shared.fail(req, err);
                }
                Placement::Wait => {
                    pool_full |= req.session.is_none();
                    kept.push_back(req);
                }
            }
        }
        self.queue = kept;
        changed
    }

    /// Fails every queued call whose queue timeout has passed.
    fn expire(&mut self, now: Instant) {
        if self.queue.iter().all(|r| r.queue_deadline() > now) {
            return;
        }
        let mut kept = VecDeque::with_capacity(self.queue.len());
        for req in self.queue.drain(..) {
            if req.queue_deadline() <= now {
                Counters::bump(&self.shared.counters().queue_timeouts);
                let waited = req.queued_since.elapsed();
                let tool = req.tool.clone();
                self.shared.events().queue_timeout(&QueueTimedOut {
                    tool: tool.clone(),
                    waited,
                });
                self.shared.fail(req, Error::QueueTimeout { tool, waited });
            } else {
                kept.push_back(req);
            }
        }
        self.queue = kept;
        self.shared.set_waiting(self.queue.len());
    }

    /// When no worker can start, waiting calls get the start-up error now
    /// rather than a queue timeout later.
    fn fail_fast(&mut self) {
        if self.queue.is_empty() {
            return;
        }
        if let Some(err) = self.shared.start_failure() {
            for req in self.queue.drain(..) {
                self.shared.fail(req, err.clone());
            }
            self.shared.set_waiting(0);
        }
    }

    fn close_session(&mut self, id: &str) {
        if let Some(binding) = self.sessions.remove(id) {
            self.session_counts[binding.slot] -= 1;
            self.tell_cleanup(id, binding);
        }
    }

    /// Ends sessions idle for longer than the session timeout.
    fn sweep_sessions(&mut self, now: Instant) {
        let ttl = self.shared.config().session_idle_timeout;
        let idle: Vec<String> = self
            .sessions
            .iter()
            .filter(|(_, b)| now.duration_since(b.last_used) >= ttl)
            .map(|(id, _)| id.clone())
            .collect();
        for id in idle {
            log::debug!("session `{id}` idle for {ttl:?}: closing it");
            self.close_session(&id);
        }
        self.next_sweep = later(now, self.sweep_interval());
    }

    fn sweep_interval(&self) -> Duration {
        (self.shared.config().session_idle_timeout / 4)
            .clamp(Duration::from_millis(10), Duration::from_secs(60))
    }

    /// Asks the session's worker to free its state (a process that has
    /// since been replaced took the state with it).
    fn tell_cleanup(&self, id: &str, binding: Binding) {
        let _ = self.workers[binding.slot].send(Work::CleanupSession {
            session: id.to_owned(),
            generation: binding.generation,
        });
    }

    fn place(&mut self, req: Request, ticket: Ticket) {
        if let Some((session, _)) = &req.session {
            if let Some(b) = self.sessions.get_mut(session) {
                b.last_used = Instant::now();
            }
        }
        if let Err(crossbeam_channel::SendError(Work::Call(job))) =
            self.workers[ticket.slot].send(Work::Call(Job { req, ticket }))
        {
            // The worker's lanes are gone: only during shutdown.
            self.shared.release(job.ticket);
            self.shared.fail(job.req, Error::ShuttingDown);
        }
    }
}
