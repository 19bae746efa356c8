//! The pool's numbers through the [`metrics`](https://docs.rs/metrics)
//! facade (cargo feature `metrics`), so a program exports them with any
//! `metrics` exporter it installs: Prometheus, StatsD, OpenTelemetry...
//!
//! Two sources, both named after Prometheus conventions and labelled with
//! `pool` (the pool's [name](crate::PoolBuilder::name), `default` for a
//! pool without one):
//!
//! * **Every call that ran on a worker**, as it finishes, without any setup:
//!   `snakepit_calls_total{pool,worker,outcome}` (counter; `outcome` is
//!   `ok` or the [`ErrorKind`] as [`ErrorKind::as_str`] gives it, such as
//!   `python` or `timeout`) and `snakepit_call_duration_seconds{pool,tool}`
//!   (histogram, from entering the pool to the reply; see
//!   [`CALL_DURATION_BUCKETS`]). A call that never reached a worker (queue
//!   timeout, queue full, no worker able to start) is not in them: it shows
//!   in the counters below.
//! * **A snapshot of [`PoolStats`]**, written when the program calls
//!   [`Pool::record_metrics`] (or [`PoolSet::record_metrics`]), typically
//!   just before the exporter renders a scrape. Nothing runs in between, so
//!   this part costs nothing on the call path:
//!
//! | name | kind | labels | from [`PoolStats`] |
//! | --- | --- | --- | --- |
//! | `snakepit_queue_depth` | gauge | `pool` | `queued` |
//! | `snakepit_calls_in_flight` | gauge | `pool` | `load` |
//! | `snakepit_capacity` | gauge | `pool` | `capacity` |
//! | `snakepit_workers` | gauge | `pool`, `state` | `per_worker` counted by state: `starting`, `ready`, `draining`, `backing_off`, `stopped` |
//! | `snakepit_worker_stuck_threads` | gauge | `pool`, `worker` | `per_worker[..].stuck_threads` |
//! | `snakepit_call_timeouts_total` | counter | `pool` | `timeouts` |
//! | `snakepit_queue_timeouts_total` | counter | `pool` | `queue_timeouts` |
//! | `snakepit_saturated_total` | counter | `pool` | `saturated` |
//! | `snakepit_worker_crashes_total` | counter | `pool` | `crashes` |
//! | `snakepit_worker_restarts_total` | counter | `pool` | `restarts` |
//! | `snakepit_worker_recycles_total` | counter | `pool`, `reason` | `recycles`: `max_requests`, `max_lifetime`, `memory`, `manual`, `stuck_threads` |
//! | `snakepit_worker_kills_total` | counter | `pool`, `reason` | `hung_killed` (`hung`), `unhealthy_killed` (`unhealthy`) |
//!
//! The `worker` label is the worker's id without the pool's name
//! (`worker-0`). Give each pool of a process its own name: two pools under
//! one name share their series, and since counters never go down, a new
//! pool under an old one's name shows the old counts until it passes them.
//! Without the feature none of this is compiled.
//!
//! ```no_run
//! // With an exporter installed first (see examples/metrics.rs for one
//! // that serves `/metrics`):
//! let pool = snakepit::Pool::builder()
//!     .name("compute")
//!     .adapter("snakepit_showcase.adapter.ShowcaseAdapter")
//!     .build()?;
//! pool.execute_blocking("add", serde_json::json!({"a": 1, "b": 2}))?;
//! pool.record_metrics(); // then render the exporter's text
//! # Ok::<(), snakepit::Error>(())
//! ```

use metrics::{counter, describe_counter, describe_gauge, describe_histogram, gauge, Unit};

use crate::events::record::{labels_of, UNNAMED};
use crate::{Pool, PoolSet, PoolStats, WorkerState};

/// Bucket bounds, in seconds, that suit `snakepit_call_duration_seconds`:
/// from a millisecond (a call's own overhead) to two minutes. Exporters
/// that need buckets take them, e.g. `metrics-exporter-prometheus`'s
/// `set_buckets_for_metric`.
pub const CALL_DURATION_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
];

/// Gives every metric its help text and unit, for exporters that show them
/// (Prometheus's `# HELP`). [`Pool::record_metrics`] calls it; call it
/// yourself to have them before the first record.
pub fn describe() {
    describe_counter!(
        "snakepit_calls_total",
        "Calls that ran on a worker, by worker and outcome (ok or the error kind)."
    );
    describe_histogram!(
        "snakepit_call_duration_seconds",
        Unit::Seconds,
        "Time from a call entering the pool to its reply, by tool."
    );
    describe_gauge!("snakepit_queue_depth", "Calls waiting for a free worker.");
    describe_gauge!("snakepit_calls_in_flight", "Calls running on the workers.");
    describe_gauge!(
        "snakepit_capacity",
        "Calls the ready workers can run at once."
    );
    describe_gauge!("snakepit_workers", "Workers by state.");
    describe_gauge!(
        "snakepit_worker_stuck_threads",
        "Python threads of a worker still running a call past its timeout."
    );
    describe_counter!(
        "snakepit_call_timeouts_total",
        "Calls that ran past their call timeout."
    );
    describe_counter!(
        "snakepit_queue_timeouts_total",
        "Calls that waited past their queue timeout."
    );
    describe_counter!(
        "snakepit_saturated_total",
        "Calls refused because the queue was full."
    );
    describe_counter!(
        "snakepit_worker_crashes_total",
        "Worker processes that died unexpectedly."
    );
    describe_counter!(
        "snakepit_worker_restarts_total",
        "Worker processes started to replace another."
    );
    describe_counter!(
        "snakepit_worker_recycles_total",
        "Workers replaced on purpose, by reason."
    );
    describe_counter!(
        "snakepit_worker_kills_total",
        "Workers killed by the pool, by reason (hung in a call, unhealthy)."
    );
    describe_counter!(
        "snakepit_telemetry_events_total",
        "Telemetry events tools emitted that reached the host, by event name."
    );
    describe_histogram!(
        "snakepit_telemetry_measurement",
        "The numeric measurements of telemetry events, by event and measurement."
    );
    describe_counter!(
        "snakepit_telemetry_dropped_total",
        "Telemetry events workers dropped because the host read them too slowly."
    );
}

