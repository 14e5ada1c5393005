//! Replays the committed wire-frame fuzz corpus through the fuzz target's
//! checks, so their properties hold on every `cargo test`, fuzzer or not.

// The corpus is test data in the repository, read directly.
#![allow(clippy::disallowed_methods)]

// The checks measure allocations through this allocator.
#[path = "../../fuzz/checks/alloc_limit.rs"]
mod alloc_limit;
#[global_allocator]
static ALLOC: alloc_limit::Tracking = alloc_limit::Tracking;

#[path = "../../fuzz/checks/wire_frame.rs"]
mod wire_frame;

use plexspaces_net::wire::WireError;
use std::path::PathBuf;

#[test]
fn the_wire_frame_corpus_keeps_its_properties() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/wire_frame");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("corpus {}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .collect();
    files.sort();
    assert!(files.len() >= 5, "the seed corpus is committed");
    for path in files {
        let bytes = std::fs::read(&path).unwrap();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let (frames, end) = wire_frame::check(&bytes);
        // The hand-made seeds also pin down what the decoder says of them.
        match name.as_str() {
            "session" => assert!(frames == 13 && end.is_none(), "{name}: {frames} {end:?}"),
            "truncated" => assert!(frames == 12 && end.is_none(), "{name}: {frames} {end:?}"),
            "huge_length" => assert!(matches!(end, Some(WireError::Oversized { .. }))),
            "wrong_version" => assert!(matches!(end, Some(WireError::UnsupportedVersion(3)))),
            "trailing_byte" => assert!(matches!(end, Some(WireError::Malformed(_)))),
            // Found by the fuzzer: an over-long varint inside a Heartbeat.
            "overlong_varint" => assert!(frames >= 4, "{name}: {frames} {end:?}"),
            _ => {} // other inputs a fuzzer found: the properties suffice
        }
    }
}

#[path = "../../fuzz/checks/handshake.rs"]
mod handshake;

/// A session a peer without the secret might try: `msgs` as frames, read
/// `chunk` bytes at a time.
fn session(chunk: u8, msgs: &[plexspaces_net::wire::WireMessage]) -> Vec<u8> {
    let mut bytes = vec![chunk];
    for msg in msgs {
        plexspaces_net::wire::encode_frame(msg, handshake::MAX, &mut bytes).unwrap();
    }
    bytes
}

#[test]
fn the_handshake_corpus_and_forged_sessions_never_complete() {
    use plexspaces_net::wire::WireMessage;
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/handshake");
    let mut inputs: Vec<Vec<u8>> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("corpus {}: {e}", dir.display()))
        .map(|entry| std::fs::read(entry.unwrap().path()).unwrap())
        .collect();
    assert!(inputs.len() >= 2, "the seed corpus is committed");
    // Well-formed sessions with made-up proofs, whole and byte by byte.
    let hello = WireMessage::Hello {
        node: "intruder".into(),
        listen: "10.0.0.9:7000".parse().unwrap(),
        incarnation: 1,
        nonce: [1; 32],
    };
    let challenge = WireMessage::Challenge {
        node: "intruder".into(),
        incarnation: 1,
        nonce: [2; 32],
        proof: [3; 32],
    };
    for chunk in [1, 255] {
        inputs.push(session(
            chunk,
            &[hello.clone(), WireMessage::Proof { proof: [0; 32] }],
        ));
        inputs.push(session(chunk, &[challenge.clone(), WireMessage::Welcome]));
        inputs.push(session(chunk, &[hello.clone(), WireMessage::Welcome]));
        inputs.push(session(chunk, std::slice::from_ref(&hello)));
    }
    for input in &inputs {
        handshake::check(input);
    }
}

#[path = "../../fuzz/checks/tls_handshake.rs"]
mod tls_handshake;

/// A real client's first flight (its ClientHello), byte by byte and whole,
/// and truncations of it: the acceptor answers but never completes.
fn tls_seeds() -> Vec<(String, Vec<u8>)> {
    let context = tls_handshake::context();
    let sent = tls_handshake::Kept::default();
    let empty = tls_handshake::Scripted {
        bytes: Vec::new(),
        at: 0,
        chunk: 1,
    };
    let _ = tls_handshake::run(plexspaces_net::tls::connect(&context, empty, sent.clone()));
    let hello = sent.0.lock().unwrap().clone();
    assert!(hello.len() > 100, "the client sent its hello");
    let mut seeds = vec![
        (
            "client_hello_whole".to_string(),
            [&[255u8][..], &hello].concat(),
        ),
        (
            "client_hello_bytewise".to_string(),
            [&[1u8][..], &hello].concat(),
        ),
        (
            "client_hello_truncated".to_string(),
            [&[64u8][..], &hello[..hello.len() / 2]].concat(),
        ),
        (
            "plaintext_hello_frame".to_string(),
            vec![16, 12, 0, 0, 0, 2, 0, 5, b'n', b'o', b'd', b'e', b'1'],
        ),
    ];
    let mut flipped = hello.clone();
    flipped[hello.len() / 3] ^= 0x40;
    seeds.push((
        "client_hello_flipped".to_string(),
        [&[255u8][..], &flipped].concat(),
    ));
    seeds
}

#[test]
fn the_tls_handshake_corpus_never_completes() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/tls_handshake");
    if std::env::var_os("PLEXSPACES_WRITE_FUZZ_SEEDS").is_some() {
        std::fs::create_dir_all(&dir).unwrap();
        for (name, bytes) in tls_seeds() {
            std::fs::write(dir.join(name), bytes).unwrap();
        }
    }
    let mut inputs: Vec<Vec<u8>> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("corpus {}: {e}", dir.display()))
        .map(|entry| std::fs::read(entry.unwrap().path()).unwrap())
        .collect();
    assert!(inputs.len() >= 5, "the seed corpus is committed");
    inputs.extend(tls_seeds().into_iter().map(|(_, bytes)| bytes));
    for input in inputs {
        tls_handshake::check(&input);
    }
}
