//! A worker's telemetry stream over the socket transport: a connection of
//! its own, opened with a [`Kind::TelemetryOpen`] frame, on which the
//! worker writes one [`Kind::Event`] frame per event and the host writes
//! one [`Kind::Control`] frame per control (see `proto/socket-framing.md`).
//!
//! One thread reads ([`TelemetryFeed::next`]); controls may be sent from
//! any, one frame at a time; [`TelemetryFeed::cancel`] shuts the socket
//! down, which ends a read blocked on it. Nothing here waits without a
//! bound: a frame that has begun must arrive whole within
//! [`FRAME_WAIT`], and anything that is not an event frame ends the stream
//! as a bad peer.

use std::io::{BufRead, BufReader, ErrorKind};
use std::net::Shutdown;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use protobuf::Message;

use super::frame::{self, FrameReader, Kind, ReadError};
use super::socket::{unavailable, write_failed, ReadTimeout};
use super::{FeedNext, TelemetryFeed, TransportError};
use crate::protocol::messages::{TelemetryControl, TelemetryEvent};

/// How long a frame that has begun may take to arrive whole: an event is
/// small, so a worker that stops halfway through one is broken.
const FRAME_WAIT: Duration = Duration::from_secs(10);

/// The read timeout while a begun frame arrives: how often a cancel is
/// looked at (a cancel also shuts the socket down, which ends the read).
const FRAME_SLICE: Duration = Duration::from_millis(100);

/// How long opening the stream may take to write its first frame.
const OPEN_TIMEOUT: Duration = Duration::from_secs(5);

/// Bytes read from the socket at a time.
const READ_BUFFER: usize = 16 * 1024;

/// One worker process's telemetry stream over the socket transport.
pub(crate) struct SocketTelemetry {
    /// The reading side, used by the one thread that calls `next`.
    inbound: Mutex<Inbound>,
    /// The same connection, for writing controls and for shutting it down.
    stream: UnixStream,
    /// Held while one control frame is written, so frames never interleave.
    writing: Mutex<()>,
    /// The largest event accepted.
    limit: usize,
    /// Set by `cancel` and once the stream has ended.
    ended: AtomicBool,
}

/// The reading side and the read timeout set on it now.
struct Inbound {
    reader: BufReader<UnixStream>,
    read_timeout: ReadTimeout,
}

impl Inbound {
    fn wait_at_most(&self, wait: Duration) -> std::io::Result<()> {
        self.read_timeout.set(self.reader.get_ref(), wait)
    }
}

impl SocketTelemetry {
    /// Connects to the worker listening at `path` and opens its telemetry
    /// stream, accepting events of up to `limit` bytes.
    pub fn open(path: &Path, limit: usize) -> Result<SocketTelemetry, TransportError> {
        let stream = UnixStream::connect(path).map_err(|e| unavailable(&e))?;
        stream
            .set_write_timeout(Some(OPEN_TIMEOUT))
            .map_err(|e| unavailable(&e))?;
        frame::write_frame(&stream, Kind::TelemetryOpen, 0, &[], &[])
            .map_err(|e| write_failed(&e))?;
        let reading = stream.try_clone().map_err(|e| unavailable(&e))?;
        Ok(SocketTelemetry {
            inbound: Mutex::new(Inbound {
                reader: BufReader::with_capacity(READ_BUFFER, reading),
                read_timeout: ReadTimeout::new(None),
            }),
            stream,
            writing: Mutex::new(()),
            limit,
            ended: AtomicBool::new(false),
        })
    }

    /// Ends the stream for `why`: the socket is shut down, so the worker
    /// sees it end too.
    fn end(&self, why: TransportError) -> FeedNext {
        self.cancel();
        FeedNext::Ended(why)
    }

    /// Reads the rest of a frame that has begun, and takes its event.
    fn read_event(&self, inbound: &mut Inbound) -> Result<TelemetryEvent, TransportError> {
        inbound
            .wait_at_most(FRAME_SLICE)
            .map_err(|e| unavailable(&e))?;
        let deadline = Instant::now() + FRAME_WAIT;
        let ended = &self.ended;
        let mut keep_waiting =
            |_: &&mut BufReader<UnixStream>| Instant::now() < deadline && !ended.load(SeqCst);
        let read = FrameReader {
            stream: &mut inbound.reader,
            limit: self.limit,
            keep_waiting: &mut keep_waiting,
            spare: None,
        }
        .read();
        let frame = match read {
            Ok(frame) => frame,
            Err(ReadError::Closed) => return Err(closed()),
            Err(ReadError::TimedOut) if ended.load(SeqCst) => return Err(cancelled()),
            Err(ReadError::TimedOut) => {
                return Err(TransportError::BadPeer(format!(
                    "a telemetry frame not whole after {FRAME_WAIT:?}"
                )))
            }
            Err(ReadError::Bad(message)) => return Err(TransportError::BadPeer(message)),
            Err(ReadError::Io(e)) => return Err(unavailable(&e)),
        };
        if frame.kind != Some(Kind::Event) {
            return Err(TransportError::BadPeer(format!(
                "a {:?} frame on the telemetry stream",
                frame.kind
            )));
        }
        if !frame.segments.is_empty() {
            return Err(TransportError::BadPeer(format!(
                "a telemetry event with {} binary segments",
                frame.segments.len()
            )));
        }
        TelemetryEvent::parse_from_bytes(&frame.message).map_err(|e| {
            TransportError::BadPeer(format!("a telemetry event that does not parse: {e}"))
        })
    }
}

