//! The wait queue and the call deadline: saturation, queue timeouts and
//! call timeouts each give their own error, and none leaks capacity.

mod common;

use std::thread;
use std::time::{Duration, Instant};

use common::{wait_until, Scope};
use serde_json::json;
use snakepit::{CallOptions, Error};

const EVENT_LIMIT: Duration = Duration::from_secs(30);

/// Starts a call on a background thread that holds the pool's only worker
/// until `release` exists, and waits until it is running.
fn hold_the_worker(
    pool: &snakepit::Pool,
    scope: &Scope,
    name: &str,
) -> (
    thread::JoinHandle<Result<serde_json::Value, Error>>,
    std::path::PathBuf,
) {
    let started = scope.path(&format!("{name}.started"));
    let release = scope.path(&format!("{name}.release"));
    let pool = pool.clone();
    let args = json!({
        "record_path": started.to_str().unwrap(),
        "wait_path": release.to_str().unwrap(),
    });
    let handle = thread::spawn(move || pool.execute_blocking("record_then_wait", args));
    assert!(
        wait_until(EVENT_LIMIT, || started.exists()),
        "the holding call never started"
    );
    (handle, release)
}

fn a_full_queue_refuses_at_once_and_queued_calls_still_run() {
    let scope = Scope::new("saturate");
    let pool = scope.builder().workers(1).queue_size(1).build().unwrap();
    let (holder, release) = hold_the_worker(&pool, &scope, "hold");

    // One call fits in the queue...
    let queued_record = scope.path("queued");
    let queued = {
        let pool = pool.clone();
        let path = queued_record.to_str().unwrap().to_owned();
        thread::spawn(move || pool.execute_blocking("record", json!({ "path": path })))
    };
    assert!(wait_until(EVENT_LIMIT, || pool.stats().queued == 1));

    // ...the next is refused without waiting.
    let t = Instant::now();
    let err = pool.execute_blocking("ping", json!({})).unwrap_err();
    assert_eq!(err, Error::PoolSaturated { queue_size: 1 });
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "refusal took {:?}",
        t.elapsed()
    );
    assert_eq!(pool.stats().saturated, 1);

    std::fs::write(&release, b"").unwrap();
    assert_eq!(holder.join().unwrap().unwrap(), json!(true));
    assert_eq!(
        queued.join().unwrap().unwrap(),
        json!(1),
        "the queued call ran once"
    );
    let stats = pool.stats();
    assert_eq!((stats.load, stats.queued), (0, 0));

    scope.finish(&pool);
}

fn a_call_that_waits_past_its_queue_timeout_never_runs() {
    let scope = Scope::new("qtimeout");
    let pool = scope.builder().workers(1).build().unwrap();
    let (holder, release) = hold_the_worker(&pool, &scope, "hold");

    let record = scope.path("must-not-exist");
    let t = Instant::now();
    let err = pool
        .execute_blocking_with(
            "record",
            json!({"path": record.to_str().unwrap()}),
            CallOptions::new().queue_timeout(Duration::from_millis(200)),
        )
        .unwrap_err();
    match err {
        Error::QueueTimeout { tool, waited } => {
            assert_eq!(tool, "record");
            assert!(waited >= Duration::from_millis(200), "{waited:?}");
        }
        other => panic!("expected QueueTimeout, got {other:?}"),
    }
    assert!(t.elapsed() >= Duration::from_millis(200));

    std::fs::write(&release, b"").unwrap();
    holder.join().unwrap().unwrap();
    // A later call runs: the worker is free, and the timed-out one did not
    // sneak in ahead of it.
    let later = scope.path("later");
    pool.execute_blocking("record", json!({"path": later.to_str().unwrap()}))
        .unwrap();
    assert!(later.exists());
    assert!(!record.exists(), "the timed-out call ran anyway");
    let stats = pool.stats();
    assert_eq!(stats.queue_timeouts, 1);
    assert_eq!((stats.load, stats.queued), (0, 0));

    scope.finish(&pool);
}

