//! Scenario 6: what a Python user would pick instead. The same `ping` and
//! 1 ms CPU burn through `concurrent.futures.ProcessPoolExecutor`
//! (`examples/bench_process_pool.py`, 2 worker processes) and through a
//! 2-worker pool on each transport, rounds alternating between the three.

use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};
use snakepit::{Pool, Profile};

use super::TRANSPORTS;

use super::Outcome;
use crate::measure::{median, process_cpu, sequential, window};
use crate::report::{per_sec, ratio, round, time_us, Report, Table, Target};
use crate::Plan;

const WORKERS: usize = 2;
const THREADS: usize = 16;
/// (label, key in the script's output)
const TOOLS: [(&str, &str); 2] = [("ping", "ping"), ("cpu_burn 1 ms", "cpu_burn_1ms")];

/// The figures compared, as (label, path in a round's JSON).
const FIGURES: [(&str, &str, &str); 8] = [
    ("p50 latency, sequential", "sequential", "p50_us"),
    ("p99 latency, sequential", "sequential", "p99_us"),
    ("calls/s, 16 caller threads", "threads", "calls_per_sec"),
    ("calls/s, executor.map", "map", "calls_per_sec"),
    (
        "host CPU per call, sequential",
        "sequential",
        "cpu_per_call_us",
    ),
    (
        "host CPU per call, 16 threads",
        "threads",
        "cpu_per_call_us",
    ),
    ("host CPU per call, executor.map", "map", "cpu_per_call_us"),
    (
        "Python workers' CPU per call, 16 threads",
        "threads",
        "workers_cpu_per_call_us",
    ),
];

