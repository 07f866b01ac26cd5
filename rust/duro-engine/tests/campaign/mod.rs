//! Shared machinery of the crash and I/O-fault campaigns (`campaign_crash.rs`,
//! `campaign_io.rs`): canonical workloads driven through the real [`Engine`]
//! over an [`EmbeddedStore`] whose log lives on a [`SimFs`], a caller that
//! keeps an oracle outside the store under test, and the invariant checks of
//! RELIABILITY.md.
//!
//! One *life* is one process lifetime: open the store (the log on a SimFs,
//! the SQLite index on the real file system, under /dev/shm when it exists),
//! open the engine, snapshot what recovery found, check it against the
//! oracle, register the workflows, start every run of the workload (starts
//! are idempotent), and play the caller until every run ended, the store
//! failed, or a deadline passed (a hang is a violation, never a stuck test).
//!
//! The oracle records what the caller *observed*, which is exactly what the
//! store acknowledged to it:
//! - work handed out (`Work::Execute` of (run, seq, attempt)): the record
//!   holding that `StepStarted` was durable, and so was every earlier step's
//!   result (the engine decides step `seq` from the result of `seq - 1` in the
//!   same record);
//! - a start whose receipt `wait_durable` returned OK;
//! - an outcome published by the engine (it publishes only after the
//!   terminal event is durable);
//! - every output and failure the caller produced, tagged with its life, so
//!   a recovered output can be traced to the exact execution that made it.

#![allow(dead_code)]

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use duro_core::journal::{ErrorInfo, Event, RunKey, StepKind};
use duro_core::replay::RunState;
use duro_core::retry::RetryPolicy;
use duro_core::workflow::{StepDef, WorkflowDef};
use duro_engine::{Engine, EngineConfig, EngineError, Handle, LaneId, SystemClock, Wait, Work};
use duro_store::{EmbeddedOptions, EmbeddedStore, RunFilter, Store};
use duro_wal::fs::{Damage, SimFs};
use duro_wal::WalOptions;

pub const WORKFLOW: &str = "campaign";
pub const VERSION: &str = "1";

/// `DURO_CAMPAIGN_LONG=1`: every operation, more seeds, bigger workloads.
pub fn long_mode() -> bool {
    std::env::var("DURO_CAMPAIGN_LONG").is_ok_and(|v| !v.is_empty() && v != "0")
}

#[path = "../../../../fuzz/common/report.rs"]
mod report;
#[allow(unused_imports)]
pub use report::report_campaign;

/// One canonical workload.
#[derive(Debug, Clone)]
pub struct Workload {
    pub name: &'static str,
    pub runs: usize,
    pub steps: usize,
    /// Size of each step output (bytes); big outputs rotate log segments.
    pub output_bytes: usize,
    /// Caller threads pulling work.
    pub threads: usize,
    pub segment_size: u64,
    /// How often the indexer releases (deletes) log segments the index covers.
    pub release_every: Duration,
    /// Some steps fail their first attempt (retryable, no delay) and succeed on the next.
    pub flaky: bool,
}

impl Workload {
    pub fn run_id(&self, i: usize) -> String {
        format!("{}-{i}", self.name)
    }

    pub fn run_ids(&self) -> Vec<String> {
        (0..self.runs).map(|i| self.run_id(i)).collect()
    }

    pub fn input(run_id: &str) -> Vec<u8> {
        format!("input of {run_id}").into_bytes()
    }

    pub fn def(&self) -> WorkflowDef {
        let policy = RetryPolicy::builder()
            .max_attempts(20)
            .initial_delay_ms(0)
            .jitter(0.0)
            .build()
            .unwrap();
        WorkflowDef {
            name: WORKFLOW.into(),
            version: VERSION.into(),
            steps: (0..self.steps)
                .map(|i| StepDef::task(step_name(i as u32), policy.clone()))
                .collect(),
            on_failure: None,
            timeout_ms: None,
        }
    }

