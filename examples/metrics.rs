//! The pool's metrics served at `/metrics` for Prometheus, without an async
//! runtime: `metrics-exporter-prometheus` (no HTTP listener feature) keeps
//! the numbers and renders the text, and a plain `std::net::TcpListener`
//! thread serves it.
//!
//! Run with `cargo run --release --features metrics --example metrics`: it
//! makes a few calls, scrapes itself once, prints what a Prometheus server
//! would see, and exits. With `-- --serve` it keeps serving
//! `http://127.0.0.1:9464/metrics` (another address as the next argument)
//! and makes a call a second until Ctrl-C.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use serde_json::json;
use snakepit::{Error, Pool};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("snakepit=warn"))
        .init();
    let mut args = std::env::args().skip(1);
    let serve = args.next().as_deref() == Some("--serve");
    // Once, any free port; serving, Prometheus's usual one for exporters.
    let default = if serve {
        "127.0.0.1:9464"
    } else {
        "127.0.0.1:0"
    };
    let addr = args.next().unwrap_or_else(|| default.into());

    // The recorder first: every metric recorded before it is lost.
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Full("snakepit_call_duration_seconds".into()),
            snakepit::metrics::CALL_DURATION_BUCKETS,
        )?
        .install_recorder()?;

    let pool = Pool::builder()
        .name("showcase")
        .adapter("snakepit_showcase.adapter.ShowcaseAdapter")
        .workers(2)
        .build()?;
    pool.shutdown_on_ctrl_c()?;

    let listener = TcpListener::bind(&addr)?;
    let addr = listener.local_addr()?;
    {
        let pool = pool.clone();
        std::thread::spawn(move || serve_metrics(listener, &pool, &handle));
    }

    for i in 0..5 {
        pool.execute_blocking("add", json!({"a": i, "b": 1}))?;
    }
    let failed = pool.execute_blocking("raise_error", json!({"message": "on purpose"}));
    assert!(matches!(failed, Err(Error::Python { .. })));

    if !serve {
        let text = scrape(addr)?;
        assert!(text.contains("snakepit_calls_total{"), "{text}");
        print!("{text}");
        pool.shutdown();
        return Ok(());
    }
    println!("serving http://{addr}/metrics; Ctrl-C stops");
    loop {
        std::thread::sleep(Duration::from_secs(1));
        match pool.execute_blocking("sleep", json!({"ms": 20})) {
            Ok(_) => {}
            Err(Error::ShuttingDown) => return Ok(()),
            Err(e) => eprintln!("call failed: {e}"),
        }
    }
}

/// Answers every `GET /metrics` with the pool's numbers as of now, one
/// connection at a time (a scrape is small and rare).
fn serve_metrics(listener: TcpListener, pool: &Pool, handle: &PrometheusHandle) {
    for stream in listener.incoming().flatten() {
        if let Err(e) = answer(stream, pool, handle) {
            eprintln!("metrics request failed: {e}");
        }
    }
}

fn answer(stream: TcpStream, pool: &Pool, handle: &PrometheusHandle) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut reader = BufReader::new(stream);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    // The headers end at the first empty line; none of them matters here.
    let mut line = String::new();
    while reader.read_line(&mut line)? > 2 {
        line.clear();
    }
    let (status, body) = if request_line.starts_with("GET /metrics ") {
        pool.record_metrics();
        handle.run_upkeep();
        ("200 OK", handle.render())
    } else {
        ("404 Not Found", "not found: try /metrics\n".to_owned())
    };
    write!(
        reader.get_mut(),
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

/// What a Prometheus server would get from `GET /metrics`.
fn scrape(addr: std::net::SocketAddr) -> std::io::Result<String> {
    let mut stream = TcpStream::connect(addr)?;
    write!(stream, "GET /metrics HTTP/1.1\r\nHost: {addr}\r\n\r\n")?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    Ok(response
        .split_once("\r\n\r\n")
        .map_or(response.clone(), |(_, body)| body.to_owned()))
}
