//! Scenario 1: what the pool adds to one call.
//!
//! `pool.execute_blocking("ping")` on a one-worker process pool against a
//! bare blocking grpcio client calling the same worker script, sequential
//! calls, rounds alternating which goes first. Then where the pool's time
//! goes (from each reply's own timings), and what a thread hand-off costs
//! on this machine, modelled with the same channels and no gRPC.

use std::collections::BTreeMap;
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, unbounded, Receiver, Sender, TryRecvError};
use serde_json::json;
use snakepit::{CallOptions, Profile};

use super::Outcome;
use crate::measure::{
    cpu_by_thread, cpu_spent, host_cpu, host_switches, median, sequential, Batch,
};
use crate::raw::{self, RawWorker};
use crate::report::{ratio, round, time_us, Report, Table, Target};
use crate::Plan;

/// Medians over several batches: p50, p99, host CPU and thread blocks per
/// call.
struct Summary {
    p50: f64,
    p99: f64,
    cpu: f64,
    switches: f64,
}

impl Summary {
    fn of(batches: &[Batch]) -> Summary {
        let each = |f: fn(&Batch) -> f64| median(&batches.iter().map(f).collect::<Vec<_>>());
        Summary {
            p50: each(Batch::p50),
            p99: each(Batch::p99),
            cpu: each(|b| b.cpu_per_call_us),
            switches: each(|b| b.switches_per_call),
        }
    }

    fn json(&self) -> serde_json::Value {
        json!({
            "p50_us": round(self.p50, 1),
            "p99_us": round(self.p99, 1),
            "cpu_per_call_us": round(self.cpu, 1),
            "thread_blocks_per_call": round(self.switches, 2),
        })
    }
}

