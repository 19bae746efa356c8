//! The fault scenarios, written once: `tests/faults.rs` runs them small and
//! asserts what each promises; `bench -- faults` runs them larger and
//! prints their figures (it includes this file by path).
//!
//! Each scenario builds its own pool from the builder it is given (the
//! tests add the tag that finds their processes), injects one kind of
//! fault, and returns a [`Tally`]: the calls attempted, how they ended, how
//! long the pool took to be back to full size, and what the host process
//! gained in descriptors, threads and memory. Outcomes that break the
//! scenario's promise are counted in [`Tally::broken`], never panicked
//! on, so the bench can still report them.
//!
//! Every scenario runs under a hard deadline ([`bounded`]); every call in
//! it carries a call and a queue timeout, so no fault can hang a run.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use snakepit::{CallOptions, Chunk, Error, Pool, PoolBuilder};

/// The adapter with the fault tools (`python/snakepit_showcase/faults.py`).
pub const FAULTY: &str = "snakepit_showcase.faults.FaultyAdapter";

/// How long a call may take in any scenario: generous, since a crash storm
/// on a loaded 2-core machine can hold a call for seconds; it only turns a
/// hang into a failure the tally shows.
const CALL_LIMIT: Duration = Duration::from_secs(60);

/// Broken promises a [`Tally`] describes; the others are only counted.
pub const KEPT_EXAMPLES: usize = 10;

/// How large a run is.
#[derive(Debug, Clone, Copy)]
pub struct Scale {
    /// Worker processes SIGKILLed in the crash storm.
    pub storm_kills: u32,
    /// Rounds of the other scenarios (cuts, spews, recycles, stops).
    pub rounds: u32,
    /// MiB of garbage per `spew` call.
    pub spew_mb: u32,
    /// The hard deadline of one scenario.
    pub deadline: Duration,
}

impl Scale {
    /// For the test suite and `bench -- --quick faults`.
    pub const SMALL: Scale = Scale {
        storm_kills: 20,
        rounds: 3,
        spew_mb: 8,
        deadline: Duration::from_secs(180),
    };
    /// For `bench -- faults`.
    pub const FULL: Scale = Scale {
        storm_kills: 100,
        rounds: 10,
        spew_mb: 32,
        deadline: Duration::from_secs(300),
    };
}

/// What the host process holds: open descriptors, the pool's and gRPC's
/// threads, resident memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Host {
    pub fds: i64,
    /// Threads named as the pool names its own (`snakepit-*`) and as gRPC
    /// names its (`grpc*`, `default-executo`, `resolver-execut`): not the
    /// callers' threads, nor a test harness's, which come and go with other
    /// tests of the same binary; nor gRPC core's timer threads
    /// (`grpc_global_timer`), a pool of the whole process that gRPC grows
    /// and shrinks with its timers (the first reconnection after a cut
    /// connection adds one), whatever pools exist; nor gRPC core's executor
    /// threads (`default-executor`, `resolver-executor`), which it starts on
    /// demand, up to two per core, and keeps for as long as the library is
    /// initialized, whatever pools exist.
    pub threads: i64,
    pub rss_bytes: i64,
}

/// Whether a thread of this name (`/proc/.../comm`, cut at 15 bytes) is
/// the pool's (its own threads, its gRPC completion-queue threads) or one
/// gRPC starts for a while (`grpc_shutdown`, ...), not one of gRPC's
/// process-wide pools (see [`Host::threads`]).
fn is_pool_thread(name: &str) -> bool {
    name.starts_with("snakepit")
        || (name.starts_with("grpc") && !name.starts_with("grpc_global_tim"))
}

