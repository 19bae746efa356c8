//! The socket transport's framing: how one message travels on a Unix stream
//! connection between a lane and its worker. The layout is documented for
//! both sides in `proto/socket-framing.md`; the Python side is
//! `python/snakepit_bridge/frames.py`.
//!
//! A frame is a 16-byte header, a protobuf message (the same messages the
//! gRPC service carries), then raw binary segments:
//!
//! ```text
//! header   magic "SP" | kind u8 | flags u8 | message length u32 | call id u32 | segments u32
//! message  `message length` bytes of protobuf
//! segment  name length u32 | data length u32 | name (UTF-8) | data
//! ```
//!
//! Integers are little-endian. Binary arguments and results travel as
//! segments, not inside the protobuf message, so neither side copies them
//! through protobuf. A frame whose message plus segment data exceeds the
//! pool's message size limit is refused as too large before it is read.

use std::io::{self, IoSlice, Read, Write};

/// The first two bytes of every frame.
pub(crate) const MAGIC: [u8; 2] = *b"SP";

/// Bytes in a frame header.
pub(crate) const HEADER_LEN: usize = 16;

/// Bytes in a segment header.
const SEGMENT_HEADER_LEN: usize = 8;

/// The most segments one frame may carry (a request's binary arguments).
pub(crate) const MAX_SEGMENTS: u32 = 4096;

/// The smallest segment read into a [`FrameReader::spare`] (a small one
/// costs few page faults in new memory).
const SPARE_MIN: usize = 64 * 1024;

/// The longest segment name (an argument name).
const MAX_NAME_LEN: u32 = 4096;

/// What a frame carries. Requests are odd, their replies the next even
/// number; [`Kind::Error`] answers any request. The telemetry stream's
/// kinds (11 to 13) are no request and reply: after a
/// [`Kind::TelemetryOpen`], its connection carries events one way and
/// controls the other, each frame on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Kind {
    /// `PingRequest`.
    Ping = 1,
    /// `PingResponse`.
    Pong = 2,
    /// `ExecuteToolRequest`, binary arguments as named segments.
    Execute = 3,
    /// `ExecuteToolResponse`, a binary result as one segment.
    Result = 4,
    /// `ExecuteToolRequest` of a streaming call.
    ExecuteStream = 5,
    /// `ToolChunk`, one per item, the last with `is_final`.
    Chunk = 6,
    /// `CleanupSessionRequest`.
    Cleanup = 7,
    /// `CleanupSessionResponse`.
    CleanupDone = 8,
    /// `InitializeSessionRequest` (listing the tools).
    Describe = 9,
    /// `InitializeSessionResponse`.
    Described = 10,
    /// The host opens the telemetry stream on a connection of its own:
    /// empty, or a first `TelemetryControl`.
    TelemetryOpen = 11,
    /// One `TelemetryEvent`, worker to host, on the telemetry stream.
    Event = 12,
    /// One `TelemetryControl`, host to worker, on the telemetry stream.
    Control = 13,
    /// The request failed outside the tool; `flags` holds an
    /// [`ErrorCode`], the message is UTF-8 text.
    Error = 15,
}

impl Kind {
    fn from_byte(byte: u8) -> Option<Kind> {
        Some(match byte {
            1 => Kind::Ping,
            2 => Kind::Pong,
            3 => Kind::Execute,
            4 => Kind::Result,
            5 => Kind::ExecuteStream,
            6 => Kind::Chunk,
            7 => Kind::Cleanup,
            8 => Kind::CleanupDone,
            9 => Kind::Describe,
            10 => Kind::Described,
            11 => Kind::TelemetryOpen,
            12 => Kind::Event,
            13 => Kind::Control,
            15 => Kind::Error,
            _ => return None,
        })
    }
}

/// The `flags` of an [`Kind::Error`] frame.
pub(crate) mod error_code {
    /// The reply would exceed the message size limit.
    pub const RESOURCE_EXHAUSTED: u8 = 1;
    /// The worker could not read the request.
    pub const BAD_REQUEST: u8 = 2;
}

/// One frame as read.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Frame {
    pub kind: Option<Kind>,
    pub flags: u8,
    pub call_id: u32,
    pub message: Vec<u8>,
    pub segments: Vec<(String, Vec<u8>)>,
}

