//! The ractor_cluster peer of `remote_bench` (feature `cluster-peers`): two
//! `NodeServer`s in this process on loopback, an actor on node a found
//! through a process group as a remote stand-in, asked (`call`) and told
//! (`cast`) over the nodes' TCP session.

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use ractor_cluster::{NodeServer, NodeServerMessage, RactorClusterMessage};
use std::time::{Duration, Instant};

struct Sink;

#[derive(RactorClusterMessage)]
pub enum SinkMsg {
    Data(Vec<u8>),
    #[rpc]
    Ask(Vec<u8>, RpcReplyPort<u64>),
}

impl Actor for Sink {
    type Msg = SinkMsg;
    type State = u64;
    type Arguments = ();

    async fn pre_start(&self, myself: ActorRef<SinkMsg>, _: ()) -> Result<u64, ActorProcessingErr> {
        ractor::pg::join("bench-sink".to_string(), vec![myself.get_cell()]);
        Ok(0)
    }

    async fn handle(
        &self,
        _: ActorRef<SinkMsg>,
        msg: SinkMsg,
        total: &mut u64,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            SinkMsg::Data(bytes) => *total += bytes.len() as u64,
            SinkMsg::Ask(bytes, reply) => {
                *total += bytes.len() as u64;
                let _ = reply.send(*total);
            }
        }
        Ok(())
    }
}

/// A connected pair of nodes and the remote stand-in of node a's sink.
pub struct Peer {
    remote: ActorRef<SinkMsg>,
    servers: Vec<ActorRef<NodeServerMessage>>,
    sink: ActorRef<SinkMsg>,
}

impl Peer {
    pub async fn start() -> Peer {
        let mut servers = Vec::new();
        let ports = [free_port(), free_port()];
        for (i, port) in ports.iter().enumerate() {
            let server = NodeServer::new(
                *port,
                "bench-cookie".to_string(),
                format!("node_{i}"),
                "127.0.0.1".to_string(),
                None,
                None,
            );
            let (server, _) = Actor::spawn(None, server, ()).await.unwrap();
            servers.push(server);
        }
        let (sink, _) = Actor::spawn(None, Sink, ()).await.unwrap();
        ractor_cluster::client_connect(&servers[1], format!("127.0.0.1:{}", ports[0]))
            .await
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        let remote = loop {
            let stand_in = ractor::pg::get_members(&"bench-sink".to_string())
                .into_iter()
                .find(|cell| !cell.get_id().is_local());
            if let Some(cell) = stand_in {
                break ActorRef::<SinkMsg>::from(cell);
            }
            assert!(
                Instant::now() < deadline,
                "ractor_cluster nodes never synchronized"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        Peer {
            remote,
            servers,
            sink,
        }
    }

    async fn ask(&self, payload: Vec<u8>) -> u64 {
        ractor::call_t!(self.remote, SinkMsg::Ask, 5000, payload).unwrap()
    }

    /// Mean ask round trip in µs.
    pub async fn ask_us(&self, size: usize, n: usize) -> f64 {
        let payload = vec![7u8; size];
        self.ask(payload.clone()).await;
        let start = Instant::now();
        for _ in 0..n {
            self.ask(payload.clone()).await;
        }
        start.elapsed().as_secs_f64() * 1e6 / n as f64
    }

    /// Tells per second (the ask after them returns once all were handled).
    pub async fn tells_per_s(&self, size: usize, n: usize) -> f64 {
        let payload = vec![7u8; size];
        let start = Instant::now();
        for _ in 0..n {
            self.remote.cast(SinkMsg::Data(payload.clone())).unwrap();
        }
        self.ask(Vec::new()).await;
        n as f64 / start.elapsed().as_secs_f64()
    }

    pub fn stop(self) {
        self.sink.stop(None);
        for server in self.servers {
            server.stop(None);
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