impl Host {
    /// Read from `/proc/self` now.
    pub fn now() -> Host {
        let count = |dir: &str| std::fs::read_dir(dir).map_or(-1, |d| d.count() as i64);
        let rss_kib = std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| {
                let line = s.lines().find(|l| l.starts_with("VmRSS:"))?.to_owned();
                line.split_whitespace().nth(1)?.parse::<i64>().ok()
            })
            .unwrap_or(-1);
        Host {
            fds: count("/proc/self/fd"),
            threads: thread_names().iter().filter(|n| is_pool_thread(n)).count() as i64,
            rss_bytes: rss_kib * 1024,
        }
    }

    /// `later` minus `self`, field by field.
    pub fn growth_to(&self, later: &Host) -> Host {
        Host {
            fds: later.fds - self.fds,
            threads: later.threads - self.threads,
            rss_bytes: later.rss_bytes - self.rss_bytes,
        }
    }

    /// The host after a pool has shut down: threads and descriptors of the
    /// pool close a moment after `shutdown` returns (gRPC's completion
    /// queues drain), so wait, up to a few seconds, for them to fall back
    /// to `before`'s; then read.
    pub fn settled_after(before: &Host) -> Host {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let now = Host::now();
            if (now.fds <= before.fds && now.threads <= before.threads)
                || Instant::now() >= deadline
            {
                return now;
            }
            thread::sleep(Duration::from_millis(10));
        }
    }
}

/// The names of the host's threads now, sorted: what a failed thread count
/// shows.
pub fn thread_names() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir("/proc/self/task")
        .map(|tasks| {
            tasks
                .flatten()
                .filter_map(|t| std::fs::read_to_string(t.path().join("comm")).ok())
                .map(|n| n.trim().to_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// How one scenario went.
#[derive(Debug, Clone)]
pub struct Tally {
    /// The scenario's name.
    pub scenario: &'static str,
    /// Calls (and streams) started.
    pub attempted: u64,
    /// Calls that returned their value (streams: every chunk, in order).
    pub succeeded: u64,
    /// Calls that failed, by error kind (`worker_crashed`, ...).
    pub failed: BTreeMap<String, u64>,
    /// Outcomes the scenario promises never happen: the first
    /// [`KEPT_EXAMPLES`], described.
    pub unexpected: Vec<String>,
    /// How many outcomes broke the promise (`unexpected` keeps the first
    /// few).
    pub broken: u64,
    /// From the end of the fault until every worker was ready again;
    /// `None` if that did not happen within the scenario's deadline.
    pub back_to_full: Option<Duration>,
    /// What the host gained from before the pool was built to after it
    /// was shut down.
    pub growth: Host,
    /// Scenario-specific counts (kills, recycles, cuts, bytes written...).
    pub extra: BTreeMap<&'static str, u64>,
}

impl Tally {
    fn new(scenario: &'static str) -> Tally {
        Tally {
            scenario,
            attempted: 0,
            succeeded: 0,
            failed: BTreeMap::new(),
            unexpected: Vec::new(),
            broken: 0,
            back_to_full: None,
            growth: Host {
                fds: 0,
                threads: 0,
                rss_bytes: 0,
            },
            extra: BTreeMap::new(),
        }
    }

    /// Counts one call's outcome; `allowed` says which failures the
    /// scenario expects (anything else breaks the promise).
    fn count<T>(&mut self, what: &str, outcome: &Result<T, Error>, allowed: &[&str]) {
        self.attempted += 1;
        match outcome {
            Ok(_) => self.succeeded += 1,
            Err(e) => {
                let kind = e.kind().as_str();
                *self.failed.entry(kind.to_owned()).or_default() += 1;
                if !allowed.contains(&kind) {
                    self.broke(format!("{what}: {e}"));
                }
            }
        }
    }

    /// Records an outcome that breaks the scenario's promise.
    fn broke(&mut self, what: impl Into<String>) {
        self.broken += 1;
        if self.unexpected.len() < KEPT_EXAMPLES {
            self.unexpected.push(what.into());
        }
    }

    /// Calls that failed, all kinds together.
    pub fn failures(&self) -> u64 {
        self.failed.values().sum()
    }

    /// The figures as JSON, for the bench's line.
    pub fn to_json(&self) -> Value {
        json!({
            "attempted": self.attempted,
            "succeeded": self.succeeded,
            "failed": self.failed,
            "broken_promises": self.broken,
            "back_to_full_ms": self
                .back_to_full
                .map(|d| (d.as_secs_f64() * 1e4).round() / 10.0),
            "fd_growth": self.growth.fds,
            "thread_growth": self.growth.threads,
            "rss_growth_bytes": self.growth.rss_bytes,
            "extra": self.extra,
        })
    }
}

/// Runs `scenario` on a thread of its own and waits for it at most
/// `deadline`: a scenario that hangs becomes an error, not a hung run. (Its
/// thread is left behind; the caller's process is about to report and end.)
pub fn bounded(
    name: &str,
    deadline: Duration,
    scenario: impl FnOnce() -> Result<Tally, String> + Send + 'static,
) -> Result<Tally, String> {
    let (tx, rx) = crossbeam_channel::bounded(1);
    thread::Builder::new()
        .name(format!("fault-{name}"))
        .spawn(move || {
            let _ = tx.send(scenario());
        })
        .map_err(|e| format!("{name}: cannot start its thread: {e}"))?;
    match rx.recv_timeout(deadline) {
        Ok(outcome) => outcome,
        Err(_) => Err(format!(
            "{name}: not finished within its deadline of {deadline:?}"
        )),
    }
}

/// One pool built, called, its connection cut and remade, and shut down:
/// what gRPC starts once per process (its threads, its allocations) is
/// then not counted as any scenario's growth.
pub fn warm_up(builder: PoolBuilder) -> Result<(), String> {
    let pool = builder
        .adapter(FAULTY)
        .workers(1)
        .build()
        .map_err(|e| format!("warm-up: {e}"))?;
    let _cut = pool.execute_blocking_with("cut_reply", json!({}), limits());
    pool.execute_blocking_with("ping", json!({}), limits())
        .map_err(|e| format!("warm-up: {e}"))?;
    pool.shutdown();
    Ok(())
}

/// Sends `signal` to `pid`.
fn signal(pid: u32, signal: libc::c_int) {
    // SAFETY: a plain syscall; the pid is a worker of the scenario's pool.
    unsafe {
        libc::kill(pid as libc::pid_t, signal);
    }
}

/// The live (not zombie) child processes of this process: the worker
/// processes of its pools, started or starting.
fn children() -> Vec<u32> {
    let me = std::process::id().to_string();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            // `pid (comm) state ppid ...`; comm may hold spaces and parens.
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                return false;
            };
            let Some((_, rest)) = stat.rsplit_once(')') else {
                return false;
            };
            let mut fields = rest.split_whitespace();
            let state = fields.next();
            fields.next() == Some(me.as_str()) && state != Some("Z")
        })
        .collect()
}

