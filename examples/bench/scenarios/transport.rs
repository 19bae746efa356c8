//! Scenario 9: the socket transport's own overhead. `ping`, 1 worker,
//! sequential calls, through a pool on `Transport::Socket` and through a
//! bare client writing the same frames to the same kind of worker (the raw
//! baseline of this transport), rounds alternating.

use serde_json::json;
use snakepit::{Profile, Transport};

use super::Outcome;
use crate::measure::{median, sequential};
use crate::raw::{self, RawWorker};
use crate::report::{ratio, round, time_us, Report, Table, Target};
use crate::Plan;

pub fn run(plan: &Plan, report: &mut Report) -> Outcome {
    let rounds = plan.pick(5, 1);
    let calls = plan.pick(2_000, 300);
    let raw_worker = RawWorker::start_with(&plan.python, &["--transport", "socket"])?;
    let mut client = raw_worker.connect_socket();
    let req = raw::request("ping");
    let pool = super::pool_on(Transport::Socket, 1, Profile::Process)?;
    sequential(calls / 10, || {
        client.execute(&req);
    });
    sequential(calls / 10, || super::ping(&pool));

    let (mut raw_p50, mut raw_p99, mut raw_cpu) = (vec![], vec![], vec![]);
    let (mut pool_p50, mut pool_p99, mut pool_cpu) = (vec![], vec![], vec![]);
    for _ in 0..rounds {
        let raw_batch = sequential(calls, || {
            client.execute(&req);
        });
        let pool_batch = sequential(calls, || super::ping(&pool));
        raw_p50.push(raw_batch.p50());
        raw_p99.push(raw_batch.p99());
        raw_cpu.push(raw_batch.cpu_per_call_us);
        pool_p50.push(pool_batch.p50());
        pool_p99.push(pool_batch.p99());
        pool_cpu.push(pool_batch.cpu_per_call_us);
    }
    drop(pool);

    let (raw_50, pool_50) = (median(&raw_p50), median(&pool_p50));
    let (raw_99, pool_99) = (median(&raw_p99), median(&pool_p99));
    let (raw_c, pool_c) = (median(&raw_cpu), median(&pool_cpu));
    let mut t = Table::new(
        format!(
            "9. Socket transport overhead: ping, 1 worker, sequential (median of {rounds} rounds x {calls} calls)"
        ),
        &["client", "p50", "p99", "host CPU per call"],
    );
    t.row(vec![
        "raw socket client".into(),
        time_us(raw_50),
        time_us(raw_99),
        time_us(raw_c),
    ]);
    t.row(vec![
        "pool, Transport::Socket".into(),
        time_us(pool_50),
        time_us(pool_99),
        time_us(pool_c),
    ]);
    t.row(vec![
        "pool / raw".into(),
        ratio(pool_50 / raw_50),
        ratio(pool_99 / raw_99),
        ratio(pool_c / raw_c),
    ]);
    t.print();
    report.target(Target {
        name: "socket overhead: pool p50 / raw socket client p50",
        measured: pool_50 / raw_50,
        limit: "<= 1.15",
        met: pool_50 / raw_50 <= 1.15,
    });
    report.figures(
        "transport",
        json!({
            "rounds": rounds,
            "calls": calls,
            "raw_socket": {"p50_us": round(raw_50, 1), "p99_us": round(raw_99, 1), "cpu_per_call_us": round(raw_c, 2)},
            "pool_socket": {"p50_us": round(pool_50, 1), "p99_us": round(pool_99, 1), "cpu_per_call_us": round(pool_c, 2)},
            "ratio_p50": round(pool_50 / raw_50, 3),
        }),
    );
    Ok(())
}
