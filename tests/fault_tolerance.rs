//! Workers crash, leak, hang and get recycled: the pool keeps serving, loses
//! no call it accepted, and leaves no process behind. (The crash storm and
//! the other injected faults are in `tests/faults.rs`.)

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use common::{is_alive, wait_until, Scope};
use serde_json::json;
use snakepit::{CallOptions, Error, WorkerState};

const FAULTY: &str = "snakepit_showcase.faults.FaultyAdapter";
const LIMIT: Duration = Duration::from_secs(60);

fn kill(pid: u32, signal: libc::c_int) {
    // SAFETY: plain syscall on a pid this test started.
    unsafe {
        libc::kill(pid as libc::pid_t, signal);
    }
}

fn an_idempotent_call_is_retried_after_a_crash_and_succeeds() {
    let scope = Scope::new("idem");
    let pool = scope.builder().adapter(FAULTY).workers(2).build().unwrap();

    let marker = scope.path("crashed-once");
    let args = json!({"path": marker.to_str().unwrap()});
    let reply = pool
        .execute_blocking_with(
            "crash_once",
            args.clone(),
            CallOptions::new().idempotent(true),
        )
        .unwrap();
    assert_eq!(reply.value, json!("survived"));
    assert!(marker.exists(), "the first attempt did crash");
    // The crashed worker's own thread counts the crash, a moment after the
    // retry may already have answered.
    assert!(wait_until(LIMIT, || pool.stats().crashes == 1));

    // Not idempotent: the crash is the caller's answer.
    std::fs::remove_file(&marker).unwrap();
    let err = pool.execute_blocking("crash_once", args).unwrap_err();
    assert!(matches!(err, Error::WorkerCrashed { .. }), "{err:?}");

    scope.finish(&pool);
}

fn workers_killed_while_starting_are_not_a_crash_loop() {
    let scope = Arc::new(Scope::new("startkill"));
    let pool = scope
        .builder()
        .workers(2)
        .queue_timeout(LIMIT)
        .restart_backoff(Duration::from_millis(10), Duration::from_millis(50))
        .build()
        .unwrap();

    // Every process of this pool, starting or serving, is killed as soon
    // as it shows up, for a bounded while: most starts die before ready.
    let stop = Arc::new(AtomicBool::new(false));
    let killer = {
        let stop = stop.clone();
        let scope = scope.clone();
        thread::spawn(move || {
            let until = std::time::Instant::now() + Duration::from_millis(1500);
            let mut kills = 0u32;
            while std::time::Instant::now() < until && !stop.load(Ordering::SeqCst) {
                for pid in scope.live_processes() {
                    kill(pid, libc::SIGKILL);
                    kills += 1;
                }
                thread::sleep(Duration::from_millis(5));
            }
            kills
        })
    };

    let callers: Vec<_> = (0..4)
        .map(|t| {
            let pool = pool.clone();
            thread::spawn(move || {
                let mut outcomes = Vec::new();
                for i in 0..20 {
                    let opts = CallOptions::new().idempotent(true).crash_retries(100);
                    outcomes.push(pool.execute_blocking_with("add", json!({"a": t, "b": i}), opts));
                }
                outcomes
            })
        })
        .collect();
    let kills = killer.join().unwrap();
    stop.store(true, Ordering::SeqCst);
    assert!(kills > 0);
    for caller in callers {
        for outcome in caller.join().unwrap() {
            match outcome {
                Ok(_) | Err(Error::WorkerCrashed { .. }) => {}
                Err(e) => panic!("a call failed with {e:?}"),
            }
        }
    }
    // The first call after the storm is served.
    assert_eq!(
        pool.execute_blocking("add", json!({"a": 1, "b": 2}))
            .unwrap(),
        json!(3)
    );
    scope.finish(&pool);
}

