//! Small tools of the campaigns: a directory for the index, the index saved
//! and restored around recoveries, a fingerprint of a SimFs, damage names, the
//! spread of crash points, and how a store failure reads.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::path::Path;

use duro_engine::EngineError;
use duro_wal::fs::{Damage, SimFs};

/// A directory for one life's index (on tmpfs when there is one: the SQLite
/// index is on the real file system and its syncs would dominate).
pub fn tempdir() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        if let Ok(dir) = tempfile::Builder::new()
            .prefix("duro-campaign-")
            .tempdir_in(shm)
        {
            return dir;
        }
    }
    tempfile::Builder::new()
        .prefix("duro-campaign-")
        .tempdir()
        .unwrap()
}

/// The index files of a store directory (the log is on the SimFs), saved
/// so that several recoveries can start from the same point. The SimFs image
/// names the log by its full path, so every recovery of one crash reuses the
/// store directory itself: `restore` puts the saved index back first.
pub struct SavedIndex {
    dir: tempfile::TempDir,
}

fn is_index_file(name: &std::ffi::OsStr) -> bool {
    name.to_string_lossy().starts_with("index.sqlite3")
}

pub fn save_index(store_dir: &Path) -> SavedIndex {
    let saved = tempdir();
    for entry in std::fs::read_dir(store_dir).unwrap() {
        let entry = entry.unwrap();
        if is_index_file(&entry.file_name()) && entry.file_type().unwrap().is_file() {
            std::fs::copy(entry.path(), saved.path().join(entry.file_name())).unwrap();
        }
    }
    SavedIndex { dir: saved }
}

impl SavedIndex {
    pub fn restore(&self, store_dir: &Path) {
        for entry in std::fs::read_dir(store_dir).unwrap() {
            let entry = entry.unwrap();
            if is_index_file(&entry.file_name()) {
                std::fs::remove_file(entry.path()).unwrap();
            }
        }
        for entry in std::fs::read_dir(self.dir.path()).unwrap() {
            let entry = entry.unwrap();
            std::fs::copy(entry.path(), store_dir.join(entry.file_name())).unwrap();
        }
    }
}

/// A fingerprint of everything a SimFs holds (paths and bytes).
pub fn fingerprint(fs: &SimFs) -> u64 {
    let mut h = DefaultHasher::new();
    for path in fs.files() {
        path.hash(&mut h);
        fs.read_file(&path).hash(&mut h);
    }
    h.finish()
}

pub fn damage_name(d: Damage) -> String {
    match d {
        Damage::LoseUnsynced => "lose-unsynced".into(),
        Damage::TornSectors { sector } => format!("torn-{sector}"),
        Damage::ZeroFill { sector } => format!("zero-{sector}"),
        Damage::GarbageFill { sector } => format!("garbage-{sector}"),
    }
}

/// `count` operation numbers spread evenly over `1..=total` (all of them when `count >= total`).
pub fn spread(total: u64, count: u64) -> Vec<u64> {
    if total == 0 {
        return Vec::new();
    }
    if count >= total {
        return (1..=total).collect();
    }
    let mut points: Vec<u64> = (0..count)
        .map(|i| 1 + i * (total - 1) / (count - 1).max(1))
        .collect();
    points.dedup();
    points
}

/// Is this error the clear, fail-stop one (it says to reopen)?
pub fn says_reopen(message: &str) -> bool {
    message.contains("reopen")
}

pub fn is_store_failure(e: &EngineError) -> bool {
    e.is_store_failure()
}
