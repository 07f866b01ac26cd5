//! Target 2, `index_rows`: [`IndexFixture`], an open store whose SQLite index rows are
//! overwritten with arbitrary bytes and odd column values, read through the store, restored.

use std::sync::Arc;
use std::time::Duration;

use duro_core::journal::{ErrorInfo, Event, StepKind};
use duro_store::{EmbeddedStore, RunFilter, Store};
use duro_wal::fs::SimFs;
use rusqlite::types::Value;

use super::super::events::{encode, sample_events};
use super::super::fuzzkit::{crc32c, crc32c_append};
use super::setup::{started, store_options, ScratchDir};

// ---------------------------------------------------------------------------------------
// Target 2: arbitrary rows in the SQLite index.

const RUN_COLUMNS: [&str; 18] = [
    "run_key",
    "run_id",
    "workflow",
    "version",
    "status",
    "created_at",
    "started_at",
    "updated_at",
    "completed_at",
    "current_step",
    "step_count",
    "completed_step_count",
    "error_type",
    "error_message",
    "error_retryable",
    "wake_at",
    "event_count",
    "crc",
];

/// An open store holding one run of several events, and a second connection to its index
/// to overwrite rows with.
pub struct IndexFixture {
    _dir: ScratchDir,
    pub store: EmbeddedStore,
    conn: rusqlite::Connection,
    run_key: u64,
    run_id: String,
    /// (position, body, crc) of every event row as the store wrote it.
    rows: Vec<(i64, Vec<u8>, Option<i64>)>,
    /// The run's row, every column of `RUN_COLUMNS` that exists.
    run_row: Vec<(String, Value)>,
    events_have_crc: bool,
}

fn columns(conn: &rusqlite::Connection, table: &str) -> Vec<String> {
    let mut stmt = conn
        .prepare(&format!("PRAGMA table_info({table})"))
        .unwrap();
    let names = stmt.query_map([], |r| r.get::<_, String>(1)).unwrap();
    names.map(|n| n.unwrap()).collect()
}

/// CRC32C of an event row as the index computes it (when its table has a crc column).
pub fn event_row_crc(run_key: u64, position: u32, body: &[u8]) -> u32 {
    let crc = crc32c(&run_key.to_le_bytes());
    let crc = crc32c_append(crc, &position.to_le_bytes());
    crc32c_append(crc, body)
}