fn recycling_under_load_fails_no_call() {
    let scope = Scope::new("recycle");
    let pool = scope
        .builder()
        .workers(4)
        .max_requests(20)
        .queue_timeout(LIMIT)
        .build()
        .unwrap();

    let callers: Vec<_> = (0..8)
        .map(|t| {
            let pool = pool.clone();
            thread::spawn(move || {
                (0..250)
                    .map(|i| pool.execute_blocking("add", json!({"a": t, "b": i})))
                    .filter(Result::is_err)
                    .count()
            })
        })
        .collect();
    let failed: usize = callers.into_iter().map(|c| c.join().unwrap()).sum();
    assert_eq!(failed, 0, "calls failed during recycling");

    // The last recycles may still be handing over.
    assert!(wait_until(LIMIT, || pool.stats().ready_workers == 4));
    let stats = pool.stats();
    assert!(stats.recycles.max_requests >= 90, "{stats:?}");
    assert_eq!((stats.failed, stats.crashes), (0, 0));
    assert_eq!(stats.succeeded, 2000);
    scope.finish(&pool);
}

fn a_worker_past_its_memory_limit_is_recycled() {
    let scope = Scope::new("memory");
    let pool = scope
        .builder()
        .workers(1)
        .max_memory(150 << 20)
        .memory_check_interval(Duration::from_millis(50))
        .build()
        .unwrap();
    let before = pool.stats().per_worker[0].pid;

    let held = pool
        .execute_blocking("allocate_mb", json!({"mb": 200}))
        .unwrap();
    assert_eq!(held, json!(200));
    assert!(
        wait_until(LIMIT, || pool.stats().recycles.memory == 1),
        "{:?}",
        pool.stats()
    );
    assert!(wait_until(LIMIT, || pool.stats().per_worker[0].state
        == WorkerState::Ready));
    let after = pool.stats().per_worker[0].pid;
    assert_ne!(before, after);
    // The fresh process holds none of that memory.
    let rss_kb = pool.execute_blocking("rss_kb", json!({})).unwrap();
    assert!(rss_kb.as_u64().unwrap() < 150 << 10, "{rss_kb}");
    assert_eq!(pool.stats().failed, 0);
    scope.finish(&pool);
}

fn lifetime_and_manual_recycling_replace_workers_without_failing_calls() {
    let scope = Scope::new("ttl");
    let pool = scope
        .builder()
        .workers(1)
        .max_lifetime(Duration::from_millis(500))
        .build()
        .unwrap();
    let first = pool.execute_blocking("pid", json!({})).unwrap();
    // Calls go on through the recycle; none fails.
    assert!(wait_until(LIMIT, || {
        pool.execute_blocking("pid", json!({})).unwrap() != first
    }));
    assert!(pool.stats().recycles.max_lifetime >= 1);
    assert_eq!(pool.stats().failed, 0);
    pool.shutdown();

    let pool = scope.builder().workers(1).build().unwrap();
    let first = pool.stats().per_worker[0].pid.unwrap();
    // A call in flight when the recycle is asked for finishes on the old
    // process.
    let started = scope.path("started");
    let release = scope.path("release");
    let in_flight = {
        let pool = pool.clone();
        let args = json!({"record_path": started.to_str().unwrap(), "wait_path": release.to_str().unwrap()});
        thread::spawn(move || {
            pool.execute_blocking_with("record_then_wait", args, CallOptions::new())
        })
    };
    assert!(wait_until(LIMIT, || started.exists()));
    pool.recycle_worker("worker-0").unwrap();
    assert!(wait_until(LIMIT, || pool.stats().per_worker[0].pid != Some(first)));
    assert!(
        is_alive(first),
        "the old process must finish its call first"
    );
    std::fs::write(&release, b"").unwrap();
    let reply = in_flight.join().unwrap().unwrap();
    assert_eq!(reply.value, json!(true));
    assert!(wait_until(LIMIT, || !is_alive(first)));
    let stats = pool.stats();
    assert_eq!((stats.recycles.manual, stats.failed), (1, 0));
    assert!(matches!(
        pool.recycle_worker("worker-9"),
        Err(Error::InvalidArgument {
            argument: "worker",
            ..
        })
    ));
    scope.finish(&pool);
}

