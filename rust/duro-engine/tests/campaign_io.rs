//! I/O-error campaign (issue "Crash and fault campaigns", item 3): EIO and
//! ENOSPC on every file operation the canonical workloads reach, once
//! (`Fault::FailOp`) and persistently (`Fault::FailSyncsFrom`,
//! `Fault::FailWritesFrom`), through the real `Engine` over an
//! `EmbeddedStore` whose log is on a `SimFs`.
//!
//! A clean run of each workload is traced; its operations are the injection
//! points (segment creation: create, zero-fill write, fdatasync, rename,
//! directory fsync; record writes and fdatasyncs; release unlinks and their
//! directory fsyncs). For every point × errno × fault kind the workload runs
//! with the fault planned, then:
//! - the life must end without a hang (every wait is bounded): either every
//!   run completed, or the caller got an error;
//! - a caller that is still waiting gets a clear error: after the drive stops,
//!   `wait_finished` on an unfinished run (bounded, 2 s) and `start` must fail
//!   with a message that says to reopen the store, never time out;
//! - zero acknowledgements after the failed sync: the store is recovered from
//!   `crash_image(LoseUnsynced)` (a failed fdatasync drops its dirty pages in
//!   the SimFs model, so a retried or ignored fsync would lose data there) and
//!   every acknowledgement the caller saw (handed-out work, step results that
//!   led to it, start receipts, published outcomes) must be in the recovered
//!   state, and nothing else the caller did not produce;
//! - the next open recovers and every run completes with the caller's outputs:
//!   from the crash image, and (a share of the cases; all in long mode) on the
//!   same SimFs with the fault cleared, as a process reopening without a reboot
//!   would.
//!
//! Bugs found here keep a minimal repro as a test at the end of the file: `next_work`
//! reported "the engine is closed" instead of the store failure; an event-loop caller was
//! never told; and a reopen without a reboot after a failed fsync built on records that
//! were never durable, so a power loss after it left a hole the next open refused (fixed:
//! recovery copies the last segment's valid prefix to a new, synced file).
//!
//! Default (CI) mode spreads the points (at most 60 per fault kind and errno)
//! and takes about 25 s in debug on two cores; `DURO_CAMPAIGN_LONG=1` injects
//! at every operation, uses bigger workloads and reopens every case on the
//! same SimFs too.

mod campaign;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use campaign::*;
use duro_core::journal::{Event, StepKind};
use duro_core::workflow::WorkflowDef;
use duro_engine::{Engine, EngineConfig, LaneId, SystemClock, Wait, Work};
use duro_store::{EmbeddedStore, Store};
use duro_wal::fs::{Damage, Fault, OpKind, SimFs, TraceEntry};

const LIFE_DEADLINE: Duration = Duration::from_secs(20);

fn workload(name: &'static str) -> Workload {
    let long = long_mode();
    let base = Workload {
        name,
        runs: 1,
        steps: 1,
        output_bytes: 64,
        threads: 1,
        segment_size: 64 * 1024,
        release_every: Duration::from_millis(1),
        flaky: false,
    };
    match name {
        // One run, steps in sequence: one write and one fdatasync per step.
        "io-sequence" => Workload {
            steps: if long { 100 } else { 25 },
            ..base
        },
        // Several runs sharing group commits, outputs big enough to rotate
        // 64 KiB segments, and compaction releasing them as it goes.
        "io-mixed" => Workload {
            runs: 8,
            steps: if long { 16 } else { 8 },
            output_bytes: 3_000,
            threads: 2,
            flaky: true,
            ..base
        },
        other => panic!("no workload {other}"),
    }
}

fn errno_name(errno: i32) -> &'static str {
    match errno {
        libc::EIO => "EIO",
        libc::ENOSPC => "ENOSPC",
        _ => "errno",
    }
}

