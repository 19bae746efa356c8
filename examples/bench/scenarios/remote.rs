//! Scenario 11: remote workers over loopback TCP with mutual TLS and a
//! bearer token (`snakepit-worker serve` processes, certificates made with
//! the `openssl` command), against local gRPC workers in the same run:
//! sequential `ping` p50 with one worker each, `ping` calls/s with 4
//! endpoints against 4 local workers (16 caller threads), and how long a
//! new endpoint takes to serve once discovery lists it. Needs the cargo
//! feature `tls`.

use super::Outcome;
use crate::report::Report;
use crate::Plan;

#[cfg(not(feature = "tls"))]
pub fn run(_plan: &Plan, _report: &mut Report) -> Outcome {
    Err("the remote scenario needs TLS: run it with --features tls (or --all-features)".into())
}

#[cfg(feature = "tls")]
pub fn run(plan: &Plan, report: &mut Report) -> Outcome {
    with_tls::run(plan, report)
}

#[cfg(feature = "tls")]
mod with_tls {
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use parking_lot::Mutex;
    use serde_json::json;
    use snakepit::{Pool, Profile, Remote, Tls, WorkerState};

    use super::super::{ping, pool, Outcome};
    use crate::measure::{median, sequential, window};
    use crate::remote_kit::{token_file, Certs, RemoteWorker, Serve, AUTHORITY};
    use crate::report::{ratio, round, time_us, Report, Table, Target};
    use crate::Plan;

    const ADAPTER: &str = "snakepit_showcase.adapter.ShowcaseAdapter";

