//! The SQLite index: the queryable copy of the log (runs and their
//! journals), kept by applying log records in batches.
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
//! [`Index::commit_durably`] forces a synced commit before log segments are
//! released (RELIABILITY rule 7).

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use duro_core::journal::{decode_event, ErrorInfo, Event, RunKey, EVENT_FORMAT_VERSION};
use duro_core::summary::{RunStatus, RunSummary, SummaryFold};
use rusqlite::{params, Connection, OpenFlags, OptionalExtension};

use super::faults::{self, IndexCommitSite, IndexFaults};
use crate::api::RunFilter;
use crate::error::StoreError;
use crate::record::{self, RecordError, RUN_EVENTS, RUN_EVENTS_V1};

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

const SUMMARY_COLUMNS: &str = "run_key, run_id, workflow, version, status, created_at, started_at, updated_at, \
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

/// Run keys count from 1; one beyond 2^62 cannot come from this store (and
/// counting on from it could overflow), so it is corruption.
const MAX_RUN_KEY: RunKey = 1 << 62;

/// Summaries kept for folding new events into; beyond this many, the cache is
/// dropped (a dormant run's summary is refolded from its events when it wakes).
const SUMMARY_CACHE_LIMIT: usize = 4_096;

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

/// What one applied batch changed.
#[derive(Default)]
pub(crate) struct Applied {
    pub last_lsn: u64,
    /// Run ids first written in this batch (no longer "pending" once committed).
    pub created_ids: Vec<String>,
    /// Runs that reached a terminal event.
    pub finished: Vec<RunKey>,
}

