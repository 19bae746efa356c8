//! Feature `metrics`: a pool's calls and stats reach an installed `metrics`
//! exporter under the documented Prometheus names, labels and values. Every
//! test runs on both transports (`grpc::` and `socket::`): the recorder is
//! the process's, but metrics are labelled per pool, so each variant names
//! its pools apart ([`pool_name`]).

mod common;

use std::collections::BTreeMap;
use std::sync::OnceLock;
use std::time::Duration;

use common::{wait_until, Scope, SHOWCASE};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use serde_json::json;
use snakepit::{CallOptions, ErrorKind, Pool, PoolSet, Transport};

const LIMIT: Duration = Duration::from_secs(60);

/// The exporter, as a program installs it: once (a process has one
/// recorder), before its pools.
fn exporter() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        PrometheusBuilder::new()
            .set_buckets_for_metric(
                Matcher::Full("snakepit_call_duration_seconds".into()),
                snakepit::metrics::CALL_DURATION_BUCKETS,
            )
            .unwrap()
            .install_recorder()
            .unwrap()
    })
}

/// The transport of this test variant, as the configuration file spells it.
fn transport_key() -> &'static str {
    match common::transport() {
        Transport::Socket => "socket",
        _ => "grpc",
    }
}

/// The name of this variant's pool `base`, e.g. `metered_socket`: the two
/// variants of a test share the recorder, so their series must differ by
/// their `pool` label.
fn pool_name(base: &str) -> String {
    format!("{base}_{}", transport_key())
}

/// One sample of a scrape: its name and labels (sorted, whatever order the
/// exporter writes them in).
type Sample = (String, BTreeMap<String, String>);

/// What a Prometheus server reads from `GET /metrics` after
/// `record_metrics`: every sample line of the text format, by name and
/// labels.
fn scrape(pool: &Pool, handle: &PrometheusHandle) -> BTreeMap<Sample, f64> {
    pool.record_metrics();
    render(handle)
}

/// Every sample line of the exporter's text, by name and labels.
fn render(handle: &PrometheusHandle) -> BTreeMap<Sample, f64> {
    handle.run_upkeep();
    let text = handle.render();
    let mut samples = BTreeMap::new();
    for line in text
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let (series, value) = line.rsplit_once(' ').expect("a sample line");
        let (name, labels) = match series.split_once('{') {
            Some((name, rest)) => (name, rest.strip_suffix('}').expect("closed labels")),
            None => (series, ""),
        };
        let labels = labels
            .split(',')
            .filter(|l| !l.is_empty())
            .map(|l| {
                let (k, v) = l.split_once('=').expect("label=value");
                (k.to_owned(), v.trim_matches('"').to_owned())
            })
            .collect();
        let value = match value {
            "+Inf" => f64::INFINITY,
            v => v.parse().expect("a number"),
        };
        samples.insert((name.to_owned(), labels), value);
    }
    samples
}

