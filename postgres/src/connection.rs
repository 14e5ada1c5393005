//! One client to the database, re-established on the next request after
//! it breaks; the journal and the key-value store each hold one.

use plexspaces::Env;
use plexspaces::seams::Spawn;
use std::sync::Arc;
use tokio_postgres::{Client, NoTls};

pub(crate) struct Reconnecting {
    env: Env,
    connection: String,
    client: futures::lock::Mutex<Option<Arc<Client>>>,
}

impl Reconnecting {
    pub(crate) fn new(env: Env, connection: String) -> Self {
        Reconnecting {
            env,
            connection,
            client: futures::lock::Mutex::new(None),
        }
    }

    /// The live client, reconnecting if the last one broke (the
    /// connection's driver runs on the node's spawner).
    pub(crate) async fn client(&self) -> Result<Arc<Client>, tokio_postgres::Error> {
        let mut slot = self.client.lock().await;
        if let Some(client) = slot.as_ref().filter(|c| !c.is_closed()) {
            return Ok(client.clone());
        }
        let (client, connection) = tokio_postgres::connect(&self.connection, NoTls).await?;
        self.env.spawn_task(Box::pin(async move {
            if let Err(e) = connection.await {
                tracing::warn!("postgres connection ended: {e}");
            }
        }));
        let client = Arc::new(client);
        *slot = Some(client.clone());
        Ok(client)
    }
}

/// The server's own message, which says more than the driver's "db error".
pub(crate) fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("postgres: {}: {}", db.code().code(), db.message()),
        None => format!("postgres: {e}"),
    }
}
