//! Applying log records to the index: one transaction per batch, which
//! inserts the events, folds them into their runs' summaries (kept in memory
//! for unfinished runs, and in `run_folds` so a run folds on after a reopen
//! without re-reading its journal), writes the summaries and `applied_lsn`,
//! and commits (with injected failures in tests). Also the synced commit that
//! precedes releasing log segments.

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;

use duro_core::journal::{decode_event, RunKey, EVENT_FORMAT_VERSION};
use duro_core::summary::{RunSummary, SummaryFold};
use rusqlite::{params, Connection, OptionalExtension};

use super::rows::{corrupt_rows, read_events, summary_by_key};
use super::schema::{event_crc, fold_crc, summary_crc, SUMMARY_COLUMNS};
use super::{sql_err, Index};
use crate::embedded::faults::{self, IndexCommitSite, IndexFaults};
use crate::error::StoreError;
use crate::record::{self, RecordError, RUN_EVENTS, RUN_EVENTS_V1};

/// Run keys count from 1; one beyond 2^62 cannot come from this store (and
/// counting on from it could overflow), so it is corruption.
const MAX_RUN_KEY: RunKey = 1 << 62;

/// Summaries kept for folding new events into; beyond this many, the cache is
/// dropped (a dormant run's summary is refolded from its events when it wakes).
const SUMMARY_CACHE_LIMIT: usize = 4_096;

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

impl Index {
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
                    // violation (corruption), never a silent replacement of that run. The
                    // update leaves out what a run's start fixed (run_id, workflow, version,
                    // created_at): SQLite then leaves the indexes on them alone, and a run
                    // touched by every transaction costs one index update (status), not four.
                    "INSERT INTO runs({SUMMARY_COLUMNS}) VALUES \
                     (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18) \
                     ON CONFLICT(run_key) DO UPDATE SET status = excluded.status, \
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

/// The run's row with its `run_folds` row, if that row is usable (see the schema module doc).
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
