//! [`SimFs`]: an in-memory, deterministic file system that models what survives a crash.
//!
//! Invariants the model keeps:
//! - Each file has the bytes a reader sees (`current`) and the bytes a reboot would see
//!   (`durable`). A write changes only `current` and marks its range dirty; `sync_data` copies
//!   the dirty ranges (and the length) to `durable`.
//! - Directory entries (create, rename, remove) change the visible namespace at once, but
//!   the durable namespace of a directory changes only on `sync_dir` of that directory.
//!   (Directories themselves are durable as soon as they are created: a simplification.)
//! - A failed `sync_data` drops the file's dirty ranges without making them durable, while
//!   readers still see the data: what Linux did to PostgreSQL in 2018, and why an fsync error
//!   must be fail-stop.
//! - Operations are numbered from 1 in the order they are issued (`create`, write, sync,
//!   set_len, rename, remove, sync_dir, create_dir). A fault plan can fail one of them, fail
//!   every sync from some number on, or "crash" at one: that operation and every later call
//!   (reads included) fail with an error [`is_sim_crash`] recognises, as if the process died.
//! - [`SimFs::crash_image`] builds what a reboot would find, applying a [`Damage`] to the
//!   unsynced data; it is deterministic for a given seed. Damage is decided per sector but
//!   applied only to the bytes that were written and not synced: synced bytes sharing a
//!   sector with pending ones survive (the device is assumed not to destroy data it was not
//!   asked to rewrite; a torn sector holds its old or its new content).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use super::{Fs, FsFile, OpenOptions};
use crate::rng::SplitMix64;

/// What happens to unsynced data when the simulated machine loses power.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Damage {
    /// Every unsynced write is lost; the file is exactly as of its last sync.
    LoseUnsynced,
    /// Each unsynced sector (512 or 4096 bytes) is independently either written or not.
    TornSectors { sector: u64 },
    /// Unsynced sectors read back as zeros (size metadata reached the disk, data did not).
    ZeroFill { sector: u64 },
    /// Unsynced sectors read back as seeded garbage.
    GarbageFill { sector: u64 },
}

impl Damage {
    /// Every damage mode, at both sector sizes.
    pub fn all() -> Vec<Damage> {
        vec![
            Damage::LoseUnsynced,
            Damage::TornSectors { sector: 512 },
            Damage::TornSectors { sector: 4096 },
            Damage::ZeroFill { sector: 512 },
            Damage::ZeroFill { sector: 4096 },
            Damage::GarbageFill { sector: 512 },
            Damage::GarbageFill { sector: 4096 },
        ]
    }
}

/// A planned fault. Operation numbers count from 1 (see [`SimFs::ops`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Operation number `op` fails with the OS error `errno` (e.g. `libc::EIO`).
    FailOp { op: u64, errno: i32 },
    /// Every `sync_data` and `sync_dir` numbered `op` or later fails with `errno`.
    FailSyncsFrom { op: u64, errno: i32 },
    /// Every write numbered `op` or later fails with `errno`.
    FailWritesFrom { op: u64, errno: i32 },
    /// Operation `op` and every later call fail as if the process had died.
    CrashAt { op: u64 },
}

/// Kinds of traced operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OpKind {
    Create,
    Write,
    SyncData,
    SetLen,
    Rename,
    Remove,
    SyncDir,
    CreateDir,
}

/// One traced operation: number, kind, path and size (bytes written, new length, or 0).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceEntry {
    pub op: u64,
    pub kind: OpKind,
    pub path: PathBuf,
    pub size: u64,
    /// `Some(message)` if the operation was failed by the fault plan.
    pub failed: Option<String>,
}

/// Counts of successful operations.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OpCounts {
    pub creates: u64,
    pub writes: u64,
    pub bytes_written: u64,
    pub syncs: u64,
    pub set_lens: u64,
    pub renames: u64,
    pub removes: u64,
    pub dir_syncs: u64,
}

/// The error a crashed [`SimFs`] returns; see [`is_sim_crash`].
#[derive(Debug)]
struct SimCrash;

impl fmt::Display for SimCrash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("simulated crash: the process is dead")
    }
}

impl std::error::Error for SimCrash {}

fn crash_error() -> io::Error {
    io::Error::other(SimCrash)
}

