//! The engine: drives runs of registered workflows over a store.
//!
//! Life of a run in memory (see [`Phase`]):
//!
//! ```text
//!  start / timer / input ──► Queued ──next_work──► InCaller ──step result──► AwaitingAck
//!                              ▲                                                 │ durable
//!                              └─────────────────────────────────────────────────┘
//!  Queued ──(wait)──► Evicting ──durable──► dormant (timer entry only)
//!  Queued ──(end)───► Finishing ──durable──► outcome published, dropped
//! ```
//!
//! Every append carries the run's handle as its token and counts as
//! unacknowledged until the store says it is durable; a run moves on only
//! when nothing of it is unacknowledged. That is the whole durability rule:
//! a step's result is durable before the next step starts, a run is evicted
//! only when a reload would see everything, and an outcome is published only
//! when the terminal event is durable.

mod acks;
mod decide;
mod inputs;
mod queries;
mod residency;
mod wakeups;
mod work;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, RwLock};

use duro_core::journal::{ErrorInfo, Event, RunKey, Seq, StepKind};
use duro_core::limits::Limits;
use duro_core::linear;
use duro_core::replay::RunState;
use duro_core::summary::{RunStatus, RunSummary};
use duro_core::time::Millis;
use duro_core::workflow::WorkflowDef;
use duro_store::{Receipt, RunIdOrigin, StartOutcome, Store, StoreError};

use crate::clock::Clock;
use crate::error::EngineError;
use crate::lanes::{Handle, Lane, LaneId, QueueItem};
use crate::notify::EventFd;
use crate::outcome::{FinishedCache, RunOutcome};
use crate::table::{ActiveRun, Blocked, Phase, Registered, RunTable};
use crate::timers::Timers;
use acks::Acks;
use wakeups::timer_loop;

/// Settings of an engine.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    pub limits: Limits,
    /// Who this engine is when claiming runs from a shared store.
    pub owner: String,
    /// How many finished outcomes to keep in memory for waiting callers.
    pub finished_capacity: usize,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            limits: Limits::default(),
            owner: format!("pid-{}", std::process::id()),
            finished_capacity: 65_536,
        }
    }
}

/// What a caller should do for a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Work {
    Execute(ExecuteWork),
    /// Drop the context held for this run.
    Release {
        handle: Handle,
    },
}

/// Run user code: the step at `step_index`, its compensation, or the on-failure handler.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecuteWork {
    pub handle: Handle,
    pub run_key: RunKey,
    pub kind: StepKind,
    pub seq: Seq,
    pub step_index: Option<usize>,
    pub attempt: u32,
    /// Present when the caller holds no context for this run yet.
    pub load: Option<LoadData>,
    /// Present for the on-failure handler.
    pub failure: Option<FailureInfo>,
}

/// What a caller needs to (re)build its context of a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadData {
    /// The registration (see `Engine::register`) whose definition drives this run.
    pub generation: u64,
    pub run_id: String,
    pub workflow: String,
    pub version: String,
    pub input: Vec<u8>,
    /// Outputs of completed forward steps, by name, in order; shared with the
    /// run's state (a long run's outputs are not copied to hand them over).
    pub outputs: Vec<(String, Arc<Vec<u8>>)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailureInfo {
    pub failed_step: Option<String>,
    pub error: ErrorInfo,
    pub completed_steps: Vec<String>,
}

/// The result of `start`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Started {
    pub run_key: RunKey,
    /// False when a run with this id existed already (nothing was written).
    pub created: bool,
    pub receipt: Receipt,
}

/// Where a caller waiting for a run stands.
#[derive(Debug, Clone)]
pub enum Wait {
    Finished(Arc<RunOutcome>),
    /// The run cannot continue (non-determinism); nothing of it was changed.
    Blocked(String),
    /// The run cannot continue for another reason (see `Engine::cannot_run`);
    /// nothing of it was changed.
    CannotRun(String),
    TimedOut,
}

