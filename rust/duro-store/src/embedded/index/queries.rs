//! The read side: the queries the store answers readers with, on the read
//! connection (summaries by id or key, journals, listings, unfinished runs).

use std::path::PathBuf;

use duro_core::journal::{Event, RunKey};
use duro_core::summary::RunSummary;
use rusqlite::{Connection, OptionalExtension};

use super::rows::{checked_summary, corrupt_rows, summary_by_key, visit_events};
use super::schema::SUMMARY_COLUMNS;
use super::sql_err;
use crate::api::RunFilter;
use crate::error::StoreError;

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
    /// went missing are corruption too), handed to `visit` event by event.
    /// Returns how many events there were.
    pub(crate) fn visit_events(
        &self,
        run_key: RunKey,
        visit: &mut dyn FnMut(Event),
    ) -> Result<u32, StoreError> {
        // One read transaction: the count and the rows from the same commit of the indexer.
        let _snapshot = self
            .conn
            .unchecked_transaction()
            .map_err(sql_err(&self.path, "read a journal"))?;
        let summary = self.summary_by_key(run_key)?;
        let count = visit_events(&self.conn, &self.path, run_key, visit)?;
        if let Some(summary) = summary {
            if count != summary.event_count {
                return Err(StoreError::IndexCorrupt {
                    path: self.path.clone(),
                    detail: format!(
                        "run #{run_key} has {count} events in table events but its summary counts {}",
                        summary.event_count
                    ),
                });
            }
        }
        Ok(count)
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