/// Waits until every worker of `pool` is ready, at most `limit`; how long
/// it took.
fn time_to_full(pool: &Pool, limit: Duration) -> Option<Duration> {
    let start = Instant::now();
    loop {
        let stats = pool.stats();
        if stats.ready_workers == stats.workers {
            return Some(start.elapsed());
        }
        if start.elapsed() >= limit {
            return None;
        }
        thread::sleep(Duration::from_millis(2));
    }
}

/// The end of every scenario: the pool serves a call and holds none, is
/// shut down, and the host's growth is read.
fn finish(mut tally: Tally, pool: Pool, before: &Host) -> Result<Tally, String> {
    let reply = pool
        .execute_blocking_with("ping", json!({}), limits())
        .map(|r| r.value);
    if reply.as_ref().ok() != Some(&json!("pong")) {
        tally.broke(format!(
            "the pool does not serve after the fault: {reply:?}"
        ));
    }
    let stats = pool.stats();
    if stats.load != 0 || stats.queued != 0 {
        tally.broke(format!(
            "calls left held after the scenario: load {}, queued {}",
            stats.load, stats.queued
        ));
    }
    pool.shutdown();
    drop(pool);
    tally.growth = before.growth_to(&Host::settled_after(before));
    Ok(tally)
}

/// A call and queue timeout of [`CALL_LIMIT`].
fn limits() -> CallOptions {
    CallOptions::new()
        .timeout(CALL_LIMIT)
        .queue_timeout(CALL_LIMIT)
}

fn build(builder: PoolBuilder, workers: usize) -> Result<Pool, String> {
    builder
        .adapter(FAULTY)
        .workers(workers)
        .queue_timeout(CALL_LIMIT)
        .restart_backoff(Duration::from_millis(10), Duration::from_millis(200))
        .build()
        .map_err(|e| format!("build: {e}"))
}

