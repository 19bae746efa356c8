//! A lane: one OS thread making blocking calls (through the process's
//! [`Transport`](crate::transport::Transport)) to its worker's current
//! process, one call at a time. A process-profile worker has one lane; a
//! thread-profile worker with N threads has N lanes sharing one HTTP/2
//! channel, so N calls really are in flight at once.

use std::cell::Cell;
use std::ops::ControlFlow;
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering::{Relaxed, SeqCst};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, SendTimeoutError, Sender};

use super::{Connection, Control};
use crate::call::{Replier, Reply, Request, CORRELATION_HEADER};
use crate::error::Error;
use crate::events::{CallFinished, RecycleReason};
use crate::protocol::messages::ToolChunk;
use crate::protocol::value;
use crate::shared::Shared;
use crate::slots::Ticket;
use crate::stats::Counters;
use crate::stream::{Chunk, StreamControl, StreamEvent, CANCEL_POLL};
use crate::supervisor;
use crate::transport::{Buffers, ErrorContext, TransportError};
use crate::work::{Command, Job, Work};

/// How long a lane waits for a dead process's stderr to close, so the
/// error holds its last words.
const STDERR_SETTLE: Duration = Duration::from_millis(500);

/// One thread making calls to its worker's current process.
pub(crate) struct Lane {
    pub slot: usize,
    pub shared: Arc<Shared>,
    pub jobs: Receiver<Work>,
    pub current: Arc<parking_lot::RwLock<Option<Arc<Connection>>>>,
    pub control: Sender<Control>,
    pub resubmit: Sender<Command>,
    /// The capacity the job in hand holds, until given back.
    pub holding: Cell<Option<Ticket>>,
}

/// Counts a call as running on its process for as long as it lives, even
/// through a panic.
struct InFlight<'a>(&'a AtomicUsize);

impl<'a> InFlight<'a> {
    fn enter(count: &'a AtomicUsize) -> Self {
        count.fetch_add(1, Relaxed);
        InFlight(count)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Relaxed);
    }
}

impl Lane {
    /// Serves work until the dispatcher goes away. A panic (a bug) is
    /// caught per job: the call it held is dropped, which fails it with
    /// [`Error::Internal`], its capacity is given back, and the lane goes
    /// on with the next job.
    pub fn run(self) {
        while let Ok(work) = self.jobs.recv() {
            let conn = self.current.read().clone();
            let worked = crate::panics::catch(|| match work {
                Work::Call(job) => {
                    self.holding.set(Some(job.ticket));
                    match conn {
                        Some(conn) if conn.generation == job.ticket.generation => {
                            self.call(&conn, job)
                        }
                        // The process this job was meant for is gone and
                        // the call never left the host: hand it back to be
                        // placed again.
                        _ => self.hand_back(job),
                    }
                }
                Work::CleanupSession {
                    session,
                    generation,
                } => {
                    if let Some(conn) = conn.filter(|c| c.generation == generation) {
                        self.cleanup_session(&conn, session);
                    }
                }
            });
            if let Err(message) = worked {
                log::error!(
                    "{}: a lane panicked (a bug; its call fails, the lane goes on): {message}",
                    self.shared.worker(self.slot).id
                );
                self.release();
            }
        }
    }

    /// Gives back the capacity of the call this lane holds, once.
    fn release(&self) {
        if let Some(ticket) = self.holding.take() {
            self.shared.release(ticket);
        }
    }

