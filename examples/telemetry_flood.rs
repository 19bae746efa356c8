//! What telemetry costs a tool: one worker's `emit_events` tool emits
//! 100,000 events in a tight loop, with telemetry on (streamed to a hook
//! that counts them) and off, a few rounds each, and the best time of each
//! is printed with what the host received and the worker dropped.
//!
//! `cargo run --release --example telemetry_flood`

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use snakepit::events::HandleEvent;
use snakepit::telemetry::TelemetryEvent;
use snakepit::{CallOptions, Pool};

const EVENTS: u64 = 100_000;
const ROUNDS: usize = 3;

/// Counts the events it is given.
#[derive(Debug, Default)]
struct Count(Arc<AtomicU64>);

impl HandleEvent for Count {
    fn telemetry(&self, _: &TelemetryEvent) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

fn best_of(pool: &Pool) -> Result<Duration, snakepit::Error> {
    let mut best = Duration::MAX;
    for _ in 0..ROUNDS {
        let started = Instant::now();
        pool.execute_blocking_with(
            "emit_events",
            json!({"n": EVENTS}),
            CallOptions::new().timeout(Duration::from_secs(300)),
        )?;
        best = best.min(started.elapsed());
    }
    Ok(best)
}

fn main() -> Result<(), snakepit::Error> {
    let received = Arc::new(AtomicU64::new(0));
    let pool = Pool::builder()
        .adapter("snakepit_showcase.adapter.ShowcaseAdapter")
        .workers(1)
        .event_handler(Count(received.clone()))
        .build()?;
    pool.shutdown_on_ctrl_c()?;

    pool.set_telemetry(false, 1.0)?;
    // Until the worker has the control (a later call sees it applied).
    while pool.execute_blocking("telemetry_settings", json!({}))?["enabled"] != json!(false) {
        std::thread::sleep(Duration::from_millis(10));
    }
    let off = best_of(&pool)?;

    pool.set_telemetry(true, 1.0)?;
    while pool.execute_blocking("telemetry_settings", json!({}))?["enabled"] != json!(true) {
        std::thread::sleep(Duration::from_millis(10));
    }
    let on = best_of(&pool)?;
    let sent = EVENTS * ROUNDS as u64;
    // Let the stream catch up before reading the counts.
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        let s = pool.stats();
        if s.telemetry_events + s.telemetry_dropped >= sent {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let stats = pool.stats();
    println!("{EVENTS} events in one call, best of {ROUNDS}:");
    println!(
        "  telemetry off: {off:?} ({:.2} µs an event)",
        per_event(off)
    );
    println!("  telemetry on:  {on:?} ({:.2} µs an event)", per_event(on));
    println!(
        "  host received {} of {sent}, worker dropped {} (hook saw {})",
        stats.telemetry_events,
        stats.telemetry_dropped,
        received.load(Ordering::Relaxed)
    );
    pool.shutdown();
    Ok(())
}

fn per_event(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6 / EVENTS as f64
}