/// Workers SIGKILLed one after another (`storm_kills` of them, every 20 ms,
/// ready or still starting) while 8 threads call `add`, half the calls
/// idempotent. Promise: an
/// idempotent call rides the storm out (it is retried on another worker);
/// a non-idempotent call either succeeds or fails with `WorkerCrashed`,
/// nothing else; no call hangs; the pool is back to full size afterwards.
pub fn crash_storm(builder: PoolBuilder, scale: Scale) -> Result<Tally, String> {
    const WORKERS: usize = 4;
    const CALLERS: u64 = 8;
    let before = Host::now();
    let pool = build(builder, WORKERS)?;
    let stop = Arc::new(AtomicBool::new(false));
    let tally = Arc::new(Mutex::new(Tally::new("crash_storm")));
    let callers: Vec<_> = (0..CALLERS)
        .map(|t| {
            let (pool, stop, tally) = (pool.clone(), stop.clone(), tally.clone());
            thread::spawn(move || {
                let mut i = 0u64;
                while !stop.load(SeqCst) {
                    let idempotent = (t + i).is_multiple_of(2);
                    let opts = if idempotent {
                        limits().idempotent(true).crash_retries(u8::MAX)
                    } else {
                        limits()
                    };
                    let outcome = pool.execute_blocking_with("add", json!({"a": t, "b": i}), opts);
                    let mut tally = tally.lock().unwrap();
                    let (what, allowed): (&str, &[&str]) = if idempotent {
                        ("idempotent add", &[])
                    } else {
                        ("add", &["worker_crashed"])
                    };
                    tally.count(what, &outcome, allowed);
                    if let Ok(v) = &outcome {
                        if v.value != json!(t + i) {
                            tally.broke(format!("add({t}, {i}) = {}", v.value));
                        }
                    }
                    let key = if idempotent {
                        "idempotent_calls"
                    } else {
                        "plain_calls"
                    };
                    *tally.extra.entry(key).or_default() += 1;
                    i += 1;
                }
            })
        })
        .collect();

    let mut kills = 0u32;
    let mut n = 0usize;
    while kills < scale.storm_kills {
        thread::sleep(Duration::from_millis(20));
        // Workers ready or still starting: the pool's processes are the
        // host's children.
        let pids = children();
        if !pids.is_empty() {
            n = n.wrapping_mul(31).wrapping_add(7);
            signal(pids[n % pids.len()], libc::SIGKILL);
            kills += 1;
        }
    }
    let full = time_to_full(&pool, CALL_LIMIT);
    stop.store(true, SeqCst);
    for caller in callers {
        caller.join().map_err(|_| "a caller thread panicked")?;
    }
    let mut tally = Arc::try_unwrap(tally)
        .map_err(|_| "callers still hold the tally")?
        .into_inner()
        .unwrap();
    tally.back_to_full = full;
    let stats = pool.stats();
    tally.extra.insert("kills", u64::from(kills));
    tally.extra.insert("crashes_counted", stats.crashes);
    tally.extra.insert("restarts", stats.restarts);
    finish(tally, pool, &before)
}

