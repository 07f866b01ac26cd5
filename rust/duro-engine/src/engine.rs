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

use std::collections::{HashMap, HashSet};
use std::os::unix::io::RawFd;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, RwLock, Weak};
use std::time::{Duration, Instant};

use duro_core::entries::{entries, JournalEntry};
use duro_core::error::CoreError;
use duro_core::journal::{ErrorInfo, Event, RunKey, Seq, StepKind};
use duro_core::limits::Limits;
use duro_core::linear::{self, Action};
use duro_core::replay::{idempotency_key, RunState};
use duro_core::summary::{RunStatus, RunSummary};
use duro_core::time::Millis;
use duro_core::workflow::WorkflowDef;
use duro_store::{AckSink, Receipt, RunFilter, StartOutcome, Store, StoreError, Token};

use crate::clock::Clock;
use crate::error::EngineError;
use crate::lanes::{Handle, Lane, LaneId, Popped, QueueItem};
use crate::notify::EventFd;
use crate::outcome::{FinishedCache, RunOutcome};
use crate::table::{ActiveRun, Blocked, Phase, Registered, RunTable};
use crate::timers::Timers;

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
    pub idempotency_key: String,
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
    /// Outputs of completed forward steps, by name, in order.
    pub outputs: Vec<(String, Vec<u8>)>,
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
    TimedOut,
}

struct FinishedState {
    cache: FinishedCache,
    blocked: HashMap<RunKey, String>,
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

struct Acks(Weak<Inner>);

impl AckSink for Acks {
    fn durable(&self, tokens: &[Token]) {
        if let Some(inner) = self.0.upgrade() {
            inner.on_durable(tokens);
        }
    }

    fn failed(&self, tokens: &[Token], error: &StoreError) {
        if let Some(inner) = self.0.upgrade() {
            inner.acks_settled(tokens.len());
            inner.set_fatal(format!("{error}"));
        }
    }
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
        let outcome = self.inner.store.start_run(&started, Some(handle));
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

    /// Blocks until the append behind `receipt` is durable.
    pub fn wait_durable(&self, receipt: Receipt) -> Result<(), EngineError> {
        self.inner.store.wait_durable(receipt).map_err(Into::into)
    }

    /// Takes the next work of `lane`, waiting up to `timeout`. `Ok(None)` on timeout.
    pub fn next_work(&self, lane: LaneId, timeout: Duration) -> Result<Option<Work>, EngineError> {
        let deadline = Instant::now() + timeout;
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            let acks_pending = || self.inner.acks_pending.load(Ordering::Acquire) > 0;
            match self.inner.lanes[lane as usize].pop(remaining, acks_pending) {
                Popped::Item(item) => {
                    if let Some(work) = self.inner.advance(item)? {
                        return Ok(Some(work));
                    }
                }
                Popped::TimedOut => return Ok(None),
                Popped::Closed => return Err(self.inner.closed_error()),
            }
        }
    }

    /// Takes up to `max` works of `lane` without waiting (for event loops).
    pub fn take_work(&self, lane: LaneId, max: usize) -> Result<Vec<Work>, EngineError> {
        if let Some(cause) = lock(&self.inner.fatal).clone() {
            // Event loops learn of a store failure here (the notifier was signalled).
            return Err(EngineError::Fatal(cause));
        }
        let mut works = Vec::new();
        while works.len() < max {
            let items = self.inner.lanes[lane as usize].drain(max - works.len());
            if items.is_empty() {
                break;
            }
            for item in items {
                if let Some(work) = self.inner.advance(item)? {
                    works.push(work);
                }
            }
        }
        Ok(works)
    }

    /// The attempt given by `Work::Execute` returned `output`.
    pub fn step_succeeded(
        &self,
        handle: Handle,
        seq: Seq,
        attempt: u32,
        output: Vec<u8>,
    ) -> Result<(), EngineError> {
        self.step_succeeded_inline(handle, seq, attempt, output, false)
            .map(|_| ())
    }

