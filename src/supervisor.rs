//! The lifecycle rules the workers follow: when a process is due for
//! replacement (lifetime, requests served, memory), when it is due for a
//! health check, how long to wait before starting again after a failure.
//!
//! Each worker runs its own supervision loop (`worker`): a short list of
//! named steps (reap, check lifetime, check memory, check health, replace,
//! drain), each of which asks the rules here whether it is due. The loop
//! does the work; this module decides when.

use std::time::{Duration, Instant};

use crate::deadline::later;
use crate::events::RecycleReason;
use crate::options::Config;

/// When one serving process is next due for each check. The loop sleeps
/// until the earliest of them (or a message).
#[derive(Debug, Clone)]
pub(crate) struct Schedule {
    /// The end of the process's life (`max_lifetime` plus jitter).
    retire_at: Option<Instant>,
    next_memory: Option<Instant>,
    next_health: Option<Instant>,
    /// A replacement that failed, to be tried again.
    retry: Option<(Instant, RecycleReason)>,
}

impl Schedule {
    /// The checks `config` asks for, counted from `now`, for a process that
    /// retires at `retire_at`.
    pub fn new(config: &Config, now: Instant, retire_at: Option<Instant>) -> Self {
        Schedule {
            retire_at,
            next_memory: config
                .max_memory
                .map(|_| later(now, config.memory_check_interval)),
            next_health: config.health_check_interval.map(|i| later(now, i)),
            retry: None,
        }
    }

    /// The earliest moment something is due, if anything ever is.
    pub fn next_wake(&self) -> Option<Instant> {
        [
            self.retire_at,
            self.next_health,
            self.next_memory,
            self.retry.map(|r| r.0),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// A fresh process took over: its own lifetime applies.
    pub fn replaced(&mut self, retire_at: Option<Instant>) {
        self.retire_at = retire_at;
    }

    /// Whether the process has lived its lifetime (once: it is then being
    /// replaced).
    pub fn lifetime_due(&mut self, now: Instant) -> bool {
        let due = self.retire_at.is_some_and(|at| at <= now);
        if due {
            self.retire_at = None;
        }
        due
    }

    /// A failed replacement whose retry is due.
    pub fn retry_due(&mut self, now: Instant) -> Option<RecycleReason> {
        let (at, reason) = self.retry?;
        (at <= now).then(|| {
            self.retry = None;
            reason
        })
    }

    /// Tries a failed replacement again at `at`.
    pub fn retry_at(&mut self, at: Instant, reason: RecycleReason) {
        self.retry = Some((at, reason));
    }

    /// Whether memory is due for a reading; if so, the next one is booked.
    pub fn memory_due(&mut self, now: Instant, config: &Config) -> bool {
        let due = self.next_memory.is_some_and(|at| at <= now);
        if due {
            self.next_memory = Some(later(now, config.memory_check_interval));
        }
        due
    }

    /// Whether a health check is due; if so, the next one is booked.
    pub fn health_due(&mut self, now: Instant, config: &Config) -> bool {
        let due = self.next_health.is_some_and(|at| at <= now);
        if due {
            self.next_health = config.health_check_interval.map(|i| later(now, i));
        }
        due
    }
}

/// Whether a process using `rss` bytes (`None`: unknown) is past `limit`.
/// An unknown reading never recycles: a remote process has none.
pub(crate) fn over_memory(rss: Option<u64>, limit: Option<u64>) -> bool {
    matches!((rss, limit), (Some(rss), Some(limit)) if rss > limit)
}

/// How many calls a new process may serve: `max_requests` plus a jitter,
/// so workers started together do not all recycle together.
pub(crate) fn request_limit(config: &Config, jitter: &mut Jitter) -> Option<u64> {
    config
        .max_requests
        .map(|n| n + jitter.below(config.max_requests_jitter + 1))
}

/// When a process started at `now` retires: `max_lifetime` plus a jitter.
pub(crate) fn lifetime_end(config: &Config, now: Instant, jitter: &mut Jitter) -> Option<Instant> {
    config.max_lifetime.map(|life| {
        let jitter_ms = u64::try_from(config.max_lifetime_jitter.as_millis()).unwrap_or(u64::MAX);
        let jitter = Duration::from_millis(jitter.below(jitter_ms.saturating_add(1)));
        later(now, life.saturating_add(jitter))
    })
}

/// After how many calls a process with request limit `limit` should start
/// its replacement, so that it is usually ready when the limit is hit.
pub(crate) fn early_recycle_point(limit: u64) -> u64 {
    limit - (limit / 5).max(1).min(limit - 1)
}

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
        self.next = self.next.saturating_mul(2).min(self.max);
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

/// Waits up to `limit` for `done`, looking every 2 ms. For conditions
/// that have no event to wait on (a count reaching zero on other threads).
pub(crate) fn wait_for(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = later(std::time::Instant::now(), limit);
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
    fn an_unknown_memory_reading_never_recycles() {
        assert!(over_memory(Some(2), Some(1)));
        assert!(!over_memory(Some(1), Some(1)));
        assert!(!over_memory(None, Some(1)));
        assert!(!over_memory(Some(u64::MAX), None));
    }

    #[test]
    fn the_replacement_starts_a_little_before_the_request_limit() {
        assert_eq!(early_recycle_point(1), 1);
        assert_eq!(early_recycle_point(2), 1);
        assert_eq!(early_recycle_point(10), 8);
        assert_eq!(early_recycle_point(100), 80);
    }
}
