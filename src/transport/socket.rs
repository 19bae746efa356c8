//! The socket transport: length-prefixed frames ([`super::frame`]) on Unix
//! stream connections to the crate's own worker.
//!
//! A transport keeps the connections to one process. A call takes an idle
//! connection (or opens one), sends its request, reads the reply on the
//! calling thread and puts the connection back; so each lane in effect
//! owns one connection, and a health ping or a session cleanup made while
//! a call runs gets a connection of its own. A connection whose call did
//! not end cleanly (a timeout, a cancelled stream, a bad frame, a broken
//! pipe) is closed, never reused: closing it is also how a cancel reaches
//! the worker, whose loop for that connection then stops the tool's
//! generator. The process's telemetry stream has a connection of its own
//! ([`super::socket_telemetry`]).

use std::cell::Cell;
use std::io::{BufReader, ErrorKind};
use std::ops::ControlFlow;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use protobuf::Message;

use super::frame::{self, error_code, Frame, FrameReader, Kind, ReadError};
use super::socket_telemetry::SocketTelemetry;
use super::{Buffers, Connect, PingInfo, TelemetryFeed, Transport, TransportError};
use crate::deadline::later;
use crate::protocol::messages::{
    CleanupSessionRequest, CleanupSessionResponse, ExecuteToolRequest, ExecuteToolResponse,
    InitializeSessionRequest, InitializeSessionResponse, PingRequest, PingResponse, ToolChunk,
};
use crate::stream::{StreamControl, CANCEL_POLL};

/// The longest a single blocking read or write waits before the deadline
/// (or a cancel) is looked at again.
const WAIT_SLICE: Duration = Duration::from_secs(1);

/// How often a ping that waits for the worker tries to connect.
const CONNECT_RETRY: Duration = Duration::from_millis(5);

/// Bytes read from the socket at a time for small frames (a large segment
/// is read straight into its own buffer).
const READ_BUFFER: usize = 64 * 1024;

/// Makes socket transports to the addresses (`unix:PATH`) our workers
/// report.
pub(crate) struct SocketConnector {
    max_message_bytes: usize,
}

impl SocketConnector {
    /// A connector whose frames carry messages up to `max_message_bytes`.
    pub fn new(max_message_bytes: usize) -> Self {
        SocketConnector { max_message_bytes }
    }
}

impl Connect for SocketConnector {
    fn connect(&self, address: &str) -> Result<Arc<dyn Transport>, String> {
        let path = address.strip_prefix("unix:").ok_or_else(|| {
            format!("the socket transport needs a unix: address, the worker reported {address:?}")
        })?;
        Ok(Arc::new(SocketTransport {
            path: PathBuf::from(path),
            limit: self.max_message_bytes,
            idle: Mutex::new(Vec::new()),
        }))
    }
}

/// The connections to one worker process.
pub(crate) struct SocketTransport {
    path: PathBuf,
    /// The largest message plus binary data of a frame, either way.
    limit: usize,
    idle: Mutex<Vec<Conn>>,
}

/// One connection, used by one call at a time.
struct Conn {
    reader: BufReader<UnixStream>,
    next_id: u32,
    /// The read timeout set on the socket now.
    read_timeout: ReadTimeout,
}

/// How a call on a connection ended, besides its result: whether the
/// connection can serve the next call.
type Outcome<T> = (Result<T, TransportError>, Reuse);

#[derive(PartialEq, Eq)]
enum Reuse {
    Yes,
    No,
}

impl SocketTransport {
    /// Opens a connection to the worker.
    #[cfg(test)]
    pub fn to_path(path: impl Into<PathBuf>, limit: usize) -> Self {
        SocketTransport {
            path: path.into(),
            limit,
            idle: Mutex::new(Vec::new()),
        }
    }

    fn open(&self) -> Result<Conn, TransportError> {
        let stream = UnixStream::connect(&self.path).map_err(|e| unavailable(&e))?;
        set_send_buffer(&stream);
        stream
            .set_read_timeout(Some(WAIT_SLICE))
            .and_then(|()| stream.set_write_timeout(Some(WAIT_SLICE)))
            .map_err(|e| unavailable(&e))?;
        Ok(Conn {
            reader: BufReader::with_capacity(READ_BUFFER, stream),
            next_id: 0,
            read_timeout: ReadTimeout::new(Some(WAIT_SLICE)),
        })
    }

