//! The dispatcher and the worker lifecycle against fakes of both seams
//! (see `fakes`): placement, queueing, crashes, recycling, health,
//! start-up failure and shutdown, with no Python and no sockets. Each test
//! waits on events (a launch, an exit, a call starting), never on time.

use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use serde_json::{json, Value};

use crate::call::CallOptions;
use crate::error::Error;
use crate::events::{ExitReason, RecycleReason};
use crate::fakes::{self, Exits, FakeProcess, StartFault};
use crate::options::{Config, Profile};
use crate::pool::{Pool, Resources, Seams, WaitFor};
use crate::transport::TransportError;

/// How long any one expected event may take before the test fails.
const PATIENCE: Duration = Duration::from_secs(10);

fn config(workers: usize) -> Config {
    Config {
        adapter: "fake.Adapter".into(),
        workers,
        restart_backoff: (Duration::from_millis(1), Duration::from_millis(20)),
        health_check_interval: None,
        shutdown_grace: Duration::from_secs(5),
        ..Config::default()
    }
}

/// A pool on the fakes, and what a test watches it through.
struct Fixture {
    pool: Pool,
    launched: Receiver<Arc<FakeProcess>>,
    exits: Receiver<ExitReason>,
    /// Every process launched so far that the test has seen.
    seen: Vec<Arc<FakeProcess>>,
}

fn start(
    mut config: Config,
    plan: impl Fn(usize) -> Result<(), StartFault> + Send + Sync + 'static,
    rss: Option<u64>,
    answer: impl Fn(&str, &FakeProcess) -> Result<Value, TransportError> + Send + Sync + 'static,
) -> Result<Fixture, (Error, Vec<Arc<FakeProcess>>)> {
    let (launcher, connector, launched) = fakes::seams(plan, rss, answer);
    let (exits_tx, exits) = crossbeam_channel::unbounded();
    config.events = Arc::new(Exits(exits_tx));
    let seams = Seams {
        launcher: Arc::new(launcher),
        connector: Arc::new(connector),
    };
    match Pool::start_with(config, seams, Resources::default(), WaitFor::All) {
        Ok(pool) => {
            let seen = launched.try_iter().collect();
            Ok(Fixture {
                pool,
                launched,
                exits,
                seen,
            })
        }
        Err(e) => Err((e, launched.try_iter().collect())),
    }
}

/// A pool whose workers all start, answering with `answer`.
fn pool(
    config: Config,
    answer: impl Fn(&str, &FakeProcess) -> Result<Value, TransportError> + Send + Sync + 'static,
) -> Fixture {
    start(config, |_| Ok(()), None, answer)
        .map_err(|(e, _)| e)
        .expect("the fake pool starts")
}

impl Fixture {
    fn next_launch(&mut self) -> Arc<FakeProcess> {
        let p = self.launched.recv_timeout(PATIENCE).expect("a launch");
        self.seen.push(p.clone());
        p
    }

    fn next_exit(&self) -> ExitReason {
        self.exits.recv_timeout(PATIENCE).expect("a process exit")
    }

    /// Shuts the pool down: no load is left and no process runs.
    fn finish(mut self) {
        self.pool.shutdown();
        self.seen.extend(self.launched.try_iter());
        let stats = self.pool.stats();
        assert_eq!(stats.load, 0, "{stats:?}");
        assert_eq!(stats.queued, 0, "{stats:?}");
        for p in &self.seen {
            assert!(p.exit_status().is_some(), "process {} still runs", p.launch);
        }
    }
}

use crate::launcher::Process as _;

/// Calls that block until the test lets them go, telling it when each one
/// has started.
#[derive(Clone)]
struct Gate {
    started: (Sender<usize>, Receiver<usize>),
    release: (Sender<()>, Receiver<()>),
}

impl Gate {
    fn new() -> Self {
        Gate {
            started: crossbeam_channel::unbounded(),
            release: crossbeam_channel::unbounded(),
        }
    }