    fn call(&self, conn: &Connection, job: Job) {
        let Job { mut req, ticket } = job;
        let started = Instant::now();
        let worker = &self.shared.worker(self.slot).id;
        let in_flight = InFlight::enter(&conn.in_flight);
        let outcome = match &req.reply {
            Replier::Unary(_) => match conn.transport.execute(
                &mut req.message,
                req.timeout,
                // A call that may run again keeps its arguments intact.
                if req.retries > 0 {
                    Buffers::Keep
                } else {
                    Buffers::Recycle
                },
            ) {
                Err(e) if e.never_ran() => {
                    drop(in_flight);
                    return self.not_run(conn, Job { req, ticket }, e);
                }
                Ok(resp) => value::decode_response(&req.tool, worker, resp).map(|d| {
                    Some(Reply {
                        value: d.value,
                        binary: d.binary,
                        worker: worker.clone(),
                        elapsed: req.submitted.elapsed(),
                        queued: started.duration_since(req.submitted),
                        metadata: d.metadata,
                        correlation_id: req
                            .message
                            .metadata
                            .get(CORRELATION_HEADER)
                            .cloned()
                            .unwrap_or_default(),
                    })
                }),
                Err(e) => Err(self.call_error(conn, &req, e)),
            },
            Replier::Stream { events, control } => match self.stream(conn, &req, events, control) {
                Ok(()) => Ok(None),
                Err(Streamed::Failed(err)) => Err(err),
                Err(Streamed::NotRun(e)) => {
                    drop(in_flight);
                    return self.not_run(conn, Job { req, ticket }, e);
                }
            },
        };
        drop(in_flight);
        self.count_served(conn);
        self.shared.worker(self.slot).calls.fetch_add(1, Relaxed);
        if req.retries > 0 && matches!(outcome, Err(Error::WorkerCrashed { .. })) {
            // Idempotent: run it again elsewhere rather than fail it.
            req.retries -= 1;
            log::info!("{worker} crashed during `{}`; retrying it", req.tool);
            return self.hand_back(Job { req, ticket });
        }
        if outcome.is_ok() {
            Counters::bump(&self.shared.counters().succeeded);
        }
        // Free the slot before answering, so a caller that reads the stats
        // right after its reply sees its call gone.
        self.release();
        self.shared.events().call_finished(&CallFinished {
            tool: req.tool.clone(),
            worker: worker.clone(),
            duration: req.submitted.elapsed(),
            outcome: outcome.as_ref().map(|_| ()).map_err(Error::kind),
        });
        match outcome {
            Ok(reply) => req.succeed(reply),
            Err(err) => self.shared.fail(req, err),
        }
    }

    /// Moves chunks from the transport to the caller as they arrive, until
    /// the final one, an error, or the caller drops its `Stream` (then the
    /// call is cancelled, which closes the Python generator).
    fn stream(
        &self,
        conn: &Connection,
        req: &Request,
        events: &Sender<StreamEvent>,
        control: &StreamControl,
    ) -> Result<(), Streamed> {
        let worker = &self.shared.worker(self.slot).id;
        let mut failed = None;
        let mut deliver = |chunk: ToolChunk| {
            let item = match decode_chunk(&req.tool, worker, chunk) {
                Ok(item) => item,
                Err(e) => {
                    failed = Some(e);
                    return ControlFlow::Break(());
                }
            };
            let mut event = StreamEvent::Chunk(item);
            // A slow reader holds the lane here; keep an eye on cancels.
            loop {
                match events.send_timeout(event, CANCEL_POLL) {
                    Ok(()) => return ControlFlow::Continue(()),
                    Err(SendTimeoutError::Timeout(back)) if !control.is_cancelled() => event = back,
                    Err(_) => return ControlFlow::Break(()),
                }
            }
        };
        let streamed =
            conn.transport
                .execute_stream(&req.message, req.timeout, control, &mut deliver);
        match (streamed, failed) {
            (Err(e), _) if e.never_ran() => Err(Streamed::NotRun(e)),
            (Err(e), _) => Err(Streamed::Failed(self.call_error(conn, req, e))),
            (Ok(()), Some(e)) => Err(Streamed::Failed(e)),
            (Ok(()), None) => Ok(()),
        }
    }

