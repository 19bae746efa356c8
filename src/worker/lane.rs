//! A lane: one OS thread making blocking gRPC calls to its worker's current
//! process, one call at a time. A process-profile worker has one lane; a
//! thread-profile worker with N threads has N lanes sharing one HTTP/2
//! channel, so N calls really are in flight at once.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use grpcio::{CallOption, RpcStatusCode};

use super::{Connection, Control, Job};
use crate::call::Reply;
use crate::dispatcher::Command;
use crate::error::Error;
use crate::events::{CallFinished, RecycleReason};
use crate::pool::Shared;
use crate::protocol::{service, value};
use crate::stats::Counters;

/// How long a lane waits, after a transport failure, to learn whether the
/// process died (which makes the failure a crash).
const CRASH_CONFIRM: Duration = Duration::from_secs(1);

pub(crate) struct Lane {
    pub slot: usize,
    pub shared: Arc<Shared>,
    pub jobs: Receiver<Job>,
    pub current: Arc<parking_lot::RwLock<Option<Arc<Connection>>>>,
    pub control: Sender<Control>,
    pub resubmit: Sender<Command>,
    pub kill_on_timeout: bool,
}

impl Lane {
    /// Serves jobs until the dispatcher goes away.
    pub fn run(self) {
        while let Ok(job) = self.jobs.recv() {
            let conn = self.current.read().clone();
            match conn {
                Some(conn) if conn.generation == job.ticket.generation => self.call(&conn, job),
                // The process this job was meant for is gone and the call
                // never left the host: hand it back to be placed again.
                _ => self.hand_back(job),
            }
        }
    }

    fn call(&self, conn: &Connection, job: Job) {
        let Job { mut req, ticket } = job;
        let started = Instant::now();
        let opt = CallOption::default().timeout(req.timeout);
        conn.in_flight.fetch_add(1, Relaxed);
        let result = conn
            .client
            .unary_call(&service::EXECUTE_TOOL, &req.message, opt);
        conn.in_flight.fetch_sub(1, Relaxed);
        let served = conn.calls.fetch_add(1, Relaxed) + 1;
        if conn.max_requests == Some(served) {
            // The limit is a limit: close the slot before this call frees
            // its capacity, so no call beyond it lands here. The worker
            // starts the replacement; calls go to other workers meanwhile.
            self.shared.slots.drain(self.slot);
            let _ = self.control.send(Control::Recycle {
                generation: Some(conn.generation),
                reason: RecycleReason::MaxRequests,
            });
        }
        let worker = &self.shared.workers[self.slot].id;
        let outcome = match result {
            Ok(resp) => value::decode_response(&req.tool, worker, resp).map(|d| Reply {
                value: d.value,
                binary: d.binary,
                worker: worker.clone(),
                elapsed: req.submitted.elapsed(),
                queued: started.duration_since(req.submitted),
                metadata: d.metadata,
            }),
            Err(grpcio::Error::RpcFailure(status))
                if status.code() == RpcStatusCode::DEADLINE_EXCEEDED =>
            {
                Counters::bump(&self.shared.counters.timeouts);
                if self.kill_on_timeout {
                    // The process is stuck in this call and will be killed:
                    // close the slot before this call frees it, so the next
                    // call waits for the replacement instead of landing here.
                    self.shared
                        .slots
                        .retire_generation(self.slot, conn.generation);
                    let _ = self.control.send(Control::Hung {
                        generation: conn.generation,
                    });
                }
                Err(Error::Timeout {
                    tool: req.tool.clone(),
                    timeout: req.timeout,
                })
            }
            Err(e) => {
                let (code, message) = match &e {
                    grpcio::Error::RpcFailure(s) => {
                        (format!("{:?}", s.code()), s.message().to_owned())
                    }
                    other => ("CLIENT".to_owned(), other.to_string()),
                };
                match conn.exit.wait_timeout(CRASH_CONFIRM) {
                    Some(exit) => {
                        // Close the slot now: the worker's thread will learn
                        // of the death a moment later, and until then calls
                        // (retries among them) must not land on this process.
                        self.shared
                            .slots
                            .retire_generation(self.slot, conn.generation);
                        conn.stderr.wait_closed(Duration::from_millis(500));
                        Err(Error::WorkerCrashed {
                            worker: worker.clone(),
                            exit: Some(exit),
                            stderr_tail: conn.stderr.lines(),
                        })
                    }
                    None => Err(Error::Transport {
                        worker: worker.clone(),
                        code,
                        message,
                    }),
                }
            }
        };
        self.shared.workers[self.slot].calls.fetch_add(1, Relaxed);
        if req.retries > 0 && matches!(outcome, Err(Error::WorkerCrashed { .. })) {
            // Idempotent: run it again elsewhere rather than fail it.
            req.retries -= 1;
            log::info!("{worker} crashed during `{}`; retrying it once", req.tool);
            return self.hand_back(Job { req, ticket });
        }
        match &outcome {
            Ok(_) => Counters::bump(&self.shared.counters.succeeded),
            Err(_) => Counters::bump(&self.shared.counters.failed),
        }
        // Free the slot before answering, so a caller that reads the stats
        // right after its reply sees its call gone.
        self.shared.release(ticket);
        self.shared.events.call_finished(&CallFinished {
            tool: req.tool.clone(),
            worker: worker.clone(),
            duration: req.submitted.elapsed(),
            outcome: outcome.as_ref().map(|_| ()).map_err(Error::kind),
        });
        req.answer(outcome);
    }

    fn hand_back(&self, mut job: Job) {
        self.shared.release(job.ticket);
        job.req.queued_since = Instant::now();
        if let Err(crossbeam_channel::SendError(Command::Submit(req))) =
            self.resubmit.send(Command::Submit(job.req))
        {
            Counters::bump(&self.shared.counters.failed);
            req.answer(Err(Error::ShuttingDown));
        }
    }
}
