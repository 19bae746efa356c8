//! Remote workers, on one machine: `snakepit-worker serve` processes on
//! loopback, found through `Remote`, reached over TLS with a token; and
//! what happens when they fail, stop, drain, scale or vanish.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde_json::json;
use snakepit::{Affinity, CallOptions, Error, Pool, PoolBuilder, Remote, WorkerState};

use common::remote::{token_file, Certs, RemoteWorker, Serve};
use common::{wait_until, Scope, SHOWCASE};

/// How long a test waits for something the pool does on its own (a
/// resolve, a reconnect); far above what it takes.
const PATIENCE: Duration = Duration::from_secs(30);

/// A `serve` worker carrying the scope's tag.
fn start(scope: &Scope, certs: Option<&Certs>, serve: &Serve) -> RemoteWorker {
    RemoteWorker::start(&scope.tag, &scope.dir, certs, serve)
}

fn builder() -> PoolBuilder {
    Pool::builder()
        .adapter(SHOWCASE)
        .startup_timeout(Duration::from_secs(20))
        .call_timeout(Duration::from_secs(30))
}

/// A discovery closure whose answer the test changes.
fn discovery(initial: Vec<String>) -> (Arc<Mutex<Vec<String>>>, Remote) {
    let set = Arc::new(Mutex::new(initial));
    let read = set.clone();
    let remote =
        Remote::discover(move || Ok(read.lock().clone())).resolve_every(Duration::from_millis(100));
    (set, remote)
}

/// Waits until exactly `expected` (sorted) serve; fails the test with the
/// stats otherwise.
fn wait_for_endpoints(pool: &Pool, expected: &[String]) {
    assert!(
        wait_until(PATIENCE, || ready_endpoints(pool) == expected),
        "waiting for {expected:?}: {:?}",
        pool.stats()
    );
}

/// Asserts that a call runs on `worker`.
fn assert_runs_on(pool: &Pool, worker: &RemoteWorker) {
    assert_eq!(
        pool.execute_blocking("pid", json!({})).unwrap(),
        json!(worker.pid())
    );
}

fn ready_endpoints(pool: &Pool) -> Vec<String> {
    let mut ready: Vec<String> = pool
        .stats()
        .per_worker
        .into_iter()
        .filter(|w| w.state == WorkerState::Ready)
        .filter_map(|w| w.endpoint)
        .collect();
    ready.sort();
    ready
}

#[cfg(feature = "tls")]
mod tls {
    use super::*;
    use common::remote::AUTHORITY;
    use common::THREADED_SHOWCASE;
    use snakepit::Tls;

    fn tls(certs: &Certs) -> Tls {
        Tls::ca_file(&certs.ca)
            .unwrap()
            .identity_files(&certs.client_cert, &certs.client_key)
            .unwrap()
            .authority(AUTHORITY)
    }

    fn mtls_worker(scope: &Scope, certs: &Certs, token: &std::path::Path) -> RemoteWorker {
        start(
            scope,
            Some(certs),
            &Serve {
                threads: Some(4),
                tls: Some(true),
                token_file: Some(token.to_owned()),
                ..Serve::default()
            },
        )
    }

