//! The two worker profiles really run what they promise at once: a thread
//! profile process runs N calls together, a process pool one per process.

mod common;

use std::thread;

use common::Scope;
use serde_json::json;
use snakepit::Profile;

/// Runs `n` barrier calls from `n` threads; each returns only once all `n`
/// have arrived, so success proves they ran at the same time.
fn barrier_calls(pool: &snakepit::Pool, scope: &Scope, n: usize) -> Vec<serde_json::Value> {
    let dir = scope.path("barrier");
    let handles: Vec<_> = (0..n)
        .map(|_| {
            let pool = pool.clone();
            let dir = dir.to_str().unwrap().to_owned();
            thread::spawn(move || {
                pool.execute_blocking_with(
                    "barrier",
                    json!({"dir": dir, "parties": n, "timeout_s": 20.0}),
                    snakepit::CallOptions::new(),
                )
            })
        })
        .collect();
    handles
        .into_iter()
        .map(|h| {
            let reply = h.join().unwrap().expect("barrier call failed");
            assert_eq!(reply.value, json!(n), "every party saw all {n}");
            json!(reply.worker)
        })
        .collect()
}

fn one_thread_profile_process_runs_eight_calls_at_once() {
    let scope = Scope::new("thread8");
    let pool = scope.threaded_builder(8).workers(1).build().unwrap();
    assert_eq!(pool.profile(), Profile::Thread { threads: 8 });
    let stats = pool.stats();
    assert_eq!(stats.capacity, 8);
    let pid = stats.per_worker[0].pid;

    let workers = barrier_calls(&pool, &scope, 8);
    assert!(workers.iter().all(|w| w == "worker-0"));
    // Still the one process: nothing was restarted to get there.
    assert_eq!(pool.stats().per_worker[0].pid, pid);
    assert_eq!(pool.stats().load, 0);

    scope.finish(&pool);
}

fn a_process_pool_runs_one_call_per_worker_at_once() {
    let scope = Scope::new("proc2");
    let pool = scope.builder().workers(2).build().unwrap();
    assert_eq!(pool.stats().capacity, 2);

    let mut workers = barrier_calls(&pool, &scope, 2);
    workers.sort_by_key(|w| w.to_string());
    assert_eq!(workers, [json!("worker-0"), json!("worker-1")]);
    assert_eq!(pool.stats().load, 0);

    scope.finish(&pool);
}

fn the_thread_profile_refuses_an_adapter_not_marked_thread_safe() {
    let scope = Scope::new("unsafe");
    let err = scope
        .builder()
        .profile(Profile::Thread { threads: 4 })
        .workers(1)
        .build()
        .unwrap_err();
    match err {
        snakepit::Error::Startup { message, .. } => {
            assert!(message.contains("thread-safe"), "{message}")
        }
        other => panic!("expected a start-up error, got {other:?}"),
    }
    scope.assert_no_processes();
}

both_transports!(
    one_thread_profile_process_runs_eight_calls_at_once,
    a_process_pool_runs_one_call_per_worker_at_once,
    the_thread_profile_refuses_an_adapter_not_marked_thread_safe,
);
