//! Telemetry from the tools reaches the host: in order per worker, with
//! the call's correlation id, through the event hook; switched and sampled
//! by the host; and a tool that floods it neither waits nor makes the host
//! hold more than a bounded buffer. Every test runs on both transports
//! (`grpc::` and `socket::`).

mod common;

use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use common::{wait_until, Scope};
use serde_json::json;
use snakepit::events::HandleEvent;
use snakepit::telemetry::{Measurement, TelemetryEvent};
use snakepit::{CallOptions, Error};

/// Keeps every event, or only counts them; can hold the pump back.
#[derive(Debug, Default)]
struct Recorder {
    keep: bool,
    events: Mutex<Vec<TelemetryEvent>>,
    /// While false, the handler waits (a host that reads slowly).
    open: Arc<(Mutex<bool>, Condvar)>,
}

impl Recorder {
    fn keeping() -> Arc<Recorder> {
        let r = Recorder {
            keep: true,
            ..Default::default()
        };
        *r.open.0.lock().unwrap() = true;
        Arc::new(r)
    }

    fn named(&self, name: &str) -> Vec<TelemetryEvent> {
        self.events
            .lock()
            .unwrap()
            .iter()
            .filter(|e| e.name == name)
            .cloned()
            .collect()
    }

    fn open(&self) {
        *self.open.0.lock().unwrap() = true;
        self.open.1.notify_all();
    }
}

#[derive(Debug)]
struct Hook(Arc<Recorder>);

impl HandleEvent for Hook {
    fn telemetry(&self, event: &TelemetryEvent) {
        let (open, bell) = &*self.0.open;
        let _open = bell
            .wait_while(open.lock().unwrap(), |open| !*open)
            .unwrap();
        if self.0.keep {
            self.0.events.lock().unwrap().push(event.clone());
        }
    }
}

fn events_emitted_in_a_tool_arrive_in_order_with_their_correlation_id() {
    let scope = Scope::new("telemetry-order");
    let recorder = Recorder::keeping();
    let pool = scope
        .builder()
        .workers(1)
        .event_handler(Hook(recorder.clone()))
        .build()
        .unwrap();

    let reply = pool
        .execute_blocking_with(
            "emit_events",
            json!({"n": 500, "name": "order.tick"}),
            CallOptions::new().correlation_id("tele-1"),
        )
        .unwrap();
    assert_eq!(reply.value, json!(500));
    assert!(wait_until(Duration::from_secs(60), || recorder
        .named("order.tick")
        .len()
        == 500));
    let events = recorder.named("order.tick");
    for (i, e) in events.iter().enumerate() {
        assert_eq!(
            e.measurements["i"],
            Measurement::Int(i as i64),
            "out of order"
        );
        assert_eq!(e.correlation_id.as_deref(), Some("tele-1"));
        assert_eq!(e.worker, "worker-0");
        assert_eq!(e.metadata["source"], "emit_events");
    }

    // A recycled worker's new process streams its events too.
    let pid = pool.stats().per_worker[0].pid;
    pool.recycle_worker("worker-0").unwrap();
    assert!(wait_until(Duration::from_secs(60), || {
        let w = &pool.stats().per_worker[0];
        w.pid.is_some() && w.pid != pid
    }));
    pool.execute_blocking("emit_events", json!({"n": 3, "name": "after.recycle"}))
        .unwrap();
    assert!(wait_until(Duration::from_secs(60), || recorder
        .named("after.recycle")
        .len()
        == 3));
    scope.finish(&pool);
}

fn the_host_switches_telemetry_off_and_on_and_sets_the_sampling_rate() {
    let scope = Scope::new("telemetry-controls");
    let recorder = Recorder::keeping();
    let pool = scope
        .builder()
        .workers(1)
        .telemetry_sampling_rate(0.5)
        .event_handler(Hook(recorder.clone()))
        .build()
        .unwrap();
    let settings = |enabled: bool, rate: f64| {
        let pool = pool.clone();
        move || {
            pool.execute_blocking("telemetry_settings", json!({}))
                .unwrap()
                == json!({"enabled": enabled, "sampling_rate": rate})
        }
    };
    // The builder's settings reach a new worker.
    assert!(wait_until(Duration::from_secs(30), settings(true, 0.5)));

    pool.set_telemetry(false, 1.0).unwrap();
    assert!(wait_until(Duration::from_secs(30), settings(false, 1.0)));
    pool.execute_blocking("emit_events", json!({"n": 20, "name": "while.off"}))
        .unwrap();
    pool.set_telemetry(true, 1.0).unwrap();
    assert!(wait_until(Duration::from_secs(30), settings(true, 1.0)));
    pool.execute_blocking("emit_events", json!({"n": 20, "name": "while.on"}))
        .unwrap();
    assert!(wait_until(Duration::from_secs(60), || recorder
        .named("while.on")
        .len()
        == 20));
    // In order per worker: any event recorded while off would be here by now.
    assert!(recorder.named("while.off").is_empty());

    let err = pool.set_telemetry(true, 1.5).unwrap_err();
    assert!(matches!(
        err,
        Error::InvalidArgument {
            argument: "sampling_rate",
            ..
        }
    ));
    scope.finish(&pool);
}