impl TelemetryFeed for SocketTelemetry {
    fn next(&self, wait: Duration) -> FeedNext {
        let mut inbound = self.inbound.lock();
        if self.ended.load(SeqCst) {
            return FeedNext::Ended(cancelled());
        }
        // Wait up to `wait` for a frame to begin; then read it whole.
        if inbound.reader.buffer().is_empty() {
            if let Err(e) = inbound.wait_at_most(wait) {
                return self.end(unavailable(&e));
            }
            match inbound.reader.fill_buf() {
                Ok([]) if self.ended.load(SeqCst) => return self.end(cancelled()),
                Ok([]) => return self.end(closed()),
                Ok(_) => {}
                Err(e) if frame::is_timeout(&e) || e.kind() == ErrorKind::Interrupted => {
                    return FeedNext::Idle
                }
                Err(e) => return self.end(unavailable(&e)),
            }
        }
        match self.read_event(&mut inbound) {
            Ok(event) => FeedNext::Event(event),
            Err(why) => self.end(why),
        }
    }

    fn send(&self, control: TelemetryControl, timeout: Duration) -> Result<(), TransportError> {
        let message = control
            .write_to_bytes()
            .map_err(|e| TransportError::Failed {
                code: "INTERNAL".into(),
                message: format!("encoding a telemetry control: {e}"),
            })?;
        if message.len() > self.limit {
            return Err(TransportError::Failed {
                code: "INVALID_ARGUMENT".into(),
                message: format!(
                    "a telemetry control of {} bytes exceeds the limit of {}",
                    message.len(),
                    self.limit
                ),
            });
        }
        let _writing = self.writing.lock();
        if self.ended.load(SeqCst) {
            return Err(cancelled());
        }
        let written = self
            .stream
            .set_write_timeout(Some(timeout.max(Duration::from_micros(1))))
            .and_then(|()| frame::write_frame(&self.stream, Kind::Control, 0, &message, &[]));
        written.map_err(|e| {
            // A frame cut short would leave the stream in doubt: end it.
            self.cancel();
            write_failed(&e)
        })
    }

    fn cancel(&self) {
        self.ended.store(true, SeqCst);
        let _ = self.stream.shutdown(Shutdown::Both);
    }
}

/// The worker closed the stream (its process ended, or it has no
/// telemetry).
fn closed() -> TransportError {
    TransportError::Failed {
        code: "OK".into(),
        message: "the worker ended the telemetry stream".into(),
    }
}

/// The host ended the stream.
fn cancelled() -> TransportError {
    TransportError::Failed {
        code: "CANCELLED".into(),
        message: "the telemetry stream was cancelled".into(),
    }
}

#[cfg(test)]
mod tests {
    //! The stream against a fake worker that sends what a test gives it.

    use super::*;
    use std::io::{Read, Write};
    use std::sync::Arc;
    use std::thread;

