//! Sessions: calls of a session land on one worker, which keeps the
//! session's state; each affinity mode when that worker is busy or gone.

mod common;

use std::thread;
use std::time::Duration;

use common::{wait_until, Scope};
use serde_json::json;
use snakepit::{Affinity, CallOptions, Error};

const LIMIT: Duration = Duration::from_secs(60);

fn a_session_stays_on_one_worker_and_keeps_its_state() {
    let scope = Scope::new("affinity");
    let pool = scope.builder().workers(3).build().unwrap();
    let session = pool.session("user-42");

    let mut workers = std::collections::BTreeSet::new();
    for expected in 1..=20 {
        let reply = session
            .execute_blocking_with("session_counter", json!({}), CallOptions::new())
            .unwrap();
        assert_eq!(reply.value, json!(expected), "the store keeps the counter");
        workers.insert(reply.worker);
    }
    assert_eq!(workers.len(), 1, "calls spread over {workers:?}");
    let who = session.execute_blocking("whoami", json!({})).unwrap();
    assert_eq!(who["session_id"], json!("user-42"));

    // Another session has its own store.
    assert_eq!(
        pool.session("user-7")
            .execute_blocking("session_counter", json!({}))
            .unwrap(),
        json!(1)
    );

    // Closing frees the store: the same id starts again from zero.
    session.close().unwrap();
    let again = pool.session("user-42");
    assert_eq!(
        again
            .execute_blocking("session_counter", json!({}))
            .unwrap(),
        json!(1)
    );

    scope.finish(&pool);
}

/// Holds the session's worker with a call that waits for `release`.
fn hold(
    session: &snakepit::Session,
    scope: &Scope,
) -> (
    thread::JoinHandle<Result<serde_json::Value, Error>>,
    std::path::PathBuf,
) {
    let started = scope.path("started");
    let release = scope.path("release");
    let s = session.clone();
    let args =
        json!({"record_path": started.to_str().unwrap(), "wait_path": release.to_str().unwrap()});
    let h = thread::spawn(move || s.execute_blocking("record_then_wait", args));
    assert!(wait_until(LIMIT, || started.exists()));
    (h, release)
}

fn each_affinity_mode_when_the_sessions_worker_is_busy() {
    let scope = Scope::new("busy");
    let pool = scope.builder().workers(2).build().unwrap();
    let session = pool.session("s");
    let home = session
        .execute_blocking_with("whoami", json!({}), CallOptions::new())
        .unwrap()
        .worker;
    let (holder, release) = hold(&session, &scope);

    // Hint: another worker takes it.
    let reply = session
        .execute_blocking_with(
            "ping",
            json!({}),
            CallOptions::new().affinity(Affinity::Hint),
        )
        .unwrap();
    assert_ne!(reply.worker, home);

    // StrictFailFast: refused at once.
    let err = session
        .execute_blocking_with(
            "ping",
            json!({}),
            CallOptions::new().affinity(Affinity::StrictFailFast),
        )
        .unwrap_err();
    assert_eq!(
        err,
        Error::WorkerBusy {
            session: "s".into(),
            worker: home.clone()
        }
    );

    // StrictQueue: waits for the session's worker.
    let waiting = {
        let s = session.clone();
        thread::spawn(move || {
            s.execute_blocking_with(
                "ping",
                json!({}),
                CallOptions::new().affinity(Affinity::StrictQueue),
            )
        })
    };
    assert!(
        wait_until(LIMIT, || pool.stats().queued == 1),
        "the strict call waits"
    );
    // The other worker is free, yet the strict call does not take it. (The
    // ping passes through the queue too, and the queue's count may lag its
    // reply by a dispatcher round: wait for it to settle.)
    common::assert_serves(&pool);
    assert!(
        wait_until(LIMIT, || pool.stats().queued == 1),
        "only the strict call waits: {:?}",
        pool.stats()
    );
    assert!(
        !waiting.is_finished(),
        "the strict call took another worker"
    );
    std::fs::write(&release, b"").unwrap();
    holder.join().unwrap().unwrap();
    assert_eq!(waiting.join().unwrap().unwrap().worker, home);

    scope.finish(&pool);
}

fn each_affinity_mode_when_the_sessions_worker_is_gone() {
    for affinity in [
        Affinity::Hint,
        Affinity::StrictQueue,
        Affinity::StrictFailFast,
    ] {
        let scope = Scope::new("gone");
        let pool = scope
            .builder()
            .workers(2)
            .affinity(affinity)
            .build()
            .unwrap();
        let session = pool.session("s");
        let home = session
            .execute_blocking_with("session_counter", json!({}), CallOptions::new())
            .unwrap();
        assert_eq!(home.value, json!(1));

        // The session's worker is replaced: its process, and the session's
        // state with it, are gone.
        pool.recycle_worker(&home.worker).unwrap();
        assert!(wait_until(LIMIT, || pool.stats().recycles.manual == 1));

        let outcome = session.execute_blocking("session_counter", json!({}));
        match affinity {
            Affinity::Hint => assert_eq!(outcome.unwrap(), json!(1), "moved; state starts afresh"),
            _ => assert_eq!(
                outcome.unwrap_err(),
                Error::SessionWorkerUnavailable {
                    session: "s".into(),
                    worker: home.worker.clone()
                },
                "{affinity:?}"
            ),
        }
        pool.shutdown();
        scope.assert_no_processes();
    }
}

fn an_idle_session_is_closed_and_its_state_freed() {
    let scope = Scope::new("ttl");
    let pool = scope
        .builder()
        .workers(1)
        .session_idle_timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    let session = pool.session("idle");
    assert_eq!(
        session
            .execute_blocking("session_counter", json!({}))
            .unwrap(),
        json!(1)
    );
    assert_eq!(
        session
            .execute_blocking("session_counter", json!({}))
            .unwrap(),
        json!(2)
    );
    // Past the idle timeout the worker has been told to drop the store.
    assert!(wait_until(LIMIT, || {
        thread::sleep(Duration::from_millis(300));
        // Each probe is itself a call, so it restarts the count when freed.
        session
            .execute_blocking("session_counter", json!({}))
            .unwrap()
            == json!(1)
    }));
    scope.finish(&pool);
}

both_transports!(
    a_session_stays_on_one_worker_and_keeps_its_state,
    each_affinity_mode_when_the_sessions_worker_is_busy,
    each_affinity_mode_when_the_sessions_worker_is_gone,
    an_idle_session_is_closed_and_its_state_freed,
);
