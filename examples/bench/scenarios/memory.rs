//! Scenario 7: the host's resident memory with 32 workers, and whether it
//! grows over 100,000 calls. RSS is sampled every tenth of the run; the
//! first tenth is the warm-up (allocator arenas, channel blocks and gRPC
//! buffers reach their working size), growth is counted after it.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Instant;

use serde_json::json;
use snakepit::Profile;

use super::Outcome;
use crate::measure::{host_rss, rss_of};
use crate::report::{mib, per_sec, round, Report, Table, Target};
use crate::Plan;

const WORKERS: usize = 32;
const THREADS: usize = 8;
const SAMPLES: u64 = 10;
/// Growth after the warm-up that still counts as none: a few allocator
/// pages come and go with thread scheduling.
const TOLERANCE: u64 = 1 << 20;

pub fn run(plan: &Plan, report: &mut Report) -> Outcome {
    let total: u64 = plan.pick(100_000, 20_000);
    let pool = super::pool(WORKERS, Profile::Process)?;
    let ready = host_rss();
    let workers_rss: u64 = pool
        .stats()
        .pids()
        .into_iter()
        .filter_map(|pid| rss_of(&pid.to_string()))
        .sum();

    let done = AtomicU64::new(0);
    let step = total / SAMPLES;
    let mut samples = Vec::with_capacity(SAMPLES as usize);
    let started = Instant::now();
    for k in 1..=SAMPLES {
        let target = k * step;
        std::thread::scope(|s| {
            for _ in 0..THREADS {
                s.spawn(|| {
                    while done.fetch_add(1, Relaxed) < target {
                        super::ping(&pool);
                    }
                });
            }
        });
        // Each thread's last ticket overshot by one.
        done.store(target, Relaxed);
        samples.push(host_rss());
    }
    let elapsed = started.elapsed();
    let stats = pool.stats();
    drop(pool);

    let warm = samples[0];
    let end = *samples.last().expect("samples");
    let peak = *samples.iter().max().expect("samples");
    let growth = end as i64 - warm as i64;
    let mut t = Table::new(
        format!("7. Host memory: {WORKERS} workers, {total} `ping` calls from {THREADS} threads"),
        &["moment", "host RSS"],
    );
    t.row(vec![format!("ready, {WORKERS} workers"), mib(ready as f64)]);
    t.row(vec![format!("after {step} calls (warm)"), mib(warm as f64)]);
    t.row(vec![format!("after {total} calls"), mib(end as f64)]);
    t.row(vec!["largest sample".into(), mib(peak as f64)]);
    t.row(vec![
        "growth after warm-up".into(),
        format!("{:+.2} MiB", growth as f64 / (1024.0 * 1024.0)),
    ]);
    t.row(vec![
        format!("the {WORKERS} Python workers, together"),
        mib(workers_rss as f64),
    ]);
    t.row(vec![
        "calls/s over the run".into(),
        per_sec(total as f64 / elapsed.as_secs_f64()),
    ]);
    t.print();

    report.target(Target {
        name: "host RSS growth after warm-up, MiB (100,000 calls)",
        measured: growth as f64 / (1024.0 * 1024.0),
        limit: "<= 1 MiB",
        met: growth <= TOLERANCE as i64,
    });
    report.figures(
        "memory",
        json!({
            "workers": WORKERS,
            "threads": THREADS,
            "calls": total,
            "succeeded": stats.succeeded,
            "failed": stats.failed,
            "rss_ready_bytes": ready,
            "rss_samples_bytes": samples,
            "rss_growth_after_warmup_bytes": growth,
            "workers_rss_bytes": workers_rss,
            "calls_per_sec": round(total as f64 / elapsed.as_secs_f64(), 1),
        }),
    );
    Ok(())
}
