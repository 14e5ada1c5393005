//! The simulated disk: an in-memory `Disk` per node that outlives the
//! node's crashes and fails the way real disks and file systems do.
//!
//! Each file has two images: `durable` (what is on the platter) and `cache`
//! (what reads see: durable plus unsynced writes). Writes since the last
//! `sync_data` wait in `pending`; directory changes since the last
//! `sync_dir` wait in the directory's `log`. A crash ([`SimDisk::crash`])
//! decides, from the seed, what of each reached the platter.
//!
//! Fault classes (each off unless given a probability in [`DiskFaults`]):
//! lost or torn unsynced writes on crash; a grown size surviving without its
//! data; unsynced directory changes lost on crash; `sync_data` failing and
//! dropping the dirty data (a later sync then "succeeds": the lying retry);
//! read errors; bit flips at rest; misdirected and lost writes; no space.

use crate::trace::{Event, Trace};
use plexspaces_storage::disk::{
    Disk, DiskError, DiskErrorKind, DiskFile, validate_name, validate_read_len,
};
use plexspaces_storage::sync::LockExt;
use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::{RngCore, SeedableRng};
use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// Sector size: the unit a torn or misdirected write works in.
pub const SECTOR_BYTES: usize = 512;

/// Probabilities of each disk fault class (0 = never).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DiskFaults {
    /// On crash, a file's unsynced writes are all lost.
    pub crash_lose_unsynced: f64,
    /// On crash, a file's unsynced writes are torn: each 512-byte sector of
    /// them survives or not, independently.
    pub crash_tear_unsynced: f64,
    /// On crash, a file that grew keeps its new size but the new bytes read
    /// as zeros.
    pub crash_size_without_data: f64,
    /// On crash, a directory loses the changes since its last `sync_dir`
    /// (a random suffix of them).
    pub crash_lose_dir_changes: f64,
    /// `sync_data` fails with an I/O error and its dirty data is dropped.
    pub sync_error: f64,
    /// A read fails with an I/O error (a latent sector error; transient).
    pub read_error: f64,
    /// On crash, one bit flips somewhere at rest. Unrecoverable for a
    /// single copy of the data.
    pub bit_flip_at_rest: f64,
    /// A write lands at another sector-aligned offset on the platter
    /// (reads before a crash still see it in place). Unrecoverable.
    pub misdirected_write: f64,
    /// A write is acknowledged but never reaches the platter. Unrecoverable.
    pub lost_write: f64,
    /// Total bytes the disk holds; writes past it fail with `NoSpace`.
    pub capacity_bytes: Option<u64>,
}

impl DiskFaults {
    /// No faults: the disk loses nothing, even on crash.
    pub fn none() -> Self {
        Self::default()
    }

    /// Every recoverable class, at rates that bite within a few crashes.
    pub fn recoverable() -> Self {
        DiskFaults {
            crash_lose_unsynced: 0.3,
            crash_tear_unsynced: 0.3,
            crash_size_without_data: 0.2,
            crash_lose_dir_changes: 0.5,
            sync_error: 0.01,
            read_error: 0.0,
            ..Self::default()
        }
    }

    /// The recoverability guard: switches off the classes that no correct
    /// system keeping a single copy can survive (bit flips at rest,
    /// misdirected and lost writes), unless the scenario asks for them.
    pub fn guarded(mut self, allow_unrecoverable: bool) -> Self {
        if !allow_unrecoverable {
            self.bit_flip_at_rest = 0.0;
            self.misdirected_write = 0.0;
            self.lost_write = 0.0;
        }
        self
    }
}

/// How long disk operations take in virtual time. Taking time is what lets
/// a crash land between a write and its sync, as on a real machine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiskLatency {
    /// A read or write.
    pub io: Range<Duration>,
    /// A `sync_data` or `sync_dir`.
    pub sync: Range<Duration>,
}

impl DiskLatency {
    /// Instant operations (for unit tests of the disk itself).
    pub fn none() -> Self {
        DiskLatency {
            io: Duration::ZERO..Duration::ZERO,
            sync: Duration::ZERO..Duration::ZERO,
        }
    }

    /// An SSD: 5–50 µs reads and writes, 0.2–2 ms syncs.
    pub fn ssd() -> Self {
        DiskLatency {
            io: Duration::from_micros(5)..Duration::from_micros(50),
            sync: Duration::from_micros(200)..Duration::from_millis(2),
        }
    }
}

