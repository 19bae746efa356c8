//! Start-up failures, crashes and shutdown: clear errors, a pool that
//! recovers, and no process left behind.

mod common;

use std::thread;
use std::time::{Duration, Instant};

use common::{wait_until, Scope};
use serde_json::json;
use snakepit::{Error, Pool, WorkerState};

fn a_bad_adapter_path_fails_build_with_the_import_error() {
    let scope = Scope::new("badpath");
    let t = Instant::now();
    let err = scope
        .builder()
        .adapter("no_such_package_xyz.adapters.Missing")
        .workers(3)
        .build()
        .unwrap_err();
    match &err {
        Error::Startup { worker, message } => {
            assert!(worker.starts_with("worker-"), "{worker}");
            assert!(message.contains("ModuleNotFoundError"), "{message}");
            assert!(message.contains("no_such_package_xyz"), "{message}");
        }
        other => panic!("expected a start-up error, got {other:?}"),
    }
    assert!(t.elapsed() < Duration::from_secs(60));
    scope.assert_no_processes();
}

fn an_adapter_that_raises_on_import_reports_its_traceback() {
    let scope = Scope::new("broken");
    let err = scope
        .builder()
        .adapter("snakepit_showcase.broken.BrokenAdapter")
        .workers(2)
        .build()
        .unwrap_err();
    let message = err.to_string();
    assert!(message.contains("Traceback"), "{message}");
    assert!(message.contains("broken on purpose"), "{message}");
    scope.assert_no_processes();
}

fn a_missing_interpreter_is_a_start_up_error_naming_it() {
    let scope = Scope::new("nopython");
    let err = scope
        .builder()
        .python("/nonexistent/bin/python3.99")
        .workers(1)
        .build()
        .unwrap_err();
    match err {
        Error::Startup { message, .. } => {
            assert!(message.contains("/nonexistent/bin/python3.99"), "{message}");
            assert!(message.contains("SNAKEPIT_PYTHON"), "{message}");
        }
        other => panic!("expected a start-up error, got {other:?}"),
    }
    scope.assert_no_processes();
}

// No process starts, so one variant covers both transports.
#[test]
fn options_that_cannot_work_are_refused_before_anything_starts() {
    let cases = [
        (Pool::builder().adapter("NoModule"), "adapter"),
        (Pool::builder().adapter("a.B").workers(0), "workers"),
        (
            Pool::builder()
                .adapter("a.B")
                .profile(snakepit::Profile::Thread { threads: 0 }),
            "profile",
        ),
        (
            Pool::builder().adapter("a.B").call_timeout(Duration::ZERO),
            "call_timeout",
        ),
        (Pool::builder().adapter("a.B").env("A=B", "x"), "env"),
        // A worker script speaks gRPC only.
        (
            Pool::builder()
                .adapter("a.B")
                .worker_script(concat!(
                    env!("CARGO_MANIFEST_DIR"),
                    "/tests/contract_worker.py"
                ))
                .transport(snakepit::Transport::Socket),
            "transport",
        ),
    ];
    for (builder, expected) in cases {
        match builder.build().unwrap_err() {
            Error::InvalidConfig { option, .. } => assert_eq!(option, expected),
            other => panic!("expected InvalidConfig for {expected}, got {other:?}"),
        }
    }
}

fn a_worker_that_dies_mid_call_fails_that_call_and_is_replaced() {
    let scope = Scope::new("crash");
    let pool = scope.builder().workers(2).build().unwrap();
    let before: Vec<_> = pool.stats().per_worker.iter().map(|w| w.pid).collect();

    let t = Instant::now();
    let err = pool
        .execute_blocking("crash", json!({"code": 7, "message": "going down now"}))
        .unwrap_err();
    match &err {
        Error::WorkerCrashed {
            exit, stderr_tail, ..
        } => {
            assert_eq!(exit.and_then(|e| e.code), Some(7), "{err}");
            assert!(
                stderr_tail.iter().any(|l| l.contains("going down now")),
                "{stderr_tail:?}"
            );
        }
        other => panic!("expected WorkerCrashed, got {other:?}"),
    }
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "crash seen after {:?}",
        t.elapsed()
    );

    // Calls go on, and the pool is back to full size with a new process.
    for _ in 0..10 {
        assert_eq!(
            pool.execute_blocking("ping", json!({})).unwrap(),
            json!("pong")
        );
    }
    // The worker's own thread counts the crash and starts the replacement.
    assert!(wait_until(Duration::from_secs(30), || {
        let s = pool.stats();
        (s.crashes, s.restarts, s.ready_workers) == (1, 1, 2)
    }));
    let stats = pool.stats();
    let after: Vec<_> = stats.per_worker.iter().map(|w| w.pid).collect();
    assert_eq!(before.iter().zip(&after).filter(|(a, b)| a != b).count(), 1);

    scope.finish(&pool);
}

