//! A worker process's telemetry stream, read on a thread of its own: each
//! event goes to the event hook and to `log`, drops to the pool's counters
//! (see [`crate::telemetry`]).

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use crate::shared::Shared;
use crate::telemetry::{Measurement, TelemetryEvent, DROPPED_EVENT};
use crate::transport::{FeedNext, TelemetryFeed};

/// How long the pump waits for an event before it checks that the pool is
/// still open.
const PUMP_POLL: Duration = Duration::from_millis(200);

/// Starts the thread that reads the telemetry stream of the process now in
/// `slot`, until the stream ends (the process ended) or the pool closes.
pub(crate) fn start_pump(shared: &Arc<Shared>, slot: usize, feed: Arc<dyn TelemetryFeed>) {
    let worker = shared.worker(slot).id.clone();
    shared.telemetry().attach(slot, feed.clone());
    let shared = shared.clone();
    let spawned = thread::Builder::new()
        .name(format!("snakepit-telemetry-{slot}"))
        .spawn({
            let feed = feed.clone();
            let shared = shared.clone();
            move || pump(&shared, slot, &worker, feed)
        });
    match spawned {
        Ok(pump) => shared.telemetry().add_pump(pump),
        Err(e) => {
            log::warn!(target: "snakepit::telemetry", "no telemetry thread for slot {slot}: {e}");
            shared.telemetry().detach(slot, &feed);
            feed.cancel();
        }
    }
}

fn pump(shared: &Shared, slot: usize, worker: &str, feed: Arc<dyn TelemetryFeed>) {
    loop {
        if shared.is_closing() {
            feed.cancel();
            break;
        }
        match feed.next(PUMP_POLL) {
            FeedNext::Idle => {}
            FeedNext::Event(wire) => {
                let event = TelemetryEvent::from_wire(worker, wire);
                if event.name == DROPPED_EVENT {
                    let count = event
                        .measurements
                        .get("count")
                        .and_then(Measurement::as_f64);
                    shared
                        .counters()
                        .telemetry_dropped
                        .fetch_add(count.unwrap_or(0.0) as u64, Relaxed);
                } else {
                    shared.counters().telemetry_events.fetch_add(1, Relaxed);
                }
                log::debug!(
                    target: "snakepit::telemetry",
                    "{worker}: {} {:?} {:?} [correlation_id={}]",
                    event.name,
                    event.measurements,
                    event.metadata,
                    event.correlation_id.as_deref().unwrap_or("-")
                );
                shared.events().telemetry(&event);
            }
            FeedNext::Ended(why) => {
                log::debug!(target: "snakepit::telemetry", "{worker}: telemetry stream ended: {why}");
                break;
            }
        }
    }
    shared.telemetry().detach(slot, &feed);
}