/// A worker frozen with SIGSTOP while calls run, then thawed with SIGCONT
/// (a hang that is not a crash). Promise: every call succeeds (the one on
/// the frozen worker finishes when it thaws), no crash is counted and the
/// frozen process is still the one serving its slot.
pub fn stop_and_continue(builder: PoolBuilder, scale: Scale) -> Result<Tally, String> {
    const WORKERS: usize = 2;
    let before = Host::now();
    let pool = build(builder, WORKERS)?;
    let mut tally = Tally::new("stop_and_continue");
    for round in 0..scale.rounds {
        let pids = pool.stats().pids();
        let frozen = pids[round as usize % pids.len()];
        // Both workers busy with a short call when one freezes.
        let outcomes: Vec<_> = thread::scope(|s| {
            let calls: Vec<_> = (0..4)
                .map(|_| {
                    s.spawn(|| pool.execute_blocking_with("sleep", json!({"ms": 100}), limits()))
                })
                .collect();
            thread::sleep(Duration::from_millis(20));
            signal(frozen, libc::SIGSTOP);
            thread::sleep(Duration::from_millis(500));
            signal(frozen, libc::SIGCONT);
            calls
                .into_iter()
                .map(|c| c.join().expect("a caller panicked"))
                .collect()
        });
        for outcome in &outcomes {
            tally.count("sleep", outcome, &[]);
        }
        if !pool.stats().pids().contains(&frozen) {
            tally.broke(format!("the frozen worker {frozen} was replaced"));
        }
    }
    tally.back_to_full = time_to_full(&pool, CALL_LIMIT);
    let stats = pool.stats();
    if stats.crashes + stats.hung_killed + stats.unhealthy_killed != 0 {
        tally.broke(format!(
            "a freeze counted as a failure: {} crashes, {} hung killed, {} unhealthy killed",
            stats.crashes, stats.hung_killed, stats.unhealthy_killed
        ));
    }
    tally.extra.insert("freezes", u64::from(scale.rounds));
    finish(tally, pool, &before)
}

/// A worker shuts its connection to the host down in the middle of a
/// call: once before a unary reply (`cut_reply`), once after a few chunks
/// of a stream (`cut_stream`), each round. Promise: the call ends with an
/// error (`transport`, or `worker_crashed` if the process went with it),
/// never hangs to its timeout; the pool serves the next calls.
pub fn cut_connection(builder: PoolBuilder, scale: Scale) -> Result<Tally, String> {
    const WORKERS: usize = 2;
    const ALLOWED: &[&str] = &["transport", "worker_crashed"];
    let before = Host::now();
    let pool = build(builder, WORKERS)?;
    let mut tally = Tally::new("cut_connection");
    for _ in 0..scale.rounds {
        let outcome = pool.execute_blocking_with("cut_reply", json!({}), limits());
        if outcome.is_ok() {
            // The reply cannot travel on a connection that is shut down.
            tally.broke("cut_reply returned a value");
        }
        tally.count("cut_reply", &outcome, ALLOWED);

        let outcome = pool
            .execute_stream_with("cut_stream", json!({"n": 5}), limits())
            .and_then(|stream| {
                let mut got = 0u64;
                for chunk in stream {
                    chunk?;
                    got += 1;
                }
                Ok(got)
            });
        if let Ok(got) = &outcome {
            tally.broke(format!("cut_stream ended cleanly after {got} chunks"));
        }
        tally.count("cut_stream", &outcome, ALLOWED);

        // The next calls are served.
        for i in 0..10 {
            let outcome = pool.execute_blocking_with("add", json!({"a": i, "b": 1}), limits());
            tally.count("add after a cut", &outcome, &[]);
        }
    }
    tally.back_to_full = time_to_full(&pool, CALL_LIMIT);
    tally.extra.insert("cuts", 2 * u64::from(scale.rounds));
    finish(tally, pool, &before)
}

/// A worker writes `spew_mb` MiB of binary garbage (no text, lines of
/// 100 kB) to its stdout and stderr per call while another thread calls
/// `add`. Promise: every call succeeds; the host's memory does not follow
/// the garbage (it keeps a bounded tail of the worker's output).
pub fn garbage_output(builder: PoolBuilder, scale: Scale) -> Result<Tally, String> {
    const WORKERS: usize = 2;
    let before = Host::now();
    let pool = build(builder, WORKERS)?;
    let mut tally = Tally::new("garbage_output");
    let written = AtomicU64::new(0);
    let (spews, adds) = thread::scope(|s| {
        let spewer = s.spawn(|| {
            (0..scale.rounds)
                .map(|_| {
                    let outcome =
                        pool.execute_blocking_with("spew", json!({"mb": scale.spew_mb}), limits());
                    if let Ok(n) = &outcome {
                        written.fetch_add(n.value.as_u64().unwrap_or(0), SeqCst);
                    }
                    outcome
                })
                .collect::<Vec<_>>()
        });
        let adder = s.spawn(|| {
            (0..50 * u64::from(scale.rounds))
                .map(|i| pool.execute_blocking_with("add", json!({"a": i, "b": 1}), limits()))
                .collect::<Vec<_>>()
        });
        (
            spewer.join().expect("the spewer panicked"),
            adder.join().expect("the adder panicked"),
        )
    });
    for outcome in &spews {
        tally.count("spew", outcome, &[]);
    }
    for outcome in &adds {
        tally.count("add beside a spew", outcome, &[]);
    }
    tally.back_to_full = time_to_full(&pool, CALL_LIMIT);
    tally.extra.insert("garbage_bytes", written.load(SeqCst));
    finish(tally, pool, &before)
}

