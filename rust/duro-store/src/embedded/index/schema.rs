//! The index's on-disk format, documented here next to the tables that hold
//! it: the schema, the checksums every row carries, the format versions
//! checked and recorded on open, and the setup of the connections.
//!
//! Format (index format version 1), in `index.sqlite3`:
//!
//! ```text
//! meta(key TEXT PRIMARY KEY, value INTEGER)   format_version, applied_lsn, event_format_version
//! runs(run_key INTEGER PRIMARY KEY, run_id TEXT UNIQUE, workflow, version, status,
//!      created_at, started_at, updated_at, completed_at, current_step, step_count,
//!      completed_step_count, error_type, error_message, error_retryable, wake_at, event_count, crc)
//! events(run_key, position, body BLOB, crc, PRIMARY KEY(run_key, position)) WITHOUT ROWID
//! run_folds(run_key INTEGER PRIMARY KEY, event_count, fold BLOB, crc)
//! ```
//!
//! `run_folds` holds, for each unfinished run, the rest of the summary fold
//! (`SummaryFold::encode`) as of `event_count` events, so the next events of a
//! run whose summary is not cached fold on from it instead of re-reading the
//! whole journal (a long run resumed after a crash). It is a cache: a row whose
//! `event_count` differs from the run's (an older build applied events without
//! keeping it), whose checksum fails, or that does not decode is ignored and
//! the journal folded again. Finished runs have no row.
//!
//! `events.body` is the journal codec's encoding of one event; `runs` is the
//! summary folded from them. `event_format_version` is the newest journal
//! event format (`duro_core::journal::EVENT_FORMAT_VERSION`) the bodies may be
//! written in: set when a build opens the index, never lowered, and checked on
//! open (a newer one is [`StoreError::NewerFormat`]). Indexes written before it
//! existed lack the key and hold format 1. Both tables carry a `crc` column (CRC32C of the
//! row's content, see [`event_crc`] and [`summary_crc`]) checked on every
//! read: SQLite does not checksum its pages, and a flipped byte inside a row
//! must be reported, never returned. `applied_lsn` is committed in the same
//! transaction as the rows it covers, so applying a log record twice is
//! impossible and recovery re-applies exactly the records after it.
//! Commits use `synchronous=NORMAL` (the log is the truth until released);
//! [`Index::commit_durably`](super::Index::commit_durably) forces a synced
//! commit before log segments are released (RELIABILITY rule 7).

use std::path::Path;

use duro_core::journal::{RunKey, EVENT_FORMAT_VERSION};
use duro_core::summary::RunSummary;
use rusqlite::{Connection, OpenFlags, OptionalExtension};

use super::sql_err;
use crate::error::StoreError;