    /// Turns a failed call into the error the caller gets, and acts on what
    /// it means for the process (hung: replace it; dead: close the slot).
    fn call_error(&self, conn: &Connection, req: &Request, e: TransportError) -> Error {
        let worker = &self.shared.worker(self.slot).id;
        let cx = ErrorContext {
            tool: &req.tool,
            worker,
            timeout: req.timeout,
            max_message_bytes: self.shared.config().max_message_bytes,
        };
        match e {
            TransportError::DeadlineExceeded => {
                Counters::bump(&self.shared.counters().timeouts);
                // A process-profile worker stuck in a call is killed when
                // the pool says so; a remote one (of capacity 1) exits by
                // itself, so its connection is dropped all the same.
                let kill_on_timeout = conn.capacity == 1
                    && (self.shared.config().kill_hung_workers
                        || conn.process.endpoint().is_some());
                if kill_on_timeout {
                    // The process is stuck in this call and will be
                    // killed: close the slot before this call frees it,
                    // so the next call waits for the replacement.
                    self.shared
                        .slots()
                        .retire_generation(self.slot, conn.generation);
                    let _ = self.control.send(Control::Hung {
                        generation: conn.generation,
                    });
                } else {
                    self.note_stuck(conn);
                }
                e.into_error(&cx)
            }
            // The pool stopped this process at shutdown, past the grace
            // period, and cut the call short: it did not crash.
            TransportError::Failed { .. } if conn.stopping.load(SeqCst) => Error::ShuttingDown,
            TransportError::Failed { ref code, .. } => match conn.process.connection_lost(code) {
                Some(exit) => {
                    // Close the slot now: the worker's thread learns of the
                    // death a moment later, and until then calls (retries
                    // among them) must not land on this process.
                    self.shared
                        .slots()
                        .retire_generation(self.slot, conn.generation);
                    let endpoint = conn.process.endpoint().map(str::to_owned);
                    Error::WorkerCrashed {
                        worker: worker.clone(),
                        // A remote endpoint's end is a broken connection,
                        // not an exit status.
                        exit: Some(exit).filter(|_| endpoint.is_none()),
                        stderr_tail: conn.process.stderr_tail(STDERR_SETTLE),
                        endpoint,
                    }
                }
                None => e.into_error(&cx),
            },
            // The worker garbled its reply: unless it died doing so (a
            // crash), it cannot be trusted with the next call. Close the
            // slot and have it replaced.
            TransportError::BadPeer(_) => {
                self.shared
                    .slots()
                    .retire_generation(self.slot, conn.generation);
                if let Some(exit) = conn.process.wait_exit(Duration::from_millis(50)) {
                    return Error::WorkerCrashed {
                        worker: worker.clone(),
                        exit: Some(exit),
                        stderr_tail: conn.process.stderr_tail(STDERR_SETTLE),
                        endpoint: conn.process.endpoint().map(str::to_owned),
                    };
                }
                log::warn!("{worker} broke the protocol ({e}); replacing it");
                let _ = self.control.send(Control::Broken {
                    generation: conn.generation,
                });
                e.into_error(&cx)
            }
            TransportError::ResourceExhausted
            | TransportError::ToolFailed(_)
            | TransportError::Draining(_)
            | TransportError::NotConnected(_) => e.into_error(&cx),
        }
    }

    /// A call timed out but the process lives on, and so does the Python
    /// thread running it: Python cannot stop a running function. That
    /// thread is out of service until the process ends, so it leaves the
    /// slot's capacity now, before this call frees its unit, and no call is
    /// placed on a thread that cannot take it. Once every thread is stuck
    /// the process could serve nothing more: it is recycled (its
    /// replacement starts first, then it is stopped).
    ///
    /// A thread whose call ends late is not counted back (the host cannot
    /// see it): the count only errs on the side of a recycle, never of
    /// placing a call on a busy thread.
    fn note_stuck(&self, conn: &Connection) {
        let stuck = conn.stuck.fetch_add(1, SeqCst) + 1;
        if self
            .shared
            .slots()
            .shrink(self.slot, conn.generation)
            .is_some()
        {
            self.shared.worker(self.slot).stuck.store(stuck, SeqCst);
        }
        log::warn!(
            "{}: a call ran past its timeout and its Python thread is still running it \
             ({stuck} of {} threads stuck)",
            self.shared.worker(self.slot).id,
            conn.capacity
        );
        if stuck == conn.capacity {
            let _ = self.control.send(Control::Recycle {
                generation: Some(conn.generation),
                reason: RecycleReason::StuckThreads,
            });
        }
    }

