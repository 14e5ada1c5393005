//! The TLS handshake against a peer that sends arbitrary bytes: neither
//! the acceptor nor the dialer may panic, and neither may complete: a
//! completed handshake takes a certificate of the cluster's CA and a
//! signature by its key, which arbitrary bytes cannot hold. Shared by the
//! fuzz target and by `cargo test` (which replays the committed corpus,
//! including a real client's first flight).

use plexspaces_net::tls::test_pki::{TestCa, Validity};
use plexspaces_net::tls::{self, TlsContext};
use plexspaces_net::{ByteReader, ByteWriter, NetError};
use std::future::Future;
use std::pin::pin;
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, SystemTime};

/// The peer: the input, handed out `chunk` bytes per read, then
/// end-of-stream.
pub struct Scripted {
    pub bytes: Vec<u8>,
    pub at: usize,
    pub chunk: usize,
}

impl ByteReader for Scripted {
    async fn read(&mut self, buf: &mut [u8]) -> Result<usize, NetError> {
        let n = buf.len().min(self.chunk).min(self.bytes.len() - self.at);
        buf[..n].copy_from_slice(&self.bytes[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

/// What this side sends, kept (a test reads a client's first flight).
#[derive(Clone, Default)]
pub struct Kept(pub Arc<Mutex<Vec<u8>>>);

impl ByteWriter for Kept {
    async fn write_all(&mut self, buf: &[u8]) -> Result<(), NetError> {
        self.0.lock().unwrap().extend_from_slice(buf);
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
pub fn run<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(out) = future.as_mut().poll(&mut cx) {
            return out;
        }
    }
}

/// A node's context: one CA, fixed randomness and clock (the fuzzer must
/// replay an input exactly).
pub fn context() -> TlsContext {
    static MATERIAL: OnceLock<plexspaces_net::tls::TlsMaterial> = OnceLock::new();
    let material = MATERIAL
        .get_or_init(|| TestCa::new("fuzz-ca", 1).material("fuzz-node", Validity::always(), &[]));
    TlsContext::new(
        material,
        Arc::new(|buf: &mut [u8]| buf.fill(0x5a)),
        Arc::new(|| SystemTime::UNIX_EPOCH + Duration::from_secs(1_780_000_000)),
    )
    .expect("the fuzz material is valid")
}

/// Plays `bytes` (first byte: read chunk size) as the peer of a TLS
/// acceptor and of a TLS dialer; both must fail.
pub fn check(bytes: &[u8]) {
    let Some((&chunk, script)) = bytes.split_first() else {
        return;
    };
    let context = context();
    for acceptor in [true, false] {
        let peer = Scripted {
            bytes: script.to_vec(),
            at: 0,
            chunk: usize::from(chunk).max(1),
        };
        let outcome = if acceptor {
            run(tls::accept(&context, peer, Kept::default())).map(|_| ())
        } else {
            run(tls::connect(&context, peer, Kept::default())).map(|_| ())
        };
        assert!(
            outcome.is_err(),
            "arbitrary bytes completed a TLS handshake ({})",
            if acceptor { "accept" } else { "dial" }
        );
    }
}