    pub fn options(&self, fs: Arc<SimFs>) -> EmbeddedOptions {
        EmbeddedOptions {
            wal: WalOptions {
                segment_size: self.segment_size,
                max_record_size: 16 * 1024,
                ..WalOptions::default()
            },
            fs,
            release_every: self.release_every,
        }
    }

    /// Does the caller fail this attempt?
    pub fn fails(&self, run_id: &str, seq: u32, attempt: u32) -> bool {
        if !self.flaky || attempt != 1 {
            return false;
        }
        let mut h = DefaultHasher::new();
        (run_id, seq).hash(&mut h);
        h.finish() % 5 == 0
    }

    pub fn output(&self, run_id: &str, seq: u32, attempt: u32, life: u32) -> Vec<u8> {
        let mut out = format!("{run_id}/s{seq}/a{attempt}/life{life}/").into_bytes();
        if out.len() < self.output_bytes {
            out.resize(self.output_bytes, b'.');
        }
        out
    }
}

pub fn step_name(seq: u32) -> String {
    format!("s{seq}")
}

/// What the caller produced for one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Produced {
    Output(Vec<u8>),
    Failed,
}

/// The test's own record of what it was told and what it did (kept outside the store).
#[derive(Debug, Clone, Default)]
pub struct Oracle {
    /// (run, seq, attempt) -> (life, what the caller produced).
    pub produced: HashMap<(String, u32, u32), (u32, Produced)>,
    /// Work handed out: (run, seq, attempt) -> life.
    pub handed: HashMap<(String, u32, u32), u32>,
    /// Results acknowledged (a later step was handed out): (run, seq) -> (attempt, output, life).
    pub acked: HashMap<(String, u32), (u32, Vec<u8>, u32)>,
    /// Failed attempts acknowledged (the next attempt was handed out).
    pub acked_failures: HashSet<(String, u32, u32)>,
    /// Runs whose start receipt was waited on successfully.
    pub started: HashSet<String>,
    /// Runs whose outcome the engine published: run -> step outputs.
    pub finished: HashMap<String, Vec<(String, Vec<u8>)>>,
    /// The latest output produced per (run, seq): (attempt, output, life).
    pub latest: HashMap<(String, u32), (u32, Vec<u8>, u32)>,
    /// Executions per (run, seq), all lives together.
    pub executions: HashMap<(String, u32), u32>,
    pub violations: Vec<String>,
}

impl Oracle {
    fn violation(&mut self, v: String) {
        if self.violations.len() < 50 {
            self.violations.push(v);
        }
    }

    /// Work (run, seq, attempt) was handed out in `life`.
    fn handed_out(&mut self, run: &str, seq: u32, attempt: u32, life: u32) {
        let key = (run.to_owned(), seq, attempt);
        if let Some(before) = self.handed.insert(key, life) {
            self.violation(format!(
                "{run} seq {seq} attempt {attempt} handed out in life {before} and again in life {life}: the \
                 StepStarted of work already handed out was lost"
            ));
        }
        if let Some((a, _, l)) = self.acked.get(&(run.to_owned(), seq)) {
            self.violation(format!(
                "{run} seq {seq}: acknowledged (attempt {a}, life {l}) but handed out again (attempt {attempt}, life {life})"
            ));
        }
        // The failed attempt before this one is acknowledged, if this life reported it (an
        // attempt reported in an earlier life may have been lost: then this one follows an
        // interrupted attempt, and nothing is proven about the report).
        if attempt > 1 {
            if let Some((l, Produced::Failed)) =
                self.produced.get(&(run.to_owned(), seq, attempt - 1))
            {
                if *l != life {
                    return self.ack_earlier_steps(run, seq);
                }
                self.acked_failures
                    .insert((run.to_owned(), seq, attempt - 1));
            }
        }
        self.ack_earlier_steps(run, seq)
    }