/// Reads a `count_stream` of `n` items to its end; `Ok` only if every item
/// came, in order.
fn read_count_stream(pool: &Pool, n: u64, delay_ms: u64) -> Result<(), Error> {
    let stream = pool.execute_stream_with(
        "count_stream",
        json!({"n": n, "delay_ms": delay_ms}),
        limits(),
    )?;
    let mut next = 0u64;
    for chunk in stream {
        let chunk = chunk?;
        if chunk != Chunk::Json(json!({ "i": next })) {
            return Err(Error::InvalidArgument {
                argument: "chunk",
                message: format!("item {next} of the stream was {chunk:?}"),
            });
        }
        next += 1;
    }
    if next != n {
        return Err(Error::InvalidArgument {
            argument: "chunk",
            message: format!("the stream ended after {next} of {n} items"),
        });
    }
    Ok(())
}

/// Workers recycled one after another (each waits for the replacement to
/// be ready) while 4 threads read streams of 40 items. Promise: every
/// stream arrives whole and in order: a recycle lets the streams in flight
/// finish on the old process.
pub fn recycle_while_streaming(builder: PoolBuilder, scale: Scale) -> Result<Tally, String> {
    const WORKERS: usize = 2;
    let before = Host::now();
    let pool = build(builder, WORKERS)?;
    let stop = AtomicBool::new(false);
    let mut tally = Tally::new("recycle_while_streaming");
    // The longest wait, from asking for a recycle to its replacement ready.
    let mut slowest: Option<Duration> = Some(Duration::ZERO);
    let (streams, recycle_errors) = thread::scope(|s| {
        let readers: Vec<_> = (0..4)
            .map(|_| {
                s.spawn(|| {
                    let mut outcomes = Vec::new();
                    while !stop.load(SeqCst) {
                        outcomes.push(read_count_stream(&pool, 40, 2));
                    }
                    outcomes
                })
            })
            .collect();
        let mut errors = Vec::new();
        for round in 0..scale.rounds as usize * WORKERS {
            // A stream is in flight on every worker before each recycle.
            let busy = |p: &Pool| p.stats().per_worker.iter().all(|w| w.load > 0);
            let until = Instant::now() + CALL_LIMIT;
            while !busy(&pool) && Instant::now() < until {
                thread::sleep(Duration::from_millis(1));
            }
            let slot = round % WORKERS;
            let old = pool.stats().per_worker[slot].pid;
            let id = pool.stats().per_worker[slot].id.clone();
            let asked = Instant::now();
            if let Err(e) = pool.recycle_worker(&id) {
                errors.push(format!("recycle_worker({id}): {e}"));
                continue;
            }
            let mut replaced = None;
            while asked.elapsed() < CALL_LIMIT {
                let w = &pool.stats().per_worker[slot];
                if w.pid != old && w.pid.is_some() && w.state == snakepit::WorkerState::Ready {
                    replaced = Some(asked.elapsed());
                    break;
                }
                thread::sleep(Duration::from_millis(2));
            }
            slowest = slowest.zip(replaced).map(|(a, b)| a.max(b));
        }
        stop.store(true, SeqCst);
        let streams: Vec<_> = readers
            .into_iter()
            .flat_map(|r| r.join().expect("a reader panicked"))
            .collect();
        (streams, errors)
    });
    for outcome in &streams {
        tally.count("count_stream", outcome, &[]);
    }
    for error in recycle_errors {
        tally.broke(error);
    }
    tally.back_to_full = slowest;
    let stats = pool.stats();
    tally.extra.insert("recycles", stats.recycles.manual);
    if stats.recycles.manual != u64::from(scale.rounds) * WORKERS as u64 {
        tally.broke(format!(
            "{} recycles counted, {} asked for",
            stats.recycles.manual,
            u64::from(scale.rounds) * WORKERS as u64
        ));
    }
    finish(tally, pool, &before)
}

