//! Raw bytes as a journal segment: recovery must never panic, never
//! allocate past the frame limit, and every frame it accepts must lie
//! inside the input and decode again to the same record.
#![no_main]

#[path = "../checks/journal_segment.rs"]
mod journal_segment;

libfuzzer_sys::fuzz_target!(|bytes: &[u8]| journal_segment::check(bytes));
