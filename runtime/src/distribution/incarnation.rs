//! A node's incarnation: a number larger than any earlier run of the same
//! node used, so peers can tell a restarted node from a delayed message of
//! its previous run.
//!
//! Wall-clock time alone is not enough (a clock stepped back across a
//! restart would make the new run look older, and peers would ignore it),
//! so the last value is kept on the node's disk and the next one is
//! `max(last + 1, wall-clock nanoseconds)`.

use crate::Env;
use crate::seams::Clock;
use plexspaces_storage::disk::{Disk, DiskError, DiskErrorKind, DiskFile};

const FILE: &str = "node.incarnation";
const TMP: &str = "node.incarnation.tmp";

/// Reads the last incarnation, picks the next and makes it durable.
pub(crate) async fn next(env: &Env) -> Result<u64, DiskError> {
    let disk = env.disk();
    let last = match disk.open(FILE).await {
        Ok(file) => {
            let bytes = file.read_at(0, 8).await?;
            // A short or damaged file counts as no history: the wall clock
            // then decides, as on a first start.
            bytes.try_into().map(u64::from_le_bytes).unwrap_or(0)
        }
        Err(e) if e.is_not_found() => 0,
        Err(e) => return Err(e),
    };
    let wall = env
        .wall_clock()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let next = last.saturating_add(1).max(wall);
    match disk.remove(TMP).await {
        Ok(()) => {}
        Err(e) if e.is_not_found() => {}
        Err(e) => return Err(e),
    }
    let file = match disk.create(TMP).await {
        Ok(file) => file,
        Err(e) if e.kind() == DiskErrorKind::AlreadyExists => disk.open(TMP).await?,
        Err(e) => return Err(e),
    };
    file.write_at_and_sync(0, &next.to_le_bytes()).await?;
    disk.rename(TMP, FILE).await?;
    disk.sync_dir().await?;
    Ok(next)
}
