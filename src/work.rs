//! What the pool's threads hand each other: a caller or a lane sends the
//! dispatcher a [`Command`]; the dispatcher (or a caller on the fast path)
//! sends a worker's lanes [`Work`]. Kept apart from both ends so the
//! dispatcher and the worker do not import each other.

use crate::call::Request;
use crate::slots::Ticket;

/// What the dispatcher is sent.
#[derive(Debug)]
// Nearly every command is a `Submit`; boxing it would add an allocation per
// call to save space on the rare others.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Command {
    /// Place this call.
    Submit(Request),
    /// Forget this session and tell its worker to free its state.
    CloseSession(String),
    /// Refuse what waits, drop the job senders and end.
    Shutdown,
}

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