struct FinishedState {
    cache: FinishedCache,
    blocked: HashMap<RunKey, Blocked>,
    watched: HashSet<RunKey>,
    notices: Vec<RunKey>,
    /// Store positions an event loop waits to become durable, and those that did.
    durable_watch: std::collections::BinaryHeap<std::cmp::Reverse<u64>>,
    durable_notices: Vec<u64>,
}

struct ParkedRun {
    key: RunKey,
    wake_at_ms: Option<Millis>,
}

struct Inner {
    store: Arc<dyn Store>,
    config: EngineConfig,
    clock: Arc<dyn Clock>,
    /// By name, then version (nested so lookups need no allocation).
    workflows: RwLock<HashMap<String, HashMap<String, Arc<Registered>>>>,
    generations: std::sync::atomic::AtomicU64,
    table: Mutex<RunTable>,
    /// Unfinished runs of workflows not registered (yet) in this process.
    parked: Mutex<HashMap<(String, String), Vec<ParkedRun>>>,
    lanes: [Lane; 2],
    timers: Timers,
    finished: Mutex<FinishedState>,
    finished_cv: Condvar,
    notifier: Arc<EventFd>,
    fatal: Mutex<Option<String>>,
    closed: AtomicBool,
    /// Appends with a token whose acknowledgement has not been handled yet: while
    /// any is out, work is about to come back to a lane, so an idle worker spins
    /// for it instead of sleeping (see `Lane::pop`).
    acks_pending: AtomicUsize,
}