/// How many faults of each class the disk injected.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FaultCounts {
    /// Crashes.
    pub crashes: u64,
    /// Files whose unsynced writes were all lost on a crash.
    pub lost_unsynced: u64,
    /// Files whose unsynced writes were torn on a crash.
    pub torn_unsynced: u64,
    /// Files that kept a grown size without its data.
    pub size_without_data: u64,
    /// Directories that lost unsynced changes.
    pub lost_dir_changes: u64,
    /// Failed syncs.
    pub sync_errors: u64,
    /// Failed reads.
    pub read_errors: u64,
    /// Bits flipped at rest.
    pub bit_flips: u64,
    /// Misdirected writes.
    pub misdirected_writes: u64,
    /// Lost writes.
    pub lost_writes: u64,
    /// Writes refused for lack of space.
    pub no_space: u64,
}

/// A write fault armed on demand for the next write in one directory
/// ([`SimDisk::arm_write_fault`]): the write is acknowledged, also by the
/// `sync_data` after it, but its bytes never reach the platter where they
/// should.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteFault {
    /// The bytes never reach the platter.
    Lost,
    /// The bytes land on another sector of the same file.
    Misdirected,
}

/// Where an armed [`WriteFault`] hit: the file (by the name this
/// directory durably gives it now, `None` once it was removed or if it
/// was never durably named) and the offset the write was meant for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WriteFaultHit {
    /// The fault that hit.
    pub fault: WriteFault,
    /// The file's durable name now, if it has one.
    pub file: Option<String>,
    /// Where in the file the write was meant to go.
    pub offset: u64,
}

/// A simulated node's disk. Clones share it; it survives the node's
/// crashes, which is the point.
#[derive(Clone)]
pub struct SimDisk {
    state: Arc<Mutex<DiskState>>,
    path: Arc<str>,
}

/// A file of a [`SimDisk`].
pub struct SimFile {
    state: Arc<Mutex<DiskState>>,
    id: u64,
    name: Arc<str>,
    /// The directory the file was opened in (an armed write fault's
    /// target is a directory).
    dir: Arc<str>,
}

struct DiskState {
    rng: ChaCha8Rng,
    faults: DiskFaults,
    latency: DiskLatency,
    trace: Arc<Trace>,
    next_id: u64,
    files: BTreeMap<u64, FileData>,
    dirs: BTreeMap<String, Dir>,
    counts: FaultCounts,
    armed: Option<Armed>,
}

/// A one-shot write fault: its directory, and once it fired, the file id
/// and offset it hit.
struct Armed {
    dir: String,
    fault: WriteFault,
    hit: Option<(u64, u64)>,
}

#[derive(Default)]
struct FileData {
    durable: Vec<u8>,
    cache: Vec<u8>,
    pending: Vec<Pending>,
}

enum Pending {
    Write {
        offset: u64,
        data: Vec<u8>,
        fate: Fate,
    },
    SetLen(u64),
}

#[derive(Clone, Copy)]
enum Fate {
    Normal,
    Lost,
    Misdirected(u64),
}

#[derive(Clone, Default)]
struct Dir {
    entries: BTreeMap<String, u64>,
    durable: BTreeMap<String, u64>,
    log: Vec<DirOp>,
}

#[derive(Clone)]
enum DirOp {
    Create(String, u64),
    Rename(String, String),
    Remove(String),
}

impl DirOp {
    fn apply(&self, entries: &mut BTreeMap<String, u64>) {
        match self {
            DirOp::Create(name, id) => {
                entries.insert(name.clone(), *id);
            }
            DirOp::Rename(from, to) => {
                if let Some(id) = entries.remove(from) {
                    entries.insert(to.clone(), id);
                }
            }
            DirOp::Remove(name) => {
                entries.remove(name);
            }
        }
    }
}

impl DiskState {
    fn chance(&mut self, probability: f64) -> bool {
        if probability <= 0.0 {
            return false;
        }
        let unit = (self.rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        unit < probability
    }

    fn draw_delay(&mut self, range: &Range<Duration>) -> Duration {
        let span = range.end.saturating_sub(range.start).as_nanos() as u64;
        range.start + Duration::from_nanos(self.below(span))
    }

    fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.rng.next_u64() % n }
    }

    fn used_bytes(&self) -> u64 {
        self.files.values().map(|f| f.cache.len() as u64).sum()
    }

    fn trace_op(&self, op: u64, id: u64, a: u64, b: u64) {
        self.trace.record(
            Event::DiskOp,
            op ^ id.rotate_left(8) ^ a.rotate_left(24) ^ b.rotate_left(44),
        );
    }

    fn dir(&mut self, path: &str) -> &mut Dir {
        self.dirs.entry(path.to_string()).or_default()
    }
}

