//! Both transports side by side, in one run: sequential `ping` latency on
//! one worker (p50 and p99), calls/s with 16 caller threads on 2 workers,
//! and a binary echo's throughput.
//!
//! ```sh
//! cargo run --release --example transport_ping
//! cargo run --release --example transport_ping -- --quick
//! ```
//!
//! The figures depend on the machine and its load; the README quotes one run.

use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::json;
use snakepit::{CallOptions, Error, Pool, Transport};

const ADAPTER: &str = "snakepit_showcase.adapter.ShowcaseAdapter";

fn pool(transport: Transport, workers: usize) -> Result<Pool, Error> {
    Pool::builder()
        .adapter(ADAPTER)
        .workers(workers)
        .transport(transport)
        .build()
}

/// p50 and p99 of `n` sequential pings, after a warm-up.
fn ping_latency(pool: &Pool, n: usize) -> Result<(Duration, Duration), Error> {
    for _ in 0..n / 10 {
        pool.execute_blocking("ping", json!({}))?;
    }
    let mut times = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        pool.execute_blocking("ping", json!({}))?;
        times.push(t.elapsed());
    }
    times.sort();
    Ok((times[n / 2], times[n * 99 / 100]))
}

/// Calls per second with `callers` threads each making `per_caller` pings.
fn ping_rate(pool: &Arc<Pool>, callers: usize, per_caller: usize) -> Result<f64, Error> {
    let started = Instant::now();
    let threads: Vec<_> = (0..callers)
        .map(|_| {
            let pool = pool.clone();
            thread::spawn(move || -> Result<(), Error> {
                for _ in 0..per_caller {
                    pool.execute_blocking("ping", json!({}))?;
                }
                Ok(())
            })
        })
        .collect();
    for t in threads {
        t.join().expect("a caller thread panicked")?;
    }
    Ok((callers * per_caller) as f64 / started.elapsed().as_secs_f64())
}

/// Median MB/s (both directions counted once: bytes sent) of a binary echo.
fn echo_throughput(pool: &Pool, size: usize, rounds: usize) -> Result<f64, Error> {
    let data = vec![7u8; size];
    let mut rates = Vec::with_capacity(rounds);
    for _ in 0..rounds + 1 {
        let options = CallOptions::new().binary("data", data.clone());
        let t = Instant::now();
        let reply = pool.execute_blocking_with("binary_echo", json!({}), options)?;
        let elapsed = t.elapsed();
        assert_eq!(reply.binary.as_deref().map(<[u8]>::len), Some(size));
        rates.push(size as f64 / elapsed.as_secs_f64() / 1e6);
    }
    rates.remove(0); // warm-up
    rates.sort_by(f64::total_cmp);
    Ok(rates[rates.len() / 2])
}

fn main() -> Result<(), Error> {
    let quick = std::env::args().any(|a| a == "--quick");
    let (pings, per_caller, rounds) = if quick {
        (500, 100, 3)
    } else {
        (5000, 1000, 7)
    };
    println!(
        "{:<8} {:>10} {:>10} {:>16} {:>12} {:>12}",
        "", "ping p50", "ping p99", "16 callers/s", "1 MiB MB/s", "64 MiB MB/s"
    );
    for (name, transport) in [("grpc", Transport::Grpc), ("socket", Transport::Socket)] {
        let one = pool(transport, 1)?;
        let (p50, p99) = ping_latency(&one, pings)?;
        let mib = echo_throughput(&one, 1 << 20, rounds * 4)?;
        let big = echo_throughput(&one, 64 << 20, rounds)?;
        one.shutdown();
        let two = Arc::new(pool(transport, 2)?);
        let rate = ping_rate(&two, 16, per_caller)?;
        two.shutdown();
        println!(
            "{name:<8} {:>8.0}µs {:>8.0}µs {rate:>16.0} {mib:>12.0} {big:>12.0}",
            p50.as_secs_f64() * 1e6,
            p99.as_secs_f64() * 1e6,
        );
    }
    Ok(())
}