fn shutdown_lets_calls_in_flight_finish_and_refuses_new_ones() {
    let scope = Scope::new("shutdown");
    let pool = scope.builder().workers(1).build().unwrap();
    let in_flight = {
        let pool = pool.clone();
        thread::spawn(move || pool.execute_blocking("sleep", json!({"ms": 500})))
    };
    // The call holds the worker's capacity from the moment it is placed.
    assert!(wait_until(Duration::from_secs(30), || pool.stats().load == 1));
    pool.shutdown();
    assert_eq!(in_flight.join().unwrap().unwrap(), json!(500));
    assert_eq!(
        pool.execute_blocking("ping", json!({})).unwrap_err(),
        Error::ShuttingDown
    );
    assert_eq!(pool.stats().per_worker[0].state, WorkerState::Stopped);
    pool.shutdown(); // a second call is harmless
    scope.assert_no_processes();
}

fn a_call_cut_short_by_shutdown_gets_shutting_down() {
    let scope = Scope::new("grace");
    let pool = scope
        .builder()
        .workers(1)
        .shutdown_grace(Duration::from_millis(200))
        .build()
        .unwrap();
    let in_flight = {
        let pool = pool.clone();
        thread::spawn(move || pool.execute_blocking("sleep", json!({"ms": 60_000})))
    };
    assert!(wait_until(Duration::from_secs(30), || pool.stats().load == 1));
    pool.shutdown();
    // Killed with its process past the grace period: the pool stopped it,
    // it did not crash.
    assert_eq!(in_flight.join().unwrap().unwrap_err(), Error::ShuttingDown);
    scope.assert_no_processes();
}

fn dropping_the_last_handle_stops_every_worker() {
    let scope = Scope::new("drop");
    let pool = scope.builder().workers(2).build().unwrap();
    let pids: Vec<u32> = pool.stats().pids();
    assert_eq!(pids.len(), 2);
    let clone = pool.clone();
    drop(pool);
    assert!(
        pids.iter().all(|&p| common::is_alive(p)),
        "a clone keeps the pool up"
    );
    drop(clone);
    assert!(pids.iter().all(|&p| !common::is_alive(p)));
    scope.assert_no_processes();
}

fn an_interpreter_without_grpcio_names_the_command_that_fixes_it() {
    let scope = Scope::new("nogrpc");
    // A bare virtual environment: Python, but none of the worker's packages.
    let venv = scope.path("bare-venv");
    let made = std::process::Command::new("python3")
        .args(["-m", "venv", "--without-pip"])
        .arg(&venv)
        .status()
        .unwrap();
    assert!(made.success());
    let err = scope
        .builder()
        .python(venv.join("bin").join("python"))
        .workers(1)
        .build()
        .unwrap_err();
    match err {
        Error::Startup { message, .. } => {
            assert!(message.contains("pip install -r"), "{message}");
            assert!(message.contains("requirements.txt"), "{message}");
        }
        other => panic!("expected a start-up error, got {other:?}"),
    }
    scope.assert_no_processes();
}

both_transports!(
    a_bad_adapter_path_fails_build_with_the_import_error,
    an_adapter_that_raises_on_import_reports_its_traceback,
    a_missing_interpreter_is_a_start_up_error_naming_it,
    a_worker_that_dies_mid_call_fails_that_call_and_is_replaced,
    shutdown_lets_calls_in_flight_finish_and_refuses_new_ones,
    a_call_cut_short_by_shutdown_gets_shutting_down,
    dropping_the_last_handle_stops_every_worker,
    an_interpreter_without_grpcio_names_the_command_that_fixes_it,
);