pub fn run(plan: &Plan, report: &mut Report) -> Outcome {
    let rounds = plan.pick(3, 1);
    let calls = plan.pick(1_000, 200);
    let batch = plan.pick(2_000, 400);
    let length = Duration::from_millis(plan.pick(1_000, 250));
    let pools = TRANSPORTS
        .iter()
        .map(|&(_, transport)| super::pool_on(transport, WORKERS, Profile::Process))
        .collect::<Result<Vec<Pool>, _>>()?;
    let call = |pool: &Pool, tool: &str| match tool {
        "ping" => super::ping(pool),
        _ => super::burn_1ms(pool),
    };
    for pool in &pools {
        for (_, tool) in TOOLS {
            sequential(calls / 10, || call(pool, tool));
        }
    }

    // Per transport, one JSON object per round.
    let mut pool_rounds = vec![Vec::new(); pools.len()];
    let mut python_rounds = Vec::new();
    for _ in 0..rounds {
        python_rounds.push(process_pool_executor(plan, calls, batch)?);
        for (pool, rounds_of) in pools.iter().zip(&mut pool_rounds) {
            let mut this = serde_json::Map::new();
            for (_, tool) in TOOLS {
                let seq = sequential(calls, || call(pool, tool));
                let pids = pool.stats().pids();
                let workers_cpu = || pids.iter().map(|&p| process_cpu(p)).sum::<Duration>();
                let before = workers_cpu();
                let win = window(THREADS, length, |_| call(pool, tool));
                let workers_cpu_us =
                    (workers_cpu() - before).as_secs_f64() * 1e6 / win.calls.max(1) as f64;
                this.insert(
                    tool.into(),
                    json!({
                        "sequential": {
                            "p50_us": seq.p50(),
                            "p99_us": seq.p99(),
                            "cpu_per_call_us": seq.cpu_per_call_us,
                        },
                        "threads": {
                            "calls_per_sec": win.calls_per_sec(),
                            "cpu_per_call_us": win.cpu_per_call_us(),
                            "workers_cpu_per_call_us": workers_cpu_us,
                        },
                    }),
                );
            }
            rounds_of.push(Value::Object(this));
        }
    }
    drop(pools);

    let python_version = python_rounds[0]["python"]
        .as_str()
        .unwrap_or("?")
        .to_owned();
    let median_of = |rounds: &[Value], tool: &str, part: &str, key: &str| {
        let values: Vec<f64> = rounds
            .iter()
            .filter_map(|r| r[tool][part][key].as_f64())
            .collect();
        (!values.is_empty()).then(|| median(&values))
    };
    let mut t = Table::new(
        format!(
            "6. Against Python's ProcessPoolExecutor, {WORKERS} worker processes each (median of {rounds} rounds; Python {python_version})"
        ),
        &[
            "tool",
            "measure",
            "pool, gRPC",
            "pool, socket",
            "ProcessPoolExecutor",
            "gRPC / executor",
            "socket / executor",
        ],
    );
    let mut figures = serde_json::Map::new();
    for (label, tool) in TOOLS {
        let mut by_tool = serde_json::Map::new();
        for (name, part, key) in FIGURES {
            let ours: Vec<Option<f64>> = pool_rounds
                .iter()
                .map(|r| median_of(r, tool, part, key))
                .collect();
            let theirs = median_of(&python_rounds, tool, part, key);
            let show = |v: Option<f64>| match v {
                None => "-".to_owned(),
                Some(v) if key == "calls_per_sec" => per_sec(v),
                Some(v) => time_us(v),
            };
            let versus = |ours: Option<f64>| match (ours, theirs) {
                (Some(a), Some(b)) => ratio(a / b),
                _ => "-".to_owned(),
            };
            t.row(vec![
                label.into(),
                name.into(),
                show(ours[0]),
                show(ours[1]),
                show(theirs),
                versus(ours[0]),
                versus(ours[1]),
            ]);
            let mut entry = serde_json::Map::new();
            for ((transport, _), v) in TRANSPORTS.iter().zip(&ours) {
                entry.insert(format!("pool_{transport}"), json!(v.map(|v| round(v, 1))));
            }
            entry.insert(
                "process_pool_executor".into(),
                json!(theirs.map(|v| round(v, 1))),
            );
            by_tool.insert(format!("{part}_{key}"), Value::Object(entry));
        }
        figures.insert(tool.into(), Value::Object(by_tool));
    }
    t.print();
    // The targets for the socket transport against the executor.
    let socket = &pool_rounds[1];
    let versus = |tool: &str, part: &str, key: &str, theirs_part: &str| {
        let ours = median_of(socket, tool, part, key)?;
        let theirs = median_of(&python_rounds, tool, theirs_part, key)?;
        Some(ours / theirs)
    };
    let targets: [(&'static str, Option<f64>, &'static str, bool); 5] = [
        (
            "socket ping p50 / executor p50, sequential",
            versus("ping", "sequential", "p50_us", "sequential"),
            "<= 0.5",
            false,
        ),
        (
            "socket ping calls/s (16 callers) / executor.map",
            versus("ping", "threads", "calls_per_sec", "map"),
            ">= 1.0",
            true,
        ),
        (
            "socket cpu_burn calls/s (16 callers) / executor.map",
            versus("cpu_burn_1ms", "threads", "calls_per_sec", "map"),
            ">= 0.95",
            true,
        ),
        (
            "socket Python CPU per 1 ms cpu_burn call, ms (16 callers)",
            median_of(socket, "cpu_burn_1ms", "threads", "workers_cpu_per_call_us")
                .map(|us| us / 1000.0),
            "<= 1.1",
            false,
        ),
        (
            "socket host CPU per ping / executor's (16 threads)",
            versus("ping", "threads", "cpu_per_call_us", "threads"),
            "<= 1.0",
            false,
        ),
    ];
    for (name, measured, limit, at_least) in targets {
        let Some(measured) = measured else { continue };
        let bound: f64 = limit[3..].parse().expect("a number");
        report.target(Target {
            name,
            measured,
            limit,
            met: if at_least {
                measured >= bound
            } else {
                measured <= bound
            },
        });
    }
    figures.insert("rounds".into(), json!(rounds));
    figures.insert("workers".into(), json!(WORKERS));
    figures.insert("threads".into(), json!(THREADS));
    figures.insert("python".into(), json!(python_version));
    report.figures("python", Value::Object(figures));
    Ok(())
}

/// One run of the comparison script; its JSON line.
fn process_pool_executor(
    plan: &Plan,
    calls: usize,
    batch: usize,
) -> Result<Value, Box<dyn std::error::Error>> {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/bench_process_pool.py"
    );
    let mut cmd = Command::new(&plan.python);
    cmd.arg(script)
        .args(["--workers", &WORKERS.to_string()])
        .args(["--threads", &THREADS.to_string()])
        .args(["--calls", &calls.to_string()])
        .args(["--batch", &batch.to_string()])
        .stdin(Stdio::null())
        .stderr(Stdio::inherit());
    // SAFETY: only an async-signal-safe call between fork and exec. The
    // script dies with the bench, and its executor's workers with it (they
    // ask for a parent-death signal too).
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
            Ok(())
        });
    }
    let out = cmd.output()?;
    if !out.status.success() {
        return Err(format!("{script} failed: {}", out.status).into());
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().last().ok_or("the script printed nothing")?;
    Ok(serde_json::from_str(line)?)
}
