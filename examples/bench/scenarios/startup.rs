//! Scenario 4: how long `build()` takes until every worker is ready, for
//! 1, 8 and 32 workers on each transport, next to what one bare
//! interpreter start and one `import grpc` take (a socket-transport worker
//! does not import grpc). Shutdown is timed too.

use std::process::{Command, Stdio};
use std::time::Instant;

use serde_json::json;
use snakepit::Profile;

use super::{Outcome, TRANSPORTS};
use crate::measure::median;
use crate::report::{round, time_us, Report, Table};
use crate::Plan;

const WORKERS: [usize; 3] = [1, 8, 32];

pub fn run(plan: &Plan, report: &mut Report) -> Outcome {
    let rounds = plan.pick(3, 1);
    let python = |code: &str| -> Result<f64, Box<dyn std::error::Error>> {
        let t = Instant::now();
        let status = Command::new(&plan.python)
            .args(["-c", code])
            .stdin(Stdio::null())
            .status()?;
        if !status.success() {
            return Err(format!("{} -c {code:?} failed: {status}", plan.python.display()).into());
        }
        Ok(t.elapsed().as_secs_f64() * 1e6)
    };
    python("import grpc")?; // warm the page cache
    let mut bare = Vec::new();
    let mut import = Vec::new();
    // By transport, then by worker count.
    let mut ready = vec![vec![vec![]; WORKERS.len()]; TRANSPORTS.len()];
    let mut shutdown = vec![vec![vec![]; WORKERS.len()]; TRANSPORTS.len()];
    for _ in 0..rounds {
        for _ in 0..2 {
            bare.push(python("pass")?);
            import.push(python("import grpc")?);
        }
        for (i, &n) in WORKERS.iter().enumerate() {
            for (k, &(_, transport)) in TRANSPORTS.iter().enumerate() {
                let t = Instant::now();
                let pool = super::pool_on(transport, n, Profile::Process)?;
                ready[k][i].push(t.elapsed().as_secs_f64() * 1e6);
                super::ping(&pool);
                let t = Instant::now();
                pool.shutdown();
                shutdown[k][i].push(t.elapsed().as_secs_f64() * 1e6);
            }
        }
    }

    let mut t = Table::new(
        format!("4. Start-up, process profile (median of {rounds} rounds)"),
        &[
            "what",
            "ready after, gRPC",
            "shutdown, gRPC",
            "ready after, socket",
            "shutdown, socket",
        ],
    );
    let alone = |what: String, us: f64| vec![what, time_us(us), "".into(), "".into(), "".into()];
    t.row(alone(
        format!("{} -c pass", plan.python.display()),
        median(&bare),
    ));
    t.row(alone(
        format!("{} -c \"import grpc\"", plan.python.display()),
        median(&import),
    ));
    let mut pools = Vec::new();
    for (i, n) in WORKERS.iter().enumerate() {
        let plural = if *n == 1 { "" } else { "s" };
        let mut row = vec![format!("pool, {n} worker{plural}")];
        for (k, (transport, _)) in TRANSPORTS.iter().enumerate() {
            let (r, s) = (median(&ready[k][i]), median(&shutdown[k][i]));
            row.extend([time_us(r), time_us(s)]);
            pools.push(json!({
                "transport": transport,
                "workers": n,
                "ready_us": round(r, 0),
                "shutdown_us": round(s, 0),
            }));
        }
        t.row(row);
    }
    t.print();
    report.figures(
        "startup",
        json!({
            "rounds": rounds,
            "python_bare_us": round(median(&bare), 0),
            "python_import_grpc_us": round(median(&import), 0),
            "pools": pools,
        }),
    );
    Ok(())
}
