//! The Python side as the host sees it: which interpreter runs the workers,
//! and the worker's own Python files, which ship inside the crate and are
//! written to a versioned cache directory on first use.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// The embedded worker files: (path relative to `python/`, contents).
const FILES: &[(&str, &[u8])] = include!(concat!(env!("OUT_DIR"), "/python_files.rs"));

/// A hash of the embedded files; names their cache directory.
const FILES_HASH: &str = include_str!(concat!(env!("OUT_DIR"), "/python_hash.txt"));

/// The interpreter the workers run on, in order of precedence: the
/// builder's `.python(..)`, `SNAKEPIT_PYTHON`, the active virtual
/// environment (`VIRTUAL_ENV`), the virtual environment `snakepit setup`
/// creates ([`venv_dir`]), then `python3` on PATH.
pub(crate) fn interpreter(explicit: Option<&Path>) -> PathBuf {
    if let Some(path) = explicit {
        return path.to_owned();
    }
    if let Some(path) = std::env::var_os("SNAKEPIT_PYTHON").filter(|p| !p.is_empty()) {
        return PathBuf::from(path);
    }
    if let Some(venv) = std::env::var_os("VIRTUAL_ENV").filter(|p| !p.is_empty()) {
        let python = PathBuf::from(venv).join("bin").join("python");
        if python.exists() {
            return python;
        }
    }
    let python = venv_dir().join("bin").join("python");
    if python.exists() {
        return python;
    }
    PathBuf::from("python3")
}

/// Where `snakepit setup` creates its virtual environment: `$SNAKEPIT_VENV`,
/// else `venv` in the cache directory (`~/.cache/snakepit/venv`).
pub(crate) fn venv_dir() -> PathBuf {
    match std::env::var_os("SNAKEPIT_VENV").filter(|p| !p.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => cache_root().join("venv"),
    }
}

/// Makes sure the embedded worker files are on disk and returns the
/// directory holding them (it goes first on the workers' `PYTHONPATH`, and
/// holds `grpc_server.py`).
///
/// The directory is named after the files' hash, so it is written once per
/// version and never changed afterwards; concurrent first uses each write a
/// private copy and rename it into place.
pub(crate) fn worker_files() -> io::Result<PathBuf> {
    let root = cache_root();
    let dir = root.join(format!(
        "python-{}-{}",
        env!("CARGO_PKG_VERSION"),
        FILES_HASH.trim()
    ));
    if dir.join(".complete").exists() {
        return Ok(dir);
    }
    fs::create_dir_all(&root)?;
    let staging = root.join(format!(
        ".staging-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    let _ = fs::remove_dir_all(&staging);
    for (rel, contents) in FILES {
        let path = staging.join(rel);
        fs::create_dir_all(path.parent().expect("relative file paths have a parent"))?;
        fs::write(&path, contents)?;
    }
    fs::write(staging.join(".complete"), FILES_HASH)?;
    match fs::rename(&staging, &dir) {
        Ok(()) => Ok(dir),
        // Another process or thread got there first: its copy is identical.
        Err(_) if dir.join(".complete").exists() => {
            let _ = fs::remove_dir_all(&staging);
            Ok(dir)
        }
        Err(e) => {
            let _ = fs::remove_dir_all(&staging);
            Err(e)
        }
    }
}

/// `$SNAKEPIT_CACHE_DIR`, else `$XDG_CACHE_HOME/snakepit`, else
/// `~/.cache/snakepit`, else a directory under the system temp dir.
fn cache_root() -> PathBuf {
    if let Some(dir) = std::env::var_os("SNAKEPIT_CACHE_DIR").filter(|p| !p.is_empty()) {
        return PathBuf::from(dir);
    }
    if let Some(dir) = std::env::var_os("XDG_CACHE_HOME").filter(|p| !p.is_empty()) {
        return PathBuf::from(dir).join("snakepit");
    }
    if let Some(home) = std::env::var_os("HOME").filter(|p| !p.is_empty()) {
        return PathBuf::from(home).join(".cache").join("snakepit");
    }
    // SAFETY: getuid cannot fail.
    let uid = unsafe { libc::getuid() };
    std::env::temp_dir().join(format!("snakepit-cache-{uid}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_worker_script_and_packages_are_embedded() {
        let names: Vec<&str> = FILES.iter().map(|(n, _)| *n).collect();
        for needed in [
            "grpc_server.py",
            "requirements.txt",
            "snakepit_bridge/__init__.py",
            "snakepit_bridge/worker.py",
            "snakepit_showcase/adapter.py",
        ] {
            assert!(names.contains(&needed), "{needed} is not embedded");
        }
        assert!(!names
            .iter()
            .any(|n| n.contains("__pycache__") || n.starts_with("tests/")));
    }

    #[test]
    fn the_setup_venv_comes_after_the_variables_and_before_python3() {
        if std::env::var_os("SNAKEPIT_PYTHON").is_some()
            || std::env::var_os("VIRTUAL_ENV").is_some()
        {
            return; // those win; the order below cannot be seen here
        }
        let venv = std::env::temp_dir().join(format!("snakepit-venv-test-{}", std::process::id()));
        // No other unit test reads SNAKEPIT_VENV.
        std::env::set_var("SNAKEPIT_VENV", &venv);
        assert_eq!(interpreter(None), PathBuf::from("python3"), "no venv yet");
        fs::create_dir_all(venv.join("bin")).unwrap();
        fs::write(venv.join("bin").join("python"), "").unwrap();
        assert_eq!(interpreter(None), venv.join("bin").join("python"));
        std::env::remove_var("SNAKEPIT_VENV");
        let _ = fs::remove_dir_all(&venv);
    }

    #[test]
    fn an_explicit_interpreter_wins() {
        assert_eq!(
            interpreter(Some(Path::new("/opt/py/bin/python3.12"))),
            PathBuf::from("/opt/py/bin/python3.12")
        );
    }
}
