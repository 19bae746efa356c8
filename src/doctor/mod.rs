//! Why a worker would not start, found before starting one; and the
//! virtual environment that fixes the usual cause. What `snakepit doctor`
//! and `snakepit setup` run.
//!
//! ```no_run
//! use snakepit::config::ConfigFile;
//! use snakepit::doctor;
//!
//! let config = ConfigFile::load("snakepit.toml")?;
//! let checks = doctor::run(Some(&config), |check| {
//!     let mark = if check.passed { "ok" } else { "FAIL" };
//!     println!("{mark} {}: {}", check.name, check.detail);
//! });
//! assert!(checks.iter().all(|c| c.passed));
//! # Ok::<(), snakepit::Error>(())
//! ```
//!
//! The parts: this file runs the checks in order and collects the
//! outcomes; `checks` holds each check; `venv` the virtual environment;
//! `probe` runs the short-lived Python processes they all need.

mod checks;
mod probe;
mod venv;

use std::io;
use std::path::PathBuf;
use std::time::Duration;

use crate::config::ConfigFile;
use crate::python;

pub use venv::{setup, venv_dir};

/// How long a version or package check may take.
const QUICK: Duration = Duration::from_secs(30);

/// One check and its outcome.
///
/// ```
/// use snakepit::doctor::Check;
///
/// let check = Check::fail("python", "cannot run python3", "install Python 3");
/// assert!(!check.passed);
/// assert_eq!(check.fix.as_deref(), Some("install Python 3"));
/// assert_eq!(Check::pass("python", "3.12").fix, None);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Check {
    /// What was checked, e.g. `"python"` or `"adapter of pool compute"`.
    pub name: String,
    /// Whether it passed.
    pub passed: bool,
    /// What was found: a version, a path, or the error.
    pub detail: String,
    /// What to do about a failure.
    pub fix: Option<String>,
}

impl Check {
    /// A check that passed.
    pub fn pass(name: impl Into<String>, detail: impl Into<String>) -> Check {
        Check {
            name: name.into(),
            passed: true,
            detail: detail.into(),
            fix: None,
        }
    }

    /// A check that failed, and what to do about it.
    pub fn fail(
        name: impl Into<String>,
        detail: impl Into<String>,
        fix: impl Into<String>,
    ) -> Check {
        Check {
            name: name.into(),
            passed: false,
            detail: detail.into(),
            fix: Some(fix.into()),
        }
    }
}

/// Runs every check, handing each to `report` as soon as it is done, and
/// returns them all.
///
/// The checks: the worker's Python files can be written; each interpreter
/// the pools use (or the default one, without `config`) runs and is recent
/// enough; `grpcio` and `protobuf` import in it; each pool's adapter
/// imports with the pool's `python_path` and environment (and is marked
/// thread-safe for the thread profile); a private socket directory can be
/// made and a socket bound in it.
///
/// It runs short Python processes, hence `no_run` here:
///
/// ```no_run
/// // Without a configuration file: the default interpreter only.
/// let checks = snakepit::doctor::run(None, |check| {
///     let mark = if check.passed { "ok  " } else { "FAIL" };
///     println!("{mark} {}: {}", check.name, check.detail);
/// });
/// if let Some(failed) = checks.iter().find(|c| !c.passed) {
///     eprintln!("fix: {}", failed.fix.as_deref().unwrap_or("see above"));
/// }
/// ```
pub fn run(config: Option<&ConfigFile>, mut report: impl FnMut(&Check)) -> Vec<Check> {
    let mut checks = Vec::new();
    let mut add = |check: Check| {
        report(&check);
        checks.push(check);
    };

    let files_dir = match python::worker_files() {
        Ok(dir) => {
            add(Check::pass("worker files", dir.display().to_string()));
            Some(dir)
        }
        Err(e) => {
            add(Check::fail(
                "worker files",
                format!("cannot write the worker's Python files to the cache directory: {e}"),
                "set SNAKEPIT_CACHE_DIR to a directory you can write to",
            ));
            None
        }
    };

    // Each distinct interpreter once, with the pools that use it.
    let mut interpreters: Vec<(PathBuf, Vec<&str>)> = Vec::new();
    let pools = config.map_or(&[][..], ConfigFile::pools);
    if pools.is_empty() {
        interpreters.push((python::interpreter(None), Vec::new()));
    }
    let (remote, pools): (Vec<_>, Vec<_>) = pools
        .iter()
        .partition(|p| p.builder().settings().remote.is_some());
    for pool in &remote {
        add(checks::check_remote(pool));
    }
    for pool in &pools {
        let python = python::interpreter(pool.builder().settings().python.as_deref());
        match interpreters.iter_mut().find(|(p, _)| *p == python) {
            Some((_, names)) => names.push(pool.name()),
            None => interpreters.push((python, vec![pool.name()])),
        }
    }
    let mut usable = Vec::new();
    for (python, names) in &interpreters {
        let suffix = if names.is_empty() {
            String::new()
        } else {
            format!(" (pool {})", names.join(", "))
        };
        if checks::check_interpreter(python, files_dir.as_deref(), &suffix, &mut add) {
            usable.push(python.clone());
        }
    }

    for pool in &pools {
        let python = python::interpreter(pool.builder().settings().python.as_deref());
        add(if usable.contains(&python) {
            checks::check_adapter(pool, &python, files_dir.as_deref())
        } else {
            Check::fail(
                format!("adapter of pool {}", pool.name()),
                format!(
                    "{} not checked: its interpreter is not usable",
                    pool.adapter()
                ),
                "fix the interpreter first (see above)",
            )
        });
    }

    add(checks::check_socket_dir());
    checks
}

/// Writes the worker's Python files (`snakepit_bridge`, `grpc_server.py`,
/// `requirements.txt`, `snakepit_showcase`) to snakepit's cache directory
/// if they are not there yet, and returns that directory. Put it on
/// `PYTHONPATH` to import `snakepit_bridge` outside a worker, e.g. to test
/// an adapter.
///
/// ```
/// let dir = snakepit::doctor::worker_files_dir()?;
/// assert!(dir.join("snakepit_bridge").join("__init__.py").is_file());
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn worker_files_dir() -> io::Result<PathBuf> {
    python::worker_files()
}