/// Index layout version written by this build.
pub const INDEX_FORMAT_VERSION: u32 = 1;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS runs (
    run_key INTEGER PRIMARY KEY,
    run_id TEXT NOT NULL UNIQUE,
    workflow TEXT NOT NULL,
    version TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    started_at INTEGER,
    updated_at INTEGER NOT NULL,
    completed_at INTEGER,
    current_step TEXT,
    step_count INTEGER NOT NULL,
    completed_step_count INTEGER NOT NULL,
    error_type TEXT,
    error_message TEXT,
    error_retryable INTEGER,
    wake_at INTEGER,
    event_count INTEGER NOT NULL,
    crc INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS runs_by_status ON runs(status, created_at);
CREATE INDEX IF NOT EXISTS runs_by_workflow ON runs(workflow, created_at);
CREATE INDEX IF NOT EXISTS runs_by_created ON runs(created_at);
CREATE TABLE IF NOT EXISTS events (
    run_key INTEGER NOT NULL,
    position INTEGER NOT NULL,
    body BLOB NOT NULL,
    crc INTEGER NOT NULL,
    PRIMARY KEY (run_key, position)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS run_folds (
    run_key INTEGER PRIMARY KEY,
    event_count INTEGER NOT NULL,
    fold BLOB NOT NULL,
    crc INTEGER NOT NULL
);
";

pub(super) const SUMMARY_COLUMNS: &str = "run_key, run_id, workflow, version, status, created_at, started_at, updated_at, \
     completed_at, current_step, step_count, completed_step_count, error_type, error_message, error_retryable, \
     wake_at, event_count, crc";

/// Checksum of an event row: its run, position and bytes.
pub(crate) fn event_crc(run_key: RunKey, position: u32, body: &[u8]) -> u32 {
    let mut crc = crc32c::crc32c(&run_key.to_le_bytes());
    crc = crc32c::crc32c_append(crc, &position.to_le_bytes());
    crc32c::crc32c_append(crc, body)
}

/// Checksum of a `run_folds` row.
pub(crate) fn fold_crc(run_key: RunKey, event_count: u32, fold: &[u8]) -> u32 {
    let mut crc = crc32c::crc32c(&run_key.to_le_bytes());
    crc = crc32c::crc32c_append(crc, &event_count.to_le_bytes());
    crc32c::crc32c_append(crc, fold)
}

/// Checksum of a run row: every column shown to users, in a fixed order.
pub(crate) fn summary_crc(s: &RunSummary) -> u32 {
    fn put(crc: u32, bytes: &[u8]) -> u32 {
        // Length first, so adjacent fields cannot trade bytes.
        crc32c::crc32c_append(
            crc32c::crc32c_append(crc, &(bytes.len() as u32).to_le_bytes()),
            bytes,
        )
    }
    fn opt(crc: u32, value: Option<u64>) -> u32 {
        match value {
            Some(v) => put(crc, &v.to_le_bytes()),
            None => put(crc, &[]),
        }
    }
    let mut crc = put(0, &s.run_key.to_le_bytes());
    for text in [
        s.run_id.as_str(),
        s.workflow.as_str(),
        s.version.as_str(),
        s.status.as_str(),
    ] {
        crc = put(crc, text.as_bytes());
    }
    crc = put(crc, &s.created_at_ms.to_le_bytes());
    crc = opt(crc, s.started_at_ms);
    crc = put(crc, &s.updated_at_ms.to_le_bytes());
    crc = opt(crc, s.completed_at_ms);
    crc = put(crc, s.current_step.as_deref().unwrap_or("\u{0}").as_bytes());
    crc = put(crc, &s.step_count.to_le_bytes());
    crc = put(crc, &s.completed_step_count.to_le_bytes());
    match &s.error {
        Some(e) => {
            crc = put(crc, e.error_type.as_bytes());
            crc = put(crc, e.message.as_bytes());
            crc = put(crc, &[e.retryable as u8]);
        }
        None => crc = put(crc, &[]),
    }
    crc = opt(crc, s.wake_at_ms);
    put(crc, &s.event_count.to_le_bytes())
}

/// Opens a connection with the pragmas both connections use.
pub(crate) fn open_connection(path: &Path, read_only: bool) -> Result<Connection, StoreError> {
    let flags = if read_only {
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX
    } else {
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
    };
    let conn = Connection::open_with_flags(path, flags).map_err(sql_err(path, "open"))?;
    conn.busy_timeout(std::time::Duration::from_secs(30))
        .map_err(sql_err(path, "configure"))?;
    if !read_only {
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(sql_err(path, "configure"))?;
    }
    conn.pragma_update(None, "synchronous", "NORMAL")
        .map_err(sql_err(path, "configure"))?;
    // 4 MiB of page cache per connection: appends touch the tail of each B-tree, and
    // memory per idle run matters more than re-reading cold pages.
    conn.pragma_update(None, "cache_size", -4_000)
        .map_err(sql_err(path, "configure"))?;
    Ok(conn)
}

/// Creates the tables if they are missing, and checks the format versions the
/// index holds (a newer one is refused) and records this build's: the part of
/// [`Index::open`](super::Index::open) that reads and writes `meta`, before `applied_lsn`.
pub(super) fn prepare(conn: &Connection, path: &Path) -> Result<(), StoreError> {
    conn.execute_batch(SCHEMA)
        .map_err(sql_err(path, "create the schema"))?;
    let version: Option<i64> = conn
        .query_row(
            "SELECT value FROM meta WHERE key = 'format_version'",
            [],
            |r| r.get(0),
        )
        .optional()
        .map_err(sql_err(path, "read the format version"))?;
    match version {
        None => {
            conn.execute(
                "INSERT INTO meta(key, value) VALUES ('format_version', ?1)",
                [INDEX_FORMAT_VERSION],
            )
            .map_err(sql_err(path, "write the format version"))?;
        }
        Some(v) if v > INDEX_FORMAT_VERSION as i64 => {
            return Err(StoreError::NewerFormat {
                what: "the run index",
                path: path.to_path_buf(),
                found: v as u32,
                supported: INDEX_FORMAT_VERSION,
            })
        }
        Some(_) => {}
    }
    let event_format: Option<i64> = conn
        .query_row(
            "SELECT value FROM meta WHERE key = 'event_format_version'",
            [],
            |r| r.get(0),
        )
        .optional()
        .map_err(sql_err(path, "read the event format version"))?;
    match event_format {
        Some(v) if v > EVENT_FORMAT_VERSION as i64 => {
            return Err(StoreError::NewerFormat {
                what: "the journal events in the run index",
                path: path.to_path_buf(),
                found: u32::try_from(v).unwrap_or(u32::MAX),
                supported: EVENT_FORMAT_VERSION,
            })
        }
        Some(v) if v == EVENT_FORMAT_VERSION as i64 => {}
        // Absent (format 1, written before the key existed) or older: from now on it may
        // hold events of this build's format.
        _ => {
            conn.execute(
                "INSERT OR REPLACE INTO meta(key, value) VALUES ('event_format_version', ?1)",
                [EVENT_FORMAT_VERSION],
            )
            .map_err(sql_err(path, "write the event format version"))?;
        }
    }
    Ok(())
}
