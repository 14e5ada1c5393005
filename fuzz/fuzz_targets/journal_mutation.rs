//! A log described by the input, mutated as the input says (truncate, flip
//! a bit, zero or garble a sector, duplicate or swap frames), then
//! recovered: the recovery must be exactly what the mutation allows (see
//! `checks/journal_mutation.rs`).
#![no_main]

#[path = "../checks/alloc_limit.rs"]
mod alloc_limit;
#[global_allocator]
static ALLOC: alloc_limit::Tracking = alloc_limit::Tracking;

#[path = "../checks/journal_mutation.rs"]
mod journal_mutation;

libfuzzer_sys::fuzz_target!(|bytes: &[u8]| journal_mutation::check(bytes));
