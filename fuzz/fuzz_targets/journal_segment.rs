//! Raw bytes as a journal segment: recovery must never panic, never
//! allocate past the frame limit, and every frame it accepts must lie
//! inside the input and decode again to the same record.
#![no_main]

#[path = "../checks/alloc_limit.rs"]
mod alloc_limit;
#[global_allocator]
static ALLOC: alloc_limit::Tracking = alloc_limit::Tracking;

#[path = "../checks/journal_segment.rs"]
mod journal_segment;

libfuzzer_sys::fuzz_target!(|bytes: &[u8]| journal_segment::check(bytes));