/// Why a frame could not be read.
#[derive(Debug)]
pub(crate) enum ReadError {
    /// The peer closed the connection cleanly before a frame began.
    Closed,
    /// The deadline passed (or the wait was given up) mid-read.
    TimedOut,
    /// The bytes are not a frame, or not one we accept: the peer's fault.
    Bad(String),
    /// The connection failed.
    Io(io::Error),
}

/// Reads whole frames from a stream whose read timeout the caller sets;
/// `keep_waiting` is asked after each timeout whether to go on (a deadline
/// not yet passed, a stream not cancelled).
pub(crate) struct FrameReader<'a, R> {
    pub stream: R,
    /// The largest message plus segment data accepted.
    pub limit: usize,
    pub keep_waiting: &'a mut dyn FnMut(&R) -> bool,
    /// Memory the first binary segment is read into instead of a new
    /// buffer (grown if it is too small): memory already touched costs no
    /// page faults.
    pub spare: Option<Vec<u8>>,
}

impl<R: Read> FrameReader<'_, R> {
    /// Reads one frame.
    pub fn read(&mut self) -> Result<Frame, ReadError> {
        let mut header = [0u8; HEADER_LEN];
        match self.fill(&mut header, true)? {
            Filled::Closed => return Err(ReadError::Closed),
            Filled::Full => {}
        }
        if header[..2] != MAGIC {
            return Err(ReadError::Bad(format!(
                "not a frame (starts with {:02x?})",
                &header[..4]
            )));
        }
        let kind = Kind::from_byte(header[2])
            .ok_or_else(|| ReadError::Bad(format!("unknown frame kind {}", header[2])))?;
        let flags = header[3];
        let message_len = u32_at(&header, 4);
        let call_id = u32_at(&header, 8);
        let count = u32_at(&header, 12);
        if count > MAX_SEGMENTS {
            return Err(ReadError::Bad(format!(
                "frame has {count} segments, more than {MAX_SEGMENTS}"
            )));
        }
        let mut total = message_len as usize;
        self.check_size(total)?;
        let mut message = vec![0u8; message_len as usize];
        self.fill(&mut message, false)?;
        let mut segments = Vec::with_capacity(count as usize);
        for _ in 0..count {
            let mut head = [0u8; SEGMENT_HEADER_LEN];
            self.fill(&mut head, false)?;
            let name_len = u32_at(&head, 0);
            let data_len = u32_at(&head, 4);
            if name_len > MAX_NAME_LEN {
                return Err(ReadError::Bad(format!(
                    "segment name of {name_len} bytes, more than {MAX_NAME_LEN}"
                )));
            }
            total = total.saturating_add(data_len as usize);
            self.check_size(total)?;
            let mut name = vec![0u8; name_len as usize];
            self.fill(&mut name, false)?;
            let name = String::from_utf8(name)
                .map_err(|_| ReadError::Bad("segment name is not UTF-8".into()))?;
            let data = self.fill_new(data_len as usize)?;
            segments.push((name, data));
        }
        Ok(Frame {
            kind: Some(kind),
            flags,
            call_id,
            message,
            segments,
        })
    }

    fn check_size(&self, total: usize) -> Result<(), ReadError> {
        if total > self.limit {
            return Err(ReadError::Bad(format!(
                "frame too large: {total} bytes, more than the limit of {}",
                self.limit
            )));
        }
        Ok(())
    }

    /// `n` bytes in a buffer of their own (the spare, else a new one),
    /// read into its spare capacity: a large binary segment is neither
    /// zeroed first nor copied after.
    fn fill_new(&mut self, n: usize) -> Result<Vec<u8>, ReadError> {
        // Only a large segment, and not one that would leave most of the
        // spare unused in the buffer handed on.
        let fits = |buf: &Vec<u8>| n >= SPARE_MIN && n >= buf.capacity() / 2;
        let mut data = match self.spare.take().filter(fits) {
            Some(mut buf) => {
                buf.clear();
                buf.reserve_exact(n);
                buf
            }
            None => Vec::with_capacity(n),
        };
        while data.len() < n {
            let want = (n - data.len()) as u64;
            match (&mut self.stream).take(want).read_to_end(&mut data) {
                Ok(0) => {
                    return Err(ReadError::Bad(format!(
                        "connection closed mid-frame ({} of {n} segment bytes read)",
                        data.len()
                    )))
                }
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if is_timeout(&e) => {
                    if !(self.keep_waiting)(&self.stream) {
                        return Err(ReadError::TimedOut);
                    }
                }
                Err(e) => return Err(ReadError::Io(e)),
            }
        }
        Ok(data)
    }

    /// Fills `buf`. An EOF before the first byte of a frame is a clean
    /// close; anywhere else the frame was cut short.
    fn fill(&mut self, buf: &mut [u8], frame_start: bool) -> Result<Filled, ReadError> {
        let mut done = 0;
        while done < buf.len() {
            match self.stream.read(&mut buf[done..]) {
                Ok(0) if done == 0 && frame_start => return Ok(Filled::Closed),
                Ok(0) => {
                    return Err(ReadError::Bad(format!(
                        "connection closed mid-frame ({done} of {} bytes read)",
                        buf.len()
                    )))
                }
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if is_timeout(&e) => {
                    if !(self.keep_waiting)(&self.stream) {
                        return Err(ReadError::TimedOut);
                    }
                }
                Err(e) => return Err(ReadError::Io(e)),
            }
        }
        Ok(Filled::Full)
    }
}

