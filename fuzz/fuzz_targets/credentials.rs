//! See `checks/credentials.rs`: arbitrary bytes never panic and are never accepted.
#![no_main]

#[path = "../checks/credentials.rs"]
mod credentials;

libfuzzer_sys::fuzz_target!(|bytes: &[u8]| credentials::check(bytes));
