//! Opening the store: the directory and its modes, the log's recovery, the
//! index (rebuilt from the log when it is corrupt and the log is complete),
//! the checks of the log against the index, and applying to the index the
//! records it lacks before anything is read or appended.

use std::collections::HashMap;
use std::fs::{DirBuilder, OpenOptions};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};

use duro_wal::Wal;

use super::index::{self, Index, Reader};
use super::indexer::{self, Inbox, Progress, Relay};
use super::lock::DirLock;
use super::{EmbeddedOptions, EmbeddedStore, IndexCommitSite, IndexFaults, Registry};
use crate::error::StoreError;

/// Sets `path` to `mode` (0700 for directories, 0600 for files) unless it has it; a
/// path that does not exist is left alone. Symlinks inside the store are not followed.
fn make_private(path: &Path, mode: u32, op: &'static str) -> Result<(), StoreError> {
    let io = |source| StoreError::Io {
        op,
        path: path.to_path_buf(),
        source,
    };
    let meta = match std::fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io(e)),
    };
    if meta.file_type().is_symlink() || meta.permissions().mode() & 0o777 == mode {
        return Ok(());
    }
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(io)
}

/// Directories 0700, files 0600, also for a store that exists already.
/// (`wal/` is left alone when it is not on this disk: the log's file layer may be simulated.)
fn make_store_private(dir: &Path) -> Result<(), StoreError> {
    // The store directory itself may be a symlink the user made: follow that one.
    let mode = std::fs::metadata(dir)
        .map_err(|source| StoreError::Io {
            op: "open the store directory",
            path: dir.to_path_buf(),
            source,
        })?
        .permissions()
        .mode();
    if mode & 0o777 != 0o700 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(
            |source| StoreError::Io {
                op: "restrict to mode 0700 (owner only) the store directory",
                path: dir.to_path_buf(),
                source,
            },
        )?;
    }
    for name in [
        "LOCK",
        "index.sqlite3",
        "index.sqlite3-wal",
        "index.sqlite3-shm",
    ] {
        make_private(
            &dir.join(name),
            0o600,
            "restrict to mode 0600 (owner only) the store file",
        )?;
    }
    let wal = dir.join("wal");
    make_private(
        &wal,
        0o700,
        "restrict to mode 0700 (owner only) the log directory",
    )?;
    if wal.is_dir() {
        let list_err = |source| StoreError::Io {
            op: "list the log directory",
            path: wal.clone(),
            source,
        };
        for entry in std::fs::read_dir(&wal).map_err(list_err)? {
            let entry = entry.map_err(list_err)?;
            if entry.file_type().is_ok_and(|t| t.is_file()) {
                make_private(
                    &entry.path(),
                    0o600,
                    "restrict to mode 0600 (owner only) the log segment",
                )?;
            }
        }
    }
    Ok(())
}

/// Creates (0600) and opens the index file.
fn open_index(
    index_path: &Path,
    faults: &Option<Arc<dyn IndexFaults>>,
) -> Result<Index, StoreError> {
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(index_path)
        .map_err(|source| StoreError::Io {
            op: "create the index",
            path: index_path.to_path_buf(),
            source,
        })?;
    Index::open(index_path, faults.clone())
}

impl EmbeddedStore {
    /// Opens (creating if missing) the store in `dir` and recovers it.
    pub fn open(
        dir: impl AsRef<Path>,
        options: EmbeddedOptions,
    ) -> Result<EmbeddedStore, StoreError> {
        EmbeddedStore::open_with_index_faults(dir, options, None)
    }

    /// [`EmbeddedStore::open`] with a testing hook that fails commits of the run index
    /// (see [`IndexFaults`]). Production code passes `None`, which is `open`.
    ///
    /// A failed index commit stops the store (see the indexer): every later call returns
    /// [`StoreError::Failed`] saying to reopen, no log segment is released past the last
    /// synced index commit, and the next open applies the rest of the log again.
    pub fn open_with_index_faults(
        dir: impl AsRef<Path>,
        options: EmbeddedOptions,
        index_faults: Option<Arc<dyn IndexFaults>>,
    ) -> Result<EmbeddedStore, StoreError> {
        let dir = dir.as_ref().to_path_buf();
        if !dir.exists() {
            DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&dir)
                .map_err(|source| StoreError::Io {
                    op: "create the store directory",
                    path: dir.clone(),
                    source,
                })?;
        } else if !dir.is_dir() {
            return Err(StoreError::Io {
                op: "open the store directory",
                path: dir.clone(),
                source: std::io::Error::new(
                    std::io::ErrorKind::Other,
                    "it exists and is not a directory",
                ),
            });
        }
        let dir_lock = DirLock::acquire(&dir)?;
        make_store_private(&dir)?;

