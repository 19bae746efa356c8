//! A host program for the no-orphans tests: starts a pool, has each worker
//! start a child process of its own, prints one JSON line with every pid,
//! then waits to be killed (SIGKILL) or interrupted (Ctrl-C, which shuts the
//! pool down).
//!
//! `cargo run --release --example host_process -- [workers]`

use serde_json::json;
use snakepit::{CallOptions, Pool};

fn main() -> Result<(), snakepit::Error> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("snakepit=warn"))
        .init();
    let workers: usize = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(2);
    let pool = Pool::builder()
        .adapter("snakepit_showcase.adapter.ShowcaseAdapter")
        .workers(workers)
        .build()?;
    // Ctrl-C shuts the pool down cleanly: no worker outlives the program.
    pool.shutdown_on_ctrl_c()?;
    // A process has one Ctrl-C handler; the test checks how a second fails.
    let second_handler = pool
        .shutdown_on_ctrl_c()
        .map_or_else(|e| e.kind().as_str(), |()| "installed");

    let worker_pids: Vec<u32> = pool.stats().pids();
    // One call per worker at once (a barrier would be overkill: each call
    // holds its worker until all have been placed, since every worker is
    // needed for the `workers` calls in flight together).
    let children: Vec<serde_json::Value> = std::thread::scope(|s| {
        let calls: Vec<_> = (0..workers)
            .map(|_| {
                let pool = pool.clone();
                s.spawn(move || {
                    pool.execute_blocking_with(
                        "spawn_child",
                        json!({"seconds": 600}),
                        CallOptions::new(),
                    )
                })
            })
            .collect();
        calls
            .into_iter()
            .map(|c| c.join().expect("caller panicked").map(|r| r.value))
            .collect::<Result<_, _>>()
    })?;
    println!(
        "{}",
        json!({
            "host": std::process::id(),
            "workers": worker_pids,
            "children": children,
            "second_handler": second_handler,
        })
    );
    loop {
        std::thread::park();
    }
}