fn apply_write(image: &mut Vec<u8>, offset: u64, data: &[u8]) {
    let end = offset as usize + data.len();
    if image.len() < end {
        image.resize(end, 0);
    }
    image[offset as usize..end].copy_from_slice(data);
}

impl SimDisk {
    /// A fresh, empty disk whose faults are drawn from `seed`.
    pub fn new(seed: u64, faults: DiskFaults, trace: Arc<Trace>) -> Self {
        let mut dirs = BTreeMap::new();
        dirs.insert(String::new(), Dir::default());
        SimDisk {
            state: Arc::new(Mutex::new(DiskState {
                rng: ChaCha8Rng::seed_from_u64(seed),
                faults,
                latency: DiskLatency::none(),
                trace,
                next_id: 1,
                files: BTreeMap::new(),
                dirs,
                counts: FaultCounts::default(),
                armed: None,
            })),
            path: "".into(),
        }
    }

    fn state(&self) -> MutexGuard<'_, DiskState> {
        self.state.locked()
    }

    /// Makes operations take virtual time (the default is none).
    pub fn set_latency(&self, latency: DiskLatency) {
        self.state().latency = latency;
    }

    /// Replaces the fault probabilities (the nemesis turns them off for
    /// the quiet period).
    pub fn set_faults(&self, faults: DiskFaults) {
        self.state().faults = faults;
    }

    /// The faults injected so far.
    pub fn fault_counts(&self) -> FaultCounts {
        self.state().counts
    }

    /// Damage at rest, on demand: flips one bit, chosen from the disk's
    /// seed, of a file this directory durably names and that has durable
    /// bytes. Reads see the flip at once (as after the cache let go of the
    /// page). Returns the file's name and the flipped byte's offset, or
    /// `None` if the directory names no such file.
    pub fn flip_bit_at_rest(&self) -> Option<(String, u64)> {
        let mut guard = self.state();
        let state = &mut *guard;
        let named: Vec<(String, u64)> = state
            .dirs
            .get(&*self.path)?
            .durable
            .iter()
            .filter(|(_, id)| state.files.get(id).is_some_and(|f| !f.durable.is_empty()))
            .map(|(name, id)| (name.clone(), *id))
            .collect();
        if named.is_empty() {
            return None;
        }
        let (name, id) = named[state.below(named.len() as u64) as usize].clone();
        let len = state.files[&id].durable.len() as u64;
        let bit = state.below(len * 8);
        let (byte, mask) = ((bit / 8) as usize, 1u8 << (bit % 8));
        let file = state
            .files
            .get_mut(&id)
            .expect("a named file's data exists");
        file.durable[byte] ^= mask;
        if let Some(cached) = file.cache.get_mut(byte) {
            *cached ^= mask;
        }
        state.counts.bit_flips += 1;
        state.trace.record(Event::Fault, 0xF11B ^ bit);
        Some((name, byte as u64))
    }

    /// Arms a one-shot write fault: the next write to a file of this
    /// directory is lost or misdirected (whatever the fault
    /// probabilities), and still acknowledged. Replaces a fault armed
    /// before. [`write_fault_hit`](Self::write_fault_hit) tells where it hit.
    pub fn arm_write_fault(&self, fault: WriteFault) {
        self.state().armed = Some(Armed {
            dir: self.path.to_string(),
            fault,
            hit: None,
        });
    }

    /// Where the armed write fault hit, once a write set it off.
    pub fn write_fault_hit(&self) -> Option<WriteFaultHit> {
        let state = self.state();
        let armed = state.armed.as_ref()?;
        let (id, offset) = armed.hit?;
        let file = state.dirs.get(&armed.dir).and_then(|dir| {
            dir.durable
                .iter()
                .find(|(_, named)| **named == id)
                .map(|(name, _)| name.clone())
        });
        Some(WriteFaultHit {
            fault: armed.fault,
            file,
            offset,
        })
    }

    /// The node crashed: decide what of the unsynced writes and directory
    /// changes reached the platter, and forget the rest.
    pub fn crash(&self) {
        let mut guard = self.state();
        let state = &mut *guard;
        state.counts.crashes += 1;
        state.trace.record(Event::Fault, 0xC0A5);
        let ids: Vec<u64> = state.files.keys().copied().collect();
        for id in ids {
            let pending = std::mem::take(&mut state.files.get_mut(&id).expect("id").pending);
            let grown = {
                let file = &state.files[&id];
                file.cache.len() > file.durable.len()
            };
            let (lose, tear) = if pending.is_empty() {
                (false, false)
            } else {
                let lose = state.chance(state.faults.crash_lose_unsynced);
                let tear = !lose && state.chance(state.faults.crash_tear_unsynced);
                (lose, tear)
            };
            if lose {
                state.counts.lost_unsynced += 1;
            } else {
                if tear {
                    state.counts.torn_unsynced += 1;
                }
                for op in &pending {
                    match op {
                        Pending::SetLen(len) => {
                            if !tear || state.chance(0.5) {
                                state
                                    .files
                                    .get_mut(&id)
                                    .expect("id")
                                    .durable
                                    .resize(*len as usize, 0);
                            }
                        }
                        Pending::Write { offset, data, fate } => {
                            let target = match fate {
                                Fate::Normal => *offset,
                                Fate::Lost => continue,
                                Fate::Misdirected(to) => *to,
                            };
                            let mut at = 0;
                            while at < data.len() {
                                // Sectors are aligned to the file, not the write.
                                let abs = target as usize + at;
                                let sector_end = ((abs / SECTOR_BYTES) + 1) * SECTOR_BYTES;
                                let end = (at + sector_end - abs).min(data.len());
                                if !tear || state.chance(0.5) {
                                    let durable =
                                        &mut state.files.get_mut(&id).expect("id").durable;
                                    apply_write(durable, abs as u64, &data[at..end]);
                                }
                                at = end;
                            }
                        }
                    }
                }
            }
            let size_kept =
                grown && (lose || tear) && state.chance(state.faults.crash_size_without_data);
            let file = state.files.get_mut(&id).expect("id");
            if size_kept && file.cache.len() > file.durable.len() {
                let len = file.cache.len();
                file.durable.resize(len, 0);
                state.counts.size_without_data += 1;
            }
        }
        if state.chance(state.faults.bit_flip_at_rest) {
            let candidates: Vec<u64> = state
                .files
                .iter()
                .filter(|(_, f)| !f.durable.is_empty())
                .map(|(id, _)| *id)
                .collect();
            if !candidates.is_empty() {
                let id = candidates[state.below(candidates.len() as u64) as usize];
                let len = state.files[&id].durable.len() as u64;
                let bit = state.below(len * 8);
                state.files.get_mut(&id).expect("id").durable[(bit / 8) as usize] ^= 1 << (bit % 8);
                state.counts.bit_flips += 1;
            }
        }
        for file in state.files.values_mut() {
            file.cache = file.durable.clone();
        }
        let paths: Vec<String> = state.dirs.keys().cloned().collect();
        for path in paths {
            let log_len = state.dirs[&path].log.len() as u64;
            let kept = if log_len > 0 && state.chance(state.faults.crash_lose_dir_changes) {
                state.counts.lost_dir_changes += 1;
                state.below(log_len) as usize
            } else {
                log_len as usize
            };
            let dir = state.dir(&path);
            let mut entries = dir.durable.clone();
            for op in &dir.log[..kept] {
                op.apply(&mut entries);
            }
            dir.entries = entries.clone();
            dir.durable = entries;
            dir.log.clear();
        }
        // Files no directory names any more are gone.
        let named: std::collections::BTreeSet<u64> = state
            .dirs
            .values()
            .flat_map(|d| d.entries.values().copied())
            .collect();
        state.files.retain(|id, _| named.contains(id));
    }

    fn child(&self, name: &str) -> String {
        if self.path.is_empty() {
            name.to_string()
        } else {
            format!("{}/{name}", self.path)
        }
    }

    fn file(&self, id: u64, name: &str) -> SimFile {
        SimFile {
            state: self.state.clone(),
            id,
            name: name.into(),
            dir: self.path.clone(),
        }
    }
}