/// True if `error` is (or wraps) the error a crashed [`SimFs`] returns.
pub fn is_sim_crash(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = current {
        if let Some(io_error) = e.downcast_ref::<io::Error>() {
            if io_error
                .get_ref()
                .is_some_and(|inner| inner.downcast_ref::<SimCrash>().is_some())
            {
                return true;
            }
        }
        if e.downcast_ref::<SimCrash>().is_some() {
            return true;
        }
        current = e.source();
    }
    false
}

#[derive(Debug, Clone, Default)]
struct Inode {
    current: Vec<u8>,
    durable: Vec<u8>,
    /// Byte ranges written since the last successful sync.
    dirty: Vec<(u64, u64)>,
    /// The length changed since the last successful sync.
    len_dirty: bool,
}

#[derive(Debug, Default)]
struct State {
    dirs: BTreeSet<PathBuf>,
    current: BTreeMap<PathBuf, u64>,
    durable: BTreeMap<PathBuf, u64>,
    inodes: HashMap<u64, Inode>,
    next_inode: u64,
    ops: u64,
    faults: Vec<Fault>,
    crashed: bool,
    trace: Vec<TraceEntry>,
    tracing: bool,
    counts: OpCounts,
}

/// An in-memory file system for tests. Cloning shares the same state.
#[derive(Clone)]
pub struct SimFs {
    state: Arc<Mutex<State>>,
}

impl fmt::Debug for SimFs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.lock();
        f.debug_struct("SimFs")
            .field("files", &state.current.keys().collect::<Vec<_>>())
            .field("ops", &state.ops)
            .field("crashed", &state.crashed)
            .finish()
    }
}

impl Default for SimFs {
    fn default() -> Self {
        SimFs::new()
    }
}

fn not_found(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("{}: no such file", path.display()),
    )
}

fn parent_of(path: &Path) -> PathBuf {
    path.parent().map(Path::to_path_buf).unwrap_or_default()
}

impl State {
    /// Numbers an operation and applies the fault plan to it.
    fn begin(&mut self, kind: OpKind, path: &Path, size: u64) -> io::Result<()> {
        if self.crashed {
            return Err(crash_error());
        }
        self.ops += 1;
        let op = self.ops;
        let mut failure: Option<io::Error> = None;
        for fault in &self.faults {
            match *fault {
                Fault::CrashAt { op: at } if op >= at => {
                    self.crashed = true;
                    failure = Some(crash_error());
                    break;
                }
                Fault::FailOp { op: at, errno } if op == at => {
                    failure = Some(io::Error::from_raw_os_error(errno));
                }
                Fault::FailSyncsFrom { op: from, errno }
                    if op >= from && matches!(kind, OpKind::SyncData | OpKind::SyncDir) =>
                {
                    failure = Some(io::Error::from_raw_os_error(errno));
                }
                Fault::FailWritesFrom { op: from, errno }
                    if op >= from && kind == OpKind::Write =>
                {
                    failure = Some(io::Error::from_raw_os_error(errno));
                }
                _ => {}
            }
        }
        if self.tracing {
            self.trace.push(TraceEntry {
                op,
                kind,
                path: path.to_path_buf(),
                size,
                failed: failure.as_ref().map(|e| e.to_string()),
            });
        }
        match failure {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    fn check_alive(&self) -> io::Result<()> {
        if self.crashed {
            Err(crash_error())
        } else {
            Ok(())
        }
    }

    fn name_of(&self, inode: u64) -> PathBuf {
        self.current
            .iter()
            .find(|(_, &id)| id == inode)
            .map(|(path, _)| path.clone())
            .unwrap_or_else(|| PathBuf::from(format!("<unlinked inode {inode}>")))
    }

    fn inode(&mut self, id: u64) -> io::Result<&mut Inode> {
        self.inodes
            .get_mut(&id)
            .ok_or_else(|| io::Error::other("simfs: stale inode"))
    }

    fn check_dir(&self, dir: &Path) -> io::Result<()> {
        if dir.as_os_str().is_empty() || self.dirs.contains(dir) {
            Ok(())
        } else {
            Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("{}: no such directory", dir.display()),
            ))
        }
    }
}

