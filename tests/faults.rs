//! The fault-injection suite: real Python workers SIGKILLed in a storm,
//! frozen and thawed, cutting their connection mid-reply, flooding their
//! output with garbage, recycled and shut down under streams. Each test
//! runs one scenario of `fault_kit` (shared with `bench -- faults`, which
//! reports the figures), asserts the scenario's promise and that the host
//! gained no descriptors or threads and little memory, and that no process
//! is left behind. Every scenario runs under a hard deadline.
//!
//! The tests run one at a time (a lock): the host's descriptor and thread
//! counts are read around each scenario and must be its own, and the crash
//! storm SIGKILLs any child process of this test binary. Every scenario runs
//! on both transports (`grpc::` and `socket::`).

mod common;
mod fault_kit;

use std::sync::{Mutex, MutexGuard, Once, OnceLock};

use common::Scope;
use fault_kit::{Scale, Tally};
use snakepit::Transport;

/// Growth of the host's resident memory one scenario may leave: allocator
/// arenas of the caller threads and gRPC's buffers, which a second run
/// reuses (under 2 MiB measured). A worker's output kept by the host would
/// pass it: `garbage_output` writes three times as much.
const RSS_BOUND: i64 = 8 << 20;

/// Runs `name` alone, with the variant's transport warmed up (gRPC's
/// process-wide threads and allocations), in a fresh scope; checks what
/// every scenario promises, and returns its tally for the test's own checks.
fn run(name: &'static str) -> Tally {
    static SERIAL: Mutex<()> = Mutex::new(());
    static WARM: [Once; 2] = [Once::new(), Once::new()];
    let _serial: MutexGuard<'_, ()> = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let scope = Scope::new(name);
    // gRPC stays initialized for the whole binary: otherwise it shuts down
    // (asynchronously) with each last pool and starts again with the next,
    // and its process-wide descriptors and threads would come and go with
    // the scenarios.
    static GRPC: OnceLock<grpcio::Environment> = OnceLock::new();
    GRPC.get_or_init(|| {
        grpcio::EnvBuilder::new()
            .cq_count(1)
            .name_prefix("test-held-grpc")
            .build()
    });
    let warm = match scope.transport {
        Transport::Socket => &WARM[1],
        _ => &WARM[0],
    };
    warm.call_once(|| fault_kit::warm_up(scope.builder()).expect("warm-up"));

    let tally =
        fault_kit::run(name, scope.builder(), Scale::SMALL).unwrap_or_else(|e| panic!("{e}"));
    eprintln!("{tally:#?}");
    assert!(
        tally.broken == 0,
        "{name} broke its promise {} times, first: {:#?}",
        tally.broken,
        tally.unexpected
    );
    assert!(tally.attempted > 0 && tally.succeeded > 0, "{tally:?}");
    // (A pool shut down has no size to return to.)
    assert!(
        tally.back_to_full.is_some() || name == "shutdown_while_streaming",
        "{name}: the pool did not return to full size"
    );
    let growth = tally.growth;
    assert!(
        growth.fds <= 0 && growth.threads <= 0,
        "{name}: the host kept descriptors or threads: {growth:?}; threads now: {:?}",
        fault_kit::thread_names()
    );
    assert!(
        growth.rss_bytes <= RSS_BOUND,
        "{name}: the host's memory grew by {} MiB",
        growth.rss_bytes >> 20
    );
    scope.assert_no_processes();
    tally
}

fn a_crash_storm_fails_only_plain_calls_and_only_as_crashes() {
    let tally = run("crash_storm");
    assert!(tally.extra["kills"] > 0 && tally.extra["crashes_counted"] > 0);
    // Both kinds of call ran through the storm; the only failures allowed
    // (plain calls, as `worker_crashed`) were checked by the kit.
    assert!(tally.extra["idempotent_calls"] > 0 && tally.extra["plain_calls"] > 0);
    assert!(
        tally.failed.keys().all(|k| k == "worker_crashed"),
        "{tally:?}"
    );
}

fn a_frozen_worker_is_a_hang_not_a_crash() {
    let tally = run("stop_and_continue");
    assert_eq!(tally.failures(), 0, "{tally:?}");
}

fn a_connection_cut_mid_reply_fails_that_call_only() {
    let tally = run("cut_connection");
    // The cut calls failed (transport or crash, checked by the kit); every
    // call after them succeeded.
    assert_eq!(tally.failures(), tally.extra["cuts"], "{tally:?}");
}

fn garbage_on_a_worker_output_costs_the_host_nothing() {
    let tally = run("garbage_output");
    assert_eq!(tally.failures(), 0, "{tally:?}");
    assert!(
        tally.extra["garbage_bytes"] >= u64::from(Scale::SMALL.rounds * Scale::SMALL.spew_mb) << 20
    );
}

fn recycling_while_streaming_loses_no_chunk() {
    let tally = run("recycle_while_streaming");
    assert_eq!(tally.failures(), 0, "{tally:?}");
    assert!(tally.extra["recycles"] > 0);
}

fn shutdown_while_streaming_finishes_short_streams_and_ends_long_ones() {
    let tally = run("shutdown_while_streaming");
    let long_streams = 2 * u64::from(Scale::SMALL.rounds);
    assert_eq!(
        tally.failed.get("shutting_down"),
        Some(&long_streams),
        "{tally:?}"
    );
    assert_eq!(tally.failures(), long_streams, "{tally:?}");
}

both_transports!(
    a_crash_storm_fails_only_plain_calls_and_only_as_crashes,
    a_frozen_worker_is_a_hang_not_a_crash,
    a_connection_cut_mid_reply_fails_that_call_only,
    garbage_on_a_worker_output_costs_the_host_nothing,
    recycling_while_streaming_loses_no_chunk,
    shutdown_while_streaming_finishes_short_streams_and_ends_long_ones,
);
