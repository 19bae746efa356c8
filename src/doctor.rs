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

use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::config::{ConfigFile, PoolConfig};
use crate::launcher::local::{fill_worker_placeholders, python_path};
use crate::options::Profile;
use crate::python;
use crate::socket_dir;

/// The oldest Python the worker runs on.
const MIN_PYTHON: (u32, u32) = (3, 8);

/// How long a version or package check may take.
const QUICK: Duration = Duration::from_secs(30);

/// The longest Unix socket path (`sun_path`, with its NUL).
const MAX_SOCKET_PATH: usize = 107;

/// One check and its outcome.
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
    for pool in pools {
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
        if check_interpreter(python, files_dir.as_deref(), &suffix, &mut add) {
            usable.push(python.clone());
        }
    }

    for pool in pools {
        let python = python::interpreter(pool.builder().settings().python.as_deref());
        add(if usable.contains(&python) {
            check_adapter(pool, &python, files_dir.as_deref())
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

    add(check_socket_dir());
    checks
}

/// Imports an adapter class the way a worker would, and says on its last
/// line of stdout what went wrong, if anything.
const IMPORT_ADAPTER: &str = r#"
import importlib, sys, traceback
adapter, profile = sys.argv[1], sys.argv[2]
module, _, name = adapter.rpartition(".")
try:
    found = importlib.import_module(module)
except ModuleNotFoundError as error:
    traceback.print_exc()
    print("missing-module", error.name)
    sys.exit(1)
except BaseException:
    traceback.print_exc()
    print("raised")
    sys.exit(1)
adapter_class = getattr(found, name, None)
if adapter_class is None:
    print("no-class")
    sys.exit(1)
if profile == "thread" and not getattr(adapter_class, "__thread_safe__", False):
    print("not-thread-safe")
    sys.exit(1)
"#;

/// The pool's adapter imports with its interpreter, `python_path` and
/// environment (as worker 0 would see them).
fn check_adapter(pool: &PoolConfig, python: &Path, files_dir: Option<&Path>) -> Check {
    let builder = pool.builder();
    let settings = builder.settings();
    let name = format!("adapter of pool {}", pool.name());
    let adapter = pool.adapter();
    let module = adapter.rsplit_once('.').map_or(adapter, |(m, _)| m);
    let table = format!("[pools.{}]", pool.name());
    let thread = matches!(settings.profile, Profile::Thread { .. });

    let mut path: Vec<PathBuf> = files_dir.into_iter().map(Path::to_path_buf).collect();
    path.extend(settings.python_path.iter().cloned());
    let env = settings
        .env
        .iter()
        .map(|(k, v)| (k.clone(), fill_worker_placeholders(v, 0, "worker-0")));
    let mut cmd = python_command(python, &path);
    cmd.arg("-c")
        .arg(IMPORT_ADAPTER)
        .arg(adapter)
        .arg(if thread { "thread" } else { "process" })
        .envs(env);
    let out = match run_with_timeout(cmd, settings.startup_timeout) {
        Ok(out) if out.success => return Check::pass(name, format!("{adapter} imports")),
        Ok(out) => out,
        Err(e) => {
            return Check::fail(
                name,
                format!("importing {adapter}: {e}"),
                format!("raise startup_timeout in {table} if the adapter is slow to import"),
            )
        }
    };
    // The traceback without the import machinery's own frames.
    let traceback: String = out
        .stderr
        .lines()
        .filter(|l| !l.contains("<frozen importlib"))
        .filter(|l| !l.trim().chars().all(|c| c == '^' || c == '~'))
        .collect::<Vec<_>>()
        .join("\n");
    let verdict = out.stdout.lines().last().unwrap_or("").trim();
    let (verdict, missing) = verdict.split_once(' ').unwrap_or((verdict, ""));
    let the_adapters_own = module == missing || module.starts_with(&format!("{missing}."));
    let tail = last_lines(&traceback, 4);
    let (detail, fix) = match verdict {
        "missing-module" if the_adapters_own => (
            format!("no module named {missing:?}"),
            format!(
                "make `{module}` importable by {}: add the directory that holds `{missing}` to \
                 python_path in {table} (now: [{}]), or install its package",
                python.display(),
                settings
                    .python_path
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ),
        "missing-module" => (
            format!("{module} imports `{missing}`, which is not installed:\n{tail}"),
            format!(
                "install the adapter's dependency into {0}: \
                 {0} -m pip install <the package that provides {missing}>",
                python.display()
            ),
        ),
        "no-class" => (
            format!(
                "module {module} has no class {:?}",
                adapter.rsplit('.').next().unwrap_or("")
            ),
            format!("correct adapter = \"{adapter}\" in {table}"),
        ),
        "not-thread-safe" => (
            format!("{adapter} is not marked thread-safe (__thread_safe__ = True)"),
            format!(
                "derive it from snakepit_bridge.ThreadSafeAdapter if its tools may run at \
                 once, or use profile = \"process\" in {table}"
            ),
        ),
        _ => (
            format!("{module} raised while being imported:\n{tail}"),
            format!("fix the error above in {module}"),
        ),
    };
    Check::fail(name, detail, fix)
}

/// The interpreter, its version, grpcio and protobuf. True when the
/// interpreter runs and has both packages.
fn check_interpreter(
    python: &Path,
    files_dir: Option<&Path>,
    suffix: &str,
    add: &mut impl FnMut(Check),
) -> bool {
    let name = format!("python{suffix}");
    let point_elsewhere = "install Python 3.8 or newer, or point snakepit at one: \
                           SNAKEPIT_PYTHON=/path/to/python3, python = \"...\" in the \
                           configuration, or `snakepit setup --python /path/to/python3`";
    let mut cmd = python_command(python, &[]);
    cmd.arg("-c")
        .arg("import sys; print('%d.%d.%d' % sys.version_info[:3]); print(sys.executable)");
    let out = match run_with_timeout(cmd, QUICK) {
        Ok(out) if out.success => out,
        Ok(out) => {
            add(Check::fail(
                name,
                format!(
                    "{} failed:\n{}",
                    python.display(),
                    last_lines(&out.stderr, 3)
                ),
                point_elsewhere,
            ));
            return false;
        }
        Err(e) => {
            add(Check::fail(
                name,
                format!("cannot run {}: {e}", python.display()),
                point_elsewhere,
            ));
            return false;
        }
    };
    let mut lines = out.stdout.lines();
    let version = lines.next().unwrap_or("").trim().to_owned();
    let executable = lines.next().unwrap_or("").trim().to_owned();
    let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    let detail = format!("{} ({executable}), Python {version}", python.display());
    if (major, minor) < MIN_PYTHON {
        add(Check::fail(
            name,
            format!("{detail}: older than {}.{}", MIN_PYTHON.0, MIN_PYTHON.1),
            point_elsewhere,
        ));
        return false;
    }
    add(Check::pass(name, detail));

    let requirements = files_dir.map_or_else(
        || "grpcio protobuf".to_owned(),
        |d| format!("-r {}", d.join("requirements.txt").display()),
    );
    let install = format!(
        "run `snakepit setup` (a virtual environment with both), or: \
         {} -m pip install {requirements}",
        python.display()
    );
    let bridge_path: Vec<PathBuf> = files_dir.map(Path::to_path_buf).into_iter().collect();
    let mut ok = true;
    for (package, script) in [
        ("grpcio", "import grpc; print(grpc.__version__)"),
        (
            "protobuf",
            // The bridge's own protocol module needs a recent enough protobuf.
            "import google.protobuf; print(google.protobuf.__version__); \
             import snakepit_bridge.protocol",
        ),
    ] {
        let mut cmd = python_command(python, &bridge_path);
        cmd.arg("-c").arg(script);
        let name = format!("{package}{suffix}");
        add(match run_with_timeout(cmd, QUICK) {
            Ok(out) if out.success => {
                Check::pass(name, out.stdout.lines().next().unwrap_or("").trim())
            }
            Ok(out) => {
                ok = false;
                Check::fail(name, last_lines(&out.stderr, 1), install.clone())
            }
            Err(e) => {
                ok = false;
                Check::fail(name, e.to_string(), install.clone())
            }
        });
    }
    ok
}

fn check_socket_dir() -> Check {
    let name = "socket directory";
    let fix = "set XDG_RUNTIME_DIR (or TMPDIR) to a short path of a directory you can write to";
    let dir = match socket_dir::create() {
        Ok(dir) => dir,
        Err(e) => return Check::fail(name, format!("cannot create a private directory: {e}"), fix),
    };
    // As long as a worker's socket name gets.
    let socket = dir.join("w4095-4294967295.sock");
    let result = if socket.as_os_str().len() > MAX_SOCKET_PATH {
        Err(format!(
            "{} is too long for a Unix socket path ({} bytes, at most {MAX_SOCKET_PATH})",
            socket.display(),
            socket.as_os_str().len()
        ))
    } else {
        std::os::unix::net::UnixListener::bind(&socket)
            .map(drop)
            .map_err(|e| format!("cannot bind a socket in {}: {e}", dir.display()))
    };
    let _ = std::fs::remove_dir_all(&dir);
    match result {
        Ok(()) => Check::pass(
            name,
            format!("{} (private, 0700)", dir.parent().unwrap_or(&dir).display()),
        ),
        Err(detail) => Check::fail(name, detail, fix),
    }
}

/// Writes the worker's Python files (`snakepit_bridge`, `grpc_server.py`,
/// `requirements.txt`, `snakepit_showcase`) to snakepit's cache directory
/// if they are not there yet, and returns that directory. Put it on
/// `PYTHONPATH` to import `snakepit_bridge` outside a worker, e.g. to test
/// an adapter.
pub fn worker_files_dir() -> io::Result<PathBuf> {
    python::worker_files()
}

/// Where `snakepit setup` puts its virtual environment: `$SNAKEPIT_VENV`,
/// else `venv` in snakepit's cache directory (`~/.cache/snakepit/venv`).
/// Pools use its interpreter when it exists, unless `PoolBuilder::python`,
/// `SNAKEPIT_PYTHON` or an active virtual environment says otherwise.
pub fn venv_dir() -> PathBuf {
    python::venv_dir()
}

/// Creates the virtual environment at [`venv_dir`] with `base_python`
/// (`python3` when `None`), unless it exists, and installs the worker's
/// requirements (grpcio, protobuf) into it. Hands each step and each line
/// pip prints to `progress`. Returns the environment's interpreter.
pub fn setup(base_python: Option<&Path>, mut progress: impl FnMut(&str)) -> io::Result<PathBuf> {
    let dir = venv_dir();
    let python = dir.join("bin").join("python");
    let base = base_python.unwrap_or(Path::new("python3"));
    let files = python::worker_files()?;
    let requirements = files.join("requirements.txt");

    if python.exists() {
        progress(&format!(
            "using the virtual environment at {}",
            dir.display()
        ));
    } else {
        progress(&format!(
            "creating a virtual environment at {} with {}",
            dir.display(),
            base.display()
        ));
        let mut cmd = Command::new(base);
        cmd.arg("-m").arg("venv").arg(&dir);
        stream(cmd, &mut progress).map_err(|e| {
            let hint = if e.kind() == io::ErrorKind::NotFound {
                "install Python 3, or name an interpreter with --python"
            } else {
                "on Debian or Ubuntu, `apt-get install python3-venv` provides the venv module"
            };
            io::Error::other(format!(
                "{} -m venv {} failed: {e} ({hint})",
                base.display(),
                dir.display()
            ))
        })?;
    }

    progress(&format!("installing {} into it", requirements.display()));
    let mut cmd = Command::new(&python);
    cmd.args([
        "-m",
        "pip",
        "install",
        "--disable-pip-version-check",
        "--progress-bar",
        "off",
        "-r",
    ])
    .arg(&requirements);
    stream(cmd, &mut progress)
        .map_err(|e| io::Error::other(format!("installing the requirements failed: {e}")))?;

    progress("checking that grpcio and protobuf import");
    let mut cmd = python_command(&python, &[files]);
    cmd.arg("-c")
        .arg("import grpc, google.protobuf, snakepit_bridge.protocol");
    match run_with_timeout(cmd, QUICK) {
        Ok(out) if out.success => Ok(python),
        Ok(out) => Err(io::Error::other(format!(
            "the packages installed but do not import:\n{}",
            last_lines(&out.stderr, 3)
        ))),
        Err(e) => Err(e),
    }
}

/// `python` with `path` first on `PYTHONPATH`.
fn python_command(python: &Path, path: &[PathBuf]) -> Command {
    let mut cmd = Command::new(python);
    if let Ok(joined) = python_path(path.iter().cloned()) {
        cmd.env("PYTHONPATH", joined);
    }
    cmd.env("PYTHONDONTWRITEBYTECODE", "1");
    cmd
}

/// What a finished check command printed.
struct Output {
    success: bool,
    stdout: String,
    stderr: String,
}

/// Runs `cmd` to completion, or kills it after `timeout`.
fn run_with_timeout(mut cmd: Command, timeout: Duration) -> io::Result<Output> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let read = |stream: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            if let Some(mut s) = stream {
                let _ = s.read_to_string(&mut text);
            }
            text
        })
    };
    let stdout = read(
        child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
    );
    let stderr = read(
        child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
    );
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break Some(status);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let stdout = stdout.join().unwrap_or_default();
    let stderr = stderr.join().unwrap_or_default();
    match status {
        Some(status) => Ok(Output {
            success: status.success(),
            stdout,
            stderr,
        }),
        None => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("no answer after {timeout:?}"),
        )),
    }
}

