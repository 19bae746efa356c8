//! Streaming calls: [`Stream`], the iterator a caller reads chunks from
//! while the Python generator is still producing them.

use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::Arc;
use std::thread::Thread;

use crossbeam_channel::Receiver;
use parking_lot::Mutex;
use serde_json::Value;

use crate::error::Error;

/// One item a streaming tool yielded. New kinds of item may be added, so a
/// `match` on it needs a catch-all arm.
///
/// ```
/// use serde_json::json;
/// use snakepit::Chunk;
///
/// let chunks = [Chunk::Json(json!({"i": 0})), Chunk::Bytes(vec![1, 2])];
/// assert_eq!(chunks[0].as_json(), Some(&json!({"i": 0})));
/// assert_eq!(chunks[1].as_bytes(), Some(&[1u8, 2][..]));
/// assert_eq!(chunks[1].as_json(), None);
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Chunk {
    /// A JSON value (anything the generator yielded but bytes).
    Json(Value),
    /// Raw bytes the generator yielded.
    Bytes(Vec<u8>),
}

impl Chunk {
    /// The JSON value, if this chunk is one.
    pub fn as_json(&self) -> Option<&Value> {
        match self {
            Chunk::Json(v) => Some(v),
            Chunk::Bytes(_) => None,
        }
    }

    /// The bytes, if this chunk is raw bytes.
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Chunk::Bytes(b) => Some(b),
            Chunk::Json(_) => None,
        }
    }
}

/// What travels from the lane to the caller's [`Stream`].
#[derive(Debug)]
pub(crate) enum StreamEvent {
    Chunk(Chunk),
    /// The generator finished; nothing follows.
    End,
    /// The call failed; nothing follows.
    Failed(Error),
}

/// How often a thread blocked on a stream (waiting for a chunk, or for a
/// slow reader to take one) looks for a cancel.
pub(crate) const CANCEL_POLL: std::time::Duration = std::time::Duration::from_millis(50);

/// Shared between a [`Stream`] and the lane serving it: dropping the
/// stream cancels the call and wakes the lane to notice.
#[derive(Debug, Default)]
pub(crate) struct StreamControl {
    cancelled: AtomicBool,
    lane: Mutex<Option<Thread>>,
}

impl StreamControl {
    pub fn is_cancelled(&self) -> bool {
        self.cancelled.load(SeqCst)
    }

    /// The lane serving the stream registers itself, to be woken on cancel.
    pub fn attach(&self, lane: Thread) {
        *self.lane.lock() = Some(lane);
    }

    fn cancel(&self) {
        self.cancelled.store(true, SeqCst);
        if let Some(lane) = self.lane.lock().as_ref() {
            lane.unpark();
        }
    }
}

/// The chunks of a streaming call, in the order the tool yielded them.
///
/// Each item is `Ok(chunk)` until the generator finishes (then `None`), or
/// one `Err` that ends the stream: the Python exception raised mid-stream
/// ([`Error::Python`]), a timeout, a crash, or any other call error.
/// Dropping the stream early cancels the call: the Python generator is
/// closed (its `finally` blocks run) and the worker is freed. So the type
/// is `#[must_use]`: a stream dropped unread is a call cancelled at once.
///
/// ```no_run
/// # let pool = snakepit::Pool::builder().adapter("snakepit_showcase.adapter.ShowcaseAdapter").build()?;
/// use serde_json::json;
/// for chunk in pool.execute_stream("count_stream", json!({"n": 3}))? {
///     println!("{:?}", chunk?);
/// }
/// # Ok::<(), snakepit::Error>(())
/// ```
///
/// A stream dropped without a look is flagged by the compiler (here denied,
/// so this does not build):
///
/// ```compile_fail
/// #![deny(unused_must_use)]
/// fn fire_and_forget(pool: &snakepit::Pool) -> Result<(), snakepit::Error> {
///     pool.execute_stream("count_stream", serde_json::json!({"n": 3}))?;
///     Ok(())
/// }
/// ```
#[must_use = "dropping a Stream cancels the call"]
pub struct Stream {
    events: Receiver<StreamEvent>,
    control: Arc<StreamControl>,
    finished: bool,
    /// Why the call went unanswered, when its request was dropped.
    unanswered: Box<dyn Fn() -> Error + Send + Sync>,
}

impl std::fmt::Debug for Stream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stream")
            .field("control", &self.control)
            .field("finished", &self.finished)
            .finish_non_exhaustive()
    }
}

impl Stream {
    pub(crate) fn new(
        events: Receiver<StreamEvent>,
        control: Arc<StreamControl>,
        unanswered: Box<dyn Fn() -> Error + Send + Sync>,
    ) -> Self {
        Stream {
            events,
            control,
            finished: false,
            unanswered,
        }
    }
}

impl Iterator for Stream {
    type Item = Result<Chunk, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.finished {
            return None;
        }
        let event = self.events.recv();
        match event {
            Ok(StreamEvent::Chunk(chunk)) => Some(Ok(chunk)),
            Ok(StreamEvent::End) => {
                self.finished = true;
                None
            }
            Ok(StreamEvent::Failed(err)) => {
                self.finished = true;
                Some(Err(err))
            }
            // The request was dropped unanswered: the pool went away, or
            // a pool thread panicked while it held the call.
            Err(_) => {
                self.finished = true;
                Some(Err((self.unanswered)()))
            }
        }
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        if !self.finished {
            self.control.cancel();
        }
    }
}
