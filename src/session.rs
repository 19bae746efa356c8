//! [`Session`]: a handle whose calls all go to the worker that holds the
//! session's state.

use serde_json::Value;

use crate::call::{CallOptions, Reply};
use crate::error::Error;
use crate::pool::Pool;
use crate::stream::Stream;

/// Calls that share state on one worker: a loaded model, a conversation.
///
/// Get one with [`Pool::session`]. Its calls carry the session id; the
/// dispatcher sends them to the session's worker (how strictly is the
/// pool's [`Affinity`](crate::Affinity), or the call's), and the adapter
/// sees the id as `self.session_context.session_id` with a per-session
/// store in `self.session_context.store` that lasts across calls.
///
/// A session ends with [`close`](Session::close) or after the pool's
/// `session_idle_timeout` without calls; its worker is then told to free
/// the session's state. Dropping the handle does not end the session; a
/// handle never used does nothing (`#[must_use]`).
///
/// ```no_run
/// # let pool = snakepit::Pool::builder().adapter("snakepit_showcase.adapter.ShowcaseAdapter").build()?;
/// use serde_json::json;
/// let session = pool.session("user-42");
/// session.execute_blocking("session_counter", json!({}))?; // 1
/// session.execute_blocking("session_counter", json!({}))?; // 2, same worker
/// session.close()?;
/// # Ok::<(), snakepit::Error>(())
/// ```
#[derive(Debug, Clone)]
#[must_use = "a Session routes only the calls made through it"]
pub struct Session {
    pool: Pool,
    id: String,
}

impl Pool {
    /// A handle on session `id`: its calls go to the same worker, where the
    /// adapter keeps per-session state. See [`Session`].
    pub fn session(&self, id: impl Into<String>) -> Session {
        Session {
            pool: self.clone(),
            id: id.into(),
        }
    }
}

impl Session {
    /// The session id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// [`Pool::execute_blocking`] in this session.
    pub fn execute_blocking(&self, tool: &str, args: Value) -> Result<Value, Error> {
        self.execute_blocking_with(tool, args, CallOptions::new())
            .map(|r| r.value)
    }

    /// [`Pool::execute_blocking_with`] in this session. The options may set
    /// this call's [`Affinity`](crate::Affinity); their session id, if any,
    /// is replaced by this session's.
    ///
    /// ```
    /// use serde_json::json;
    /// use snakepit::{Affinity, CallOptions, Error, Session};
    ///
    /// /// The next message of a conversation: only its own worker holds the
    /// /// history, so wait for it rather than start afresh elsewhere.
    /// fn next_message(session: &Session, text: &str) -> Result<String, Error> {
    ///     let opts = CallOptions::new().affinity(Affinity::StrictQueue);
    ///     let reply = session.execute_blocking_with("chat", json!({"text": text}), opts)?;
    ///     Ok(reply.value.as_str().unwrap_or_default().to_owned())
    /// }
    /// # let _ = next_message;
    /// ```
    pub fn execute_blocking_with(
        &self,
        tool: &str,
        args: Value,
        options: CallOptions,
    ) -> Result<Reply, Error> {
        self.pool
            .execute_blocking_with(tool, args, options.session(self.id.clone()))
    }

    /// [`Pool::execute_stream`] in this session.
    pub fn execute_stream(&self, tool: &str, args: Value) -> Result<Stream, Error> {
        self.execute_stream_with(tool, args, CallOptions::new())
    }

    /// [`Pool::execute_stream_with`] in this session.
    pub fn execute_stream_with(
        &self,
        tool: &str,
        args: Value,
        options: CallOptions,
    ) -> Result<Stream, Error> {
        self.pool
            .execute_stream_with(tool, args, options.session(self.id.clone()))
    }

    /// Ends the session: its worker is told to free the session's state,
    /// and the next call with this id starts a new session.
    pub fn close(self) -> Result<(), Error> {
        self.pool.close_session(&self.id)
    }
}
