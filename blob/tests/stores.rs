//! Stores from configuration: the conformance suite and the facet's
//! contract on a real S3-compatible server (`PLEXSPACES_S3`, started by
//! `scripts/test.sh` through `scripts/s3.sh`) and on local files; GCS and
//! Azure configurations built and refused without a network; bad
//! configuration refused by name.

#[path = "../../runtime/tests/contracts/blob.rs"]
mod blob_suite;

use blob_suite::{SUPPORTS_ALL, Supports, conformance, facet_contract};
use plexspaces::storage::disk::Disk;
use plexspaces::{Env, NodeName};
use plexspaces_blob::{BlobConfigError, BlobStoreConfig, open_blob_store};

fn endpoint() -> String {
    std::env::var("PLEXSPACES_S3").unwrap_or_else(|_| {
        panic!(
            "PLEXSPACES_S3 is not set: run ./scripts/test.sh (it starts a throwaway \
             S3-compatible server), or point PLEXSPACES_S3 at one with a bucket plexspaces-test"
        )
    })
}

fn s3(prefix: &str) -> BlobStoreConfig {
    BlobStoreConfig::url(format!(
        "s3://plexspaces-test/{prefix}-{}",
        std::process::id()
    ))
    .option("aws_endpoint", endpoint())
    .option("aws_allow_http", "true")
    .option("aws_region", "us-east-1")
    .option("aws_access_key_id", "test")
    .option("aws_secret_access_key", "test")
}

fn env() -> Env {
    Env::tokio(NodeName::new("blobs").unwrap())
}

#[tokio::test]
async fn s3_passes_the_conformance_suite_and_the_facet_contract() {
    let store = open_blob_store(&env(), &s3("conformance")).await.unwrap();
    // Copy-if-absent on S3 needs a server-specific setting
    // (`aws_copy_if_not_exists`); the test server is not told one.
    let supports = Supports {
        copy_if_not_exists: false,
        ..SUPPORTS_ALL
    };
    conformance(store.as_ref(), supports).await;
    let store = open_blob_store(&env(), &s3("facet")).await.unwrap();
    facet_contract(store).await;
}

#[tokio::test]
async fn local_files_pass_the_conformance_suite_and_the_facet_contract() {
    let dir = std::env::temp_dir().join(format!("plexspaces-blobs-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    // The directories are made through the node's disk.
    let node = env().with_data_dir(&dir).await.unwrap();
    for part in ["conformance", "facet"] {
        node.disk().subdir(part).await.unwrap();
    }
    let url = |part: &str| format!("file://{}", dir.join(part).display());
    let store = open_blob_store(&env(), &BlobStoreConfig::url(url("conformance")))
        .await
        .unwrap();
    // object_store's local file store keeps no attributes and has no
    // conditional update.
    let supports = Supports {
        attributes: false,
        update: false,
        copy_if_not_exists: true,
    };
    conformance(store.as_ref(), supports).await;
    let store = open_blob_store(&env(), &BlobStoreConfig::url(url("facet")))
        .await
        .unwrap();
    facet_contract(store).await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn every_kind_of_store_is_built_from_toml_and_mistakes_are_named() {
    let env = env();
    let built = |text: &'static str| {
        let env = env.clone();
        async move {
            let config = BlobStoreConfig::from_toml(text)?;
            open_blob_store(&env, &config).await.map(|_| ())
        }
    };
    // Cloud stores build without touching the network.
    built("url = \"gs://bucket/p\"\n[options]\ngoogle_skip_signature = \"true\"")
        .await
        .unwrap();
    assert!(matches!(
        built("url = \"gs://bucket/p\"\n[options]\ngoogle_service_account_key = \"not json\"")
            .await,
        Err(BlobConfigError::Refused(_))
    ));
    built("url = \"az://container/p\"\n[options]\nazure_storage_account_name = \"acct\"\nazure_storage_account_key = \"a2V5\"")
        .await
        .unwrap();
    built("url = \"memory://\"").await.unwrap();
    built("url = \"disk://blobs\"").await.unwrap();

    assert!(matches!(
        built("url = \"s3://b\"\n[options]\naws_secret_acess_key = \"typo\"").await,
        Err(BlobConfigError::UnknownOption { key, .. }) if key == "aws_secret_acess_key"
    ));
    assert!(matches!(
        built("url = \"memory://\"\n[options]\nx = \"1\"").await,
        Err(BlobConfigError::UnknownOption { .. })
    ));
    assert!(matches!(
        built("url = \"ftp://host/x\"").await,
        Err(BlobConfigError::BadUrl(_))
    ));
    assert!(matches!(
        built("url = \"disk://a/b\"").await,
        Err(BlobConfigError::BadUrl(_))
    ));
    assert!(matches!(
        built("url = \"memory://\"\nbucket = \"x\"").await,
        Err(BlobConfigError::Syntax(_))
    ));
    assert!(matches!(
        built("[options]").await,
        Err(BlobConfigError::Syntax(_))
    ));
}