fn fault_name(fault: Fault) -> String {
    match fault {
        Fault::FailOp { op, errno } => format!("FailOp(op {op}, {})", errno_name(errno)),
        Fault::FailSyncsFrom { op, errno } => {
            format!("FailSyncsFrom(op {op}, {})", errno_name(errno))
        }
        Fault::FailWritesFrom { op, errno } => {
            format!("FailWritesFrom(op {op}, {})", errno_name(errno))
        }
        Fault::CrashAt { op } => format!("CrashAt(op {op})"),
    }
}

#[derive(Debug, Default)]
struct Tally {
    cases: u64,
    fired: u64,
    by_kind: HashMap<String, u64>,
    fail_stopped: u64,
    completed_anyway: u64,
    same_fs_reopens: u64,
    recoveries: u64,
    /// Callers blocked in `next_work` got "the engine is closed" (the fixed bug
    /// of `next_work_reports_the_store_failure`).
    next_work_closed: u64,
    violations: Vec<String>,
}

impl Tally {
    fn add(&mut self, context: &str, found: Vec<String>) {
        for v in found {
            if self.violations.len() < 40 {
                self.violations.push(format!("[{context}] {v}"));
            }
        }
    }
}

/// After the drive stopped on an error: a caller waiting for a result and a
/// caller starting a run must both get the clear, fail-stop error.
fn probe(engine: &Engine, report: &LifeReport) -> Vec<String> {
    let mut v = Vec::new();
    if report.completed {
        return v;
    }
    if let Some((_, run)) = report.keys.first() {
        if let Err(e) = engine.start(WORKFLOW, VERSION, run, Workload::input(run), None) {
            if !says_reopen(&e.to_string()) {
                v.push(format!(
                    "start after the fault: the error does not say to reopen: {e}"
                ));
            }
        }
    }
    // A run whose start was acknowledged.
    let began = Instant::now();
    if let Some(key) = report.started_keys.first() {
        match engine.wait_finished(*key, Some(Duration::from_secs(2))) {
            Ok(Wait::Finished(_)) => {}
            Ok(Wait::TimedOut) => {
                v.push(format!("wait_finished(#{key}) after the fault timed out: a caller waiting for it would hang"))
            }
            Ok(Wait::Blocked(reason)) => v.push(format!("#{key} blocked after the fault: {reason}")),
            Err(e) if says_reopen(&e.to_string()) => {}
            Err(e) => v.push(format!("wait_finished(#{key}) after the fault: the error does not say to reopen: {e}")),
        }
    }
    if began.elapsed() > Duration::from_secs(1) {
        v.push(format!(
            "wait_finished took {:?} to report the failure",
            began.elapsed()
        ));
    }
    v
}

fn recovery_checks(w: &Workload, oracle: &Oracle, life: &LifeReport, what: &str) -> Vec<String> {
    let mut v = Vec::new();
    if !life.completed || !life.errors.is_empty() {
        v.push(format!(
            "{what} did not complete cleanly (timed out {}): {:?}",
            life.timed_out, life.errors
        ));
        return v;
    }
    let (Some(recovered), Some(final_state)) = (&life.recovered, &life.final_state) else {
        v.push(format!("{what}: no state"));
        return v;
    };
    v.extend(check_final(
        w,
        oracle,
        final_state,
        &format!("{what} final state"),
    ));
    v.extend(check_prefix(
        recovered,
        final_state,
        &format!("{what} recovered vs final"),
    ));
    v
}

