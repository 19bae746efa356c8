//! The pool measured against its limits and against what a user would pick
//! instead, in one run.
//!
//! ```sh
//! cargo run --release --example bench                     # every scenario but faults (~4 min on 2 cores)
//! cargo run --release --example bench -- overhead python  # some of them
//! cargo run --release --example bench -- --quick          # short runs, noisier figures
//! ```
//!
//! Scenarios: `overhead` (pool against a raw grpcio client), `scaling`
//! (process profile, 1/2/4 workers, 1 to 16 caller threads), `thread` (16
//! sleeps on one thread-profile worker), `startup`, `payload` (binary echo),
//! `python` (`concurrent.futures.ProcessPoolExecutor` doing the same work,
//! via `examples/bench_process_pool.py`), `memory` (host RSS with 32
//! workers over 100,000 calls), `adapter` (an adapter instance per call or
//! per worker), `transport` (the socket transport's pool against a bare
//! client of the same frames), `faults` (the fault-injection scenarios
//! of `tests/faults.rs`, larger; only when named: `bench -- faults`) and
//! `remote` (`snakepit-worker serve` workers over loopback with mutual TLS
//! and a token, against local gRPC workers; only when named, with the
//! `tls` feature: `cargo run --release --all-features --example bench --
//! remote`).
//! `payload` and `python` run the pool on both transports. Each prints a table of medians over several
//! rounds as it finishes; the run ends with the targets and one JSON line
//! holding every figure.

mod measure;
mod raw;
#[cfg(feature = "tls")]
#[path = "../../tests/common/remote.rs"]
mod remote_kit;
mod report;
mod scenarios;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use serde_json::json;

use report::Report;

/// Every scenario, in the order they run.
const SCENARIOS: [&str; 11] = [
    "overhead",
    "scaling",
    "thread",
    "startup",
    "payload",
    "python",
    "memory",
    "adapter",
    "transport",
    "faults",
    "remote",
];

/// The scenarios a run without names leaves out: `faults` SIGKILLs
/// workers and floods the log by design, and measures reliability rather
/// than speed; `remote` needs the `tls` feature.
const ONLY_WHEN_NAMED: [&str; 2] = ["faults", "remote"];

/// How big a run is, and what it runs with.
pub struct Plan {
    pub quick: bool,
    /// The interpreter for the raw worker and the Python comparison: the
    /// one the pool picks (`SNAKEPIT_PYTHON`, the virtual environment's, or
    /// `python3`).
    pub python: PathBuf,
}

impl Plan {
    /// `full` for a normal run, `quick` with `--quick`.
    pub fn pick<T>(&self, full: T, quick: T) -> T {
        if self.quick {
            quick
        } else {
            full
        }
    }
}

fn main() -> ExitCode {
    let mut quick = false;
    let mut chosen = Vec::new();
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--quick" => quick = true,
            "-h" | "--help" => {
                println!(
                    "usage: cargo run --release --example bench -- [--quick] [{}]...",
                    SCENARIOS.join("|")
                );
                return ExitCode::SUCCESS;
            }
            name if SCENARIOS.contains(&name) => chosen.push(name.to_owned()),
            other => {
                eprintln!(
                    "unknown scenario {other:?}; choose from {} (all but faults by default), or --quick",
                    SCENARIOS.join(", ")
                );
                return ExitCode::from(2);
            }
        }
    }
    if chosen.is_empty() {
        chosen = SCENARIOS
            .iter()
            .filter(|s| !ONLY_WHEN_NAMED.contains(s))
            .map(|s| s.to_string())
            .collect();
    }
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("snakepit=warn"))
        .init();

    let plan = Plan {
        quick,
        python: interpreter(),
    };
    let machine = machine(&plan);
    println!("snakepit bench{}", if quick { " (--quick)" } else { "" });
    for (key, value) in machine.as_object().expect("an object") {
        println!(
            "  {key}: {}",
            value.as_str().map_or(value.to_string(), str::to_owned)
        );
    }

    let started = Instant::now();
    let mut report = Report::default();
    let mut failed = false;
    let mut load = serde_json::Map::new();
    for name in &chosen {
        let t = Instant::now();
        let load_before = load_average();
        let outcome = match name.as_str() {
            "overhead" => scenarios::overhead::run(&plan, &mut report),
            "scaling" => scenarios::scaling::run(&plan, &mut report),
            "thread" => scenarios::thread::run(&plan, &mut report),
            "startup" => scenarios::startup::run(&plan, &mut report),
            "payload" => scenarios::payload::run(&plan, &mut report),
            "python" => scenarios::python::run(&plan, &mut report),
            "memory" => scenarios::memory::run(&plan, &mut report),
            "adapter" => scenarios::adapter::run(&plan, &mut report),
            "faults" => scenarios::faults::run(&plan, &mut report),
            "transport" => scenarios::transport::run(&plan, &mut report),
            "remote" => scenarios::remote::run(&plan, &mut report),
            _ => unreachable!("checked above"),
        };
        // Other programs on the machine show here: the bench alone keeps
        // the 1-minute load average near its number of busy threads.
        let load_after = load_average();
        load.insert(name.clone(), json!([load_before, load_after]));
        match outcome {
            Ok(()) => println!(
                "({name}: {:.0} s, load average {load_before:.2} -> {load_after:.2})",
                t.elapsed().as_secs_f64()
            ),
            Err(e) => {
                eprintln!("scenario {name} failed: {e}");
                failed = true;
            }
        }
    }
    println!("\ntotal: {:.0} s", started.elapsed().as_secs_f64());
    report.finish(json!({
        "bench": "snakepit",
        "quick": quick,
        "scenarios": chosen,
        "machine": machine,
        "total_s": report::round(started.elapsed().as_secs_f64(), 1),
        "load_average": load,
    }));
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// The machine's 1-minute load average.
fn load_average() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(f64::NAN)
}

/// The interpreter the pool would pick.
fn interpreter() -> PathBuf {
    if let Some(p) = std::env::var_os("SNAKEPIT_PYTHON").filter(|p| !p.is_empty()) {
        return p.into();
    }
    if let Some(venv) = std::env::var_os("VIRTUAL_ENV").filter(|p| !p.is_empty()) {
        let python = PathBuf::from(venv).join("bin/python");
        if python.exists() {
            return python;
        }
    }
    "python3".into()
}

/// What the figures were measured on.
fn machine(plan: &Plan) -> serde_json::Value {
    let read = |path: &str| std::fs::read_to_string(path).unwrap_or_default();
    let cpuinfo = read("/proc/cpuinfo");
    let cpu = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map_or("unknown", |(_, v)| v.trim());
    let mem_kib: u64 = read("/proc/meminfo")
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let python = std::process::Command::new(&plan.python)
        .args([
            "-c",
            "import sys, grpc; print(sys.version.split()[0], 'grpcio', grpc.__version__)",
        ])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|e| format!("cannot run {}: {e}", plan.python.display()));
    json!({
        "nproc": std::thread::available_parallelism().map_or(0, |n| n.get()),
        "cpu": cpu,
        "memory_gib": report::round(mem_kib as f64 / (1024.0 * 1024.0), 1),
        "kernel": read("/proc/sys/kernel/osrelease").trim(),
        "python": python,
    })
}