enum Filled {
    Full,
    Closed,
}

/// Whether a read or write error is the socket's timeout.
pub(crate) fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

/// The header of a frame (and of its segments) as bytes, ready to be
/// written ahead of the message and the segment data.
pub(crate) fn encode_head(
    kind: Kind,
    flags: u8,
    call_id: u32,
    message: &[u8],
    segments: &[(&str, &[u8])],
) -> Vec<u8> {
    let mut head = Vec::with_capacity(HEADER_LEN + message.len());
    head.extend_from_slice(&MAGIC);
    head.push(kind as u8);
    head.push(flags);
    head.extend_from_slice(&len32(message.len()).to_le_bytes());
    head.extend_from_slice(&call_id.to_le_bytes());
    head.extend_from_slice(&len32(segments.len()).to_le_bytes());
    head.extend_from_slice(message);
    head
}

fn segment_head(name: &str, data: &[u8]) -> [u8; SEGMENT_HEADER_LEN] {
    let mut head = [0u8; SEGMENT_HEADER_LEN];
    head[..4].copy_from_slice(&len32(name.len()).to_le_bytes());
    head[4..].copy_from_slice(&len32(data.len()).to_le_bytes());
    head
}

/// Lengths are checked against the message limit (at most `i32::MAX`)
/// before a frame is written.
fn len32(n: usize) -> u32 {
    u32::try_from(n).expect("frame parts are checked against the message limit")
}

