//! Arbitrary bytes decoded as each type PlexSpaces journals or sends
//! between nodes (the first byte picks the type): never a panic, never an
//! allocation past the frame limit, and decode(encode(x)) == x for
//! whatever decodes (see `checks/postcard_types.rs`).
#![no_main]

#[path = "../checks/alloc_limit.rs"]
mod alloc_limit;
#[global_allocator]
static ALLOC: alloc_limit::Tracking = alloc_limit::Tracking;

#[path = "../checks/postcard_types.rs"]
mod postcard_types;

libfuzzer_sys::fuzz_target!(|bytes: &[u8]| {
    postcard_types::check(bytes);
});