        let index_path = dir.join("index.sqlite3");
        // An index that exists is opened before the log: the log's recovery then checks
        // the records the index already holds without copying them out (megabytes after a
        // crash in a long run). Its errors wait until the log is open, as they did when
        // the log was opened first: a corrupt index is rebuilt only from a complete log,
        // and the log's own errors come first. A new index is created after the log.
        let early_index = index_path
            .exists()
            .then(|| open_index(&index_path, &index_faults));
        let keep_from = match &early_index {
            Some(Ok(index)) => index.applied_lsn().saturating_add(1),
            _ => 1,
        };
        let inbox = Arc::new(Inbox::default());
        let relay = Arc::new(Relay::new(inbox.clone()));
        let (wal, recovery) = Wal::open_from(
            options.fs.clone(),
            &dir.join("wal"),
            options.wal.clone(),
            relay.clone(),
            keep_from,
        )?;
        // The log holds the whole history while nothing was released from it yet.
        let log_is_complete = recovery
            .first_lsn
            .map_or(recovery.next_lsn == 1, |first| first == 1);

        let opened = early_index.unwrap_or_else(|| open_index(&index_path, &index_faults));
        let mut index = match opened {
            Ok(index) => index,
            Err(StoreError::IndexCorrupt { detail, .. }) if log_is_complete => {
                // Rebuilt from the log below; the damaged file is kept for inspection.
                let stamp = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis());
                let aside = dir.join(format!("index.sqlite3.corrupt-{stamp}"));
                for suffix in ["", "-wal", "-shm"] {
                    let from = dir.join(format!("index.sqlite3{suffix}"));
                    if from.exists() {
                        let to = dir.join(format!("index.sqlite3.corrupt-{stamp}{suffix}"));
                        std::fs::rename(&from, to).map_err(|source| StoreError::Io {
                            op: "move the corrupt index aside",
                            path: from,
                            source,
                        })?;
                    }
                }
                eprintln!("duro: the run index was corrupt ({detail}); rebuilt it from the log (the old file is {})", aside.display());
                open_index(&index_path, &index_faults)?
            }
            Err(error) => return Err(error),
        };

        // The index only ever applies durable records, so it can never be ahead of the log;
        // if it is, segments were lost or replaced, and appending would reuse LSNs it skips.
        if index.applied_lsn() >= recovery.next_lsn {
            return Err(StoreError::LogBehindIndex {
                path: dir.join("wal"),
                log_next: recovery.next_lsn,
                applied: index.applied_lsn(),
            });
        }
        // Released segments were in the index before they were deleted, so the log must
        // start at or before the first record the index lacks. A gap means records are in
        // neither: refuse rather than open a store that silently lost runs.
        if let Some(first_lsn) = recovery.first_lsn {
            if first_lsn > index.applied_lsn() + 1 {
                return Err(StoreError::LogGap {
                    path: dir.join("wal"),
                    first_lsn,
                    applied: index.applied_lsn(),
                });
            }
        }
        // Bring the index up to the log: after a crash this is the rebuild. A failed commit
        // here fails the open (nothing was released: the log still holds these records, and
        // the next open applies them again).
        for chunk in recovery.records.chunks(4_096) {
            index.apply(
                IndexCommitSite::OpenApply,
                chunk
                    .iter()
                    .map(|r| (r.lsn, r.record_type, r.payload.as_slice())),
            )?;
        }
        index.commit_durably(IndexCommitSite::OpenSync)?;
        // Segments the index already held before the open (a crash came before the
        // indexer's next release) are deleted now, not at the first release after the next
        // append: a store that is only opened to be read would otherwise keep them, and
        // scan them on every open. Rule 7 holds: the index commit above is synced.
        wal.release_through(index.applied_lsn())?;
        let next_key =
            index
                .max_run_key()?
                .checked_add(1)
                .ok_or_else(|| StoreError::IndexCorrupt {
                    path: dir.join("index.sqlite3"),
                    detail: "the largest run key is u64::MAX".into(),
                })?;
        let applied_lsn = index.applied_lsn();

        let registry = Arc::new(Mutex::new(Registry {
            pending_ids: HashMap::new(),
            positions: HashMap::new(),
            next_key,
            scratch: Vec::with_capacity(4_096),
            closed: false,
        }));
        let progress = Arc::new(Progress::new(applied_lsn));
        let wal = Arc::new(RwLock::new(Some(wal)));
        let handle = indexer::spawn(
            index,
            inbox.clone(),
            progress.clone(),
            registry.clone(),
            wal.clone(),
            options.release_every,
        )?;
        let reader = Reader {
            conn: index::open_connection(&index_path, true)?,
            path: index_path,
        };
        Ok(EmbeddedStore {
            dir,
            max_append_bytes: u64::from(options.wal.max_record_size),
            wal,
            relay,
            registry,
            reader: Mutex::new(reader),
            progress,
            inbox,
            indexer: Mutex::new(Some(handle)),
            lock: Mutex::new(Some(dir_lock)),
        })
    }
}
