//! The one bound on every duration ([`MAX_DURATION`]) and deadline
//! arithmetic that cannot overflow. The bottom of the crate: it uses no
//! other module, so the options, calls and pool threads can all use it.

use std::time::{Duration, Instant};

/// The longest duration any option or call accepts: 100 years
/// (36,525 days). Every duration the builder, [`CallOptions`], the
/// configuration file or the CLI takes is checked against it, so that
/// adding it to the current time can neither overflow [`Instant`] nor
/// become a negative gRPC deadline; a longer one is an
/// [`Error::InvalidConfig`] or [`Error::InvalidArgument`] naming the
/// option. Use it (or any long value) to mean "practically never".
///
/// [`CallOptions`]: crate::CallOptions
/// [`Error::InvalidConfig`]: crate::Error::InvalidConfig
/// [`Error::InvalidArgument`]: crate::Error::InvalidArgument
///
/// ```
/// use snakepit::MAX_DURATION;
/// use std::time::Duration;
///
/// assert_eq!(MAX_DURATION, Duration::from_secs(36_525 * 24 * 3600));
/// ```
pub const MAX_DURATION: Duration = Duration::from_secs(36_525 * 24 * 3600);

/// `now + after`, saturating: a duration above [`MAX_DURATION`] (which
/// validation keeps out, but a pool thread must not panic if one slips
/// through) counts as `MAX_DURATION`, far enough to mean never.
pub(crate) fn later(now: Instant, after: Duration) -> Instant {
    now.checked_add(after.min(MAX_DURATION))
        .or_else(|| now.checked_add(Duration::from_secs(24 * 3600)))
        .unwrap_or(now)
}

/// `Err` with a message naming the limit when `d` exceeds [`MAX_DURATION`].
pub(crate) fn check_duration(d: Duration) -> Result<(), String> {
    if d > MAX_DURATION {
        Err(format!(
            "must be at most {} seconds (100 years), got {d:?}",
            MAX_DURATION.as_secs()
        ))
    } else {
        Ok(())
    }
}
