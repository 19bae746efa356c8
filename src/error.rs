//! The one public error type, [`Error`], and the worker exit description
//! it carries.

use std::fmt;
use std::time::Duration;

/// Everything a pool call or a pool start can fail with.
///
/// Each variant names what happened and carries what is needed to act on it.
/// The enum is `#[non_exhaustive]`: match the variants you handle and keep a
/// catch-all arm.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Error {
    /// The Python tool raised an exception. The call reached the worker and
    /// the worker is still healthy.
    Python {
        /// The exception's class name, e.g. `"ValueError"`.
        class: String,
        /// `str(exception)`.
        message: String,
        /// The formatted Python traceback, chained causes included.
        traceback: String,
    },
    /// The call ran on a worker longer than its call timeout.
    Timeout {
        /// The tool that was called.
        tool: String,
        /// The timeout that passed.
        timeout: Duration,
    },
    /// The call waited in the pool's queue for a free worker longer than the
    /// queue timeout. It never ran.
    QueueTimeout {
        /// The tool that was called.
        tool: String,
        /// How long it waited.
        waited: Duration,
    },
    /// Every worker was busy and the wait queue was full, so the call was
    /// refused at once. It never ran. Slow down, add workers or raise
    /// `queue_size`.
    PoolSaturated {
        /// The queue capacity that was full.
        queue_size: usize,
    },
    /// The worker process died while the call was on it.
    WorkerCrashed {
        /// The worker that died, e.g. `"worker-2"`.
        worker: String,
        /// How the process ended, when it was seen.
        exit: Option<Exit>,
        /// The last lines the process wrote to stderr.
        stderr_tail: Vec<String>,
    },
    /// The adapter has no tool of that name.
    ToolNotFound {
        /// The name that was asked for.
        tool: String,
        /// The tools the adapter does have, sorted.
        available: Vec<String>,
    },
    /// The arguments do not fit the tool: not a JSON object, a missing or
    /// unknown argument, or a value of the wrong type. The tool did not run.
    InvalidArguments {
        /// The tool that was called.
        tool: String,
        /// The argument at fault, when one is.
        argument: Option<String>,
        /// The tool's signature, when the worker reported it.
        signature: Option<String>,
        /// What is wrong.
        message: String,
    },
    /// A worker could not be started: the interpreter is missing, the
    /// adapter failed to import, a Python package is missing, or it did not
    /// become ready within the start-up timeout.
    Startup {
        /// The worker that failed, e.g. `"worker-0"`.
        worker: String,
        /// What went wrong, with the Python traceback or the OS error.
        message: String,
    },
    /// The pool is shutting down (or has shut down) and takes no new calls.
    ShuttingDown,
    /// A call with [`Affinity::StrictFailFast`](crate::Affinity) found its
    /// session's worker busy. It never ran.
    WorkerBusy {
        /// The session.
        session: String,
        /// Its worker.
        worker: String,
    },
    /// A strict-affinity call's session worker has died or been recycled,
    /// so the session's state is gone. Close the session and start anew.
    SessionWorkerUnavailable {
        /// The session.
        session: String,
        /// The worker it was on.
        worker: String,
    },
    /// The arguments or the result are larger than `max_message_bytes`.
    /// Nothing was sent (arguments), or the result was dropped (result).
    PayloadTooLarge {
        /// `"arguments"` or `"result"`.
        what: &'static str,
        /// The message size in bytes, when known.
        size: Option<u64>,
        /// The limit, `PoolBuilder::max_message_bytes`.
        limit: u64,
    },
    /// The gRPC transport to a live worker failed.
    Transport {
        /// The worker the call was on.
        worker: String,
        /// The gRPC status code name, e.g. `"RESOURCE_EXHAUSTED"`.
        code: String,
        /// The gRPC status message.
        message: String,
    },
    /// A builder option, call option or configuration file entry has a
    /// value that cannot work (the message names the key, the value and
    /// what is allowed).
    InvalidConfig {
        /// The option at fault, e.g. `"workers"`.
        option: &'static str,
        /// What is wrong and what is allowed.
        message: String,
    },
}