    /// An idle connection, or a new one.
    fn take(&self) -> Result<Conn, TransportError> {
        match self.idle.lock().pop() {
            Some(conn) => Ok(conn),
            None => self.open(),
        }
    }

    /// Runs `f` on a connection, keeping the connection if it ended cleanly.
    fn with_conn<T>(&self, f: impl FnOnce(&mut Conn) -> Outcome<T>) -> Result<T, TransportError> {
        let mut conn = self.take()?;
        let (result, reuse) = f(&mut conn);
        if reuse == Reuse::Yes {
            self.idle.lock().push(conn);
        }
        result
    }

    /// A unary request and its one reply, `expect` or an error frame.
    fn unary<M: Message>(
        &self,
        kind: Kind,
        expect: Kind,
        request: &impl Message,
        deadline: Instant,
    ) -> Result<M, TransportError> {
        let bytes = request.write_to_bytes().map_err(encode_failed)?;
        self.with_conn(|conn| {
            let frame = match conn.round_trip(kind, &bytes, &[], deadline, self.limit) {
                Ok(frame) => frame,
                Err(e) => return (Err(e), Reuse::No),
            };
            match reply::<M>(frame, expect) {
                Ok((message, _)) => (Ok(message), Reuse::Yes),
                Err(e) => {
                    let reuse = reuse_after(&e);
                    (Err(e), reuse)
                }
            }
        })
    }
}

impl Conn {
    fn stream(&self) -> &UnixStream {
        self.reader.get_ref()
    }

    /// Sets the socket's read timeout to `wait`, capped at the slice.
    fn wait_at_most(&self, wait: Duration) -> std::io::Result<()> {
        self.read_timeout.set(self.stream(), wait.min(WAIT_SLICE))
    }

    /// Writes one request frame; its call id.
    fn send(
        &mut self,
        kind: Kind,
        message: &[u8],
        segments: &[(&str, &[u8])],
        deadline: Instant,
        limit: usize,
    ) -> Result<u32, TransportError> {
        let size = segments
            .iter()
            .fold(message.len(), |n, (_, d)| n.saturating_add(d.len()));
        if size > limit {
            // The pool checks arguments before they reach a lane; this is
            // the last guard that the frame stays within what the worker
            // accepts.
            return Err(TransportError::Failed {
                code: "INVALID_ARGUMENT".into(),
                message: format!("request of {size} bytes exceeds the limit of {limit}"),
            });
        }
        self.next_id = self.next_id.wrapping_add(1);
        let id = self.next_id;
        let writer = TimedWriter {
            stream: self.reader.get_ref(),
            deadline,
        };
        frame::write_frame(writer, kind, id, message, segments).map_err(|e| write_failed(&e))?;
        Ok(id)
    }

    /// Reads the reply to call `id`, waiting until `deadline`, and while
    /// `go_on` says so (asked at least every `poll`). A binary segment is
    /// read into `spare` when it suits ([`FrameReader::spare`]).
    fn receive(
        &mut self,
        id: u32,
        deadline: Instant,
        poll: Duration,
        limit: usize,
        go_on: &dyn Fn() -> bool,
        spare: Option<Vec<u8>>,
    ) -> Result<Frame, Stop> {
        let slice = |now: Instant| deadline.saturating_duration_since(now).min(poll);
        self.wait_at_most(slice(Instant::now()))
            .map_err(|e| Stop::Failed(unavailable(&e)))?;
        let timeout = &self.read_timeout;
        let mut stopped_by_caller = false;
        let mut keep_waiting = |reader: &&mut BufReader<UnixStream>| {
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            if !go_on() {
                stopped_by_caller = true;
                return false;
            }
            // A failure leaves the timeout it had: the read goes on with it.
            let _ = timeout.set(reader.get_ref(), slice(now).min(WAIT_SLICE));
            true
        };
        let read = FrameReader {
            stream: &mut self.reader,
            limit,
            keep_waiting: &mut keep_waiting,
            spare,
        }
        .read();
        let frame = match read {
            Ok(frame) => frame,
            Err(ReadError::TimedOut) if stopped_by_caller => return Err(Stop::Cancelled),
            Err(ReadError::TimedOut) => return Err(Stop::Failed(TransportError::DeadlineExceeded)),
            Err(ReadError::Closed) => {
                return Err(Stop::Failed(TransportError::Failed {
                    code: "UNAVAILABLE".into(),
                    message: "the worker closed the connection".into(),
                }))
            }
            Err(ReadError::Bad(message)) => {
                return Err(Stop::Failed(TransportError::BadPeer(message)))
            }
            Err(ReadError::Io(e)) => return Err(Stop::Failed(unavailable(&e))),
        };
        if frame.call_id != id {
            return Err(Stop::Failed(TransportError::BadPeer(format!(
                "reply to call {} where call {id} was waiting",
                frame.call_id
            ))));
        }
        Ok(frame)
    }

