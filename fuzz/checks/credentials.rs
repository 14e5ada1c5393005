//! Arbitrary bytes as a message's credentials (the `principal` header):
//! the verifier never panics and never accepts, whatever the bytes (a
//! token needs a signature by a configured key). Shared by the fuzz target
//! and by `cargo test` (which replays the committed corpus).

use plexspaces::security::{JwtKey, JwtVerifier};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

fn verifier() -> &'static JwtVerifier {
    static VERIFIER: OnceLock<JwtVerifier> = OnceLock::new();
    VERIFIER.get_or_init(|| {
        JwtVerifier::new()
            .key(
                JwtKey::hs256(b"the-fuzzed-issuers-secret-32-bytes!")
                    .unwrap()
                    .with_key_id("k1"),
            )
            .unwrap()
            .require_exp(false)
    })
}

pub fn check(bytes: &[u8]) {
    let text = String::from_utf8_lossy(bytes);
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_780_000_000);
    let outcome = verifier().verify(&text, now);
    assert!(
        outcome.is_err(),
        "arbitrary credentials were accepted: {outcome:?}"
    );
}