fn a_worker_that_stops_answering_health_checks_is_replaced() {
    let scope = Scope::new("health");
    let pool = scope
        .builder()
        .workers(1)
        .health_check_interval(Some(Duration::from_millis(100)))
        .health_check_timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let frozen = pool.stats().per_worker[0].pid.unwrap();
    kill(frozen, libc::SIGSTOP);
    assert!(wait_until(LIMIT, || pool.stats().unhealthy_killed == 1));
    assert!(wait_until(LIMIT, || pool.stats().ready_workers == 1));
    assert_ne!(pool.stats().per_worker[0].pid, Some(frozen));
    assert!(!is_alive(frozen));
    common::assert_serves(&pool);
    scope.finish(&pool);
}

fn a_crash_loop_backs_off_reports_degraded_and_fails_calls_fast() {
    let scope = Scope::new("loop");
    let marker = scope.path("refuse");
    let pool = scope
        .builder()
        .adapter(FAULTY)
        .workers(1)
        .env("SNAKEPIT_FAULTS_MARKER", marker.to_str().unwrap())
        .restart_backoff(Duration::from_millis(50), Duration::from_millis(400))
        .build()
        .unwrap();
    // From now on the adapter refuses to import; then the worker dies.
    std::fs::write(&marker, b"").unwrap();
    let _ = pool.execute_blocking("crash", json!({"code": 1}));

    assert!(
        wait_until(LIMIT, || pool.stats().restarts >= 3),
        "{:?}",
        pool.stats()
    );
    let stats = pool.stats();
    assert!(stats.degraded);
    assert_eq!(stats.ready_workers, 0);
    // Backoff is capped: no spinning. Over about a second at most a handful
    // of start attempts, not hundreds.
    let before = pool.stats().restarts;
    thread::sleep(Duration::from_millis(1000));
    let attempts = pool.stats().restarts - before;
    assert!(
        attempts <= 6,
        "{attempts} restarts in a second: the loop spins"
    );

    // No worker can start: the call fails at once with the start-up error.
    let err = pool
        .execute_blocking_with("ping", json!({}), CallOptions::new().queue_timeout(LIMIT))
        .unwrap_err();
    match err {
        Error::Startup { message, .. } => {
            assert!(message.contains("refusing to start"), "{message}")
        }
        other => panic!("expected the start-up error, got {other:?}"),
    }

    // The cause goes away: the pool heals.
    std::fs::remove_file(&marker).unwrap();
    assert!(wait_until(LIMIT, || pool.stats().ready_workers == 1));
    common::assert_serves(&pool);
    scope.finish(&pool);
}

/// The `host_process` example, built alongside the tests.
fn host_process(scope: &Scope) -> (std::process::Child, serde_json::Value) {
    let exe = std::env::current_exe().unwrap();
    let bin = exe
        .parent()
        .and_then(|deps| deps.parent())
        .unwrap()
        .join("examples")
        .join("host_process");
    assert!(bin.exists(), "{} is not built", bin.display());
    let mut child = Command::new(bin)
        .arg("2")
        .env("SNAKEPIT_TEST_TAG", &scope.tag)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let pids: serde_json::Value = serde_json::from_str(&line).expect("the host's pid line");
    (child, pids)
}

fn all_pids(pids: &serde_json::Value) -> Vec<u32> {
    ["workers", "children"]
        .iter()
        .flat_map(|k| pids[k].as_array().unwrap().iter())
        .map(|p| p.as_u64().unwrap() as u32)
        .collect()
}

