//! Recycling and crash recovery, narrated by the event hook.
//!
//! A pool of 2 workers recycles each process after 5 calls; then a worker
//! is killed in the middle of a call, an idempotent call survives a crash by
//! being retried, and one worker is recycled on demand. Every lifecycle
//! event is printed as it happens.
//!
//! Run with `cargo run --release --example lifecycle_demo`.

use std::time::{Duration, Instant};

use serde_json::json;
use snakepit::events::{HandleEvent, WorkerExited, WorkerReady, WorkerRecycled, WorkerStarted};
use snakepit::{CallOptions, Error, Pool};

/// Prints lifecycle events with the time since the program started.
#[derive(Debug)]
struct Narrator(Instant);

impl Narrator {
    fn say(&self, what: String) {
        println!("  [{:>7.3}s] {what}", self.0.elapsed().as_secs_f64());
    }
}

impl HandleEvent for Narrator {
    fn worker_started(&self, e: &WorkerStarted) {
        self.say(format!("{} started process {}", e.worker, e.pid));
    }
    fn worker_ready(&self, e: &WorkerReady) {
        self.say(format!(
            "{} ready (pid {}) after {:?}",
            e.worker, e.pid, e.startup
        ));
    }
    fn worker_recycled(&self, e: &WorkerRecycled) {
        self.say(format!(
            "{} recycling pid {}: {}",
            e.worker, e.pid, e.reason
        ));
    }
    fn worker_exited(&self, e: &WorkerExited) {
        self.say(format!("{} pid {} {}", e.worker, e.pid, e.reason));
    }
}

fn main() -> Result<(), Error> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("snakepit=error"))
        .init();
    let scratch = std::env::temp_dir().join(format!("snakepit-lifecycle-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).expect("creating a scratch directory");

    println!("starting 2 workers, each recycled after 5 calls");
    let pool = Pool::builder()
        .adapter("snakepit_showcase.faults.FaultyAdapter")
        .workers(2)
        .max_requests(5)
        .event_handler(Narrator(Instant::now()))
        .build()?;
    // Ctrl-C shuts the pool down cleanly: no worker outlives the program.
    pool.shutdown_on_ctrl_c()?;

    println!("\n12 calls: each worker passes its limit and is replaced");
    for i in 0..12 {
        pool.execute_blocking("add", json!({"a": i, "b": 1}))?;
    }

    println!("\na worker dies in the middle of a call");
    match pool.execute_blocking("crash", json!({"code": 3, "message": "simulated fault"})) {
        Err(Error::WorkerCrashed { worker, exit, .. }) => {
            println!(
                "  call failed: {worker} crashed ({})",
                exit.map_or("?".into(), |e| e.to_string())
            )
        }
        other => println!("  unexpected: {other:?}"),
    }

    println!("\nan idempotent call whose worker dies is retried elsewhere");
    let marker = scratch.join("crashed-once");
    let reply = pool.execute_blocking_with(
        "crash_once",
        json!({"path": marker.to_str().unwrap()}),
        CallOptions::new().idempotent(true),
    )?;
    println!("  the caller got: {} (from {})", reply.value, reply.worker);

    println!("\nrecycling worker-0 on demand");
    pool.recycle_worker("worker-0")?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while pool.stats().recycles.manual == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }

    let stats = pool.stats();
    println!(
        "\nstats: {} calls ok, {} failed, {} crashes, {} restarts, recycles {:?}",
        stats.succeeded, stats.failed, stats.crashes, stats.restarts, stats.recycles
    );
    println!("\nshutting down");
    pool.shutdown();
    let _ = std::fs::remove_dir_all(&scratch);
    Ok(())
}