    #[test]
    fn calls_run_over_mutual_tls_with_a_token() {
        let scope = Scope::new("remote-mtls");
        let certs = Certs::generate(&scope.dir);
        let token = token_file(&scope.dir, "token", "s3cret-token");
        let worker = mtls_worker(&scope, &certs, &token);
        let pool = builder()
            .adapter(THREADED_SHOWCASE)
            .remote(
                Remote::endpoints([worker.address.clone()])
                    .max_endpoints(4)
                    .tls(tls(&certs))
                    .token_file(&token),
            )
            .build()
            .unwrap();
        assert_eq!(
            pool.execute_blocking("add", json!({"a": 2, "b": 3}))
                .unwrap(),
            json!(5)
        );
        let stats = pool.stats();
        let serving: Vec<_> = stats
            .per_worker
            .iter()
            .filter(|w| w.state == WorkerState::Ready)
            .collect();
        assert_eq!(serving.len(), 1);
        assert_eq!(
            serving[0].endpoint.as_deref(),
            Some(worker.address.as_str())
        );
        assert_eq!(serving[0].capacity, 4, "the capacity the worker reported");
        assert_eq!(serving[0].pid, None);
        assert!(!stats.degraded, "spare slots are not missing workers");
        // Four calls at once on the one endpoint.
        let started = Instant::now();
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| pool.execute_blocking("sleep", json!({"ms": 300})).unwrap());
            }
        });
        assert!(
            started.elapsed() < Duration::from_millis(1150),
            "{:?}",
            started.elapsed()
        );
        pool.shutdown();
    }

    #[test]
    fn a_bad_token_is_refused_with_its_own_error() {
        let scope = Scope::new("remote-badtoken");
        let certs = Certs::generate(&scope.dir);
        let token = token_file(&scope.dir, "token", "right-token");
        let wrong = token_file(&scope.dir, "wrong", "wrong-token");
        let worker = mtls_worker(&scope, &certs, &token);
        let err = builder()
            .adapter(THREADED_SHOWCASE)
            .remote(
                Remote::endpoints([worker.address.clone()])
                    .tls(tls(&certs))
                    .token_file(&wrong),
            )
            .build()
            .unwrap_err();
        match &err {
            Error::Unauthenticated { endpoint, message } => {
                assert_eq!(endpoint, &worker.address);
                assert!(message.contains("token"), "{message}");
            }
            other => panic!("expected Unauthenticated, got {other:?}"),
        }
    }

    /// Each TLS mistake fails the build with `Error::Tls` and the
    /// handshake's own words.
    #[test]
    fn tls_mistakes_are_reported_as_tls_errors() {
        let scope = Scope::new("remote-tlserr");
        let certs = Certs::generate(&scope.dir);
        let token = token_file(&scope.dir, "token", "t0ken");
        let worker = mtls_worker(&scope, &certs, &token);
        let client = |tls: Tls| {
            builder()
                .adapter(THREADED_SHOWCASE)
                .startup_timeout(Duration::from_secs(5))
                .remote(
                    Remote::endpoints([worker.address.clone()])
                        .tls(tls)
                        .token_file(&token),
                )
                .build()
        };
        let cases = [
            (
                "wrong CA",
                Tls::ca_file(&certs.other_ca)
                    .unwrap()
                    .identity_files(&certs.client_cert, &certs.client_key)
                    .unwrap()
                    .authority(AUTHORITY),
            ),
            (
                "wrong authority",
                Tls::ca_file(&certs.ca)
                    .unwrap()
                    .identity_files(&certs.client_cert, &certs.client_key)
                    .unwrap()
                    .authority("somebody-else.example"),
            ),
            (
                "no client certificate",
                Tls::ca_file(&certs.ca).unwrap().authority(AUTHORITY),
            ),
        ];
        for (case, tls) in cases {
            match client(tls) {
                Err(Error::Tls { endpoint, message }) => {
                    assert_eq!(endpoint, worker.address, "{case}");
                    assert!(!message.is_empty(), "{case}");
                    eprintln!("{case}: {message}");
                }
                Err(other) => panic!("{case}: expected Error::Tls, got {other:?}"),
                Ok(_) => panic!("{case}: the pool started"),
            }
        }
        // The worker is unharmed and serves a well-configured pool.
        let pool = client(tls(&certs)).unwrap();
        common::assert_serves(&pool);
        pool.shutdown();
    }
}

#[test]
fn options_about_local_processes_are_refused() {
    let remote = || Remote::endpoints(["127.0.0.1:1"]);
    let refused: Vec<(&str, PoolBuilder)> = vec![
        ("python", builder().python("python3")),
        ("workers", builder().workers(2)),
        ("env", builder().env("A", "b")),
        ("max_requests", builder().max_requests(10)),
        ("max_memory", builder().max_memory(1 << 30)),
        ("kill_hung_workers", builder().kill_hung_workers(false)),
        (
            "transport",
            builder().transport(snakepit::Transport::Socket),
        ),
        ("host_tool", builder().host_tool("double", "doubles", Ok)),
    ];
    for (option, b) in refused {
        match b.remote(remote()).build() {
            Err(Error::InvalidConfig { option: o, message }) => {
                assert_eq!(o, option);
                assert!(message.contains("remote worker"), "{message}");
            }
            other => panic!("{option}: expected InvalidConfig, got {other:?}"),
        }
    }
    let scope = Scope::new("remote-plain-token");
    let token = token_file(&scope.dir, "token", "abc");
    let err = builder()
        .remote(remote().token_file(&token))
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("insecure_plaintext"), "{err}");
}

