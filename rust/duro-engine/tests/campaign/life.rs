//! One life (one process lifetime): open the store and engine, check what
//! recovery found, start the workload and play the caller until every run
//! ended, the store failed, or the deadline passed.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use duro_core::journal::{ErrorInfo, RunKey, StepKind};
use duro_engine::{Engine, EngineConfig, Handle, LaneId, SystemClock, Wait, Work};
use duro_store::EmbeddedStore;
use duro_wal::fs::SimFs;

use super::checks::{check_state, snapshot, Snapshot};
use super::oracle::{Oracle, Produced};
use super::workload::{Workload, VERSION, WORKFLOW};

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
                    Ok(Wait::Blocked(reason) | Wait::CannotRun(reason)) => {
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
