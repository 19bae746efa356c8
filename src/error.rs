//! The one public error type, [`Error`], its variant as a plain value,
//! [`ErrorKind`], and the worker exit description it carries.

use std::fmt;
use std::time::Duration;

/// Everything a pool call or a pool start can fail with.
///
/// Each variant names what happened and carries what is needed to act on it.
/// The enum is `#[non_exhaustive]`: match the variants you handle and keep a
/// catch-all arm. [`Error::kind`] gives the variant alone, for counting
/// errors or deciding to retry without matching fields.
///
/// ```
/// use snakepit::{Error, ErrorKind};
/// use std::time::Duration;
///
/// let err = Error::QueueTimeout { tool: "add".into(), waited: Duration::from_secs(10) };
/// let retry_later = matches!(
///     err.kind(),
///     ErrorKind::QueueTimeout | ErrorKind::PoolSaturated | ErrorKind::WorkerBusy
/// );
/// assert!(retry_later);
/// assert!(err.to_string().starts_with("call to `add` waited 10s"));
/// ```
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
        /// For a remote worker, the endpoint (`ip:port`) whose connection
        /// broke (it has no exit status or stderr the host can see).
        endpoint: Option<String>,
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
    /// become ready within the start-up timeout. (A failure of the pool's
    /// own set-up, before any worker, is [`Error::PoolStart`].)
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
    /// A pool option (set on the builder or in a configuration file) has a
    /// value that cannot work, or the configuration file cannot be read.
    /// The message names the key, the value and what is allowed. Nothing
    /// was started.
    InvalidConfig {
        /// The option at fault, e.g. `"workers"`.
        option: &'static str,
        /// What is wrong and what is allowed.
        message: String,
    },
    /// A method was given an argument that cannot work: an unknown worker
    /// name for [`Pool::recycle_worker`](crate::Pool::recycle_worker), an
    /// unknown pool name for [`PoolSet::pool`](crate::PoolSet::pool), a zero
    /// [`CallOptions::timeout`](crate::CallOptions::timeout). Nothing was
    /// done. (A tool's own arguments that do not fit are
    /// [`Error::InvalidArguments`].)
    InvalidArgument {
        /// The parameter at fault, e.g. `"worker"`, `"name"`, `"timeout"`.
        argument: &'static str,
        /// What is wrong and what is allowed.
        message: String,
    },
    /// The pool could not set itself up, before or besides any worker: the
    /// cache directory for the worker's Python files, the private socket
    /// directory, or the host callback server could not be created. Usually
    /// a file system or permission problem on the host. Also a pool thread
    /// that panicked while the pool started (a bug: please report it). (A
    /// worker that fails to start is [`Error::Startup`].)
    PoolStart {
        /// What failed, with the OS error.
        message: String,
    },
    /// No worker is serving at the moment (every one is starting or
    /// restarting), so a request that needs a live worker outside the call
    /// queue, such as [`Pool::tools`](crate::Pool::tools), could not be
    /// made. Try again shortly; calls wait in the queue instead.
    NoWorkerServing,
    /// A process-wide signal handler could not be installed: the process
    /// already has a Ctrl-C handler (one per process, whether from
    /// [`Pool::shutdown_on_ctrl_c`](crate::Pool::shutdown_on_ctrl_c) for any
    /// pool, or from the program itself through the `ctrlc` crate), or the
    /// OS refused.
    SignalHandler {
        /// Why it could not be installed.
        message: String,
    },
    /// A pool thread panicked while it held this call (a bug: please
    /// report it). The call may or may not have run on the worker. The
    /// pool caught the panic and goes on serving: other calls are not
    /// affected, and a worker whose own thread panicked has its process
    /// killed and started again after a backoff.
    Internal {
        /// What panicked, with the panic message.
        message: String,
    },
    /// A remote worker's TLS handshake failed: the worker's certificate is
    /// not signed by the CA given to [`Tls`](crate::Tls), does not carry
    /// the expected name ([`Tls::authority`](crate::Tls::authority)), or
    /// the worker wants a client certificate that was not presented or
    /// that it does not trust. Fix the certificates or the names.
    Tls {
        /// The endpoint, `ip:port`.
        endpoint: String,
        /// What the handshake said.
        message: String,
    },
    /// A remote worker refused the pool's token (`UNAUTHENTICATED`): the
    /// token file given to [`Remote::token_file`](crate::Remote::token_file)
    /// is missing, or differs from the worker's `--token-file`.
    Unauthenticated {
        /// The endpoint, `ip:port`.
        endpoint: String,
        /// What the worker said.
        message: String,
    },
}