fn workers_and_their_children_die_with_a_host_killed_by_sigkill() {
    let scope = Scope::new("sigkill");
    let (mut host, pids) = host_process(&scope);
    let pids = all_pids(&pids);
    assert_eq!(pids.len(), 4);
    assert!(pids.iter().all(|&p| is_alive(p)));

    host.kill().unwrap(); // SIGKILL: no handler, no destructor runs
    host.wait().unwrap();
    assert!(
        wait_until(Duration::from_secs(2), || pids
            .iter()
            .all(|&p| !is_alive(p))),
        "alive 2 s after the host died: {:?}",
        pids.iter().filter(|&&p| is_alive(p)).collect::<Vec<_>>()
    );
    scope.assert_no_processes();
}

fn ctrl_c_in_a_host_with_the_handler_stops_every_worker() {
    let scope = Scope::new("ctrlc");
    let (mut host, pids) = host_process(&scope);
    assert_eq!(
        pids["second_handler"], "signal_handler",
        "one handler per process: a second is refused as such"
    );
    let pids = all_pids(&pids);
    kill(host.id(), libc::SIGINT);
    let status = host.wait().unwrap();
    assert_eq!(status.code(), Some(130));
    // The handler's shutdown reaped the workers before the host exited.
    assert!(pids[..2].iter().all(|&p| !is_alive(p)));
    assert!(wait_until(Duration::from_secs(2), || pids
        .iter()
        .all(|&p| !is_alive(p))));
    scope.assert_no_processes();
}

/// Records the pid of every process the pool starts.
#[derive(Debug, Default, Clone)]
struct Starts(Arc<std::sync::Mutex<Vec<u32>>>);

impl snakepit::events::HandleEvent for Starts {
    fn worker_started(&self, e: &snakepit::events::WorkerStarted) {
        self.0.lock().unwrap().push(e.pid);
    }
}

fn a_replacement_starts_before_the_old_process_reaches_max_requests() {
    let scope = Scope::new("prestart");
    let starts = Starts::default();
    let pool = scope
        .builder()
        .workers(1)
        .max_requests(10)
        .queue_timeout(LIMIT)
        .event_handler(starts.clone())
        .build()
        .unwrap();
    for _ in 0..8 {
        pool.execute_blocking("ping", json!({})).unwrap();
    }
    // The 9th call holds the old process, one call short of its limit...
    let started = scope.path("started");
    let release = scope.path("release");
    let ninth = {
        let pool = pool.clone();
        let args = json!({"record_path": started.to_str().unwrap(), "wait_path": release.to_str().unwrap()});
        thread::spawn(move || pool.execute_blocking("record_then_wait", args))
    };
    assert!(wait_until(LIMIT, || started.exists()));
    // ...and its replacement is already starting.
    assert!(
        wait_until(LIMIT, || starts.0.lock().unwrap().len() == 2),
        "no replacement started before the limit"
    );
    std::fs::write(&release, b"").unwrap();
    assert_eq!(ninth.join().unwrap().unwrap(), json!(true));
    for _ in 0..5 {
        pool.execute_blocking("ping", json!({})).unwrap();
    }
    let stats = pool.stats();
    assert!(stats.recycles.max_requests >= 1, "{stats:?}");
    assert_eq!(stats.failed, 0);
    scope.finish(&pool);
}

both_transports!(
    an_idempotent_call_is_retried_after_a_crash_and_succeeds,
    workers_killed_while_starting_are_not_a_crash_loop,
    recycling_under_load_fails_no_call,
    a_worker_past_its_memory_limit_is_recycled,
    lifetime_and_manual_recycling_replace_workers_without_failing_calls,
    a_worker_that_stops_answering_health_checks_is_replaced,
    a_crash_loop_backs_off_reports_degraded_and_fails_calls_fast,
    workers_and_their_children_die_with_a_host_killed_by_sigkill,
    ctrl_c_in_a_host_with_the_handler_stops_every_worker,
    a_replacement_starts_before_the_old_process_reaches_max_requests,
);
