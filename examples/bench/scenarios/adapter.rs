//! Scenario 8: what a fresh adapter instance per call costs. Snakepit
//! creates one per call (with `initialize()` and `cleanup()` around it);
//! `PoolBuilder::adapter_per_worker(true)` keeps one per process. Sequential
//! `ping` on one worker, both ways, rounds alternating.

use serde_json::json;
use snakepit::Pool;

use super::Outcome;
use crate::measure::{median, sequential};
use crate::report::{ratio, round, time_us, Report, Table};
use crate::Plan;

pub fn run(plan: &Plan, report: &mut Report) -> Outcome {
    let rounds = plan.pick(7, 3);
    let calls = plan.pick(2000, 300);
    let start = |per_worker: bool| {
        Pool::builder()
            .adapter("snakepit_showcase.adapter.ShowcaseAdapter")
            .workers(1)
            .adapter_per_worker(per_worker)
            .build()
    };
    let per_call = start(false)?;
    let per_worker = start(true)?;
    let ping = |pool: &Pool| {
        pool.execute_blocking("ping", json!({})).expect("ping");
    };
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        a.push(sequential(calls, || ping(&per_call)).p50());
        b.push(sequential(calls, || ping(&per_worker)).p50());
    }
    drop((per_call, per_worker));

    let (a, b) = (median(&a), median(&b));
    let mut t = Table::new(
        format!("8. Adapter instance per call vs per worker: ping p50, 1 worker (median of {rounds} rounds x {calls} calls)"),
        &["adapter", "p50"],
    );
    t.row(vec!["new instance per call (default)".into(), time_us(a)]);
    t.row(vec!["one instance per worker".into(), time_us(b)]);
    t.row(vec!["per call / per worker".into(), ratio(a / b)]);
    t.print();
    report.figures(
        "adapter",
        json!({
            "rounds": rounds,
            "calls_per_round": calls,
            "per_call_p50_us": round(a, 1),
            "per_worker_p50_us": round(b, 1),
            "difference_us": round(a - b, 1),
        }),
    );
    Ok(())
}
