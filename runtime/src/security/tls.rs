//! A node's TLS: its material loaded (from files through the `Disk` seam,
//! or given), the rustls context built on its seams, reloads, and the
//! wrapping of a connection's halves for the node links and the journal
//! service.
//!
//! One [`NodeTls`] serves a node's distribution, its journal client and a
//! journal server alike. A reload builds a new context from the files as
//! they are now; connections made before it keep theirs, new ones use the
//! new one. A reload that fails (a half-written file, a key that does not
//! match its certificate) keeps the old context and says why.

use crate::env::Env;
use crate::seams::{Clock, JoinHandle, Rng};
use plexspaces_net::tls::{self, CertificateDer, TlsContext, TlsError, TlsMaterial};
use plexspaces_net::{DynReader, DynWriter};
use plexspaces_storage::disk::{Disk, DiskFile, DynDisk};
use plexspaces_storage::sync::LockExt;
use sha2::{Digest, Sha256};
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Largest PEM file read (a CA bundle of a few hundred certificates).
pub const TLS_FILE_MAX: u64 = 1024 * 1024;

/// Where a node's TLS material comes from.
#[derive(Clone)]
pub enum TlsSource {
    /// Three PEM files in one directory (the CA bundle, the node's
    /// certificate chain, its private key), read through the `Disk` seam
    /// at load and at every reload.
    Files {
        /// The directory.
        disk: DynDisk,
        /// The CA bundle's file name.
        ca: String,
        /// The certificate chain's file name.
        cert: String,
        /// The private key's file name.
        key: String,
    },
    /// Material already in memory (never reloaded from anywhere).
    Material(TlsMaterial),
}

impl fmt::Debug for TlsSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsSource::Files { ca, cert, key, .. } => f
                .debug_struct("Files")
                .field("ca", ca)
                .field("cert", cert)
                .field("key", key)
                .finish(),
            TlsSource::Material(m) => f.debug_tuple("Material").field(m).finish(),
        }
    }
}

impl TlsSource {
    /// `ca`, `cert` and `key` (file names) in the directory `disk`.
    pub fn files(disk: impl Disk, ca: &str, cert: &str, key: &str) -> Self {
        TlsSource::Files {
            disk: DynDisk::new(disk),
            ca: ca.into(),
            cert: cert.into(),
            key: key.into(),
        }
    }
}

async fn read_pem(disk: &DynDisk, name: &str) -> Result<Vec<u8>, TlsError> {
    let failed = |e: &dyn fmt::Display| TlsError::Config(format!("{name}: {e}"));
    let file = disk.open(name).await.map_err(|e| failed(&e))?;
    let size = file.size().await.map_err(|e| failed(&e))?;
    if size > TLS_FILE_MAX {
        return Err(failed(&format!(
            "{size} bytes, more than the {TLS_FILE_MAX} a PEM file may have"
        )));
    }
    file.read_at(0, size as usize).await.map_err(|e| failed(&e))
}

/// The material and a digest of the bytes it came from (a reload that
/// reads the same bytes changes nothing).
async fn load(source: &TlsSource) -> Result<(TlsMaterial, [u8; 32]), TlsError> {
    match source {
        TlsSource::Material(material) => Ok((material.clone(), [0; 32])),
        TlsSource::Files {
            disk,
            ca,
            cert,
            key,
        } => {
            let ca = read_pem(disk, ca).await?;
            let cert = read_pem(disk, cert).await?;
            let key = read_pem(disk, key).await?;
            let mut digest = Sha256::new();
            for part in [&ca, &cert, &key] {
                digest.update((part.len() as u64).to_le_bytes());
                digest.update(part);
            }
            let material = TlsMaterial::from_pem(&ca, &cert, &key)?;
            Ok((material, digest.finalize().into()))
        }
    }
}

struct Loaded {
    context: TlsContext,
    digest: [u8; 32],
    /// Reloads that changed the context.
    reloads: u64,
}

/// A node's TLS, loaded and reloadable. Cheap to share (`Arc`).
pub struct NodeTls {
    env: Env,
    source: TlsSource,
    loaded: Mutex<Loaded>,
}

