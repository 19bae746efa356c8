//! [`Shared`]: the pool state that callers, the dispatcher, the workers and
//! their lanes all see. Everything here is reached through methods, so the
//! rules for the counters, the doorbell and the slots stay in one place.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};

use crossbeam_channel::{Receiver, Sender};
use parking_lot::Mutex;

use crate::call::Request;
use crate::error::Error;
use crate::events::{Guarded, HandleEvent};
use crate::options::Config;
use crate::slots::{Slots, Ticket};
use crate::stats::{Counters, PoolStats, WorkerInfo, WorkerState, WorkerStats};
use crate::telemetry::Hub;

/// State shared by callers, the dispatcher, the workers and their lanes.
pub(crate) struct Shared {
    config: Config,
    /// The user's event hook, panics caught.
    events: Guarded,
    slots: Slots,
    workers: Vec<WorkerInfo>,
    counters: Counters,
    /// The latest start-up failure, for calls that find no worker able to
    /// start.
    last_start_error: Mutex<Option<Error>>,
    /// Calls in the dispatcher's queue.
    waiting: AtomicUsize,
    doorbell: Sender<()>,
    closing: AtomicBool,
    /// The workers' telemetry streams and what they record.
    telemetry: Hub,
}

impl Shared {
    /// The state of a pool of `config.workers` slots, none open yet, and
    /// the receiving end of its doorbell (for the dispatcher).
    pub fn new(config: Config) -> (Shared, Receiver<()>) {
        let n = config.workers;
        // One pending ring is enough: rings coalesce.
        let (doorbell, rings) = crossbeam_channel::bounded(1);
        let shared = Shared {
            slots: Slots::new(n),
            workers: (0..n)
                .map(|i| WorkerInfo::new(i, config.name.as_deref()))
                .collect(),
            counters: Counters::default(),
            last_start_error: Mutex::new(None),
            waiting: AtomicUsize::new(0),
            doorbell,
            closing: AtomicBool::new(false),
            telemetry: Hub::new(n, config.telemetry),
            events: Guarded(config.events.clone()),
            config,
        };
        (shared, rings)
    }

    /// The pool's resolved options.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The slot array.
    pub fn slots(&self) -> &Slots {
        &self.slots
    }

    /// What the pool knows of the worker in `slot`.
    pub fn worker(&self, slot: usize) -> &WorkerInfo {
        &self.workers[slot]
    }

    /// Every worker, in slot order.
    pub fn workers(&self) -> &[WorkerInfo] {
        &self.workers
    }

    /// The workers' telemetry streams and settings.
    pub fn telemetry(&self) -> &Hub {
        &self.telemetry
    }

    /// The pool-wide counters.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// The user's event hook; a panic in it is caught and logged.
    pub fn events(&self) -> &dyn HandleEvent {
        &self.events
    }

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

    /// Publishes how many calls wait in the dispatcher's queue.
    pub fn set_waiting(&self, n: usize) {
        self.waiting.store(n, SeqCst);
    }

    /// How many calls wait in the dispatcher's queue.
    pub fn waiting(&self) -> usize {
        self.waiting.load(SeqCst)
    }

    /// Whether the pool is shutting down.
    pub fn is_closing(&self) -> bool {
        self.closing.load(SeqCst)
    }

    /// Marks the pool as shutting down: new calls are refused from here on.
    pub fn close(&self) {
        self.closing.store(true, SeqCst);
    }

    /// Fails `req` with `err` and counts it as failed: the one way a call
    /// ends in an error.
    pub fn fail(&self, req: Request, err: Error) {
        Counters::bump(&self.counters.failed);
        req.fail(err);
    }

    /// The error of a call whose request was dropped unanswered: the pool
    /// was shutting down around it, or (a bug) a pool thread panicked while
    /// it held the call, which then counts as failed.
    pub fn unanswered(&self) -> Error {
        if self.is_closing() {
            return Error::ShuttingDown;
        }
        Counters::bump(&self.counters.failed);
        Error::Internal {
            message: "a pool thread panicked while it held the call".into(),
        }
    }

    /// Records that the worker in `slot` could not start, and wakes the
    /// dispatcher so that waiting calls fail fast once no worker can start.
    pub fn note_start_failure(&self, slot: usize, err: Error) {
        log::error!("{err}");
        *self.last_start_error.lock() = Some(err);
        self.workers[slot].set_failing(true);
        self.ring_doorbell();
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

    /// A snapshot of the workers, load and counters.
    pub fn stats(&self) -> PoolStats {
        let shared = self;
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
                    endpoint: w.endpoint(),
                    state: w.state(),
                    capacity: usize::from(slot.capacity),
                    load: usize::from(slot.load),
                    calls: read(&w.calls),
                    restarts: read(&w.restarts),
                    stuck_threads: w.stuck.load(std::sync::atomic::Ordering::Relaxed),
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
            queued: shared.waiting(),
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
            telemetry_events: read(&c.telemetry_events),
            telemetry_dropped: read(&c.telemetry_dropped),
            // A remote pool's unbound slots are spare, not missing; with no
            // endpoint serving at all it is degraded.
            degraded: per_worker
                .iter()
                .any(|w| !matches!(w.state, WorkerState::Ready | WorkerState::Unbound))
                || !per_worker.iter().any(|w| w.state == WorkerState::Ready),
            per_worker,
        }
    }
}