impl SimFs {
    pub fn new() -> SimFs {
        SimFs {
            state: Arc::new(Mutex::new(State {
                tracing: true,
                ..State::default()
            })),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock (only possible in a test) leaves the model usable.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Adds a fault to the plan.
    pub fn inject(&self, fault: Fault) {
        self.lock().faults.push(fault);
    }

    /// Removes every planned fault (a crashed SimFs stays crashed).
    pub fn clear_faults(&self) {
        self.lock().faults.clear();
    }

    /// Number of operations issued so far; the next one is `ops() + 1`.
    pub fn ops(&self) -> u64 {
        self.lock().ops
    }

    pub fn crashed(&self) -> bool {
        self.lock().crashed
    }

    pub fn counts(&self) -> OpCounts {
        self.lock().counts
    }

    pub fn trace(&self) -> Vec<TraceEntry> {
        self.lock().trace.clone()
    }

    /// Turns the operation trace on or off (it is on by default).
    pub fn set_tracing(&self, on: bool) {
        let mut state = self.lock();
        state.tracing = on;
        if !on {
            state.trace.clear();
        }
    }

    /// Paths of all visible files, sorted.
    pub fn files(&self) -> Vec<PathBuf> {
        self.lock().current.keys().cloned().collect()
    }

    /// The visible content of a file.
    pub fn read_file(&self, path: &Path) -> Option<Vec<u8>> {
        let state = self.lock();
        let id = state.current.get(path)?;
        state.inodes.get(id).map(|inode| inode.current.clone())
    }

    /// Replaces a file's content, durably (as if written and synced long ago). Creates the
    /// file, durably, if it is missing.
    pub fn put_file(&self, path: &Path, content: &[u8]) {
        let mut state = self.lock();
        let dir = parent_of(path);
        state.dirs.insert(dir);
        let id = match state.current.get(path) {
            Some(&id) => id,
            None => {
                state.next_inode += 1;
                let id = state.next_inode;
                state.current.insert(path.to_path_buf(), id);
                id
            }
        };
        state.durable.insert(path.to_path_buf(), id);
        state.inodes.insert(
            id,
            Inode {
                current: content.to_vec(),
                durable: content.to_vec(),
                dirty: Vec::new(),
                len_dirty: false,
            },
        );
    }

    /// Flips bit `bit` (0..8) of byte `offset` in a file, in both the visible and the durable
    /// content. Returns false if the file or offset does not exist.
    pub fn flip_bit(&self, path: &Path, offset: u64, bit: u8) -> bool {
        self.mutate(path, |bytes| {
            let Some(byte) = bytes.get_mut(offset as usize) else {
                return false;
            };
            *byte ^= 1 << (bit % 8);
            true
        })
    }

    /// Overwrites `data.len()` bytes at `offset` (extending the file if needed), durably.
    pub fn overwrite(&self, path: &Path, offset: u64, data: &[u8]) -> bool {
        self.mutate(path, |bytes| {
            let end = offset as usize + data.len();
            if bytes.len() < end {
                bytes.resize(end, 0);
            }
            bytes[offset as usize..end].copy_from_slice(data);
            true
        })
    }

    /// Cuts a file to `len` bytes, durably.
    pub fn truncate_file(&self, path: &Path, len: u64) -> bool {
        self.mutate(path, |bytes| {
            bytes.truncate(len as usize);
            true
        })
    }

    fn mutate(&self, path: &Path, f: impl Fn(&mut Vec<u8>) -> bool) -> bool {
        let mut state = self.lock();
        let Some(&id) = state.current.get(path) else {
            return false;
        };
        let Some(inode) = state.inodes.get_mut(&id) else {
            return false;
        };
        let changed = f(&mut inode.current);
        if changed {
            f(&mut inode.durable);
        }
        changed
    }

    /// What a reboot would find: the durable namespace, each file's durable bytes with
    /// `damage` applied to its unsynced sectors. Deterministic for a given `seed`. The new
    /// SimFs has no faults, is not crashed and numbers operations from 1 again.
    pub fn crash_image(&self, damage: Damage, seed: u64) -> SimFs {
        let state = self.lock();
        let mut rng = SplitMix64::new(seed ^ 0xD0_5EED);
        let mut images: BTreeMap<u64, Vec<u8>> = BTreeMap::new();
        // BTreeMap iteration keeps the RNG sequence deterministic.
        for (_, &id) in state.durable.iter() {
            if images.contains_key(&id) {
                continue;
            }
            let Some(inode) = state.inodes.get(&id) else {
                continue;
            };
            images.insert(id, damaged_image(inode, damage, &mut rng));
        }
        let mut next = State {
            tracing: state.tracing,
            dirs: state.dirs.clone(),
            ..State::default()
        };
        for (path, id) in state.durable.iter() {
            let bytes = images.get(id).cloned().unwrap_or_default();
            next.next_inode += 1;
            let new_id = next.next_inode;
            next.current.insert(path.clone(), new_id);
            next.durable.insert(path.clone(), new_id);
            next.inodes.insert(
                new_id,
                Inode {
                    current: bytes.clone(),
                    durable: bytes,
                    dirty: Vec::new(),
                    len_dirty: false,
                },
            );
        }
        SimFs {
            state: Arc::new(Mutex::new(next)),
        }
    }
}

/// The unsynced byte ranges of a file, grouped by sector: `(sector index, ranges in it)`.
fn dirty_by_sector(inode: &Inode, sector: u64) -> BTreeMap<u64, Vec<(usize, usize)>> {
    let sector = sector.max(1);
    let limit = inode.current.len() as u64;
    // Merge the dirty ranges into sorted, disjoint ones.
    let mut ranges: Vec<(u64, u64)> = inode
        .dirty
        .iter()
        .map(|&(start, end)| (start.min(limit), end.min(limit)))
        .filter(|(start, end)| start < end)
        .collect();
    ranges.sort_unstable();
    let mut merged: Vec<(u64, u64)> = Vec::new();
    for (start, end) in ranges {
        match merged.last_mut() {
            Some(last) if start <= last.1 => last.1 = last.1.max(end),
            _ => merged.push((start, end)),
        }
    }
    let mut sectors: BTreeMap<u64, Vec<(usize, usize)>> = BTreeMap::new();
    for (start, end) in merged {
        let mut at = start;
        while at < end {
            let index = at / sector;
            let piece_end = ((index + 1) * sector).min(end);
            sectors
                .entry(index)
                .or_default()
                .push((at as usize, piece_end as usize));
            at = piece_end;
        }
    }
    sectors
}

fn damaged_image(inode: &Inode, damage: Damage, rng: &mut SplitMix64) -> Vec<u8> {
    let mut image = inode.durable.clone();
    let (sector, mode) = match damage {
        Damage::LoseUnsynced => return image,
        Damage::TornSectors { sector } => (sector, 0),
        Damage::ZeroFill { sector } => (sector, 1),
        Damage::GarbageFill { sector } => (sector, 2),
    };
    if mode != 0 && inode.len_dirty {
        // The size reached the disk, the data did not.
        image.resize(inode.current.len(), 0);
    }
    // Only bytes that were written and not synced are damaged: the model assumes the device
    // does not destroy synced bytes it was not asked to rewrite, even in a sector it writes.
    for (_, pieces) in dirty_by_sector(inode, sector) {
        if mode == 0 && !rng.coin() {
            continue;
        }
        for (start, end) in pieces {
            if image.len() < end {
                image.resize(end, 0);
            }
            match mode {
                0 => image[start..end].copy_from_slice(&inode.current[start..end]),
                1 => image[start..end].fill(0),
                _ => rng.fill(&mut image[start..end]),
            }
        }
    }
    image
}

impl Fs for SimFs {
    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        let mut state = self.lock();
        if state.dirs.contains(path) {
            return state.check_alive();
        }
        state.begin(OpKind::CreateDir, path, 0)?;
        let mut current = Some(path);
        while let Some(dir) = current {
            if dir.as_os_str().is_empty() {
                break;
            }
            state.dirs.insert(dir.to_path_buf());
            current = dir.parent();
        }
        Ok(())
    }

    fn list_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        let state = self.lock();
        state.check_alive()?;
        state.check_dir(path)?;
        Ok(state
            .current
            .keys()
            .filter(|p| p.parent() == Some(path))
            .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .collect())
    }

