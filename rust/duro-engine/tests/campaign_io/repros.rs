//! Minimal repros of the bugs the I/O-fault campaigns found, one scenario each: a worker in
//! `next_work` and an event-loop caller must learn of the store failure, and appends
//! acknowledged after a reopen past a failed fsync must survive a power loss.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::campaign::*;
use crate::workload;
use duro_core::journal::{Event, StepKind};
use duro_core::workflow::WorkflowDef;
use duro_engine::{Engine, EngineConfig, LaneId, SystemClock, Work};
use duro_store::{EmbeddedStore, Store};
use duro_wal::fs::{Damage, Fault, SimFs};

// ---------------------------------------------------------------------------------------------
// Bugs found by the campaign (each a minimal repro).

/// An engine over a SimFs log whose next fdatasync fails; returns it with its fs.
fn engine_with_failing_sync(
    def: &WorkflowDef,
    lane: LaneId,
) -> (Engine, Arc<SimFs>, tempfile::TempDir, u64) {
    let w = Workload {
        name: "bug",
        ..workload("io-sequence")
    };
    let dir = tempdir();
    let fs = Arc::new(SimFs::new());
    let store: Arc<dyn Store> =
        Arc::new(EmbeddedStore::open(dir.path(), w.options(fs.clone())).unwrap());
    let engine = Engine::open(store, EngineConfig::default(), Arc::new(SystemClock)).unwrap();
    engine.register(def.clone(), lane).unwrap();
    let started = engine
        .start(&def.name, &def.version, "r", vec![], None)
        .unwrap();
    engine.wait_durable(started.receipt).unwrap();
    fs.inject(Fault::FailSyncsFrom {
        op: fs.ops() + 1,
        errno: libc::EIO,
    });
    (engine, fs, dir, started.run_key)
}

/// A worker blocked in `next_work` when the log's fdatasync fails gets
/// `EngineError::Closed` ("the engine is closed"), not the store failure:
/// nothing tells it (or the Python worker, which returns quietly on
/// `EngineClosed`) that the store failed and must be reopened.
///
/// Repro: one run on the Sync lane, its start durable; every fdatasync from
/// now on fails with EIO; the worker takes the first step (its StepStarted
/// was durable), reports it, and calls `next_work` again.
/// Expected: `Err(e)` with `e.is_store_failure()` and a message saying to
/// reopen the store. Actual: `Err(EngineError::Closed)`, "the engine is closed".
#[test]
fn next_work_reports_the_store_failure() {
    let w = workload("io-sequence");
    let def = Workload {
        steps: 3,
        ..w.clone()
    }
    .def();
    let (engine, fs, _dir, _run) = engine_with_failing_sync(&def, LaneId::Sync);
    // The start is durable but the first StepStarted is not yet: its sync fails.
    let error = loop {
        match engine.next_work(LaneId::Sync, Duration::from_secs(2)) {
            Ok(Some(Work::Execute(work))) => {
                let _ = engine.step_succeeded(work.handle, work.seq, work.attempt, b"1".to_vec());
            }
            Ok(Some(Work::Release { .. })) => {}
            Ok(None) => {
                panic!("next_work timed out after the store failed (a worker would poll forever)")
            }
            Err(error) => break error,
        }
    };
    assert!(
        fs.trace().iter().any(|t| t.failed.is_some()),
        "the fault fired"
    );
    assert!(
        error.is_store_failure() && says_reopen(&error.to_string()),
        "next_work after a failed fsync: {error:?} ({error})"
    );
    // The failed appends' acknowledgements will never come: idle workers must not spin for them.
    assert_eq!(engine.acks_pending(), 0);
}

