//! Opening the store a `Core` runs on (the embedded store in a directory, or
//! the in-memory one) and the engine over it.

use std::sync::Arc;

use duro_engine::{Engine, EngineConfig, SystemClock};
use duro_store::{EmbeddedOptions, EmbeddedStore, MemoryStore, Store};
use duro_wal::{SyncMode, WalOptions};
use pyo3::prelude::*;

use crate::errors::{store_to_py, to_py};

/// Opens the store at `path` (or a memory store) and an engine over it; runs
/// without the GIL (see `Core::new`).
pub(crate) fn open_engine(
    path: Option<String>,
    config: EngineConfig,
    segment_size: Option<u64>,
    fsync: bool,
) -> PyResult<(Engine, String)> {
    // An append holds a payload plus framing; keep room for the largest payload,
    // the same in both stores.
    let max_append = WalOptions::default()
        .max_record_size
        .max((config.limits.max_payload_bytes as u32).saturating_mul(2));
    let store: Arc<dyn Store> = match &path {
        None => Arc::new(MemoryStore::with_max_append_bytes(u64::from(max_append))),
        Some(dir) => {
            let mut wal = WalOptions::default();
            // Segments big enough for the largest record.
            wal.max_record_size = max_append;
            wal.segment_size = wal.segment_size.max(2 * wal.max_record_size as u64);
            if let Some(size) = segment_size {
                wal.segment_size = size;
            }
            if !fsync {
                wal.sync = SyncMode::None;
            }
            Arc::new(
                EmbeddedStore::open(
                    dir,
                    EmbeddedOptions {
                        wal,
                        ..EmbeddedOptions::default()
                    },
                )
                .map_err(store_to_py)?,
            )
        }
    };
    let description = store.describe();
    let engine = Engine::open(store, config, Arc::new(SystemClock)).map_err(to_py)?;
    Ok((engine, description))
}
