//! The wire protocol's frames and handshake: what a peer may send, and what
//! this node does with it.

use plexspaces_net::wire::{
    self, ClusterSecret, ExitNotice, FrameReader, FrameWriter, HEADER_LEN, Identity, JournalOp,
    JournalOutcome, Member, PROTOCOL_VERSION, ReplyOutcome, WireError, WireMessage, decode_frame,
    encode_frame,
};
use plexspaces_net::{ByteReader, Connection, Listener, Net, NetError, TcpNet};
use proptest::prelude::*;
use std::net::SocketAddr;

const MAX: u32 = 1 << 16;

/// Hands out a fixed byte string in chunks of a chosen size, then EOF.
struct ChunkedReader {
    data: Vec<u8>,
    pos: usize,
    chunk: usize,
}

impl ByteReader for ChunkedReader {
    async fn read(&mut self, buf: &mut [u8]) -> Result<usize, NetError> {
        let n = buf.len().min(self.chunk).min(self.data.len() - self.pos);
        buf[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// Takes whatever is written and keeps it.
struct Sink(Vec<u8>);

impl plexspaces_net::ByteWriter for Sink {
    async fn write_all(&mut self, buf: &[u8]) -> Result<(), NetError> {
        self.0.extend_from_slice(buf);
        Ok(())
    }
    async fn flush(&mut self) -> Result<(), NetError> {
        Ok(())
    }
    async fn close(&mut self) -> Result<(), NetError> {
        Ok(())
    }
}

fn reader(data: Vec<u8>, chunk: usize) -> FrameReader<ChunkedReader> {
    FrameReader::new(
        ChunkedReader {
            data,
            pos: 0,
            chunk: chunk.max(1),
        },
        MAX,
    )
}

fn addr() -> impl Strategy<Value = SocketAddr> {
    (any::<[u8; 4]>(), any::<u16>()).prop_map(|(ip, port)| SocketAddr::from((ip, port)))
}

fn headers() -> impl Strategy<Value = wire::Headers> {
    let field = || proptest::option::of("[ -~]{0,24}");
    (field(), field(), field(), field()).prop_map(|(sender, tenant, principal, trace)| {
        wire::Headers {
            sender,
            tenant,
            principal,
            trace,
        }
    })
}

fn message() -> impl Strategy<Value = WireMessage> {
    let name = "[a-z0-9-]{0,12}";
    let bytes = proptest::collection::vec(any::<u8>(), 0..300);
    prop_oneof![
        (name, addr(), any::<u64>(), any::<[u8; 32]>()).prop_map(
            |(node, listen, incarnation, nonce)| {
                WireMessage::Hello {
                    node,
                    listen,
                    incarnation,
                    nonce,
                }
            }
        ),
        (name, any::<u64>(), any::<[u8; 32]>(), any::<[u8; 32]>()).prop_map(
            |(node, incarnation, nonce, proof)| WireMessage::Challenge {
                node,
                incarnation,
                nonce,
                proof
            }
        ),
        any::<[u8; 32]>().prop_map(|proof| WireMessage::Proof { proof }),
        Just(WireMessage::Welcome),
        Just(WireMessage::Leaving),
        name.prop_map(|reason| WireMessage::Refused { reason }),
        proptest::collection::vec((name, addr(), any::<u64>()), 0..5).prop_map(|m| {
            WireMessage::Heartbeat {
                members: m
                    .into_iter()
                    .map(|(node, addr, incarnation)| Member {
                        node,
                        addr,
                        incarnation,
                    })
                    .collect(),
            }
        }),
        (name, headers(), bytes.clone()).prop_map(|(to, headers, payload)| {
            WireMessage::Tell {
                to,
                headers,
                payload,
            }
        }),
        (name, any::<u64>(), headers(), bytes.clone()).prop_map(
            |(to, request, headers, payload)| WireMessage::Ask {
                to,
                request,
                headers,
                payload
            }
        ),
        (any::<u64>(), bytes.clone(), name, 0..9u8).prop_map(|(request, b, text, which)| {
            let outcome = match which {
                0 => ReplyOutcome::Replied(b),
                1 => ReplyOutcome::Failed(text),
                2 => ReplyOutcome::NoSuchActor,
                3 => ReplyOutcome::Stopped,
                4 => ReplyOutcome::Unavailable(text),
                5 => ReplyOutcome::Rejected(text),
                6 => ReplyOutcome::Unauthenticated(text),
                7 => ReplyOutcome::Forbidden(text),
                _ => ReplyOutcome::Undecodable(text),
            };
            WireMessage::Reply { request, outcome }
        }),
        name.prop_map(|target| WireMessage::Monitor { target }),
        (name, name, 0..4u8).prop_map(|(target, text, which)| WireMessage::Exited {
            target,
            reason: match which {
                0 => ExitNotice::Normal,
                1 => ExitNotice::Shutdown,
                2 => ExitNotice::Failed(text),
                _ => ExitNotice::NoSuchActor,
            },
        }),
        name.prop_map(|target| WireMessage::Stop { target }),
        (
            name,
            any::<u64>(),
            any::<u64>(),
            proptest::collection::vec(bytes.clone(), 0..3)
        )
            .prop_map(
                |(stream, epoch, first_seq, entries)| WireMessage::JournalCall {
                    request: epoch ^ first_seq,
                    op: JournalOp::Append {
                        stream,
                        epoch,
                        first_seq,
                        entries
                    },
                }
            ),
        (any::<u64>(), bytes.clone()).prop_map(|(request, data)| WireMessage::JournalResult {
            request,
            outcome: JournalOutcome::Entries {
                entries: vec![(request, data)],
                more: request % 2 == 0
            },
        }),
    ]
}

fn encode_all(msgs: &[WireMessage]) -> Vec<u8> {
    let mut out = Vec::new();
    for m in msgs {
        encode_frame(m, MAX, &mut out).unwrap();
    }
    out
}

/// The in-memory reader never waits, so every read completes at once.
fn block_on<F: std::future::Future>(f: F) -> F::Output {
    futures::FutureExt::now_or_never(f).expect("in-memory reads never wait")
}

proptest! {
    #[test]
    fn frames_round_trip_through_any_chunking(
        msgs in proptest::collection::vec(message(), 0..8),
        chunk in 1usize..64,
    ) {
        let mut frames = reader(encode_all(&msgs), chunk);
        for m in &msgs {
            prop_assert_eq!(&block_on(frames.read_frame()).unwrap(), m);
        }
        prop_assert!(matches!(block_on(frames.read_frame()), Err(WireError::Closed)));
    }

    #[test]
    fn a_cut_stream_yields_the_whole_frames_then_truncated(
        msgs in proptest::collection::vec(message(), 1..5),
        cut_seed in any::<usize>(),
    ) {
        let bytes = encode_all(&msgs);
        let cut = cut_seed % bytes.len();
        // Whole frames before the cut come out; the partial one is reported.
        let mut whole = 0;
        let mut offset = 0;
        for m in &msgs {
            let mut one = Vec::new();
            encode_frame(m, MAX, &mut one).unwrap();
            if offset + one.len() > cut { break; }
            offset += one.len();
            whole += 1;
        }
        let mut frames = reader(bytes[..cut].to_vec(), 7);
        for m in &msgs[..whole] {
            prop_assert_eq!(&block_on(frames.read_frame()).unwrap(), m);
        }
        let end = block_on(frames.read_frame());
        if cut == offset {
            prop_assert!(matches!(end, Err(WireError::Closed)));
        } else {
            let truncated = matches!(end, Err(WireError::Truncated { got, .. }) if got == cut - offset);
            prop_assert!(truncated, "{:?}", end);
        }
        // And the pure decoder asks for more rather than guessing.
        prop_assert!(decode_frame(&bytes[offset..cut], MAX).unwrap().is_none() || cut == offset);
    }

    #[test]
    fn garbage_is_refused_with_a_typed_error_or_decodes_to_one_meaning(
        bytes in proptest::collection::vec(any::<u8>(), 0..200),
    ) {
        match decode_frame(&bytes, MAX) {
            Ok(Some((msg, used))) => {
                // Whatever decodes survives a round trip; its canonical
                // spelling is never longer (postcard accepts over-long
                // varints, so not always the same bytes).
                let mut again = Vec::new();
                encode_frame(&msg, MAX, &mut again).unwrap();
                prop_assert!(again.len() <= used);
                prop_assert_eq!(decode_frame(&again, MAX).unwrap().unwrap().0, msg);
            }
            Ok(None) | Err(WireError::Malformed(_) | WireError::Oversized { .. } | WireError::UnsupportedVersion(_)) => {}
            Err(other) => prop_assert!(false, "unexpected error {other}"),
        }
    }
}

#[test]
fn an_oversized_announcement_is_refused_from_its_header_alone() {
    let mut header = u32::MAX.to_le_bytes().to_vec();
    header.push(PROTOCOL_VERSION);
    assert!(matches!(
        decode_frame(&header, MAX),
        Err(WireError::Oversized { len, max: MAX }) if len == u32::MAX as u64
    ));
    // The reader refuses it without waiting for (or allocating) the body.
    let mut frames = reader(header, 64);
    assert!(matches!(
        block_on(frames.read_frame()),
        Err(WireError::Oversized { .. })
    ));
}

#[test]
fn a_header_claiming_the_whole_limit_costs_only_the_bytes_that_arrive() {
    // A frame within the 8 MiB limit whose header arrives with five body
    // bytes: the reader must not reserve what the header claims.
    let max = wire::MAX_FRAME_LEN_DEFAULT;
    let mut bytes = (max - 1).to_le_bytes().to_vec();
    bytes.push(PROTOCOL_VERSION);
    bytes.extend_from_slice(&[1, 2, 3, 4, 5]);
    let mut frames = FrameReader::new(
        ChunkedReader {
            data: bytes,
            pos: 0,
            chunk: 64,
        },
        max,
    );
    assert!(matches!(
        block_on(frames.read_frame()),
        Err(WireError::Truncated { got: 10, .. })
    ));
    assert!(
        frames.buffer_capacity() <= 2 * wire::READ_AHEAD_BYTES,
        "buffered {} bytes for 10 that arrived",
        frames.buffer_capacity()
    );
}

#[test]
fn a_big_frame_still_arrives_whole_and_the_buffer_stays_within_its_bound() {
    let payload: Vec<u8> = (0..3 << 20).map(|i| (i % 251) as u8).collect();
    let msg = WireMessage::Tell {
        to: "big".into(),
        headers: Default::default(),
        payload,
    };
    let max = wire::MAX_FRAME_LEN_DEFAULT;
    let mut bytes = Vec::new();
    encode_frame(&msg, max, &mut bytes).unwrap();
    let frame_len = bytes.len();
    encode_frame(&WireMessage::Welcome, max, &mut bytes).unwrap();
    for chunk in [1000, 64 * 1024, 1 << 20] {
        let mut frames = FrameReader::new(
            ChunkedReader {
                data: bytes.clone(),
                pos: 0,
                chunk,
            },
            max,
        );
        assert_eq!(block_on(frames.read_frame()).unwrap(), msg);
        assert!(frames.buffer_capacity() <= frame_len + wire::READ_AHEAD_BYTES);
        assert_eq!(block_on(frames.read_frame()).unwrap(), WireMessage::Welcome);
    }
}

#[test]
fn a_handshake_refuses_frames_bigger_than_its_messages() {
    // A Hello announcing 2 KiB, on a connection whose own limit is 8 MiB:
    // refused from its header, before the acceptor buffers the body.
    let mut bytes = 2048u32.to_le_bytes().to_vec();
    bytes.push(PROTOCOL_VERSION);
    bytes.extend_from_slice(&[0; 64]);
    let mut frames = FrameReader::new(
        ChunkedReader {
            data: bytes,
            pos: 0,
            chunk: 4096,
        },
        wire::MAX_FRAME_LEN_DEFAULT,
    );
    let mut sink = FrameWriter::new(Sink(Vec::new()), wire::MAX_FRAME_LEN_DEFAULT);
    let secret = ClusterSecret::new(*b"sixteen-bytes-at-least").unwrap();
    let accepted = block_on(wire::handshake::accept(
        &mut frames,
        &mut sink,
        &secret,
        &me("a", 1),
        [7; 32],
    ));
    assert!(
        matches!(
            accepted,
            Err(WireError::Oversized { len: 2048, max }) if max == wire::HANDSHAKE_FRAME_LEN_MAX
        ),
        "{accepted:?}"
    );
    // The connection's own limit applies again after the handshake.
    assert_eq!(frames.max(), wire::MAX_FRAME_LEN_DEFAULT);
}

#[test]
fn the_largest_handshake_messages_fit_the_handshake_limit() {
    let name = "n".repeat(64);
    let listen: SocketAddr = "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535"
        .parse()
        .unwrap();
    for msg in [
        WireMessage::Hello {
            node: name.clone(),
            listen,
            incarnation: u64::MAX,
            nonce: [0xff; 32],
        },
        WireMessage::Challenge {
            node: name.clone(),
            incarnation: u64::MAX,
            nonce: [0xff; 32],
            proof: [0xff; 32],
        },
    ] {
        let mut out = Vec::new();
        encode_frame(&msg, wire::HANDSHAKE_FRAME_LEN_MAX, &mut out).unwrap();
    }
}

#[test]
fn an_oversized_message_is_not_sent_and_leaves_the_buffer_clean() {
    let big = WireMessage::Tell {
        to: "a".into(),
        headers: Default::default(),
        payload: vec![0; MAX as usize + 1],
    };
    let mut out = Vec::new();
    encode_frame(&WireMessage::Welcome, MAX, &mut out).unwrap();
    let before = out.clone();
    assert!(matches!(
        encode_frame(&big, MAX, &mut out),
        Err(WireError::Oversized { .. })
    ));
    assert_eq!(out, before);
}

#[test]
fn other_versions_and_trailing_bytes_are_refused() {
    let mut frame = Vec::new();
    encode_frame(&WireMessage::Welcome, MAX, &mut frame).unwrap();
    let mut other_version = frame.clone();
    other_version[4] = PROTOCOL_VERSION + 1;
    assert!(matches!(
        decode_frame(&other_version, MAX),
        Err(WireError::UnsupportedVersion(v)) if v == PROTOCOL_VERSION + 1
    ));
    // One extra body byte, with the length saying so.
    let mut padded = frame.clone();
    padded.push(0);
    let body_len = (padded.len() - HEADER_LEN) as u32;
    padded[..4].copy_from_slice(&body_len.to_le_bytes());
    assert!(matches!(
        decode_frame(&padded, MAX),
        Err(WireError::Malformed(_))
    ));
}

async fn pair() -> (
    (
        FrameReader<plexspaces_net::TcpReader>,
        FrameWriter<plexspaces_net::TcpWriter>,
    ),
    (
        FrameReader<plexspaces_net::TcpReader>,
        FrameWriter<plexspaces_net::TcpWriter>,
    ),
) {
    let net = TcpNet::new();
    let mut listener = net.listen("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let dialed = net.connect(listener.local_addr()).await.unwrap();
    let (accepted, _) = listener.accept().await.unwrap();
    let (dr, dw) = dialed.split();
    let (ar, aw) = accepted.split();
    (
        (FrameReader::new(dr, MAX), FrameWriter::new(dw, MAX)),
        (FrameReader::new(ar, MAX), FrameWriter::new(aw, MAX)),
    )
}

fn me(node: &str, incarnation: u64) -> Identity {
    Identity {
        node: node.into(),
        listen: "127.0.0.1:4000".parse().unwrap(),
        incarnation,
    }
}

async fn handshake(
    dialer_secret: &[u8],
    acceptor_secret: &[u8],
) -> (Result<wire::Peer, WireError>, Result<wire::Peer, WireError>) {
    let ds = ClusterSecret::new(dialer_secret).unwrap();
    let as_ = ClusterSecret::new(acceptor_secret).unwrap();
    handshake_with(&ds, &as_).await
}

async fn handshake_with(
    ds: &ClusterSecret,
    as_: &ClusterSecret,
) -> (Result<wire::Peer, WireError>, Result<wire::Peer, WireError>) {
    let ((mut dr, mut dw), (mut ar, mut aw)) = pair().await;
    let (a, b) = (me("a", 1), me("b", 2));
    futures::join!(
        wire::handshake::dial(&mut dr, &mut dw, ds, &a, [1; 32]),
        wire::handshake::accept(&mut ar, &mut aw, as_, &b, [2; 32]),
    )
}

#[tokio::test]
async fn a_secret_rotates_with_no_step_where_two_nodes_cannot_talk() {
    let old = ClusterSecret::new(*b"the-old-secret!!").unwrap();
    let new = ClusterSecret::new(*b"the-new-secret!!").unwrap();
    // The three steps of a rotation, and the nodes at adjacent steps.
    let step1 = old.clone().also_accepting(&new).unwrap();
    let step2 = new.clone().also_accepting(&old).unwrap();
    let step3 = new.clone();
    let steps = [&old, &step1, &step2, &step3];
    for pair in steps.windows(2) {
        for (d, a) in [(pair[0], pair[1]), (pair[1], pair[0])] {
            let (dialed, accepted) = handshake_with(d, a).await;
            assert!(
                dialed.is_ok() && accepted.is_ok(),
                "{dialed:?} {accepted:?}"
            );
        }
    }
    // Two steps apart (old only, new only) is refused: the old is gone.
    let (dialed, accepted) = handshake_with(&old, &step3).await;
    assert!(dialed.is_err() && accepted.is_err());
    // The list of accepted secrets is bounded.
    let mut many = new.clone();
    for _ in 0..ClusterSecret::ACCEPTED_MAX {
        many = many.also_accepting(&old).unwrap();
    }
    assert!(many.also_accepting(&old).is_err());
}

#[tokio::test]
async fn nodes_with_the_same_secret_learn_each_other() {
    let (dialed, accepted) = handshake(b"sixteen-byte-key", b"sixteen-byte-key").await;
    let dialed = dialed.unwrap();
    assert_eq!(
        (dialed.node.as_str(), dialed.incarnation, dialed.listen),
        ("b", 2, None)
    );
    let accepted = accepted.unwrap();
    assert_eq!(accepted.node, "a");
    assert_eq!(accepted.listen, Some("127.0.0.1:4000".parse().unwrap()));
}

#[tokio::test]
async fn a_peer_with_another_secret_is_refused_by_both_sides() {
    let (dialed, accepted) = handshake(b"sixteen-byte-key", b"another-secret!!").await;
    assert!(
        matches!(dialed, Err(WireError::AuthFailed(_))),
        "{dialed:?}"
    );
    assert!(
        matches!(accepted, Err(WireError::AuthFailed(_))),
        "{accepted:?}"
    );
}

#[tokio::test]
async fn a_recorded_proof_does_not_open_a_new_handshake() {
    let secret = ClusterSecret::new(*b"sixteen-byte-key").unwrap();
    let (a, b) = (me("a", 1), me("b", 2));
    // Record a genuine dialer proof: a relay in the middle of one real
    // handshake copies every frame across and keeps the dialer's Proof.
    let ((mut dr, mut dw), (mut relay_in, mut relay_back)) = pair().await;
    let ((mut relay_out, mut relay_fwd), (mut ar, mut aw)) = pair().await;
    let relay = async {
        let hello = relay_in.read_frame().await.unwrap();
        relay_fwd.send(&hello).await.unwrap();
        let challenge = relay_out.read_frame().await.unwrap();
        relay_back.send(&challenge).await.unwrap();
        let proof = relay_in.read_frame().await.unwrap();
        relay_fwd.send(&proof).await.unwrap();
        let welcome = relay_out.read_frame().await.unwrap();
        relay_back.send(&welcome).await.unwrap();
        match proof {
            WireMessage::Proof { proof } => proof,
            other => panic!("expected the dialer's Proof, got {other:?}"),
        }
    };
    let (dialed, accepted, recorded) = futures::join!(
        wire::handshake::dial(&mut dr, &mut dw, &secret, &a, [1; 32]),
        wire::handshake::accept(&mut ar, &mut aw, &secret, &b, [2; 32]),
        relay,
    );
    assert!(
        dialed.is_ok() && accepted.is_ok(),
        "the recorded handshake succeeded"
    );
    // ...an attacker without the secret replays that Hello and the recorded
    // proof against an acceptor that picks a fresh nonce.
    let ((mut xr, mut xw), (mut ar, mut aw)) = pair().await;
    let attacker = async {
        xw.send(&WireMessage::Hello {
            node: "a".into(),
            listen: "127.0.0.1:4000".parse().unwrap(),
            incarnation: 1,
            nonce: [1; 32],
        })
        .await
        .unwrap();
        let _challenge = xr.read_frame().await.unwrap();
        xw.send(&WireMessage::Proof { proof: recorded })
            .await
            .unwrap();
        xr.read_frame().await
    };
    let (seen, accepted) = futures::join!(
        attacker,
        wire::handshake::accept(&mut ar, &mut aw, &secret, &b, [3; 32]),
    );
    assert!(matches!(accepted, Err(WireError::AuthFailed(_))));
    assert!(matches!(seen, Ok(WireMessage::Refused { .. })), "{seen:?}");
}

#[tokio::test]
async fn a_frame_before_the_handshake_is_a_protocol_violation() {
    let ((_dr, mut dw), (mut ar, mut aw)) = pair().await;
    let secret = ClusterSecret::new(*b"sixteen-byte-key").unwrap();
    let b = me("b", 2);
    dw.send(&WireMessage::Tell {
        to: "x".into(),
        headers: Default::default(),
        payload: vec![],
    })
    .await
    .unwrap();
    let accepted = wire::handshake::accept(&mut ar, &mut aw, &secret, &b, [2; 32]).await;
    assert!(matches!(
        accepted,
        Err(WireError::Unexpected {
            expected: "Hello",
            got: "Tell"
        })
    ));
}

#[test]
fn short_secrets_are_refused_and_secrets_never_print() {
    assert!(ClusterSecret::new(*b"short").is_err());
    let secret = ClusterSecret::new(*b"sixteen-byte-key").unwrap();
    assert!(!format!("{secret:?}").contains("sixteen"));
}
