//! Streaming: read a generator's items while it is still producing them,
//! stop early, and see an exception raised mid-stream.
//!
//! Run with `cargo run --release --example streaming`.

use std::time::Instant;

use serde_json::json;
use snakepit::{Chunk, Error, Pool};

fn main() -> Result<(), Error> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("snakepit=warn"))
        .init();
    let pool = Pool::builder()
        .adapter("snakepit_showcase.adapter.ShowcaseAdapter")
        .workers(1)
        .build()?;
    // Ctrl-C shuts the pool down cleanly: no worker outlives the program.
    pool.shutdown_on_ctrl_c()?;

    println!("5 items, 100 ms apart, printed as they arrive:");
    let started = Instant::now();
    for chunk in pool.execute_stream("count_stream", json!({"n": 5, "delay_ms": 100}))? {
        println!("  {:>6.3}s  {:?}", started.elapsed().as_secs_f64(), chunk?);
    }

    println!("\nan endless stream, dropped after 3 items (the generator is closed):");
    let scratch = std::env::temp_dir().join(format!("snakepit-streaming-{}", std::process::id()));
    let closed = scratch.with_extension("closed");
    for chunk in pool
        .execute_stream(
            "stream_until_cancelled",
            json!({"closed_path": closed.to_str().unwrap(), "interval_ms": 20}),
        )?
        .take(3)
    {
        println!("  {:?}", chunk?);
    }
    // The call is cancelled; the worker is free for the next call at once.
    println!("  next call: {}", pool.execute_blocking("ping", json!({}))?);

    println!("\nbytes chunks:");
    for chunk in pool.execute_stream("bytes_stream", json!({"n": 3, "size": 4}))? {
        if let Chunk::Bytes(b) = chunk? {
            println!("  {b:?}");
        }
    }

    println!("\na generator that raises after 2 items:");
    for item in pool.execute_stream(
        "stream_then_fail",
        json!({"n": 2, "message": "sensor went offline"}),
    )? {
        match item {
            Ok(chunk) => println!("  {chunk:?}"),
            Err(e) => println!(
                "  error: {}",
                e.to_string().lines().next().unwrap_or_default()
            ),
        }
    }
    let _ = std::fs::remove_file(&closed);
    pool.shutdown();
    Ok(())
}
