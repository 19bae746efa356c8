//! Scenario 9: the pool under faults, the scenarios of the test suite
//! (`tests/faults.rs`) run larger: a crash storm, a frozen worker, a
//! connection cut mid-reply, garbage on a worker's output, recycling and
//! shutdown under streams. Per scenario: calls attempted, succeeded and
//! failed by kind, the time back to full size, and what the host process
//! gained in descriptors, threads and memory. Not run by default (a run
//! SIGKILLs workers and floods logs by design): `bench -- faults`.

#[path = "../../../tests/fault_kit/mod.rs"]
mod fault_kit;

use std::time::Duration;

use serde_json::{json, Map, Value};
use snakepit::Pool;

use super::Outcome;
use crate::report::{mib, Report, Table};
use crate::Plan;
use fault_kit::{Scale, Tally};

pub fn run(plan: &Plan, report: &mut Report) -> Outcome {
    let scale = plan.pick(Scale::FULL, Scale::SMALL);
    // What gRPC starts once per process is not any scenario's growth.
    fault_kit::warm_up(Pool::builder())?;
    let mut tallies = Vec::new();
    let mut failed = Vec::new();
    for (name, _) in fault_kit::SCENARIOS {
        match fault_kit::run(name, Pool::builder(), scale) {
            Ok(tally) => {
                if tally.broken > 0 {
                    failed.push(format!(
                        "{name} broke its promise {} times, first: {:?}",
                        tally.broken, tally.unexpected
                    ));
                }
                tallies.push(tally);
            }
            Err(e) => failed.push(e),
        }
    }

    let mut t = Table::new(
        format!(
            "9. Faults ({} kills in the storm, {} rounds of the others)",
            scale.storm_kills, scale.rounds
        ),
        &[
            "scenario",
            "calls",
            "succeeded",
            "failed, by kind",
            "broken promises",
            "back to full size",
            "fds",
            "threads",
            "host RSS",
        ],
    );
    let mut figures = Map::new();
    for tally in &tallies {
        t.row(vec![
            tally.scenario.to_owned(),
            tally.attempted.to_string(),
            tally.succeeded.to_string(),
            by_kind(tally),
            tally.broken.to_string(),
            tally.back_to_full.map_or("-".into(), ms),
            format!("{:+}", tally.growth.fds),
            format!("{:+}", tally.growth.threads),
            format!(
                "{}{}",
                if tally.growth.rss_bytes < 0 { "-" } else { "+" },
                mib(tally.growth.rss_bytes.unsigned_abs() as f64)
            ),
        ]);
        figures.insert(tally.scenario.to_owned(), tally.to_json());
    }
    t.print();
    for tally in &tallies {
        let extra: Vec<String> = tally
            .extra
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        println!("  {}: {}", tally.scenario, extra.join(", "));
    }
    figures.insert("scenario_failures".into(), json!(failed));
    report.figures("faults", Value::Object(figures));
    if failed.is_empty() {
        Ok(())
    } else {
        Err(failed.join("; ").into())
    }
}

/// `worker_crashed 12, transport 3`, or `-`.
fn by_kind(tally: &Tally) -> String {
    if tally.failed.is_empty() {
        return "-".into();
    }
    let kinds: Vec<String> = tally
        .failed
        .iter()
        .map(|(k, n)| format!("{k} {n}"))
        .collect();
    kinds.join(", ")
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1e3)
}
