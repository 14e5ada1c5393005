//! Frames: `[length: u32 LE][version: u8][body: postcard]`.
//!
//! `length` counts the body only. The reader checks it against its limit
//! before allocating anything, so a peer announcing 4 GiB costs nothing,
//! and within the limit its buffer grows with the bytes that actually
//! arrive, not with the length a header claims: a stranger announcing
//! 8 MiB and sending 5 bytes costs the read-ahead, not 8 MiB.
//! A body must decode to exactly one [`WireMessage`] with no bytes left
//! over, so every accepted frame has one meaning (postcard accepts
//! over-long varints, so not always one spelling).

use super::{WireError, WireMessage};
use crate::{ByteReader, ByteWriter};

/// The protocol version this build speaks, in every frame's header.
/// 2: messages carry [`Headers`](super::Headers); a reply may say a facet
/// rejected the message.
pub const PROTOCOL_VERSION: u8 = 2;

/// Bytes before a frame's body.
pub const HEADER_LEN: usize = 5;

/// The default largest body accepted or sent: 8 MiB.
pub const MAX_FRAME_LEN_DEFAULT: u32 = 8 << 20;

/// Appends `msg` as one frame to `out`. Fails with
/// [`WireError::Oversized`] (leaving `out` as it was) if the body would
/// exceed `max`.
pub fn encode_frame(msg: &WireMessage, max: u32, out: &mut Vec<u8>) -> Result<(), WireError> {
    let start = out.len();
    out.extend_from_slice(&[0; HEADER_LEN]);
    let encoded = postcard::to_extend(msg, std::mem::take(out));
    *out = match encoded {
        Ok(buf) => buf,
        // postcard fails only for types it cannot represent; ours are all
        // representable, but a failure must not leave half a frame behind.
        Err(e) => {
            return Err(WireError::Malformed(format!("cannot encode: {e}")));
        }
    };
    let body_len = out.len() - start - HEADER_LEN;
    if body_len > max as usize {
        out.truncate(start);
        return Err(WireError::Oversized {
            len: body_len as u64,
            max,
        });
    }
    out[start..start + 4].copy_from_slice(&(body_len as u32).to_le_bytes());
    out[start + 4] = PROTOCOL_VERSION;
    Ok(())
}

/// Decodes the frame at the start of `buf`: `Ok(None)` if `buf` holds only
/// part of it, else the message and the bytes it used. Never reads past
/// `buf` and never allocates more than the body it decodes.
pub fn decode_frame(buf: &[u8], max: u32) -> Result<Option<(WireMessage, usize)>, WireError> {
    let Some(header) = buf.get(..HEADER_LEN) else {
        return Ok(None);
    };
    let body_len = frame_body_len(header, max)?;
    let Some(body) = buf.get(HEADER_LEN..HEADER_LEN + body_len) else {
        return Ok(None);
    };
    Ok(Some((decode_body(body)?, HEADER_LEN + body_len)))
}

/// Checks a header and returns the body length it announces.
fn frame_body_len(header: &[u8], max: u32) -> Result<usize, WireError> {
    let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
    if len > max {
        return Err(WireError::Oversized {
            len: len as u64,
            max,
        });
    }
    if header[4] != PROTOCOL_VERSION {
        return Err(WireError::UnsupportedVersion(header[4]));
    }
    Ok(len as usize)
}

fn decode_body(body: &[u8]) -> Result<WireMessage, WireError> {
    let (msg, rest) = postcard::take_from_bytes::<WireMessage>(body)
        .map_err(|e| WireError::Malformed(e.to_string()))?;
    if !rest.is_empty() {
        return Err(WireError::Malformed(format!(
            "{} bytes left after the message",
            rest.len()
        )));
    }
    Ok(msg)
}

/// Reads frames from a byte stream, buffering so that small frames cost no
/// extra reads.
pub struct FrameReader<R> {
    input: R,
    max: u32,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// Frames and bytes decoded so far (for the node's metrics).
    frames: u64,
    bytes: u64,
}

/// How far past a frame a [`FrameReader`] reads ahead: its buffer never
/// exceeds the frame limit, the header and this.
pub const READ_AHEAD_BYTES: usize = 16 * 1024;

impl<R: ByteReader> FrameReader<R> {
    /// A buffer grown for a big frame is given back above this size.
    const KEEP_CAPACITY: usize = 256 * 1024;

    /// Reads frames of at most `max` body bytes from `input`.
    pub fn new(input: R, max: u32) -> Self {
        FrameReader {
            input,
            max,
            buf: Vec::new(),
            start: 0,
            end: 0,
            frames: 0,
            bytes: 0,
        }
    }

    /// Frames decoded so far and their bytes, headers included.
    pub fn frames_read(&self) -> (u64, u64) {
        (self.frames, self.bytes)
    }

