//! Calls that reach Python and come back: values, Python errors, unknown
//! tools and bad arguments, on a real process pool.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::Scope;
use serde_json::json;
use snakepit::events::{CallFinished, HandleEvent};
use snakepit::{CallOptions, Error, ErrorKind};

/// A finished call's tool and outcome.
type Finished = (String, Result<(), ErrorKind>);

/// Keeps every finished call.
#[derive(Debug, Clone, Default)]
struct Outcomes(Arc<Mutex<Vec<Finished>>>);

impl Outcomes {
    fn last(&self) -> Option<Finished> {
        self.0.lock().unwrap().last().cloned()
    }
}

impl HandleEvent for Outcomes {
    fn call_finished(&self, event: &CallFinished) {
        let outcome = (event.tool.clone(), event.outcome);
        self.0.lock().unwrap().push(outcome);
    }
}

fn json_values_round_trip_intact() {
    let scope = Scope::new("roundtrip");
    let pool = scope.builder().workers(1).build().unwrap();

    let value = json!({
        "nested": {"list": [1, [2, [3, {"deep": true}]]], "empty": {}, "none": []},
        "unicode": "héllo ✓ 🐍 \u{0000} \"quoted\" \\ back",
        "null": null,
        "bools": [true, false],
        "floats": [0.1, -2.5, 1e-300, 1.7976931348623157e308],
        "ints": [0, -1, 9007199254740993_i64, i64::MAX, i64::MIN],
        "big_unsigned": u64::MAX,
    });
    let echoed = pool
        .execute_blocking("echo", json!({ "value": value }))
        .unwrap();
    assert_eq!(echoed, value);
    // Integers stay integers: no float ever replaces them.
    assert!(echoed["ints"][2].is_i64());
    assert_eq!(echoed["ints"][3].as_i64(), Some(i64::MAX));
    assert_eq!(echoed["big_unsigned"].as_u64(), Some(u64::MAX));

    assert_eq!(
        pool.execute_blocking("add", json!({"a": 2, "b": 40}))
            .unwrap(),
        json!(42)
    );
    assert!(pool
        .execute_blocking("add", json!({"a": 2, "b": 40}))
        .unwrap()
        .is_i64());
    assert_eq!(
        pool.execute_blocking("add", json!({"a": 0.5, "b": 0.25}))
            .unwrap(),
        json!(0.75)
    );
    assert_eq!(
        pool.execute_blocking("ping", json!(null)).unwrap(),
        json!("pong")
    );

    scope.finish(&pool);
}

fn a_python_exception_is_typed_and_the_pool_keeps_serving() {
    let scope = Scope::new("pyerr");
    let outcomes = Outcomes::default();
    let pool = scope
        .builder()
        .workers(1)
        .event_handler(outcomes.clone())
        .build()
        .unwrap();

    let err = pool
        .execute_blocking(
            "raise_error",
            json!({"kind": "ValueError", "message": "bad input 42"}),
        )
        .unwrap_err();
    match &err {
        Error::Python {
            class,
            message,
            traceback,
        } => {
            assert_eq!(class, "ValueError");
            assert_eq!(message, "bad input 42");
            assert!(traceback.contains("Traceback"), "traceback: {traceback}");
            assert!(traceback.contains("raise_error"), "traceback: {traceback}");
        }
        other => panic!("expected a Python error, got {other:?}"),
    }
    assert!(err.is_python("ValueError"));
    assert!(!err.is_python("KeyError"));
    assert_eq!(err.kind(), ErrorKind::Python);
    // The event hook sees the same kind, by the time the caller has the error.
    assert_eq!(
        outcomes.last(),
        Some(("raise_error".to_owned(), Err(ErrorKind::Python)))
    );

    let err = pool
        .execute_blocking(
            "raise_error",
            json!({"kind": "ZeroDivisionError", "message": "x"}),
        )
        .unwrap_err();
    assert!(err.is_python("ZeroDivisionError"), "{err:?}");

    // The same worker process answers afterwards.
    let pid_before = pool.execute_blocking("pid", json!({})).unwrap();
    assert_eq!(
        pool.execute_blocking("add", json!({"a": 1, "b": 1}))
            .unwrap(),
        json!(2)
    );
    assert_eq!(pool.execute_blocking("pid", json!({})).unwrap(), pid_before);
    assert_eq!(pool.stats().crashes, 0);
    assert_eq!(outcomes.last(), Some(("pid".to_owned(), Ok(()))));

    scope.finish(&pool);
}