/// Runs `cmd`, handing each line of its output to `progress` as it comes.
fn stream(mut cmd: Command, progress: &mut impl FnMut(&str)) -> io::Result<()> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let (tx, rx) = mpsc::channel::<String>();
    let mut readers = Vec::new();
    let streams: [Option<Box<dyn Read + Send>>; 2] = [
        child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
        child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
    ];
    for stream in streams.into_iter().flatten() {
        let tx = tx.clone();
        readers.push(std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        }));
    }
    drop(tx);
    let mut tail = Vec::new();
    for line in rx {
        progress(&line);
        tail.push(line);
        if tail.len() > 5 {
            tail.remove(0);
        }
    }
    for reader in readers {
        let _ = reader.join();
    }
    let status = child.wait()?;
    if status.success() {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "{status}; last output:\n{}",
            tail.join("\n")
        )))
    }
}

/// The last `n` non-empty lines of `text`, indented for a report.
fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let start = lines.len().saturating_sub(n);
    lines[start..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_interpreter_fails_with_a_fix() {
        let mut checks = Vec::new();
        let ok = check_interpreter(Path::new("/nonexistent/python3"), None, "", &mut |c| {
            checks.push(c)
        });
        assert!(!ok);
        assert_eq!(checks.len(), 1);
        assert!(!checks[0].passed);
        assert!(checks[0].detail.contains("cannot run /nonexistent/python3"));
        assert!(checks[0]
            .fix
            .as_deref()
            .unwrap()
            .contains("SNAKEPIT_PYTHON"));
    }

    #[test]
    fn the_socket_directory_is_usable_here() {
        let check = check_socket_dir();
        assert!(check.passed, "{check:?}");
    }

    #[test]
    fn last_lines_skips_blank_ones() {
        assert_eq!(last_lines("a\n\nb\nc\n\n", 2), "b\nc");
        assert_eq!(last_lines("", 3), "");
    }
}