/// The pool shut down while 4 streams run: 2 that end within the shutdown
/// grace period and 2 that would run for minutes. Promise: the short ones
/// arrive whole; the long ones end with `shutting_down`; `shutdown`
/// returns; a call after it fails with `shutting_down`.
pub fn shutdown_while_streaming(builder: PoolBuilder, scale: Scale) -> Result<Tally, String> {
    const WORKERS: usize = 4;
    let before = Host::now();
    let mut tally = Tally::new("shutdown_while_streaming");
    let mut shutdown_ms = Vec::new();
    for _ in 0..scale.rounds {
        let pool = build(
            builder.clone().shutdown_grace(Duration::from_secs(3)),
            WORKERS,
        )?;
        let started = Arc::new(std::sync::Barrier::new(WORKERS + 1));
        let readers: Vec<_> = (0..WORKERS as u64)
            .map(|k| {
                let (pool, started) = (pool.clone(), started.clone());
                // Short: 20 items 10 ms apart. Long: 100,000 of them.
                let n = if k % 2 == 0 { 20 } else { 100_000 };
                thread::spawn(move || {
                    let stream = pool.execute_stream_with(
                        "count_stream",
                        json!({"n": n, "delay_ms": 10}),
                        limits(),
                    );
                    let mut got = 0u64;
                    let outcome = stream.and_then(|mut stream| {
                        let first = stream.next();
                        started.wait();
                        for chunk in first.into_iter().chain(stream) {
                            chunk?;
                            got += 1;
                        }
                        Ok(())
                    });
                    (n, got, outcome)
                })
            })
            .collect();
        // Every stream has its first chunk: all four run.
        started.wait();
        let t = Instant::now();
        pool.shutdown();
        shutdown_ms.push(t.elapsed().as_millis() as u64);
        for reader in readers {
            let (n, got, outcome) = reader.join().map_err(|_| "a reader panicked")?;
            if n == 20 {
                if got != n {
                    tally.broke(format!("a short stream got {got} of {n} items"));
                }
                tally.count("short stream", &outcome, &[]);
            } else {
                if outcome.is_ok() {
                    tally.broke("a long stream ended cleanly at shutdown");
                }
                tally.count("long stream", &outcome, &["shutting_down"]);
            }
        }
        let after = pool.execute_blocking("ping", json!({}));
        if !matches!(after, Err(Error::ShuttingDown)) {
            tally.broke(format!("a call after shutdown: {after:?}"));
        }
    }
    tally.extra.insert(
        "shutdown_ms_max",
        shutdown_ms.iter().copied().max().unwrap_or(0),
    );
    tally.growth = before.growth_to(&Host::settled_after(&before));
    Ok(tally)
}

/// A scenario: a pool from the builder, a fault, its tally.
pub type Scenario = fn(PoolBuilder, Scale) -> Result<Tally, String>;

/// Every scenario, by name, in the order they run.
pub const SCENARIOS: [(&str, Scenario); 6] = [
    ("crash_storm", crash_storm),
    ("stop_and_continue", stop_and_continue),
    ("cut_connection", cut_connection),
    ("garbage_output", garbage_output),
    ("recycle_while_streaming", recycle_while_streaming),
    ("shutdown_while_streaming", shutdown_while_streaming),
];

/// Runs the named scenario under its deadline.
pub fn run(name: &'static str, builder: PoolBuilder, scale: Scale) -> Result<Tally, String> {
    let (_, scenario) = SCENARIOS
        .iter()
        .find(|(n, _)| *n == name)
        .ok_or_else(|| format!("no scenario {name}"))?;
    let scenario = *scenario;
    bounded(name, scale.deadline, move || scenario(builder, scale))
}