fn an_unknown_tool_names_the_tools_that_exist() {
    let scope = Scope::new("notool");
    let pool = scope.builder().workers(1).build().unwrap();

    match pool
        .execute_blocking("no_such_tool", json!({}))
        .unwrap_err()
    {
        Error::ToolNotFound { tool, available } => {
            assert_eq!(tool, "no_such_tool");
            for t in ["add", "echo", "ping", "sleep"] {
                assert!(
                    available.iter().any(|a| a == t),
                    "{t} missing from {available:?}"
                );
            }
        }
        other => panic!("expected ToolNotFound, got {other:?}"),
    }
    common::assert_serves(&pool);

    scope.finish(&pool);
}

fn bad_arguments_are_refused_before_the_tool_runs() {
    let scope = Scope::new("badargs");
    let pool = scope.builder().workers(1).build().unwrap();

    // Not an object: refused in the host, nothing is sent.
    let err = pool.execute_blocking("add", json!([1, 2])).unwrap_err();
    assert!(
        matches!(err, Error::InvalidArguments { ref tool, .. } if tool == "add"),
        "{err:?}"
    );

    // A missing argument: refused by the worker with the signature.
    match pool.execute_blocking("add", json!({"a": 1})).unwrap_err() {
        Error::InvalidArguments {
            tool,
            argument,
            signature,
            ..
        } => {
            assert_eq!(tool, "add");
            assert_eq!(argument.as_deref(), Some("b"));
            assert!(signature.unwrap_or_default().contains("add("));
        }
        other => panic!("expected InvalidArguments, got {other:?}"),
    }
    // A record written by the tool would prove it ran; it must not.
    let marker = scope.path("ran");
    let err = pool
        .execute_blocking(
            "record",
            json!({"path": marker.to_str().unwrap(), "unexpected": 1}),
        )
        .unwrap_err();
    assert!(matches!(err, Error::InvalidArguments { .. }), "{err:?}");
    assert!(!marker.exists(), "the tool ran despite bad arguments");

    // A zero call timeout is a bad argument to the method, not to the tool.
    let err = pool
        .execute_blocking_with(
            "record",
            json!({"path": marker.to_str().unwrap()}),
            CallOptions::new().timeout(Duration::ZERO),
        )
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::InvalidArgument {
                argument: "timeout",
                ..
            }
        ),
        "{err:?}"
    );
    assert!(!marker.exists(), "the tool ran with a zero timeout");

    assert_eq!(
        pool.execute_blocking("add", json!({"a": 1, "b": 2}))
            .unwrap(),
        json!(3)
    );
    scope.finish(&pool);
}

fn bytes_travel_raw_both_ways() {
    let scope = Scope::new("bytes");
    let pool = scope.builder().workers(1).build().unwrap();

    let payload: Vec<u8> = (0..=255u8).cycle().take(300_000).collect();
    let reply = pool
        .execute_blocking_with(
            "binary_echo",
            json!({}),
            CallOptions::new().binary("data", payload.clone()),
        )
        .unwrap();
    assert_eq!(reply.binary.as_deref(), Some(&payload[..]));
    assert_eq!(reply.value, json!(null));
    assert_eq!(reply.worker, "worker-0");

    scope.finish(&pool);
}

both_transports!(
    json_values_round_trip_intact,
    a_python_exception_is_typed_and_the_pool_keeps_serving,
    an_unknown_tool_names_the_tools_that_exist,
    bad_arguments_are_refused_before_the_tool_runs,
    bytes_travel_raw_both_ways,
);