    /// Like `step_succeeded`; with `inline`, when the run's next action is
    /// another step it is handed straight back with the store position the
    /// caller must see durable (`durable_position() >=`) before running it,
    /// instead of going through the lane. Event loops use this: awaiting one
    /// shared durability notice is cheaper than a queue round trip per step.
    pub fn step_succeeded_inline(
        &self,
        handle: Handle,
        seq: Seq,
        attempt: u32,
        output: Vec<u8>,
        inline: bool,
    ) -> Result<Option<(ExecuteWork, u64)>, EngineError> {
        self.inner
            .config
            .limits
            .check_payload("step output", &output)?;
        self.inner
            .finish_attempt(handle, seq, attempt, inline, |run, now, out, _| {
                linear::step_succeeded(&mut run.state, seq, attempt, output, now, out).map(|_| ())
            })
    }

    /// The attempt given by `Work::Execute` failed.
    pub fn step_failed(
        &self,
        handle: Handle,
        seq: Seq,
        attempt: u32,
        error: ErrorInfo,
    ) -> Result<(), EngineError> {
        self.step_failed_inline(handle, seq, attempt, error, false)
            .map(|_| ())
    }

    /// Like `step_failed`, with `inline` as in `step_succeeded_inline`.
    pub fn step_failed_inline(
        &self,
        handle: Handle,
        seq: Seq,
        attempt: u32,
        error: ErrorInfo,
        inline: bool,
    ) -> Result<Option<(ExecuteWork, u64)>, EngineError> {
        self.inner
            .finish_attempt(handle, seq, attempt, inline, |run, now, out, limits| {
                let def = &run.wf.def;
                linear::step_failed(&mut run.state, def, seq, attempt, error, limits, now, out)
                    .map(|_| ())
            })
    }

    /// Every store position at or below this is durable.
    pub fn durable_position(&self) -> u64 {
        self.inner.store.durable_position()
    }

    /// See [`duro_store::Store::sync_round`]: the position to watch (with `watch_durable`) so that
    /// `position` is durable, shared by the positions of one sync; 0 if durable already.
    pub fn sync_round(&self, position: u64) -> u64 {
        self.inner.store.sync_round(position)
    }

    /// Records an event for the run; a wait for it continues.
    pub fn send_event(
        &self,
        run_key: RunKey,
        name: &str,
        payload: Vec<u8>,
    ) -> Result<Receipt, EngineError> {
        self.inner.config.limits.check_name("event name", name)?;
        self.inner
            .config
            .limits
            .check_payload("event payload", &payload)?;
        let name = name.to_owned();
        self.inner.input(run_key, "send an event", move |_, now| {
            Ok(Some(Event::EventReceived {
                name,
                payload,
                at_ms: now,
            }))
        })
    }

    /// Stops the run at its next step boundary.
    pub fn pause(&self, run_key: RunKey) -> Result<Receipt, EngineError> {
        self.inner.input(run_key, "pause", |state, now| {
            Ok((!state.is_paused()).then_some(Event::Paused { at_ms: now }))
        })
    }

    pub fn resume(&self, run_key: RunKey) -> Result<Receipt, EngineError> {
        self.inner.input(run_key, "resume", |state, now| {
            Ok(state.is_paused().then_some(Event::Resumed { at_ms: now }))
        })
    }

    /// Cancels the run at its next step boundary, compensating first if asked.
    pub fn cancel(&self, run_key: RunKey, compensate: bool) -> Result<Receipt, EngineError> {
        self.inner.input(run_key, "cancel", move |state, now| {
            let already = state.cancel_requested();
            Ok(
                (already.is_none() || (compensate && already == Some(false))).then_some(
                    Event::CancelRequested {
                        compensate,
                        at_ms: now,
                    },
                ),
            )
        })
    }

    /// The run's summary, by id.
    pub fn lookup(&self, run_id: &str) -> Result<Option<RunSummary>, EngineError> {
        Ok(self.inner.store.summary(run_id)?)
    }

    pub fn summary(&self, run_key: RunKey) -> Result<Option<RunSummary>, EngineError> {
        Ok(self.inner.store.summary_by_key(run_key)?)
    }

