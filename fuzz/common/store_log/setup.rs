//! What the store targets run in: scratch directories (the index is a real SQLite file),
//! the store's options over a `SimFs`, and a run's start event.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use duro_core::journal::Event;
use duro_store::EmbeddedOptions;
use duro_wal::fs::SimFs;
use duro_wal::{SyncMode, WalOptions};

use super::record::SEGMENT_SIZE;

// ---------------------------------------------------------------------------------------
// Scratch directories (the index is a real SQLite file; the log is in a SimFs).

static NEXT_DIR: AtomicU64 = AtomicU64::new(0);

/// A directory removed on drop, in /dev/shm when there is one (no disk syncs).
pub struct ScratchDir {
    pub path: PathBuf,
}

impl ScratchDir {
    pub fn new(what: &str) -> ScratchDir {
        let base = if Path::new("/dev/shm").is_dir() {
            PathBuf::from("/dev/shm")
        } else {
            std::env::temp_dir()
        };
        let n = NEXT_DIR.fetch_add(1, Ordering::Relaxed);
        if n == 0 {
            sweep_stale(&base);
        }
        let path = base.join(format!("duro-fuzz-{what}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("create a scratch directory");
        ScratchDir { path }
    }
}

/// Removes the scratch directories of processes that are gone (an AFL child that crashed
/// or exited without running destructors leaves its directories behind).
fn sweep_stale(base: &Path) {
    let Ok(entries) = std::fs::read_dir(base) else {
        return;
    };
    for entry in entries.filter_map(|e| e.ok()) {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix("duro-fuzz-") else {
            continue;
        };
        // duro-fuzz-<what>-<pid>-<n>
        let mut parts = rest.rsplitn(3, '-');
        let (Some(_n), Some(pid)) = (parts.next(), parts.next()) else {
            continue;
        };
        let Ok(pid) = pid.parse::<u32>() else {
            continue;
        };
        if pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

pub fn store_options(fs: Arc<SimFs>) -> EmbeddedOptions {
    EmbeddedOptions {
        wal: WalOptions {
            segment_size: SEGMENT_SIZE,
            max_record_size: 16 << 10,
            preallocate: false,
            sync: SyncMode::Data,
        },
        fs,
        release_every: Duration::from_secs(3600),
    }
}

pub(super) fn started(run_id: &str) -> Event {
    Event::RunStarted {
        run_id: run_id.into(),
        workflow: "wf".into(),
        version: "1".into(),
        input: b"{}".to_vec(),
        deadline_ms: None,
        start_at_ms: None,
        step_count: 2,
        at_ms: 1,
    }
}
