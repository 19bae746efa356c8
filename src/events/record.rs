//! Each call that ran on a worker, recorded through the `metrics` facade
//! as it finishes (feature `metrics`): the per-call half of
//! [`crate::metrics`], here because the event hook's one guarded entry
//! point is where every finished call passes.

use metrics::{counter, histogram};

use super::CallFinished;
use crate::error::ErrorKind;
use crate::telemetry::{Measurement, TelemetryEvent};

/// The `pool` label of an unnamed pool.
pub(crate) const UNNAMED: &str = "default";

/// Splits a worker id (`compute/worker-0`, or `worker-0` in an unnamed
/// pool) into the `pool` and `worker` labels. The worker part never holds
/// a `/`, so a pool name that does is kept whole.
pub(crate) fn labels_of(id: &str) -> (String, String) {
    match id.rsplit_once('/') {
        Some((pool, worker)) => (pool.to_owned(), worker.to_owned()),
        None => (UNNAMED.to_owned(), id.to_owned()),
    }
}

/// Records a call that ran on a worker. Called for every such call, before
/// the user's event hook.
pub(crate) fn call_finished(e: &CallFinished) {
    let (pool, worker) = labels_of(&e.worker);
    let outcome = e.outcome.err().map_or("ok", ErrorKind::as_str);
    counter!("snakepit_calls_total", "pool" => pool.clone(), "worker" => worker, "outcome" => outcome)
        .increment(1);
    histogram!("snakepit_call_duration_seconds", "pool" => pool, "tool" => e.tool.clone())
        .record(e.duration.as_secs_f64());
}

/// Records a telemetry event a tool emitted: one count per event name, and
/// each numeric measurement as a sample of
/// `snakepit_telemetry_measurement{event,measurement}` (text measurements
/// are not numbers and are left out). Called for every event, before the
/// user's event hook.
pub(crate) fn telemetry(e: &TelemetryEvent) {
    let (pool, worker) = labels_of(&e.worker);
    counter!(
        "snakepit_telemetry_events_total",
        "pool" => pool.clone(),
        "worker" => worker,
        "event" => e.name.clone()
    )
    .increment(1);
    for (name, measurement) in &e.measurements {
        let value = match measurement {
            Measurement::Int(i) => *i as f64,
            Measurement::Float(f) => *f,
            _ => continue,
        };
        histogram!(
            "snakepit_telemetry_measurement",
            "pool" => pool.clone(),
            "event" => e.name.clone(),
            "measurement" => name.clone()
        )
        .record(value);
    }
}

#[cfg(test)]
mod tests {
    use super::labels_of;

    #[test]
    fn worker_ids_split_into_pool_and_worker_labels() {
        let owned = |(a, b): (&str, &str)| (a.to_owned(), b.to_owned());
        assert_eq!(labels_of("worker-3"), owned(("default", "worker-3")));
        assert_eq!(
            labels_of("compute/worker-0"),
            owned(("compute", "worker-0"))
        );
        assert_eq!(labels_of("a/b/worker-1"), owned(("a/b", "worker-1")));
    }
}