    /// The run's journal as entries.
    pub fn journal(&self, run_key: RunKey) -> Result<Vec<JournalEntry>, EngineError> {
        let events = self.inner.store.events(run_key)?;
        Ok(entries(&RunState::replay(run_key, &events)?))
    }

    pub fn list(&self, filter: &RunFilter) -> Result<Vec<RunSummary>, EngineError> {
        Ok(self.inner.store.list(filter)?)
    }

    /// Why the run is blocked, if it is.
    pub fn blocked_reason(&self, run_key: RunKey) -> Option<String> {
        lock(&self.inner.finished).blocked.get(&run_key).cloned()
    }

    /// The outcome of a finished run, without waiting.
    pub fn outcome(&self, run_key: RunKey) -> Result<Option<Arc<RunOutcome>>, EngineError> {
        if let Some(outcome) = lock(&self.inner.finished).cache.get(run_key) {
            return Ok(Some(outcome));
        }
        let Some(summary) = self.inner.store.summary_by_key(run_key)? else {
            return Err(EngineError::UnknownRun(format!("#{run_key}")));
        };
        if !summary.status.is_terminal() {
            return Ok(None);
        }
        let events = self.inner.store.events(run_key)?;
        let state = RunState::replay(run_key, &events)?;
        Ok(RunOutcome::from_state(&state).map(Arc::new))
    }

