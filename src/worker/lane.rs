//! A lane: one OS thread making blocking gRPC calls to its worker's current
//! process, one call at a time. A process-profile worker has one lane; a
//! thread-profile worker with N threads has N lanes sharing one HTTP/2
//! channel, so N calls really are in flight at once.

use std::pin::Pin;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, SendTimeoutError, Sender};
use futures_core::Stream as _;
use grpcio::{CallOption, ClientSStreamReceiver, RpcStatusCode};

use super::{Connection, Control, Job, Work};
use crate::block_on::thread_waker;
use crate::call::{Replier, Reply, Request};
use crate::dispatcher::Command;
use crate::error::Error;
use crate::events::{CallFinished, RecycleReason};
use crate::pool::Shared;
use crate::protocol::messages::{CleanupSessionRequest, ToolChunk};
use crate::protocol::{service, value};
use crate::stats::Counters;
use crate::stream::{Chunk, StreamControl, StreamEvent};

/// How long a lane waits, after a transport failure, to learn whether the
/// process died (which makes the failure a crash).
const CRASH_CONFIRM: Duration = Duration::from_secs(1);

/// How often a lane blocked on a slow stream consumer looks for a cancel.
const CANCEL_POLL: Duration = Duration::from_millis(50);

pub(crate) struct Lane {
    pub slot: usize,
    pub shared: Arc<Shared>,
    pub jobs: Receiver<Work>,
    pub current: Arc<parking_lot::RwLock<Option<Arc<Connection>>>>,
    pub control: Sender<Control>,
    pub resubmit: Sender<Command>,
    pub kill_on_timeout: bool,
}

impl Lane {
    /// Serves work until the dispatcher goes away.
    pub fn run(self) {
        while let Ok(work) = self.jobs.recv() {
            let conn = self.current.read().clone();
            match work {
                Work::Call(job) => match conn {
                    Some(conn) if conn.generation == job.ticket.generation => self.call(&conn, job),
                    // The process this job was meant for is gone and the
                    // call never left the host: hand it back to be placed
                    // again.
                    _ => self.hand_back(job),
                },
                Work::CleanupSession {
                    session,
                    generation,
                } => {
                    if let Some(conn) = conn.filter(|c| c.generation == generation) {
                        self.cleanup_session(&conn, session);
                    }
                }
            }
        }
    }