#[test]
fn a_worker_for_another_adapter_is_not_used() {
    let scope = Scope::new("remote-adapter");
    let worker = start(&scope, None, &Serve::default());
    let err = builder()
        .adapter("snakepit_showcase.snakepit_style.SnakepitStyleAdapter")
        .remote(Remote::endpoints([worker.address.clone()]))
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("serves the adapter"), "{err}");
}

#[test]
fn endpoints_scale_up_and_down_with_discovery() {
    let scope = Scope::new("remote-scale");
    let a = start(&scope, None, &Serve::default());
    let b = start(&scope, None, &Serve::default());
    let (set, remote) = discovery(vec![a.address.clone()]);
    let pool = builder().remote(remote.max_endpoints(4)).build().unwrap();
    assert_eq!(ready_endpoints(&pool), vec![a.address.clone()]);

    set.lock().push(b.address.clone());
    let mut both = vec![a.address.clone(), b.address.clone()];
    both.sort();
    wait_for_endpoints(&pool, &both);
    // Two calls that can only finish together (a barrier) run at once:
    // each endpoint runs one call at a time, so both serve.
    let meeting = scope.path("meeting");
    std::fs::create_dir_all(&meeting).unwrap();
    std::thread::scope(|s| {
        let calls: Vec<_> = (0..2)
            .map(|_| {
                s.spawn(|| pool.execute_blocking("barrier", json!({"dir": meeting, "parties": 2})))
            })
            .collect();
        for call in calls {
            call.join().unwrap().expect("both endpoints serve");
        }
    });

    set.lock().retain(|x| *x != a.address);
    wait_for_endpoints(&pool, std::slice::from_ref(&b.address));
    for _ in 0..5 {
        assert_runs_on(&pool, &b);
    }
    pool.shutdown();
}

#[test]
fn a_dns_name_finds_the_worker() {
    let scope = Scope::new("remote-dns");
    let worker = start(&scope, None, &Serve::default());
    let port = worker.address.rsplit_once(':').unwrap().1;
    let pool = builder()
        .remote(Remote::dns(format!("localhost:{port}")))
        .build()
        .unwrap();
    assert_runs_on(&pool, &worker);
    assert!(ready_endpoints(&pool).contains(&worker.address));
    pool.shutdown();
}

#[test]
fn more_endpoints_than_slots_leave_the_rest_out() {
    let scope = Scope::new("remote-max");
    let workers: Vec<_> = (0..3)
        .map(|_| start(&scope, None, &Serve::default()))
        .collect();
    let pool = builder()
        .remote(Remote::endpoints(workers.iter().map(|w| w.address.clone())).max_endpoints(2))
        .build()
        .unwrap();
    assert!(wait_until(PATIENCE, || ready_endpoints(&pool).len() == 2));
    assert_eq!(pool.stats().per_worker.len(), 2);
    let mut expected: Vec<String> = workers.iter().map(|w| w.address.clone()).collect();
    expected.sort();
    expected.truncate(2);
    assert_eq!(ready_endpoints(&pool), expected, "sorted order decides");
    pool.shutdown();
}

#[test]
fn a_worker_killed_mid_call_fails_that_call_naming_the_endpoint() {
    let scope = Scope::new("remote-kill");
    let worker = start(&scope, None, &Serve::default());
    let pool = builder()
        .remote(Remote::endpoints([worker.address.clone()]))
        .build()
        .unwrap();
    let err = std::thread::scope(|s| {
        let held = HeldCall::start(s, &pool, &scope, CallOptions::new());
        worker.signal(libc::SIGKILL);
        held.outcome().unwrap_err()
    });
    match &err {
        Error::WorkerCrashed { endpoint, exit, .. } => {
            assert_eq!(endpoint.as_deref(), Some(worker.address.as_str()));
            assert_eq!(*exit, None);
        }
        other => panic!("expected WorkerCrashed, got {other:?}"),
    }
    assert!(err.to_string().contains(&worker.address), "{err}");
    // Counted by the worker's thread as it takes the slot out of service,
    // a moment after the caller has its error.
    assert!(wait_until(PATIENCE, || pool.stats().crashes >= 1));
    pool.shutdown();
}

