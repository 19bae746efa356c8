//! The launcher seam: what a worker slot needs from "something that
//! produces a connected process".
//!
//! A worker asks its [`Launcher`] for a process, waits until the process
//! reports the address it serves on, and from then on watches it through
//! [`Process`]: its exit, its memory, its stderr. Today's one
//! implementation starts local Python children ([`local`]). A process need
//! not be our child: a remote endpoint has no pid, exit status or memory
//! reading, so those are optional here and the worker's lifecycle does not
//! rely on them.

pub(crate) mod local;
pub(crate) mod remote;
pub(crate) mod resolver;

use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use crate::deadline::later;
use crate::error::Exit;

/// Which process a worker asks for.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Target<'a> {
    /// The worker's name, e.g. `worker-3`.
    pub worker: &'a str,
    /// The worker's slot index (what `{worker_index}` becomes).
    pub slot: usize,
    /// The slot generation the process will serve.
    pub generation: u32,
}

/// Told once, from any thread, that a process ended and how.
pub(crate) type OnExit = Box<dyn FnOnce(Exit) + Send>;

/// Told, from any thread, that a process is to be taken out of service
/// without being killed: its calls in flight finish, it gets no new ones
/// (a remote endpoint that vanished from DNS, or that is stopping).
pub(crate) type OnWithdraw = Box<dyn Fn() + Send + Sync>;

/// How long a lane waits, after a call's connection failed, to learn
/// whether the process died (which makes the failure a crash).
pub(crate) const CRASH_CONFIRM: Duration = Duration::from_secs(1);

/// Produces worker processes.
pub(crate) trait Launcher: Send + Sync {
    /// Starts a process for `target`. `on_exit` runs once the process has
    /// ended. Fails with a message that tells the user what to do.
    /// `on_withdraw` may be called any number of times while it serves.
    /// (A remote launcher waits here until discovery gives the slot an
    /// endpoint; see [`Launcher::is_bound`].)
    fn launch(
        &self,
        target: Target<'_>,
        on_exit: OnExit,
        on_withdraw: OnWithdraw,
    ) -> Result<Arc<dyn Process>, String>;

    /// Whether a launch for `slot` has something to start now. Always for
    /// local processes; a remote slot without an endpoint waits.
    fn is_bound(&self, slot: usize) -> bool {
        let _ = slot;
        true
    }
}

/// One process a launcher produced. Shared by the worker's thread and its
/// lanes, so every method takes `&self`.
pub(crate) trait Process: Send + Sync {
    /// Waits until the process reports the address it serves on, it ends,
    /// `timeout` passes, or `abandon` says to stop waiting. Fails with a
    /// message that tells the user what to do.
    fn wait_ready(&self, timeout: Duration, abandon: &dyn Fn() -> bool) -> Result<String, String>;

    /// How the process ended, if it has.
    fn exit_status(&self) -> Option<Exit>;

    /// Waits up to `timeout` for the process to end.
    fn wait_exit(&self, timeout: Duration) -> Option<Exit>;

    /// Stops the process at once and waits until it is gone.
    fn kill(&self);

    /// Asks the process to stop, gives it `grace` to do so, then kills it.
    /// Returns once it is gone.
    fn terminate(&self, grace: Duration);

    /// Its resident memory in bytes, when that can be known.
    fn resident_bytes(&self) -> Option<u64>;

    /// Its pid, when it is a process of this machine.
    fn pid(&self) -> Option<u32>;

    /// How logs name it, e.g. `pid 4242` or an endpoint's address.
    fn identity(&self) -> String;

    /// The last lines it wrote to stderr, after waiting up to `settle` for
    /// it to close stderr (so a report holds the last words of a process
    /// that just died).
    fn stderr_tail(&self, settle: Duration) -> Vec<String>;

    /// A call's connection to the process failed with the transport's
    /// `code`: how the process ended, if that failure is its end. A local
    /// process is given [`CRASH_CONFIRM`] to be reaped; for a remote
    /// endpoint a broken connection is the end.
    fn connection_lost(&self, code: &str) -> Option<Exit> {
        let _ = code;
        self.wait_exit(CRASH_CONFIRM)
    }

    /// The process said it is stopping and refused a call without running
    /// it: it is taken out of service (see [`OnWithdraw`]).
    fn stopping(&self) {}

    /// Its network address, when it is a remote endpoint.
    fn endpoint(&self) -> Option<&str> {
        None
    }
}

/// How a process ended, recorded once and waited for: what a launcher's
/// process keeps so that [`Process::exit_status`] and
/// [`Process::wait_exit`] need no polling.
#[derive(Debug, Default)]
pub(crate) struct ExitWatch {
    exit: Mutex<Option<Exit>>,
    changed: Condvar,
}

impl ExitWatch {
    /// How the process ended, if it has.
    pub fn get(&self) -> Option<Exit> {
        *self.exit.lock()
    }

    /// Waits up to `timeout` for the process to end.
    pub fn wait_timeout(&self, timeout: Duration) -> Option<Exit> {
        let deadline = later(Instant::now(), timeout);
        let mut exit = self.exit.lock();
        while exit.is_none() {
            if self.changed.wait_until(&mut exit, deadline).timed_out() {
                break;
            }
        }
        *exit
    }

    /// Records the end and wakes the waiters. Only the first end counts:
    /// false when one was already recorded.
    pub fn set(&self, value: Exit) -> bool {
        {
            let mut exit = self.exit.lock();
            if exit.is_some() {
                return false;
            }
            *exit = Some(value);
        }
        self.changed.notify_all();
        true
    }
}
