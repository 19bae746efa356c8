//! Scenario 5: `binary_echo` of 1 KiB, 1 MiB and 64 MiB, one worker,
//! sequential calls, through the pool on each transport and through the raw
//! grpcio client.
//! MB/s is the payload size (10^6 bytes, counted once) over the round trip
//! that carries it there and back.

use std::time::Instant;

use serde_json::json;
use snakepit::{CallOptions, Pool, Profile};

use super::{Outcome, TRANSPORTS};
use crate::measure::median;
use crate::raw::{self, RawClient, RawWorker};
use crate::report::{ratio, round, time_us, Report, Table, Target};
use crate::Plan;

pub fn run(plan: &Plan, report: &mut Report) -> Outcome {
    let rounds = plan.pick(5, 1);
    let sizes: [(&str, usize, usize); 3] = [
        ("1 KiB", 1 << 10, plan.pick(500, 50)),
        ("1 MiB", 1 << 20, plan.pick(40, 5)),
        ("64 MiB", 64 << 20, plan.pick(3, 1)),
    ];
    let raw_worker = RawWorker::start(&plan.python)?;
    let payloads: Vec<Vec<u8>> = sizes
        .iter()
        .map(|&(_, size, _)| (0..size).map(|i| (i % 251) as u8).collect())
        .collect();

    // Each call's round trip in microseconds; the payload is copied for
    // the call before the clock starts.
    let raw_call = |client: &RawClient, data: &[u8]| {
        let mut req = raw::request("binary_echo");
        req.binary_parameters.insert("data".into(), data.to_vec());
        let t = Instant::now();
        let resp = client.execute(&req);
        let us = t.elapsed().as_secs_f64() * 1e6;
        assert_eq!(resp.binary_result.len(), data.len(), "raw echo length");
        us
    };
    let pool_call = |pool: &Pool, data: &[u8]| {
        let opts = CallOptions::new().binary("data", data.to_vec());
        let t = Instant::now();
        let reply = pool
            .execute_blocking_with("binary_echo", json!({}), opts)
            .expect("binary_echo");
        let us = t.elapsed().as_secs_f64() * 1e6;
        assert_eq!(reply.binary.as_deref().map(<[u8]>::len), Some(data.len()));
        us
    };
    // MB/s of each round, by size; pool call times, by size.
    let mut raw_rates = vec![vec![]; sizes.len()];
    // By transport, then by size.
    let mut pool_rates = vec![vec![vec![]; sizes.len()]; TRANSPORTS.len()];
    let mut pool_times = vec![vec![vec![]; sizes.len()]; TRANSPORTS.len()];
    let rate = |size: usize, times: &[f64]| {
        size as f64 / 1e6 * times.len() as f64 / (times.iter().sum::<f64>() / 1e6)
    };
    // As in the overhead scenario, one gRPC environment at a time.
    for _ in 0..rounds {
        let client = raw_worker.connect();
        for (i, &(_, size, calls)) in sizes.iter().enumerate() {
            raw_call(&client, &payloads[i]);
            let times: Vec<f64> = (0..calls)
                .map(|_| raw_call(&client, &payloads[i]))
                .collect();
            raw_rates[i].push(rate(size, &times));
        }
        drop(client);
        for (k, &(_, transport)) in TRANSPORTS.iter().enumerate() {
            let pool = super::pool_on(transport, 1, Profile::Process)?;
            for (i, &(_, size, calls)) in sizes.iter().enumerate() {
                let data = &payloads[i];
                // Warm up, and check the bytes come back unchanged once.
                let opts = CallOptions::new().binary("data", data.clone());
                let reply = pool.execute_blocking_with("binary_echo", json!({}), opts)?;
                assert!(
                    reply.binary.as_deref() == Some(&data[..]),
                    "echo changed the bytes"
                );
                let times: Vec<f64> = (0..calls).map(|_| pool_call(&pool, data)).collect();
                pool_rates[k][i].push(rate(size, &times));
                pool_times[k][i].extend(times);
            }
        }
    }

    let mut t = Table::new(
        format!(
            "5. Payloads: binary_echo, 1 worker, sequential (median, and range, of {rounds} rounds; a new connection each round)"
        ),
        &[
            "size",
            "calls/round",
            "raw grpcio MB/s",
            "pool gRPC MB/s",
            "pool socket MB/s",
            "gRPC / raw",
            "socket p50 per call",
        ],
    );
    let range = |rates: &[f64]| {
        let lo = rates.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = rates.iter().copied().fold(0.0, f64::max);
        format!("{:.1} ({lo:.1}-{hi:.1})", median(rates))
    };
    let mut figures = Vec::new();
    for (i, &(name, size, calls)) in sizes.iter().enumerate() {
        let raw_rate = median(&raw_rates[i]);
        let pool_rate = median(&pool_rates[0][i]);
        let socket_rate = median(&pool_rates[1][i]);
        t.row(vec![
            name.into(),
            calls.to_string(),
            range(&raw_rates[i]),
            range(&pool_rates[0][i]),
            range(&pool_rates[1][i]),
            ratio(pool_rate / raw_rate),
            time_us(median(&pool_times[1][i])),
        ]);
        let rounds_of = |rates: &[f64]| rates.iter().map(|r| round(*r, 2)).collect::<Vec<_>>();
        figures.push(json!({
            "size_bytes": size,
            "calls_per_round": calls,
            "raw_mb_per_sec": round(raw_rate, 2),
            "pool_mb_per_sec": round(pool_rate, 2),
            "socket_mb_per_sec": round(socket_rate, 2),
            "raw_mb_per_sec_rounds": rounds_of(&raw_rates[i]),
            "pool_mb_per_sec_rounds": rounds_of(&pool_rates[0][i]),
            "socket_mb_per_sec_rounds": rounds_of(&pool_rates[1][i]),
            "pool_over_raw": round(pool_rate / raw_rate, 3),
            "pool_p50_us": round(median(&pool_times[0][i]), 1),
            "socket_p50_us": round(median(&pool_times[1][i]), 1),
        }));
        let target = match size {
            s if s == 1 << 20 => "socket 1 MiB binary round trip, MB/s",
            s if s == 64 << 20 => "socket 64 MiB binary round trip, MB/s",
            _ => continue,
        };
        report.target(Target {
            name: target,
            measured: socket_rate,
            limit: ">= 1000",
            met: socket_rate >= 1000.0,
        });
    }
    t.print();
    report.figures("payload", json!({ "rounds": rounds, "sizes": figures }));
    Ok(())
}