    /// Every step before `seq` has a durable result: the one the caller produced last.
    fn ack_earlier_steps(&mut self, run: &str, seq: u32) {
        let mut s = seq;
        while s > 0 {
            s -= 1;
            let latest = self.latest.get(&(run.to_owned(), s)).cloned();
            let key = (run.to_owned(), s);
            match (self.acked.get(&key).cloned(), latest) {
                (Some(acked), Some(latest)) => {
                    if acked != latest {
                        self.violation(format!(
                            "{run} seq {s}: acknowledged result (attempt {}, life {}) was replaced by attempt {} of life {}",
                            acked.0, acked.2, latest.0, latest.2
                        ));
                    }
                    break;
                }
                (None, Some(latest)) => {
                    self.acked.insert(key, latest);
                }
                (_, None) => {
                    self.violation(format!(
                        "{run} seq {seq} handed out but the caller never produced seq {s}"
                    ));
                    break;
                }
            }
        }
    }

    fn produce(&mut self, run: &str, seq: u32, attempt: u32, life: u32, produced: Produced) {
        *self.executions.entry((run.to_owned(), seq)).or_default() += 1;
        if let Produced::Output(output) = &produced {
            let latest = self
                .latest
                .entry((run.to_owned(), seq))
                .or_insert((0, Vec::new(), 0));
            if attempt >= latest.0 {
                *latest = (attempt, output.clone(), life);
            }
        }
        self.produced
            .insert((run.to_owned(), seq, attempt), (life, produced));
    }
}

/// The recovered state of the store: run id -> (key, journal, event_count of its summary).
pub type Snapshot = BTreeMap<String, (RunKey, Vec<Event>, u32)>;

pub fn snapshot(store: &dyn Store) -> Result<Snapshot, String> {
    let runs = store
        .list(&RunFilter {
            limit: 1_000_000,
            ..RunFilter::default()
        })
        .map_err(|e| format!("list: {e}"))?;
    let mut snap = Snapshot::new();
    for s in runs {
        let events = store
            .events(s.run_key)
            .map_err(|e| format!("events of {}: {e}", s.run_id))?;
        snap.insert(s.run_id.clone(), (s.run_key, events, s.event_count));
    }
    Ok(snap)
}

