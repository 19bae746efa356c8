//! Correlation ids end to end: a call's id reaches the tool and its log
//! lines, and comes back in the reply; a call given none gets a fresh one.
//!
//! Its own test binary: it installs a capturing logger for the process.

mod common;

use std::collections::HashSet;
use std::sync::{Mutex, Once};
use std::time::Duration;

use common::{wait_until, Scope};
use serde_json::json;
use snakepit::{CallOptions, Error};

static LINES: Mutex<Vec<String>> = Mutex::new(Vec::new());

struct Capture;

impl log::Log for Capture {
    fn enabled(&self, _: &log::Metadata) -> bool {
        true
    }
    fn log(&self, record: &log::Record) {
        LINES.lock().unwrap().push(record.args().to_string());
    }
    fn flush(&self) {}
}

/// Installs the capturing logger, once, before any test of this binary
/// starts a pool (whose scope would otherwise install `env_logger` first:
/// the tests run in parallel).
fn capture_logs() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        log::set_logger(&Capture).expect("no logger is installed before this one");
        log::set_max_level(log::LevelFilter::Trace);
    });
}

fn logged(a: &str, b: &str) -> bool {
    LINES
        .lock()
        .unwrap()
        .iter()
        .any(|line| line.contains(a) && line.contains(b))
}

#[test]
fn a_given_id_reaches_the_tool_and_its_log_and_an_absent_one_is_generated_per_call() {
    capture_logs();
    let scope = Scope::new("correlation");
    let pool = scope.builder().workers(2).build().unwrap();

    // Given: seen by the tool, on its log line, and in the reply.
    let reply = pool
        .execute_blocking_with(
            "correlation",
            json!({"message": "with an id"}),
            CallOptions::new().correlation_id("order-1234"),
        )
        .unwrap();
    assert_eq!(reply.value, json!("order-1234"));
    assert_eq!(reply.correlation_id, "order-1234");
    assert!(wait_until(Duration::from_secs(30), || logged(
        "correlated: with an id",
        "[correlation_id=order-1234]"
    )));

    // Absent: each call gets its own, which the tool sees.
    let mut seen = HashSet::new();
    for _ in 0..10 {
        let reply = pool
            .execute_blocking_with("correlation", json!({"message": "x"}), CallOptions::new())
            .unwrap();
        assert!(!reply.correlation_id.is_empty());
        assert_eq!(reply.value, json!(reply.correlation_id));
        assert!(seen.insert(reply.correlation_id));
    }

    // An id that cannot travel as a header is refused, clearly.
    let err = pool
        .execute_blocking_with(
            "correlation",
            json!({"message": "bad"}),
            CallOptions::new().correlation_id("line\nbreak"),
        )
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::InvalidArgument {
                argument: "correlation_id",
                ..
            }
        ),
        "{err:?}"
    );
    // The pool is fine after the refusal.
    assert_eq!(
        pool.execute_blocking("add", json!({"a": 1, "b": 2}))
            .unwrap(),
        json!(3)
    );
    scope.finish(&pool);
}

#[test]
fn the_socket_transport_carries_the_correlation_id_too() {
    capture_logs();
    let scope = Scope::new("correlation-socket");
    let pool = scope
        .builder()
        .workers(1)
        .transport(snakepit::Transport::Socket)
        .build()
        .unwrap();
    let reply = pool
        .execute_blocking_with(
            "correlation",
            json!({"message": "over the socket"}),
            CallOptions::new().correlation_id("sock-1"),
        )
        .unwrap();
    assert_eq!(reply.value, json!("sock-1"));
    assert_eq!(reply.correlation_id, "sock-1");
    scope.finish(&pool);
}
