//! Scenario 2: calls per second of process pools with 1, 2 and 4 workers,
//! from 1 to 16 caller threads, on `ping` and on a 1 ms CPU burn; the
//! host's own CPU time per call, and the Python workers' (which, on a small
//! machine, is what bounds the peak). Every pool is up for the whole
//! scenario and each round visits every cell, so slow drift spreads over
//! all of them.

use std::time::Duration;

use serde_json::json;
use snakepit::{Pool, Profile};

use super::Outcome;
use crate::measure::{median, process_cpu, window};
use crate::raw::{self, RawClient, RawWorker};
use crate::report::{per_sec, ratio, round, time_us, Report, Table, Target};
use crate::Plan;

const WORKERS: [usize; 3] = [1, 2, 4];
const THREADS: [usize; 5] = [1, 2, 4, 8, 16];
const TOOLS: [(&str, &str); 2] = [("ping", "ping"), ("cpu_burn 1 ms", "cpu_burn_1ms")];

/// One window's figures.
struct Cell {
    calls_per_sec: f64,
    host_cpu_us: f64,
    workers_cpu_us: f64,
}

pub fn run(plan: &Plan, report: &mut Report) -> Outcome {
    let rounds = plan.pick(3, 1);
    let length = Duration::from_millis(plan.pick(1_000, 250));
    let pools: Vec<Pool> = WORKERS
        .iter()
        .map(|&w| super::pool(w, Profile::Process))
        .collect::<Result<_, _>>()?;
    let call = |pool: &Pool, tool: usize| match tool {
        0 => super::ping(pool),
        _ => super::burn_1ms(pool),
    };
    let measure = |pool: &Pool, tool: usize, threads: usize, length: Duration| {
        let pids: Vec<u32> = pool.stats().pids();
        let workers_cpu = || pids.iter().map(|&p| process_cpu(p)).sum::<Duration>();
        let before = workers_cpu();
        let w = window(threads, length, |_| call(pool, tool));
        let calls = w.calls.max(1) as f64;
        Cell {
            calls_per_sec: w.calls_per_sec(),
            host_cpu_us: w.cpu_per_call_us(),
            workers_cpu_us: (workers_cpu() - before).as_secs_f64() * 1e6 / calls,
        }
    };
    for pool in &pools {
        for tool in 0..TOOLS.len() {
            measure(pool, tool, 16, Duration::from_millis(200));
        }
    }
    // The limit: the same work with no pool, one raw client thread per
    // worker, sharing one gRPC environment as the pool's workers do.
    let raw_workers = [
        RawWorker::start(&plan.python)?,
        RawWorker::start(&plan.python)?,
    ];
    let raw_requests = [
        raw::request("ping"),
        raw::request_with("cpu_burn", &[("ms", "1")]),
    ];
    let raw_window = |tool: usize, workers: usize, length: Duration| {
        let env = raw::new_env();
        let clients: Vec<RawClient> = raw_workers[..workers]
            .iter()
            .map(|w| w.connect_on(env.clone()))
            .collect();
        window(workers, length, |i| {
            clients[i].execute(&raw_requests[tool]);
        })
        .calls_per_sec()
    };
    // raw[tool][workers - 1]: calls/s, one per round
    let mut raw = vec![vec![vec![]; 2]; TOOLS.len()];
    // cells[tool][workers][threads]: one cell per round
    let mut cells: Vec<Vec<Vec<Vec<Cell>>>> = (0..TOOLS.len())
        .map(|_| {
            WORKERS
                .iter()
                .map(|_| THREADS.iter().map(|_| vec![]).collect())
                .collect()
        })
        .collect();
    for _ in 0..rounds {
        for (tool, by_tool) in cells.iter_mut().enumerate() {
            for (w, pool) in pools.iter().enumerate() {
                for (t, &threads) in THREADS.iter().enumerate() {
                    by_tool[w][t].push(measure(pool, tool, threads, length));
                }
            }
            for workers in 1..=2 {
                raw_window(tool, workers, Duration::from_millis(100));
                raw[tool][workers - 1].push(raw_window(tool, workers, length));
            }
        }
    }
    drop(pools);
    drop(raw_workers);

    let med = |cs: &[Cell], f: fn(&Cell) -> f64| median(&cs.iter().map(f).collect::<Vec<_>>());
    let rate = |cs: &[Cell]| med(cs, |c| c.calls_per_sec);
    let mut table = Table::new(
        format!(
            "2. Throughput, process profile: calls/s, and host CPU per call (median of {rounds} rounds x {:.2} s)",
            length.as_secs_f64()
        ),
        &[
            "tool",
            "callers",
            "1 worker",
            "2 workers",
            "4 workers",
            "host CPU/call 1w",
            "2w",
            "4w",
        ],
    );
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    let mut limits = Table::new(
        format!(
            "2b. What bounds the peak: CPU per call, host and Python workers, on {cores} cores"
        ),
        &[
            "tool",
            "workers",
            "peak calls/s",
            "at callers",
            "host CPU/call",
            "workers' CPU/call",
            "all cores busy at",
            "peak / that",
        ],
    );
    let mut limit = Table::new(
        "2c. The limit: no pool, one raw grpcio client thread per worker, against the pool's peak",
        &[
            "tool",
            "raw, 1 worker",
            "raw, 2 workers",
            "raw 2w / 1w",
            "pool 2w / 1w",
        ],
    );
    let mut figures = serde_json::Map::new();
    for (tool, (label, key)) in TOOLS.iter().enumerate() {
        let mut rows = Vec::new();
        for (t, threads) in THREADS.iter().enumerate() {
            let cell = |w: usize| &cells[tool][w][t][..];
            let mut row = vec![label.to_string(), threads.to_string()];
            row.extend((0..WORKERS.len()).map(|w| per_sec(rate(cell(w)))));
            row.extend((0..WORKERS.len()).map(|w| time_us(med(cell(w), |c| c.host_cpu_us))));
            table.row(row);
            rows.push(json!({
                "threads": threads,
                "calls_per_sec": (0..WORKERS.len()).map(|w| round(rate(cell(w)), 1)).collect::<Vec<_>>(),
                "host_cpu_per_call_us": (0..WORKERS.len()).map(|w| round(med(cell(w), |c| c.host_cpu_us), 1)).collect::<Vec<_>>(),
                "workers_cpu_per_call_us": (0..WORKERS.len()).map(|w| round(med(cell(w), |c| c.workers_cpu_us), 1)).collect::<Vec<_>>(),
            }));
        }
        // The peak of each pool size: its best caller count.
        let best = |w: usize| {
            (0..THREADS.len())
                .max_by(|&a, &b| rate(&cells[tool][w][a]).total_cmp(&rate(&cells[tool][w][b])))
                .expect("thread counts")
        };
        let peak = |w: usize| rate(&cells[tool][w][best(w)]);
        let mut row = vec![label.to_string(), "peak vs 1 worker".into(), "1.00x".into()];
        row.extend((1..WORKERS.len()).map(|w| ratio(peak(w) / peak(0))));
        row.extend(["".into(), "".into(), "".into()]);
        table.row(row);

        let mut peaks = Vec::new();
        for (w, workers) in WORKERS.iter().enumerate() {
            let cs = &cells[tool][w][best(w)];
            let (host, python) = (med(cs, |c| c.host_cpu_us), med(cs, |c| c.workers_cpu_us));
            let saturated = cores * 1e6 / (host + python);
            limits.row(vec![
                label.to_string(),
                workers.to_string(),
                per_sec(peak(w)),
                THREADS[best(w)].to_string(),
                time_us(host),
                time_us(python),
                format!("{} calls/s", per_sec(saturated)),
                ratio(peak(w) / saturated),
            ]);
            peaks.push(json!({
                "workers": workers,
                "calls_per_sec": round(peak(w), 1),
                "threads": THREADS[best(w)],
                "host_cpu_per_call_us": round(host, 1),
                "workers_cpu_per_call_us": round(python, 1),
                "all_cores_busy_calls_per_sec": round(saturated, 1),
            }));
        }
        let speedup = peak(1) / peak(0);
        let (raw1, raw2) = (median(&raw[tool][0]), median(&raw[tool][1]));
        limit.row(vec![
            label.to_string(),
            per_sec(raw1),
            per_sec(raw2),
            ratio(raw2 / raw1),
            ratio(speedup),
        ]);
        figures.insert(
            key.to_string(),
            json!({
                "rows": rows,
                "peaks": peaks,
                "raw_calls_per_sec": [round(raw1, 1), round(raw2, 1)],
                "raw_speedup_2w_vs_1w": round(raw2 / raw1, 3),
                "speedup_2w_vs_1w": round(speedup, 3),
                "speedup_4w_vs_1w": round(peak(2) / peak(0), 3),
            }),
        );
        if tool == 1 {
            report.target(Target {
                name: "scaling: 2 workers / 1 worker calls/s, 1 ms tool (peak)",
                measured: speedup,
                limit: ">= 1.8",
                met: speedup >= 1.8,
            });
        }
    }
    table.print();
    limits.print();
    limit.print();
    figures.insert("workers".into(), json!(WORKERS));
    figures.insert("rounds".into(), json!(rounds));
    figures.insert("window_s".into(), json!(length.as_secs_f64()));
    report.figures("scaling", serde_json::Value::Object(figures));
    Ok(())
}