    /// Inside a call: says so, then waits to be let go.
    fn hold(&self, p: &FakeProcess) {
        self.started.0.send(p.slot).unwrap();
        self.release.1.recv_timeout(PATIENCE).expect("released");
    }

    /// Waits until a held call has started; returns its worker's slot.
    fn wait_started(&self) -> usize {
        self.started
            .1
            .recv_timeout(PATIENCE)
            .expect("a call started")
    }

    fn let_go(&self) {
        self.release.0.send(()).unwrap();
    }
}

/// Which launch answered: 1 for the first process.
fn launch_number(_tool: &str, p: &FakeProcess) -> Result<Value, TransportError> {
    Ok(json!(p.launch))
}

/// Spins (yielding, never sleeping) until `done`, for states that have no
/// event of their own (a call sitting in the queue).
fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !done() {
        assert!(Instant::now() < deadline, "never: {what}");
        thread::yield_now();
    }
}

fn call_in_thread(pool: &Pool, tool: &str) -> thread::JoinHandle<Result<Value, Error>> {
    let pool = pool.clone();
    let tool = tool.to_owned();
    thread::spawn(move || pool.execute_blocking(&tool, json!({})))
}

#[test]
fn calls_wait_in_order_and_are_refused_once_the_queue_is_full() {
    let gate = Gate::new();
    let g = gate.clone();
    let f = pool(
        Config {
            queue_size: 1,
            ..config(1)
        },
        move |tool, p| {
            if tool == "block" {
                g.hold(p);
            }
            Ok(json!(tool))
        },
    );
    let running = call_in_thread(&f.pool, "block");
    gate.wait_started();
    let queued = call_in_thread(&f.pool, "quick");
    eventually("the second call waits", || f.pool.stats().queued == 1);

    let refused = f.pool.execute_blocking("quick", json!({}));
    assert!(
        matches!(refused, Err(Error::PoolSaturated { queue_size: 1 })),
        "{refused:?}"
    );
    gate.let_go();
    assert_eq!(running.join().unwrap().unwrap(), json!("block"));
    assert_eq!(queued.join().unwrap().unwrap(), json!("quick"));
    let stats = f.pool.stats();
    assert_eq!((stats.succeeded, stats.failed, stats.saturated), (2, 1, 1));
    f.finish();
}

#[test]
fn calls_run_at_once_on_different_free_workers() {
    let gate = Gate::new();
    let g = gate.clone();
    let f = pool(config(2), move |_, p| {
        g.hold(p);
        Ok(json!(p.slot))
    });
    let calls: Vec<_> = (0..2).map(|_| call_in_thread(&f.pool, "block")).collect();
    let mut slots = [gate.wait_started(), gate.wait_started()];
    slots.sort_unstable();
    assert_eq!(slots, [0, 1], "both run at once, one per worker");
    assert_eq!(f.pool.stats().load, 2);
    gate.let_go();
    gate.let_go();
    for call in calls {
        call.join().unwrap().unwrap();
    }
    f.finish();
}

#[test]
fn a_sessions_calls_stay_on_its_worker() {
    let f = pool(config(3), |_, p| Ok(json!(p.slot)));
    let session = f.pool.session("s");
    let first = session.execute_blocking("which", json!({})).unwrap();
    for _ in 0..5 {
        assert_eq!(session.execute_blocking("which", json!({})).unwrap(), first);
    }
    f.finish();
}

#[test]
fn a_call_that_waits_past_its_queue_timeout_fails_without_running() {
    let gate = Gate::new();
    let g = gate.clone();
    let ran = Arc::new(AtomicBool::new(false));
    let r = ran.clone();
    let f = pool(config(1), move |tool, p| {
        match tool {
            "block" => g.hold(p),
            _ => r.store(true, SeqCst),
        }
        Ok(Value::Null)
    });
    let running = call_in_thread(&f.pool, "block");
    gate.wait_started();
    let waited = f.pool.execute_blocking_with(
        "late",
        json!({}),
        CallOptions::new().queue_timeout(Duration::from_millis(20)),
    );
    assert!(
        matches!(waited, Err(Error::QueueTimeout { .. })),
        "{waited:?}"
    );
    gate.let_go();
    running.join().unwrap().unwrap();
    assert!(!ran.load(SeqCst), "a timed-out call never runs");
    assert_eq!(f.pool.stats().queue_timeouts, 1);
    f.finish();
}