/// An event-loop caller (the async lane: `take_work`, `step_succeeded_inline`
/// and `watch_durable`) is never told that the store failed: the eventfd is
/// signalled, but `take_work` returns `Ok([])`, no durable notice ever comes
/// for the position it waits on, and no finished notice for its run. The
/// Python async lane waits for that durable notice (`until_durable`) and hangs.
///
/// Repro: one run on the Async lane; every fdatasync from now on fails with
/// EIO; take the first step with `take_work`, report it with
/// `step_succeeded_inline(.., inline = true)`, `watch_durable(position)` and
/// `watch(run)`, then poll `take_work` / `take_durable_notices` /
/// `take_finished_notices` for 2 s.
/// Expected: `take_work` returns an error saying to reopen the store (or a
/// notice arrives that lets the caller find out). Actual: nothing but
/// `Ok([])` and empty notices: the caller waits forever.
#[test]
fn event_loop_callers_learn_of_the_store_failure() {
    let w = workload("io-sequence");
    let def = Workload {
        steps: 3,
        ..w.clone()
    }
    .def();
    let (engine, fs, _dir, run) = engine_with_failing_sync(&def, LaneId::Async);
    fs.clear_faults();
    // The first step's start becomes durable (syncs still work), then fsync fails.
    let deadline = Instant::now() + Duration::from_secs(5);
    let work = loop {
        assert!(Instant::now() < deadline, "no first work");
        match engine
            .take_work(LaneId::Async, 16)
            .unwrap()
            .into_iter()
            .find_map(|w| match w {
                Work::Execute(w) => Some(w),
                _ => None,
            }) {
            Some(work) => break work,
            None => std::thread::sleep(Duration::from_millis(1)),
        }
    };
    fs.inject(Fault::FailSyncsFrom {
        op: fs.ops() + 1,
        errno: libc::EIO,
    });
    let next = engine
        .step_succeeded_inline(work.handle, work.seq, work.attempt, b"1".to_vec(), true)
        .unwrap();
    let (_, position) = next.expect("the next step is handed back inline");
    assert!(position > 0, "it must wait for durability");
    engine.watch_durable(position);
    engine.watch(run);
    let until = Instant::now() + Duration::from_secs(2);
    let mut told = None;
    while Instant::now() < until && told.is_none() {
        engine.drain_notifier();
        if let Err(e) = engine.take_work(LaneId::Async, 16) {
            told = Some(e.to_string());
        }
        if !engine.take_durable_notices().is_empty() {
            told = Some("a durable notice for a position that failed to sync".into());
        }
        if !engine.take_finished_notices().is_empty() {
            told = Some("a finished notice".into());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(
        fs.trace().iter().any(|t| t.failed.is_some()),
        "the fault fired"
    );
    assert!(
        engine.durable_position() < position,
        "the failed position is not durable"
    );
    let told = told.expect("the event-loop caller was never told that the store failed");
    assert!(says_reopen(&told), "told: {told}");
}
fn run_started(run_id: &str) -> Event {
    Event::RunStarted {
        run_id: run_id.into(),
        workflow: "wf".into(),
        version: "1".into(),
        input: vec![],
        deadline_ms: None,
        start_at_ms: None,
        step_count: 3,
        at_ms: 1,
    }
}

fn step_started(seq: u32) -> Event {
    Event::StepStarted {
        seq,
        kind: StepKind::Task,
        name: format!("s{seq}"),
        attempt: 1,
        at_ms: 2,
    }
}

/// fsyncgate across a reopen. The fdatasync of a log record fails (EIO): the
/// store fails stop and acknowledges nothing more, as it must. The process
/// reopens the store without a reboot: the record whose sync failed is still
/// in the page cache, so recovery reads it as valid, and the reopened log
/// appends after it. Those later appends are fdatasynced and acknowledged,
/// but the earlier record never reaches the disk (its dirty pages were
/// dropped by the failed writeback; a later fsync does not write them). After
/// a power loss the log has a hole before acknowledged records: recovery
/// calls it corruption and refuses to open, and salvaging (truncating at the
/// hole) would discard records the second process acknowledged.
///
/// Repro (store level, SimFs log): start run `a`, durable; every fdatasync
/// fails from now on; append StepStarted(0) (its wait fails: fail-stop, good);
/// close; clear the fault; reopen on the same SimFs: the journal of `a` has 2
/// events (the never-durable one included); append StepStarted(1),
/// `wait_durable` OK; close; power loss (`crash_image(LoseUnsynced)`); open.
/// Expected: the open succeeds and the acknowledged StepStarted(1) is there
/// (e.g. recovery rewrites and fsyncs the recovered tail before appending
/// after it). Actual: `WalError::Corrupt` ("the record there is invalid, but
/// ... holds a valid record (LSN 3) that starts a later sync group").
#[test]
fn acknowledged_appends_survive_power_loss_after_reopening_past_a_failed_fsync() {
    let dir = tempdir();
    let fs = Arc::new(SimFs::new());
    let options = workload("io-sequence").options(fs.clone());
    let store = EmbeddedStore::open(dir.path(), options.clone()).unwrap();
    let (outcome, receipt) = store.start_run(&run_started("a"), None).unwrap();
    store.wait_durable(receipt).unwrap();
    let key = outcome.run_key();
    fs.inject(Fault::FailSyncsFrom {
        op: fs.ops() + 1,
        errno: libc::EIO,
    });
    let receipt = store.append(key, 1, &[step_started(0)], None).unwrap();
    assert!(
        store.wait_durable(receipt).is_err(),
        "the failed fsync is not acknowledged"
    );
    let _ = store.close();
    drop(store);
    fs.clear_faults();

    let store = EmbeddedStore::open(dir.path(), options).unwrap();
    let events = store.events(key).unwrap();
    assert_eq!(
        events.len(),
        2,
        "the record whose fsync failed is read back from the page cache"
    );
    let receipt = store.append(key, 2, &[step_started(1)], None).unwrap();
    store.wait_durable(receipt).expect("acknowledged");
    store.close().unwrap();
    drop(store);

    let image = Arc::new(fs.crash_image(Damage::LoseUnsynced, 0));
    let store = EmbeddedStore::open(dir.path(), workload("io-sequence").options(image))
        .unwrap_or_else(|e| panic!("power loss after the reopen: {e}"));
    let events = store.events(key).unwrap();
    assert!(
        events.contains(&step_started(1)),
        "the acknowledged append is durable: {events:?}"
    );
}
