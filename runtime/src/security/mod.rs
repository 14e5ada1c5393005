//! Security: TLS between nodes and to the journal service, and the facets
//! that authenticate callers and authorize what they ask.
//!
//! - [`NodeTls`]: a node's TLS 1.3 material and context, loaded from PEM
//!   files through the `Disk` seam and reloadable without a restart; give
//!   it to [`DistributionConfig::with_tls`](crate::distribution::DistributionConfig::with_tls)
//!   and to the journal client and server.

mod tls;

pub use plexspaces_net::tls::{TlsError, TlsMaterial};
pub use tls::{NodeTls, TLS_FILE_MAX, TlsSource};
pub(crate) use tls::{Role, secure};