    fn open(&self, path: &Path, options: OpenOptions) -> io::Result<Box<dyn FsFile>> {
        let mut state = self.lock();
        state.check_alive()?;
        state.check_dir(&parent_of(path))?;
        let id = match state.current.get(path).copied() {
            Some(id) => {
                if options.truncate {
                    state.begin(OpKind::SetLen, path, 0)?;
                    let inode = state.inode(id)?;
                    inode.current.clear();
                    inode.len_dirty = true;
                    state.counts.set_lens += 1;
                }
                id
            }
            None if options.create => {
                state.begin(OpKind::Create, path, 0)?;
                state.next_inode += 1;
                let id = state.next_inode;
                state.inodes.insert(id, Inode::default());
                state.current.insert(path.to_path_buf(), id);
                state.counts.creates += 1;
                id
            }
            None => return Err(not_found(path)),
        };
        Ok(Box::new(SimFile {
            fs: self.clone(),
            inode: id,
        }))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut state = self.lock();
        state.check_alive()?;
        let Some(&id) = state.current.get(from) else {
            return Err(not_found(from));
        };
        state.begin(OpKind::Rename, to, 0)?;
        state.current.remove(from);
        state.current.insert(to.to_path_buf(), id);
        state.counts.renames += 1;
        Ok(())
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        let mut state = self.lock();
        state.check_alive()?;
        if !state.current.contains_key(path) {
            return Err(not_found(path));
        }
        state.begin(OpKind::Remove, path, 0)?;
        state.current.remove(path);
        state.counts.removes += 1;
        Ok(())
    }

    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        let mut state = self.lock();
        state.check_alive()?;
        state.check_dir(path)?;
        state.begin(OpKind::SyncDir, path, 0)?;
        let in_dir = |p: &PathBuf| p.parent() == Some(path);
        let State {
            current, durable, ..
        } = &mut *state;
        durable.retain(|p, _| !in_dir(p));
        for (p, id) in current.iter() {
            if in_dir(p) {
                durable.insert(p.clone(), *id);
            }
        }
        state.counts.dir_syncs += 1;
        Ok(())
    }

    fn exists(&self, path: &Path) -> io::Result<bool> {
        let state = self.lock();
        state.check_alive()?;
        Ok(state.current.contains_key(path) || state.dirs.contains(path))
    }
}