impl Disk for SimDisk {
    type File = SimFile;

    async fn create(&self, name: &str) -> Result<SimFile, DiskError> {
        validate_name(name)?;
        let mut state = self.state();
        let subdir_taken = state.dirs.contains_key(&self.child(name));
        let dir = state.dir(&self.path);
        if dir.entries.contains_key(name) || subdir_taken {
            return Err(DiskError::new(DiskErrorKind::AlreadyExists, "create", name));
        }
        let id = state.next_id;
        state.next_id += 1;
        state.files.insert(id, FileData::default());
        let dir = state.dir(&self.path);
        dir.entries.insert(name.to_string(), id);
        dir.log.push(DirOp::Create(name.to_string(), id));
        state.trace_op(1, id, 0, 0);
        Ok(self.file(id, name))
    }

    async fn open(&self, name: &str) -> Result<SimFile, DiskError> {
        validate_name(name)?;
        let mut state = self.state();
        let id = state.dir(&self.path).entries.get(name).copied();
        let id = id.ok_or_else(|| DiskError::new(DiskErrorKind::NotFound, "open", name))?;
        state.trace_op(2, id, 0, 0);
        Ok(self.file(id, name))
    }

    async fn list(&self) -> Result<Vec<String>, DiskError> {
        let mut state = self.state();
        let names: Vec<String> = state.dir(&self.path).entries.keys().cloned().collect();
        state.trace_op(3, names.len() as u64, 0, 0);
        Ok(names)
    }