    pub fn run(plan: &Plan, report: &mut Report) -> Outcome {
        let rounds = plan.pick(5, 1);
        let calls = plan.pick(2_000, 300);
        let length = Duration::from_millis(plan.pick(3_000, 800));
        let dir =
            std::env::temp_dir().join(format!("snakepit-bench-remote-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let result = measure(&dir, rounds, calls, length, report);
        let _ = std::fs::remove_dir_all(&dir);
        result
    }

    fn measure(
        dir: &std::path::Path,
        rounds: usize,
        calls: usize,
        length: Duration,
        report: &mut Report,
    ) -> Outcome {
        let certs = Certs::generate(dir);
        let token = token_file(dir, "token", "bench-token-0123456789");
        let tag = format!("bench-remote-{}", std::process::id());
        let serve = Serve {
            tls: Some(true),
            token_file: Some(token.clone()),
            ..Serve::default()
        };
        let workers: Vec<RemoteWorker> = (0..4)
            .map(|_| RemoteWorker::start(&tag, dir, Some(&certs), &serve))
            .collect();
        // The same without TLS and token: what TLS and the token check
        // cost, apart from TCP and the serve mode.
        let plain: Vec<RemoteWorker> = (0..4)
            .map(|_| RemoteWorker::start(&tag, dir, None, &Serve::default()))
            .collect();
        let plain_pool = |addresses: Vec<String>| -> Result<Pool, snakepit::Error> {
            Pool::builder()
                .adapter(ADAPTER)
                .remote(Remote::endpoints(addresses).max_endpoints(8))
                .build()
        };
        let tls = || -> Result<Tls, snakepit::Error> {
            Ok(Tls::ca_file(&certs.ca)?
                .identity_files(&certs.client_cert, &certs.client_key)?
                .authority(AUTHORITY))
        };
        let remote_pool = |addresses: Vec<String>| -> Result<Pool, snakepit::Error> {
            Pool::builder()
                .adapter(ADAPTER)
                .remote(
                    Remote::endpoints(addresses)
                        .max_endpoints(8)
                        .tls(tls()?)
                        .token_file(&token),
                )
                .build()
        };

        // Sequential p50, one worker each, rounds alternating.
        let remote1 = remote_pool(vec![workers[0].address.clone()])?;
        let plain1 = plain_pool(vec![plain[0].address.clone()])?;
        let local1 = pool(1, Profile::Process)?;
        sequential(calls / 10, || ping(&remote1));
        sequential(calls / 10, || ping(&plain1));
        sequential(calls / 10, || ping(&local1));
        let (mut local_p50, mut remote_p50, mut plain_p50) = (vec![], vec![], vec![]);
        for _ in 0..rounds {
            local_p50.push(sequential(calls, || ping(&local1)).p50());
            remote_p50.push(sequential(calls, || ping(&remote1)).p50());
            plain_p50.push(sequential(calls, || ping(&plain1)).p50());
        }
        drop(remote1);
        drop(plain1);
        drop(local1);

        // Throughput, 4 endpoints against 4 local workers.
        let remote4 = remote_pool(workers.iter().map(|w| w.address.clone()).collect())?;
        let plain4 = plain_pool(plain.iter().map(|w| w.address.clone()).collect())?;
        let local4 = pool(4, Profile::Process)?;
        let threads = 16;
        let (mut local_rate, mut remote_rate, mut plain_rate) = (vec![], vec![], vec![]);
        for _ in 0..rounds {
            local_rate.push(window(threads, length, |_| ping(&local4)).calls_per_sec());
            remote_rate.push(window(threads, length, |_| ping(&remote4)).calls_per_sec());
            plain_rate.push(window(threads, length, |_| ping(&plain4)).calls_per_sec());
        }
        drop(remote4);
        drop(plain4);
        drop(local4);
        drop(plain);

        // A new endpoint: from the moment discovery lists it to its first
        // call, with a resolve interval of 1 s; and a worker's own start-up.
        let interval = Duration::from_secs(1);
        let listed = Arc::new(Mutex::new(vec![workers[0].address.clone()]));
        let read = listed.clone();
        let discovering = Pool::builder()
            .adapter(ADAPTER)
            .remote(
                Remote::discover(move || Ok(read.lock().clone()))
                    .resolve_every(interval)
                    .tls(tls()?)
                    .token_file(&token),
            )
            .build()?;
        let spawned = Instant::now();
        let fresh = RemoteWorker::start(&tag, dir, Some(&certs), &serve);
        let startup = spawned.elapsed();
        let listed_at = Instant::now();
        listed.lock().push(fresh.address.clone());
        let serving = loop {
            let ready = discovering.stats().per_worker.iter().any(|w| {
                w.state == WorkerState::Ready && w.endpoint.as_deref() == Some(&fresh.address)
            });
            if ready {
                break listed_at.elapsed();
            }
            if listed_at.elapsed() > Duration::from_secs(30) {
                return Err("the new endpoint did not serve within 30 s".into());
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        // Its first call, on it.
        let before = discovering
            .execute_blocking("pid", json!({}))
            .map(|_| ())
            .map_err(|e| e.to_string());
        drop(discovering);
        drop(fresh);
        drop(workers);
        before?;

        let (l50, r50, p50) = (median(&local_p50), median(&remote_p50), median(&plain_p50));
        let (lrate, rrate, prate) = (
            median(&local_rate),
            median(&remote_rate),
            median(&plain_rate),
        );
        let mut t = Table::new(
            format!(
                "11. Remote workers over loopback, mutual TLS + token (median of {rounds} rounds)"
            ),
            &[
                "measure",
                "local gRPC",
                "remote TLS + token",
                "remote plaintext",
                "TLS / local",
                "plaintext / local",
            ],
        );
        t.row(vec![
            format!("ping p50, sequential, 1 worker ({calls} calls)"),
            time_us(l50),
            time_us(r50),
            time_us(p50),
            ratio(r50 / l50),
            ratio(p50 / l50),
        ]);
        t.row(vec![
            format!("ping calls/s, {threads} threads, 4 workers"),
            format!("{lrate:.0}"),
            format!("{rrate:.0}"),
            format!("{prate:.0}"),
            ratio(rrate / lrate),
            ratio(prate / lrate),
        ]);
        t.row(vec![
            format!("new endpoint serving after listed (resolve every {interval:?})"),
            "".into(),
            format!("{:.0} ms", serving.as_secs_f64() * 1e3),
            "".into(),
            format!("start-up {:.0} ms", startup.as_secs_f64() * 1e3),
            "".into(),
        ]);
        t.print();
        report.target(Target {
            name: "remote p50 / local gRPC p50",
            measured: r50 / l50,
            limit: "<= 1.2",
            met: r50 / l50 <= 1.2,
        });
        report.target(Target {
            name: "remote calls/s (4 endpoints) / local gRPC (4 workers)",
            measured: rrate / lrate,
            limit: ">= 0.9",
            met: rrate / lrate >= 0.9,
        });
        report.target(Target {
            name: "new endpoint serving after listed, in resolve intervals",
            measured: serving.as_secs_f64() / interval.as_secs_f64(),
            limit: "<= 1 (plus its start-up, measured apart)",
            met: serving <= interval + startup,
        });
        report.figures(
            "remote",
            json!({
                "rounds": rounds,
                "local_p50_us": round(l50, 1),
                "remote_p50_us": round(r50, 1),
                "ratio_p50": round(r50 / l50, 3),
                "local_calls_per_sec": round(lrate, 0),
                "remote_calls_per_sec": round(rrate, 0),
                "ratio_rate": round(rrate / lrate, 3),
                "plaintext_p50_us": round(p50, 1),
                "plaintext_calls_per_sec": round(prate, 0),
                "plaintext_ratio_p50": round(p50 / l50, 3),
                "plaintext_ratio_rate": round(prate / lrate, 3),
                "new_endpoint_serving_ms": round(serving.as_secs_f64() * 1e3, 1),
                "worker_startup_ms": round(startup.as_secs_f64() * 1e3, 1),
                "resolve_every_ms": interval.as_millis() as u64,
            }),
        );
        Ok(())
    }
}