struct SimFile {
    fs: SimFs,
    inode: u64,
}

impl FsFile for SimFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let mut state = self.fs.lock();
        state.check_alive()?;
        let inode = state.inode(self.inode)?;
        let len = inode.current.len() as u64;
        if offset >= len {
            return Ok(0);
        }
        let n = (len - offset).min(buf.len() as u64) as usize;
        let start = offset as usize;
        buf[..n].copy_from_slice(&inode.current[start..start + n]);
        Ok(n)
    }

    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        let mut state = self.fs.lock();
        state.check_alive()?;
        let path = state.name_of(self.inode);
        state.begin(OpKind::Write, &path, buf.len() as u64)?;
        let inode = state.inode(self.inode)?;
        let start = offset as usize;
        let end = start + buf.len();
        if inode.current.len() < end {
            inode.current.resize(end, 0);
            inode.len_dirty = true;
        }
        inode.current[start..end].copy_from_slice(buf);
        inode.dirty.push((offset, end as u64));
        state.counts.writes += 1;
        state.counts.bytes_written += buf.len() as u64;
        Ok(())
    }

    fn sync_data(&self) -> io::Result<()> {
        let mut state = self.fs.lock();
        state.check_alive()?;
        let path = state.name_of(self.inode);
        let result = state.begin(OpKind::SyncData, &path, 0);
        if state.crashed {
            // The machine died before the sync: the writes stay pending for crash_image.
            return result;
        }
        let inode = state.inode(self.inode)?;
        if result.is_err() {
            // fsyncgate: the kernel may drop the dirty pages after a failed writeback; the
            // data stays readable but will never reach the disk.
            inode.dirty.clear();
            inode.len_dirty = false;
            return result;
        }
        if inode.len_dirty {
            inode.durable.resize(inode.current.len(), 0);
        }
        let dirty = std::mem::take(&mut inode.dirty);
        let Inode {
            current, durable, ..
        } = inode;
        for (start, end) in dirty {
            let end = (end as usize).min(current.len());
            let start = (start as usize).min(end);
            if durable.len() < end {
                durable.resize(end, 0);
            }
            durable[start..end].copy_from_slice(&current[start..end]);
        }
        inode.len_dirty = false;
        state.counts.syncs += 1;
        Ok(())
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        let mut state = self.fs.lock();
        state.check_alive()?;
        let path = state.name_of(self.inode);
        state.begin(OpKind::SetLen, &path, len)?;
        let inode = state.inode(self.inode)?;
        let old = inode.current.len() as u64;
        inode.current.resize(len as usize, 0);
        if len > old {
            // The new bytes are zeros that must reach the disk too.
            inode.dirty.push((old, len));
        }
        inode.len_dirty = true;
        state.counts.set_lens += 1;
        Ok(())
    }

    fn len(&self) -> io::Result<u64> {
        let mut state = self.fs.lock();
        state.check_alive()?;
        Ok(state.inode(self.inode)?.current.len() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir() -> PathBuf {
        PathBuf::from("/d")
    }

    #[test]
    fn unsynced_data_and_entries_are_lost_on_crash() {
        let fs = SimFs::new();
        fs.create_dir_all(&dir()).unwrap();
        let a = dir().join("a");
        let file = fs.open(&a, OpenOptions::create_truncate()).unwrap();
        file.write_all_at(b"synced", 0).unwrap();
        file.sync_data().unwrap();
        // The entry itself is not durable yet: a crash loses the whole file.
        assert!(fs
            .crash_image(Damage::LoseUnsynced, 0)
            .read_file(&a)
            .is_none());
        fs.sync_dir(&dir()).unwrap();
        file.write_all_at(b"+pending", 6).unwrap();
        let image = fs.crash_image(Damage::LoseUnsynced, 0);
        assert_eq!(image.read_file(&a).unwrap(), b"synced");
        assert_eq!(fs.read_file(&a).unwrap(), b"synced+pending");
        let zeroed = fs.crash_image(Damage::ZeroFill { sector: 512 }, 0);
        assert_eq!(zeroed.read_file(&a).unwrap(), b"synced\0\0\0\0\0\0\0\0");
        // Renames are reverted without a directory sync.
        let b = dir().join("b");
        fs.rename(&a, &b).unwrap();
        let image = fs.crash_image(Damage::LoseUnsynced, 0);
        assert!(image.read_file(&a).is_some() && image.read_file(&b).is_none());
        fs.sync_dir(&dir()).unwrap();
        let image = fs.crash_image(Damage::LoseUnsynced, 0);
        assert!(image.read_file(&a).is_none() && image.read_file(&b).is_some());
    }

    #[test]
    fn torn_sectors_are_seeded_and_deterministic() {
        let fs = SimFs::new();
        fs.create_dir_all(&dir()).unwrap();
        let a = dir().join("a");
        let file = fs.open(&a, OpenOptions::create_truncate()).unwrap();
        file.write_all_at(&[0u8; 8192], 0).unwrap();
        file.sync_data().unwrap();
        fs.sync_dir(&dir()).unwrap();
        file.write_all_at(&[7u8; 8192], 0).unwrap();
        let damage = Damage::TornSectors { sector: 512 };
        let one = fs.crash_image(damage, 42).read_file(&a).unwrap();
        let two = fs.crash_image(damage, 42).read_file(&a).unwrap();
        assert_eq!(one, two);
        let kept = one
            .chunks(512)
            .filter(|s| s.iter().all(|&b| b == 7))
            .count();
        let lost = one
            .chunks(512)
            .filter(|s| s.iter().all(|&b| b == 0))
            .count();
        assert_eq!(kept + lost, 16, "each sector is all old or all new");
        assert!(kept > 0 && lost > 0);
        let garbage = fs.crash_image(Damage::GarbageFill { sector: 4096 }, 1);
        assert_ne!(garbage.read_file(&a).unwrap(), vec![7u8; 8192]);
    }

    #[test]
    fn faults_and_crash() {
        let fs = SimFs::new();
        fs.create_dir_all(&dir()).unwrap(); // op 1
        let a = dir().join("a");
        let file = fs.open(&a, OpenOptions::create_truncate()).unwrap(); // op 2
        fs.inject(Fault::FailOp {
            op: 4,
            errno: libc::EIO,
        });
        fs.inject(Fault::CrashAt { op: 6 });
        file.write_all_at(b"x", 0).unwrap(); // op 3
        let err = file.sync_data().unwrap_err(); // op 4
        assert_eq!(err.raw_os_error(), Some(libc::EIO));
        // The failed sync dropped the dirty data: a later sync does not make it durable.
        file.sync_data().unwrap(); // op 5
        fs.sync_dir(&dir()).unwrap_err(); // op 6: crash
        assert!(fs.crashed());
        let err = file.read_at(&mut [0u8; 1], 0).unwrap_err();
        assert!(is_sim_crash(&err));
        assert!(fs
            .crash_image(Damage::LoseUnsynced, 0)
            .read_file(&a)
            .is_none());
        let kinds: Vec<OpKind> = fs.trace().iter().map(|e| e.kind).collect();
        assert_eq!(
            kinds,
            [
                OpKind::CreateDir,
                OpKind::Create,
                OpKind::Write,
                OpKind::SyncData,
                OpKind::SyncData,
                OpKind::SyncDir
            ]
        );
        assert_eq!(fs.counts().syncs, 1);
    }
}