    async fn rename(&self, from: &str, to: &str) -> Result<(), DiskError> {
        validate_name(from)?;
        validate_name(to)?;
        let mut state = self.state();
        let dir = state.dir(&self.path);
        let id = dir
            .entries
            .remove(from)
            .ok_or_else(|| DiskError::new(DiskErrorKind::NotFound, "rename", from))?;
        dir.entries.insert(to.to_string(), id);
        dir.log
            .push(DirOp::Rename(from.to_string(), to.to_string()));
        state.trace_op(4, id, 0, 0);
        Ok(())
    }

    async fn remove(&self, name: &str) -> Result<(), DiskError> {
        validate_name(name)?;
        let mut state = self.state();
        let dir = state.dir(&self.path);
        let id = dir
            .entries
            .remove(name)
            .ok_or_else(|| DiskError::new(DiskErrorKind::NotFound, "remove", name))?;
        dir.log.push(DirOp::Remove(name.to_string()));
        state.trace_op(5, id, 0, 0);
        Ok(())
    }

    async fn sync_dir(&self) -> Result<(), DiskError> {
        take_time(&self.state, true).await;
        let mut state = self.state();
        let dir = state.dir(&self.path);
        dir.durable = dir.entries.clone();
        dir.log.clear();
        state.trace_op(6, 0, 0, 0);
        Ok(())
    }

    async fn subdir(&self, name: &str) -> Result<SimDisk, DiskError> {
        validate_name(name)?;
        let path = self.child(name);
        let mut state = self.state();
        if state.dir(&self.path).entries.contains_key(name) {
            return Err(DiskError::new(DiskErrorKind::AlreadyExists, "subdir", name));
        }
        // Like `FsDisk::subdir`, creating a directory makes it durable at once.
        state.dir(&path);
        state.trace_op(7, 0, 0, 0);
        Ok(SimDisk {
            state: self.state.clone(),
            path: path.into(),
        })
    }
}

/// Waits the latency of one operation, drawn from the disk's seed. The
/// operation takes effect after the wait: a crash during it means it never
/// happened.
async fn take_time(state: &Arc<Mutex<DiskState>>, sync: bool) {
    let delay = {
        let mut state = state.locked();
        let range = if sync {
            state.latency.sync.clone()
        } else {
            state.latency.io.clone()
        };
        state.draw_delay(&range)
    };
    if !delay.is_zero() {
        madsim::time::sleep(delay).await;
    }
}