    /// Waits until the run ends (or is blocked), up to `timeout` (`None`: forever).
    pub fn wait_finished(
        &self,
        run_key: RunKey,
        timeout: Option<Duration>,
    ) -> Result<Wait, EngineError> {
        let deadline = timeout.map(|t| Instant::now() + t);
        // Finished earlier (or in another process's lifetime): answer from the store.
        if let Some(outcome) = self.outcome(run_key)? {
            return Ok(Wait::Finished(outcome));
        }
        let mut finished = lock(&self.inner.finished);
        loop {
            if let Some(outcome) = finished.cache.get(run_key) {
                return Ok(Wait::Finished(outcome));
            }
            if let Some(reason) = finished.blocked.get(&run_key) {
                return Ok(Wait::Blocked(reason.clone()));
            }
            if let Some(cause) = lock(&self.inner.fatal).clone() {
                return Err(EngineError::Fatal(cause));
            }
            if self.inner.closed.load(Ordering::Acquire) {
                return Err(EngineError::Closed);
            }
            let nap = match deadline {
                Some(deadline) => {
                    let now = Instant::now();
                    if now >= deadline {
                        return Ok(Wait::TimedOut);
                    }
                    (deadline - now).min(Duration::from_millis(500))
                }
                None => Duration::from_millis(500),
            };
            finished = self
                .inner
                .finished_cv
                .wait_timeout(finished, nap)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    /// Asks for a notice (see `take_finished_notices`) when the run ends or is blocked.
    pub fn watch(&self, run_key: RunKey) {
        let mut finished = lock(&self.inner.finished);
        if finished.cache.get(run_key).is_some() || finished.blocked.contains_key(&run_key) {
            finished.notices.push(run_key);
            drop(finished);
            self.inner.notifier.signal();
        } else {
            finished.watched.insert(run_key);
        }
    }

    /// Watched runs that ended since the last call.
    pub fn take_finished_notices(&self) -> Vec<RunKey> {
        std::mem::take(&mut lock(&self.inner.finished).notices)
    }

    /// Asks for a notice (see `take_durable_notices`) once `position` is durable.
    pub fn watch_durable(&self, position: u64) {
        let mut finished = lock(&self.inner.finished);
        if position <= self.inner.store.durable_position() {
            finished.durable_notices.push(position);
            drop(finished);
            self.inner.notifier.signal();
        } else {
            finished.durable_watch.push(std::cmp::Reverse(position));
        }
    }

    /// Watched positions that became durable since the last call.
    pub fn take_durable_notices(&self) -> Vec<u64> {
        std::mem::take(&mut lock(&self.inner.finished).durable_notices)
    }

    /// A descriptor that becomes readable when the async lane has work or a
    /// watched run ended. Drain it with [`Engine::drain_notifier`] first, then take work.
    pub fn notify_fd(&self) -> RawFd {
        self.inner.notifier.fd()
    }

    pub fn drain_notifier(&self) {
        self.inner.notifier.drain();
    }

    /// Fires due timers now (tests with a manual clock call this after moving it).
    pub fn fire_due_timers(&self) {
        self.inner.fire_due_timers();
    }

    /// Appends whose acknowledgement has not been handled yet (0 once everything
    /// appended is durable and its runs have moved on, or the store failed).
    pub fn acks_pending(&self) -> usize {
        self.inner.acks_pending.load(Ordering::Acquire)
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

fn timer_loop(inner: Weak<Inner>) {
    loop {
        let Some(strong) = inner.upgrade() else {
            return;
        };
        strong.fire_due_timers();
        let now = strong.clock.now_ms();
        let keep_going = strong.timers.nap(now);
        if !keep_going || strong.closed.load(Ordering::Acquire) {
            return;
        }
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

    /// Appends `events` (already applied to the run's state) as one store
    /// append, acknowledged to `handle`.
    fn append(
        &self,
        run: &mut ActiveRun,
        handle: Handle,
        events: &[Event],
    ) -> Result<Receipt, EngineError> {
        let position = run.state.event_count() - events.len() as u32;
        // Counted before the append: its acknowledgement may arrive before it returns.
        self.acks_pending.fetch_add(1, Ordering::AcqRel);
        let receipt = self
            .store
            .append(run.state.run_key, position, events, Some(handle))
            .inspect_err(|_| self.acks_settled(1))?;
        if receipt.durable {
            self.acks_settled(1);
        } else {
            run.unacked += 1;
        }
        Ok(receipt)
    }

    /// Hands out a queued run's decided work, or decides it.
    fn advance(&self, item: QueueItem) -> Result<Option<Work>, EngineError> {
        let handle = match item {
            QueueItem::Release(handle) => return Ok(Some(Work::Release { handle })),
            QueueItem::Run(handle) => handle,
        };
        let mut table = lock(&self.table);
        let Some(run) = table.get_mut(handle) else {
            return Ok(None);
        };
        if run.phase != Phase::Queued {
            return Ok(None);
        }
        if let Some(exec) = run.pending.take() {
            // The events that decided it are durable now.
            return Ok(Some(Work::Execute(hand_out(run, handle, exec))));
        }
        match self.decide(&mut table, handle, Vec::new(), false)? {
            Decided::Ready => {
                let run = table.get_mut(handle).expect("decided above");
                let exec = run
                    .pending
                    .take()
                    .expect("Ready leaves the decision pending");
                Ok(Some(Work::Execute(hand_out(run, handle, exec))))
            }
            Decided::Release(handle) => Ok(Some(Work::Release { handle })),
            Decided::Later | Decided::Inline(..) => Ok(None),
            Decided::Block(error) => {
                drop(table);
                self.block(handle, error);
                Ok(None)
            }
        }
    }

    /// Decides a run's next action and appends `out` (events already applied,
    /// e.g. a step's result) together with the events of the decision, as one
    /// record. The decided work is handed out only once that record is
    /// durable, so every step's start is on disk before the step runs, and a
    /// step costs one fsync: its result and the next step's start share it.
    fn decide(
        &self,
        table: &mut RunTable,
        handle: Handle,
        mut out: Vec<Event>,
        inline: bool,
    ) -> Result<Decided, EngineError> {
        let Some(run) = table.get_mut(handle) else {
            return Ok(Decided::Later);
        };
        let now = self.clock.now_ms();
        let wf = run.wf.clone();
        let action =
            linear::next_action(&mut run.state, &wf.def, &self.config.limits, now, &mut out);
        let receipt = if out.is_empty() {
            None
        } else {
            Some(self.append(run, handle, &out)?)
        };
        let action = match action {
            Ok(action) => action,
            Err(error) => return Ok(Decided::Block(error)),
        };
        if let Action::Execute(exec) = &action {
            // A deadline passing while a forward step runs must fail the run
            // then, not when the step returns (it may never return).
            if exec.kind == StepKind::Task && !run.deadline_timer {
                if let Some(deadline) = run.state.deadline_ms {
                    self.timers.schedule(deadline, run.state.run_key);
                    run.deadline_timer = true;
                }
            }
        }
        match action {
            Action::Execute(exec) if inline => {
                // The caller continues the run itself once `position` is durable.
                let position = receipt.filter(|r| !r.durable).map_or(0, |r| r.position);
                Ok(Decided::Inline(hand_out(run, handle, exec), position))
            }
            Action::Execute(exec) => {
                run.pending = Some(exec);
                if run.unacked == 0 {
                    run.phase = Phase::Queued;
                    return Ok(Decided::Ready);
                }
                run.phase = Phase::AwaitingAck;
                Ok(Decided::Later)
            }
            Action::Wait { wake_at_ms, .. } => {
                if let Some(at) = wake_at_ms {
                    self.timers.schedule(at, run.state.run_key);
                }
                run.phase = Phase::Evicting;
                run.dirty = false;
                if run.unacked == 0 {
                    return Ok(self
                        .evict(table, handle)
                        .map_or(Decided::Later, Decided::Release));
                }
                Ok(Decided::Later)
            }
            Action::Finished => {
                run.phase = Phase::Finishing;
                if run.unacked == 0 {
                    return Ok(self
                        .finish(table, handle)
                        .map_or(Decided::Later, Decided::Release));
                }
                Ok(Decided::Later)
            }
        }
    }

    /// Removes a run from memory; returns its handle if the caller must release its context.
    fn evict(&self, table: &mut RunTable, handle: Handle) -> Option<Handle> {
        let run = table.remove(handle)?;
        run.caller_loaded.then_some(handle)
    }

    /// Publishes the outcome of a run whose terminal event is durable, and evicts it.
    fn finish(&self, table: &mut RunTable, handle: Handle) -> Option<Handle> {
        let run = table.get_mut(handle)?;
        if let Some(outcome) = RunOutcome::from_state(&run.state) {
            let key = outcome.run_key;
            let mut finished = lock(&self.finished);
            finished.cache.insert(Arc::new(outcome));
            if finished.watched.remove(&key) {
                finished.notices.push(key);
                self.notifier.signal();
            }
            drop(finished);
            self.finished_cv.notify_all();
        }
        self.evict(table, handle)
    }

    fn block(&self, handle: Handle, error: CoreError) {
        let mut table = lock(&self.table);
        let Some(run) = table.get_mut(handle) else {
            return;
        };
        let non_determinism = match &error {
            CoreError::NonDeterminism(nd) => Some(nd.clone()),
            _ => None,
        };
        let message = format!("run {:?}: {error}", run.state.run_id);
        run.phase = Phase::Blocked(Blocked {
            message: message.clone(),
            non_determinism,
        });
        let key = run.state.run_key;
        let release = run.caller_loaded.then_some(handle);
        run.caller_loaded = false;
        let lane = run.wf.lane;
        drop(table);
        let mut finished = lock(&self.finished);
        finished.blocked.insert(key, message);
        if finished.watched.remove(&key) {
            finished.notices.push(key);
            self.notifier.signal();
        }
        drop(finished);
        self.finished_cv.notify_all();
        if let Some(handle) = release {
            self.lanes[lane as usize].push_all([QueueItem::Release(handle)]);
        }
    }

    /// A step attempt ended: record it and decide what follows, in one append.
    fn finish_attempt(
        &self,
        handle: Handle,
        seq: Seq,
        attempt: u32,
        inline: bool,
        record: impl FnOnce(&mut ActiveRun, Millis, &mut Vec<Event>, &Limits) -> Result<(), CoreError>,
    ) -> Result<Option<(ExecuteWork, u64)>, EngineError> {
        if let Some(cause) = lock(&self.fatal).clone() {
            return Err(EngineError::Fatal(cause));
        }
        let mut table = lock(&self.table);
        let run = table.get_mut(handle).ok_or(CoreError::StaleResult {
            run_id: format!("handle {handle}"),
            seq,
            why: "the run is no longer in memory",
        })?;
        if run.phase != (Phase::InCaller { seq, attempt }) {
            return Err(CoreError::StaleResult {
                run_id: run.state.run_id.clone(),
                seq,
                why: "this attempt is not the one in progress",
            }
            .into());
        }
        let mut out = Vec::new();
        record(run, self.clock.now_ms(), &mut out, &self.config.limits)?;
        let lane = run.wf.lane;
        run.phase = Phase::Queued;
        let decided = self.decide(&mut table, handle, out, inline)?;
        drop(table);
        match decided {
            Decided::Inline(work, position) => return Ok(Some((work, position))),
            // Durable already (an in-memory store): the next work is ready now.
            Decided::Ready => self.lanes[lane as usize].push_all([QueueItem::Run(handle)]),
            Decided::Release(handle) => {
                self.lanes[lane as usize].push_all([QueueItem::Release(handle)]);
            }
            Decided::Block(error) => self.block(handle, error),
            Decided::Later => {}
        }
        Ok(None)
    }

    /// The store made appends durable: move their runs on.
    fn on_durable(&self, tokens: &[Token]) {
        let mut queued: [Vec<QueueItem>; 2] = [Vec::new(), Vec::new()];
        let mut table = lock(&self.table);
        for &handle in tokens {
            let Some(run) = table.get_mut(handle) else {
                continue;
            };
            run.unacked = run.unacked.saturating_sub(1);
            if run.unacked > 0 {
                continue;
            }
            let lane = run.wf.lane as usize;
            match run.phase {
                Phase::AwaitingAck => {
                    run.phase = Phase::Queued;
                    queued[lane].push(QueueItem::Run(handle));
                }
                Phase::Evicting if run.dirty => {
                    run.phase = Phase::Queued;
                    run.dirty = false;
                    queued[lane].push(QueueItem::Run(handle));
                }
                Phase::Evicting => {
                    if let Some(release) = self.evict(&mut table, handle) {
                        queued[lane].push(QueueItem::Release(release));
                    }
                }
                Phase::Finishing => {
                    if let Some(release) = self.finish(&mut table, handle) {
                        queued[lane].push(QueueItem::Release(release));
                    }
                }
                Phase::Queued | Phase::InCaller { .. } | Phase::Blocked(_) => {}
            }
        }
        drop(table);
        for (lane, items) in queued.into_iter().enumerate() {
            self.lanes[lane].push_all(items);
        }
        self.acks_settled(tokens.len());
        self.publish_durable();
    }

    /// `n` acknowledgements were handled (or will never come).
    fn acks_settled(&self, n: usize) {
        // Saturating: a miscount may only cost a spin, never wrap into a permanent one.
        let _ = self
            .acks_pending
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |pending| {
                Some(pending.saturating_sub(n))
            });
    }

    /// Moves watched store positions that are now durable to the notices.
    fn publish_durable(&self) {
        let mut finished = lock(&self.finished);
        if finished.durable_watch.is_empty() {
            return;
        }
        let durable = self.store.durable_position();
        let mut any = false;
        while let Some(std::cmp::Reverse(position)) = finished.durable_watch.peek().copied() {
            if position > durable {
                break;
            }
            finished.durable_watch.pop();
            finished.durable_notices.push(position);
            any = true;
        }
        drop(finished);
        if any {
            self.notifier.signal();
        }
    }

    /// Brings a dormant run into memory (queued), or returns the handle it has.
    /// `None` when its workflow is not registered here.
    fn ensure_loaded(
        &self,
        table: &mut RunTable,
        run_key: RunKey,
    ) -> Result<Option<Handle>, EngineError> {
        if let Some(handle) = table.handle_of(run_key) {
            return Ok(Some(handle));
        }
        let events = self.store.events(run_key)?;
        let state = RunState::replay(run_key, &events)?;
        let Some(wf) = self.registered(&state.workflow, &state.version) else {
            return Ok(None);
        };
        let phase = match linear::check_against(&state, &wf.def) {
            Ok(()) => Phase::Queued,
            Err(nd) => Phase::Blocked(Blocked {
                message: format!("run {:?}: {nd}", state.run_id),
                non_determinism: Some(nd),
            }),
        };
        let blocked = match &phase {
            Phase::Blocked(b) => Some(b.message.clone()),
            _ => None,
        };
        let handle = table.insert(ActiveRun {
            state,
            wf,
            phase,
            caller_loaded: false,
            dirty: false,
            unacked: 0,
            pending: None,
            deadline_timer: false,
        });
        if let Some(message) = blocked {
            lock(&self.finished).blocked.insert(run_key, message);
            self.finished_cv.notify_all();
        }
        Ok(Some(handle))
    }

    fn fire_due_timers(&self) {
        let now = self.clock.now_ms();
        let due = self.timers.take_due(now);
        if due.is_empty() {
            return;
        }
        let mut queued: [Vec<QueueItem>; 2] = [Vec::new(), Vec::new()];
        let mut table = lock(&self.table);
        for key in due {
            let loaded = table.handle_of(key);
            match loaded {
                Some(handle) => {
                    if let Some(run) = table.get_mut(handle) {
                        match run.phase {
                            Phase::Evicting => run.dirty = true,
                            // The workflow's deadline passed while a step runs: decide
                            // now (the run turns back with WorkflowTimeout and the open
                            // attempt is closed); that attempt's late result is refused
                            // as stale and discarded.
                            Phase::InCaller { .. }
                                if run.state.turned_back().is_none()
                                    && run.state.deadline_ms.is_some_and(|d| d <= now) =>
                            {
                                run.phase = Phase::Queued;
                                run.pending = None;
                                queued[run.wf.lane as usize].push(QueueItem::Run(handle));
                            }
                            _ => {}
                        }
                    }
                }
                None => match self.ensure_loaded(&mut table, key) {
                    Ok(Some(handle)) => {
                        let run = table.get_mut(handle).expect("just loaded");
                        if run.state.is_finished() {
                            table.remove(handle);
                        } else if run.phase == Phase::Queued {
                            queued[run.wf.lane as usize].push(QueueItem::Run(handle));
                        }
                    }
                    Ok(None) => {}
                    Err(error) => {
                        if error.is_store_failure() {
                            drop(table);
                            self.set_fatal(error.to_string());
                            return;
                        }
                        // A run that cannot be read must not stop the others; retry later.
                        self.timers.schedule(self.clock.now_ms() + 5_000, key);
                    }
                },
            }
        }
        drop(table);
        for (lane, items) in queued.into_iter().enumerate() {
            self.lanes[lane].push_all(items);
        }
    }

    /// Appends an input event (event, pause, resume, cancel) and lets the run react.
    fn input(
        &self,
        run_key: RunKey,
        action: &'static str,
        make: impl FnOnce(&RunState, Millis) -> Result<Option<Event>, EngineError>,
    ) -> Result<Receipt, EngineError> {
        if let Some(cause) = lock(&self.fatal).clone() {
            return Err(EngineError::Fatal(cause));
        }
        let now = self.clock.now_ms();
        let mut table = lock(&self.table);
        let Some(handle) = self.ensure_loaded(&mut table, run_key)? else {
            // Its workflow is not defined here: record the input; it takes effect when it is.
            drop(table);
            return self.input_parked(run_key, action, make, now);
        };
        let run = table.get_mut(handle).expect("loaded above");
        if let Some(outcome) = run.state.outcome() {
            let (run_id, status) = (run.state.run_id.clone(), outcome.status_str());
            if run.phase == Phase::Queued && run.unacked == 0 {
                table.remove(handle);
            }
            return Err(EngineError::RunEnded {
                run_id,
                status,
                action,
            });
        }
        let Some(event) = make(&run.state, now)? else {
            return Ok(Receipt {
                position: 0,
                durable: true,
            });
        };
        run.state.apply(&event)?;
        let receipt = self.append(run, handle, std::slice::from_ref(&event))?;
        let lane = run.wf.lane;
        let push = match run.phase {
            Phase::Evicting => {
                run.dirty = true;
                false
            }
            // A freshly loaded run: let it react to the input.
            Phase::Queued => true,
            _ => false,
        };
        drop(table);
        if push {
            self.lanes[lane as usize].push_all([QueueItem::Run(handle)]);
        }
        Ok(receipt)
    }

    fn input_parked(
        &self,
        run_key: RunKey,
        action: &'static str,
        make: impl FnOnce(&RunState, Millis) -> Result<Option<Event>, EngineError>,
        now: Millis,
    ) -> Result<Receipt, EngineError> {
        let events = self.store.events(run_key)?;
        let mut state = RunState::replay(run_key, &events)?;
        if let Some(outcome) = state.outcome() {
            return Err(EngineError::RunEnded {
                run_id: state.run_id.clone(),
                status: outcome.status_str(),
                action,
            });
        }
        let Some(event) = make(&state, now)? else {
            return Ok(Receipt {
                position: 0,
                durable: true,
            });
        };
        state.apply(&event)?;
        let receipt = self.store.append(
            run_key,
            state.event_count() - 1,
            std::slice::from_ref(&event),
            None,
        )?;
        // When its workflow is registered, the run must see this input at once.
        if let Some(parked) =
            lock(&self.parked).get_mut(&(state.workflow.clone(), state.version.clone()))
        {
            if let Some(entry) = parked.iter_mut().find(|p| p.key == run_key) {
                entry.wake_at_ms = Some(now);
            }
        }
        Ok(receipt)
    }
}

/// What `decide` concluded.
enum Decided {
    /// The decided work (`ActiveRun::pending`) can be handed out now: its
    /// events were durable at once.
    Ready,
    /// Handed out to the caller that reported the previous step, to run once
    /// the given store position is durable (0: it is).
    Inline(ExecuteWork, u64),
    /// The run left memory; the caller should release its context.
    Release(Handle),
    /// Nothing to hand out until the store acknowledges.
    Later,
    /// The run cannot continue.
    Block(CoreError),
}

/// Turns a decided execution into the work a caller runs.
fn hand_out(run: &mut ActiveRun, handle: Handle, exec: linear::Execute) -> ExecuteWork {
    run.phase = Phase::InCaller {
        seq: exec.seq,
        attempt: exec.attempt,
    };
    let load = (!run.caller_loaded).then(|| load_data(&run.state, run.wf.generation));
    run.caller_loaded = true;
    let failure = (exec.kind == StepKind::OnFailure).then(|| failure_info(&run.state));
    let name = match exec.kind {
        StepKind::OnFailure => linear::ON_FAILURE_NAME,
        _ => exec
            .step_index
            .map_or("", |i| run.wf.def.steps[i].name.as_str()),
    };
    ExecuteWork {
        handle,
        run_key: run.state.run_key,
        kind: exec.kind,
        seq: exec.seq,
        step_index: exec.step_index,
        attempt: exec.attempt,
        idempotency_key: idempotency_key(&run.state.run_id, exec.kind, name),
        load,
        failure,
    }
}

fn load_data(state: &RunState, generation: u64) -> LoadData {
    LoadData {
        generation,
        run_id: state.run_id.clone(),
        workflow: state.workflow.clone(),
        version: state.version.clone(),
        input: state.input.clone(),
        outputs: linear::completed_outputs(state)
            .into_iter()
            .map(|(n, o)| (n.to_owned(), o.to_vec()))
            .collect(),
    }
}

fn failure_info(state: &RunState) -> FailureInfo {
    let turn = state.turned_back();
    FailureInfo {
        failed_step: turn
            .and_then(|t| t.failed_seq)
            .and_then(|s| state.step(s))
            .map(|s| s.name.clone()),
        error: turn.map(|t| t.reason.clone()).unwrap_or_default(),
        completed_steps: linear::completed_outputs(state)
            .into_iter()
            .map(|(n, _)| n.to_owned())
            .collect(),
    }
}

/// Keeps `RunStatus` in the public API of this module for the binding layer.
pub fn status_of(summary: &RunSummary) -> RunStatus {
    summary.status
}