#[test]
fn a_crash_mid_call_fails_the_call_and_the_worker_restarts_after_its_backoff() {
    let backoff = Duration::from_millis(150);
    let mut f = pool(
        Config {
            restart_backoff: (backoff, Duration::from_secs(1)),
            ..config(1)
        },
        |tool, p| {
            if tool == "crash" {
                p.crash(3);
                return Err(TransportError::Failed {
                    code: "UNAVAILABLE".into(),
                    message: "connection reset".into(),
                });
            }
            launch_number(tool, p)
        },
    );
    let before = Instant::now();
    let err = f.pool.execute_blocking("crash", json!({})).unwrap_err();
    match &err {
        Error::WorkerCrashed {
            worker,
            exit: Some(exit),
            stderr_tail,
            endpoint: None,
        } => {
            assert_eq!(worker, "worker-0");
            assert_eq!(exit.code, Some(3));
            assert!(!stderr_tail.is_empty());
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(f.next_exit(), ExitReason::Crashed(_)));
    let second = f.next_launch();
    assert!(
        second.launched_at.duration_since(before) >= backoff,
        "restarted before its backoff"
    );
    assert_eq!(
        f.pool.execute_blocking("which", json!({})).unwrap(),
        json!(2)
    );
    let stats = f.pool.stats();
    assert_eq!((stats.crashes, stats.restarts), (1, 1));
    f.finish();
}

#[test]
fn an_idempotent_call_is_retried_on_another_process_after_a_crash() {
    let crashed = Arc::new(AtomicBool::new(false));
    let c = crashed.clone();
    let f = pool(config(2), move |_, p| {
        if !c.swap(true, SeqCst) {
            p.crash(1);
            return Err(TransportError::Failed {
                code: "UNAVAILABLE".into(),
                message: "gone".into(),
            });
        }
        Ok(json!("ok"))
    });
    let reply = f
        .pool
        .execute_blocking_with("flaky", json!({}), CallOptions::new().idempotent(true))
        .unwrap();
    assert_eq!(reply.value, json!("ok"));
    let stats = f.pool.stats();
    assert_eq!((stats.succeeded, stats.failed), (1, 0));
    f.finish();
}

#[test]
fn a_process_is_replaced_after_max_requests() {
    let mut f = pool(
        Config {
            max_requests: Some(10),
            ..config(1)
        },
        launch_number,
    );
    // The replacement starts a little before the limit, so the calls move
    // over to it without waiting; the old process never serves more.
    let mut on_first = 0;
    eventually("calls reach the replacement", || {
        let served_by = f.pool.execute_blocking("which", json!({})).unwrap();
        on_first += usize::from(served_by == json!(1));
        served_by == json!(2)
    });
    assert!(
        (8..=10).contains(&on_first),
        "{on_first} calls on the first"
    );
    assert_eq!(f.next_launch().launch, 2);
    assert_eq!(
        f.next_exit(),
        ExitReason::Recycled(RecycleReason::MaxRequests)
    );
    assert_eq!(
        f.pool.execute_blocking("which", json!({})).unwrap(),
        json!(2)
    );
    assert_eq!(f.pool.stats().recycles.max_requests, 1);
    f.finish();
}

#[test]
fn a_process_is_replaced_after_max_lifetime() {
    let mut f = pool(
        Config {
            max_lifetime: Some(Duration::from_millis(30)),
            ..config(1)
        },
        launch_number,
    );
    assert_eq!(f.next_launch().launch, 2);
    assert_eq!(
        f.next_exit(),
        ExitReason::Recycled(RecycleReason::MaxLifetime)
    );
    assert!(f.pool.stats().recycles.max_lifetime >= 1);
    f.finish();
}

#[test]
fn a_process_over_its_memory_limit_is_replaced() {
    let mut f = start(
        Config {
            max_memory: Some(1000),
            memory_check_interval: Duration::from_millis(5),
            ..config(1)
        },
        |_| Ok(()),
        Some(10),
        launch_number,
    )
    .map_err(|(e, _)| e)
    .unwrap();
    *f.seen[0].rss.lock() = Some(5000);
    assert_eq!(f.next_launch().launch, 2);
    assert_eq!(f.next_exit(), ExitReason::Recycled(RecycleReason::Memory));
    assert_eq!(
        f.pool.execute_blocking("which", json!({})).unwrap(),
        json!(2)
    );
    assert_eq!(f.pool.stats().recycles.memory, 1);
    f.finish();
}

#[test]
fn a_manual_recycle_lets_the_call_in_flight_finish_on_the_old_process() {
    let gate = Gate::new();
    let g = gate.clone();
    let mut f = pool(
        Config {
            profile: Profile::Thread { threads: 2 },
            ..config(1)
        },
        move |tool, p| {
            if tool == "block" {
                g.hold(p);
            }
            launch_number(tool, p)
        },
    );
    let old = f.seen[0].clone();
    let in_flight = call_in_thread(&f.pool, "block");
    gate.wait_started();
    f.pool.recycle_worker("worker-0").unwrap();
    assert_eq!(f.next_launch().launch, 2);
    eventually("new calls reach the new process", || {
        f.pool.execute_blocking("which", json!({})).unwrap() == json!(2)
    });
    assert!(old.exit_status().is_none(), "the old process drains first");
    gate.let_go();
    assert_eq!(in_flight.join().unwrap().unwrap(), json!(1));
    assert_eq!(f.next_exit(), ExitReason::Recycled(RecycleReason::Manual));
    assert!(old.exit_status().is_some());
    assert_eq!(f.pool.stats().recycles.manual, 1);
    f.finish();
}

#[test]
fn a_process_that_fails_its_health_check_is_replaced() {
    let mut f = pool(
        Config {
            health_check_interval: Some(Duration::from_millis(5)),
            ..config(1)
        },
        launch_number,
    );
    f.seen[0].healthy.store(false, SeqCst);
    assert_eq!(f.next_exit(), ExitReason::Unhealthy);
    assert_eq!(f.next_launch().launch, 2);
    assert_eq!(
        f.pool.execute_blocking("which", json!({})).unwrap(),
        json!(2)
    );
    assert_eq!(f.pool.stats().unhealthy_killed, 1);
    f.finish();
}

#[test]
fn a_call_past_its_timeout_gets_its_stuck_process_killed() {
    let mut f = pool(config(1), |tool, p| match tool {
        "stuck" => Err(TransportError::DeadlineExceeded),
        _ => launch_number(tool, p),
    });
    let err = f.pool.execute_blocking("stuck", json!({})).unwrap_err();
    assert!(matches!(err, Error::Timeout { .. }), "{err:?}");
    assert_eq!(f.next_exit(), ExitReason::Hung);
    assert_eq!(f.next_launch().launch, 2);
    assert_eq!(
        f.pool.execute_blocking("which", json!({})).unwrap(),
        json!(2)
    );
    let stats = f.pool.stats();
    assert_eq!((stats.timeouts, stats.hung_killed), (1, 1));
    f.finish();
}

#[test]
fn a_worker_that_cannot_start_fails_the_build_and_leaves_nothing_running() {
    let Err((err, launched)) = start(
        config(2),
        |n| {
            if n == 2 {
                Err("no module named fake".into())
            } else {
                Ok(())
            }
        },
        None,
        launch_number,
    ) else {
        panic!("the pool started");
    };
    match err {
        Error::Startup { message, .. } => assert!(message.contains("no module"), "{message}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(launched.len(), 2);
    for p in launched {
        assert!(p.exit_status().is_some(), "process {} still runs", p.launch);
    }
}

#[test]
fn when_no_worker_can_restart_calls_get_the_start_error() {
    let mut f = start(
        config(1),
        |n| {
            if n == 1 {
                Ok(())
            } else {
                Err("the adapter broke".into())
            }
        },
        None,
        launch_number,
    )
    .map_err(|(e, _)| e)
    .unwrap();
    f.seen[0].crash(1);
    assert!(matches!(f.next_exit(), ExitReason::Crashed(_)));
    f.next_launch();
    let err = f.pool.execute_blocking("which", json!({})).unwrap_err();
    match err {
        Error::Startup { message, .. } => assert!(message.contains("broke"), "{message}"),
        other => panic!("{other:?}"),
    }
    assert!(f.pool.stats().degraded);
    f.finish();
}

#[test]
fn shutdown_fails_queued_calls_and_lets_the_running_one_finish() {
    let gate = Gate::new();
    let g = gate.clone();
    let f = pool(config(1), move |tool, p| {
        if tool == "block" {
            g.hold(p);
        }
        Ok(json!(tool))
    });
    let running = call_in_thread(&f.pool, "block");
    gate.wait_started();
    let queued = call_in_thread(&f.pool, "quick");
    eventually("the second call waits", || f.pool.stats().queued == 1);
    let pool = f.pool.clone();
    let shutdown = thread::spawn(move || pool.shutdown());
    let err = queued.join().unwrap().unwrap_err();
    assert!(matches!(err, Error::ShuttingDown), "{err:?}");
    gate.let_go();
    assert_eq!(running.join().unwrap().unwrap(), json!("block"));
    shutdown.join().unwrap();
    assert!(matches!(
        f.pool.execute_blocking("quick", json!({})),
        Err(Error::ShuttingDown)
    ));
    f.finish();
}

#[test]
fn a_stream_delivers_its_chunks_in_order() {
    let f = pool(config(1), |_, _| Ok(json!([1, "two", [3]])));
    let chunks: Vec<Value> = f
        .pool
        .execute_stream("items", json!({}))
        .unwrap()
        .map(|c| c.unwrap().as_json().unwrap().clone())
        .collect();
    assert_eq!(chunks, [json!(1), json!("two"), json!([3])]);
    f.finish();
}

#[test]
fn calls_past_the_shutdown_grace_get_shutting_down_not_a_crash() {
    let gate = Gate::new();
    let g = gate.clone();
    let mut cfg = config(1);
    cfg.shutdown_grace = Duration::from_millis(20);
    let f = pool(cfg, move |_, p| {
        // Runs until the pool stops its process, as a call past the grace
        // period would.
        g.started.0.send(p.slot).unwrap();
        p.wait_exit(PATIENCE).expect("the process is stopped");
        Err(TransportError::Failed {
            code: "UNAVAILABLE".into(),
            message: "the connection closed".into(),
        })
    });
    let running = call_in_thread(&f.pool, "forever");
    gate.wait_started();
    f.pool.shutdown();
    let err = running.join().unwrap().unwrap_err();
    assert!(matches!(err, Error::ShuttingDown), "{err:?}");
    f.finish();
}

#[test]
fn starts_killed_from_outside_are_retried_while_calls_wait() {
    let (go_tx, go) = crossbeam_channel::bounded::<()>(1);
    let mut f = start(
        config(1),
        move |n| match n {
            1 => Ok(()),
            2 => {
                // Holds the first restart until a call is waiting for it.
                go.recv_timeout(PATIENCE).expect("told to go on");
                Err(StartFault::Killed)
            }
            3 | 4 => Err(StartFault::Killed),
            _ => Ok(()),
        },
        None,
        launch_number,
    )
    .map_err(|(e, _)| e)
    .unwrap();
    f.seen[0].kill();
    assert!(matches!(f.next_exit(), ExitReason::Crashed(_)));
    let waiting = call_in_thread(&f.pool, "which");
    eventually("the call waits", || f.pool.stats().queued == 1);
    go_tx.send(()).unwrap();
    assert_eq!(waiting.join().unwrap().unwrap(), json!(5));
    assert_eq!(
        f.pool.execute_blocking("which", json!({})).unwrap(),
        json!(5)
    );
    for n in 2..=5 {
        assert_eq!(f.next_launch().launch, n);
    }
    f.finish();
}

#[test]
fn a_worker_thread_that_panics_at_start_up_fails_the_build_and_leaves_nothing_running() {
    let Err((err, launched)) = start(
        config(2),
        |n| {
            if n == 2 {
                panic!("injected: a launcher that panics");
            }
            Ok(())
        },
        None,
        launch_number,
    ) else {
        panic!("the pool started");
    };
    assert!(matches!(err, Error::PoolStart { .. }), "{err:?}");
    assert_eq!(launched.len(), 1);
    for p in launched {
        assert!(p.exit_status().is_some(), "process {} still runs", p.launch);
    }
}

#[test]
fn call_durations_above_the_bound_are_refused_and_the_pool_stays_healthy() {
    use crate::deadline::MAX_DURATION;
    let f = pool(config(1), launch_number);
    let above = MAX_DURATION + Duration::from_nanos(1);
    for (argument, options) in [
        ("timeout", CallOptions::new().timeout(Duration::MAX)),
        ("timeout", CallOptions::new().timeout(above)),
        (
            "queue_timeout",
            CallOptions::new().queue_timeout(Duration::MAX),
        ),
        ("queue_timeout", CallOptions::new().queue_timeout(above)),
    ] {
        match f.pool.execute_blocking_with("t", json!({}), options) {
            Err(Error::InvalidArgument { argument: a, .. }) => assert_eq!(a, argument),
            other => panic!("{argument}: {other:?}"),
        }
    }
    assert!(matches!(
        f.pool
            .execute_blocking_with("t", json!({}), CallOptions::new().timeout(Duration::ZERO)),
        Err(Error::InvalidArgument {
            argument: "timeout",
            ..
        })
    ));
    let at_the_bound = CallOptions::new()
        .timeout(MAX_DURATION)
        .queue_timeout(MAX_DURATION);
    assert_eq!(
        f.pool
            .execute_blocking_with("t", json!({}), at_the_bound)
            .unwrap()
            .value,
        json!(1)
    );
    assert_eq!(f.pool.execute_blocking("t", json!({})).unwrap(), json!(1));
    f.finish();
}

#[test]
fn huge_durations_that_skip_validation_panic_no_pool_thread() {
    // Validation keeps these out; the arithmetic must still saturate. A
    // call's own timeouts are checked at submit, so those sit at the bound.
    let config = Config {
        startup_timeout: Duration::MAX,
        queue_timeout: crate::deadline::MAX_DURATION,
        call_timeout: crate::deadline::MAX_DURATION,
        max_lifetime: Some(Duration::MAX),
        max_lifetime_jitter: Duration::MAX,
        max_memory: Some(u64::MAX),
        memory_check_interval: Duration::MAX,
        health_check_interval: Some(Duration::MAX),
        health_check_timeout: Duration::MAX,
        session_idle_timeout: Duration::MAX,
        restart_backoff: (Duration::MAX, Duration::MAX),
        shutdown_grace: Duration::MAX,
        ..config(2)
    };
    let gate = Gate::new();
    let held = gate.clone();
    let f = pool(config, move |tool, p| {
        if tool == "hold" {
            held.hold(p);
        }
        Ok(json!(p.launch))
    });
    // A call waits in the queue (its deadline is queued_since + MAX).
    let a = call_in_thread(&f.pool, "hold");
    let b = call_in_thread(&f.pool, "hold");
    gate.wait_started();
    gate.wait_started();
    let queued = call_in_thread(&f.pool, "t");
    eventually("a call queued", || f.pool.stats().queued == 1);
    gate.let_go();
    gate.let_go();
    assert!(a.join().unwrap().is_ok());
    assert!(b.join().unwrap().is_ok());
    assert!(queued.join().unwrap().is_ok());
    // A session books the dispatcher's idle sweep, session_idle_timeout on.
    let in_session = CallOptions::new().session("s");
    assert!(f
        .pool
        .execute_blocking_with("t", json!({}), in_session)
        .is_ok());
    assert!(f.pool.execute_blocking("t", json!({})).is_ok());
    let stats = f.pool.stats();
    assert_eq!(stats.ready_workers, 2, "{stats:?}");
    f.finish();
}

#[test]
fn threads_stuck_in_timed_out_calls_leave_the_capacity_and_then_recycle_the_process() {
    let mut f = pool(
        Config {
            profile: Profile::Thread { threads: 2 },
            ..config(1)
        },
        |tool, p| match tool {
            "stuck" => Err(TransportError::DeadlineExceeded),
            _ => launch_number(tool, p),
        },
    );
    let err = f.pool.execute_blocking("stuck", json!({})).unwrap_err();
    assert!(matches!(err, Error::Timeout { .. }), "{err:?}");
    let stats = f.pool.stats();
    assert_eq!(
        (stats.capacity, stats.per_worker[0].stuck_threads),
        (1, 1),
        "{stats:?}"
    );
    assert_eq!(
        f.pool.execute_blocking("which", json!({})).unwrap(),
        json!(1),
        "one thread still serves"
    );
    assert!(f.pool.execute_blocking("stuck", json!({})).is_err());
    assert_eq!(f.next_launch().launch, 2);
    assert_eq!(
        f.next_exit(),
        ExitReason::Recycled(RecycleReason::StuckThreads)
    );
    assert_eq!(
        f.pool.execute_blocking("which", json!({})).unwrap(),
        json!(2)
    );
    let stats = f.pool.stats();
    assert_eq!(stats.recycles.stuck_threads, 1, "{stats:?}");
    assert_eq!(
        (stats.capacity, stats.per_worker[0].stuck_threads),
        (2, 0),
        "{stats:?}"
    );
    f.finish();
}

#[test]
fn a_busy_process_that_fails_its_health_check_is_replaced() {
    let gate = Gate::new();
    let g = gate.clone();
    let mut f = pool(
        Config {
            health_check_interval: Some(Duration::from_millis(5)),
            ..config(1)
        },
        move |tool, p| {
            if tool == "block" {
                g.hold(p);
            }
            launch_number(tool, p)
        },
    );
    let busy = call_in_thread(&f.pool, "block");
    gate.wait_started();
    f.seen[0].healthy.store(false, SeqCst);
    assert_eq!(f.next_exit(), ExitReason::Unhealthy);
    assert_eq!(f.next_launch().launch, 2);
    gate.let_go();
    let _ = busy.join().unwrap();
    assert_eq!(
        f.pool.execute_blocking("which", json!({})).unwrap(),
        json!(2)
    );
    assert_eq!(f.pool.stats().unhealthy_killed, 1);
    f.finish();
}

#[test]
fn a_lane_that_panics_fails_its_call_with_internal_and_the_worker_serves_on() {
    let f = pool(config(1), |tool, p| match tool {
        "panic" => panic!("injected: a transport that panics"),
        _ => launch_number(tool, p),
    });
    let err = f.pool.execute_blocking("panic", json!({})).unwrap_err();
    assert!(matches!(err, Error::Internal { .. }), "{err:?}");
    let streamed: Vec<_> = f.pool.execute_stream("panic", json!({})).unwrap().collect();
    assert!(
        matches!(streamed.as_slice(), [Err(Error::Internal { .. })]),
        "{streamed:?}"
    );
    let stats = f.pool.stats();
    assert_eq!(
        (stats.load, stats.capacity, stats.failed),
        (0, 1, 2),
        "{stats:?}"
    );
    assert_eq!(
        f.pool.execute_blocking("which", json!({})).unwrap(),
        json!(1),
        "the same process serves on"
    );
    f.finish();
}

#[test]
fn a_dispatcher_that_panics_fails_the_call_it_held_and_places_the_next() {
    use crate::dispatcher::PANIC_ON_ADMIT;
    let f = pool(config(1), launch_number);
    // Session calls always go through the dispatcher.
    let in_session = || CallOptions::new().session("s");
    let err = f
        .pool
        .execute_blocking_with(PANIC_ON_ADMIT, json!({}), in_session())
        .unwrap_err();
    assert!(matches!(err, Error::Internal { .. }), "{err:?}");
    assert_eq!(
        f.pool
            .execute_blocking_with("which", json!({}), in_session())
            .unwrap()
            .value,
        json!(1)
    );
    assert_eq!(
        f.pool.execute_blocking("which", json!({})).unwrap(),
        json!(1)
    );
    assert_eq!(f.pool.stats().failed, 1);
    f.finish();
}

#[test]
fn a_worker_thread_that_panics_while_serving_kills_its_process_and_starts_another() {
    let mut f = pool(
        Config {
            max_memory: Some(u64::MAX),
            memory_check_interval: Duration::from_millis(5),
            ..config(1)
        },
        launch_number,
    );
    f.seen[0].panic_on_memory_reading.store(true, SeqCst);
    assert_eq!(f.next_exit(), ExitReason::Internal);
    assert!(f.seen[0].exit_status().is_some(), "the process is killed");
    assert_eq!(f.next_launch().launch, 2);
    assert_eq!(
        f.pool.execute_blocking("which", json!({})).unwrap(),
        json!(2)
    );
    f.finish();
}

#[test]
fn a_worker_thread_that_panics_on_a_restart_starts_again_after_its_backoff() {
    let mut f = start(
        config(1),
        |n| {
            if n == 2 {
                panic!("injected: a launcher that panics");
            }
            Ok(())
        },
        None,
        launch_number,
    )
    .map_err(|(e, _)| e)
    .unwrap();
    f.seen[0].kill();
    assert!(matches!(f.next_exit(), ExitReason::Crashed(_)));
    assert_eq!(f.next_launch().launch, 3);
    assert_eq!(
        f.pool.execute_blocking("which", json!({})).unwrap(),
        json!(3)
    );
    f.finish();
}

/// An event hook that panics on every event.
#[derive(Debug)]
struct PanickingEvents;

impl crate::events::HandleEvent for PanickingEvents {
    fn worker_started(&self, _: &crate::events::WorkerStarted) {
        panic!("injected: worker_started");
    }
    fn worker_ready(&self, _: &crate::events::WorkerReady) {
        panic!("injected: worker_ready");
    }
    fn worker_exited(&self, _: &crate::events::WorkerExited) {
        panic!("injected: worker_exited");
    }
    fn worker_recycled(&self, _: &crate::events::WorkerRecycled) {
        panic!("injected: worker_recycled");
    }
    fn call_finished(&self, _: &crate::events::CallFinished) {
        panic!("injected: call_finished");
    }
    fn queue_timeout(&self, _: &crate::events::QueueTimedOut) {
        panic!("injected: queue_timeout");
    }
    fn saturated(&self, _: &crate::events::Saturated) {
        panic!("injected: saturated");
    }
}

#[test]
fn an_event_handler_that_panics_is_ignored_and_the_pool_serves_on() {
    let (launcher, connector, launched) = fakes::seams(|_| Ok(()), None, launch_number);
    let seams = Seams {
        launcher: Arc::new(launcher),
        connector: Arc::new(connector),
    };
    let config = Config {
        events: Arc::new(PanickingEvents),
        ..config(1)
    };
    let pool = Pool::start_with(config, seams, Resources::default(), WaitFor::All)
        .expect("the pool starts");
    let first = launched.recv_timeout(PATIENCE).unwrap();
    assert_eq!(pool.execute_blocking("which", json!({})).unwrap(), json!(1));
    pool.recycle_worker("worker-0").unwrap();
    let second = launched.recv_timeout(PATIENCE).unwrap();
    eventually("the recycled process is stopped", || {
        first.exit_status().is_some()
    });
    assert_eq!(pool.execute_blocking("which", json!({})).unwrap(), json!(2));
    second.kill();
    let third = launched.recv_timeout(PATIENCE).unwrap();
    assert_eq!(third.launch, 3);
    assert_eq!(pool.execute_blocking("which", json!({})).unwrap(), json!(3));
    pool.shutdown();
    assert!(third.exit_status().is_some());
}
