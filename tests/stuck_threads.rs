//! Thread profile: a Python thread stuck in a call past its timeout is
//! never counted as capacity, and a worker whose threads are all stuck is
//! recycled (drained, then replaced) rather than left serving nothing
//! (issue 13, item 2). On both transports.

mod common;

use std::time::Duration;

use crossbeam_channel::Sender;
use serde_json::json;
use snakepit::events::{ExitReason, HandleEvent, RecycleReason, WorkerExited};
use snakepit::{CallOptions, Error};

use common::Scope;

/// Forwards each process exit: its pid and why.
#[derive(Debug)]
struct Exits(Sender<(u32, ExitReason)>);

impl HandleEvent for Exits {
    fn worker_exited(&self, event: &WorkerExited) {
        let _ = self.0.send((event.pid, event.reason.clone()));
    }
}

const THREADS: usize = 4;

both_transports!(
    threads_stuck_past_their_timeout_are_not_capacity_and_their_worker_is_recycled,
    a_worker_whose_calls_all_hang_is_still_health_checked,
);

fn threads_stuck_past_their_timeout_are_not_capacity_and_their_worker_is_recycled() {
    let scope = Scope::new("stuck");
    let (exits_tx, exits) = crossbeam_channel::unbounded();
    let pool = scope
        .threaded_builder(THREADS)
        .workers(1)
        // Calls wait while the stuck worker's replacement starts.
        .queue_timeout(Duration::from_secs(120))
        .event_handler(Exits(exits_tx))
        .build()
        .unwrap();
    let first = pool.stats().pids();
    assert_eq!(first.len(), 1);
    // An hour's sleep: stuck for the life of the test.
    let hang = || {
        pool.execute_blocking_with(
            "sleep",
            json!({"ms": 3_600_000}),
            CallOptions::new().timeout(Duration::from_millis(300)),
        )
    };
    let assert_capacity_excludes_stuck = || {
        let stats = pool.stats();
        let w = &stats.per_worker[0];
        assert!(
            w.capacity + w.stuck_threads <= THREADS && stats.capacity == w.capacity,
            "capacity counts stuck threads: {stats:?}"
        );
        stats
    };
    // Six hung calls, as in the issue: four fill the first process, whose
    // capacity shrinks with each, then two land on its replacement.
    for k in 1..=6 {
        let err = hang().unwrap_err();
        assert!(matches!(err, Error::Timeout { .. }), "call {k}: {err:?}");
        let stats = assert_capacity_excludes_stuck();
        if k < THREADS {
            let w = &stats.per_worker[0];
            assert_eq!((w.capacity, w.stuck_threads), (THREADS - k, k), "{stats:?}");
            assert_eq!(stats.pids(), first, "not yet recycled");
        }
        if k == THREADS {
            let (pid, reason) = exits
                .recv_timeout(Duration::from_secs(60))
                .expect("the stuck process ends");
            assert_eq!(pid, first[0]);
            assert_eq!(reason, ExitReason::Recycled(RecycleReason::StuckThreads));
        }
    }
    // Normal calls are served, several at once, on the two threads left.
    let calls: Vec<_> = (0..4)
        .map(|_| {
            let pool = pool.clone();
            std::thread::spawn(move || pool.execute_blocking("ping", json!({})))
        })
        .collect();
    for call in calls {
        assert_eq!(call.join().unwrap().unwrap(), json!("pong"));
    }
    let stats = assert_capacity_excludes_stuck();
    assert_eq!(stats.recycles.stuck_threads, 1, "{stats:?}");
    assert_eq!(stats.per_worker[0].stuck_threads, 2, "{stats:?}");
    assert_eq!(stats.timeouts, 6);
    assert_ne!(stats.pids(), first, "the worker runs a new process");
    assert!(!common::is_alive(first[0]), "the stuck process is gone");
    scope.finish(&pool);
}

fn a_worker_whose_calls_all_hang_is_still_health_checked() {
    let scope = Scope::new("busyhealth");
    let (exits_tx, exits) = crossbeam_channel::unbounded();
    let pool = scope
        .threaded_builder(2)
        .workers(1)
        .health_check_interval(Some(Duration::from_millis(100)))
        .health_check_timeout(Duration::from_millis(500))
        .event_handler(Exits(exits_tx))
        .build()
        .unwrap();
    let frozen = pool.stats().pids()[0];
    // Both threads busy for far longer than the test, then the process
    // stops answering anything.
    let calls: Vec<_> = (0..2)
        .map(|_| {
            let pool = pool.clone();
            std::thread::spawn(move || {
                pool.execute_blocking_with(
                    "sleep",
                    json!({"ms": 3_600_000}),
                    CallOptions::new().timeout(Duration::from_secs(3600)),
                )
            })
        })
        .collect();
    assert!(
        common::wait_until(Duration::from_secs(60), || pool.stats().load == 2),
        "both calls in flight"
    );
    // SAFETY: plain syscall on the pool's own worker.
    unsafe {
        libc::kill(frozen as libc::pid_t, libc::SIGSTOP);
    }
    let (pid, reason) = exits
        .recv_timeout(Duration::from_secs(60))
        .expect("the frozen busy worker is replaced");
    assert_eq!((pid, reason), (frozen, ExitReason::Unhealthy));
    for call in calls {
        let err = call.join().unwrap().unwrap_err();
        assert!(matches!(err, Error::WorkerCrashed { .. }), "{err:?}");
    }
    common::assert_serves(&pool);
    assert_eq!(pool.stats().unhealthy_killed, 1);
    scope.finish(&pool);
}