impl IndexFixture {
    #[allow(clippy::new_without_default)]
    pub fn new() -> IndexFixture {
        let dir = ScratchDir::new("index");
        let fs = Arc::new(SimFs::new());
        fs.set_tracing(false);
        let store = EmbeddedStore::open(&dir.path, store_options(fs)).expect("open a store");
        let run_id = "fuzz-index-run".to_string();
        let (outcome, receipt) = store.start_run(&started(&run_id), None).expect("start");
        store.wait_durable(receipt).expect("durable");
        let run_key = outcome.run_key();
        let events = vec![
            Event::StepStarted {
                seq: 0,
                kind: StepKind::Task,
                name: "a".into(),
                attempt: 1,
                at_ms: 2,
            },
            Event::StepFailed {
                seq: 0,
                attempt: 1,
                error: ErrorInfo::new("E", "m", true),
                retry_at_ms: Some(3),
                at_ms: 2,
            },
            Event::StepStarted {
                seq: 0,
                kind: StepKind::Task,
                name: "a".into(),
                attempt: 2,
                at_ms: 3,
            },
            Event::StepCompleted {
                seq: 0,
                attempt: 2,
                output: b"out".to_vec(),
                at_ms: 4,
            },
            Event::StepStarted {
                seq: 1,
                kind: StepKind::Sleep,
                name: "nap".into(),
                attempt: 1,
                at_ms: 5,
            },
            Event::TimerSet {
                seq: 1,
                fire_at_ms: 60,
                at_ms: 5,
            },
        ];
        let receipt = store.append(run_key, 1, &events, None).expect("append");
        store.wait_durable(receipt).expect("durable");
        assert_eq!(store.events(run_key).expect("read back").len(), 7);
        let conn =
            rusqlite::Connection::open(dir.path.join("index.sqlite3")).expect("open the index");
        conn.busy_timeout(Duration::from_secs(30)).unwrap();
        conn.pragma_update(None, "synchronous", "OFF").unwrap();
        let events_have_crc = columns(&conn, "events").iter().any(|c| c == "crc");
        let run_columns = columns(&conn, "runs");
        let rows = {
            let sql = if events_have_crc {
                "SELECT position, body, crc FROM events WHERE run_key = ?1 ORDER BY position"
            } else {
                "SELECT position, body, NULL FROM events WHERE run_key = ?1 ORDER BY position"
            };
            let mut stmt = conn.prepare(sql).unwrap();
            let rows = stmt
                .query_map([run_key as i64], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                .unwrap();
            rows.map(|r| r.unwrap()).collect::<Vec<_>>()
        };
        let run_row = RUN_COLUMNS
            .iter()
            .filter(|c| run_columns.iter().any(|have| have == *c))
            .map(|c| {
                let value: Value = conn
                    .query_row(
                        &format!("SELECT {c} FROM runs WHERE run_key = ?1"),
                        [run_key as i64],
                        |r| r.get(0),
                    )
                    .unwrap();
                (c.to_string(), value)
            })
            .collect();
        IndexFixture {
            _dir: dir,
            store,
            conn,
            run_key,
            run_id,
            rows,
            run_row,
            events_have_crc,
        }
    }

    fn put_event(&self, position: i64, body: Value, crc: Option<i64>) -> rusqlite::Result<()> {
        if self.events_have_crc {
            self.conn.execute(
                "INSERT OR REPLACE INTO events(run_key, position, body, crc) VALUES (?1, ?2, ?3, ?4)",
                rusqlite::params![self.run_key as i64, position, body, crc.unwrap_or(0)],
            )?;
        } else {
            self.conn.execute(
                "INSERT OR REPLACE INTO events(run_key, position, body) VALUES (?1, ?2, ?3)",
                rusqlite::params![self.run_key as i64, position, body],
            )?;
        }
        Ok(())
    }

    fn set_run_column(&self, column: &str, value: &Value) -> rusqlite::Result<()> {
        // run_key is the row's identity: change it by copying the other columns is not
        // needed; overwrite in place (a row under another key is a missing run).
        self.conn.execute(
            &format!("UPDATE runs SET {column} = ?1 WHERE run_key = ?2"),
            rusqlite::params![value, self.run_key as i64],
        )?;
        Ok(())
    }

    /// Overwrites rows as `data` says, reads through the store, restores the rows.
    pub fn run(&self, data: &[u8]) -> Result<(), String> {
        let (&mode, rest) = data.split_first().unwrap_or((&0, &[]));
        let (run_change, body) = if mode & 0x10 != 0 && rest.len() >= 2 {
            (Some((rest[0], rest[1])), &rest[2..])
        } else {
            (None, rest)
        };
        let position = (mode & 7) as i64 % (self.rows.len() as i64 + 1);
        let body_value = if mode & 0x20 != 0 {
            Value::Text(String::from_utf8_lossy(body).into_owned())
        } else {
            Value::Blob(body.to_vec())
        };
        let crc = event_row_crc(self.run_key, position as u32, body) as i64;
        let crc = if mode & 0x08 != 0 { crc ^ 1 } else { crc };
        let sql_err = |e: rusqlite::Error| format!("the fixture's own SQL failed: {e}");
        if mode & 0x40 != 0 {
            self.conn
                .execute(
                    "DELETE FROM events WHERE run_key = ?1 AND position = ?2",
                    rusqlite::params![self.run_key as i64, position],
                )
                .map_err(sql_err)?;
        } else {
            self.put_event(position, body_value, Some(crc))
                .map_err(sql_err)?;
        }
        let mut changed_column = None;
        if let Some((column, kind)) = run_change {
            let (name, _) = &self.run_row[column as usize % self.run_row.len()];
            let mut eight = [0u8; 8];
            let n = body.len().min(8);
            eight[..n].copy_from_slice(&body[..n]);
            let value = match kind % 5 {
                0 => Value::Null,
                1 => Value::Integer(i64::from_le_bytes(eight)),
                2 => Value::Text(String::from_utf8_lossy(body).into_owned()),
                3 => Value::Blob(body.to_vec()),
                _ => Value::Real(f64::from_le_bytes(eight)),
            };
            // NOT NULL and UNIQUE constraints may refuse it: then the row stays as it was.
            if name != "run_key" && self.set_run_column(name, &value).is_ok() {
                changed_column = Some(name.clone());
            }
        }

        // Every read returns, with a value or a typed error.
        let _ = self.store.events(self.run_key).map(|e| e.len());
        let _ = self.store.summary(&self.run_id);
        let _ = self.store.summary_by_key(self.run_key);
        let _ = self.store.list(&RunFilter::default());
        let _ = self.store.claim_due("fuzz", 0, 10);
        if let Err(e) = self.store.events(self.run_key) {
            let _ = e.to_string();
        }

        // Restore.
        if let Some(name) = changed_column {
            let (_, value) = self.run_row.iter().find(|(c, _)| *c == name).unwrap();
            self.set_run_column(&name, value).map_err(sql_err)?;
        }
        match self.rows.get(position as usize) {
            Some((pos, body, crc)) => self
                .put_event(*pos, Value::Blob(body.clone()), *crc)
                .map_err(sql_err)?,
            None => {
                self.conn
                    .execute(
                        "DELETE FROM events WHERE run_key = ?1 AND position = ?2",
                        rusqlite::params![self.run_key as i64, position],
                    )
                    .map_err(sql_err)?;
            }
        }
        Ok(())
    }

    /// The run reads back whole (after every input's rows were restored).
    pub fn check_intact(&self) -> Result<(), String> {
        let events = self
            .store
            .events(self.run_key)
            .map_err(|e| format!("the restored run does not read: {e}"))?;
        if events.len() != self.rows.len() {
            return Err(format!(
                "{} events after restoring {}",
                events.len(),
                self.rows.len()
            ));
        }
        self.store
            .summary(&self.run_id)
            .map_err(|e| e.to_string())?
            .ok_or("summary lost")?;
        Ok(())
    }

    /// Seeds for the body: every event kind's encoding, each at several positions and modes.
    pub fn seeds(&self) -> Vec<Vec<u8>> {
        let mut seeds = Vec::new();
        for (i, event) in sample_events().iter().enumerate() {
            let mode = (i % 8) as u8;
            seeds.push([vec![mode], encode(event)].concat());
        }
        for (pos, body, _) in &self.rows {
            seeds.push([vec![*pos as u8], body.clone()].concat());
            seeds.push([vec![*pos as u8 | 0x10, 4, 2], body.clone()].concat());
            seeds.push([vec![*pos as u8 | 0x10, 10, 1], body.clone()].concat());
        }
        seeds
    }
}

impl Drop for IndexFixture {
    fn drop(&mut self) {
        let _ = self.store.close();
    }
}
