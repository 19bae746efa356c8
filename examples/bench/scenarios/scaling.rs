//! Scenario 2: calls per second of process pools with 1, 2 and 4 workers,
//! from 1 to 16 caller threads, on `ping` and on a 1 ms CPU burn; and the
//! host's own CPU time per call. Every pool is up for the whole scenario and
//! each round visits every cell, so slow drift spreads over all of them.

use std::time::Duration;

use serde_json::json;
use snakepit::{Pool, Profile};

use super::Outcome;
use crate::measure::{median, window, Window};
use crate::report::{per_sec, ratio, round, time_us, Report, Table, Target};
use crate::Plan;

const WORKERS: [usize; 3] = [1, 2, 4];
const THREADS: [usize; 5] = [1, 2, 4, 8, 16];
const TOOLS: [&str; 2] = ["ping", "cpu_burn 1 ms"];

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
    for pool in &pools {
        for tool in 0..TOOLS.len() {
            window(16, Duration::from_millis(200), || call(pool, tool));
        }
    }
    // cells[tool][workers][threads] = one window per round
    let mut cells: Vec<Vec<Vec<Vec<Window>>>> = (0..TOOLS.len())
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
                    by_tool[w][t].push(window(threads, length, || call(pool, tool)));
                }
            }
        }
    }
    drop(pools);

    let rate = |ws: &[Window]| median(&ws.iter().map(Window::calls_per_sec).collect::<Vec<_>>());
    let cpu = |ws: &[Window]| median(&ws.iter().map(Window::cpu_per_call_us).collect::<Vec<_>>());
    let mut table = Table::new(
        format!(
            "2. Throughput, process profile: calls/s and host CPU per call (median of {rounds} rounds x {:.2} s)",
            length.as_secs_f64()
        ),
        &[
            "tool",
            "callers",
            "1 worker",
            "2 workers",
            "4 workers",
            "CPU/call 1w",
            "CPU/call 2w",
            "CPU/call 4w",
        ],
    );
    let mut figures = serde_json::Map::new();
    for (tool, name) in TOOLS.iter().enumerate() {
        let mut rows = Vec::new();
        for (t, threads) in THREADS.iter().enumerate() {
            let cell = |w: usize| &cells[tool][w][t][..];
            let mut row = vec![name.to_string(), threads.to_string()];
            row.extend((0..WORKERS.len()).map(|w| per_sec(rate(cell(w)))));
            row.extend((0..WORKERS.len()).map(|w| time_us(cpu(cell(w)))));
            table.row(row);
            rows.push(json!({
                "threads": threads,
                "calls_per_sec": (0..WORKERS.len()).map(|w| round(rate(cell(w)), 1)).collect::<Vec<_>>(),
                "cpu_per_call_us": (0..WORKERS.len()).map(|w| round(cpu(cell(w)), 1)).collect::<Vec<_>>(),
            }));
        }
        // Peak: the best caller count for each pool size.
        let peak = |w: usize| {
            (0..THREADS.len())
                .map(|t| rate(&cells[tool][w][t]))
                .fold(0.0, f64::max)
        };
        let speedup = peak(1) / peak(0);
        let mut row = vec![name.to_string(), "peak vs 1 worker".into(), "1.00x".into()];
        row.extend((1..WORKERS.len()).map(|w| ratio(peak(w) / peak(0))));
        row.extend(["".into(), "".into(), "".into()]);
        table.row(row);
        figures.insert(
            if tool == 0 { "ping" } else { "cpu_burn_1ms" }.into(),
            json!({
                "rows": rows,
                "peak_calls_per_sec": (0..WORKERS.len()).map(|w| round(peak(w), 1)).collect::<Vec<_>>(),
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
    figures.insert("workers".into(), json!(WORKERS));
    figures.insert("rounds".into(), json!(rounds));
    figures.insert("window_s".into(), json!(length.as_secs_f64()));
    report.figures("scaling", serde_json::Value::Object(figures));
    Ok(())
}