impl Error {
    /// Which variant this is, as a plain `Copy` value to match on, count
    /// or log ([`ErrorKind::as_str`]).
    ///
    /// ```
    /// use snakepit::{Error, ErrorKind};
    ///
    /// assert_eq!(Error::ShuttingDown.kind(), ErrorKind::ShuttingDown);
    /// assert_eq!(Error::ShuttingDown.kind().as_str(), "shutting_down");
    /// ```
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Python { .. } => ErrorKind::Python,
            Error::Timeout { .. } => ErrorKind::Timeout,
            Error::QueueTimeout { .. } => ErrorKind::QueueTimeout,
            Error::PoolSaturated { .. } => ErrorKind::PoolSaturated,
            Error::WorkerCrashed { .. } => ErrorKind::WorkerCrashed,
            Error::ToolNotFound { .. } => ErrorKind::ToolNotFound,
            Error::InvalidArguments { .. } => ErrorKind::InvalidArguments,
            Error::Startup { .. } => ErrorKind::Startup,
            Error::ShuttingDown => ErrorKind::ShuttingDown,
            Error::WorkerBusy { .. } => ErrorKind::WorkerBusy,
            Error::SessionWorkerUnavailable { .. } => ErrorKind::SessionWorkerUnavailable,
            Error::PayloadTooLarge { .. } => ErrorKind::PayloadTooLarge,
            Error::Transport { .. } => ErrorKind::Transport,
            Error::InvalidConfig { .. } => ErrorKind::InvalidConfig,
            Error::InvalidArgument { .. } => ErrorKind::InvalidArgument,
            Error::PoolStart { .. } => ErrorKind::PoolStart,
            Error::NoWorkerServing => ErrorKind::NoWorkerServing,
            Error::SignalHandler { .. } => ErrorKind::SignalHandler,
            Error::Internal { .. } => ErrorKind::Internal,
            Error::Tls { .. } => ErrorKind::Tls,
            Error::Unauthenticated { .. } => ErrorKind::Unauthenticated,
        }
    }

    /// True when this is a Python exception of class `class`
    /// (the bare class name, e.g. `"ValueError"`).
    ///
    /// ```
    /// use snakepit::Error;
    ///
    /// let err = Error::Python {
    ///     class: "ValueError".into(),
    ///     message: "n must be positive".into(),
    ///     traceback: String::new(),
    /// };
    /// assert!(err.is_python("ValueError"));
    /// assert!(!err.is_python("KeyError"));
    /// ```
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
                endpoint,
            } => {
                match endpoint {
                    Some(endpoint) => write!(
                        f,
                        "{worker} (endpoint {endpoint}) crashed during the call: the \
                         connection to it broke"
                    )?,
                    None => write!(f, "{worker} crashed during the call")?,
                }
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
            Error::InvalidArgument { argument, message } => {
                write!(f, "invalid argument `{argument}`: {message}")
            }
            Error::PoolStart { message } => write!(f, "the pool failed to start: {message}"),
            Error::NoWorkerServing => write!(
                f,
                "no worker is serving right now (all are starting or restarting); try again"
            ),
            Error::SignalHandler { message } => {
                write!(f, "cannot install the Ctrl-C handler: {message}")
            }
            Error::Internal { message } => write!(
                f,
                "internal error (a pool thread panicked; please report it): {message}"
            ),
            Error::Tls { endpoint, message } => {
                write!(f, "TLS handshake with {endpoint} failed: {message}")
            }
            Error::Unauthenticated { endpoint, message } => {
                write!(f, "{endpoint} refused the pool's token: {message}")
            }
        }
    }
}