#[test]
fn an_idempotent_call_moves_to_another_endpoint_when_its_worker_dies() {
    let scope = Scope::new("remote-retry");
    let a = start(&scope, None, &Serve::default());
    let b = start(&scope, None, &Serve::default());
    let pool = builder()
        .remote(Remote::endpoints([a.address.clone(), b.address.clone()]))
        .build()
        .unwrap();
    // Occupy one worker so the idempotent call lands on the other; kill
    // the one it runs on.
    let answer = std::thread::scope(|s| {
        let held = HeldCall::start(s, &pool, &scope, CallOptions::new().idempotent(true));
        // Whichever worker runs it: kill it, and let the retry through.
        let busy = busy_endpoint(&pool);
        let victim = if busy == a.address { &a } else { &b };
        victim.signal(libc::SIGKILL);
        held.release();
        held.outcome()
    });
    assert_eq!(answer.unwrap(), json!(true));
    pool.shutdown();
}

/// A call held on its worker until the test writes `release`.
struct HeldCall<'scope> {
    call: std::thread::ScopedJoinHandle<'scope, Result<serde_json::Value, Error>>,
    release: std::path::PathBuf,
}

impl HeldCall<'_> {
    /// Starts `record_then_wait` on `pool` (with `options`) on a thread of
    /// `s`, and returns once the worker runs it.
    fn start<'scope, 'env>(
        s: &'scope std::thread::Scope<'scope, 'env>,
        pool: &'env Pool,
        scope: &Scope,
        options: CallOptions,
    ) -> HeldCall<'scope> {
        let started = scope.path("started");
        let release = scope.path("release");
        let args = json!({"record_path": started, "wait_path": release});
        let call = s.spawn(move || {
            pool.execute_blocking_with("record_then_wait", args, options)
                .map(|reply| reply.value)
        });
        assert!(wait_until(PATIENCE, || started.exists()), "the call runs");
        HeldCall { call, release }
    }

    /// Lets the call finish.
    fn release(&self) {
        std::fs::write(&self.release, "go").unwrap();
    }

    fn outcome(self) -> Result<serde_json::Value, Error> {
        self.call.join().unwrap()
    }
}

/// The endpoint running a call now (the test runs one at a time there).
fn busy_endpoint(pool: &Pool) -> String {
    pool.stats()
        .per_worker
        .into_iter()
        .find(|w| w.load > 0)
        .and_then(|w| w.endpoint)
        .expect("a worker is running the call")
}

#[test]
fn a_stopped_worker_is_detected_by_keepalive_and_its_call_fails() {
    let scope = Scope::new("remote-stop");
    let worker = start(&scope, None, &Serve::default());
    let pool = builder()
        .remote(
            Remote::endpoints([worker.address.clone()])
                .keepalive(Duration::from_millis(200), Duration::from_millis(500)),
        )
        .build()
        .unwrap();
    let (err, took) = std::thread::scope(|s| {
        let held = HeldCall::start(s, &pool, &scope, CallOptions::new());
        let stopped = Instant::now();
        worker.signal(libc::SIGSTOP);
        let err = held.outcome().unwrap_err();
        (err, stopped.elapsed())
    });
    assert!(
        matches!(err, Error::WorkerCrashed { .. }),
        "expected WorkerCrashed, got {err:?}"
    );
    // Far under the call timeout (30 s): the keepalive bound is 0.7 s.
    assert!(took < Duration::from_secs(15), "{took:?}");
    worker.signal(libc::SIGCONT);
    pool.shutdown();
}

#[test]
fn sigterm_drains_a_worker_without_losing_a_call() {
    let scope = Scope::new("remote-drain");
    let mut a = start(&scope, None, &Serve::default());
    let mut b = start(&scope, None, &Serve::default());
    let pool = builder()
        .remote(Remote::endpoints([a.address.clone(), b.address.clone()]))
        .build()
        .unwrap();
    let drained = std::thread::scope(|s| {
        // A call in flight; then SIGTERM the worker running it.
        let held = HeldCall::start(s, &pool, &scope, CallOptions::new());
        let busy = busy_endpoint(&pool);
        let (draining, other) = if busy == a.address {
            (&a, &b)
        } else {
            (&b, &a)
        };
        draining.signal(libc::SIGTERM);
        // New calls go on, all to the other worker, none lost.
        for _ in 0..10 {
            assert_runs_on(&pool, other);
        }
        held.release();
        assert_eq!(held.outcome().unwrap(), json!(true));
        busy
    });
    // The drained worker exits 0 once its call is done.
    let drained = if drained == a.address { &mut a } else { &mut b };
    assert_eq!(drained.wait_exit(PATIENCE), Some(Some(0)));
    pool.shutdown();
}