pub fn run(plan: &Plan, report: &mut Report) -> Outcome {
    let rounds = plan.pick(7, 2);
    let calls = plan.pick(2_000, 300);
    let warm_up = plan.pick(300, 50);
    let raw_worker = RawWorker::start(&plan.python)?;
    let req = raw::request("ping");
    let (mut raw_batches, mut pool_batches) = (Vec::new(), Vec::new());
    let (mut raw_threads, mut pool_threads) = (BTreeMap::new(), BTreeMap::new());
    // A batch after a warm-up; its CPU time is also added, thread by
    // thread, to `threads`.
    let measured = |call: &dyn Fn(), threads: &mut BTreeMap<String, u64>| {
        sequential(warm_up, call);
        let before = cpu_by_thread();
        let batch = sequential(calls, call);
        for (name, ns) in cpu_spent(&before, &cpu_by_thread()) {
            *threads.entry(name).or_insert(0) += ns;
        }
        batch
    };
    // Only one of the two gRPC environments exists at a time: gRPC's
    // pollers are process-wide, and each would otherwise do some of the
    // other's work. The order runs raw, pool, pool, raw, raw, pool, ...,
    // so each goes first in every other pair.
    for r in 0..rounds * 2 {
        if r % 4 == 0 || r % 4 == 3 {
            let client = raw_worker.connect();
            raw_batches.push(measured(
                &|| {
                    client.execute(&req);
                },
                &mut raw_threads,
            ));
        } else {
            let pool = super::pool(1, Profile::Process)?;
            pool_batches.push(measured(&|| super::ping(&pool), &mut pool_threads));
        }
    }
    let raw_s = Summary::of(&raw_batches);
    let pool_s = Summary::of(&pool_batches);
    drop(raw_worker);

    // The stages on each transport: on the socket transport the call is
    // short, so the two hand-offs are a larger share of it.
    let mut by_transport = Vec::new();
    for (name, transport) in super::TRANSPORTS {
        let pool = super::pool_on(transport, 1, Profile::Process)?;
        sequential(warm_up, || super::ping(&pool));
        by_transport.push((name, stages(&pool, calls)));
    }
    let model_calls = plan.pick(3_000, 500);
    let model = |hops, spin| {
        Summary::of(
            &(0..rounds)
                .map(|_| handoff_model(hops, model_calls, spin))
                .collect::<Vec<_>>(),
        )
    };
    let (no_hop, one_hop, two_hops) = (
        model(0, Duration::ZERO),
        model(1, Duration::ZERO),
        model(2, Duration::ZERO),
    );
    let one_hop_spinning = model(1, MODEL_SPIN);

    let mut t = Table::new(
        format!(
            "1. Overhead: `ping`, 1 worker, sequential calls (median of {rounds} rounds x {calls} calls)"
        ),
        &["path", "p50", "p99", "host CPU per call", "thread blocks per call"],
    );
    for (name, s) in [
        ("raw grpcio blocking client", &raw_s),
        ("pool.execute_blocking", &pool_s),
    ] {
        t.row(vec![
            name.into(),
            time_us(s.p50),
            time_us(s.p99),
            time_us(s.cpu),
            format!("{:.1}", s.switches),
        ]);
    }
    t.row(vec![
        "pool / raw".into(),
        ratio(pool_s.p50 / raw_s.p50),
        ratio(pool_s.p99 / raw_s.p99),
        ratio(pool_s.cpu / raw_s.cpu),
        ratio(pool_s.switches / raw_s.switches),
    ]);
    t.print();

    let per_call = |ns: u64| ns as f64 / 1e3 / (rounds * calls) as f64;
    let by_role = |threads: &BTreeMap<String, u64>| {
        let mut roles = BTreeMap::<&str, u64>::new();
        for (name, ns) in threads {
            *roles.entry(thread_role(name)).or_insert(0) += ns;
        }
        roles
    };
    let (raw_roles, pool_roles) = (by_role(&raw_threads), by_role(&pool_threads));
    let mut t = Table::new(
        "1b. Host CPU per call by thread (from /proc/self/task/*/schedstat, same batches)",
        &["thread", "raw grpcio", "pool"],
    );
    for role in ROLES {
        let raw = per_call(raw_roles.get(role).copied().unwrap_or(0));
        let pool = per_call(pool_roles.get(role).copied().unwrap_or(0));
        if raw >= 0.05 || pool >= 0.05 {
            t.row(vec![
                role.into(),
                format!("{raw:.1} µs"),
                format!("{pool:.1} µs"),
            ]);
        }
    }
    let mut by_thread = serde_json::Map::new();
    for name in raw_threads.keys().chain(pool_threads.keys()) {
        let raw = per_call(raw_threads.get(name).copied().unwrap_or(0));
        let pool = per_call(pool_threads.get(name).copied().unwrap_or(0));
        by_thread.insert(
            name.clone(),
            json!({"raw_us": round(raw, 2), "pool_us": round(pool, 2)}),
        );
    }
    let total = |m: &BTreeMap<String, u64>| per_call(m.values().sum());
    t.row(vec![
        "all threads".into(),
        format!("{:.1} µs", total(&raw_threads)),
        format!("{:.1} µs", total(&pool_threads)),
    ]);
    t.print();

    let mut t = Table::new(
        format!("1c. Where a pool call's time goes, by transport (median over {calls} calls)"),
        &["stage", "gRPC", "socket"],
    );
    let rows: [(&str, StageOf); 4] = [
        (
            "request sent -> lane starts the call (1 hand-off: caller to lane)",
            |s| s.to_lane,
        ),
        ("the call + decode, on the lane", |s| s.on_lane),
        ("encode + lane -> caller reply (1 hand-off)", |s| s.back),
        ("whole call, as the caller sees it", |s| s.total),
    ];
    for (name, stage) in rows {
        let mut row = vec![name.to_owned()];
        row.extend(by_transport.iter().map(|(_, s)| time_us(stage(s))));
        t.row(row);
    }
    t.print();

    let mut t = Table::new(
        format!(
            "1d. Thread hand-off model: crossbeam channels, parked threads, no gRPC (median of {rounds} rounds x {model_calls})"
        ),
        &["path", "p50", "p99", "host CPU per round trip", "thread blocks"],
    );
    for (name, s) in [
        (
            "caller -> lane -> caller (the pool, when no call waits)",
            &one_hop,
        ),
        (
            "caller -> lane -> caller, both spinning up to 50 µs before parking",
            &one_hop_spinning,
        ),
        (
            "caller -> dispatcher -> lane -> caller (a call that queued)",
            &two_hops,
        ),
    ] {
        t.row(vec![
            name.into(),
            time_us(s.p50),
            time_us(s.p99),
            time_us(s.cpu - no_hop.cpu),
            format!("{:.1}", s.switches - no_hop.switches),
        ]);
    }
    t.print();

    let p50_ratio = pool_s.p50 / raw_s.p50;
    let cpu_ratio = pool_s.cpu / raw_s.cpu;
    report.target(Target {
        name: "overhead: pool p50 / raw grpcio p50",
        measured: p50_ratio,
        limit: "<= 1.05",
        met: p50_ratio <= 1.05,
    });
    report.target(Target {
        name: "host CPU per call: pool / raw grpcio",
        measured: cpu_ratio,
        limit: "<= 1.2",
        met: cpu_ratio <= 1.2,
    });
    report.figures(
        "overhead",
        json!({
            "rounds": rounds,
            "calls_per_round": calls,
            "raw": raw_s.json(),
            "pool": pool_s.json(),
            "ratio_p50": round(p50_ratio, 3),
            "ratio_p99": round(pool_s.p99 / raw_s.p99, 3),
            "ratio_cpu": round(cpu_ratio, 3),
            "cpu_per_call_by_thread": by_thread,
            "stages_us": by_transport
                .iter()
                .map(|(name, s)| {
                    (
                        name.to_string(),
                        json!({
                            "to_lane": round(s.to_lane, 1),
                            "on_lane": round(s.on_lane, 1),
                            "back": round(s.back, 1),
                            "total": round(s.total, 1),
                        }),
                    )
                })
                .collect::<serde_json::Map<_, _>>(),
            "handoff_model": {
                "calls_per_round": model_calls,
                "no_hop_baseline": no_hop.json(),
                "one_hop": one_hop.json(),
                "one_hop_spinning_50us": one_hop_spinning.json(),
                "two_hops": two_hops.json(),
            },
        }),
    );
    Ok(())
}

