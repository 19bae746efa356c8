//! Shared by the integration tests: pools of the showcase adapter whose
//! processes carry a unique tag, so a test can prove that none of its
//! processes outlive it (and kill any that do, pass or fail).

#![allow(dead_code)]

pub mod remote;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use snakepit::{Pool, PoolBuilder, Profile, Transport};

pub const SHOWCASE: &str = "snakepit_showcase.adapter.ShowcaseAdapter";
pub const THREADED_SHOWCASE: &str = "snakepit_showcase.adapter.ThreadedShowcaseAdapter";

/// Runs each named test function once per transport: a test module `grpc`
/// and a test module `socket`, each with one `#[test]` per name (so
/// `cargo test --test calls socket::` runs the socket variants). The
/// functions are plain `fn name()` bodies written once; the [`Scope`] they
/// make gives its builders the variant's transport.
#[macro_export]
macro_rules! both_transports {
    ($($name:ident),* $(,)?) => {
        mod grpc {
            $(
                #[test]
                fn $name() {
                    $crate::common::with_transport(snakepit::Transport::Grpc, super::$name)
                }
            )*
        }
        mod socket {
            $(
                #[test]
                fn $name() {
                    $crate::common::with_transport(snakepit::Transport::Socket, super::$name)
                }
            )*
        }
    };
}

thread_local! {
    static TRANSPORT: std::cell::Cell<Transport> = const { std::cell::Cell::new(Transport::Grpc) };
}

/// Runs `test` with [`Scope`]s on this thread using `transport`.
pub fn with_transport(transport: Transport, test: fn()) {
    TRANSPORT.with(|t| t.set(transport));
    test();
}

/// The transport of the test running on this thread (gRPC outside
/// [`both_transports!`]).
pub fn transport() -> Transport {
    TRANSPORT.with(|t| t.get())
}

/// One test's scope: a tag on every process it starts and a scratch
/// directory, both cleaned up on drop. Its builders use the transport of
/// the test variant that made it.
pub struct Scope {
    pub tag: String,
    pub dir: PathBuf,
    pub transport: Transport,
}

impl Scope {
    pub fn new(name: &str) -> Scope {
        static N: AtomicUsize = AtomicUsize::new(0);
        let _ = env_logger::builder().is_test(true).try_init();
        let tag = format!(
            "{name}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        );
        let dir = std::env::temp_dir().join(format!("snakepit-test-{tag}"));
        std::fs::create_dir_all(&dir).unwrap();
        Scope {
            tag,
            dir,
            transport: transport(),
        }
    }

    /// A builder for the showcase adapter whose workers carry this tag.
    pub fn builder(&self) -> PoolBuilder {
        Pool::builder()
            .adapter(SHOWCASE)
            .env("SNAKEPIT_TEST_TAG", &self.tag)
            .startup_timeout(Duration::from_secs(60))
            .transport(self.transport)
    }

    /// A thread-profile builder for the thread-safe showcase adapter.
    pub fn threaded_builder(&self, threads: usize) -> PoolBuilder {
        self.builder()
            .adapter(THREADED_SHOWCASE)
            .profile(Profile::Thread { threads })
    }

    /// A path in the scratch directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Live processes (not zombies) started by this test.
    pub fn live_processes(&self) -> Vec<u32> {
        let needle = format!("SNAKEPIT_TEST_TAG={}", self.tag);
        let mut pids = Vec::new();
        let Ok(entries) = std::fs::read_dir("/proc") else {
            return pids;
        };
        for entry in entries.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<u32>().ok())
            else {
                continue;
            };
            let Ok(environ) = std::fs::read(entry.path().join("environ")) else {
                continue;
            };
            if environ
                .split(|&b| b == 0)
                .any(|var| var == needle.as_bytes())
                && !is_zombie(pid)
            {
                pids.push(pid);
            }
        }
        pids
    }

    /// Shuts `pool` down and asserts that every process this test started
    /// is gone: the end of every scenario.
    pub fn finish(&self, pool: &Pool) {
        pool.shutdown();
        self.assert_no_processes();
    }

    /// Asserts that every process this test started is gone.
    pub fn assert_no_processes(&self) {
        let left = self.live_processes();
        assert!(left.is_empty(), "processes left behind: {left:?}");
    }
}

impl Drop for Scope {
    fn drop(&mut self) {
        for pid in self.live_processes() {
            // SAFETY: plain syscall on a pid this test started.
            unsafe {
                libc::kill(pid as libc::pid_t, libc::SIGKILL);
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Asserts that the pool answers a call: after a failure, it is healthy.
pub fn assert_serves(pool: &Pool) {
    assert_eq!(
        pool.execute_blocking("ping", serde_json::json!({}))
            .unwrap(),
        serde_json::json!("pong"),
        "the pool no longer serves"
    );
}

/// A variable of a live process's environment.
pub fn environ(pid: u32, var: &str) -> Option<String> {
    let environ = std::fs::read(format!("/proc/{pid}/environ")).ok()?;
    let prefix = format!("{var}=");
    environ
        .split(|&b| b == 0)
        .filter_map(|entry| std::str::from_utf8(entry).ok())
        .find_map(|entry| entry.strip_prefix(&prefix).map(str::to_owned))
}

pub fn is_zombie(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')
                .map(|(_, rest)| rest.trim_start().starts_with('Z'))
        })
        .unwrap_or(true)
}

pub fn is_alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists() && !is_zombie(pid)
}

/// Waits for `cond`, checking every 5 ms, for at most `limit`. Returns
/// whether it became true. For events the test cannot be told of directly
/// (a file a Python tool creates, a process ending).
pub fn wait_until(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}
