//! Arbitrary bytes from a peer into both sides of the handshake: no panic,
//! and never a completed handshake without the cluster secret (see
//! `checks/handshake.rs`).
#![no_main]

#[path = "../checks/alloc_limit.rs"]
mod alloc_limit;
#[global_allocator]
static ALLOC: alloc_limit::Tracking = alloc_limit::Tracking;

#[path = "../checks/handshake.rs"]
mod handshake;

libfuzzer_sys::fuzz_target!(|bytes: &[u8]| handshake::check(bytes));