/// The label of a worker state in `snakepit_workers`.
fn state_label(state: WorkerState) -> &'static str {
    match state {
        WorkerState::Starting => "starting",
        WorkerState::Ready => "ready",
        WorkerState::Draining => "draining",
        WorkerState::BackingOff => "backing_off",
        WorkerState::Stopped => "stopped",
        WorkerState::Unbound => "unbound",
    }
}

/// Every state `snakepit_workers` reports, zeros included, so that a state
/// the workers left does not keep its last count.
const STATES: [WorkerState; 6] = [
    WorkerState::Starting,
    WorkerState::Ready,
    WorkerState::Draining,
    WorkerState::BackingOff,
    WorkerState::Stopped,
    WorkerState::Unbound,
];

/// Writes a [`PoolStats`] snapshot as the gauges and counters listed in
/// the [module docs](self).
fn record_stats(stats: &PoolStats) {
    let pool = stats
        .per_worker
        .first()
        .map_or_else(|| UNNAMED.to_owned(), |w| labels_of(&w.id).0);
    let p = || pool.clone();
    let as_f64 = |n: usize| n as f64;

    gauge!("snakepit_queue_depth", "pool" => p()).set(as_f64(stats.queued));
    gauge!("snakepit_calls_in_flight", "pool" => p()).set(as_f64(stats.load));
    gauge!("snakepit_capacity", "pool" => p()).set(as_f64(stats.capacity));
    for state in STATES {
        let n = stats.per_worker.iter().filter(|w| w.state == state).count();
        gauge!("snakepit_workers", "pool" => p(), "state" => state_label(state)).set(as_f64(n));
    }
    for w in &stats.per_worker {
        let worker = labels_of(&w.id).1;
        gauge!("snakepit_worker_stuck_threads", "pool" => p(), "worker" => worker)
            .set(as_f64(w.stuck_threads));
    }

    counter!("snakepit_call_timeouts_total", "pool" => p()).absolute(stats.timeouts);
    counter!("snakepit_queue_timeouts_total", "pool" => p()).absolute(stats.queue_timeouts);
    counter!("snakepit_saturated_total", "pool" => p()).absolute(stats.saturated);
    counter!("snakepit_worker_crashes_total", "pool" => p()).absolute(stats.crashes);
    counter!("snakepit_worker_restarts_total", "pool" => p()).absolute(stats.restarts);
    counter!("snakepit_telemetry_dropped_total", "pool" => p()).absolute(stats.telemetry_dropped);
    let r = &stats.recycles;
    for (reason, n) in [
        ("max_requests", r.max_requests),
        ("max_lifetime", r.max_lifetime),
        ("memory", r.memory),
        ("manual", r.manual),
        ("stuck_threads", r.stuck_threads),
    ] {
        counter!("snakepit_worker_recycles_total", "pool" => p(), "reason" => reason).absolute(n);
    }
    for (reason, n) in [
        ("hung", stats.hung_killed),
        ("unhealthy", stats.unhealthy_killed),
    ] {
        counter!("snakepit_worker_kills_total", "pool" => p(), "reason" => reason).absolute(n);
    }
}

impl Pool {
    /// Writes a snapshot of [`stats`](Pool::stats) to the installed
    /// `metrics` recorder: queue depth, workers by state, crashes,
    /// restarts, recycles by reason and the rest listed in
    /// [`snakepit::metrics`](crate::metrics). Call it before each scrape
    /// (it is as cheap as `stats()`). Feature `metrics`.
    ///
    /// ```no_run
    /// # let pool = snakepit::Pool::builder().adapter("snakepit_showcase.adapter.ShowcaseAdapter").build()?;
    /// # let handle: metrics_exporter_prometheus::PrometheusHandle = todo!();
    /// pool.record_metrics();
    /// let text = handle.render(); // Prometheus text, queue depth included
    /// # Ok::<(), snakepit::Error>(())
    /// ```
    pub fn record_metrics(&self) {
        describe();
        record_stats(&self.stats());
    }
}

impl PoolSet {
    /// [`Pool::record_metrics`] for every pool of the set that started,
    /// each under its own `pool` label. Feature `metrics`.
    pub fn record_metrics(&self) {
        for name in self.names() {
            if let Ok(pool) = self.pool(name) {
                pool.record_metrics();
            }
        }
    }
}
