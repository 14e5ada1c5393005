//! Values postcard cannot encode (a `Serialize` that fails, a sequence of
//! unknown length) give typed errors, never a panic: a durable actor's
//! message is refused before anything runs, a side effect's result that
//! cannot be encoded is journaled as such (replay gives the error again
//! and never re-runs the effect), and workflows refuse such inputs,
//! signals and outputs.

use plexspaces::actor::{ActorError, ActorErrorKind, ActorSystem, AskError};
use plexspaces::durability::{
    DurabilityConfig, Durable, DurableActor, DurableContext, JournalBackend,
};
use plexspaces::workflow::{
    RunId, RunStatus, Workflow, WorkflowConfig, WorkflowContext, WorkflowError, Workflows,
};
use plexspaces::{Env, NodeName};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(5);

async fn system(test: &str) -> ActorSystem {
    let dir = std::env::temp_dir().join(format!("plexspaces-unenc-{}-{test}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    ActorSystem::new(
        Env::tokio(NodeName::new("n1").unwrap())
            .with_data_dir(dir)
            .await
            .unwrap(),
    )
}

/// Bytes whose `Serialize` refuses to encode an empty value (as a user's
/// type with a custom `Serialize` may).
#[derive(Clone, Debug, PartialEq)]
struct Picky(Vec<u8>);

impl Serialize for Picky {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.0.is_empty() {
            return Err(serde::ser::Error::custom("an empty Picky is not allowed"));
        }
        s.serialize_bytes(&self.0)
    }
}

impl<'de> Deserialize<'de> for Picky {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Vec::<u8>::deserialize(d).map(Picky)
    }
}

static LOOKUPS: AtomicU32 = AtomicU32::new(0);

#[derive(Default, Serialize, Deserialize)]
struct Store {
    items: Vec<Vec<u8>>,
}

#[derive(Serialize, Deserialize)]
enum StoreMsg {
    Put(Picky),
    /// Looks something up through a side effect whose result is `Picky`.
    Lookup {
        empty: bool,
    },
    Count,
}

impl DurableActor for Store {
    type Msg = StoreMsg;
    type Reply = usize;
    async fn handle(
        &mut self,
        ctx: &mut DurableContext<'_>,
        msg: StoreMsg,
    ) -> Result<usize, ActorError> {
        match msg {
            StoreMsg::Put(p) => self.items.push(p.0),
            StoreMsg::Lookup { empty } => {
                let found = ctx
                    .run("lookup", || async move {
                        LOOKUPS.fetch_add(1, Ordering::SeqCst);
                        Picky(if empty { vec![] } else { vec![1] })
                    })
                    .await?;
                self.items.push(found.0);
            }
            StoreMsg::Count => {}
        }
        Ok(self.items.len())
    }
}

fn kind(result: Result<usize, AskError>) -> Option<ActorErrorKind> {
    match result {
        Err(AskError::Failed(e)) => Some(e.kind()),
        _ => None,
    }
}

#[tokio::test]
async fn a_durable_actor_refuses_what_it_cannot_journal_and_replays_the_refusal() {
    let system = system("durable").await;
    let journal = JournalBackend::file(system.env(), Default::default())
        .await
        .unwrap();
    let spawn = |name: &str| {
        system.spawn(
            name,
            Durable::new(
                Store::default(),
                journal.clone(),
                DurabilityConfig::default(),
            ),
        )
    };
    let store = spawn("store").unwrap();
    assert_eq!(
        store.call("k1", StoreMsg::Put(Picky(vec![7])), WAIT).await,
        Ok(1)
    );
    // The message itself cannot be encoded: refused, nothing applied.
    assert_eq!(
        kind(store.call("k2", StoreMsg::Put(Picky(vec![])), WAIT).await),
        Some(ActorErrorKind::Unencodable)
    );
    assert_eq!(
        store.call("k3", StoreMsg::Count, WAIT).await,
        Ok(1),
        "the actor keeps running"
    );
    // A side effect's result cannot be encoded: the effect ran once and
    // the handler got the typed error; the refusal is journaled.
    assert_eq!(
        kind(
            store
                .call("k4", StoreMsg::Lookup { empty: true }, WAIT)
                .await
        ),
        Some(ActorErrorKind::Unencodable)
    );
    assert_eq!(LOOKUPS.load(Ordering::SeqCst), 1);
    assert_eq!(
        store
            .call("k5", StoreMsg::Lookup { empty: false }, WAIT)
            .await,
        Ok(2)
    );
    assert_eq!(LOOKUPS.load(Ordering::SeqCst), 2);

    // Recovery replays both lookups without running either effect again,
    // and the refused one's key still gets its error.
    store.stop();
    store.wait_exit().await;
    let store = spawn("store").unwrap();
    assert_eq!(store.call("k6", StoreMsg::Count, WAIT).await, Ok(2));
    assert_eq!(
        LOOKUPS.load(Ordering::SeqCst),
        2,
        "replay never re-runs a recorded effect"
    );
    assert!(
        kind(
            store
                .call("k4", StoreMsg::Lookup { empty: true }, WAIT)
                .await
        )
        .is_some()
    );
    assert_eq!(LOOKUPS.load(Ordering::SeqCst), 2);
    system.shutdown().await;
}

struct Echo;

impl Workflow for Echo {
    type Input = Picky;
    type Output = Picky;
    async fn run(&self, ctx: WorkflowContext, input: Picky) -> Result<Picky, WorkflowError> {
        let stepped: Picky = ctx
            .step("make", |_key| {
                let input = input.clone();
                async move { Ok(Picky(input.0.into_iter().skip(1).collect())) }
            })
            .await?;
        Ok(stepped)
    }
}

#[tokio::test]
async fn workflows_refuse_what_they_cannot_encode() {
    let system = system("workflow").await;
    let journal = JournalBackend::memory();
    let echo = Workflows::register(&system, WorkflowConfig::new("echo", journal), Echo).unwrap();
    // An input that cannot be encoded: refused before anything starts.
    let refused = RunId::new("acme", "empty").unwrap();
    assert!(matches!(
        echo.start(&refused, &Picky(vec![])).await,
        Err(WorkflowError::Encode(_))
    ));
    assert!(matches!(
        echo.status(&refused).await,
        Err(WorkflowError::NotFound(_))
    ));
    // A step whose result cannot be encoded fails the run for good.
    let run = RunId::new("acme", "one").unwrap();
    echo.start(&run, &Picky(vec![9])).await.unwrap();
    match echo.result(&run, WAIT).await {
        Err(WorkflowError::Ended(RunStatus::Failed { error, .. })) => {
            assert!(error.contains("cannot be encoded"), "{error}")
        }
        other => panic!("expected a failed run, got {other:?}"),
    }
    // A signal that cannot be encoded is refused.
    assert!(matches!(
        echo.signal(&run, "s", &Picky(vec![])).await,
        Err(WorkflowError::Encode(_))
    ));
    system.shutdown().await;
}
