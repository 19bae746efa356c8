//! Ctrl-C (SIGINT) as "shut down, then exit with status 130", so no worker
//! outlives an interrupted program. A process has one such handler; this
//! is the one place that installs it, for [`Pool`](crate::Pool) and
//! [`PoolSet`](crate::PoolSet) alike.

use crate::error::Error;

/// The exit status of a program stopped by SIGINT (128 + 2), as shells
/// report it.
const INTERRUPTED: i32 = 130;

/// Installs the process's Ctrl-C handler: log that `what` is shutting
/// down, run `shutdown` (which blocks until the workers are gone), exit.
/// Fails when the process already has a handler.
pub(crate) fn shutdown_on_ctrl_c(
    what: &'static str,
    shutdown: impl Fn() + Send + 'static,
) -> Result<(), Error> {
    ctrlc::set_handler(move || {
        log::warn!("interrupted: shutting {what} down");
        shutdown();
        std::process::exit(INTERRUPTED);
    })
    .map_err(|e| Error::SignalHandler {
        message: e.to_string(),
    })
}