/// Checks a recovered (or final) state against the oracle. `context` names the situation.
pub fn check_state(w: &Workload, oracle: &Oracle, snap: &Snapshot, context: &str) -> Vec<String> {
    let mut v = Vec::new();
    let ids: HashSet<String> = w.run_ids().into_iter().collect();
    for (run, (key, events, event_count)) in snap {
        if !ids.contains(run) {
            v.push(format!("{context}: phantom run {run:?}"));
            continue;
        }
        match events.first() {
            Some(Event::RunStarted {
                run_id,
                input,
                workflow,
                ..
            }) if run_id == run && *input == Workload::input(run) && workflow == WORKFLOW => {}
            other => v.push(format!("{context}: {run}: journal starts with {other:?}")),
        }
        if events.len() as u32 != *event_count {
            v.push(format!(
                "{context}: {run}: summary says {event_count} events, journal has {}",
                events.len()
            ));
        }
        if let Err(e) = RunState::replay(*key, events) {
            v.push(format!("{context}: {run}: journal does not replay: {e}"));
        }
        let mut completed: HashMap<u32, u32> = HashMap::new();
        for event in events {
            match event {
                Event::StepCompleted {
                    seq,
                    attempt,
                    output,
                    ..
                } => {
                    *completed.entry(*seq).or_default() += 1;
                    match oracle.produced.get(&(run.clone(), *seq, *attempt)) {
                        Some((_, Produced::Output(o))) if o == output => {}
                        other => v.push(format!(
                            "{context}: {run} seq {seq} attempt {attempt}: phantom output {:?} (the caller produced {other:?})",
                            String::from_utf8_lossy(&output[..output.len().min(48)])
                        )),
                    }
                }
                Event::StepFailed { seq, attempt, .. } => {
                    match oracle.produced.get(&(run.clone(), *seq, *attempt)) {
                        Some((_, Produced::Failed)) => {}
                        other => v.push(format!(
                        "{context}: {run} seq {seq} attempt {attempt}: phantom failure ({other:?})"
                    )),
                    }
                }
                _ => {}
            }
        }
        for (seq, n) in completed {
            if n > 1 {
                v.push(format!(
                    "{context}: {run} seq {seq}: {n} StepCompleted events (at most one allowed)"
                ));
            }
        }
    }
    // No lost acknowledgement.
    for run in &oracle.started {
        if !snap.contains_key(run) {
            v.push(format!(
                "{context}: {run}: start receipt was acknowledged, the run is gone"
            ));
        }
    }
    // Per run: (seq, attempt) started, seq -> [(attempt, output)] completed, (seq, attempt) failed.
    type Facts<'a> = (
        HashSet<(u32, u32)>,
        HashMap<u32, Vec<(u32, &'a [u8])>>,
        HashSet<(u32, u32)>,
    );
    let mut facts: HashMap<&str, Facts<'_>> = HashMap::new();
    for (run, (_, events, _)) in snap {
        let f = facts.entry(run.as_str()).or_default();
        for e in events {
            match e {
                Event::StepStarted { seq, attempt, .. } => {
                    f.0.insert((*seq, *attempt));
                }
                Event::StepCompleted {
                    seq,
                    attempt,
                    output,
                    ..
                } => f.1.entry(*seq).or_default().push((*attempt, output)),
                Event::StepFailed { seq, attempt, .. } => {
                    f.2.insert((*seq, *attempt));
                }
                _ => {}
            }
        }
    }
    for ((run, seq, attempt), life) in &oracle.handed {
        if !facts
            .get(run.as_str())
            .is_some_and(|f| f.0.contains(&(*seq, *attempt)))
        {
            v.push(format!(
                "{context}: {run} seq {seq} attempt {attempt} was handed out (life {life}) but its StepStarted is lost"
            ));
        }
    }
    for ((run, seq), (attempt, output, life)) in &oracle.acked {
        let found = facts
            .get(run.as_str())
            .and_then(|f| f.1.get(seq))
            .is_some_and(|c| {
                c.iter()
                    .any(|(a, o)| a == attempt && *o == output.as_slice())
            });
        if !found {
            v.push(format!(
                "{context}: {run} seq {seq}: acknowledged result (attempt {attempt}, life {life}) lost or changed"
            ));
        }
    }
    for (run, seq, attempt) in &oracle.acked_failures {
        if !facts
            .get(run.as_str())
            .is_some_and(|f| f.2.contains(&(*seq, *attempt)))
        {
            v.push(format!(
                "{context}: {run} seq {seq} attempt {attempt}: acknowledged failure lost"
            ));
        }
    }
    for (run, outputs) in &oracle.finished {
        let Some((_, events, _)) = snap.get(run) else {
            v.push(format!(
                "{context}: {run}: its outcome was published, the run is gone"
            ));
            continue;
        };
        if !events
            .last()
            .is_some_and(|e| matches!(e, Event::RunCompleted { .. }))
        {
            v.push(format!("{context}: {run}: its outcome was published, the journal does not end with RunCompleted"));
        }
        for (i, (name, output)) in outputs.iter().enumerate() {
            let ok = events
                .iter()
                .any(|e| matches!(e, Event::StepCompleted { seq, output: o, .. } if *seq == i as u32 && o == output));
            if !ok || *name != step_name(i as u32) {
                v.push(format!(
                    "{context}: {run}: published output of {name} is not in the journal"
                ));
            }
        }
    }
    v
}

/// Every run of the workload ended, completed, with every step's output in its journal.
pub fn check_final(w: &Workload, oracle: &Oracle, snap: &Snapshot, context: &str) -> Vec<String> {
    let mut v = check_state(w, oracle, snap, context);
    v.extend(check_executions(oracle, context));
    for run in w.run_ids() {
        let Some((_, events, _)) = snap.get(&run) else {
            v.push(format!("{context}: {run} never started"));
            continue;
        };
        if !events
            .last()
            .is_some_and(|e| matches!(e, Event::RunCompleted { .. }))
        {
            v.push(format!(
                "{context}: {run} did not complete: last event {:?}",
                events.last().map(Event::kind_name)
            ));
        }
        for seq in 0..w.steps as u32 {
            if !events
                .iter()
                .any(|e| matches!(e, Event::StepCompleted { seq: s, .. } if *s == seq))
            {
                v.push(format!("{context}: {run} step {seq} never completed"));
            }
        }
        match oracle.finished.get(&run) {
            Some(outputs) => {
                let names: Vec<String> = outputs.iter().map(|(n, _)| n.clone()).collect();
                let expected: Vec<String> = (0..w.steps as u32).map(step_name).collect();
                if names != expected {
                    v.push(format!("{context}: {run}: outcome outputs {names:?}"));
                }
            }
            None => v.push(format!("{context}: {run}: no outcome was published")),
        }
    }
    v
}

