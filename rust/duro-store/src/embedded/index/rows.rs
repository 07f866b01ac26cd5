//! Reading rows back on either connection: run rows into summaries and event
//! rows into journals, each row's checksum checked (a mismatch, a gap or a row
//! that does not convert is [`StoreError::IndexCorrupt`], never returned).

use std::path::Path;

use duro_core::journal::{decode_event, ErrorInfo, Event, RunKey};
use duro_core::summary::{RunStatus, RunSummary};
use rusqlite::{Connection, OptionalExtension};

use super::schema::{event_crc, summary_crc, SUMMARY_COLUMNS};
use super::sql_err;
use crate::error::StoreError;

pub(crate) fn read_events(
    conn: &Connection,
    path: &Path,
    run_key: RunKey,
) -> Result<Vec<Event>, StoreError> {
    let mut events = Vec::new();
    visit_events(conn, path, run_key, &mut |e| events.push(e))?;
    Ok(events)
}

/// The run's event rows in position order, each checked and decoded and handed to
/// `visit`; returns how many there were. A gap, a bad checksum or an undecodable body
/// stops the read with [`StoreError::IndexCorrupt`] (after the events before it).
pub(super) fn visit_events(
    conn: &Connection,
    path: &Path,
    run_key: RunKey,
    visit: &mut dyn FnMut(Event),
) -> Result<u32, StoreError> {
    let err = sql_err(path, "read a journal");
    let mut stmt = conn
        .prepare_cached(
            "SELECT position, body, crc FROM events WHERE run_key = ?1 ORDER BY position",
        )
        .map_err(&err)?;
    let mut rows = stmt.query([run_key as i64]).map_err(&err)?;
    let mut count: u32 = 0;
    while let Some(row) = rows.next().map_err(&err)? {
        let position: i64 = row.get(0).map_err(&err)?;
        if position != i64::from(count) {
            return Err(StoreError::IndexCorrupt {
                path: path.to_path_buf(),
                detail: format!("run #{run_key} is missing event {count}"),
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
        if crc != event_crc(run_key, count, body) as i64 {
            return Err(StoreError::IndexCorrupt {
                path: path.to_path_buf(),
                detail: format!(
                    "table events, run #{run_key} position {position}: checksum mismatch"
                ),
            });
        }
        visit(decode_event(body).map_err(|e| StoreError::IndexCorrupt {
            path: path.to_path_buf(),
            detail: format!("run #{run_key} event {position}: {e}"),
        })?);
        count += 1;
    }
    Ok(count)
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
pub(super) fn summary_by_key(
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
pub(super) fn checked_summary(row: &rusqlite::Row<'_>) -> rusqlite::Result<RunSummary> {
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
pub(super) fn corrupt_rows<'p>(
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
