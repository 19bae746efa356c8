//! The thread profile: one Python process runs 16 calls at once.
//!
//! 16 caller threads each call `sleep(100 ms)` on a single worker with 16
//! threads; the wall time stays near 100 ms instead of 1.6 s. The pool's
//! capacity and load are shown while the calls run.
//!
//! Run with `cargo run --release --example threaded_profile_demo`.

use std::thread;
use std::time::{Duration, Instant};

use serde_json::json;
use snakepit::{Error, Pool, Profile};

const THREADS: usize = 16;
const SLEEP_MS: u64 = 100;

fn main() -> Result<(), Error> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("snakepit=warn"))
        .init();

    let pool = Pool::builder()
        .adapter("snakepit_showcase.adapter.ThreadedShowcaseAdapter")
        .workers(1)
        .profile(Profile::Thread { threads: THREADS })
        .build()?;
    // Ctrl-C shuts the pool down cleanly: no worker outlives the program.
    pool.shutdown_on_ctrl_c()?;

    let stats = pool.stats();
    println!(
        "1 worker (pid {:?}), capacity {}, load {}",
        stats.per_worker[0].pid, stats.capacity, stats.load
    );

    for round in 1..=3 {
        let started = Instant::now();
        let callers: Vec<_> = (0..THREADS)
            .map(|_| {
                let pool = pool.clone();
                thread::spawn(move || {
                    pool.execute_blocking_with(
                        "sleep",
                        json!({ "ms": SLEEP_MS }),
                        snakepit::CallOptions::new(),
                    )
                })
            })
            .collect();
        // Look at the pool while the calls are in flight.
        thread::sleep(Duration::from_millis(SLEEP_MS / 2));
        let mid = pool.stats();
        let mut pids = std::collections::BTreeSet::new();
        for c in callers {
            let reply = c.join().expect("caller thread panicked")?;
            pids.insert(reply.worker);
        }
        let wall = started.elapsed();
        println!(
            "round {round}: {THREADS} x sleep({SLEEP_MS} ms) in {wall:?} = {:.2}x one call; \
             load mid-flight {}/{}; served by {:?}",
            wall.as_secs_f64() / Duration::from_millis(SLEEP_MS).as_secs_f64(),
            mid.load,
            mid.capacity,
            pids
        );
    }

    let stats = pool.stats();
    println!(
        "done: {} calls ok, {} failed, load now {}",
        stats.succeeded, stats.failed, stats.load
    );
    pool.shutdown();
    Ok(())
}