/// Side effects: in one life a step runs at most once per reported failure,
/// plus once (re-executions come only from crashes, one per life at most).
pub fn check_executions(oracle: &Oracle, context: &str) -> Vec<String> {
    let mut handed: HashMap<(&str, u32, u32), u32> = HashMap::new();
    let mut failed: HashMap<(&str, u32, u32), u32> = HashMap::new();
    for ((run, seq, _), life) in &oracle.handed {
        *handed.entry((run.as_str(), *seq, *life)).or_default() += 1;
    }
    for ((run, seq, _), (life, produced)) in &oracle.produced {
        if *produced == Produced::Failed {
            *failed.entry((run.as_str(), *seq, *life)).or_default() += 1;
        }
    }
    let mut v = Vec::new();
    for ((run, seq, life), n) in handed {
        let allowed = failed.get(&(run, seq, life)).copied().unwrap_or(0) + 1;
        if n > allowed {
            v.push(format!(
                "{context}: {run} seq {seq} ran {n} times in life {life} ({} failures reported)",
                allowed - 1
            ));
        }
    }
    v
}

/// Every journal of `before` is a prefix of the same run's journal in `after`.
pub fn check_prefix(before: &Snapshot, after: &Snapshot, context: &str) -> Vec<String> {
    let mut v = Vec::new();
    for (run, (_, events, _)) in before {
        match after.get(run) {
            None => v.push(format!(
                "{context}: {run} was recovered before and is gone now"
            )),
            Some((_, later, _)) => {
                if later.len() < events.len() || later[..events.len()] != events[..] {
                    let at = events
                        .iter()
                        .zip(later.iter())
                        .position(|(a, b)| a != b)
                        .unwrap_or(later.len().min(events.len()));
                    v.push(format!(
                        "{context}: {run}: the recovered history changed at position {at} ({} events before, {} now)",
                        events.len(),
                        later.len()
                    ));
                }
            }
        }
    }
    v
}

/// How a life ended.
#[derive(Debug, Default)]
pub struct LifeReport {
    /// Every run of the workload ended (outcome published).
    pub completed: bool,
    /// The SimFs "died" (a planned crash).
    pub crashed: bool,
    /// Errors the caller got, as (api, message).
    pub errors: Vec<(&'static str, String)>,
    /// What recovery found, before anything ran (None if the life died first).
    pub recovered: Option<Snapshot>,
    /// The state at the end, when the life completed.
    pub final_state: Option<Snapshot>,
    pub timed_out: bool,
    pub elapsed: Duration,
    /// SimFs operations issued by this life.
    pub ops: u64,
    /// Runs started in this life: (key, run id).
    pub keys: Vec<(RunKey, String)>,
    /// Keys of the runs whose start receipt was waited on successfully in this life.
    pub started_keys: Vec<RunKey>,
}

/// Looks at an engine whose drive ended; returns violations.
pub type Probe<'a> = &'a dyn Fn(&Engine, &LifeReport) -> Vec<String>;

pub struct LifeSpec<'a> {
    pub w: &'a Workload,
    pub fs: Arc<SimFs>,
    pub dir: &'a Path,
    pub life: u32,
    pub deadline: Duration,
    /// Called with the engine after the drive ended, before the engine is closed.
    pub probe: Option<Probe<'a>>,
}

