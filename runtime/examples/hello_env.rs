//! A tour of one node's seams on the production backend.
//!
//! Run it twice: the visit count survives in `./data/hello_env`, replaced
//! atomically (write a temporary file, sync it, rename it over the old one,
//! sync the directory), which is the same dance the journal's checkpoints do.
//!
//! ```text
//! cargo run --example hello_env
//! ```

use plexspaces::prelude::*;
use plexspaces::seams::{ByteReader, ByteWriter, Connection, Disk, DiskFile, Listener, Net};
use std::time::Duration;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let env = Env::tokio(NodeName::new("node1")?)
        .with_data_dir("data/hello_env")
        .await?;

    // Disk: read the previous count, write the next one crash-safely.
    let visits = match env.disk().open("visits").await {
        Ok(file) => {
            let bytes = file.read_at(0, 8).await?;
            u64::from_le_bytes(bytes.try_into().map_err(|_| "visits file is corrupt")?)
        }
        Err(e) if e.is_not_found() => 0,
        Err(e) => return Err(e.into()),
    } + 1;
    if env.disk().list().await?.contains(&"visits.tmp".to_string()) {
        env.disk().remove("visits.tmp").await?; // left by a crash mid-update
    }
    let tmp = env.disk().create("visits.tmp").await?;
    tmp.write_at(0, &visits.to_le_bytes()).await?;
    tmp.sync_data().await?;
    env.disk().rename("visits.tmp", "visits").await?;
    env.disk().sync_dir().await?;

    // Net: an echo over loopback.
    let mut listener = env.net().listen("127.0.0.1:0".parse()?).await?;
    let addr = listener.local_addr();
    let echo = env.spawn(async move {
        let (conn, _) = listener.accept().await?;
        let (mut input, mut output) = conn.split();
        let mut buf = [0u8; 5];
        input.read_exact(&mut buf).await?;
        output.write_all(&buf).await?;
        output.close().await
    });
    let (mut input, mut output) = env.net().connect(addr).await?.split();
    output.write_all(b"hello").await?;
    output.flush().await?;
    let mut reply = [0u8; 5];
    input.read_exact(&mut reply).await?;
    echo.await??;

    // Clock and Rng.
    let started = env.now();
    env.sleep(Duration::from_millis(20)).await;
    let napped = env.now() - started;
    let id = env.next_u64();

    println!("node {}: visit #{visits}", env.node());
    println!("echoed {:?} over {addr}", String::from_utf8_lossy(&reply));
    println!(
        "slept {} ms on the node clock; random id {id:016x}",
        napped.as_millis()
    );
    Ok(())
}
