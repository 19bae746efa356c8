//! Scenario 3: one thread-profile worker with 16 threads runs 16 calls of
//! a 100 ms sleep at once. Ideal wall time: 100 ms.

use serde_json::json;
use snakepit::Profile;

use super::Outcome;
use crate::measure::{burst, median};
use crate::report::{ratio, round, time_us, Report, Table, Target};
use crate::Plan;

const CALLS: usize = 16;
const SLEEP_MS: u64 = 100;

pub fn run(plan: &Plan, report: &mut Report) -> Outcome {
    let rounds = plan.pick(7, 3);
    let pool = super::pool(1, Profile::Thread { threads: CALLS })?;
    let sleep = || {
        pool.execute_blocking("sleep", json!({ "ms": SLEEP_MS }))
            .expect("sleep");
    };
    // The first burst also starts the worker's Python threads.
    let cold = burst(CALLS, sleep).as_secs_f64() * 1e6;
    let walls: Vec<f64> = (0..rounds)
        .map(|_| burst(CALLS, sleep).as_secs_f64() * 1e6)
        .collect();
    drop(pool);

    let wall = median(&walls);
    let slowdown = wall / (SLEEP_MS as f64 * 1e3);
    let mut t = Table::new(
        format!("3. Thread profile: 1 worker x {CALLS} threads, {CALLS} concurrent sleep({SLEEP_MS} ms) (median of {rounds} rounds)"),
        &["measure", "value"],
    );
    t.row(vec!["wall time".into(), time_us(wall)]);
    t.row(vec![format!("wall / {SLEEP_MS} ms"), ratio(slowdown)]);
    t.row(vec!["first (cold) round".into(), time_us(cold)]);
    t.print();

    report.target(Target {
        name: "thread profile: wall time / 100 ms sleep",
        measured: slowdown,
        limit: "<= 1.3",
        met: slowdown <= 1.3,
    });
    report.figures(
        "thread",
        json!({
            "rounds": rounds,
            "calls": CALLS,
            "sleep_ms": SLEEP_MS,
            "wall_us": round(wall, 1),
            "wall_over_sleep": round(slowdown, 3),
            "cold_wall_us": round(cold, 1),
            "walls_us": walls.iter().map(|w| round(*w, 1)).collect::<Vec<_>>(),
        }),
    );
    Ok(())
}