struct Caller<'a> {
    w: &'a Workload,
    engine: &'a Engine,
    life: u32,
    oracle: &'a Mutex<Oracle>,
    stop: &'a AtomicBool,
    errors: &'a Mutex<Vec<(&'static str, String)>>,
    names: Mutex<HashMap<Handle, String>>,
}

impl Caller<'_> {
    fn fail(&self, api: &'static str, e: impl ToString) {
        self.errors.lock().unwrap().push((api, e.to_string()));
        self.stop.store(true, Ordering::Release);
    }

    fn work(&self) {
        while !self.stop.load(Ordering::Acquire) {
            match self
                .engine
                .next_work(LaneId::Sync, Duration::from_millis(2))
            {
                Err(e) => return self.fail("next_work", e),
                Ok(None) => {}
                Ok(Some(Work::Release { handle })) => {
                    self.names.lock().unwrap().remove(&handle);
                }
                Ok(Some(Work::Execute(work))) => {
                    let run = match &work.load {
                        Some(load) => {
                            self.names
                                .lock()
                                .unwrap()
                                .insert(work.handle, load.run_id.clone());
                            load.run_id.clone()
                        }
                        None => match self.names.lock().unwrap().get(&work.handle) {
                            Some(run) => run.clone(),
                            None => {
                                self.oracle
                                    .lock()
                                    .unwrap()
                                    .violation(format!("work without context: {work:?}"));
                                return self.fail(
                                    "next_work",
                                    "work for a run the caller holds no context of",
                                );
                            }
                        },
                    };
                    if work.kind != StepKind::Task {
                        self.oracle
                            .lock()
                            .unwrap()
                            .violation(format!("{run}: unexpected {:?} work", work.kind));
                    }
                    let (seq, attempt) = (work.seq, work.attempt);
                    let fails = self.w.fails(&run, seq, attempt);
                    let output = self.w.output(&run, seq, attempt, self.life);
                    {
                        let mut oracle = self.oracle.lock().unwrap();
                        oracle.handed_out(&run, seq, attempt, self.life);
                        let produced = if fails {
                            Produced::Failed
                        } else {
                            Produced::Output(output.clone())
                        };
                        oracle.produce(&run, seq, attempt, self.life, produced);
                    }
                    let result = if fails {
                        let error =
                            ErrorInfo::new("Flaky", "first attempts of some steps fail", true);
                        self.engine
                            .step_failed(work.handle, seq, attempt, error)
                            .map_err(|e| ("step_failed", e))
                    } else {
                        self.engine
                            .step_succeeded(work.handle, seq, attempt, output)
                            .map_err(|e| ("step_succeeded", e))
                    };
                    if let Err((api, e)) = result {
                        return self.fail(api, e);
                    }
                }
            }
        }
    }
}

