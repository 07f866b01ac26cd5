//! The I/O-fault campaigns: every fault planned over a clean run's trace, each case driven
//! through a faulted life, a recovery from the crash image and (a share of the cases) a
//! reopen on the same file system; see the crate doc in `main.rs`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::campaign::*;
use crate::workload;
use duro_engine::{Engine, Wait};
use duro_wal::fs::{Damage, Fault, OpKind, SimFs, TraceEntry};

const LIFE_DEADLINE: Duration = Duration::from_secs(20);
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
            Ok(Wait::Blocked(reason) | Wait::CannotRun(reason)) => {
                v.push(format!("#{key} blocked after the fault: {reason}"))
            }
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
/// The campaign's "reopen on the same file system" case, followed by a power
/// loss: see the minimal repro in `repros.rs`.
#[test]
fn io_errors_reopen_without_reboot_then_power_loss() {
    // Named apart from io-sequence so the report tells the two campaigns apart.
    let w = Workload {
        name: "io-reopen-power-loss",
        ..workload("io-sequence")
    };
    assert_clean(io_campaign(&w, 30, 1, true));
}
