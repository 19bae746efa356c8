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
    let venv = venv_dir();
    let python = venv.join("bin").join("python");
    // Never an interpreter another user could have planted or changed.
    if python.exists() && trusted(&venv) && trusted(&venv.join("bin")) {
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
/// private copy and rename it into place. The workers run this code, so the
/// cache is used only when [`trusted`]; otherwise (say `/tmp/snakepit-cache-<uid>`
/// made by another user) the files go to a new private directory, one per
/// host process.
pub(crate) fn worker_files() -> io::Result<PathBuf> {
    static PRIVATE_COPY: parking_lot::Mutex<Option<PathBuf>> = parking_lot::Mutex::new(None);
    let root = cache_root();
    if let Some(dir) = cached_worker_files(&root)? {
        return Ok(dir);
    }
    let mut private = PRIVATE_COPY.lock();
    if let Some(dir) = private.as_ref().filter(|d| d.join(".complete").exists()) {
        return Ok(dir.clone());
    }
    log::warn!(
        "the cache directory {} is not trusted (not owned by this user, or writable by \
         others): the worker's Python files go to a private directory instead",
        root.display()
    );
    let dir = private_worker_files(&std::env::temp_dir())?;
    *private = Some(dir.clone());
    Ok(dir)
}

/// The worker files in the versioned directory under `root`, written there
/// when missing; `None` when `root` or that directory is not [`trusted`].
fn cached_worker_files(root: &Path) -> io::Result<Option<PathBuf>> {
    let dir = root.join(format!(
        "python-{}-{}",
        env!("CARGO_PKG_VERSION"),
        FILES_HASH.trim()
    ));
    create_private_dirs(root)?;
    if !trusted(root) {
        return Ok(None);
    }
    if dir.exists() {
        if !trusted(&dir) {
            return Ok(None);
        }
        if dir.join(".complete").exists() {
            return Ok(Some(dir));
        }
    }
    let staging = root.join(format!(
        ".staging-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    let _ = fs::remove_dir_all(&staging);
    write_files(&staging)?;
    match fs::rename(&staging, &dir) {
        Ok(()) => Ok(Some(dir)),
        // Another process or thread got there first: its copy is identical.
        Err(_) if dir.join(".complete").exists() => {
            let _ = fs::remove_dir_all(&staging);
            Ok(trusted(&dir).then_some(dir))
        }
        Err(e) => {
            let _ = fs::remove_dir_all(&staging);
            Err(e)
        }
    }
}

/// The worker files in a new directory under `base` that only this user
/// can enter (`snakepit-python-<pid>-<n>`, mode 0700, never one that
/// already exists).
fn private_worker_files(base: &Path) -> io::Result<PathBuf> {
    use std::os::unix::fs::DirBuilderExt;
    for n in 0.. {
        let dir = base.join(format!("snakepit-python-{}-{n}", std::process::id()));
        match fs::DirBuilder::new().mode(0o700).create(&dir) {
            Ok(()) => {
                write_files(&dir)?;
                return Ok(dir);
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    unreachable!("the counter is unbounded")
}

/// Writes the embedded files under `dir`, then the `.complete` marker.
fn write_files(dir: &Path) -> io::Result<()> {
    for (rel, contents) in FILES {
        let path = dir.join(rel);
        create_private_dirs(path.parent().expect("relative file paths have a parent"))?;
        fs::write(&path, contents)?;
    }
    fs::write(dir.join(".complete"), FILES_HASH)
}

/// `create_dir_all`, with mode 0700 for the directories it creates.
fn create_private_dirs(dir: &Path) -> io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

/// Whether code in `path` can only have been put there by this user (or
/// root): it is owned by one of them and no one else may write to it.
/// Symbolic links are followed: what counts is the directory reached.
pub(crate) fn trusted(path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    // SAFETY: getuid cannot fail.
    let uid = unsafe { libc::getuid() };
    fs::metadata(path).is_ok_and(|m| (m.uid() == uid || m.uid() == 0) && m.mode() & 0o022 == 0)
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
            "snakepit_bridge_pb2.py",
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
        {
            // Planted: anyone may swap the interpreter.
            use std::os::unix::fs::PermissionsExt;
            let bin = venv.join("bin");
            fs::set_permissions(&bin, fs::Permissions::from_mode(0o777)).unwrap();
            assert_eq!(interpreter(None), PathBuf::from("python3"), "not trusted");
        }
        std::env::remove_var("SNAKEPIT_VENV");
        let _ = fs::remove_dir_all(&venv);
    }

    /// A directory planted in a shared place: world-writable, complete,
    /// with a planted module.
    fn plant(root: &Path) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let dir = root.join(format!(
            "python-{}-{}",
            env!("CARGO_PKG_VERSION"),
            FILES_HASH.trim()
        ));
        fs::create_dir_all(dir.join("snakepit_bridge")).unwrap();
        fs::write(
            dir.join("snakepit_bridge/__init__.py"),
            "raise SystemExit('planted')\n",
        )
        .unwrap();
        fs::write(dir.join(".complete"), FILES_HASH).unwrap();
        for d in [root, &dir] {
            fs::set_permissions(d, fs::Permissions::from_mode(0o777)).unwrap();
        }
        dir
    }

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("snakepit-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn a_planted_cache_directory_is_never_used() {
        use std::os::unix::fs::PermissionsExt;
        let root = scratch("planted-cache");
        let planted = plant(&root);
        assert_eq!(
            cached_worker_files(&root).unwrap(),
            None,
            "world-writable root"
        );

        // A root of ours, but the versioned directory writable by others.
        fs::set_permissions(&root, fs::Permissions::from_mode(0o700)).unwrap();
        assert_eq!(
            cached_worker_files(&root).unwrap(),
            None,
            "world-writable dir"
        );

        // What the pool uses instead: a private copy of the real files.
        let private = private_worker_files(&root).unwrap();
        assert_ne!(private, planted);
        let mode = fs::metadata(&private).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        let init = fs::read_to_string(private.join("snakepit_bridge/__init__.py")).unwrap();
        assert!(!init.contains("planted"));
        assert!(private.join(".complete").exists());
        let _ = fs::remove_dir_all(&root);
    }

    #[test]
    fn a_cache_of_our_own_is_written_once_and_reused() {
        use std::os::unix::fs::PermissionsExt;
        let root = scratch("own-cache");
        let dir = cached_worker_files(&root)
            .unwrap()
            .expect("a fresh root is ours");
        let mode = fs::metadata(&root).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "created private");
        assert!(dir.join("grpc_server.py").exists());
        assert_eq!(cached_worker_files(&root).unwrap(), Some(dir));
        let _ = fs::remove_dir_all(&root);
    }

    #[test]
    fn an_explicit_interpreter_wins() {
        assert_eq!(
            interpreter(Some(Path::new("/opt/py/bin/python3.12"))),
            PathBuf::from("/opt/py/bin/python3.12")
        );
    }
}
