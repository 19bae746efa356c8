//! The dispatcher: one thread per pool that places each call on a worker
//! slot, or holds it in a bounded FIFO queue until a slot frees up, its
//! queue timeout passes, or the pool shuts down.
//!
//! Placing a call is a scan of the slot array and one compare-and-swap
//! (see `slots`). Lanes ring a doorbell when they free capacity while calls
//! are waiting; the `waiting` count and the slot words are both sequentially
//! consistent, so either the lane sees the waiting call and rings, or the
//! dispatcher's rescan sees the freed capacity.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{select, Receiver, Sender};

use crate::call::Request;
use crate::error::Error;
use crate::events::{QueueTimedOut, Saturated};
use crate::pool::Shared;
use crate::slots::Ticket;
use crate::stats::Counters;
use crate::worker::Job;

/// What the dispatcher is sent.
#[derive(Debug)]
// Nearly every command is a `Submit`; boxing it would add an allocation per
// call to save space on the rare `Shutdown`.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Command {
    /// Place this call.
    Submit(Request),
    /// Refuse what waits, drop the job senders and end.
    Shutdown,
}

pub(crate) struct Dispatcher {
    pub shared: Arc<Shared>,
    pub commands: Receiver<Command>,
    pub doorbell: Receiver<()>,
    pub workers: Vec<Sender<Job>>,
    queue: VecDeque<Request>,
}

/// The longest the dispatcher sleeps when nothing waits.
const IDLE: Duration = Duration::from_secs(3600);

impl Dispatcher {
    pub fn new(
        shared: Arc<Shared>,
        commands: Receiver<Command>,
        doorbell: Receiver<()>,
        workers: Vec<Sender<Job>>,
    ) -> Self {
        Dispatcher {
            shared,
            commands,
            doorbell,
            workers,
            queue: VecDeque::new(),
        }
    }

    pub fn run(mut self) {
        loop {
            let timeout = self
                .earliest_deadline()
                .map_or(IDLE, |d| d.saturating_duration_since(Instant::now()));
            select! {
                recv(self.commands) -> cmd => match cmd {
                    Ok(Command::Submit(req)) => self.admit(req),
                    Ok(Command::Shutdown) | Err(_) => break,
                },
                recv(self.doorbell) -> _ => {},
                default(timeout) => {},
            }
            self.place_waiting();
            self.expire(Instant::now());
            self.fail_fast();
        }
        for req in self.queue.drain(..) {
            Counters::bump(&self.shared.counters.failed);
            req.answer(Err(Error::ShuttingDown));
        }
        self.shared.set_waiting(0);
    }

    /// A new call: place it now if nothing waits ahead of it and a slot is
    /// free, else queue it if there is room.
    fn admit(&mut self, req: Request) {
        if self.shared.is_closing() {
            Counters::bump(&self.shared.counters.failed);
            return req.answer(Err(Error::ShuttingDown));
        }
        if self.queue.is_empty() {
            if let Some(ticket) = self.shared.slots.acquire() {
                return self.place(req, ticket);
            }
        }
        if let Some(err) = self.shared.start_failure() {
            Counters::bump(&self.shared.counters.failed);
            return req.answer(Err(err));
        }
        let queue_size = self.shared.config.queue_size;
        if self.queue.len() >= queue_size {
            Counters::bump(&self.shared.counters.saturated);
            Counters::bump(&self.shared.counters.failed);
            self.shared.events.saturated(&Saturated {
                tool: req.tool.clone(),
                queue_size,
            });
            return req.answer(Err(Error::PoolSaturated { queue_size }));
        }
        self.queue.push_back(req);
    }

    /// Places waiting calls, oldest first, while slots are free.
    fn place_waiting(&mut self) {
        loop {
            while !self.queue.is_empty() {
                let Some(ticket) = self.shared.slots.acquire() else {
                    break;
                };
                let req = self.queue.pop_front().expect("queue is not empty");
                self.place(req, ticket);
            }
            self.shared.set_waiting(self.queue.len());
            if self.queue.is_empty() {
                return;
            }
            // The count is published; look once more, since a lane that
            // freed a slot before it could see the count did not ring.
            let Some(ticket) = self.shared.slots.acquire() else {
                return;
            };
            let req = self.queue.pop_front().expect("queue is not empty");
            self.place(req, ticket);
        }
    }

    /// Fails every queued call whose queue timeout has passed.
    fn expire(&mut self, now: Instant) {
        if self.queue.iter().all(|r| r.queue_deadline() > now) {
            return;
        }
        let mut kept = VecDeque::with_capacity(self.queue.len());
        for req in self.queue.drain(..) {
            if req.queue_deadline() <= now {
                Counters::bump(&self.shared.counters.queue_timeouts);
                Counters::bump(&self.shared.counters.failed);
                let waited = req.queued_since.elapsed();
                let tool = req.tool.clone();
                self.shared.events.queue_timeout(&QueueTimedOut {
                    tool: tool.clone(),
                    waited,
                });
                req.answer(Err(Error::QueueTimeout { tool, waited }));
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
                Counters::bump(&self.shared.counters.failed);
                req.answer(Err(err.clone()));
            }
            self.shared.set_waiting(0);
        }
    }

    fn earliest_deadline(&self) -> Option<Instant> {
        self.queue.iter().map(Request::queue_deadline).min()
    }

    fn place(&mut self, req: Request, ticket: Ticket) {
        if let Err(crossbeam_channel::SendError(job)) =
            self.workers[ticket.slot].send(Job { req, ticket })
        {
            // The worker's lanes are gone: only during shutdown.
            self.shared.release(job.ticket);
            Counters::bump(&self.shared.counters.failed);
            job.req.answer(Err(Error::ShuttingDown));
        }
    }
}