#[test]
fn with_every_endpoint_gone_calls_wait_then_time_out_and_the_pool_is_degraded() {
    let scope = Scope::new("remote-gone");
    let worker = start(&scope, None, &Serve::default());
    let (set, remote) = discovery(vec![worker.address.clone()]);
    let pool = builder()
        .queue_timeout(Duration::from_millis(300))
        .remote(remote)
        .build()
        .unwrap();
    common::assert_serves(&pool);
    set.lock().clear();
    assert!(wait_until(PATIENCE, || ready_endpoints(&pool).is_empty()));
    let err = pool.execute_blocking("ping", json!({})).unwrap_err();
    assert!(matches!(err, Error::QueueTimeout { .. }), "{err:?}");
    assert!(pool.stats().degraded);
    // It comes back.
    set.lock().push(worker.address.clone());
    assert!(wait_until(PATIENCE, || !ready_endpoints(&pool).is_empty()));
    common::assert_serves(&pool);
    assert!(!pool.stats().degraded);
    pool.shutdown();
}

#[test]
fn a_session_whose_endpoint_vanished_moves_or_fails_by_affinity() {
    let scope = Scope::new("remote-session");
    let a = start(&scope, None, &Serve::default());
    let b = start(&scope, None, &Serve::default());
    let (set, remote) = discovery(vec![a.address.clone(), b.address.clone()]);
    let pool = builder().remote(remote).build().unwrap();
    let hinted = pool.session("hinted");
    let strict = pool.session("strict");
    let strict_call = |s: &snakepit::Session| {
        s.execute_blocking_with(
            "pid",
            json!({}),
            CallOptions::new().affinity(Affinity::StrictQueue),
        )
        .map(|reply| reply.value)
    };
    let home = hinted.execute_blocking("pid", json!({})).unwrap();
    let strict_home = strict_call(&strict).unwrap();
    // Take away the endpoint of the hinted session (and maybe the strict).
    let gone = if home == json!(a.pid()) { &a } else { &b };
    set.lock().retain(|x| *x != gone.address);
    assert!(wait_until(PATIENCE, || !ready_endpoints(&pool).contains(&gone.address)));
    let moved = hinted.execute_blocking("pid", json!({})).unwrap();
    assert_ne!(moved, home, "the hinted session moved");
    if strict_home == home {
        let err = strict_call(&strict).unwrap_err();
        assert!(
            matches!(err, Error::SessionWorkerUnavailable { .. }),
            "{err:?}"
        );
    } else {
        assert_eq!(strict_call(&strict).unwrap(), strict_home);
    }
    pool.shutdown();
}

/// A process-profile worker stuck in a call past its deadline exits (as
/// Kubernetes would then restart it); the caller gets `Timeout`, and the
/// pool serves again once the worker is back at the same address.
#[test]
fn a_hung_process_worker_exits_and_its_restart_is_picked_up() {
    let scope = Scope::new("remote-hung");
    let mut worker = start(&scope, None, &Serve::default());
    let pool = builder()
        .restart_backoff(Duration::from_millis(50), Duration::from_millis(200))
        .remote(Remote::endpoints([worker.address.clone()]))
        .build()
        .unwrap();
    let err = pool
        .execute_blocking_with(
            "sleep",
            json!({"ms": 60_000}),
            CallOptions::new().timeout(Duration::from_millis(500)),
        )
        .unwrap_err();
    assert!(matches!(err, Error::Timeout { .. }), "{err:?}");
    assert_eq!(worker.wait_exit(PATIENCE), Some(Some(70)));
    // Restarted where it was, as a Deployment's pod keeps its address.
    let address = worker.address.clone();
    drop(worker);
    let restarted = start(
        &scope,
        None,
        &Serve {
            listen: Some(address.clone()),
            ..Serve::default()
        },
    );
    assert_eq!(restarted.address, address);
    wait_for_endpoints(&pool, std::slice::from_ref(&address));
    assert_runs_on(&pool, &restarted);
    pool.shutdown();
}