/// Writes one frame: header and message in one buffer, segments straight
/// from the caller's memory (one vectored write when the kernel takes it
/// all).
pub(crate) fn write_frame(
    mut stream: impl Write,
    kind: Kind,
    call_id: u32,
    message: &[u8],
    segments: &[(&str, &[u8])],
) -> io::Result<()> {
    let head = encode_head(kind, 0, call_id, message, segments);
    let heads: Vec<[u8; SEGMENT_HEADER_LEN]> = segments
        .iter()
        .map(|(name, data)| segment_head(name, data))
        .collect();
    let mut slices = Vec::with_capacity(1 + segments.len() * 3);
    slices.push(IoSlice::new(&head));
    for ((name, data), sh) in segments.iter().zip(&heads) {
        slices.push(IoSlice::new(sh));
        slices.push(IoSlice::new(name.as_bytes()));
        slices.push(IoSlice::new(data));
    }
    let mut slices = &mut slices[..];
    while !slices.is_empty() {
        match stream.write_vectored(slices) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => IoSlice::advance_slices(&mut slices, n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(bytes: &[u8], limit: usize) -> Result<Frame, ReadError> {
        let mut give_up = |_: &&[u8]| false;
        FrameReader {
            stream: bytes,
            limit,
            keep_waiting: &mut give_up,
            spare: None,
        }
        .read()
    }

    fn written(message: &[u8], segments: &[(&str, &[u8])]) -> Vec<u8> {
        let mut out = Vec::new();
        write_frame(&mut out, Kind::Execute, 7, message, segments).unwrap();
        out
    }

    #[test]
    fn a_frame_round_trips_with_its_segments() {
        let bytes = written(b"proto", &[("a", b"12345"), ("", b"")]);
        let frame = read_all(&bytes, 1 << 20).unwrap();
        assert_eq!(frame.kind, Some(Kind::Execute));
        assert_eq!(frame.call_id, 7);
        assert_eq!(frame.message, b"proto");
        assert_eq!(
            frame.segments,
            vec![("a".into(), b"12345".to_vec()), (String::new(), Vec::new())]
        );
    }

    fn read_with_spare(bytes: &[u8], spare: Vec<u8>) -> Frame {
        let mut give_up = |_: &&[u8]| false;
        FrameReader {
            stream: bytes,
            limit: 1 << 24,
            keep_waiting: &mut give_up,
            spare: Some(spare),
        }
        .read()
        .unwrap()
    }

    #[test]
    fn a_large_segment_is_read_into_the_spare_a_small_one_is_not() {
        let big = vec![7u8; 1 << 20];
        let spare = vec![1u8; (1 << 20) + 100];
        let at = spare.as_ptr();
        let frame = read_with_spare(&written(b"", &[("", &big)]), spare);
        let (_, data) = &frame.segments[0];
        assert_eq!(data, &big);
        assert_eq!(data.as_ptr(), at, "read into the spare's memory");

        // A segment far smaller than the spare gets a buffer of its own,
        // so the caller is not handed mostly unused memory.
        let small = vec![9u8; 100 << 10];
        let frame = read_with_spare(&written(b"", &[("", &small)]), vec![0u8; 1 << 20]);
        let (_, data) = &frame.segments[0];
        assert_eq!(data, &small);
        assert!(data.capacity() < 1 << 20, "{}", data.capacity());
    }

    #[test]
    fn the_telemetry_kinds_are_read_by_their_numbers() {
        for (kind, byte) in [
            (Kind::TelemetryOpen, 11u8),
            (Kind::Event, 12),
            (Kind::Control, 13),
        ] {
            let mut out = Vec::new();
            write_frame(&mut out, kind, 0, b"event", &[]).unwrap();
            assert_eq!(out[2], byte);
            let frame = read_all(&out, 1 << 20).unwrap();
            assert_eq!((frame.kind, frame.message), (Some(kind), b"event".to_vec()));
        }
        // The numbers between them and Error stay unknown.
        let mut unknown = encode_head(Kind::Event, 0, 0, b"", &[]);
        unknown[2] = 14;
        assert!(matches!(
            read_all(&unknown, 1 << 20),
            Err(ReadError::Bad(_))
        ));
    }

    #[test]
    fn a_frame_past_the_limit_is_refused_before_it_is_read() {
        let bytes = written(b"proto", &[("a", &[0u8; 100])]);
        match read_all(&bytes, 50) {
            Err(ReadError::Bad(m)) => assert!(m.contains("too large"), "{m}"),
            other => panic!("{other:?}"),
        }
        // A header that announces 4 GiB is refused from the header alone.
        let mut header = encode_head(Kind::Result, 0, 1, b"", &[]);
        header[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(read_all(&header, 1 << 20), Err(ReadError::Bad(_))));
    }

    #[test]
    fn truncated_garbage_and_closed_streams_are_told_apart() {
        let bytes = written(b"proto", &[("a", b"12345")]);
        for cut in 1..bytes.len() {
            match read_all(&bytes[..cut], 1 << 20) {
                Err(ReadError::Bad(m)) => assert!(m.contains("mid-frame"), "{m}"),
                other => panic!("cut at {cut}: {other:?}"),
            }
        }
        assert!(matches!(read_all(b"", 1 << 20), Err(ReadError::Closed)));
        let garbage = b"GET / HTTP/1.1\r\n\r\n";
        match read_all(garbage, 1 << 20) {
            Err(ReadError::Bad(m)) => assert!(m.contains("not a frame"), "{m}"),
            other => panic!("{other:?}"),
        }
        let mut unknown = encode_head(Kind::Ping, 0, 1, b"", &[]);
        unknown[2] = 99;
        assert!(matches!(
            read_all(&unknown, 1 << 20),
            Err(ReadError::Bad(_))
        ));
    }
}