/// The injected failure of a commit at `site`, as SQLite would report it (tests only).
fn injected(
    faults: &Option<Arc<dyn IndexFaults>>,
    site: IndexCommitSite,
) -> Option<rusqlite::Error> {
    let io = faults.as_ref()?.before_commit(site)?;
    Some(faults::sqlite_error(site, &io))
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

impl Index {
    pub(crate) fn open(
        path: &Path,
        faults: Option<Arc<dyn IndexFaults>>,
    ) -> Result<Index, StoreError> {
        let conn = open_connection(path, false)?;
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

    /// Applies log records `(lsn, record_type, payload)` in LSN order, in one
    /// transaction, committed at `site`. Records at or below `applied_lsn` are skipped.
    pub(crate) fn apply<'a>(
        &mut self,
        site: IndexCommitSite,
        records: impl Iterator<Item = (u64, u8, &'a [u8])>,
    ) -> Result<Applied, StoreError> {
        let result = self.apply_inner(site, records);
        if result.is_err() {
            // The transaction rolled back; the cached summaries may hold its events.
            self.cache.clear();
        }
        result
    }

    fn apply_inner<'a>(
        &mut self,
        site: IndexCommitSite,
        records: impl Iterator<Item = (u64, u8, &'a [u8])>,
    ) -> Result<Applied, StoreError> {
        let path = self.path.clone();
        let log_dir = self.log_dir.clone();
        let err = sql_err(&path, "apply log records");
        let mut applied = Applied {
            last_lsn: self.applied_lsn,
            ..Applied::default()
        };
        let mut touched: HashSet<RunKey> = HashSet::new();
        let tx = self.conn.transaction().map_err(&err)?;
        {
            let mut insert_event = tx
                .prepare_cached(
                    "INSERT INTO events(run_key, position, body, crc) VALUES (?1, ?2, ?3, ?4)",
                )
                .map_err(&err)?;
            for (lsn, record_type, payload) in records {
                if lsn <= applied.last_lsn {
                    continue;
                }
                let run = record::decode(record_type, payload).map_err(|error| match error {
                    RecordError::UnknownType(record_type) => StoreError::UnknownRecordType {
                        lsn,
                        record_type,
                        known: &[RUN_EVENTS_V1, RUN_EVENTS],
                    },
                    RecordError::NewerEventFormat(found) => StoreError::NewerFormat {
                        what: "journal events in the log",
                        path: log_dir.clone(),
                        found: u32::try_from(found).unwrap_or(u32::MAX),
                        supported: EVENT_FORMAT_VERSION,
                    },
                    RecordError::Bad(detail) => StoreError::BadRecord { lsn, detail },
                })?;
                if run.run_key == 0 || run.run_key > MAX_RUN_KEY {
                    return Err(StoreError::BadRecord {
                        lsn,
                        detail: format!("run key {} is out of range", run.run_key),
                    });
                }
                for (i, body) in run.events.iter().enumerate() {
                    let event = decode_event(body).map_err(|e| StoreError::BadRecord {
                        lsn,
                        detail: e.to_string(),
                    })?;
                    let position = run.first_position + i as u32;
                    let summary = match self.cache.get_mut(&run.run_key) {
                        Some(summary) => summary,
                        None => {
                            let summary = if position == 0 {
                                let s =
                                    RunSummary::start(run.run_key, &event).ok_or_else(|| {
                                        StoreError::BadRecord {
                                            lsn,
                                            detail: format!(
                                                "run #{} starts with {}",
                                                run.run_key,
                                                event.kind_name()
                                            ),
                                        }
                                    })?;
                                applied.created_ids.push(s.run_id.clone());
                                s
                            } else {
                                load_summary(&tx, &path, run.run_key)?.ok_or(
                                    StoreError::BadRecord {
                                        lsn,
                                        detail: format!(
                                            "events for run #{} which has no start",
                                            run.run_key
                                        ),
                                    },
                                )?
                            };
                            self.cache.entry(run.run_key).or_insert(summary)
                        }
                    };
                    if position == 0 {
                        // Already folded by RunSummary::start.
                    } else if position != summary.event_count {
                        return Err(StoreError::BadRecord {
                            lsn,
                            detail: format!(
                                "run #{} event at position {position}, expected {}",
                                run.run_key, summary.event_count
                            ),
                        });
                    } else {
                        summary.apply(&event);
                    }
                    let crc = event_crc(run.run_key, position, body);
                    insert_event
                        .execute(params![run.run_key as i64, position, body, crc])
                        .map_err(&err)?;
                    if event.is_terminal() {
                        applied.finished.push(run.run_key);
                    }
                }
                if !run.events.is_empty() {
                    touched.insert(run.run_key);
                }
                applied.last_lsn = lsn;
            }
            let mut upsert = tx
                .prepare_cached(&format!(
                    // An upsert by key: a run id already held by another key is a UNIQUE
                    // violation (corruption), never a silent replacement of that run.
                    "INSERT INTO runs({SUMMARY_COLUMNS}) VALUES \
                     (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18) \
                     ON CONFLICT(run_key) DO UPDATE SET run_id = excluded.run_id, workflow = excluded.workflow, \
                     version = excluded.version, status = excluded.status, created_at = excluded.created_at, \
                     started_at = excluded.started_at, updated_at = excluded.updated_at, \
                     completed_at = excluded.completed_at, current_step = excluded.current_step, \
                     step_count = excluded.step_count, completed_step_count = excluded.completed_step_count, \
                     error_type = excluded.error_type, error_message = excluded.error_message, \
                     error_retryable = excluded.error_retryable, wake_at = excluded.wake_at, \
                     event_count = excluded.event_count, crc = excluded.crc"
                ))
                .map_err(&err)?;
            for key in &touched {
                let s = &self.cache[key];
                let (error_type, error_message, error_retryable) = match &s.error {
                    Some(e) => (
                        Some(e.error_type.as_str()),
                        Some(e.message.as_str()),
                        Some(e.retryable),
                    ),
                    None => (None, None, None),
                };
                upsert
                    .execute(params![
                        s.run_key as i64,
                        s.run_id,
                        s.workflow,
                        s.version,
                        s.status.as_str(),
                        s.created_at_ms as i64,
                        s.started_at_ms.map(|v| v as i64),
                        s.updated_at_ms as i64,
                        s.completed_at_ms.map(|v| v as i64),
                        s.current_step,
                        s.step_count,
                        s.completed_step_count,
                        error_type,
                        error_message,
                        error_retryable,
                        s.wake_at_ms.map(|v| v as i64),
                        s.event_count,
                        summary_crc(s),
                    ])
                    .map_err(|e| match e.sqlite_error_code() {
                        Some(rusqlite::ErrorCode::ConstraintViolation) => StoreError::BadRecord {
                            lsn: applied.last_lsn,
                            detail: format!(
                                "run id {:?} appears under two run keys (#{})",
                                s.run_id, s.run_key
                            ),
                        },
                        _ => err(e),
                    })?;
            }
            let mut put_fold = tx
                .prepare_cached(
                    "INSERT OR REPLACE INTO run_folds(run_key, event_count, fold, crc) \
                     VALUES (?1, ?2, ?3, ?4)",
                )
                .map_err(&err)?;
            let mut drop_fold = tx
                .prepare_cached("DELETE FROM run_folds WHERE run_key = ?1")
                .map_err(&err)?;
            for key in &touched {
                let s = &self.cache[key];
                if s.status.is_terminal() {
                    drop_fold.execute([s.run_key as i64]).map_err(&err)?;
                } else {
                    let fold = s.fold.encode();
                    let crc = fold_crc(s.run_key, s.event_count, &fold);
                    put_fold
                        .execute(params![s.run_key as i64, s.event_count, fold, crc])
                        .map_err(&err)?;
                }
            }
            tx.execute(
                "INSERT OR REPLACE INTO meta(key, value) VALUES ('applied_lsn', ?1)",
                [applied.last_lsn as i64],
            )
            .map_err(&err)?;
        }
        if let Some(error) = injected(&self.faults, site) {
            // Dropping the transaction rolls it back, as SQLite does after a failed commit.
            return Err(err(error));
        }
        tx.commit().map_err(&err)?;
        self.applied_lsn = applied.last_lsn;
        for key in &applied.finished {
            self.cache.remove(key);
        }
        if self.cache.len() > SUMMARY_CACHE_LIMIT {
            // Mostly dormant runs (sleeping, waiting): refolded from their events when touched.
            self.cache.clear();
        }
        Ok(applied)
    }

    /// Makes every commit so far durable: one commit with `synchronous=FULL`
    /// syncs the SQLite WAL, which holds all earlier commits.
    pub(crate) fn commit_durably(&mut self, site: IndexCommitSite) -> Result<(), StoreError> {
        let err = sql_err(&self.path, "sync the index");
        if let Some(error) = injected(&self.faults, site) {
            return Err(err(error));
        }
        self.conn
            .pragma_update(None, "synchronous", "FULL")
            .map_err(&err)?;
        let result = self
            .conn
            .execute(
                "INSERT OR REPLACE INTO meta(key, value) VALUES ('applied_lsn', ?1)",
                [self.applied_lsn as i64],
            )
            .map(|_| ());
        self.conn
            .pragma_update(None, "synchronous", "NORMAL")
            .map_err(&err)?;
        result.map_err(&err)
    }
}

/// A run's summary to fold its next events into: from its row and its kept fold when they
/// agree, else folded again from its journal.
fn load_summary(
    conn: &Connection,
    path: &Path,
    run_key: RunKey,
) -> Result<Option<RunSummary>, StoreError> {
    if let Some(summary) = kept_summary(conn, path, run_key)? {
        return Ok(Some(summary));
    }
    refold_summary(conn, path, run_key)
}

/// The run's row with its `run_folds` row, if that row is usable (see the module doc).
fn kept_summary(
    conn: &Connection,
    path: &Path,
    run_key: RunKey,
) -> Result<Option<RunSummary>, StoreError> {
    let err = corrupt_rows(path, "read a run");
    let kept: Option<(u32, Vec<u8>, i64)> = conn
        .prepare_cached("SELECT event_count, fold, crc FROM run_folds WHERE run_key = ?1")
        .map_err(&err)?
        .query_row([run_key as i64], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .optional()
        .map_err(&err)?;
    let Some((event_count, bytes, crc)) = kept else {
        return Ok(None);
    };
    if crc != i64::from(fold_crc(run_key, event_count, &bytes)) {
        return Ok(None);
    }
    let Ok(fold) = SummaryFold::decode(&bytes) else {
        return Ok(None);
    };
    Ok(summary_by_key(conn, path, run_key)?
        .filter(|s| s.event_count == event_count && !s.status.is_terminal())
        .map(|mut s| {
            s.fold = fold;
            s
        }))
}

fn refold_summary(
    conn: &Connection,
    path: &Path,
    run_key: RunKey,
) -> Result<Option<RunSummary>, StoreError> {
    let events = read_events(conn, path, run_key)?;
    let Some(first) = events.first() else {
        return Ok(None);
    };
    let mut summary =
        RunSummary::start(run_key, first).ok_or_else(|| StoreError::IndexCorrupt {
            path: path.to_path_buf(),
            detail: format!("run #{run_key} does not start with run_started"),
        })?;
    for event in &events[1..] {
        summary.apply(event);
    }
    Ok(Some(summary))
}

pub(crate) fn read_events(
    conn: &Connection,
    path: &Path,
    run_key: RunKey,
) -> Result<Vec<Event>, StoreError> {
    read_events_into(Vec::new(), conn, path, run_key)
}

/// `read_events`, appending to `events` (empty, maybe with capacity reserved).
fn read_events_into(
    mut events: Vec<Event>,
    conn: &Connection,
    path: &Path,
    run_key: RunKey,
) -> Result<Vec<Event>, StoreError> {
    let err = sql_err(path, "read a journal");
    let mut stmt = conn
        .prepare_cached(
            "SELECT position, body, crc FROM events WHERE run_key = ?1 ORDER BY position",
        )
        .map_err(&err)?;
    let mut rows = stmt.query([run_key as i64]).map_err(&err)?;
    while let Some(row) = rows.next().map_err(&err)? {
        let position: i64 = row.get(0).map_err(&err)?;
        if position != events.len() as i64 {
            return Err(StoreError::IndexCorrupt {
                path: path.to_path_buf(),
                detail: format!("run #{run_key} is missing event {}", events.len()),
            });
        }
        let body =
            row.get_ref(1)
                .map_err(&err)?
                .as_blob()
                .map_err(|e| StoreError::IndexCorrupt {
                    path: path.to_path_buf(),
                    detail: e.to_string(),
                })?;
        let crc: i64 = row.get(2).map_err(&err)?;
        if crc != event_crc(run_key, position as u32, body) as i64 {
            return Err(StoreError::IndexCorrupt {
                path: path.to_path_buf(),
                detail: format!(
                    "table events, run #{run_key} position {position}: checksum mismatch"
                ),
            });
        }
        events.push(decode_event(body).map_err(|e| StoreError::IndexCorrupt {
            path: path.to_path_buf(),
            detail: format!("run #{run_key} event {position}: {e}"),
        })?);
    }
    Ok(events)
}

fn summary_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<RunSummary> {
    let status: String = row.get(4)?;
    let error_type: Option<String> = row.get(12)?;
    let opt_u64 = |v: Option<i64>| v.map(|v| v as u64);
    Ok(RunSummary {
        run_key: row.get::<_, i64>(0)? as u64,
        run_id: row.get(1)?,
        workflow: row.get(2)?,
        version: row.get(3)?,
        status: RunStatus::parse(&status).ok_or_else(|| {
            rusqlite::Error::FromSqlConversionFailure(
                4,
                rusqlite::types::Type::Text,
                format!("unknown status {status:?}").into(),
            )
        })?,
        created_at_ms: row.get::<_, i64>(5)? as u64,
        started_at_ms: opt_u64(row.get(6)?),
        updated_at_ms: row.get::<_, i64>(7)? as u64,
        completed_at_ms: opt_u64(row.get(8)?),
        current_step: row.get(9)?,
        step_count: row.get(10)?,
        completed_step_count: row.get(11)?,
        error: match error_type {
            Some(error_type) => Some(ErrorInfo {
                error_type,
                message: row.get::<_, Option<String>>(13)?.unwrap_or_default(),
                retryable: row.get::<_, Option<bool>>(14)?.unwrap_or(false),
            }),
            None => None,
        },
        wake_at_ms: opt_u64(row.get(15)?),
        event_count: row.get(16)?,
        fold: Default::default(),
    })
}

/// The run's row (checksum checked), on `conn` (either connection, or a transaction).
fn summary_by_key(
    conn: &Connection,
    path: &Path,
    run_key: RunKey,
) -> Result<Option<RunSummary>, StoreError> {
    let err = corrupt_rows(path, "read a run");
    let mut stmt = conn
        .prepare_cached(&format!(
            "SELECT {SUMMARY_COLUMNS} FROM runs WHERE run_key = ?1"
        ))
        .map_err(&err)?;
    stmt.query_row([run_key as i64], checked_summary)
        .optional()
        .map_err(&err)
}

/// Reads a run row and checks its checksum (a mismatch is reported as a conversion failure
/// on the `crc` column, turned into `IndexCorrupt` by [`corrupt_rows`]).
fn checked_summary(row: &rusqlite::Row<'_>) -> rusqlite::Result<RunSummary> {
    let summary = summary_from_row(row)?;
    let crc: i64 = row.get(17)?;
    if crc != summary_crc(&summary) as i64 {
        return Err(rusqlite::Error::FromSqlConversionFailure(
            17,
            rusqlite::types::Type::Integer,
            format!(
                "table runs, run #{} ({:?}): checksum mismatch",
                summary.run_key, summary.run_id
            )
            .into(),
        ));
    }
    Ok(summary)
}

/// Turns a failed row conversion (a bad checksum, an unknown status) into `IndexCorrupt`.
fn corrupt_rows<'p>(
    path: &'p Path,
    op: &'static str,
) -> impl Fn(rusqlite::Error) -> StoreError + 'p {
    move |source| match source {
        rusqlite::Error::FromSqlConversionFailure(_, _, detail) => StoreError::IndexCorrupt {
            path: path.to_path_buf(),
            detail: detail.to_string(),
        },
        other => sql_err(path, op)(other),
    }
}

/// Queries on the read connection.
pub(crate) struct Reader {
    pub(crate) conn: Connection,
    pub(crate) path: PathBuf,
}

impl Reader {
    pub(crate) fn summary_by_id(&self, run_id: &str) -> Result<Option<RunSummary>, StoreError> {
        let err = corrupt_rows(&self.path, "read a run");
        let mut stmt = self
            .conn
            .prepare_cached(&format!(
                "SELECT {SUMMARY_COLUMNS} FROM runs WHERE run_id = ?1"
            ))
            .map_err(&err)?;
        stmt.query_row([run_id], checked_summary)
            .optional()
            .map_err(&err)
    }

    pub(crate) fn run_key_of(&self, run_id: &str) -> Result<Option<RunKey>, StoreError> {
        let err = sql_err(&self.path, "look up a run id");
        let mut stmt = self
            .conn
            .prepare_cached("SELECT run_key FROM runs WHERE run_id = ?1")
            .map_err(&err)?;
        stmt.query_row([run_id], |r| r.get::<_, i64>(0))
            .optional()
            .map(|k| k.map(|k| k as u64))
            .map_err(&err)
    }

    pub(crate) fn summary_by_key(&self, run_key: RunKey) -> Result<Option<RunSummary>, StoreError> {
        summary_by_key(&self.conn, &self.path, run_key)
    }

    /// The run's journal, checked against its summary's event count (rows that
    /// went missing are corruption too).
    pub(crate) fn events(&self, run_key: RunKey) -> Result<Vec<Event>, StoreError> {
        // One read transaction: the count and the rows from the same commit of the indexer.
        let _snapshot = self
            .conn
            .unchecked_transaction()
            .map_err(sql_err(&self.path, "read a journal"))?;
        let summary = self.summary_by_key(run_key)?;
        // Sized up front: a long journal would otherwise be copied on every doubling.
        let expected = summary.as_ref().map_or(0, |s| s.event_count as usize);
        let events = read_events_into(
            Vec::with_capacity(expected.min(1 << 20)),
            &self.conn,
            &self.path,
            run_key,
        )?;
        if let Some(summary) = summary {
            if events.len() != summary.event_count as usize {
                return Err(StoreError::IndexCorrupt {
                    path: self.path.clone(),
                    detail: format!(
                        "run #{run_key} has {} events in table events but its summary counts {}",
                        events.len(),
                        summary.event_count
                    ),
                });
            }
        }
        Ok(events)
    }

    pub(crate) fn list(&self, filter: &RunFilter) -> Result<Vec<RunSummary>, StoreError> {
        let err = sql_err(&self.path, "list runs");
        let mut sql = format!("SELECT {SUMMARY_COLUMNS} FROM runs WHERE 1=1");
        let mut args: Vec<rusqlite::types::Value> = Vec::new();
        if !filter.statuses.is_empty() {
            let marks: Vec<String> = filter
                .statuses
                .iter()
                .map(|s| {
                    args.push(s.as_str().to_owned().into());
                    format!("?{}", args.len())
                })
                .collect();
            sql.push_str(&format!(" AND status IN ({})", marks.join(", ")));
        }
        if let Some(workflow) = &filter.workflow {
            args.push(workflow.clone().into());
            sql.push_str(&format!(" AND workflow = ?{}", args.len()));
        }
        if let Some(after) = filter.created_after_ms {
            args.push((after as i64).into());
            sql.push_str(&format!(" AND created_at >= ?{}", args.len()));
        }
        if let Some(before) = filter.created_before_ms {
            args.push((before as i64).into());
            sql.push_str(&format!(" AND created_at < ?{}", args.len()));
        }
        args.push((filter.effective_limit() as i64).into());
        sql.push_str(&format!(
            " ORDER BY created_at DESC, run_key DESC LIMIT ?{}",
            args.len()
        ));
        let mut stmt = self.conn.prepare_cached(&sql).map_err(&err)?;
        let rows = stmt
            .query_map(rusqlite::params_from_iter(args), checked_summary)
            .map_err(&err)?;
        rows.collect::<Result<Vec<_>, _>>()
            .map_err(corrupt_rows(&self.path, "list runs"))
    }

    pub(crate) fn unfinished(&self, limit: usize) -> Result<Vec<RunSummary>, StoreError> {
        let err = sql_err(&self.path, "list unfinished runs");
        let mut stmt = self
            .conn
            .prepare_cached(&format!(
                "SELECT {SUMMARY_COLUMNS} FROM runs WHERE status NOT IN ('completed', 'failed', 'cancelled') \
                 ORDER BY run_key LIMIT ?1"
            ))
            .map_err(&err)?;
        let rows = stmt
            .query_map([limit.min(i64::MAX as usize) as i64], checked_summary)
            .map_err(&err)?;
        rows.collect::<Result<Vec<_>, _>>()
            .map_err(corrupt_rows(&self.path, "list unfinished runs"))
    }
}
