//! Blob stores from configuration, for the `BlobStorageFacet`
//! (`plexspaces::capabilities::blob`): one URL and its options name any
//! store object_store implements, plus the node's own Disk-seam store.
//!
//! ```toml
//! url = "s3://receipts/prod"            # bucket, then a prefix
//! [options]
//! aws_region = "eu-west-1"
//! aws_endpoint = "http://127.0.0.1:9000" # an S3-compatible server
//! aws_allow_http = "true"
//! ```
//!
//! | URL | store |
//! |---|---|
//! | `memory://` | object_store's in-memory store |
//! | `disk://DIR` | [`DiskObjectStore`] in `DIR` of the node's data directory (runs in the simulator) |
//! | `file:///abs/path` | object_store's local file system store |
//! | `s3://bucket/prefix` | Amazon S3 or any S3-compatible server (`aws_*` options) |
//! | `gs://bucket/prefix` | Google Cloud Storage (`google_*` options) |
//! | `az://container/prefix`, `abfs://...` | Azure Blob Storage (`azure_*` options) |
//!
//! Option names are object_store's (`aws_access_key_id`, `google_service_account`,
//! `azure_storage_account_name`, ...): an unknown one is refused with its
//! name, so a typo never silently falls back to a default. Options not
//! given are read from the environment as object_store's builders do
//! (`AWS_ACCESS_KEY_ID`, ...). A path after the bucket confines the store
//! under that prefix.

use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::azure::{AzureConfigKey, MicrosoftAzureBuilder};
use object_store::gcp::{GoogleCloudStorageBuilder, GoogleConfigKey};
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::prefix::PrefixStore;
use object_store::{ObjectStore, ObjectStoreScheme};
use plexspaces::Env;
use plexspaces::capabilities::blob::DiskObjectStore;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use url::Url;

/// Which store, and its options.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct BlobStoreConfig {
    /// The store's URL (see the crate's table).
    pub url: String,
    /// object_store's options for that kind of store.
    #[serde(default)]
    pub options: BTreeMap<String, String>,
}

/// Why a store could not be built.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum BlobConfigError {
    /// The TOML did not parse or had an unknown key (the parser's text).
    Syntax(String),
    /// The URL is not one of the supported kinds.
    BadUrl(String),
    /// An option this kind of store does not have.
    UnknownOption {
        /// The kind of store.
        store: &'static str,
        /// The option as written.
        key: String,
    },
    /// The store refused its configuration (missing bucket, bad
    /// credentials format, ...), or the Disk-seam store could not open.
    Refused(String),
}

impl fmt::Display for BlobConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BlobConfigError::Syntax(why) => write!(f, "blob store configuration: {why}"),
            BlobConfigError::BadUrl(why) => write!(f, "blob store url: {why}"),
            BlobConfigError::UnknownOption { store, key } => {
                write!(f, "{store} has no option {key:?}")
            }
            BlobConfigError::Refused(why) => {
                write!(f, "blob store refused its configuration: {why}")
            }
        }
    }
}

impl std::error::Error for BlobConfigError {}

impl BlobStoreConfig {
    /// Parses `url = ...` and an `[options]` table.
    pub fn from_toml(text: &str) -> Result<Self, BlobConfigError> {
        toml::from_str(text).map_err(|e| BlobConfigError::Syntax(e.message().to_string()))
    }

    /// A store at `url` with no options.
    pub fn url(url: impl Into<String>) -> Self {
        BlobStoreConfig {
            url: url.into(),
            options: BTreeMap::new(),
        }
    }

    /// With option `key` set to `value`.
    pub fn option(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.options.insert(key.into(), value.into());
        self
    }
}

fn refused(e: impl fmt::Display) -> BlobConfigError {
    BlobConfigError::Refused(e.to_string())
}

/// Checks every option parses as `K`'s key.
fn known_keys<K: FromStr>(
    options: &BTreeMap<String, String>,
    store: &'static str,
) -> Result<Vec<(K, String)>, BlobConfigError> {
    options
        .iter()
        .map(|(key, value)| {
            K::from_str(key).map(|k| (k, value.clone())).map_err(|_| {
                BlobConfigError::UnknownOption {
                    store,
                    key: key.clone(),
                }
            })
        })
        .collect()
}

fn no_options(config: &BlobStoreConfig, store: &'static str) -> Result<(), BlobConfigError> {
    match config.options.keys().next() {
        Some(key) => Err(BlobConfigError::UnknownOption {
            store,
            key: key.clone(),
        }),
        None => Ok(()),
    }
}

/// Builds the store `config` names (`env` is the node's, for the
/// Disk-seam store).
pub async fn open_blob_store(
    env: &Env,
    config: &BlobStoreConfig,
) -> Result<Arc<dyn ObjectStore>, BlobConfigError> {
    if let Some(dir) = config.url.strip_prefix("disk://") {
        no_options(config, "the disk store")?;
        if dir.is_empty() || dir.contains('/') {
            return Err(BlobConfigError::BadUrl(format!(
                "{}: disk://DIR names one directory of the node's data directory",
                config.url
            )));
        }
        let store = DiskObjectStore::open(env, dir).await.map_err(refused)?;
        return Ok(Arc::new(store));
    }
    let url = Url::parse(&config.url)
        .map_err(|e| BlobConfigError::BadUrl(format!("{}: {e}", config.url)))?;
    let (scheme, prefix) = ObjectStoreScheme::parse(&url)
        .map_err(|e| BlobConfigError::BadUrl(format!("{}: {e}", config.url)))?;
    let store: Arc<dyn ObjectStore> = match scheme {
        ObjectStoreScheme::Memory => {
            no_options(config, "the memory store")?;
            return Ok(Arc::new(InMemory::new()));
        }
        ObjectStoreScheme::Local => {
            no_options(config, "the local file store")?;
            // The whole path is the root: nothing is left for a prefix.
            let root = url
                .to_file_path()
                .map_err(|_| BlobConfigError::BadUrl(format!("{}: not a file path", config.url)))?;
            let store = LocalFileSystem::new_with_prefix(root).map_err(refused)?;
            return Ok(Arc::new(store));
        }
        ObjectStoreScheme::AmazonS3 => {
            let mut builder = AmazonS3Builder::from_env().with_url(url.as_str());
            for (key, value) in known_keys::<AmazonS3ConfigKey>(&config.options, "S3")? {
                builder = builder.with_config(key, value);
            }
            Arc::new(builder.build().map_err(refused)?)
        }
        ObjectStoreScheme::GoogleCloudStorage => {
            let mut builder = GoogleCloudStorageBuilder::from_env().with_url(url.as_str());
            for (key, value) in known_keys::<GoogleConfigKey>(&config.options, "GCS")? {
                builder = builder.with_config(key, value);
            }
            Arc::new(builder.build().map_err(refused)?)
        }
        ObjectStoreScheme::MicrosoftAzure => {
            let mut builder = MicrosoftAzureBuilder::from_env().with_url(url.as_str());
            for (key, value) in known_keys::<AzureConfigKey>(&config.options, "Azure")? {
                builder = builder.with_config(key, value);
            }
            Arc::new(builder.build().map_err(refused)?)
        }
        other => {
            return Err(BlobConfigError::BadUrl(format!(
                "{}: {other:?} stores are not supported",
                config.url
            )));
        }
    };
    let prefix = Path::parse(prefix).map_err(|e| BlobConfigError::BadUrl(e.to_string()))?;
    if prefix.as_ref().is_empty() {
        Ok(store)
    } else {
        Ok(Arc::new(PrefixStore::new(store, prefix)))
    }
}