/// The value of sample `name{labels}`, panicking with the scrape if absent.
fn value(samples: &BTreeMap<Sample, f64>, name: &str, labels: &[(&str, &str)]) -> f64 {
    let key = (
        name.to_owned(),
        labels
            .iter()
            .map(|&(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
    );
    *samples
        .get(&key)
        .unwrap_or_else(|| panic!("no {key:?} in the scrape: {:#?}", samples.keys()))
}

fn calls_workers_and_queue_are_scraped_with_prometheus_names() {
    let handle = exporter();
    let scope = Scope::new("metrics");
    let metered = pool_name("metered");
    let metered = metered.as_str();
    let pool = scope.builder().name(metered).workers(1).build().unwrap();
    // Calls that succeed, raise in Python, time out (the hung process is
    // killed) and crash their worker.
    for i in 0..3 {
        pool.execute_blocking("add", json!({"a": i, "b": 1}))
            .unwrap();
    }
    let python = pool.execute_blocking("raise_error", json!({})).unwrap_err();
    assert_eq!(python.kind(), ErrorKind::Python);
    let timeout = pool
        .execute_blocking_with(
            "sleep",
            json!({"ms": 60_000}),
            CallOptions::new().timeout(Duration::from_millis(300)),
        )
        .unwrap_err();
    assert_eq!(timeout.kind(), ErrorKind::Timeout);
    assert!(wait_until(LIMIT, || pool.stats().ready_workers == 1));
    let crash = pool.execute_blocking("crash", json!({})).unwrap_err();
    assert_eq!(crash.kind(), ErrorKind::WorkerCrashed);
    assert!(wait_until(LIMIT, || {
        let s = pool.stats();
        (s.crashes, s.ready_workers) == (1, 1)
    }));
    pool.recycle_worker("worker-0").unwrap();
    assert!(wait_until(LIMIT, || {
        let s = pool.stats();
        (s.recycles.manual, s.ready_workers) == (1, 1)
    }));

    let s = scrape(&pool, handle);
    assert_eq!(by_outcome_in(&s, metered, "ok"), 3.0);
    assert_eq!(by_outcome_in(&s, metered, "python"), 1.0);
    assert_eq!(by_outcome_in(&s, metered, "timeout"), 1.0);
    assert_eq!(by_outcome_in(&s, metered, "worker_crashed"), 1.0);

    // The duration histogram, as a true Prometheus histogram per tool.
    let add = [("pool", metered), ("tool", "add")];
    assert_eq!(value(&s, "snakepit_call_duration_seconds_count", &add), 3.0);
    let sum = value(&s, "snakepit_call_duration_seconds_sum", &add);
    assert!(sum > 0.0, "sum {sum}");
    let all = [("pool", metered), ("tool", "add"), ("le", "+Inf")];
    assert_eq!(
        value(&s, "snakepit_call_duration_seconds_bucket", &all),
        3.0
    );
    let sleep = [("pool", metered), ("tool", "sleep")];
    let slept = value(&s, "snakepit_call_duration_seconds_sum", &sleep);
    assert!(slept >= 0.3, "the timed-out call took {slept}s");

    // The stats snapshot: the pool's counters, as PoolStats has them.
    let pool_only = [("pool", metered)];
    let stats = pool.stats();
    assert_eq!(value(&s, "snakepit_call_timeouts_total", &pool_only), 1.0);
    assert_eq!(value(&s, "snakepit_worker_crashes_total", &pool_only), 1.0);
    assert_eq!(
        value(&s, "snakepit_worker_restarts_total", &pool_only),
        stats.restarts as f64
    );
    assert!(stats.restarts >= 3, "hung, crashed, recycled: {stats:?}");
    let kills = |reason| {
        value(
            &s,
            "snakepit_worker_kills_total",
            &[("pool", metered), ("reason", reason)],
        )
    };
    assert_eq!((kills("hung"), kills("unhealthy")), (1.0, 0.0));
    let recycles = |reason| {
        value(
            &s,
            "snakepit_worker_recycles_total",
            &[("pool", metered), ("reason", reason)],
        )
    };
    assert_eq!((recycles("manual"), recycles("memory")), (1.0, 0.0));
    assert_eq!(value(&s, "snakepit_queue_timeouts_total", &pool_only), 0.0);
    assert_eq!(value(&s, "snakepit_saturated_total", &pool_only), 0.0);
    let workers = |state| {
        value(
            &s,
            "snakepit_workers",
            &[("pool", metered), ("state", state)],
        )
    };
    assert_eq!((workers("ready"), workers("starting")), (1.0, 0.0));
    assert_eq!(value(&s, "snakepit_queue_depth", &pool_only), 0.0);
    assert_eq!(value(&s, "snakepit_capacity", &pool_only), 1.0);

    // A call holds the only worker and another waits: the gauges show both,
    // and go back to zero when they are done.
    let gate = scope.path("gate");
    let gate_arg = gate.to_str().unwrap().to_owned();
    let (busy, queued) = std::thread::scope(|threads| {
        let holder =
            threads.spawn(|| pool.execute_blocking("wait_for_file", json!({ "path": gate_arg })));
        assert!(wait_until(LIMIT, || pool.stats().load == 1));
        let waiter = threads.spawn(|| pool.execute_blocking("ping", json!({})));
        assert!(wait_until(LIMIT, || pool.stats().queued == 1));
        let s = scrape(&pool, handle);
        let gauges = (
            value(&s, "snakepit_calls_in_flight", &pool_only),
            value(&s, "snakepit_queue_depth", &pool_only),
        );
        std::fs::write(&gate, b"go").unwrap();
        assert_eq!(holder.join().unwrap().unwrap(), json!(true));
        assert_eq!(waiter.join().unwrap().unwrap(), json!("pong"));
        gauges
    });
    assert_eq!((busy, queued), (1.0, 1.0));
    let s = scrape(&pool, handle);
    assert_eq!(value(&s, "snakepit_queue_depth", &pool_only), 0.0);
    assert_eq!(value(&s, "snakepit_calls_in_flight", &pool_only), 0.0);
    assert_eq!(by_outcome_in(&s, metered, "ok"), 5.0);

    scope.finish(&pool);
}

/// `snakepit_calls_total` of pool `pool`'s one worker for `outcome`.
fn by_outcome_in(s: &BTreeMap<Sample, f64>, pool: &str, outcome: &str) -> f64 {
    value(
        s,
        "snakepit_calls_total",
        &[("pool", pool), ("worker", "worker-0"), ("outcome", outcome)],
    )
}

fn each_pool_of_a_set_has_its_own_series() {
    let handle = exporter();
    let scope = Scope::new("metrics-set");
    let path = scope.path("snakepit.toml");
    let (set_a, set_b) = (pool_name("set_a"), pool_name("set_b"));
    let pool = |name: &str| format!("[pools.{name}]\nadapter = \"{SHOWCASE}\"\nworkers = 1\n");
    let config = format!(
        "[defaults]\nstartup_timeout = \"60s\"\ntransport = \"{}\"\nenv = {{ SNAKEPIT_TEST_TAG = \"{}\" }}\n\n{}{}",
        transport_key(),
        scope.tag,
        pool(&set_a),
        pool(&set_b)
    );
    std::fs::write(&path, config).unwrap();
    let set = PoolSet::from_config_file(&path).unwrap();
    assert!(set.failures().is_empty(), "{:?}", set.failures());

    for _ in 0..2 {
        set.pool(&set_a)
            .unwrap()
            .execute_blocking("ping", json!({}))
            .unwrap();
    }
    set.pool(&set_b)
        .unwrap()
        .execute_blocking("ping", json!({}))
        .unwrap();
    set.record_metrics();
    let s = render(handle);

    for (name, calls) in [(set_a.as_str(), 2.0), (set_b.as_str(), 1.0)] {
        let ok = [("pool", name), ("worker", "worker-0"), ("outcome", "ok")];
        assert_eq!(value(&s, "snakepit_calls_total", &ok), calls, "{name}");
        let ready = [("pool", name), ("state", "ready")];
        assert_eq!(value(&s, "snakepit_workers", &ready), 1.0, "{name}");
    }

    set.shutdown();
    scope.assert_no_processes();
}

fn telemetry_events_are_counted_by_name_and_their_measurements_sampled() {
    let handle = exporter();
    let scope = Scope::new("metrics-telemetry");
    let told = pool_name("told");
    let told = told.as_str();
    let pool = scope.builder().name(told).workers(1).build().unwrap();
    // Events reach the host on the worker's telemetry stream, after the
    // call's reply: wait for the host to have them all.
    let emitted = pool
        .execute_blocking("emit_events", json!({"n": 20, "name": "tick.metric"}))
        .unwrap();
    assert_eq!(emitted, json!(20));
    assert!(
        wait_until(LIMIT, || pool.stats().telemetry_events >= 20),
        "{:?}",
        pool.stats()
    );
    let samples = scrape(&pool, handle);
    let labels = [
        ("pool", told),
        ("worker", "worker-0"),
        ("event", "tick.metric"),
    ];
    assert_eq!(
        value(&samples, "snakepit_telemetry_events_total", &labels),
        20.0
    );
    // `i` runs 0..20: 20 samples summing to 190.
    let measured = [
        ("pool", told),
        ("event", "tick.metric"),
        ("measurement", "i"),
    ];
    assert_eq!(
        value(&samples, "snakepit_telemetry_measurement_count", &measured),
        20.0
    );
    assert_eq!(
        value(&samples, "snakepit_telemetry_measurement_sum", &measured),
        190.0
    );
    assert_eq!(
        value(
            &samples,
            "snakepit_telemetry_dropped_total",
            &[("pool", told)]
        ),
        0.0
    );
    scope.finish(&pool);
}

both_transports!(
    calls_workers_and_queue_are_scraped_with_prometheus_names,
    each_pool_of_a_set_has_its_own_series,
    telemetry_events_are_counted_by_name_and_their_measurements_sampled,
);