/// Opens the store and engine on `fs`, checks what recovery found, and drives
/// the workload until it ends, fails or the deadline passes.
pub fn run_life(spec: LifeSpec<'_>, oracle: &mut Oracle) -> LifeReport {
    let LifeSpec {
        w,
        fs,
        dir,
        life,
        deadline,
        probe,
    } = spec;
    let started_at = Instant::now();
    let ops_before = fs.ops();
    let mut report = LifeReport::default();
    let finish = |mut report: LifeReport, fs: &SimFs| {
        report.crashed = fs.crashed();
        report.elapsed = started_at.elapsed();
        report.ops = fs.ops() - ops_before;
        report
    };
    let store = match EmbeddedStore::open(dir, w.options(fs.clone())) {
        Ok(store) => Arc::new(store),
        Err(e) => {
            report.errors.push(("open store", e.to_string()));
            return finish(report, &fs);
        }
    };
    let engine = match Engine::open(
        store.clone(),
        EngineConfig::default(),
        Arc::new(SystemClock),
    ) {
        Ok(engine) => engine,
        Err(e) => {
            report.errors.push(("open engine", e.to_string()));
            drop(store);
            return finish(report, &fs);
        }
    };
    drop(store);
    match snapshot(&**engine.store()) {
        Ok(snap) => {
            oracle.violations.extend(check_state(
                w,
                oracle,
                &snap,
                &format!("recovered state (life {life})"),
            ));
            report.recovered = Some(snap);
        }
        Err(e) => report.errors.push(("snapshot", e)),
    }
    let shared_oracle = Mutex::new(std::mem::take(oracle));
    let stop = AtomicBool::new(!report.errors.is_empty());
    let errors = Mutex::new(std::mem::take(&mut report.errors));
    let ids = w.run_ids();
    let mut keys: HashMap<RunKey, String> = HashMap::new();
    if !stop.load(Ordering::Acquire) {
        if let Err(e) = engine.register(w.def(), LaneId::Sync) {
            errors.lock().unwrap().push(("register", e.to_string()));
            stop.store(true, Ordering::Release);
        }
    }
    // Start every run (a recovered one is found again), then wait for the receipts.
    let mut receipts = Vec::new();
    for id in &ids {
        if stop.load(Ordering::Acquire) {
            break;
        }
        match engine.start(WORKFLOW, VERSION, id, Workload::input(id), None) {
            Ok(started) => {
                keys.insert(started.run_key, id.clone());
                receipts.push((id.clone(), started));
            }
            Err(e) => {
                errors.lock().unwrap().push(("start", e.to_string()));
                stop.store(true, Ordering::Release);
            }
        }
    }
    let mut unfinished: HashSet<RunKey> = HashSet::new();
    for (id, started) in &receipts {
        match engine.wait_durable(started.receipt) {
            Ok(()) => {
                shared_oracle.lock().unwrap().started.insert(id.clone());
                report.started_keys.push(started.run_key);
            }
            Err(e) => {
                errors.lock().unwrap().push(("wait_durable", e.to_string()));
                stop.store(true, Ordering::Release);
                break;
            }
        }
        if !started.created {
            // Maybe it ended in an earlier life.
            match engine.outcome(started.run_key) {
                Ok(Some(outcome)) => {
                    shared_oracle
                        .lock()
                        .unwrap()
                        .finished
                        .insert(id.clone(), outcome.outputs.clone());
                    continue;
                }
                Ok(None) => {}
                Err(e) => {
                    errors.lock().unwrap().push(("outcome", e.to_string()));
                    stop.store(true, Ordering::Release);
                    break;
                }
            }
        }
        engine.watch(started.run_key);
        unfinished.insert(started.run_key);
    }
    let caller = Caller {
        w,
        engine: &engine,
        life,
        oracle: &shared_oracle,
        stop: &stop,
        errors: &errors,
        names: Mutex::new(HashMap::new()),
    };
    let all_started = receipts.len() == ids.len();
    std::thread::scope(|scope| {
        for _ in 0..w.threads {
            scope.spawn(|| caller.work());
        }
        let until = Instant::now() + deadline;
        loop {
            for key in engine.take_finished_notices() {
                match engine.wait_finished(key, Some(Duration::ZERO)) {
                    Ok(Wait::Finished(outcome)) => {
                        unfinished.remove(&key);
                        shared_oracle
                            .lock()
                            .unwrap()
                            .finished
                            .insert(keys[&key].clone(), outcome.outputs.clone());
                    }
                    Ok(Wait::Blocked(reason)) => {
                        shared_oracle
                            .lock()
                            .unwrap()
                            .violation(format!("life {life}: {} blocked: {reason}", keys[&key]));
                        unfinished.remove(&key);
                    }
                    Ok(Wait::TimedOut) => {}
                    Err(e) => caller.fail("wait_finished", e),
                }
            }
            if all_started && unfinished.is_empty() && !stop.load(Ordering::Acquire) {
                report.completed = true;
                stop.store(true, Ordering::Release);
            }
            if stop.load(Ordering::Acquire) {
                break;
            }
            if Instant::now() >= until {
                report.timed_out = true;
                stop.store(true, Ordering::Release);
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    });
    drop(caller);
    *oracle = shared_oracle.into_inner().unwrap();
    // Outcomes published before the end are acknowledged too.
    for (key, run) in &keys {
        if oracle.finished.contains_key(run) {
            continue;
        }
        if let Ok(Wait::Finished(outcome)) = engine.wait_finished(*key, Some(Duration::ZERO)) {
            oracle.finished.insert(run.clone(), outcome.outputs.clone());
        }
    }
    report.errors = errors.into_inner().unwrap();
    if report.completed {
        match snapshot(&**engine.store()) {
            Ok(snap) => report.final_state = Some(snap),
            Err(e) => report.errors.push(("snapshot", e)),
        }
    }
    report.keys = keys.iter().map(|(k, r)| (*k, r.clone())).collect();
    report.keys.sort();
    if let Some(probe) = probe {
        let found = probe(&engine, &report);
        oracle.violations.extend(found);
    }
    let closed = engine.close();
    if report.completed && !fs.crashed() {
        if let Err(e) = closed {
            report.errors.push(("close", e.to_string()));
        }
    }
    drop(engine);
    finish(report, &fs)
}

/// A directory for one life's index (on tmpfs when there is one: the SQLite
/// index is on the real file system and its syncs would dominate).
pub fn tempdir() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        if let Ok(dir) = tempfile::Builder::new()
            .prefix("duro-campaign-")
            .tempdir_in(shm)
        {
            return dir;
        }
    }
    tempfile::Builder::new()
        .prefix("duro-campaign-")
        .tempdir()
        .unwrap()
}

