//! A pool of remote workers, on one machine: two `snakepit-worker serve`
//! processes on loopback stand in for pods, and the pool finds them through
//! a discovery closure. Calls run on both; then one worker is sent SIGTERM
//! (as a rolling update does) while calls keep coming, and none is lost.
//!
//! ```sh
//! cargo run --release --example remote_workers
//! ```
//!
//! Plaintext and no token, so that it runs without the `tls` feature; the
//! README's "Running workers on Kubernetes" shows the TLS set-up, and
//! `tests/remote.rs` runs it with certificates.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;
use snakepit::{CallOptions, Pool, Remote};

/// A worker process standing in for a pod; killed on drop.
struct Worker {
    child: Child,
    address: String,
}

impl Worker {
    fn start() -> Result<Worker, Box<dyn std::error::Error>> {
        let python = concat!(env!("CARGO_MANIFEST_DIR"), "/python");
        let mut child = Command::new("python3")
            .args(["-m", "snakepit_bridge", "serve", "--insecure-plaintext"])
            .args(["--adapter", "snakepit_showcase.adapter.ShowcaseAdapter"])
            .args(["--listen", "127.0.0.1:0", "--health-listen", "127.0.0.1:0"])
            .args(["--grace", "10"])
            .env("PYTHONPATH", python)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        // `SNAKEPIT_SERVE_READY listen=127.0.0.1:PORT health=...`
        let ready = lines
            .find_map(|line| line.ok().filter(|l| l.starts_with("SNAKEPIT_SERVE_READY")))
            .ok_or("the worker ended before it was ready")?;
        let address = ready
            .split_whitespace()
            .find_map(|field| field.strip_prefix("listen="))
            .ok_or("no listen= in the ready line")?
            .to_owned();
        Ok(Worker { child, address })
    }

    fn terminate(&self) {
        // SAFETY: a plain syscall on our own child.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM);
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("snakepit=info"))
        .init();
    let a = Worker::start()?;
    let b = Worker::start()?;
    println!("workers serving at {} and {}", a.address, b.address);

    // What DNS would answer for a headless Service: here, a list we hold.
    let listed = Arc::new(Mutex::new(vec![a.address.clone(), b.address.clone()]));
    let read = listed.clone();
    let pool = Pool::builder()
        .adapter("snakepit_showcase.adapter.ShowcaseAdapter")
        .remote(
            Remote::discover(move || Ok(read.lock().map_err(|e| e.to_string())?.clone()))
                .max_endpoints(4)
                .resolve_every(Duration::from_millis(500)),
        )
        .build()?;
    for w in pool.stats().per_worker {
        println!(
            "  {}: {:?}, endpoint {:?}, capacity {}",
            w.id, w.state, w.endpoint, w.capacity
        );
    }

    // Four threads call `sleep(20ms)` while worker A is told to stop.
    let done = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                for _ in 0..25 {
                    // Idempotent: a call that reaches the stopping worker in
                    // the very instant its server stops is cancelled there
                    // (see the README's table of what fails how) and runs
                    // again on the other worker.
                    pool.execute_blocking_with(
                        "sleep",
                        json!({"ms": 20}),
                        CallOptions::new().idempotent(true),
                    )
                    .expect("no call is lost");
                    done.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
        std::thread::sleep(Duration::from_millis(200));
        println!("SIGTERM to {} (a rolling update)", a.address);
        a.terminate();
        // Kubernetes takes a stopping pod out of the Service's answer.
        listed
            .lock()
            .expect("the list")
            .retain(|address| *address != a.address);
    });
    let stats = pool.stats();
    println!(
        "{} calls done, {} failed; serving now: {:?}",
        done.load(Ordering::Relaxed),
        stats.failed,
        stats
            .per_worker
            .iter()
            .filter_map(|w| w.endpoint.clone())
            .collect::<Vec<_>>()
    );
    assert_eq!(done.load(Ordering::Relaxed), 100);
    pool.shutdown();
    drop(b);
    Ok(())
}
