//! Raw bytes from a peer into the wire frame decoder: never a panic, never
//! a read past the input or an allocation past the frame limit, and every
//! accepted frame re-encodes to the bytes it came from.
#![no_main]

#[path = "../checks/alloc_limit.rs"]
mod alloc_limit;
#[global_allocator]
static ALLOC: alloc_limit::Tracking = alloc_limit::Tracking;

#[path = "../checks/wire_frame.rs"]
mod wire_frame;

libfuzzer_sys::fuzz_target!(|bytes: &[u8]| {
    wire_frame::check(bytes);
});