    /// Sends a request and reads its one reply frame. After a failure the
    /// connection is not reused.
    fn round_trip(
        &mut self,
        kind: Kind,
        message: &[u8],
        segments: &[(&str, &[u8])],
        deadline: Instant,
        limit: usize,
    ) -> Result<Frame, TransportError> {
        let id = self.send(kind, message, segments, deadline, limit)?;
        self.receive(id, deadline, WAIT_SLICE, limit, &|| true, None)
            .map_err(Stop::into_error)
    }
}

/// Why a read stopped without a frame.
enum Stop {
    /// The caller gave up (a cancelled stream).
    Cancelled,
    Failed(TransportError),
}

impl Stop {
    fn into_error(self) -> TransportError {
        match self {
            Stop::Cancelled => TransportError::DeadlineExceeded,
            Stop::Failed(e) => e,
        }
    }
}

/// Writes with the socket's write timeout as a slice, until `deadline`.
struct TimedWriter<'a> {
    stream: &'a UnixStream,
    deadline: Instant,
}

impl std::io::Write for TimedWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.write_vectored(&[std::io::IoSlice::new(buf)])
    }

    fn write_vectored(&mut self, bufs: &[std::io::IoSlice<'_>]) -> std::io::Result<usize> {
        loop {
            match (&mut &*self.stream).write_vectored(bufs) {
                Err(e) if frame::is_timeout(&e) => {
                    if Instant::now() >= self.deadline {
                        return Err(ErrorKind::TimedOut.into());
                    }
                }
                other => return other,
            }
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A frame's binary segments, by name.
type Segments = Vec<(String, Vec<u8>)>;

/// Reads a reply frame of kind `expect` (or an error frame) as `M`, with
/// its segments.
fn reply<M: Message>(frame: Frame, expect: Kind) -> Result<(M, Segments), TransportError> {
    match frame.kind {
        Some(kind) if kind == expect => {
            let message = M::parse_from_bytes(&frame.message).map_err(|e| {
                TransportError::BadPeer(format!("a {expect:?} frame that does not parse: {e}"))
            })?;
            Ok((message, frame.segments))
        }
        Some(Kind::Error) => {
            let text = String::from_utf8_lossy(&frame.message).into_owned();
            Err(match frame.flags {
                error_code::RESOURCE_EXHAUSTED => TransportError::ResourceExhausted,
                error_code::BAD_REQUEST => TransportError::Failed {
                    code: "INVALID_ARGUMENT".into(),
                    message: text,
                },
                _ => TransportError::Failed {
                    code: "INTERNAL".into(),
                    message: text,
                },
            })
        }
        other => Err(TransportError::BadPeer(format!(
            "a {other:?} frame where {expect:?} was expected"
        ))),
    }
}

/// Whether a connection stays usable after a reply that failed: an error
/// frame is a whole reply; anything else leaves the stream in doubt.
fn reuse_after(e: &TransportError) -> Reuse {
    match e {
        TransportError::ResourceExhausted => Reuse::Yes,
        TransportError::Failed { code, .. } if code == "INTERNAL" || code == "INVALID_ARGUMENT" => {
            Reuse::Yes
        }
        _ => Reuse::No,
    }
}

/// The socket send buffer asked for: large binary arguments then move in
/// fewer, larger writes (the kernel's default is about 200 KiB).
const SEND_BUFFER: libc::c_int = 4 << 20;

fn set_send_buffer(stream: &UnixStream) {
    use std::os::fd::AsRawFd;
    // SAFETY: a valid socket descriptor, a c_int option value of the size
    // given. A failure only leaves the default in place.
    unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_SNDBUF,
            (&SEND_BUFFER as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

/// The read timeout a socket has now, so that it is set (a system call) only
/// when it changes.
pub(super) struct ReadTimeout(Cell<Option<Duration>>);

impl ReadTimeout {
    /// What the socket was given when it was made.
    pub fn new(now: Option<Duration>) -> Self {
        ReadTimeout(Cell::new(now))
    }

    /// Sets `stream`'s read timeout to `wait` unless it is that already. A
    /// zero timeout is refused by the socket: the smallest is set instead.
    pub fn set(&self, stream: &UnixStream, wait: Duration) -> std::io::Result<()> {
        let wait = Some(wait.max(Duration::from_micros(1)));
        if self.0.get() != wait {
            stream.set_read_timeout(wait)?;
            self.0.set(wait);
        }
        Ok(())
    }
}

/// A write that failed: past its timeout, or the connection broke.
pub(super) fn write_failed(e: &std::io::Error) -> TransportError {
    if frame::is_timeout(e) {
        TransportError::DeadlineExceeded
    } else {
        unavailable(e)
    }
}

pub(super) fn unavailable(e: &std::io::Error) -> TransportError {
    TransportError::Failed {
        code: "UNAVAILABLE".into(),
        message: e.to_string(),
    }
}

fn encode_failed(e: protobuf::Error) -> TransportError {
    TransportError::Failed {
        code: "INTERNAL".into(),
        message: format!("encoding the request: {e}"),
    }
}

/// The request without its binary arguments, which travel as segments.
fn request_head(req: &ExecuteToolRequest) -> Result<Vec<u8>, TransportError> {
    if req.binary_parameters.is_empty() {
        return req.write_to_bytes().map_err(encode_failed);
    }
    let mut head = ExecuteToolRequest::new();
    head.session_id.clone_from(&req.session_id);
    head.tool_name.clone_from(&req.tool_name);
    head.parameters.clone_from(&req.parameters);
    head.metadata.clone_from(&req.metadata);
    head.stream = req.stream;
    head.write_to_bytes().map_err(encode_failed)
}

/// Takes the largest binary argument out of a request that has been sent,
/// for the result to be received into its memory.
fn largest_argument(req: &mut ExecuteToolRequest) -> Option<Vec<u8>> {
    let name = req
        .binary_parameters
        .iter()
        .max_by_key(|(_, data)| data.capacity())
        .map(|(name, _)| name.clone())?;
    req.binary_parameters.remove(&name)
}

fn binary_segments(req: &ExecuteToolRequest) -> Vec<(&str, &[u8])> {
    req.binary_parameters
        .iter()
        .map(|(name, data)| (name.as_str(), data.as_slice()))
        .collect()
}

impl Transport for SocketTransport {
    fn execute(
        &self,
        req: &mut ExecuteToolRequest,
        timeout: Duration,
        buffers: Buffers,
    ) -> Result<ExecuteToolResponse, TransportError> {
        let deadline = later(Instant::now(), timeout);
        let head = request_head(req)?;
        self.with_conn(|conn| {
            let sent = conn.send(
                Kind::Execute,
                &head,
                &binary_segments(req),
                deadline,
                self.limit,
            );
            let id = match sent {
                Ok(id) => id,
                Err(e) => return (Err(e), Reuse::No),
            };
            let spare = match buffers {
                Buffers::Recycle => largest_argument(req),
                Buffers::Keep => None,
            };
            let received = conn.receive(id, deadline, WAIT_SLICE, self.limit, &|| true, spare);
            let frame = match received {
                Ok(frame) => frame,
                Err(e) => return (Err(e.into_error()), Reuse::No),
            };
            match reply::<ExecuteToolResponse>(frame, Kind::Result) {
                Ok((mut resp, segments)) => {
                    if segments.len() > 1 {
                        let e = TransportError::BadPeer(format!(
                            "a result with {} binary segments",
                            segments.len()
                        ));
                        return (Err(e), Reuse::No);
                    }
                    if let Some((_, data)) = segments.into_iter().next() {
                        resp.binary_result = data;
                    }
                    (Ok(resp), Reuse::Yes)
                }
                Err(e) => {
                    let reuse = reuse_after(&e);
                    (Err(e), reuse)
                }
            }
        })
    }

    fn execute_stream(
        &self,
        req: &ExecuteToolRequest,
        timeout: Duration,
        control: &StreamControl,
        on_chunk: &mut dyn FnMut(ToolChunk) -> ControlFlow<()>,
    ) -> Result<(), TransportError> {
        let deadline = later(Instant::now(), timeout);
        let head = request_head(req)?;
        let segments = binary_segments(req);
        self.with_conn(|conn| {
            let id = match conn.send(Kind::ExecuteStream, &head, &segments, deadline, self.limit) {
                Ok(id) => id,
                Err(e) => return (Err(e), Reuse::No),
            };
            let go_on = || !control.is_cancelled();
            loop {
                let frame = match conn.receive(id, deadline, CANCEL_POLL, self.limit, &go_on, None)
                {
                    Ok(frame) => frame,
                    // Closing the connection cancels the call on the worker.
                    Err(Stop::Cancelled) => return (Ok(()), Reuse::No),
                    Err(Stop::Failed(e)) => return (Err(e), Reuse::No),
                };
                let chunk = match reply::<ToolChunk>(frame, Kind::Chunk) {
                    Ok((mut chunk, segments)) => {
                        if let Some((_, data)) = segments.into_iter().next() {
                            chunk.data = data;
                        }
                        chunk
                    }
                    Err(e) => return (Err(e), Reuse::No),
                };
                if chunk.metadata.get("error").map(String::as_str) == Some("true") {
                    let payload = String::from_utf8_lossy(&chunk.data).into_owned();
                    let reuse = if chunk.is_final {
                        Reuse::Yes
                    } else {
                        Reuse::No
                    };
                    return (Err(TransportError::ToolFailed(payload)), reuse);
                }
                let is_final = chunk.is_final;
                if !(is_final && chunk.data.is_empty()) && on_chunk(chunk).is_break() {
                    return (Ok(()), if is_final { Reuse::Yes } else { Reuse::No });
                }
                if is_final {
                    return (Ok(()), Reuse::Yes);
                }
                if control.is_cancelled() {
                    return (Ok(()), Reuse::No);
                }
            }
        })
    }

    fn cleanup_session(&self, session: &str, timeout: Duration) -> Result<(), TransportError> {
        let req = CleanupSessionRequest {
            session_id: session.to_owned(),
            force: true,
            ..Default::default()
        };
        let deadline = later(Instant::now(), timeout);
        self.unary::<CleanupSessionResponse>(Kind::Cleanup, Kind::CleanupDone, &req, deadline)
            .map(|_| ())
    }

    fn describe(&self, timeout: Duration) -> Result<InitializeSessionResponse, TransportError> {
        let deadline = later(Instant::now(), timeout);
        self.unary(
            Kind::Describe,
            Kind::Described,
            &InitializeSessionRequest::new(),
            deadline,
        )
    }

    fn ping(
        &self,
        from: &str,
        timeout: Duration,
        wait_for_ready: bool,
    ) -> Result<PingInfo, TransportError> {
        let deadline = later(Instant::now(), timeout);
        if wait_for_ready && self.idle.lock().is_empty() {
            // At start-up: the worker may not listen yet.
            loop {
                match self.open() {
                    Ok(conn) => {
                        self.idle.lock().push(conn);
                        break;
                    }
                    Err(_) if Instant::now() + CONNECT_RETRY < deadline => {
                        std::thread::sleep(CONNECT_RETRY)
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        let req = PingRequest {
            message: from.to_owned(),
            ..Default::default()
        };
        self.unary::<PingResponse>(Kind::Ping, Kind::Pong, &req, deadline)
            .map(PingInfo::from)
    }

    fn telemetry(&self) -> Result<Arc<dyn TelemetryFeed>, TransportError> {
        // A connection of its own, for as long as the process lives.
        let feed = SocketTelemetry::open(&self.path, self.limit)?;
        Ok(Arc::new(feed))
    }
}

/// A listening Unix socket in a new temporary directory of its own, for a
/// test's fake worker: (the directory, the socket's path, the listener).
#[cfg(test)]
pub(crate) fn fake_worker_listener(
    prefix: &str,
) -> (PathBuf, PathBuf, std::os::unix::net::UnixListener) {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let dir = std::env::temp_dir().join(format!(
        "{prefix}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("w.sock");
    let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
    (dir, path, listener)
}

#[cfg(test)]
mod tests {
    //! The transport against a fake worker that misbehaves on purpose.

    use super::*;
    use std::io::{Read, Write};
    use std::thread;

    /// A fake worker that reads one frame header and answers with `reply`,
    /// then holds the connection open until the test ends.
    fn fake_worker(reply: Vec<u8>, close_after: bool) -> (SocketTransport, thread::JoinHandle<()>) {
        let (dir, path, listener) = fake_worker_listener("snakepit-frame-test");
        let server = thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut header = [0u8; frame::HEADER_LEN];
            s.read_exact(&mut header).unwrap();
            let len = u32::from_le_bytes(header[4..8].try_into().unwrap()) as usize;
            let mut body = vec![0u8; len];
            s.read_exact(&mut body).unwrap();
            s.write_all(&reply).unwrap();
            if !close_after {
                // Hold the connection until the client goes away.
                let mut rest = Vec::new();
                let _ = s.read_to_end(&mut rest);
            }
            let _ = std::fs::remove_dir_all(dir);
        });
        (SocketTransport::to_path(path, 1 << 20), server)
    }

    fn call(t: &SocketTransport) -> Result<ExecuteToolResponse, TransportError> {
        let req = ExecuteToolRequest {
            tool_name: "ping".into(),
            ..Default::default()
        };
        t.execute(&mut req.clone(), Duration::from_secs(5), Buffers::Keep)
    }

    fn bad_peer(result: Result<ExecuteToolResponse, TransportError>, what: &str) {
        match result {
            Err(TransportError::BadPeer(m)) => assert!(m.contains(what), "{m}"),
            other => panic!("expected BadPeer({what}), got {other:?}"),
        }
    }

    #[test]
    fn garbage_from_the_worker_is_a_bad_peer() {
        let (t, server) = fake_worker(b"HTTP/1.1 400 Bad Request\r\n\r\n".to_vec(), false);
        bad_peer(call(&t), "not a frame");
        drop(t);
        server.join().unwrap();
    }

    #[test]
    fn a_frame_past_the_limit_is_a_bad_peer_without_reading_it() {
        let mut head = frame::encode_head(Kind::Result, 0, 1, b"", &[]);
        head[4..8].copy_from_slice(&(64u32 << 20).to_le_bytes());
        let (t, server) = fake_worker(head, false);
        bad_peer(call(&t), "too large");
        drop(t);
        server.join().unwrap();
    }

    #[test]
    fn a_worker_that_closes_mid_frame_is_a_bad_peer_and_nothing_hangs() {
        let mut reply = frame::encode_head(Kind::Result, 0, 1, &[0u8; 100], &[]);
        reply.truncate(40);
        let (t, server) = fake_worker(reply, true);
        bad_peer(call(&t), "mid-frame");
        server.join().unwrap();
    }

    #[test]
    fn a_reply_to_another_call_or_of_another_kind_is_a_bad_peer() {
        let wrong_id = frame::encode_head(Kind::Result, 0, 9, b"", &[]);
        let (t, server) = fake_worker(wrong_id, false);
        bad_peer(call(&t), "call 9");
        drop(t);
        server.join().unwrap();

        let wrong_kind = frame::encode_head(Kind::Pong, 0, 1, b"", &[]);
        let (t, server) = fake_worker(wrong_kind, false);
        bad_peer(call(&t), "Pong");
        drop(t);
        server.join().unwrap();
    }

    #[test]
    fn a_silent_worker_times_the_call_out() {
        let (t, server) = fake_worker(Vec::new(), false);
        let req = ExecuteToolRequest::new();
        let result = t.execute(&mut req.clone(), Duration::from_millis(100), Buffers::Keep);
        assert_eq!(result.unwrap_err(), TransportError::DeadlineExceeded);
        drop(t);
        server.join().unwrap();
    }
}