/// The rows of table 1b, in order.
const ROLES: [&str; 6] = [
    "caller (the bench's main thread)",
    "pool dispatcher",
    "pool lane (and idle worker threads)",
    "gRPC completion queues, pool",
    "gRPC completion queues, raw client",
    "gRPC core's own threads (executor, timers)",
];

/// What a thread (by its name in /proc) does.
fn thread_role(name: &str) -> &'static str {
    match name {
        "bench" => "caller (the bench's main thread)",
        "snakepit-dispat" => "pool dispatcher",
        "snakepit-worker" => "pool lane (and idle worker threads)",
        "snakepit-grpc" => "gRPC completion queues, pool",
        "bench-raw" => "gRPC completion queues, raw client",
        _ => "gRPC core's own threads (executor, timers)",
    }
}

/// Reads one stage of [`Stages`].
type StageOf = fn(&Stages) -> f64;

/// Medians of a pool call's stages, in microseconds.
struct Stages {
    to_lane: f64,
    on_lane: f64,
    back: f64,
    total: f64,
}

/// Splits pool calls into stages using the reply's own timings: `queued`
/// runs from the request's creation (after encoding) to the lane starting
/// the gRPC call; `elapsed` to the lane having decoded the response.
fn stages(pool: &snakepit::Pool, calls: usize) -> Stages {
    let (mut to_lane, mut on_lane, mut back, mut total) = (vec![], vec![], vec![], vec![]);
    for _ in 0..calls {
        let t = std::time::Instant::now();
        let reply = pool
            .execute_blocking_with("ping", json!({}), CallOptions::new())
            .expect("ping");
        let seen = t.elapsed();
        let us = |d: Duration| d.as_secs_f64() * 1e6;
        to_lane.push(us(reply.queued));
        on_lane.push(us(reply.elapsed - reply.queued));
        back.push(us(seen.saturating_sub(reply.elapsed)));
        total.push(us(seen));
    }
    Stages {
        to_lane: median(&to_lane),
        on_lane: median(&on_lane),
        back: median(&back),
        total: median(&total),
    }
}

/// How long the spinning variant of the hand-off model checks for its
/// message before it parks.
const MODEL_SPIN: Duration = Duration::from_micros(50);

/// Receives from `rx`, checking for up to `spin` before parking.
fn recv_spinning<T>(rx: &Receiver<T>, spin: Duration) -> Option<T> {
    let until = Instant::now() + spin;
    while Instant::now() < until {
        match rx.try_recv() {
            Ok(message) => return Some(message),
            Err(TryRecvError::Disconnected) => return None,
            Err(TryRecvError::Empty) => std::hint::spin_loop(),
        }
    }
    rx.recv().ok()
}

/// Round trips through the pool's hand-off pattern with nothing else:
/// `hops` = 0 is the caller alone; 1 sends each request on an unbounded
/// channel to a lane thread that answers on the request's own bounded(1)
/// channel; 2 puts a dispatcher thread in between, as the pool does. After
/// each round trip the caller sleeps `GAP` (not timed), so every thread
/// has parked when the next request comes, as in the pool, where they wait
/// out a whole gRPC call. With `spin`, the lane and the caller check for
/// their message for up to that long before parking (the lane's spin
/// starts when it has answered, so it has ended by the next request; the
/// caller's covers the round trip). Host CPU per round trip includes the
/// sleep; subtract the 0-hop figure.
fn handoff_model(hops: usize, calls: usize, spin: Duration) -> Batch {
    const GAP: Duration = Duration::from_micros(300);
    let (lane_tx, lane_rx) = unbounded::<Sender<()>>();
    let lane = thread::spawn(move || {
        while let Some(reply) = recv_spinning(&lane_rx, spin) {
            let _ = reply.send(());
        }
    });
    let (entry, hop) = if hops == 2 {
        let (tx, rx) = unbounded::<Sender<()>>();
        let hop = thread::spawn(move || {
            for req in rx {
                lane_tx.send(req).expect("lane is up");
            }
        });
        (tx, Some(hop))
    } else {
        (lane_tx, None)
    };
    let mut latencies_us = Vec::with_capacity(calls);
    let (cpu, switches) = (host_cpu(), host_switches());
    for _ in 0..calls {
        let t = Instant::now();
        if hops > 0 {
            let (tx, rx) = bounded(1);
            entry.send(tx).expect("model is up");
            recv_spinning(&rx, spin).expect("answered");
        }
        latencies_us.push(t.elapsed().as_secs_f64() * 1e6);
        thread::sleep(GAP);
    }
    let cpu_per_call_us = (host_cpu() - cpu).as_secs_f64() * 1e6 / calls as f64;
    let switches_per_call = (host_switches() - switches) as f64 / calls as f64;
    drop(entry);
    if let Some(hop) = hop {
        hop.join().expect("dispatcher model");
    }
    lane.join().expect("lane model");
    Batch {
        latencies_us,
        cpu_per_call_us,
        switches_per_call,
    }
}