/// Streams, binary payloads, sessions and the tools listing work on a
/// remote worker as on a local one.
#[test]
fn streams_binary_and_tools_work_remotely() {
    let scope = Scope::new("remote-features");
    let worker = start(&scope, None, &Serve::default());
    let pool = builder()
        .remote(Remote::endpoints([worker.address.clone()]))
        .build()
        .unwrap();
    let chunks: Vec<snakepit::Chunk> = pool
        .execute_stream("count_stream", json!({"n": 50}))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let expected: Vec<snakepit::Chunk> = (0..50)
        .map(|i| snakepit::Chunk::Json(json!({ "i": i })))
        .collect();
    assert_eq!(chunks, expected);
    let reply = pool
        .execute_blocking_with(
            "binary_len",
            json!({}),
            CallOptions::new().binary("data", vec![7u8; 100_000]),
        )
        .unwrap();
    assert_eq!(reply.value, json!(100_000));
    let session = pool.session("s1");
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
    let tools = pool.tools().unwrap();
    assert!(tools.iter().any(|t| t.name == "count_stream"));
    assert!(pool
        .registered_tools()
        .iter()
        .any(|t| t.name == "ping" && t.worker == "worker-0"));
    pool.shutdown();
}

/// An endpoint that cannot serve fails calls fast while it is the pool's
/// only one; once it leaves, calls wait for another again.
#[test]
fn a_failing_endpoint_that_left_is_no_longer_the_pools_failure() {
    let scope = Scope::new("remote-failing");
    let wrong = start(
        &scope,
        None,
        &Serve {
            adapter: Some("snakepit_showcase.snakepit_style.SnakepitStyleAdapter".into()),
            ..Serve::default()
        },
    );
    let (set, remote) = discovery(Vec::new());
    let pool = builder()
        .queue_timeout(Duration::from_millis(200))
        .restart_backoff(Duration::from_millis(20), Duration::from_millis(100))
        .remote(remote.max_endpoints(1))
        .build()
        .unwrap();
    let kind = || pool.execute_blocking("ping", json!({})).unwrap_err().kind();
    assert_eq!(kind(), snakepit::ErrorKind::QueueTimeout);
    set.lock().push(wrong.address.clone());
    assert!(
        wait_until(PATIENCE, || kind() == snakepit::ErrorKind::Startup),
        "calls fail with the endpoint's start-up error"
    );
    set.lock().clear();
    assert!(
        wait_until(PATIENCE, || kind() == snakepit::ErrorKind::QueueTimeout),
        "calls wait again"
    );
    pool.shutdown();
}

/// Records the telemetry events a remote worker's tools emit.
#[derive(Debug, Default, Clone)]
struct Telemetry(Arc<Mutex<Vec<snakepit::telemetry::TelemetryEvent>>>);

impl snakepit::events::HandleEvent for Telemetry {
    fn telemetry(&self, event: &snakepit::telemetry::TelemetryEvent) {
        self.0.lock().push(event.clone());
    }
}

/// A remote worker's tools stream their telemetry events to the host, as
/// a local worker's do, with the call's correlation id.
#[test]
fn telemetry_arrives_from_a_remote_worker() {
    let scope = Scope::new("remote-telemetry");
    let worker = start(&scope, None, &Serve::default());
    let seen = Telemetry::default();
    let pool = builder()
        .event_handler(seen.clone())
        .remote(Remote::endpoints([worker.address.clone()]))
        .build()
        .unwrap();
    pool.execute_blocking_with(
        "emit_events",
        json!({"n": 20, "name": "remote.tick"}),
        CallOptions::new().correlation_id("remote-1"),
    )
    .unwrap();
    assert!(wait_until(PATIENCE, || seen
        .0
        .lock()
        .iter()
        .filter(|e| e.name == "remote.tick")
        .count()
        == 20));
    assert!(seen
        .0
        .lock()
        .iter()
        .filter(|e| e.name == "remote.tick")
        .all(|e| e.correlation_id.as_deref() == Some("remote-1")));
    pool.shutdown();
}
