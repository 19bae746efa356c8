//! What the bench reads off the host and how it summarises samples.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// CPU time (user + system) the whole host process has used so far, all
/// threads included: the caller threads, the pool's dispatcher and lanes,
/// and gRPC's completion-queue threads.
pub fn host_cpu() -> Duration {
    let usage = rusage();
    let to_duration = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
    };
    to_duration(usage.ru_utime) + to_duration(usage.ru_stime)
}

/// Voluntary context switches of the host process so far, all threads:
/// each time a thread blocked waiting for another (preemptions, which
/// other programs' load causes, are not counted).
pub fn host_switches() -> u64 {
    rusage().ru_nvcsw as u64
}

fn rusage() -> libc::rusage {
    // SAFETY: getrusage only writes the struct it is given.
    unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    }
}

/// Resident memory of a process in bytes (`VmRSS`), `None` if it is gone.
pub fn rss_of(pid: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Resident memory of the host process in bytes.
pub fn host_rss() -> u64 {
    rss_of("self").expect("/proc/self/status has VmRSS")
}

/// The median; the mean of the two middle values for an even count.
pub fn median(values: &[f64]) -> f64 {
    assert!(!values.is_empty(), "median of nothing");
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    if v.len() % 2 == 1 {
        v[mid]
    } else {
        (v[mid - 1] + v[mid]) / 2.0
    }
}

/// The `q`-quantile (0..=1) by nearest rank.
pub fn quantile(values: &[f64], q: f64) -> f64 {
    assert!(!values.is_empty(), "quantile of nothing");
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let rank = (q * v.len() as f64).ceil() as usize;
    v[rank.clamp(1, v.len()) - 1]
}

/// One batch of sequential calls: each call's latency, and the host's CPU
/// time over the batch.
pub struct Batch {
    /// Latency of each call, in microseconds.
    pub latencies_us: Vec<f64>,
    /// Host CPU time over the batch, divided by the calls, in microseconds.
    pub cpu_per_call_us: f64,
    /// Host voluntary context switches over the batch, divided by the calls.
    pub switches_per_call: f64,
}

impl Batch {
    pub fn p50(&self) -> f64 {
        quantile(&self.latencies_us, 0.50)
    }

    pub fn p99(&self) -> f64 {
        quantile(&self.latencies_us, 0.99)
    }
}

/// Runs `call` `n` times in a row on this thread and times each run.
pub fn sequential(n: usize, mut call: impl FnMut()) -> Batch {
    let mut latencies_us = Vec::with_capacity(n);
    let (cpu, switches) = (host_cpu(), host_switches());
    for _ in 0..n {
        let t = Instant::now();
        call();
        latencies_us.push(t.elapsed().as_secs_f64() * 1e6);
    }
    Batch {
        latencies_us,
        cpu_per_call_us: (host_cpu() - cpu).as_secs_f64() * 1e6 / n as f64,
        switches_per_call: (host_switches() - switches) as f64 / n as f64,
    }
}

/// The outcome of a fixed-length window of calls from several threads.
pub struct Window {
    pub calls: u64,
    pub wall: Duration,
    pub cpu: Duration,
}

impl Window {
    pub fn calls_per_sec(&self) -> f64 {
        self.calls as f64 / self.wall.as_secs_f64()
    }

    pub fn cpu_per_call_us(&self) -> f64 {
        self.cpu.as_secs_f64() * 1e6 / self.calls.max(1) as f64
    }
}

/// `threads` threads call `call` (with their index) back to back until
/// `length` has passed (calls in flight at that moment finish and count).
/// The clock and the CPU reading start once every thread is up.
pub fn window(threads: usize, length: Duration, call: impl Fn(usize) + Sync) -> Window {
    let gate = std::sync::Barrier::new(threads + 1);
    let deadline = std::sync::OnceLock::<Instant>::new();
    std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads)
            .map(|i| {
                let (gate, deadline, call) = (&gate, &deadline, &call);
                s.spawn(move || {
                    gate.wait();
                    let end = *deadline.wait();
                    let mut calls = 0u64;
                    while Instant::now() < end {
                        call(i);
                        calls += 1;
                    }
                    calls
                })
            })
            .collect();
        gate.wait();
        let cpu = host_cpu();
        let started = Instant::now();
        deadline.set(started + length).expect("set once");
        let calls = workers
            .into_iter()
            .map(|w| w.join().expect("a caller thread panicked"))
            .sum();
        Window {
            calls,
            wall: started.elapsed(),
            cpu: host_cpu() - cpu,
        }
    })
}

/// `threads` threads make one call each, all released at once; returns the
/// wall time from their release until the last one finished.
pub fn burst(threads: usize, call: impl Fn() + Sync) -> Duration {
    let gate = std::sync::Barrier::new(threads + 1);
    std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    gate.wait();
                    call();
                })
            })
            .collect();
        gate.wait();
        let started = Instant::now();
        for w in workers {
            w.join().expect("a caller thread panicked");
        }
        started.elapsed()
    })
}

/// On-CPU time of this process's threads so far, in nanoseconds, summed
/// by thread name with any trailing `-<number>` dropped (so the gRPC
/// completion-queue threads `snakepit-grpc-0`, `-1` count together). Read
/// from `/proc/self/task/*/schedstat`; names are cut to 15 bytes by Linux.
pub fn cpu_by_thread() -> BTreeMap<String, u64> {
    let mut by_name = BTreeMap::new();
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return by_name;
    };
    for task in tasks.flatten() {
        let path = task.path();
        let comm = std::fs::read_to_string(path.join("comm")).unwrap_or_default();
        let Some(ns) = std::fs::read_to_string(path.join("schedstat"))
            .ok()
            .and_then(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        else {
            continue;
        };
        let name = comm
            .trim()
            .trim_end_matches(|c: char| c.is_ascii_digit())
            .trim_end_matches('-');
        *by_name.entry(name.to_owned()).or_insert(0) += ns;
    }
    by_name
}

/// `after - before`, name by name.
pub fn cpu_spent(
    before: &BTreeMap<String, u64>,
    after: &BTreeMap<String, u64>,
) -> BTreeMap<String, u64> {
    after
        .iter()
        .map(|(name, ns)| {
            let spent = ns.saturating_sub(before.get(name).copied().unwrap_or(0));
            (name.clone(), spent)
        })
        .collect()
}

/// CPU time (user + system, all threads) a process has used so far, from
/// `/proc/<pid>/stat`, in clock ticks' resolution (10 ms on most kernels).
pub fn process_cpu(pid: u32) -> Duration {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return Duration::ZERO;
    };
    // Fields after the command name, which may hold spaces: state is the
    // first, utime and stime the 12th and 13th.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or("", |(_, rest)| rest)
        .split_whitespace()
        .collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // SAFETY: sysconf only reads a configuration value.
    let per_sec = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    let total = ticks(11) + ticks(12);
    Duration::from_secs(total / per_sec)
        + Duration::from_nanos(total % per_sec * 1_000_000_000 / per_sec)
}
