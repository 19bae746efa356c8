//! Containing panics on the pool's own threads: no pool thread may go down
//! on any input. A lane catches a panic per call, the dispatcher per round,
//! a worker's thread per process, and every call into the user's event
//! hook is guarded (see `events::Guarded`). What was held at the panic
//! fails with [`Error::Internal`](crate::Error::Internal); the thread goes
//! on.

use std::any::Any;
use std::panic::{self, AssertUnwindSafe};

/// Runs `f`, turning a panic into the text it was raised with.
///
/// The state `f` touches must stay usable after a panic part-way through:
/// each caller says why it does (counters and slot words are atomic, and
/// what a panicking round held is dropped, which answers its callers).
pub(crate) fn catch<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    panic::catch_unwind(AssertUnwindSafe(f)).map_err(|payload| message(payload.as_ref()))
}

/// The text a panic was raised with (`panic!("...")` gives a `&str` or a
/// `String`; anything else has no text).
pub(crate) fn message(payload: &(dyn Any + Send)) -> String {
    if let Some(text) = payload.downcast_ref::<&str>() {
        (*text).to_owned()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "(a panic with no message)".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_becomes_its_message_and_a_value_passes_through() {
        assert_eq!(catch(|| 7), Ok(7));
        assert_eq!(
            catch(|| -> () { panic!("code {}", 7) }),
            Err("code 7".into())
        );
        assert_eq!(catch(|| -> () { panic!("plain") }), Err("plain".into()));
        assert_eq!(
            catch(|| -> () { std::panic::panic_any(3_u8) }),
            Err("(a panic with no message)".into())
        );
    }
}