fn io_campaign(
    w: &Workload,
    points: u64,
    same_fs_every: u64,
    power_loss_after_reopen: bool,
) -> Tally {
    let long = long_mode();
    let began = Instant::now();
    // The clean run: its trace gives the injection points.
    let trace: Vec<TraceEntry> = {
        let fs = Arc::new(SimFs::new());
        let dir = tempdir();
        let mut oracle = Oracle::default();
        let report = run_life(
            LifeSpec {
                w,
                fs: fs.clone(),
                dir: dir.path(),
                life: 1,
                deadline: LIFE_DEADLINE,
                probe: None,
            },
            &mut oracle,
        );
        assert!(
            report.completed && report.errors.is_empty(),
            "clean run of {}: {report:?}",
            w.name
        );
        let v = check_final(
            w,
            &oracle,
            report.final_state.as_ref().unwrap(),
            "clean run",
        );
        assert!(
            v.is_empty() && oracle.violations.is_empty(),
            "{v:?} {:?}",
            oracle.violations
        );
        println!(
            "{}: clean run {:?}, {} SimFs ops ({:?})",
            w.name,
            report.elapsed,
            fs.ops(),
            fs.counts()
        );
        fs.trace()
    };
    let total = trace.len() as u64;
    let of_kind = |kinds: &[OpKind]| -> Vec<u64> {
        trace
            .iter()
            .filter(|t| kinds.contains(&t.kind))
            .map(|t| t.op)
            .collect()
    };
    let pick = |ops: Vec<u64>| -> Vec<u64> {
        if long || ops.len() as u64 <= points {
            return ops;
        }
        spread(ops.len() as u64, points)
            .into_iter()
            .map(|i| ops[i as usize - 1])
            .collect()
    };
    let mut plans: Vec<Fault> = Vec::new();
    for errno in [libc::EIO, libc::ENOSPC] {
        for op in pick((1..=total).collect()) {
            plans.push(Fault::FailOp { op, errno });
        }
        for op in pick(of_kind(&[OpKind::SyncData, OpKind::SyncDir])) {
            plans.push(Fault::FailSyncsFrom { op, errno });
        }
        for op in pick(of_kind(&[OpKind::Write])) {
            plans.push(Fault::FailWritesFrom { op, errno });
        }
    }
    let mut tally = Tally::default();
    for (i, fault) in plans.into_iter().enumerate() {
        tally.cases += 1;
        let context = format!("{} {}", w.name, fault_name(fault));
        let fs = Arc::new(SimFs::new());
        fs.inject(fault);
        let dir = tempdir();
        let mut oracle = Oracle::default();
        let first = run_life(
            LifeSpec {
                w,
                fs: fs.clone(),
                dir: dir.path(),
                life: 1,
                deadline: LIFE_DEADLINE,
                probe: Some(&probe),
            },
            &mut oracle,
        );
        let mut found = std::mem::take(&mut oracle.violations);
        let trace = fs.trace();
        let failed: Vec<&TraceEntry> = trace.iter().filter(|t| t.failed.is_some()).collect();
        if let Some(first_failure) = failed.first() {
            tally.fired += 1;
            let place = first_failure
                .path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let place = if place.ends_with(".tmp") {
                "new segment"
            } else if place.ends_with(".wal") {
                "segment"
            } else {
                "log directory"
            };
            *tally
                .by_kind
                .entry(format!("{:?} on {place}", first_failure.kind))
                .or_default() += 1;
        }
        if first.timed_out {
            found.push(format!(
                "hang: the life neither completed nor reported an error within {LIFE_DEADLINE:?}"
            ));
        }
        if first.completed {
            if !failed.is_empty() {
                tally.completed_anyway += 1;
            }
        } else {
            tally.fail_stopped += 1;
            if first.errors.is_empty() {
                found.push("the workload stopped without an error reaching the caller".into());
            }
            if first
                .errors
                .iter()
                .any(|(api, e)| *api == "next_work" && e == "the engine is closed")
            {
                tally.next_work_closed += 1;
            }
        }
        if failed.is_empty() && !first.completed {
            found.push(format!(
                "the fault never fired, yet the workload did not complete: {:?}",
                first.errors
            ));
        }
        // Recover from what survives a power loss now.
        let saved = save_index(dir.path());
        let image = Arc::new(fs.crash_image(Damage::LoseUnsynced, i as u64));
        let mut recovered = oracle.clone();
        let second = run_life(
            LifeSpec {
                w,
                fs: image,
                dir: dir.path(),
                life: 2,
                deadline: LIFE_DEADLINE,
                probe: None,
            },
            &mut recovered,
        );
        tally.recoveries += 1;
        found.extend(std::mem::take(&mut recovered.violations));
        found.extend(recovery_checks(
            w,
            &recovered,
            &second,
            "recovery from the crash image",
        ));
        // Reopen on the same file system, the fault cleared (no reboot: the page
        // cache still shows what a failed sync never made durable), then lose
        // power and check that what this life acknowledged is durable.
        if long || (same_fs_every > 0 && i as u64 % same_fs_every == 0) {
            tally.same_fs_reopens += 1;
            saved.restore(dir.path());
            fs.clear_faults();
            let mut same = oracle.clone();
            let reopened = run_life(
                LifeSpec {
                    w,
                    fs: fs.clone(),
                    dir: dir.path(),
                    life: 2,
                    deadline: LIFE_DEADLINE,
                    probe: None,
                },
                &mut same,
            );
            tally.recoveries += 1;
            found.extend(std::mem::take(&mut same.violations));
            found.extend(recovery_checks(
                w,
                &same,
                &reopened,
                "reopen on the same file system",
            ));
            if !power_loss_after_reopen {
                tally.add(&context, found);
                continue;
            }
            let image = Arc::new(fs.crash_image(Damage::LoseUnsynced, 7));
            let third = run_life(
                LifeSpec {
                    w,
                    fs: image,
                    dir: dir.path(),
                    life: 3,
                    deadline: LIFE_DEADLINE,
                    probe: None,
                },
                &mut same,
            );
            tally.recoveries += 1;
            found.extend(std::mem::take(&mut same.violations));
            found.extend(recovery_checks(
                w,
                &same,
                &third,
                "power loss after the same-file-system reopen",
            ));
        }
        tally.add(&context, found);
    }
    let mut kinds: Vec<_> = tally.by_kind.iter().collect();
    kinds.sort();
    println!(
        "io campaign [{}]: {} faults planned over {total} ops, {} fired ({kinds:?}); {} stopped the workload, {} fired and \
         the workload completed anyway; {} recoveries ({} reopens on the same file system); next_work said \"the engine \
         is closed\" {} times; {:?}, violations {}",
        w.name,
        tally.cases,
        tally.fired,
        tally.fail_stopped,
        tally.completed_anyway,
        tally.recoveries,
        tally.same_fs_reopens,
        tally.next_work_closed,
        began.elapsed(),
        tally.violations.len()
    );
    report_campaign(&format!(
        "I/O faults    engine [{}]: {} faults injected (EIO/ENOSPC, once and persistent, on {} ops), {} fired; \
         {} recoveries; violations {}",
        w.name,
        tally.cases,
        total,
        tally.fired,
        tally.recoveries,
        tally.violations.len()
    ));
    for v in &tally.violations {
        println!("  VIOLATION {v}");
    }
    tally
}

fn assert_clean(tally: Tally) {
    assert!(
        tally.violations.is_empty(),
        "{} violations, first: {:#?}",
        tally.violations.len(),
        &tally.violations[..tally.violations.len().min(10)]
    );
}

#[test]
fn io_errors_on_a_sequence_of_steps() {
    assert_clean(io_campaign(&workload("io-sequence"), 60, 4, false));
}

#[test]
fn io_errors_with_rotation_compaction_and_group_commits() {
    assert_clean(io_campaign(&workload("io-mixed"), 60, 4, false));
}

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

/// The campaign's "reopen on the same file system" case, followed by a power
/// loss: see the minimal repro below.
#[test]
fn io_errors_reopen_without_reboot_then_power_loss() {
    // Named apart from io-sequence so the report tells the two campaigns apart.
    let w = Workload {
        name: "io-reopen-power-loss",
        ..workload("io-sequence")
    };
    assert_clean(io_campaign(&w, 30, 1, true));
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
