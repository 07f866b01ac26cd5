//! The SQLite index: the queryable copy of the log (runs and their
//! journals), kept by applying log records in batches.
//!
//! This module holds the [`Index`] (the write connection) and opens it; the
//! on-disk format is described in [`schema`], next to the tables:
//!
//! - [`schema`]: the tables, their checksums, the format versions, and the
//!   connection setup.
//! - [`apply`]: applying log records, one transaction per batch, and the
//!   summaries they fold into (cached, and kept in `run_folds`).
//! - [`rows`]: reading rows back, their checksums checked.
//! - [`queries`]: the queries of the read connection ([`Reader`]).

mod apply;
mod queries;
mod rows;
mod schema;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use duro_core::journal::RunKey;
use duro_core::summary::RunSummary;
use rusqlite::{Connection, OptionalExtension};

use super::faults::IndexFaults;
use crate::error::StoreError;

pub(crate) use queries::Reader;
pub(crate) use schema::open_connection;
pub use schema::INDEX_FORMAT_VERSION;

pub(crate) struct Index {
    conn: Connection,
    path: PathBuf,
    /// The log directory the applied records come from (named in errors).
    log_dir: PathBuf,
    /// Summaries of unfinished runs touched since open, to fold new events into.
    cache: HashMap<RunKey, RunSummary>,
    applied_lsn: u64,
    /// Injected commit failures (tests only).
    faults: Option<Arc<dyn IndexFaults>>,
}

fn sql_err<'p>(path: &'p Path, op: &'static str) -> impl Fn(rusqlite::Error) -> StoreError + 'p {
    move |source| match source.sqlite_error_code() {
        Some(rusqlite::ErrorCode::DatabaseCorrupt) | Some(rusqlite::ErrorCode::NotADatabase) => {
            StoreError::IndexCorrupt {
                path: path.to_path_buf(),
                detail: source.to_string(),
            }
        }
        _ => StoreError::Index {
            op,
            path: path.to_path_buf(),
            source,
        },
    }
}

impl Index {
    pub(crate) fn open(
        path: &Path,
        faults: Option<Arc<dyn IndexFaults>>,
    ) -> Result<Index, StoreError> {
        let conn = open_connection(path, false)?;
        schema::prepare(&conn, path)?;
        let applied_lsn: i64 = conn
            .query_row(
                "SELECT value FROM meta WHERE key = 'applied_lsn'",
                [],
                |r| r.get(0),
            )
            .optional()
            .map_err(sql_err(path, "read applied_lsn"))?
            .unwrap_or(0);
        let log_dir = path.parent().unwrap_or(Path::new(".")).join("wal");
        Ok(Index {
            conn,
            path: path.to_path_buf(),
            log_dir,
            cache: HashMap::new(),
            applied_lsn: applied_lsn as u64,
            faults,
        })
    }

    pub(crate) fn applied_lsn(&self) -> u64 {
        self.applied_lsn
    }

    pub(crate) fn max_run_key(&self) -> Result<RunKey, StoreError> {
        let max: Option<i64> = self
            .conn
            .query_row("SELECT MAX(run_key) FROM runs", [], |r| r.get(0))
            .map_err(sql_err(&self.path, "read the largest run key"))?;
        Ok(max.unwrap_or(0) as RunKey)
    }
}