    fn call(&self, conn: &Connection, job: Job) {
        let Job { mut req, ticket } = job;
        let started = Instant::now();
        let opt = CallOption::default().timeout(req.timeout);
        let worker = &self.shared.workers[self.slot].id;
        conn.in_flight.fetch_add(1, Relaxed);
        let outcome = match &req.reply {
            Replier::Unary(_) => {
                let result = conn
                    .client
                    .unary_call(&service::EXECUTE_TOOL, &req.message, opt);
                match result {
                    Ok(resp) => value::decode_response(&req.tool, worker, resp).map(|d| {
                        Some(Reply {
                            value: d.value,
                            binary: d.binary,
                            worker: worker.clone(),
                            elapsed: req.submitted.elapsed(),
                            queued: started.duration_since(req.submitted),
                            metadata: d.metadata,
                        })
                    }),
                    Err(e) => Err(self.call_error(conn, &req, e)),
                }
            }
            Replier::Stream { events, control } => {
                let result = conn.client.server_streaming(
                    &service::EXECUTE_STREAMING_TOOL,
                    &req.message,
                    opt,
                );
                match result {
                    Ok(receiver) => self
                        .pump(conn, &req, receiver, events, control)
                        .map(|()| None),
                    Err(e) => Err(self.call_error(conn, &req, e)),
                }
            }
        };
        conn.in_flight.fetch_sub(1, Relaxed);
        self.count_served(conn);
        self.shared.workers[self.slot].calls.fetch_add(1, Relaxed);
        if req.retries > 0 && matches!(outcome, Err(Error::WorkerCrashed { .. })) {
            // Idempotent: run it again elsewhere rather than fail it.
            req.retries -= 1;
            log::info!("{worker} crashed during `{}`; retrying it", req.tool);
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
        match outcome {
            Ok(reply) => req.succeed(reply),
            Err(err) => req.fail(err),
        }
    }

    /// Moves chunks from the gRPC stream to the caller as they arrive,
    /// until the final one, an error, or the caller drops its `Stream`
    /// (then the call is cancelled, which closes the Python generator).
    fn pump(
        &self,
        conn: &Connection,
        req: &Request,
        mut receiver: ClientSStreamReceiver<ToolChunk>,
        events: &Sender<StreamEvent>,
        control: &StreamControl,
    ) -> Result<(), Error> {
        control.attach(thread::current());
        let waker = thread_waker();
        let mut cx = Context::from_waker(&waker);
        loop {
            if control.is_cancelled() {
                receiver.cancel();
                return Ok(());
            }
            let chunk = match Pin::new(&mut receiver).poll_next(&mut cx) {
                Poll::Pending => {
                    // Woken by gRPC when a chunk arrives, or by a cancel.
                    thread::park_timeout(CANCEL_POLL);
                    continue;
                }
                Poll::Ready(None) => return Ok(()),
                Poll::Ready(Some(Err(e))) => return Err(self.call_error(conn, req, e)),
                Poll::Ready(Some(Ok(chunk))) => chunk,
            };
            let is_final = chunk.is_final;
            if chunk.metadata.get("error").map(String::as_str) == Some("true") {
                let payload = String::from_utf8_lossy(&chunk.data);
                return Err(value::decode_error(&req.tool, &payload));
            }
            if !(is_final && chunk.data.is_empty()) {
                let worker = &self.shared.workers[self.slot].id;
                let item = match decode_chunk(&req.tool, worker, chunk) {
                    Ok(item) => item,
                    Err(e) => {
                        receiver.cancel();
                        return Err(e);
                    }
                };
                let mut event = StreamEvent::Chunk(item);
                // A slow reader holds the lane here; keep an eye on cancels.
                loop {
                    match events.send_timeout(event, CANCEL_POLL) {
                        Ok(()) => break,
                        Err(SendTimeoutError::Timeout(back)) if !control.is_cancelled() => {
                            event = back
                        }
                        Err(_) => {
                            receiver.cancel();
                            return Ok(());
                        }
                    }
                }
            }
            if is_final {
                return Ok(());
            }
        }
    }

    /// Turns a failed gRPC call into the error the caller gets, and acts on
    /// what it means for the process (hung: replace it; dead: close the
    /// slot).
    fn call_error(&self, conn: &Connection, req: &Request, e: grpcio::Error) -> Error {
        let worker = &self.shared.workers[self.slot].id;
        if let grpcio::Error::RpcFailure(status) = &e {
            match status.code() {
                RpcStatusCode::DEADLINE_EXCEEDED => {
                    Counters::bump(&self.shared.counters.timeouts);
                    if self.kill_on_timeout {
                        // The process is stuck in this call and will be
                        // killed: close the slot before this call frees it,
                        // so the next call waits for the replacement.
                        self.shared
                            .slots
                            .retire_generation(self.slot, conn.generation);
                        let _ = self.control.send(Control::Hung {
                            generation: conn.generation,
                        });
                    }
                    return Error::Timeout {
                        tool: req.tool.clone(),
                        timeout: req.timeout,
                    };
                }
                // Our own arguments are checked before sending, so this is
                // the worker refusing to send a result past the limit.
                RpcStatusCode::RESOURCE_EXHAUSTED => {
                    return Error::PayloadTooLarge {
                        what: "result",
                        size: None,
                        limit: self.shared.config.max_message_bytes as u64,
                    };
                }
                // A streaming tool that raised: the status message is the
                // worker's JSON error payload.
                RpcStatusCode::INTERNAL if status.message().starts_with('{') => {
                    return value::decode_error(&req.tool, status.message());
                }
                _ => {}
            }
        }
        let (code, message) = match &e {
            grpcio::Error::RpcFailure(s) => (format!("{:?}", s.code()), s.message().to_owned()),
            other => ("CLIENT".to_owned(), other.to_string()),
        };
        match conn.exit.wait_timeout(CRASH_CONFIRM) {
            Some(exit) => {
                // Close the slot now: the worker's thread learns of the
                // death a moment later, and until then calls (retries among
                // them) must not land on this process.
                self.shared
                    .slots
                    .retire_generation(self.slot, conn.generation);
                conn.stderr.wait_closed(Duration::from_millis(500));
                Error::WorkerCrashed {
                    worker: worker.clone(),
                    exit: Some(exit),
                    stderr_tail: conn.stderr.lines(),
                }
            }
            None => Error::Transport {
                worker: worker.clone(),
                code,
                message,
            },
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
        let early = limit - (limit / 5).max(1).min(limit - 1);
        if served == limit {
            self.shared
                .slots
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
        let req = CleanupSessionRequest {
            session_id: session,
            force: true,
            ..Default::default()
        };
        let opt = CallOption::default().timeout(self.shared.config.health_check_timeout);
        if let Err(e) = conn.client.unary_call(&service::CLEANUP_SESSION, &req, opt) {
            log::debug!("cleaning up session `{}`: {e}", req.session_id);
        }
    }

    fn hand_back(&self, mut job: Job) {
        self.shared.release(job.ticket);
        job.req.queued_since = Instant::now();
        if let Err(crossbeam_channel::SendError(Command::Submit(req))) =
            self.resubmit.send(Command::Submit(job.req))
        {
            Counters::bump(&self.shared.counters.failed);
            req.fail(Error::ShuttingDown);
        }
    }
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