/// The host's resident memory, in bytes.
fn resident_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

fn a_tool_flooding_telemetry_completes_while_the_host_reads_nothing_and_drops_are_counted() {
    let scope = Scope::new("telemetry-flood");
    // Not reading at all until the tool is done: only the worker's bounded
    // buffer may hold the events.
    let recorder = Arc::new(Recorder::default());
    let pool = scope
        .builder()
        .workers(1)
        .event_handler(Hook(recorder.clone()))
        .build()
        .unwrap();
    // Something emitted, so the pump is inside the (held) handler.
    pool.execute_blocking("emit_events", json!({"n": 1, "name": "first"}))
        .unwrap();
    assert!(wait_until(Duration::from_secs(30), || pool
        .execute_blocking("add", json!({"a": 1, "b": 1}))
        .is_ok()));
    let before = resident_bytes();

    const N: u64 = 100_000;
    let reply = pool
        .execute_blocking_with(
            "emit_events",
            json!({"n": N, "name": "flood"}),
            CallOptions::new().timeout(Duration::from_secs(300)),
        )
        .unwrap();
    assert_eq!(reply.value, json!(N));
    let grown = resident_bytes().saturating_sub(before);
    recorder.open();

    // Every event is delivered or counted as dropped; most were dropped,
    // since the host read none while the tool ran.
    assert!(wait_until(Duration::from_secs(120), || {
        let s = pool.stats();
        s.telemetry_events + s.telemetry_dropped == N + 1
    }));
    let stats = pool.stats();
    assert!(stats.telemetry_dropped > 0, "{stats:?}");
    // 100,000 events kept on the host would be tens of megabytes.
    assert!(grown < 16 << 20, "the host grew by {grown} bytes");
    scope.finish(&pool);
}

fn thread_profile_workers_stream_their_tools_events_too() {
    let scope = Scope::new("telemetry-threads");
    let recorder = Recorder::keeping();
    let pool = scope
        .threaded_builder(2)
        .workers(1)
        .event_handler(Hook(recorder.clone()))
        .build()
        .unwrap();
    let calls: Vec<_> = (0..2)
        .map(|k| {
            let pool = pool.clone();
            std::thread::spawn(move || {
                pool.execute_blocking_with(
                    "emit_events",
                    json!({"n": 50, "name": "threads.tick"}),
                    CallOptions::new().correlation_id(format!("call-{k}")),
                )
                .unwrap()
            })
        })
        .collect();
    for call in calls {
        assert_eq!(call.join().unwrap().value, json!(50));
    }
    assert!(wait_until(Duration::from_secs(60), || recorder
        .named("threads.tick")
        .len()
        == 100));
    // Each call's events in its own order, tagged with its own id.
    for k in 0..2 {
        let id = format!("call-{k}");
        let mine: Vec<_> = recorder
            .named("threads.tick")
            .into_iter()
            .filter(|e| e.correlation_id.as_deref() == Some(id.as_str()))
            .map(|e| e.measurements["i"].clone())
            .collect();
        let expected: Vec<_> = (0..50).map(Measurement::Int).collect();
        assert_eq!(mine, expected);
    }
    scope.finish(&pool);
}

both_transports!(
    events_emitted_in_a_tool_arrive_in_order_with_their_correlation_id,
    the_host_switches_telemetry_off_and_on_and_sets_the_sampling_rate,
    a_tool_flooding_telemetry_completes_while_the_host_reads_nothing_and_drops_are_counted,
    thread_profile_workers_stream_their_tools_events_too,
);