    /// The next message. [`WireError::Closed`] when the peer closed between
    /// frames; any other error means the stream cannot be trusted further.
    ///
    /// Cancel-safe: bytes already read stay buffered for the next call.
    pub async fn read_frame(&mut self) -> Result<WireMessage, WireError> {
        loop {
            let pending = &self.buf[self.start..self.end];
            if let Some((msg, used)) = decode_frame(pending, self.max)? {
                self.start += used;
                self.frames += 1;
                self.bytes += used as u64;
                if self.start == self.end {
                    self.start = 0;
                    self.end = 0;
                    if self.buf.len() > Self::KEEP_CAPACITY {
                        self.buf = Vec::new();
                    }
                }
                return Ok(msg);
            }
            // The whole frame's size is known once its header is in.
            let wanted = match pending.get(..HEADER_LEN) {
                Some(header) => HEADER_LEN + frame_body_len(header, self.max)?,
                None => HEADER_LEN,
            };
            self.make_room(wanted);
            let n = self.input.read(&mut self.buf[self.end..]).await?;
            if n == 0 {
                let got = self.end - self.start;
                return Err(if got == 0 {
                    WireError::Closed
                } else {
                    WireError::Truncated {
                        got,
                        expected: wanted,
                    }
                });
            }
            self.end += n;
        }
    }

    /// Makes room to read more of a frame of `frame_len` bytes. The
    /// buffer grows only when it is full, and then to twice what arrived
    /// (at least the read-ahead), never past the frame and the read-ahead:
    /// memory follows the bytes a peer really sent, so a header claiming
    /// the whole limit costs nothing until the bytes come, while a big
    /// frame still arrives in a few large reads.
    fn make_room(&mut self, frame_len: usize) {
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.end < self.buf.len() {
            return; // room left to read into
        }
        // `end < frame_len` here (else the frame would have decoded), so
        // `ceiling` stays below the frame limit plus the read-ahead.
        let ceiling = frame_len.max(self.end + READ_AHEAD_BYTES);
        let want = (self.end + READ_AHEAD_BYTES)
            .max(self.end.saturating_mul(2))
            .min(ceiling);
        debug_assert!(want > self.end, "the buffer must gain room to read into");
        // Exactly: amortized growth could double a buffer past the bound.
        self.buf.reserve_exact(want - self.buf.len());
        self.buf.resize(want, 0);
    }

    /// The most body bytes a frame may have.
    pub fn max(&self) -> u32 {
        self.max
    }

    /// Changes the frame limit from the next frame on (the handshake reads
    /// with a small one, then the connection's own applies).
    pub fn set_max(&mut self, max: u32) {
        self.max = max;
    }

    /// Bytes the reader holds allocated for buffering now.
    pub fn buffer_capacity(&self) -> usize {
        self.buf.capacity()
    }

    /// The underlying reader.
    pub fn into_inner(self) -> R {
        self.input
    }
}

/// Writes frames to a byte stream; [`FrameWriter::queue`] batches several
/// into one write.
pub struct FrameWriter<W> {
    output: W,
    max: u32,
    buf: Vec<u8>,
    /// Frames and bytes handed to the stream so far (for the metrics).
    frames: u64,
    bytes: u64,
    /// Frames queued since the last flush.
    queued: u64,
}

impl<W: ByteWriter> FrameWriter<W> {
    /// Writes frames of at most `max` body bytes to `output`.
    pub fn new(output: W, max: u32) -> Self {
        FrameWriter {
            output,
            max,
            buf: Vec::new(),
            frames: 0,
            bytes: 0,
            queued: 0,
        }
    }

    /// Frames written to the stream so far and their bytes.
    pub fn frames_written(&self) -> (u64, u64) {
        (self.frames, self.bytes)
    }

    /// Adds `msg` to the next write. An oversized message is refused and
    /// nothing is queued.
    pub fn queue(&mut self, msg: &WireMessage) -> Result<(), WireError> {
        encode_frame(msg, self.max, &mut self.buf)?;
        self.queued += 1;
        Ok(())
    }

    /// Writes and flushes everything queued.
    pub async fn flush(&mut self) -> Result<(), WireError> {
        if !self.buf.is_empty() {
            self.output.write_all(&self.buf).await?;
            self.frames += std::mem::take(&mut self.queued);
            self.bytes += self.buf.len() as u64;
            self.buf.clear();
        }
        self.output.flush().await?;
        Ok(())
    }

    /// Queues `msg` and flushes.
    pub async fn send(&mut self, msg: &WireMessage) -> Result<(), WireError> {
        self.queue(msg)?;
        self.flush().await
    }

    /// The underlying writer (anything queued and not flushed is dropped).
    pub fn into_inner(self) -> W {
        self.output
    }

    /// Flushes and closes the stream's sending direction.
    pub async fn close(&mut self) -> Result<(), WireError> {
        self.flush().await?;
        self.output.close().await?;
        Ok(())
    }
}
