//! The real TCP `Net` carries bytes over loopback, in order, both ways, and
//! reports failures with types a caller can act on.

// These tests drive the production backend directly, on tokio itself.
#![allow(clippy::disallowed_methods)]
use plexspaces_net::{
    ByteReader, ByteWriter, Connection, DynNet, Listener, Net, NetErrorKind, TcpNet,
};

/// Echoes every connection's bytes back until the peer closes, then closes.
async fn serve_echo<L: Listener>(mut listener: L, connections: usize) {
    for _ in 0..connections {
        let (conn, _) = listener.accept().await.unwrap();
        let (mut input, mut output) = conn.split();
        let mut buf = [0u8; 1024];
        loop {
            let n = input.read(&mut buf).await.unwrap();
            if n == 0 {
                output.close().await.unwrap();
                break;
            }
            output.write_all(&buf[..n]).await.unwrap();
            output.flush().await.unwrap();
        }
    }
}

async fn echo_roundtrip<N: Net>(net: N) {
    let listener = net.listen("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let addr = listener.local_addr();
    assert_ne!(addr.port(), 0, "port 0 is replaced by the bound port");
    let server = tokio::spawn(serve_echo(listener, 1));

    let conn = net.connect(addr).await.unwrap();
    assert_eq!(conn.peer_addr(), addr);
    let (mut input, mut output) = conn.split();
    let payload: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    let writer = tokio::spawn(async move {
        output.write_all(&payload).await.unwrap();
        output.close().await.unwrap();
        let again = output.write_all(b"late").await.unwrap_err();
        assert_eq!(again.kind(), NetErrorKind::Closed);
        payload
    });
    let mut echoed = vec![0u8; 100_000];
    input.read_exact(&mut echoed).await.unwrap();
    let payload = writer.await.unwrap();
    assert_eq!(echoed, payload, "bytes arrive complete and in order");
    let mut rest = [0u8; 1];
    assert_eq!(
        input.read(&mut rest).await.unwrap(),
        0,
        "the server's close reads as EOF"
    );
    let eof = input.read_exact(&mut rest).await.unwrap_err();
    assert_eq!(eof.kind(), NetErrorKind::UnexpectedEof);
    server.await.unwrap();
}

#[tokio::test]
async fn tcp_echo_over_loopback() {
    echo_roundtrip(TcpNet::new()).await;
}

#[tokio::test]
async fn erased_net_echo_over_loopback() {
    echo_roundtrip(DynNet::new(TcpNet::new())).await;
}

#[tokio::test]
async fn connecting_where_nobody_listens_is_refused() {
    let net = TcpNet::new();
    // Bind to learn a free port, then drop the listener so nobody is there.
    let addr = net
        .listen("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
        .local_addr();
    let err = net.connect(addr).await.unwrap_err();
    assert_eq!(err.kind(), NetErrorKind::ConnectionRefused);
    assert_eq!((err.op(), err.addr()), ("connect", Some(addr)));
}

#[tokio::test]
async fn binding_a_taken_address_fails_typed() {
    let net = TcpNet::new();
    let first = net.listen("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let err = net.listen(first.local_addr()).await.unwrap_err();
    assert_eq!(err.kind(), NetErrorKind::AddrInUse);
}
