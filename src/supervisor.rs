//! Lifecycle policy shared by the workers: how long to wait before
//! starting a process again after one failed.
//!
//! Each worker runs its own lifecycle loop (start, serve, replace: see
//! `worker`); the rules that loop follows live here.

use std::time::Duration;

/// Exponential backoff between restarts of a failing worker, capped, so a
/// worker whose adapter crashes at import does not spin.
#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    min: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    pub fn new(min: Duration, max: Duration) -> Self {
        Backoff {
            min,
            max,
            next: min,
        }
    }

    /// The wait before the next restart; each call doubles the one after,
    /// up to the cap.
    pub fn next_delay(&mut self) -> Duration {
        let delay = self.next;
        self.next = (self.next * 2).min(self.max);
        delay
    }

    /// Back to the shortest wait, after a process served for a while.
    pub fn reset(&mut self) {
        self.next = self.min;
    }

    /// The cap.
    pub fn max(&self) -> Duration {
        self.max
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_its_cap_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(500));
        let waits: Vec<u64> = (0..5).map(|_| b.next_delay().as_millis() as u64).collect();
        assert_eq!(waits, [100, 200, 400, 500, 500]);
        b.reset();
        assert_eq!(b.next_delay(), Duration::from_millis(100));
    }
}

/// Spreads recycling limits so workers started together do not all
/// restart together. A xorshift generator: no cryptographic need here.
#[derive(Debug, Clone)]
pub(crate) struct Jitter(u64);

impl Jitter {
    pub fn new(seed: u64) -> Self {
        let time = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        Jitter((seed ^ time) | 1)
    }

    /// A number in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            return 0;
        }
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x % n
    }
}

/// The resident memory of process `pid` in bytes, from
/// `/proc/<pid>/status` (`VmRSS`): the worker's own memory, not the host's.
pub(crate) fn resident_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Waits up to `limit` for `done`, looking every 2 ms. For conditions
/// that have no event to wait on (a count reaching zero on other threads).
pub(crate) fn wait_for(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + limit;
    loop {
        if done() {
            return true;
        }
        if std::time::Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[cfg(test)]
mod more_tests {
    use super::*;

    #[test]
    fn jitter_stays_below_its_bound() {
        let mut j = Jitter::new(7);
        assert_eq!(j.below(0), 0);
        let draws: Vec<u64> = (0..1000).map(|_| j.below(10)).collect();
        assert!(draws.iter().all(|&d| d < 10));
        assert!(draws.iter().collect::<std::collections::HashSet<_>>().len() > 5);
    }

    #[test]
    fn resident_memory_is_read_from_proc() {
        let rss = resident_bytes(std::process::id()).unwrap();
        assert!(rss > 1 << 20, "{rss}");
        assert_eq!(resident_bytes(u32::MAX), None);
    }
}