    /// Counts a call against the process's `max_requests`.
    ///
    /// A little before the limit the worker is asked to start the
    /// replacement, so it is usually ready by the time the limit is hit; at
    /// the limit the slot closes, before this call frees its capacity, so
    /// no call beyond it lands here. If the replacement is not ready yet,
    /// calls go to the other workers meanwhile.
    fn count_served(&self, conn: &Connection) {
        let Some(limit) = conn.max_requests else {
            return;
        };
        let served = conn.calls.fetch_add(1, Relaxed) + 1;
        let early = supervisor::early_recycle_point(limit);
        if served == limit {
            self.shared
                .slots()
                .drain_generation(self.slot, conn.generation);
        }
        if served == early || served == limit {
            let _ = self.control.send(Control::Recycle {
                generation: Some(conn.generation),
                reason: RecycleReason::MaxRequests,
            });
        }
    }

    fn cleanup_session(&self, conn: &Connection, session: String) {
        let timeout = self.shared.config().health_check_timeout;
        if let Err(e) = conn.transport.cleanup_session(&session, timeout) {
            log::debug!("cleaning up session `{session}`: {e}");
        }
    }

    /// A remote endpoint did not run the call: it is stopping (it refused
    /// the call), or the connection to it was down before the call went
    /// out. The endpoint is taken out of service and the call placed
    /// again, with its retries untouched.
    fn not_run(&self, conn: &Connection, job: Job, e: TransportError) {
        self.shared
            .slots()
            .retire_generation(self.slot, conn.generation);
        let worker = &self.shared.worker(self.slot).id;
        match e {
            TransportError::Draining(_) => {
                log::info!(
                    "{worker} ({}) is stopping; placing `{}` elsewhere",
                    conn.process.identity(),
                    job.req.tool
                );
                conn.process.stopping();
            }
            _ => {
                log::warn!(
                    "{worker} ({}) is unreachable ({e}); placing `{}` elsewhere",
                    conn.process.identity(),
                    job.req.tool
                );
                conn.process.connection_lost("UNAVAILABLE");
            }
        }
        self.hand_back(job);
    }

    fn hand_back(&self, mut job: Job) {
        self.release();
        job.req.queued_since = Instant::now();
        if let Err(crossbeam_channel::SendError(Command::Submit(req))) =
            self.resubmit.send(Command::Submit(job.req))
        {
            self.shared.fail(req, Error::ShuttingDown);
        }
    }
}

/// How a streaming call failed.
enum Streamed {
    /// It ran, and failed with this.
    Failed(Error),
    /// It never ran (see [`Lane::not_run`]).
    NotRun(TransportError),
}

/// Reads one streamed item: raw bytes when the worker marked it so, JSON
/// text otherwise.
fn decode_chunk(tool: &str, worker: &str, mut chunk: ToolChunk) -> Result<Chunk, Error> {
    if chunk.metadata.get("encoding").map(String::as_str) == Some("binary") {
        return Ok(Chunk::Bytes(std::mem::take(&mut chunk.data)));
    }
    serde_json::from_slice(&chunk.data)
        .map(Chunk::Json)
        .map_err(|e| Error::Transport {
            worker: worker.to_owned(),
            code: "INVALID_CHUNK".into(),
            message: format!("chunk {} of `{tool}` is not JSON: {e}", chunk.chunk_id),
        })
}