impl SimFile {
    fn state(&self) -> MutexGuard<'_, DiskState> {
        self.state.locked()
    }

    fn missing(&self, op: &'static str) -> DiskError {
        DiskError::new(DiskErrorKind::NotFound, op, &*self.name)
    }

    fn write(&self, op: &'static str, offset: Option<u64>, data: &[u8]) -> Result<u64, DiskError> {
        let mut guard = self.state();
        let state = &mut *guard;
        let old_len = state
            .files
            .get(&self.id)
            .ok_or_else(|| self.missing(op))?
            .cache
            .len() as u64;
        let offset = offset.unwrap_or(old_len);
        let new_len = old_len.max(offset + data.len() as u64);
        if let Some(capacity) = state.faults.capacity_bytes
            && state.used_bytes() - old_len + new_len > capacity
        {
            state.counts.no_space += 1;
            state.trace.record(Event::Fault, 0x5FAC);
            return Err(DiskError::new(DiskErrorKind::NoSpace, op, &*self.name));
        }
        let armed = state
            .armed
            .as_mut()
            .filter(|a| a.hit.is_none() && *a.dir == *self.dir)
            .map(|a| {
                a.hit = Some((self.id, offset));
                a.fault
            });
        let fate = if armed == Some(WriteFault::Lost) || state.chance(state.faults.lost_write) {
            state.counts.lost_writes += 1;
            Fate::Lost
        } else if armed == Some(WriteFault::Misdirected)
            || state.chance(state.faults.misdirected_write)
        {
            state.counts.misdirected_writes += 1;
            let sectors = new_len / SECTOR_BYTES as u64 + 1;
            let mut to = state.below(sectors) * SECTOR_BYTES as u64;
            if to == offset {
                to += SECTOR_BYTES as u64;
            }
            Fate::Misdirected(to)
        } else {
            Fate::Normal
        };
        state.trace_op(8, self.id, offset, data.len() as u64);
        let file = state.files.get_mut(&self.id).expect("checked above");
        apply_write(&mut file.cache, offset, data);
        file.pending.push(Pending::Write {
            offset,
            data: data.to_vec(),
            fate,
        });
        Ok(offset)
    }
}

impl DiskFile for SimFile {
    async fn read_at(&self, offset: u64, len: usize) -> Result<Vec<u8>, DiskError> {
        validate_read_len(len, &self.name)?;
        take_time(&self.state, false).await;
        let mut guard = self.state();
        let state = &mut *guard;
        if !state.files.contains_key(&self.id) {
            return Err(self.missing("read_at"));
        }
        if state.chance(state.faults.read_error) {
            state.counts.read_errors += 1;
            state.trace.record(Event::Fault, 0x8EAD);
            return Err(DiskError::new(DiskErrorKind::Io, "read_at", &*self.name));
        }
        state.trace_op(9, self.id, offset, len as u64);
        let cache = &state.files[&self.id].cache;
        let start = (offset as usize).min(cache.len());
        let end = start.saturating_add(len).min(cache.len());
        Ok(cache[start..end].to_vec())
    }

    async fn write_at(&self, offset: u64, data: &[u8]) -> Result<(), DiskError> {
        take_time(&self.state, false).await;
        self.write("write_at", Some(offset), data).map(drop)
    }

    async fn append(&self, data: &[u8]) -> Result<u64, DiskError> {
        take_time(&self.state, false).await;
        self.write("append", None, data)
    }

    async fn size(&self) -> Result<u64, DiskError> {
        let state = self.state();
        let file = state
            .files
            .get(&self.id)
            .ok_or_else(|| self.missing("size"))?;
        Ok(file.cache.len() as u64)
    }

    async fn set_len(&self, len: u64) -> Result<(), DiskError> {
        let mut state = self.state();
        state.trace_op(10, self.id, len, 0);
        let file = state
            .files
            .get_mut(&self.id)
            .ok_or_else(|| self.missing("set_len"))?;
        file.cache.resize(len as usize, 0);
        file.pending.push(Pending::SetLen(len));
        Ok(())
    }

    async fn sync_data(&self) -> Result<(), DiskError> {
        take_time(&self.state, true).await;
        let mut guard = self.state();
        let state = &mut *guard;
        if !state.files.contains_key(&self.id) {
            return Err(self.missing("sync_data"));
        }
        state.trace_op(11, self.id, 0, 0);
        if state.chance(state.faults.sync_error) {
            // fsyncgate: the dirty data is dropped, not retried; the cache
            // still shows it until the next crash.
            state.counts.sync_errors += 1;
            state.trace.record(Event::Fault, 0x5EC);
            state
                .files
                .get_mut(&self.id)
                .expect("checked")
                .pending
                .clear();
            return Err(DiskError::new(DiskErrorKind::Io, "sync_data", &*self.name));
        }
        let file = state.files.get_mut(&self.id).expect("checked");
        for op in std::mem::take(&mut file.pending) {
            match op {
                Pending::SetLen(len) => file.durable.resize(len as usize, 0),
                Pending::Write { offset, data, fate } => match fate {
                    Fate::Normal => apply_write(&mut file.durable, offset, &data),
                    Fate::Lost => {}
                    Fate::Misdirected(to) => apply_write(&mut file.durable, to, &data),
                },
            }
        }
        Ok(())
    }
}