/// The index files of a store directory (the log is on the SimFs), saved
/// so that several recoveries can start from the same point. The SimFs image
/// names the log by its full path, so every recovery of one crash reuses the
/// store directory itself: `restore` puts the saved index back first.
pub struct SavedIndex {
    dir: tempfile::TempDir,
}

fn is_index_file(name: &std::ffi::OsStr) -> bool {
    name.to_string_lossy().starts_with("index.sqlite3")
}

pub fn save_index(store_dir: &Path) -> SavedIndex {
    let saved = tempdir();
    for entry in std::fs::read_dir(store_dir).unwrap() {
        let entry = entry.unwrap();
        if is_index_file(&entry.file_name()) && entry.file_type().unwrap().is_file() {
            std::fs::copy(entry.path(), saved.path().join(entry.file_name())).unwrap();
        }
    }
    SavedIndex { dir: saved }
}

impl SavedIndex {
    pub fn restore(&self, store_dir: &Path) {
        for entry in std::fs::read_dir(store_dir).unwrap() {
            let entry = entry.unwrap();
            if is_index_file(&entry.file_name()) {
                std::fs::remove_file(entry.path()).unwrap();
            }
        }
        for entry in std::fs::read_dir(self.dir.path()).unwrap() {
            let entry = entry.unwrap();
            std::fs::copy(entry.path(), store_dir.join(entry.file_name())).unwrap();
        }
    }
}

/// A fingerprint of everything a SimFs holds (paths and bytes).
pub fn fingerprint(fs: &SimFs) -> u64 {
    let mut h = DefaultHasher::new();
    for path in fs.files() {
        path.hash(&mut h);
        fs.read_file(&path).hash(&mut h);
    }
    h.finish()
}

pub fn damage_name(d: Damage) -> String {
    match d {
        Damage::LoseUnsynced => "lose-unsynced".into(),
        Damage::TornSectors { sector } => format!("torn-{sector}"),
        Damage::ZeroFill { sector } => format!("zero-{sector}"),
        Damage::GarbageFill { sector } => format!("garbage-{sector}"),
    }
}

/// `count` operation numbers spread evenly over `1..=total` (all of them when `count >= total`).
pub fn spread(total: u64, count: u64) -> Vec<u64> {
    if total == 0 {
        return Vec::new();
    }
    if count >= total {
        return (1..=total).collect();
    }
    let mut points: Vec<u64> = (0..count)
        .map(|i| 1 + i * (total - 1) / (count - 1).max(1))
        .collect();
    points.dedup();
    points
}

/// Is this error the clear, fail-stop one (it says to reopen)?
pub fn says_reopen(message: &str) -> bool {
    message.contains("reopen")
}

pub fn is_store_failure(e: &EngineError) -> bool {
    e.is_store_failure()
}
