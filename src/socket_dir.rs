//! The private directory a pool keeps its sockets in: created per pool,
//! only this user can enter it (0700), removed at shutdown; directories
//! left by hosts that were killed are swept when the next one is created.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

/// A new directory only this user can enter, for the workers' sockets:
/// under `$XDG_RUNTIME_DIR` when set, else the system temp dir. Kept short,
/// since a Unix socket path has a 108-byte limit.
pub(crate) fn create() -> std::io::Result<PathBuf> {
    use std::os::unix::fs::DirBuilderExt;
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    // A base others may write to must be sticky (as /tmp is), or our
    // directory could be renamed away and replaced.
    let sticky = |p: &PathBuf| {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(p).is_ok_and(|m| m.permissions().mode() & 0o1000 != 0)
    };
    let base = std::env::var_os("XDG_RUNTIME_DIR")
        .map(PathBuf::from)
        .filter(|p| p.is_dir() && (crate::python::trusted(p) || sticky(p)))
        .unwrap_or_else(std::env::temp_dir);
    sweep_stale_socket_dirs(&base);
    loop {
        let n = COUNTER.fetch_add(1, SeqCst);
        let dir = base.join(format!("snakepit-{}-{n}", std::process::id()));
        // create(), not create_all(): a directory, file or link planted
        // under this name is never used, only skipped.
        match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
        use std::os::unix::fs::MetadataExt;
        let meta = std::fs::symlink_metadata(&dir)?;
        // SAFETY: getuid cannot fail.
        let private =
            meta.is_dir() && meta.uid() == unsafe { libc::getuid() } && meta.mode() & 0o077 == 0;
        if !private {
            return Err(std::io::Error::other(format!(
                "{} was swapped for one that is not private to this user",
                dir.display()
            )));
        }
        return Ok(dir);
    }
}

/// Removes the socket directories of hosts that are gone: one killed with
/// SIGKILL cannot clean up after itself (its workers die with it, but the
/// directory stays). A directory is `snakepit-<host pid>-<n>`; it is left
/// alone while that pid runs, or when it is not this user's.
fn sweep_stale_socket_dirs(base: &std::path::Path) {
    use std::os::unix::fs::MetadataExt;
    let Ok(entries) = std::fs::read_dir(base) else {
        return;
    };
    // SAFETY: getuid cannot fail.
    let uid = unsafe { libc::getuid() };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix("snakepit-"))
            .and_then(|rest| rest.split_once('-'))
            .and_then(|(pid, n)| n.parse::<usize>().ok().and(pid.parse::<i32>().ok()))
        else {
            continue;
        };
        let ours = entry.metadata().is_ok_and(|m| m.is_dir() && m.uid() == uid);
        // SAFETY: signal 0 only asks whether the process exists.
        let gone = pid > 0
            && unsafe { libc::kill(pid, 0) } == -1
            && std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH);
        if ours && gone {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_planted_socket_directory_is_never_used() {
        use std::os::unix::fs::PermissionsExt;
        // Planted under the names this process will try next (and the
        // first ones, in case no directory was made yet): skipped, not used.
        let probe = create().unwrap();
        let base = probe.parent().unwrap().to_owned();
        let next: usize = probe
            .to_str()
            .unwrap()
            .rsplit('-')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        std::fs::remove_dir(&probe).unwrap();
        let mut planted = Vec::new();
        for n in (0..4).chain(next + 1..next + 40) {
            let path = base.join(format!("snakepit-{}-{n}", std::process::id()));
            // Only free names: another test's live directory stays as it is.
            let made = if n % 2 == 0 {
                std::fs::create_dir(&path).is_ok()
                    && std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o777))
                        .is_ok()
            } else {
                std::os::unix::fs::symlink("/tmp", &path).is_ok()
            };
            if made {
                planted.push(path);
            }
        }
        let dir = create().unwrap();
        assert!(!planted.contains(&dir), "{dir:?}");
        let meta = std::fs::symlink_metadata(&dir).unwrap();
        assert!(meta.is_dir());
        assert_eq!(meta.permissions().mode() & 0o777, 0o700);
        std::fs::remove_dir(&dir).unwrap();
        for path in planted {
            let _ = std::fs::remove_file(&path);
            let _ = std::fs::remove_dir(&path);
        }
    }

    #[test]
    fn socket_directories_of_dead_hosts_are_swept_and_live_ones_kept() {
        let base = std::env::temp_dir().join(format!("snakepit-sweep-test-{}", std::process::id()));
        std::fs::create_dir_all(&base).unwrap();
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead = child.id();
        child.wait().unwrap();
        let stale = base.join(format!("snakepit-{dead}-0"));
        let live = base.join(format!("snakepit-{}-0", std::process::id()));
        let other = base.join("snakepit-cache");
        for dir in [&stale, &live, &other] {
            std::fs::create_dir_all(dir).unwrap();
        }
        std::fs::write(stale.join("w0-1.sock"), b"").unwrap();

        sweep_stale_socket_dirs(&base);
        assert!(!stale.exists(), "a dead host's directory stays");
        assert!(live.exists() && other.exists());
        std::fs::remove_dir_all(&base).unwrap();
    }
}
