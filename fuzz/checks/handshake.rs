//! The handshake against a peer that sends arbitrary bytes: neither side
//! may panic, and neither may ever complete, because completing takes a
//! proof only the cluster secret can make. Shared by the fuzz target and by
//! `cargo test` (which replays the committed corpus and a few hand-made
//! sessions).

use plexspaces_net::wire::handshake::{accept, dial};
use plexspaces_net::wire::{
    ClusterSecret, FrameReader, FrameWriter, HEADER_LEN, Identity, MAX_FRAME_LEN_DEFAULT,
    READ_AHEAD_BYTES,
};
use plexspaces_net::{ByteReader, ByteWriter, NetError};
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

/// The peer: the input, handed out `chunk` bytes per read, then
/// end-of-stream.
pub struct Scripted {
    bytes: Vec<u8>,
    at: usize,
    chunk: usize,
}

impl ByteReader for Scripted {
    async fn read(&mut self, buf: &mut [u8]) -> Result<usize, NetError> {
        let n = buf.len().min(self.chunk).min(self.bytes.len() - self.at);
        buf[..n].copy_from_slice(&self.bytes[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

/// What this side sends is dropped.
pub struct Sink;

impl ByteWriter for Sink {
    async fn write_all(&mut self, _: &[u8]) -> Result<(), NetError> {
        Ok(())
    }
    async fn flush(&mut self) -> Result<(), NetError> {
        Ok(())
    }
    async fn close(&mut self) -> Result<(), NetError> {
        Ok(())
    }
}

/// Runs `future` to completion: nothing here ever waits.
fn run<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(out) = future.as_mut().poll(&mut cx) {
            return out;
        }
    }
}

/// The frame limit of these handshakes (small, so lying lengths are common).
pub const MAX: u32 = 1 << 16;

pub fn me() -> Identity {
    Identity {
        node: "me".into(),
        listen: "10.0.0.1:7000".parse().unwrap(),
        incarnation: 7,
    }
}

/// Plays `bytes` (first byte: read chunk size) as the peer of an acceptor
/// and of a dialer; both must refuse it, and neither may allocate more at
/// once than the reader's buffer (a frame of the limit, its header and the
/// read-ahead) or what decoding the bytes received may
/// (`alloc_limit::decode_limit`), whatever length the peer claims.
pub fn check(bytes: &[u8]) {
    let Some((&chunk, script)) = bytes.split_first() else {
        return;
    };
    let secret = ClusterSecret::new(b"the-fuzzed-cluster-secret".to_vec()).unwrap();
    let nonce = [7u8; 32];
    for acceptor in [true, false] {
        let peer = Scripted {
            bytes: script.to_vec(),
            at: 0,
            chunk: usize::from(chunk).max(1),
        };
        let mut reader = FrameReader::new(peer, MAX);
        let mut writer = FrameWriter::new(Sink, MAX);
        let me = me();
        let buffer = HEADER_LEN + MAX as usize + READ_AHEAD_BYTES;
        let decoding =
            crate::alloc_limit::decode_limit(MAX_FRAME_LEN_DEFAULT as usize, script.len());
        let limit = buffer.max(decoding);
        let outcome = crate::alloc_limit::within(limit, "the handshake", || {
            if acceptor {
                run(accept(&mut reader, &mut writer, &secret, &me, nonce))
            } else {
                run(dial(&mut reader, &mut writer, &secret, &me, nonce))
            }
        });
        assert!(
            outcome.is_err(),
            "a peer without the secret completed the handshake ({}): {outcome:?}",
            if acceptor { "accept" } else { "dial" }
        );
    }
}
