//! See `checks/tls_handshake.rs`: arbitrary bytes never panic and are never accepted.
#![no_main]

#[path = "../checks/tls_handshake.rs"]
mod tls_handshake;

libfuzzer_sys::fuzz_target!(|bytes: &[u8]| tls_handshake::check(bytes));