impl fmt::Debug for NodeTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NodeTls")
            .field("node", self.env.node())
            .field("source", &self.source)
            .finish()
    }
}

/// Which side of a connection this node is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Role {
    /// It dialed.
    Dialer,
    /// It accepted.
    Acceptor,
}

/// A connection's halves and, over TLS, the peer's certificate.
pub(crate) type Halves = (DynReader, DynWriter, Option<CertificateDer<'static>>);

/// Runs the TLS handshake for `role` over a connection's halves when `tls`
/// is configured; without it, returns them as they are.
pub(crate) async fn secure(
    tls: Option<&NodeTls>,
    role: Role,
    reader: DynReader,
    writer: DynWriter,
) -> Result<Halves, TlsError> {
    let Some(tls) = tls else {
        return Ok((reader, writer, None));
    };
    let context = tls.context();
    let streams = match role {
        Role::Dialer => tls::connect(&context, reader, writer).await?,
        Role::Acceptor => tls::accept(&context, reader, writer).await?,
    };
    Ok((
        DynReader::new(streams.reader),
        DynWriter::new(streams.writer),
        Some(streams.peer_certificate),
    ))
}

/// What rustls draws on, from `env`'s seams: randomness from its `Rng`,
/// the time certificates are judged at from its wall clock.
pub(crate) fn seam_sources(
    env: &Env,
) -> (
    plexspaces_net::tls::RandomSource,
    plexspaces_net::tls::WallClock,
) {
    let rng = env.clone();
    let clock = env.clone();
    (
        Arc::new(move |buf: &mut [u8]| rng.fill_bytes(buf)),
        Arc::new(move || clock.wall_clock()),
    )
}

impl NodeTls {
    /// Loads the material and builds the context on `env`'s seams
    /// (randomness from its `Rng`, certificate validity on its wall
    /// clock). Fails if the material is unusable or the node's own
    /// certificate does not chain to the bundle or is not valid now.
    pub async fn load(env: &Env, source: TlsSource) -> Result<Arc<NodeTls>, TlsError> {
        let (material, digest) = load(&source).await?;
        let context = Self::build(env, &material)?;
        Ok(Arc::new(NodeTls {
            env: env.clone(),
            source,
            loaded: Mutex::new(Loaded {
                context,
                digest,
                reloads: 0,
            }),
        }))
    }

    fn build(env: &Env, material: &TlsMaterial) -> Result<TlsContext, TlsError> {
        let (random, wall_clock) = seam_sources(env);
        TlsContext::new(material, random, wall_clock)
    }

    /// Reads the files again and, if they changed, builds a new context
    /// for the connections made from now on. `Ok(true)` if it changed; on
    /// an error the old context stays.
    pub async fn reload(&self) -> Result<bool, TlsError> {
        let (material, digest) = load(&self.source).await?;
        if matches!(self.source, TlsSource::Files { .. }) && self.loaded.locked().digest == digest {
            return Ok(false);
        }
        let context = Self::build(&self.env, &material)?;
        let mut loaded = self.loaded.locked();
        *loaded = Loaded {
            context,
            digest,
            reloads: loaded.reloads + 1,
        };
        drop(loaded);
        tracing::info!(node = %self.env.node(), "TLS material reloaded");
        Ok(true)
    }

    /// Reloads every `every` (on the node's clock) until the handle is
    /// aborted; a failed reload is logged and the old context kept.
    pub fn reload_every(self: &Arc<Self>, every: Duration) -> JoinHandle<()> {
        let tls = self.clone();
        self.env.spawn(async move {
            loop {
                tls.env.sleep(every).await;
                if let Err(e) = tls.reload().await {
                    tracing::warn!(node = %tls.env.node(), "TLS reload failed, keeping the old material: {e}");
                }
            }
        })
    }

    /// How many reloads changed the context since the load.
    pub fn reloads(&self) -> u64 {
        self.loaded.locked().reloads
    }

    fn context(&self) -> TlsContext {
        self.loaded.locked().context.clone()
    }
}
