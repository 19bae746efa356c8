//! Tools that behave as a hostile or careless tool would: the caller gets
//! a typed answer, the pool keeps serving, and nothing a tool started
//! outlives the pool.

mod common;

use std::time::Duration;

use common::Scope;
use serde_json::json;
use snakepit::{CallOptions, Error, PoolBuilder, Profile, Transport};

const HOSTILE: &str = "snakepit_showcase.hostile.HostileAdapter";
const THREADED_HOSTILE: &str = "snakepit_showcase.hostile.ThreadedHostileAdapter";

/// `BaseException`s that are not `Exception`s.
const BASE_EXCEPTIONS: [&str; 5] = [
    "CancelledError",
    "KeyboardInterrupt",
    "GeneratorExit",
    "SystemExit",
    "CustomBaseError",
];

fn hostile(scope: &Scope, profile: Profile) -> PoolBuilder {
    let adapter = if profile == Profile::Process {
        HOSTILE
    } else {
        THREADED_HOSTILE
    };
    scope.builder().adapter(adapter).profile(profile).workers(1)
}

fn a_base_exception_is_a_python_error_and_the_worker_keeps_serving() {
    for profile in [Profile::Process, Profile::Thread { threads: 2 }] {
        let scope = Scope::new("baseexc");
        let pool = hostile(&scope, profile).build().unwrap();
        let pid = pool.stats().pids();
        // Without a reply the call would wait out this timeout.
        let options = CallOptions::new().timeout(Duration::from_secs(20));
        for kind in BASE_EXCEPTIONS {
            for tool in ["raise_base", "raise_base_async"] {
                let err = pool
                    .execute_blocking_with(
                        tool,
                        json!({"kind": kind, "message": "why"}),
                        options.clone(),
                    )
                    .unwrap_err();
                match &err {
                    Error::Python {
                        class,
                        message,
                        traceback,
                    } => {
                        assert_eq!(class, kind, "{profile:?}");
                        assert_eq!(message, "why");
                        assert!(traceback.contains(tool), "{traceback}");
                    }
                    other => panic!("{profile:?} {tool} {kind}: {other:?}"),
                }
            }
            let items: Vec<_> = pool
                .execute_stream(
                    "stream_then_raise_base",
                    json!({"n": 2, "kind": kind, "message": "mid-stream"}),
                )
                .unwrap()
                .collect();
            assert_eq!(items.len(), 3, "{items:?}");
            assert!(
                matches!(&items[2], Err(e) if e.is_python(kind)),
                "{profile:?} {kind}: {items:?}"
            );
        }
        common::assert_serves(&pool);
        assert_eq!(pool.stats().pids(), pid, "the worker was never replaced");
        assert_eq!(pool.stats().crashes, 0);
        scope.finish(&pool);
    }
}

/// `depth` arrays around `"core"`.
fn nested(depth: usize) -> serde_json::Value {
    (0..depth).fold(json!("core"), |inner, _| json!([inner]))
}

fn values_nest_100_deep_both_ways_and_deeper_is_a_typed_error() {
    let scope = Scope::new("nesting");
    let pool = hostile(&scope, Profile::Process).build().unwrap();

    // Within the limit: to the worker and back, and made by the worker.
    let echoed = pool
        .execute_blocking("echo", json!({"value": nested(100)}))
        .unwrap();
    assert_eq!(echoed, nested(100));
    let made = pool
        .execute_blocking("nested", json!({"depth": 100}))
        .unwrap();
    assert_eq!(made, nested(100));

    // One level deeper: refused by the side that sends, naming the limit.
    match pool
        .execute_blocking("echo", json!({"value": nested(101)}))
        .unwrap_err()
    {
        Error::InvalidArguments {
            argument, message, ..
        } => {
            assert_eq!(argument.as_deref(), Some("value"));
            assert!(message.contains("100 levels"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    match pool
        .execute_blocking("nested", json!({"depth": 101}))
        .unwrap_err()
    {
        Error::Python { class, message, .. } => {
            assert_eq!(class, "ValueError");
            assert!(message.contains("100 levels"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    common::assert_serves(&pool);
    scope.finish(&pool);
}

/// Waits (bounded) for `pid` to be gone.
fn gone(pid: u32) -> bool {
    common::wait_until(Duration::from_secs(10), || !common::is_alive(pid))
}

fn a_tools_daemon_in_a_new_session_ends_at_recycle_and_at_shutdown() {
    let scope = Scope::new("daemon");
    let pool = hostile(&scope, Profile::Process).build().unwrap();
    let daemon = |pool: &snakepit::Pool| -> u32 {
        let pid = pool
            .execute_blocking("spawn_daemon", json!({"seconds": 600}))
            .unwrap();
        let pid = pid.as_u64().unwrap() as u32;
        assert!(common::is_alive(pid));
        pid
    };

    let first = daemon(&pool);
    let old = pool.stats().pids();
    pool.recycle_worker("worker-0").unwrap();
    assert!(
        common::wait_until(Duration::from_secs(30), || {
            let now = pool.stats().pids();
            !now.is_empty() && now != old && !old.iter().any(|&p| common::is_alive(p))
        }),
        "the worker was not replaced"
    );
    assert!(gone(first), "a daemon outlived its recycled worker");
    common::assert_serves(&pool);

    let second = daemon(&pool);
    pool.shutdown();
    assert!(gone(second), "a daemon outlived the pool");
    scope.assert_no_processes();
}

/// A worker that writes what is not a frame where its reply belongs (bytes
/// that are not a frame, a frame past any limit, a frame cut short): the
/// call fails with a typed `BAD_PEER` error at once, not at its timeout,
/// and the worker is replaced, in both profiles.
#[test]
fn a_worker_that_garbles_its_reply_is_a_bad_peer_and_is_replaced() {
    for profile in [Profile::Process, Profile::Thread { threads: 2 }] {
        for how in ["garbage", "oversized", "truncated"] {
            let scope = Scope::new("badpeer");
            let pool = hostile(&scope, profile)
                .transport(Transport::Socket)
                .build()
                .unwrap();
            let before = pool.stats().pids();
            // Were the garbled reply waited on, this timeout would end it.
            let options = CallOptions::new().timeout(Duration::from_secs(60));
            let err = pool
                .execute_blocking_with("garble_reply", json!({"how": how}), options)
                .unwrap_err();
            match &err {
                Error::Transport { code, .. } => assert_eq!(code, "BAD_PEER", "{how}: {err}"),
                other => panic!("{profile:?} {how}: expected BAD_PEER, got {other:?}"),
            }
            // The next call waits for the replacement and succeeds.
            assert_eq!(pool.execute_blocking("ping", json!({})).unwrap(), "pong");
            let after = pool.stats().pids();
            assert_ne!(
                before, after,
                "{profile:?} {how}: the worker was not replaced"
            );
            assert!(common::wait_until(Duration::from_secs(10), || before
                .iter()
                .all(|&pid| !common::is_alive(pid))));
            pool.shutdown();
            scope.assert_no_processes();
        }
    }
}

both_transports!(
    a_base_exception_is_a_python_error_and_the_worker_keeps_serving,
    values_nest_100_deep_both_ways_and_deeper_is_a_typed_error,
    a_tools_daemon_in_a_new_session_ends_at_recycle_and_at_shutdown,
);