impl std::error::Error for Error {}

/// The kind of an [`Error`]: its variant without the details, from
/// [`Error::kind`]. One kind per variant, named alike.
///
/// `Display` and [`as_str`](ErrorKind::as_str) give a stable `snake_case`
/// name (`"queue_timeout"`), fit for metric labels and log fields. The enum
/// is `#[non_exhaustive]`: new error variants bring new kinds.
///
/// ```
/// use snakepit::ErrorKind;
/// use std::collections::HashMap;
///
/// let mut failures: HashMap<ErrorKind, u64> = HashMap::new();
/// *failures.entry(ErrorKind::Timeout).or_default() += 1;
/// assert_eq!(ErrorKind::Timeout.to_string(), "timeout");
/// assert_eq!(ErrorKind::WorkerCrashed.as_str(), "worker_crashed");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum ErrorKind {
    /// [`Error::Python`].
    Python,
    /// [`Error::Timeout`].
    Timeout,
    /// [`Error::QueueTimeout`].
    QueueTimeout,
    /// [`Error::PoolSaturated`].
    PoolSaturated,
    /// [`Error::WorkerCrashed`].
    WorkerCrashed,
    /// [`Error::ToolNotFound`].
    ToolNotFound,
    /// [`Error::InvalidArguments`].
    InvalidArguments,
    /// [`Error::Startup`].
    Startup,
    /// [`Error::ShuttingDown`].
    ShuttingDown,
    /// [`Error::WorkerBusy`].
    WorkerBusy,
    /// [`Error::SessionWorkerUnavailable`].
    SessionWorkerUnavailable,
    /// [`Error::PayloadTooLarge`].
    PayloadTooLarge,
    /// [`Error::Transport`].
    Transport,
    /// [`Error::InvalidConfig`].
    InvalidConfig,
    /// [`Error::InvalidArgument`].
    InvalidArgument,
    /// [`Error::PoolStart`].
    PoolStart,
    /// [`Error::NoWorkerServing`].
    NoWorkerServing,
    /// [`Error::SignalHandler`].
    SignalHandler,
    /// [`Error::Internal`].
    Internal,
    /// [`Error::Tls`].
    Tls,
    /// [`Error::Unauthenticated`].
    Unauthenticated,
}

