//! Target 1, `store_records`: log records with arbitrary payloads → `EmbeddedStore::open`,
//! then everything the index holds is read back and the store must take writes.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use duro_core::journal::Event;
use duro_store::{EmbeddedStore, RunFilter, StartOutcome, Store};
use duro_wal::fs::SimFs;

use super::record::LogInput;
use super::setup::{started, store_options, ScratchDir};

// ---------------------------------------------------------------------------------------
// Target 1: log records → EmbeddedStore::open.

fn segment_path(dir: &Path) -> PathBuf {
    dir.join("wal").join("00000000000000000001.wal")
}

/// Opens a store on the records of `data` (see the module doc): `Err` for a broken property.
pub fn store_target(data: &[u8]) -> Result<(), String> {
    let input = LogInput::from_bytes(data);
    let dir = ScratchDir::new("store");
    let fs = Arc::new(SimFs::new());
    fs.set_tracing(false);
    fs.put_file(&segment_path(&dir.path), &input.segment_image());
    let store = match EmbeddedStore::open(&dir.path, store_options(fs)) {
        Ok(store) => store,
        Err(error) => {
            let _ = error.to_string();
            return Ok(());
        }
    };
    let result = exercise(&store);
    let closed = store.close().map_err(|e| format!("close failed: {e}"));
    result.and(closed)
}

/// Reads back everything an index built from the log holds, then writes to it.
fn exercise(store: &EmbeddedStore) -> Result<(), String> {
    let runs = store
        .list(&RunFilter {
            limit: 100_000,
            ..RunFilter::default()
        })
        .map_err(|e| format!("an index built from the log cannot be listed: {e}"))?;
    let mut unfinished = None;
    for summary in &runs {
        let events = store.events(summary.run_key).map_err(|e| {
            format!(
                "run #{} ({:?}) was indexed but its journal cannot be read: {e}",
                summary.run_key, summary.run_id
            )
        })?;
        if events.len() != summary.event_count as usize {
            return Err(format!(
                "run #{}: {} events but the summary counts {}",
                summary.run_key,
                events.len(),
                summary.event_count
            ));
        }
        if !matches!(events.first(), Some(Event::RunStarted { .. })) {
            return Err(format!(
                "run #{} does not start with run_started",
                summary.run_key
            ));
        }
        match store.summary(&summary.run_id) {
            Ok(Some(_)) => {}
            Ok(None) => {
                return Err(format!(
                    "run {:?} is listed but summary() does not find it",
                    summary.run_id
                ))
            }
            Err(e) => return Err(format!("summary({:?}) failed: {e}", summary.run_id)),
        }
        if !summary.status.is_terminal() && unfinished.is_none() {
            unfinished = Some(summary.clone());
        }
    }
    let _ = store
        .claim_due("fuzz", 0, 1000)
        .map_err(|e| format!("claim_due failed: {e}"))?;
    for key in [0, 1, 2, u64::MAX, i64::MAX as u64] {
        let _ = store.events(key);
        let _ = store.summary_by_key(key);
    }
    // The store keeps working: a new run, and an append to an unfinished one.
    let (outcome, receipt) = store
        .start_run(&started("fuzz-new-run"), None)
        .map_err(|e| format!("start_run after recovery failed: {e}"))?;
    store
        .wait_durable(receipt)
        .map_err(|e| format!("the new run did not become durable: {e}"))?;
    if let StartOutcome::Created { run_key } = outcome {
        if store
            .events(run_key)
            .map_err(|e| format!("the new run cannot be read: {e}"))?
            .len()
            != 1
        {
            return Err("the new run does not hold its start".into());
        }
    }
    if let Some(summary) = unfinished {
        let receipt = store
            .append(
                summary.run_key,
                summary.event_count,
                &[Event::Paused { at_ms: 2 }],
                None,
            )
            .map_err(|e| format!("append to unfinished run #{} failed: {e}", summary.run_key))?;
        store
            .wait_durable(receipt)
            .map_err(|e| format!("append did not become durable: {e}"))?;
    }
    Ok(())
}
