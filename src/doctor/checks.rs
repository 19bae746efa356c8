//! The individual checks: an interpreter and its packages, a pool's
//! adapter, the socket directory. Each returns what it found and, on
//! failure, what to do about it.

use std::path::{Path, PathBuf};

use super::probe::{last_lines, python_command, run_with_timeout};
use super::{Check, QUICK};
use crate::config::PoolConfig;
use crate::launcher::local::fill_worker_placeholders;
use crate::options::{worker_id, Profile};
use crate::socket_dir;

/// The oldest Python the worker runs on.
const MIN_PYTHON: (u32, u32) = (3, 8);

/// The longest Unix socket path (`sun_path`, with its NUL).
const MAX_SOCKET_PATH: usize = 107;

/// What to do when an interpreter is missing, broken or too old.
const POINT_ELSEWHERE: &str = "install Python 3.8 or newer, or point snakepit at one: \
                               SNAKEPIT_PYTHON=/path/to/python3, python = \"...\" in the \
                               configuration, or `snakepit setup --python /path/to/python3`";

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

/// The interpreter, its version, grpcio and protobuf, each handed to
/// `add`. True when the interpreter runs and has both packages.
pub(super) fn check_interpreter(
    python: &Path,
    files_dir: Option<&Path>,
    suffix: &str,
    add: &mut impl FnMut(Check),
) -> bool {
    let name = format!("python{suffix}");
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
                POINT_ELSEWHERE,
            ));
            return false;
        }
        Err(e) => {
            add(Check::fail(
                name,
                format!("cannot run {}: {e}", python.display()),
                POINT_ELSEWHERE,
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
            POINT_ELSEWHERE,
        ));
        return false;
    }
    add(Check::pass(name, detail));
    check_packages(python, files_dir, suffix, add)
}

/// `grpcio` and `protobuf` import in `python`. True when both do.
fn check_packages(
    python: &Path,
    files_dir: Option<&Path>,
    suffix: &str,
    add: &mut impl FnMut(Check),
) -> bool {
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

/// The pool's adapter imports with its interpreter, `python_path` and
/// environment (as worker 0 would see them).
pub(super) fn check_adapter(pool: &PoolConfig, python: &Path, files_dir: Option<&Path>) -> Check {
    let builder = pool.builder();
    let settings = builder.settings();
    let name = format!("adapter of pool {}", pool.name());
    let adapter = pool.adapter();
    let module = adapter.rsplit_once('.').map_or(adapter, |(m, _)| m);
    let table = format!("[pools.{}]", pool.name());
    let thread = matches!(settings.profile, Profile::Thread { .. });

    let mut path: Vec<PathBuf> = files_dir.into_iter().map(Path::to_path_buf).collect();
    path.extend(settings.python_path.iter().cloned());
    let id = worker_id(settings.name.as_deref(), 0);
    let env = settings
        .env
        .iter()
        .map(|(k, v)| (k.clone(), fill_worker_placeholders(v, 0, &id)));
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

/// A private socket directory can be made, and a socket with the longest
/// name a worker uses bound in it.
/// A remote pool: its options hold (the token file reads, TLS is built
/// in) and its endpoints resolve. Its workers' Python is theirs, so no
/// interpreter or adapter is checked here.
pub(super) fn check_remote(pool: &PoolConfig) -> Check {
    let name = format!("endpoints of pool {}", pool.name());
    let builder = pool.builder();
    if let Err(e) = builder.validate() {
        return Check::fail(name, e.to_string(), "correct the pool's remote table");
    }
    let Some(remote) = &builder.settings().remote else {
        return Check::fail(name, "not a remote pool", "add a remote table");
    };
    match crate::launcher::resolver::resolve(&remote.source) {
        Ok(found) if found.is_empty() => Check::fail(
            name,
            "resolve to no endpoint",
            "start the workers (for Kubernetes: kubectl get pods; a headless Service lists only ready pods)",
        ),
        Ok(found) => Check::pass(
            name,
            format!("{} found: {}", found.len(), found.join(", ")),
        ),
        Err(e) => Check::fail(
            name,
            e,
            "check the name, and that this machine uses the cluster's DNS",
        ),
    }
}

pub(super) fn check_socket_dir() -> Check {
    let name = "socket directory";
    let fix = "set XDG_RUNTIME_DIR (or TMPDIR) to a short path of a directory you can write to";
    let dir = match socket_dir::create() {
        Ok(dir) => dir,
        Err(e) => return Check::fail(name, format!("cannot create a private directory: {e}"), fix),
    };
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
    fn a_remote_pool_is_checked_by_its_endpoints() {
        let check = |remote: &str| {
            let text = format!("[pools.m]\nadapter = \"pkg.mod.M\"\nremote = {remote}\n");
            let config =
                crate::config::ConfigFile::parse(&text, Path::new("/etc/app/snakepit.toml"))
                    .unwrap();
            check_remote(&config.pools()[0])
        };
        let found = check("{ endpoints = [\"127.0.0.1:7001\", \"127.0.0.1:7002\"] }");
        assert!(found.passed, "{found:?}");
        assert!(found.detail.starts_with("2 found"), "{found:?}");
        let unknown = check("{ dns = \"no-such-host.invalid:50051\" }");
        assert!(!unknown.passed);
        assert!(
            unknown.detail.contains("no-such-host.invalid"),
            "{unknown:?}"
        );
    }

    #[test]
    fn the_socket_directory_is_usable_here() {
        let check = check_socket_dir();
        assert!(check.passed, "{check:?}");
    }
}