impl ErrorKind {
    /// The stable `snake_case` name, e.g. `"pool_saturated"`.
    ///
    /// ```
    /// assert_eq!(snakepit::ErrorKind::PoolSaturated.as_str(), "pool_saturated");
    /// ```
    pub const fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Python => "python",
            ErrorKind::Timeout => "timeout",
            ErrorKind::QueueTimeout => "queue_timeout",
            ErrorKind::PoolSaturated => "pool_saturated",
            ErrorKind::WorkerCrashed => "worker_crashed",
            ErrorKind::ToolNotFound => "tool_not_found",
            ErrorKind::InvalidArguments => "invalid_arguments",
            ErrorKind::Startup => "startup",
            ErrorKind::ShuttingDown => "shutting_down",
            ErrorKind::WorkerBusy => "worker_busy",
            ErrorKind::SessionWorkerUnavailable => "session_worker_unavailable",
            ErrorKind::PayloadTooLarge => "payload_too_large",
            ErrorKind::Transport => "transport",
            ErrorKind::InvalidConfig => "invalid_config",
            ErrorKind::InvalidArgument => "invalid_argument",
            ErrorKind::PoolStart => "pool_start",
            ErrorKind::NoWorkerServing => "no_worker_serving",
            ErrorKind::SignalHandler => "signal_handler",
            ErrorKind::Internal => "internal",
            ErrorKind::Tls => "tls",
            ErrorKind::Unauthenticated => "unauthenticated",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a worker process ended, in [`Error::WorkerCrashed`] and
/// [`ExitReason::Crashed`](crate::events::ExitReason::Crashed).
///
/// ```
/// use std::os::unix::process::ExitStatusExt;
/// use std::process::ExitStatus;
///
/// let killed = snakepit::Exit::from(ExitStatus::from_raw(9)); // SIGKILL
/// assert_eq!((killed.code, killed.signal), (None, Some(9)));
/// assert_eq!(killed.to_string(), "killed by signal 9 (SIGKILL)");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
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
            // A remote endpoint: no status reaches the host.
            (None, None) => write!(f, "lost (no exit status: the connection broke)"),
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Every kind, by a match that stops compiling when a kind is added.
    fn all_kinds() -> Vec<ErrorKind> {
        let all = [
            ErrorKind::Python,
            ErrorKind::Timeout,
            ErrorKind::QueueTimeout,
            ErrorKind::PoolSaturated,
            ErrorKind::WorkerCrashed,
            ErrorKind::ToolNotFound,
            ErrorKind::InvalidArguments,
            ErrorKind::Startup,
            ErrorKind::ShuttingDown,
            ErrorKind::WorkerBusy,
            ErrorKind::SessionWorkerUnavailable,
            ErrorKind::PayloadTooLarge,
            ErrorKind::Transport,
            ErrorKind::InvalidConfig,
            ErrorKind::InvalidArgument,
            ErrorKind::PoolStart,
            ErrorKind::NoWorkerServing,
            ErrorKind::SignalHandler,
            ErrorKind::Internal,
            ErrorKind::Tls,
            ErrorKind::Unauthenticated,
        ];
        for kind in all {
            match kind {
                ErrorKind::Python
                | ErrorKind::Timeout
                | ErrorKind::QueueTimeout
                | ErrorKind::PoolSaturated
                | ErrorKind::WorkerCrashed
                | ErrorKind::ToolNotFound
                | ErrorKind::InvalidArguments
                | ErrorKind::Startup
                | ErrorKind::ShuttingDown
                | ErrorKind::WorkerBusy
                | ErrorKind::SessionWorkerUnavailable
                | ErrorKind::PayloadTooLarge
                | ErrorKind::Transport
                | ErrorKind::InvalidConfig
                | ErrorKind::InvalidArgument
                | ErrorKind::PoolStart
                | ErrorKind::NoWorkerServing
                | ErrorKind::SignalHandler
                | ErrorKind::Internal
                | ErrorKind::Tls
                | ErrorKind::Unauthenticated => {}
            }
        }
        all.to_vec()
    }

    fn snake_case(camel: &str) -> String {
        let mut out = String::new();
        for (i, c) in camel.chars().enumerate() {
            if c.is_ascii_uppercase() && i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        }
        out
    }

    #[test]
    fn each_kind_is_named_after_its_variant_in_snake_case() {
        let kinds = all_kinds();
        for kind in &kinds {
            assert_eq!(kind.as_str(), snake_case(&format!("{kind:?}")));
            assert_eq!(kind.to_string(), kind.as_str());
        }
        let mut names: Vec<_> = kinds.iter().map(|k| k.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), kinds.len(), "names are distinct");
    }

    #[test]
    fn errors_outside_configuration_are_not_invalid_config() {
        let cases = [
            (
                Error::InvalidArgument {
                    argument: "worker",
                    message: "no worker named \"w\"".into(),
                },
                ErrorKind::InvalidArgument,
                "invalid argument `worker`: no worker named \"w\"",
            ),
            (
                Error::PoolStart {
                    message: "cannot create the socket directory: denied".into(),
                },
                ErrorKind::PoolStart,
                "the pool failed to start: cannot create the socket directory: denied",
            ),
            (
                Error::SignalHandler {
                    message: "one is already installed".into(),
                },
                ErrorKind::SignalHandler,
                "cannot install the Ctrl-C handler: one is already installed",
            ),
        ];
        for (err, kind, text) in cases {
            assert_eq!(err.kind(), kind);
            assert_eq!(err.to_string(), text);
        }
        assert_eq!(Error::NoWorkerServing.kind(), ErrorKind::NoWorkerServing);
    }
}
