//! Two named pools from one configuration file: a process pool for
//! CPU-bound tools and a thread pool for I/O-bound ones, each call routed by
//! the pool's name.
//!
//! Run with `cargo run --release --example multi_pool`
//! (`RUST_LOG=snakepit=info` shows the workers starting).

use std::thread;
use std::time::Instant;

use serde_json::json;
use snakepit::{Error, PoolSet};

fn main() -> Result<(), Error> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("snakepit=warn"))
        .init();

    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/multi_pool.toml");
    let started = Instant::now();
    // An invalid file fails here, before any process starts; a pool that
    // cannot start is reported and the others run.
    let set = PoolSet::from_config_file(path)?;
    set.shutdown_on_ctrl_c()?; // Ctrl-C stops every pool's workers, then the program
    for (name, error) in set.failures() {
        eprintln!("pool {name} did not start: {error}");
    }
    println!(
        "pools {:?} started in {:?}",
        set.names().collect::<Vec<_>>(),
        started.elapsed()
    );

    let compute = set.pool("compute")?;
    let io = set.pool("io")?;

    // CPU-bound: two 200 ms burns, one on each process.
    let t = Instant::now();
    let burned: Vec<Result<serde_json::Value, Error>> = thread::scope(|s| {
        let calls: Vec<_> = (0..2)
            .map(|_| s.spawn(|| compute.execute_blocking("cpu_burn", json!({"ms": 200}))))
            .collect();
        calls.into_iter().map(|c| c.join().unwrap()).collect()
    });
    let ok = burned.iter().filter(|r| r.is_ok()).count();
    println!(
        "compute: {ok} of 2 cpu_burn(200ms) calls in {:?}",
        t.elapsed()
    );

    // I/O-bound: eight 200 ms sleeps run at once in the one thread-profile
    // process.
    let t = Instant::now();
    let results: Vec<Result<serde_json::Value, Error>> = thread::scope(|s| {
        let calls: Vec<_> = (0..8)
            .map(|_| s.spawn(|| io.execute_blocking("sleep", json!({"ms": 200}))))
            .collect();
        calls.into_iter().map(|c| c.join().unwrap()).collect()
    });
    let ok = results.iter().filter(|r| r.is_ok()).count();
    println!("io: {ok} of 8 sleep(200ms) calls in {:?}", t.elapsed());

    // Routing by name: each pool has its own adapter.
    println!(
        "compute: add(1, 2) = {}",
        compute.execute_blocking("add", json!({"a": 1, "b": 2}))?
    );
    let io_tools = io.tools()?;
    let has_thread_id = io_tools.iter().any(|t| t.name == "thread_id");
    println!(
        "io: {} tools, thread_id among them: {has_thread_id}; on compute it is {}",
        io_tools.len(),
        compute
            .execute_blocking("thread_id", json!(null))
            .map_or_else(|e| e.kind().as_str(), |_| "found")
    );

    for name in set.names() {
        let stats = set.pool(name)?.stats();
        println!(
            "{name}: {} workers ready, capacity {}, {} calls ok",
            stats.ready_workers, stats.capacity, stats.succeeded
        );
    }

    set.shutdown();
    println!("all pools shut down");
    Ok(())
}
