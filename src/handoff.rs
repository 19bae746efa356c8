//! How the pool's threads wait for a message that often comes at once: a
//! short spin before parking.
//!
//! Waking a parked thread costs the waker a futex call and the woken
//! thread a trip through the scheduler: several microseconds each on the
//! virtual machines this crate is measured on, which is a large share of a
//! call that takes tens of microseconds on the socket transport. A thread
//! that expects its next message within microseconds (a lane whose caller
//! sends calls back to back, a caller whose call is short) first checks
//! for it in a loop for a bounded time, and parks only if it has not come.

use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvError, TryRecvError};

/// Spin iterations between two looks at the clock.
const SPINS_PER_CHECK: u32 = 64;

/// Receives from `rx`, spinning for up to `spin` before parking.
pub(crate) fn recv<T>(rx: &Receiver<T>, spin: Duration) -> Result<T, RecvError> {
    if !spin.is_zero() {
        let until = Instant::now() + spin;
        loop {
            match rx.try_recv() {
                Ok(message) => return Ok(message),
                Err(TryRecvError::Disconnected) => return Err(RecvError),
                Err(TryRecvError::Empty) => {}
            }
            if Instant::now() >= until {
                break;
            }
            for _ in 0..SPINS_PER_CHECK {
                std::hint::spin_loop();
            }
        }
    }
    rx.recv()
}

/// Spin time from an environment variable in microseconds (bench use), or
/// `default`.
pub(crate) fn spin_from_env(name: &str, default: Duration) -> Duration {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .map_or(default, Duration::from_micros)
}