    /// A fake worker: accepts one connection, checks that it opens with a
    /// `TelemetryOpen` frame, writes `send`, then hands the connection to
    /// the test (which holds it open as long as it likes).
    fn fake_worker(
        send: Vec<u8>,
    ) -> (
        Arc<SocketTelemetry>,
        thread::JoinHandle<UnixStream>,
        std::path::PathBuf,
    ) {
        let (dir, path, listener) =
            super::super::socket::fake_worker_listener("snakepit-telemetry-test");
        let server = thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut header = [0u8; frame::HEADER_LEN];
            s.read_exact(&mut header).unwrap();
            assert_eq!(header[..2], frame::MAGIC);
            assert_eq!(header[2], Kind::TelemetryOpen as u8);
            s.write_all(&send).unwrap();
            s
        });
        let feed = Arc::new(SocketTelemetry::open(&path, 1 << 20).unwrap());
        (feed, server, dir)
    }

    fn event_frame(name: &str) -> Vec<u8> {
        let mut event = TelemetryEvent::new();
        event.event_parts = vec![name.to_owned()];
        let message = event.write_to_bytes().unwrap();
        let mut out = Vec::new();
        frame::write_frame(&mut out, Kind::Event, 0, &message, &[]).unwrap();
        out
    }

    fn ended(next: FeedNext) -> TransportError {
        match next {
            FeedNext::Ended(why) => why,
            FeedNext::Idle => panic!("Idle where the stream should have ended"),
            FeedNext::Event(e) => panic!("an event where the stream should have ended: {e:?}"),
        }
    }

    #[test]
    fn events_arrive_in_order_idle_between_and_the_end_is_seen() {
        let mut bytes = event_frame("a");
        bytes.extend(event_frame("b"));
        let (feed, server, dir) = fake_worker(bytes);
        let mut worker = server.join().unwrap();
        for name in ["a", "b"] {
            match feed.next(Duration::from_secs(5)) {
                FeedNext::Event(e) => assert_eq!(e.event_parts, vec![name.to_owned()]),
                _ => panic!("expected event {name}"),
            }
        }
        assert!(matches!(
            feed.next(Duration::from_millis(20)),
            FeedNext::Idle
        ));
        // A control reaches the worker as one Control frame.
        let mut control = TelemetryControl::new();
        control.set_toggle(Default::default());
        feed.send(control.clone(), Duration::from_secs(5)).unwrap();
        let mut give_up = |_: &&mut UnixStream| false;
        let got = FrameReader {
            stream: &mut worker,
            limit: 1 << 20,
            keep_waiting: &mut give_up,
            spare: None,
        }
        .read()
        .unwrap();
        assert_eq!(got.kind, Some(Kind::Control));
        assert_eq!(
            TelemetryControl::parse_from_bytes(&got.message).unwrap(),
            control
        );
        drop(worker);
        let why = ended(feed.next(Duration::from_secs(5)));
        assert!(why.to_string().contains("ended"), "{why}");
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn garbage_a_cut_frame_or_another_kind_ends_the_stream_as_a_bad_peer() {
        let mut cut = event_frame("a");
        cut.truncate(cut.len() - 1);
        let pong = {
            let mut out = Vec::new();
            frame::write_frame(&mut out, Kind::Pong, 0, b"", &[]).unwrap();
            out
        };
        for (bytes, what) in [
            (b"not a frame at all".to_vec(), "not a frame"),
            (cut, "mid-frame"),
            (pong, "Pong"),
        ] {
            let (feed, server, dir) = fake_worker(bytes);
            // The cut frame's worker closes its end; the others hold it.
            let worker = server.join().unwrap();
            if what == "mid-frame" {
                drop(worker);
                match ended(feed.next(Duration::from_secs(5))) {
                    TransportError::BadPeer(m) => assert!(m.contains(what), "{m}"),
                    other => panic!("{what}: {other:?}"),
                }
            } else {
                match ended(feed.next(Duration::from_secs(5))) {
                    TransportError::BadPeer(m) => assert!(m.contains(what), "{m}"),
                    other => panic!("{what}: {other:?}"),
                }
                drop(worker);
            }
            // Once ended, it stays ended, and controls are refused.
            assert!(matches!(
                feed.next(Duration::from_millis(1)),
                FeedNext::Ended(_)
            ));
            assert!(feed
                .send(TelemetryControl::new(), Duration::from_secs(1))
                .is_err());
            let _ = std::fs::remove_dir_all(dir);
        }
    }

    #[test]
    fn a_cancel_ends_a_blocked_read_at_once() {
        let (feed, server, dir) = fake_worker(Vec::new());
        let worker = server.join().unwrap();
        let reader = {
            let feed = feed.clone();
            thread::spawn(move || {
                let started = Instant::now();
                let next = feed.next(Duration::from_secs(60));
                (started.elapsed(), matches!(next, FeedNext::Ended(_)))
            })
        };
        // Whenever the cancel lands (before or during the read), the read
        // ends long before its 60 s wait.
        feed.cancel();
        let (took, was_ended) = reader.join().unwrap();
        assert!(was_ended);
        assert!(took < Duration::from_secs(10), "{took:?}");
        // The worker sees the stream end.
        let mut rest = Vec::new();
        assert_eq!((&worker).read_to_end(&mut rest).unwrap(), 0);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn a_frame_begun_and_never_finished_is_a_bad_peer_within_its_bound() {
        // Only the header of an event that announces 100 bytes, and the
        // connection held open: the read gives up after FRAME_WAIT.
        let head = frame::encode_head(Kind::Event, 0, 0, &[], &[]);
        let mut head = head[..frame::HEADER_LEN].to_vec();
        head[4..8].copy_from_slice(&100u32.to_le_bytes());
        let (feed, server, dir) = fake_worker(head);
        let worker = server.join().unwrap();
        let started = Instant::now();
        match ended(feed.next(Duration::from_secs(1))) {
            TransportError::BadPeer(m) => assert!(m.contains("not whole"), "{m}"),
            other => panic!("{other:?}"),
        }
        assert!(started.elapsed() < FRAME_WAIT + Duration::from_secs(5));
        drop(worker);
        let _ = std::fs::remove_dir_all(dir);
    }
}