/// The engine. Cheap to clone (shared inside).
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
    timer_thread: Arc<Mutex<Option<std::thread::JoinHandle<()>>>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Engine {
    /// Starts an engine over `store` and takes over its unfinished runs
    /// (they resume as their workflows are registered).
    pub fn open(
        store: Arc<dyn Store>,
        config: EngineConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<Engine, EngineError> {
        let notifier = Arc::new(EventFd::new().map_err(|source| {
            EngineError::Store(StoreError::Io {
                op: "create an eventfd",
                path: "eventfd".into(),
                source,
            })
        })?);
        let inner = Arc::new(Inner {
            store: store.clone(),
            finished: Mutex::new(FinishedState {
                cache: FinishedCache::new(config.finished_capacity),
                blocked: HashMap::new(),
                watched: HashSet::new(),
                notices: Vec::new(),
                durable_watch: std::collections::BinaryHeap::new(),
                durable_notices: Vec::new(),
            }),
            config,
            clock,
            workflows: RwLock::new(HashMap::new()),
            generations: std::sync::atomic::AtomicU64::new(0),
            table: Mutex::new(RunTable::default()),
            parked: Mutex::new(HashMap::new()),
            lanes: [Lane::new(None), Lane::new(Some(notifier.clone()))],
            timers: Timers::default(),
            finished_cv: Condvar::new(),
            notifier,
            fatal: Mutex::new(None),
            closed: AtomicBool::new(false),
            acks_pending: AtomicUsize::new(0),
        });
        store.set_ack_sink(Arc::new(Acks(Arc::downgrade(&inner))));

        let now = inner.clock.now_ms();
        let due = store.claim_due(&inner.config.owner, now, usize::MAX)?;
        {
            let mut parked = lock(&inner.parked);
            for summary in due {
                parked
                    .entry((summary.workflow.clone(), summary.version.clone()))
                    .or_default()
                    .push(ParkedRun {
                        key: summary.run_key,
                        wake_at_ms: summary.wake_at_ms,
                    });
            }
        }

        let weak = Arc::downgrade(&inner);
        let thread = std::thread::Builder::new()
            .name("duro-timers".into())
            .spawn(move || timer_loop(weak))
            .map_err(|source| {
                EngineError::Store(StoreError::Io {
                    op: "start the timer thread",
                    path: "duro-timers".into(),
                    source,
                })
            })?;
        Ok(Engine {
            inner,
            timer_thread: Arc::new(Mutex::new(Some(thread))),
        })
    }

    pub fn limits(&self) -> &Limits {
        &self.inner.config.limits
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.inner.store
    }

    pub fn now_ms(&self) -> Millis {
        self.inner.clock.now_ms()
    }

    /// Defines (or redefines) a workflow. Its parked runs resume; runs
    /// blocked by an earlier definition are checked again. Returns the
    /// registration's generation (see [`LoadData::generation`]).
    pub fn register(&self, def: WorkflowDef, lane: LaneId) -> Result<u64, EngineError> {
        def.validate(&self.inner.config.limits)?;
        let key = (def.name.clone(), def.version.clone());
        let generation = self.inner.generations.fetch_add(1, Ordering::Relaxed) + 1;
        let registered = Arc::new(Registered {
            def,
            lane,
            generation,
        });
        self.inner
            .workflows
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .entry(key.0.clone())
            .or_default()
            .insert(key.1.clone(), registered.clone());
        let parked = lock(&self.inner.parked).remove(&key).unwrap_or_default();
        let now = self.inner.clock.now_ms();
        for run in parked {
            self.inner
                .timers
                .schedule(run.wake_at_ms.unwrap_or(now).max(now), run.key);
        }
        let mut table = lock(&self.inner.table);
        let mut unblocked = Vec::new();
        for handle in table.blocked_of(&key.0, &key.1) {
            if let Some(run) = table.get_mut(handle) {
                run.wf = registered.clone();
                if linear::check_against(&run.state, &registered.def).is_ok() {
                    run.phase = Phase::Queued;
                    lock(&self.inner.finished)
                        .blocked
                        .remove(&run.state.run_key);
                    unblocked.push(QueueItem::Run(handle));
                }
            }
        }
        drop(table);
        self.inner.lanes[registered.lane as usize].push_all(unblocked);
        Ok(generation)
    }

    fn registered(&self, name: &str, version: &str) -> Option<Arc<Registered>> {
        self.inner.registered(name, version)
    }

    fn check_open(&self) -> Result<(), EngineError> {
        if self.inner.closed.load(Ordering::Acquire) {
            return Err(EngineError::Closed);
        }
        if let Some(cause) = lock(&self.inner.fatal).clone() {
            return Err(EngineError::Fatal(cause));
        }
        Ok(())
    }

    /// Starts a run, or finds the existing run with this id. The run may
    /// begin at once; wait on the receipt before telling anyone it started.
    pub fn start(
        &self,
        workflow: &str,
        version: &str,
        run_id: &str,
        input: Vec<u8>,
        delay_ms: Option<Millis>,
    ) -> Result<Started, EngineError> {
        self.start_with(
            workflow,
            version,
            run_id,
            input,
            delay_ms,
            RunIdOrigin::Caller,
        )
    }

    /// [`start`](Engine::start) with a run id of the given origin: a
    /// [`RunIdOrigin::Generated`] id (fresh random bits, never a caller's) is not
    /// looked up in the store.
    pub fn start_with(
        &self,
        workflow: &str,
        version: &str,
        run_id: &str,
        input: Vec<u8>,
        delay_ms: Option<Millis>,
        origin: RunIdOrigin,
    ) -> Result<Started, EngineError> {
        self.check_open()?;
        let limits = &self.inner.config.limits;
        limits.check_run_id(run_id)?;
        limits.check_payload("input", &input)?;
        let wf =
            self.registered(workflow, version)
                .ok_or_else(|| EngineError::UnknownWorkflow {
                    name: workflow.into(),
                    version: version.into(),
                })?;
        let now = self.inner.clock.now_ms();
        let started = Event::RunStarted {
            run_id: run_id.to_owned(),
            workflow: workflow.to_owned(),
            version: version.to_owned(),
            input,
            deadline_ms: wf.def.timeout_ms.map(|t| now.saturating_add(t)),
            start_at_ms: delay_ms.filter(|&d| d > 0).map(|d| now.saturating_add(d)),
            step_count: wf.def.forward_step_count(),
            at_ms: now,
        };
        let mut table = lock(&self.inner.table);
        // Insert first so the durability token (the handle) exists; undone if the run existed.
        let state = RunState::new(0, &started)?;
        let handle = table.insert(ActiveRun {
            state,
            wf: wf.clone(),
            phase: Phase::Queued,
            caller_loaded: false,
            dirty: false,
            unacked: 1,
            pending: None,
            deadline_timer: false,
        });
        self.inner.acks_pending.fetch_add(1, Ordering::AcqRel);
        let outcome = self
            .inner
            .store
            .start_run_with(&started, Some(handle), origin);
        if !matches!(
            outcome,
            Ok((StartOutcome::Created { .. }, Receipt { durable: false, .. }))
        ) {
            // No acknowledgement will come for this token.
            self.inner.acks_settled(1);
        }
        match outcome {
            Ok((StartOutcome::Created { run_key }, receipt)) => {
                table.assign_key(handle, run_key, RunState::new(run_key, &started)?);
                if receipt.durable {
                    if let Some(run) = table.get_mut(handle) {
                        run.unacked = 0;
                    }
                }
                drop(table);
                self.inner.lanes[wf.lane as usize].push_all([QueueItem::Run(handle)]);
                Ok(Started {
                    run_key,
                    created: true,
                    receipt,
                })
            }
            Ok((StartOutcome::Existing { run_key }, receipt)) => {
                table.remove(handle);
                // The receipt covers everything appended so far, so waiting on it also
                // waits for a concurrent first start of this id to be durable.
                Ok(Started {
                    run_key,
                    created: false,
                    receipt,
                })
            }
            Err(error) => {
                table.remove(handle);
                Err(error.into())
            }
        }
    }

    /// Counts for diagnostics: runs in memory, queued per lane, timers.
    pub fn stats(&self) -> (usize, usize, usize, usize) {
        (
            lock(&self.inner.table).len(),
            self.inner.lanes[0].len(),
            self.inner.lanes[1].len(),
            self.inner.timers.len(),
        )
    }

    /// Stops handing out work (callers blocked in `next_work` return `Closed`)
    /// and stops the timers; results of work already handed out are still
    /// accepted until `close`.
    pub fn stop_work(&self) {
        self.inner.timers.stop();
        for lane in &self.inner.lanes {
            lane.close();
        }
        if let Some(thread) = lock(&self.timer_thread).take() {
            let _ = thread.join();
        }
    }

    /// Stops work and closes the store (what was acknowledged stays durable).
    pub fn close(&self) -> Result<(), EngineError> {
        self.stop_work();
        if self.inner.closed.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        self.inner.finished_cv.notify_all();
        self.inner.store.close()?;
        Ok(())
    }
}

impl Inner {
    /// Why the lanes are closed: the store failed, or the engine was closed.
    fn closed_error(&self) -> EngineError {
        match lock(&self.fatal).clone() {
            Some(cause) => EngineError::Fatal(cause),
            None => EngineError::Closed,
        }
    }

    fn registered(&self, name: &str, version: &str) -> Option<Arc<Registered>> {
        self.workflows
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)?
            .get(version)
            .cloned()
    }

    fn set_fatal(&self, cause: String) {
        lock(&self.fatal).get_or_insert(cause);
        self.finished_cv.notify_all();
        for lane in &self.lanes {
            lane.close();
        }
        // Event loops wait on the notifier; they find the failure in take_work.
        self.notifier.signal();
    }
}

/// Keeps `RunStatus` in the public API of this module for the binding layer.
pub fn status_of(summary: &RunSummary) -> RunStatus {
    summary.status
}
