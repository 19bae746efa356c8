//! What an adapter prints or logs reaches the host's `log` output, line by
//! line and tagged with its worker, without disturbing the calls.
//!
//! Its own test binary: it installs a capturing logger for the process.

mod common;

use std::sync::{Mutex, Once};
use std::time::Duration;

use common::{wait_until, Scope};
use serde_json::json;

static LINES: Mutex<Vec<(String, String)>> = Mutex::new(Vec::new());

struct Capture;

impl log::Log for Capture {
    fn enabled(&self, _: &log::Metadata) -> bool {
        true
    }
    fn log(&self, record: &log::Record) {
        LINES
            .lock()
            .unwrap()
            .push((record.target().to_owned(), record.args().to_string()));
    }
    fn flush(&self) {}
}

fn seen(needle: &str) -> bool {
    LINES
        .lock()
        .unwrap()
        .iter()
        .any(|(target, line)| target == "snakepit::worker" && line.contains(needle))
}

fn printed_and_logged_lines_reach_the_host_log_tagged_with_the_worker() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        log::set_logger(&Capture).unwrap();
        log::set_max_level(log::LevelFilter::Trace);
    });
    let scope = Scope::new("logs");
    let pool = scope.builder().workers(1).build().unwrap();
    // Each transport's variant says something of its own: the log is shared.
    let message = format!("hello from python over {:?}", scope.transport);

    assert_eq!(
        pool.execute_blocking("say", json!({ "message": message }))
            .unwrap(),
        json!(true)
    );
    assert!(wait_until(Duration::from_secs(30), || seen(&format!(
        "[worker-0] printed: {message}"
    ))));
    assert!(wait_until(Duration::from_secs(30), || seen(&format!(
        "logged: {message}"
    ))));
    let line = LINES
        .lock()
        .unwrap()
        .iter()
        .find(|(_, l)| l.contains(&format!("logged: {message}")))
        .cloned()
        .unwrap();
    assert!(line.1.starts_with("[worker-0]"), "{line:?}");
    // The protocol is untouched: calls go on.
    assert_eq!(
        pool.execute_blocking("add", json!({"a": 2, "b": 2}))
            .unwrap(),
        json!(4)
    );
    scope.finish(&pool);
}

both_transports!(printed_and_logged_lines_reach_the_host_log_tagged_with_the_worker);