fn a_call_past_its_timeout_fails_and_leaks_nothing() {
    let scope = Scope::new("ctimeout");
    let pool = scope.builder().workers(1).build().unwrap();
    let first_pid = pool.stats().per_worker[0].pid.unwrap();

    let t = Instant::now();
    let err = pool
        .execute_blocking_with(
            "sleep",
            json!({"ms": 60_000}),
            CallOptions::new().timeout(Duration::from_millis(300)),
        )
        .unwrap_err();
    assert_eq!(
        err,
        Error::Timeout {
            tool: "sleep".into(),
            timeout: Duration::from_millis(300)
        }
    );
    assert!(
        t.elapsed() < Duration::from_secs(30),
        "took {:?}",
        t.elapsed()
    );
    assert_eq!(
        pool.stats().load,
        0,
        "the timed-out call still holds capacity"
    );
    assert_eq!(pool.stats().timeouts, 1);

    // The stuck process is replaced and the pool serves again.
    common::assert_serves(&pool);
    let stats = pool.stats();
    assert_eq!(stats.hung_killed, 1);
    assert_ne!(stats.per_worker[0].pid, Some(first_pid));
    assert!(
        !common::is_alive(first_pid),
        "the hung process is still alive"
    );
    assert_eq!(stats.load, 0);

    scope.finish(&pool);
}

fn a_thread_profile_timeout_keeps_the_process_and_its_other_calls() {
    let scope = Scope::new("ttimeout");
    let pool = scope.threaded_builder(4).workers(1).build().unwrap();
    let pid = pool.stats().per_worker[0].pid;

    let err = pool
        .execute_blocking_with(
            "sleep",
            json!({"ms": 2_000}),
            CallOptions::new().timeout(Duration::from_millis(200)),
        )
        .unwrap_err();
    assert!(matches!(err, Error::Timeout { .. }), "{err:?}");
    common::assert_serves(&pool);
    assert_eq!(pool.stats().per_worker[0].pid, pid, "the process was kept");
    assert_eq!(pool.stats().load, 0);

    scope.finish(&pool);
}

fn huge_call_durations_are_refused_and_the_idle_pool_keeps_serving() {
    let scope = Scope::new("huge-durations");
    let pool = scope.builder().workers(1).build().unwrap();
    // The repro: this panicked the dispatcher, and every later
    // call failed with ShuttingDown.
    for (argument, options) in [
        (
            "queue_timeout",
            CallOptions::new().queue_timeout(Duration::MAX),
        ),
        ("timeout", CallOptions::new().timeout(Duration::MAX)),
        (
            "timeout",
            CallOptions::new().timeout(snakepit::MAX_DURATION + Duration::from_nanos(1)),
        ),
    ] {
        match pool.execute_blocking_with("ping", json!({}), options) {
            Err(Error::InvalidArgument { argument: a, .. }) => assert_eq!(a, argument),
            other => panic!("{argument}: {other:?}"),
        }
    }
    // At the bound the gRPC deadline stays in the future: the call runs.
    let at_the_bound = CallOptions::new()
        .timeout(snakepit::MAX_DURATION)
        .queue_timeout(snakepit::MAX_DURATION);
    pool.execute_blocking_with("ping", json!({}), at_the_bound)
        .unwrap();
    common::assert_serves(&pool);
    let workers = pool.stats().workers;
    assert_eq!(pool.stats().ready_workers, workers);
    scope.finish(&pool);
}

fn a_builder_duration_above_the_bound_fails_the_build_at_once() {
    let scope = Scope::new("huge-startup");
    for builder in [
        scope.builder().startup_timeout(Duration::MAX),
        scope.builder().max_lifetime(Duration::MAX),
        scope.builder().shutdown_grace(Duration::MAX),
    ] {
        match builder.workers(1).build() {
            Err(Error::InvalidConfig { message, .. }) => {
                assert!(message.contains("at most"), "{message}")
            }
            other => panic!("{:?}", other.err()),
        }
    }
    scope.assert_no_processes();
}

both_transports!(
    a_full_queue_refuses_at_once_and_queued_calls_still_run,
    a_call_that_waits_past_its_queue_timeout_never_runs,
    a_call_past_its_timeout_fails_and_leaks_nothing,
    a_thread_profile_timeout_keeps_the_process_and_its_other_calls,
    huge_call_durations_are_refused_and_the_idle_pool_keeps_serving,
    a_builder_duration_above_the_bound_fails_the_build_at_once,
);
