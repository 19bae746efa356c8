//! A process pool of the showcase adapter: a few calls, a Python error
//! turned into a typed Rust error, and the pool's statistics.
//!
//! Run with `cargo run --release --example quickstart`
//! (`RUST_LOG=snakepit=debug` shows what the workers do).

use std::time::{Duration, Instant};

use serde_json::json;
use snakepit::{CallOptions, Error, Pool, Profile};

fn main() -> Result<(), Error> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("snakepit=warn"))
        .init();

    let started = Instant::now();
    let pool = Pool::builder()
        .adapter("snakepit_showcase.adapter.ShowcaseAdapter")
        .workers(2)
        .profile(Profile::Process)
        .build()?;
    println!("2 workers ready in {:?}", started.elapsed());

    // Ctrl-C shuts the pool down cleanly: no worker outlives the program.
    pool.shutdown_on_ctrl_c()?;

    let sum = pool.execute_blocking("add", json!({"a": 1, "b": 2}))?;
    println!("add(1, 2)            = {sum}");

    let echoed = pool.execute_blocking("echo", json!({"value": {"name": "snakepit", "tags": ["rust", "python"], "n": 9007199254740993_i64}}))?;
    println!("echo(...)            = {echoed}");

    let reply = pool.execute_blocking_with(
        "add",
        json!({"a": 0.5, "b": 0.25}),
        CallOptions::new().timeout(Duration::from_secs(5)),
    )?;
    println!(
        "add(0.5, 0.25)       = {} (worker {}, {:?})",
        reply.value, reply.worker, reply.elapsed
    );

    match pool.execute_blocking(
        "raise_error",
        json!({"kind": "ValueError", "message": "not a number"}),
    ) {
        Err(err @ Error::Python { .. }) if err.is_python("ValueError") => {
            let Error::Python {
                class,
                message,
                traceback,
            } = &err
            else {
                unreachable!()
            };
            println!("raise_error(...)     -> {class}: {message}");
            println!(
                "  (traceback's last line: {})",
                traceback.lines().last().unwrap_or_default()
            );
        }
        other => panic!("expected a ValueError, got {other:?}"),
    }

    match pool.execute_blocking("no_such_tool", json!({})) {
        Err(Error::ToolNotFound { tool, available }) => {
            println!(
                "no_such_tool()       -> no tool `{tool}` ({} tools exist)",
                available.len()
            )
        }
        other => panic!("expected ToolNotFound, got {other:?}"),
    }

    let stats = pool.stats();
    println!(
        "stats: {} workers ready, capacity {}, load {}, {} calls ok, {} failed",
        stats.ready_workers, stats.capacity, stats.load, stats.succeeded, stats.failed
    );
    for w in &stats.per_worker {
        println!(
            "  {} pid {:?} {:?}: {} calls",
            w.id, w.pid, w.state, w.calls
        );
    }

    pool.shutdown();
    println!("pool shut down");
    Ok(())
}