impl Error {
    /// The variant's name, e.g. `"Timeout"`: for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Python { .. } => "Python",
            Error::Timeout { .. } => "Timeout",
            Error::QueueTimeout { .. } => "QueueTimeout",
            Error::PoolSaturated { .. } => "PoolSaturated",
            Error::WorkerCrashed { .. } => "WorkerCrashed",
            Error::ToolNotFound { .. } => "ToolNotFound",
            Error::InvalidArguments { .. } => "InvalidArguments",
            Error::Startup { .. } => "Startup",
            Error::ShuttingDown => "ShuttingDown",
            Error::WorkerBusy { .. } => "WorkerBusy",
            Error::SessionWorkerUnavailable { .. } => "SessionWorkerUnavailable",
            Error::PayloadTooLarge { .. } => "PayloadTooLarge",
            Error::Transport { .. } => "Transport",
            Error::InvalidConfig { .. } => "InvalidConfig",
        }
    }

    /// True when this is a Python exception of class `class`
    /// (the bare class name, e.g. `"ValueError"`).
    pub fn is_python(&self, class: &str) -> bool {
        matches!(self, Error::Python { class: c, .. } if c == class)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Python {
                class,
                message,
                traceback,
            } => {
                write!(f, "Python raised {class}: {message}")?;
                if !traceback.is_empty() {
                    write!(f, "\n{}", traceback.trim_end())?;
                }
                Ok(())
            }
            Error::Timeout { tool, timeout } => {
                write!(f, "call to `{tool}` timed out after {timeout:?}")
            }
            Error::QueueTimeout { tool, waited } => write!(
                f,
                "call to `{tool}` waited {waited:?} for a free worker and was dropped \
                 (raise queue_timeout or add workers)"
            ),
            Error::PoolSaturated { queue_size } => write!(
                f,
                "pool saturated: every worker is busy and the queue of {queue_size} is full"
            ),
            Error::WorkerCrashed {
                worker,
                exit,
                stderr_tail,
            } => {
                write!(f, "{worker} crashed during the call")?;
                if let Some(exit) = exit {
                    write!(f, " ({exit})")?;
                }
                if !stderr_tail.is_empty() {
                    write!(f, "; last stderr lines:\n{}", stderr_tail.join("\n"))?;
                }
                Ok(())
            }
            Error::ToolNotFound { tool, available } => write!(
                f,
                "no tool named `{tool}`; the adapter has: {}",
                available.join(", ")
            ),
            Error::InvalidArguments {
                tool,
                argument,
                signature,
                message,
            } => {
                write!(f, "invalid arguments for `{tool}`")?;
                if let Some(arg) = argument {
                    write!(f, " (argument `{arg}`)")?;
                }
                write!(f, ": {message}")?;
                if let Some(sig) = signature {
                    write!(f, "; expected {sig}")?;
                }
                Ok(())
            }
            Error::Startup { worker, message } => {
                write!(f, "{worker} failed to start: {message}")
            }
            Error::ShuttingDown => write!(f, "the pool is shutting down"),
            Error::WorkerBusy { session, worker } => write!(
                f,
                "session `{session}`'s worker {worker} is busy (strict fail-fast affinity)"
            ),
            Error::SessionWorkerUnavailable { session, worker } => write!(
                f,
                "session `{session}`'s worker {worker} was replaced and its state is gone \
                 (strict affinity); close the session and start a new one"
            ),
            Error::PayloadTooLarge { what, size, limit } => {
                write!(f, "the call's {what} ")?;
                if let Some(size) = size {
                    write!(f, "({size} bytes) ")?;
                }
                write!(
                    f,
                    "exceed the {limit}-byte message limit (raise PoolBuilder::max_message_bytes)"
                )
            }
            Error::Transport {
                worker,
                code,
                message,
            } => write!(f, "gRPC transport error on {worker}: {code}: {message}"),
            Error::InvalidConfig { option, message } => {
                write!(f, "invalid option `{option}`: {message}")
            }
        }
    }
}

impl std::error::Error for Error {}

/// How a worker process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exit {
    /// The exit code, when the process exited.
    pub code: Option<i32>,
    /// The signal number, when a signal killed it.
    pub signal: Option<i32>,
}

impl From<std::process::ExitStatus> for Exit {
    fn from(status: std::process::ExitStatus) -> Self {
        use std::os::unix::process::ExitStatusExt;
        Exit {
            code: status.code(),
            signal: status.signal(),
        }
    }
}

impl fmt::Display for Exit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.code, self.signal) {
            (Some(code), _) => write!(f, "exited with code {code}"),
            (None, Some(sig)) => write!(f, "killed by signal {sig} ({})", signal_name(sig)),
            (None, None) => write!(f, "ended"),
        }
    }
}

fn signal_name(sig: i32) -> &'static str {
    match sig {
        libc::SIGKILL => "SIGKILL",
        libc::SIGTERM => "SIGTERM",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGABRT => "SIGABRT",
        libc::SIGINT => "SIGINT",
        libc::SIGBUS => "SIGBUS",
        libc::SIGFPE => "SIGFPE",
        libc::SIGILL => "SIGILL",
        libc::SIGHUP => "SIGHUP",
        libc::SIGPIPE => "SIGPIPE",
        _ => "signal",
    }
}
